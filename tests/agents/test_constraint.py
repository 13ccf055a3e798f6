"""Constrained training: the Lagrange multiplier on the violation weight."""

import json
from dataclasses import replace

import pytest

from lokirl.agents.config import load_train_config
from lokirl.agents.constraint import ConstraintParams, parse_constraint
from lokirl.agents.train import train
from lokirl.envs.serving import LokiServingEnv
from lokirl.errors import ConfigError
from lokirl.tracking import RUNS_ENV
from tests.agents.conftest import ENV, tiny_config


@pytest.fixture(autouse=True)
def _runs(tmp_path, monkeypatch):
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))


def _constrained(budget: float, lr: float) -> dict:
    cfg = replace(
        tiny_config("constrained", 96),
        env=replace(ENV, traces=("gen:spikes",)),
        constraint=ConstraintParams(violation_budget=budget, lambda_init=1.0, lambda_lr=lr),
    )
    folder = train(cfg, progress=False)
    return json.loads((folder / "constraint.json").read_text())


def test_multiplier_follows_the_violation_excess():
    tight = _constrained(budget=0.0, lr=10.0)
    assert len(tight["history"]) == 3  # one dual step per rollout (96 steps / 32)
    lam = 1.0
    for h in tight["history"]:  # projected dual ascent, step by step
        lam = min(max(lam + 10.0 * (h["violation"] - 0.0), 0.0), 100.0)
        assert h["lambda"] == pytest.approx(lam)
    assert tight["lambda_final"] > 1.0  # the random policy violates: the multiplier grew
    loose = _constrained(budget=0.9, lr=10.0)
    assert all(h["violation"] < 0.9 for h in loose["history"])
    assert loose["lambda_final"] == 0.0  # under budget: the multiplier falls to its floor


def test_env_takes_the_multiplier_as_its_violation_weight():
    env = LokiServingEnv(ENV)
    env.set_violation_weight(7.5)
    assert env.config.weights.violation == 7.5
    with pytest.raises(ValueError, match=">= 0"):
        env.set_violation_weight(-1.0)


def test_constraint_section_is_validated_with_file_and_field(tmp_path):
    assert not parse_constraint(None, "x.yaml").enabled
    assert parse_constraint({"violation_budget": 0.01}, "x.yaml").violation_budget == 0.01
    with pytest.raises(ConfigError, match=r"x\.yaml: constraint\.violation_budget"):
        parse_constraint({"violation_budget": -0.1}, "x.yaml")
    with pytest.raises(ConfigError, match=r"constraint\.lambda_rate"):
        parse_constraint({"lambda_rate": 1.0}, "x.yaml")
    f = tmp_path / "c.yaml"
    f.write_text("constraint:\n  violation_budget: 0.05\n  lambda_lr: 30\n")
    cfg = load_train_config(f)
    assert cfg.constraint.enabled and cfg.constraint.lambda_lr == 30.0
    f.write_text("constraint:\n  violation_budget: 1.5\n")
    with pytest.raises(ConfigError, match="c.yaml: constraint.violation_budget"):
        load_train_config(f)


def test_best_model_under_a_budget_is_the_most_accurate_within_it():
    from lokirl.agents.constraint import selection_key

    within_low = {"reward": 90.0, "frame_violation_ratio": 0.009, "effective_accuracy": 91.0}
    within_high = {"reward": 80.0, "frame_violation_ratio": 0.010, "effective_accuracy": 93.0}
    beyond = {"reward": 120.0, "frame_violation_ratio": 0.05, "effective_accuracy": 95.0}
    worse_beyond = {"reward": 130.0, "frame_violation_ratio": 0.08, "effective_accuracy": 96.0}
    ranked = sorted(
        [beyond, within_low, worse_beyond, within_high],
        key=lambda s: selection_key(s, 0.01),
        reverse=True,
    )
    assert ranked == [within_high, within_low, beyond, worse_beyond]
    # Without a budget the reward decides.
    assert max([beyond, within_high, worse_beyond], key=lambda s: selection_key(s, None)) is (
        worse_beyond
    )


def test_a_resumed_run_continues_from_its_saved_multiplier(tmp_path):
    from lokirl.agents.constraint import resumed_multiplier

    params = ConstraintParams(violation_budget=0.0, lambda_init=1.0, lambda_lr=10.0)
    cfg = replace(
        tiny_config("constrained", 64),
        env=replace(ENV, traces=("gen:spikes",)),
        constraint=params,
    )
    first = train(cfg, progress=False)
    saved = json.loads((first / "constraint.json").read_text())
    assert saved["lambda_start"] == 1.0 and saved["lambda_final"] > 1.0
    assert [h["step"] for h in saved["history"]] == [32.0, 64.0]
    value, why = resumed_multiplier(first / "model.zip", params)
    assert value == pytest.approx(saved["lambda_final"]) and "end of that run" in why
    assert resumed_multiplier(first / "model", params)[0] == value  # without ".zip"
    # the resumed run's first dual step starts from the saved multiplier, not lambda_init
    second = train(replace(cfg, name="resumed"), resume=str(first / "model.zip"), progress=False)
    again = json.loads((second / "constraint.json").read_text())
    assert again["lambda_start"] == pytest.approx(saved["lambda_final"])
    h0 = again["history"][0]
    assert h0["lambda"] == pytest.approx(min(saved["lambda_final"] + 10.0 * h0["violation"], 100.0))
    # unless asked to restart it (how earlier resumed runs behaved)
    third = train(
        replace(cfg, name="restarted", total_timesteps=32),
        resume=str(first / "model.zip"),
        progress=False,
        restart_multiplier=True,
    )
    assert json.loads((third / "constraint.json").read_text())["lambda_start"] == 1.0
    # a checkpoint: the multiplier in force when it was saved (a checkpoint on a
    # rollout's last step is saved before that rollout's dual step)
    ckpts = first / "checkpoints"
    ckpts.mkdir()
    h = saved["history"]
    for n, expected in (
        (40, h[0]["lambda"]),
        (64, h[0]["lambda"]),
        (65, h[1]["lambda"]),
        (32, 1.0),
    ):
        (ckpts / f"ppo_{n}_steps.zip").write_bytes(b"")
        assert resumed_multiplier(ckpts / f"ppo_{n}_steps.zip", params)[0] == pytest.approx(
            expected
        )
    # files whose step is not recorded, another budget, nothing saved, a broken file: lambda_init
    (ckpts / "odd.zip").write_bytes(b"")
    assert "not a checkpoint name" in resumed_multiplier(ckpts / "odd.zip", params)[1]
    assert resumed_multiplier(first / "best_model.zip", params)[0] is None
    assert resumed_multiplier(first / "imitation_model.zip", params)[0] == 1.0  # its start
    assert (
        resumed_multiplier(first / "model.zip", replace(params, violation_budget=0.05))[0] is None
    )
    assert "did not finish" in resumed_multiplier(tmp_path / "elsewhere" / "model.zip", params)[1]
    (first / "constraint.json").write_text(json.dumps({**saved, "history": [{"step": "x"}]}))
    assert "unreadable" in resumed_multiplier(ckpts / "ppo_40_steps.zip", params)[1]


def test_restart_multiplier_without_resume_is_refused_before_work(capsys):
    from lokirl.cli import main

    assert main(["train", "--restart-multiplier", "--timesteps", "32"]) == 2
    err = capsys.readouterr().err
    assert "--restart-multiplier" in err and "--resume" in err and "Fix:" in err
