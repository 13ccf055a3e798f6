import json
from dataclasses import replace

import numpy as np
import pytest

from lokirl.agents.config import load_train_config
from lokirl.agents.imitation import ImitationParams, clone, collect, teacher_action
from lokirl.core.controller import KEEP, Decision
from lokirl.envs import LokiServingEnv
from lokirl.envs.features import KEEP_PLAN, RESOLVE_COLD, RESOLVE_WARM
from lokirl.errors import ConfigError
from tests.agents.conftest import ENV, tiny_config


def test_teacher_action_maps_decisions_onto_the_action_space():
    env = LokiServingEnv(ENV)
    env.reset(seed=3)
    spec, ctx, fc = env.features, env.context, env.forecast
    base, _ = fc.at(spec.base_horizon_s)
    assert base > 0
    assert teacher_action(spec, KEEP, ctx, fc).tolist() == [KEEP_PLAN, 0]
    for i, h in enumerate(spec.headrooms):
        warm = Decision(True, base * h * 1.01, True, 1.0, "t")
        assert teacher_action(spec, warm, ctx, fc).tolist() == [RESOLVE_WARM, i]
    cold = Decision(True, base * 100.0, False, 0.0, "t")
    assert teacher_action(spec, cold, ctx, fc).tolist() == [
        RESOLVE_COLD,
        len(spec.headrooms) - 1,
    ]


def test_collect_is_deterministic_and_returns_are_discounted():
    a = collect(ENV, "trigger", 12, seed=1, gamma=0.9)
    b = collect(ENV, "trigger", 12, seed=1, gamma=0.9)
    assert len(a.actions) >= 12 and a.episodes >= 2
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.obs.shape[0] == a.actions.shape[0] == a.returns.shape[0] == a.resolved.shape[0]
    # Where the teacher kept the plan the action is keep, and the reverse.
    assert np.array_equal(a.actions[:, 0] != KEEP_PLAN, a.resolved)
    # The last step of an episode: its return is its reward; earlier ones add on.
    assert np.isfinite(a.returns).all()


def test_clone_fits_the_teacher_better_than_an_untrained_policy():
    from stable_baselines3 import PPO

    env = LokiServingEnv(ENV)
    demos = collect(ENV, "trigger", 40, seed=2, gamma=0.95)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu")
    before = clone(model, demos, ImitationParams(teacher="trigger", epochs=1, learning_rate=1e-9))
    after = clone(model, demos, ImitationParams(teacher="trigger", epochs=60, batch_size=32))
    assert after["policy_loss"] < before["policy_loss"]
    assert after["value_loss"] < before["value_loss"]
    assert after["agreement_kind"] >= 0.8


def test_training_with_imitation_writes_the_cloned_policy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    from lokirl.agents.train import train

    cfg = replace(
        tiny_config("bc", 32), imitation=ImitationParams(teacher="trigger", steps=20, epochs=2)
    )
    folder = train(cfg, progress=True)
    stats = json.loads((folder / "imitation.json").read_text())
    assert stats["steps"] >= 20 and 0.0 <= stats["agreement_kind"] <= 1.0
    # Off a terminal the bars draw nothing: plain lines for the demonstrations too.
    err = capsys.readouterr().err.splitlines()
    demos = [ln for ln in err if ln.startswith("train imitation: steps of trigger")]
    assert demos and demos[-1].startswith("train imitation: steps of trigger 20/20 (100%)")
    assert (folder / "imitation_model.zip").is_file() and (folder / "model.zip").is_file()


def test_imitation_config_errors_name_the_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("imitation: {teacher: trigger, steps: 0}\n")
    with pytest.raises(ConfigError, match=r"imitation\.steps"):
        load_train_config(p)
    p.write_text("imitation: {teacher: trigger, stpes: 10}\n")
    with pytest.raises(ConfigError, match=r"imitation\.stpes"):
        load_train_config(p)


def test_a_teacher_that_is_the_fallback_is_cloned_as_follow_with_smoothing():
    from stable_baselines3 import PPO

    from lokirl.envs.features import FOLLOW

    cfg = replace(ENV, fallback="periodic(period_s=2)")
    demos = collect(cfg, "periodic(period_s=2)", 30, seed=4, gamma=0.95)
    # Every step defers to the fallback; none carries a headroom of the policy's own.
    assert (demos.actions[:, 0] == FOLLOW).all() and not demos.resolved.any()
    env = LokiServingEnv(cfg)
    probs = {}
    for eps in (0.0, 0.2):
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu")
        params = ImitationParams(teacher="x", epochs=300, batch_size=32, smoothing=eps)
        assert clone(model, demos, params)["agreement_kind"] == 1.0
        import torch as th

        with th.no_grad():
            dist = model.policy.get_distribution(th.as_tensor(demos.obs))
        probs[eps] = float(dist.distribution[0].probs[:, FOLLOW].mean())
    kinds = env.action_space.nvec[0]
    assert kinds == 4
    # Without smoothing the constant teacher is fitted to near certainty; with 0.2 the
    # other three kinds keep about 0.2 * 3/4 of the probability between them.
    assert probs[0.0] > 0.99
    assert abs(probs[0.2] - (1 - 0.2 + 0.2 / kinds)) < 0.03


def test_a_model_based_teacher_is_bound_before_it_decides():
    from lokirl.envs.features import FOLLOW

    # fluid builds its plan library at bind: as a teacher of its own (not followed) the
    # collector binds it; as the fallback, the env has and every step is FOLLOW
    own = collect(ENV, "fluid(horizon=2)", 12, seed=5, gamma=0.9)
    assert len(own.actions) >= 12 and not (own.actions[:, 0] == FOLLOW).any()
    assert own.resolved.any()  # at least its first plan
    cfg = replace(ENV, fallback="fluid(horizon=2)")
    followed = collect(cfg, "fluid(horizon=2)", 12, seed=5, gamma=0.9)
    assert (followed.actions[:, 0] == FOLLOW).all() and not followed.resolved.any()


def test_smoothing_out_of_range_is_a_config_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("imitation: {teacher: trigger, smoothing: 1.5}\n")
    with pytest.raises(ConfigError, match=r"imitation\.smoothing"):
        load_train_config(p)


def test_every_shipped_training_file_loads_and_the_residual_one_follows_its_teacher():
    from pathlib import Path

    files = sorted(Path("configs/agents").glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        load_train_config(f)
    for name in ("ppo_residual", "ppo_residual_fluid"):
        cfg = load_train_config(f"configs/agents/{name}.yaml")
        # the teacher is the fallback, so imitation clones FOLLOW; smoothing keeps exploring
        assert cfg.env.fallback and cfg.imitation.teacher == cfg.env.fallback
        assert 0 < cfg.imitation.smoothing < 1
        assert cfg.env.feature_version == 2 and cfg.env.base_horizon_s == 0
