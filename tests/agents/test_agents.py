import argparse
import json
import math

import numpy as np
import pytest

import lokirl.agents  # noqa: F401
from lokirl.agents.config import load_train_config
from lokirl.agents.heuristics import OracleController, TriggerController
from lokirl.cli import main
from lokirl.core.allocator import solve
from lokirl.core.controller import KEEP, ControlContext
from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.envs import LokiServingEnv
from lokirl.errors import ConfigError
from lokirl.experiments.compare import METRICS, compare, mean_ci
from lokirl.traces import RateSeries
from tests.agents.conftest import ENV, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    os.environ["LOKIRL_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    import torch

    from lokirl.agents.train import train

    before = torch.get_num_threads()
    seen: list[int] = []
    original = torch.set_num_threads

    def spy(n: int) -> None:
        seen.append(n)
        original(n)

    torch.set_num_threads = spy
    try:
        folder = train(tiny_config("tiny", 64), progress=False)
    finally:
        torch.set_num_threads = original
    # The learner ran on one torch thread (the default) and gave the process's back.
    assert seen == [1, before]
    assert torch.get_num_threads() == before
    return folder


def test_tiny_training_run_writes_policy(trained):
    assert (trained / "model.zip").is_file()
    spec = json.loads((trained / "model.features.json").read_text())
    assert spec["tasks"] == ["detect", "classify"]
    assert (trained / "config.yaml").is_file()
    assert any((trained / "tb").rglob("events.out.tfevents*"))


def test_adapter_round_trips_saved_model(trained):
    from stable_baselines3 import PPO

    from lokirl.envs.features import forecast_for, observe, to_decision

    ctl = make_controller(f"ppo:{trained / 'model.zip'}")
    model = PPO.load(str(trained / "model.zip"), device="cpu")
    env = LokiServingEnv(ENV)
    env.reset(seed=5)
    for _ in range(4):
        ctx = env.context
        fc = forecast_for(ctl.spec, ctl._forecaster, ctx)
        action, _ = model.predict(observe(ctl.spec, ctx, fc).clip(0, 20), deterministic=True)
        assert ctl.decide(ctx) == to_decision(ctl.spec, action, ctx, fc)
        env.advance(ctl.decide(ctx))
    with pytest.raises(ConfigError):
        make_controller(f"ppo:{trained / 'missing.zip'}")


def test_trigger_keeps_inside_band_and_resolves_outside():
    pipe = load_pipeline("configs/pipelines/example.yaml")
    plan = solve(pipe, Cluster({"gpu": 6}), 40.0)
    cap = plan.max_demand
    t = TriggerController(low=0.6, high=0.95, headroom=1.1)
    inside = ControlContext(
        now_s=30, demand_history=(0.8 * cap,) * 30, plan=plan, time_since_solve_s=10
    )
    assert t.decide(inside) == KEEP
    above = ControlContext(
        now_s=30, demand_history=(1.2 * cap,) * 30, plan=plan, time_since_solve_s=10
    )
    d = t.decide(above)
    assert d.resolve and d.demand > 1.2 * cap
    below = ControlContext(
        now_s=30, demand_history=(0.2 * cap,) * 30, plan=plan, time_since_solve_s=10
    )
    assert t.decide(below).resolve
    soon = ControlContext(
        now_s=30, demand_history=(1.2 * cap,) * 30, plan=plan, time_since_solve_s=0.5
    )
    assert t.decide(soon) == KEEP


def test_oracle_plans_for_future_peak():
    rates = np.array([10.0] * 10 + [100.0] * 10)
    o = OracleController.for_trace(RateSeries(rates, 1.0, "x"), lookahead_s=5, headroom=1.0)
    d = o.decide(ControlContext(now_s=6.0, demand_history=(10.0,) * 6))
    assert d.resolve and d.demand == pytest.approx(100.0)


def test_compare_uses_common_random_numbers():
    env = LokiServingEnv(ENV)
    trace = RateSeries(np.concatenate([np.full(6, 20.0), np.full(6, 60.0)]), 1.0, "step")
    comp = compare(env, ["loki", "loki-5s", "oracle"], [trace], [0, 1])
    arrived = {
        c: [comp.episodes[(c, "step", s)].result.frames.arrived for s in (0, 1)]
        for c in comp.controllers
    }
    assert arrived["loki"] == arrived["loki-5s"] == arrived["oracle"]
    assert arrived["loki"][0] != arrived["loki"][1]
    solves = comp.table()
    assert solves["loki"]["solves"][0] > solves["loki-5s"]["solves"][0]
    assert mean_ci([1.0, 3.0])[0] == 2.0 and math.isnan(mean_ci([2.0])[1])  # one value: unknown
    paired = comp.paired("loki", "solves")
    assert set(paired) == {"loki-5s", "oracle"} and paired["loki-5s"][2] == 2
    assert paired["loki-5s"][0] < 0  # fewer solves than loki on each (trace, seed)
    assert len(comp.to_dict()["episodes"]) == 6
    for ep in comp.to_dict()["episodes"]:
        f = comp.episodes[(ep["controller"], ep["trace"], ep["seed"])].result.frames
        assert ep["effective_accuracy"] == pytest.approx(f.accuracy_sum / f.arrived)
        n = ep["frames"]  # the counts travel with each episode and add up
        assert n["arrived"] == f.arrived == n["on_time"] + n["late"] + n["dropped"] + n["in_flight"]
    eff = comp.paired("loki", "effective_accuracy")
    assert set(eff) == {"loki-5s", "oracle"} and eff["oracle"][2] == 2


def test_train_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("total_timesteps: 10\nppo: {learning_rat: 0.1}\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(bad)
    assert err.value.field == "ppo.learning_rat" and str(bad) in str(err.value)
    bad.write_text("env: {engine: warp}\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(bad)
    assert err.value.field == "env.engine"
    # the solve time: model, measured or seconds shorter than the epoch
    bad.write_text("env: {solver_time: 0.02}\n")
    assert load_train_config(bad).env.solver_time == 0.02
    for value in ("soon", "-1", "1.5"):
        bad.write_text(f"env: {{solver_time: {value}}}\n")
        with pytest.raises(ConfigError) as err:
            load_train_config(bad)
        assert err.value.field == "env.solver_time" and "0.02" in err.value.fix, value
    cfg = load_train_config("configs/agents/ppo.yaml", {"total_timesteps": 99})
    assert cfg.total_timesteps == 99 and cfg.env.workers == 20
    # an empty file trained on every default; a syntax error now says where
    bad.write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_train_config(bad)
    bad.write_text("env:\n  pipeline: [a\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 3, column 1 \(expected"):
        load_train_config(bad)


def test_a_bad_override_is_blamed_on_its_option(capsys):
    from lokirl.cli import main

    # it was reported as the config file's total_timesteps, with a fix naming source code
    assert main(["train", "--timesteps", "-5"]) == 2
    err = capsys.readouterr().err
    assert "--timesteps: -5: Input should be greater than 0. Fix: pass e.g. --timesteps" in err
    assert main(["train", "--name", "a/b"]) == 2
    assert "--name: a/b: " in capsys.readouterr().err


def _tiny_evaluate(trace, *extra: str, controllers: str = "loki") -> list[str]:
    """``lokirl evaluate`` argv: one seed of ``trace`` on the example pipeline, 6 workers."""
    return ["evaluate", "--controllers", controllers, "--traces", str(trace), "--seeds", "1",
            "--pipeline", "configs/pipelines/example.yaml", "--workers", "6",
            "--rescale", "none", "--no-mlflow", *extra]  # fmt: skip


def test_evaluate_cli_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,qps\n" + "\n".join(f"{i},{20 + 5 * (i % 4)}" for i in range(10)))
    assert main(_tiny_evaluate(trace, "--json", controllers="loki,trigger")) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["overall"]) == {"loki", "trigger"}
    assert 0 <= out["overall"]["loki"]["frame_violation_ratio"]["mean"] <= 1
    paired = out["paired"]
    assert paired["reference"] == "trigger" and set(paired["reward"]) == {"loki"}
    rew = out["overall"]
    diff = rew["loki"]["reward"]["mean"] - rew["trigger"]["reward"]["mean"]
    assert paired["reward"]["loki"]["mean"] == pytest.approx(diff)
    assert paired["reward"]["loki"]["pairs"] == 1
    eff = rew["loki"]["effective_accuracy"]["mean"]
    assert 0 <= eff <= 100
    assert paired["effective_accuracy"]["loki"]["pairs"] == 1
    assert main(["evaluate", "--controllers", "nope", "--traces", str(trace)]) == 2
    bad_ref = [
        "evaluate",
        "--controllers",
        "loki",
        "--reference",
        "trigger",
        "--traces",
        str(trace),
    ]
    assert main(bad_ref) == 2
    # the same trace twice would count as two traces: refused
    capsys.readouterr()
    assert main(["evaluate", "--controllers", "loki", "--traces", f"{trace},{trace}"]) == 2
    assert "listed more than once" in capsys.readouterr().err
    # a timestamp CSV with several columns is read through --column
    ts = tmp_path / "ts.csv"
    ts.write_text("ts,user\n" + "".join(f"{i / 20:.2f},u{i % 3}\n" for i in range(200)))
    args = ["evaluate", "--controllers", "loki", "--traces", str(ts), "--seeds", "1", "--json"]
    assert main([*args, "--no-mlflow", "--column", "ts", "--workers", "6", "--pipeline",
                 "configs/pipelines/example.yaml", "--rescale", "none"]) == 0  # fmt: skip
    capsys.readouterr()
    # the frozen test suite's traces are refused before any work (by name or by bytes)
    held = ["evaluate", "--controllers", "loki", "--traces", "twitter_zipf_flat_bursty"]
    assert main([*held, "--no-mlflow"]) == 2
    assert "frozen test suite" in capsys.readouterr().err


def test_evaluate_writes_progress_lines_off_a_terminal(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,qps\n" + "\n".join(f"{i},{20 + 5 * (i % 4)}" for i in range(8)))
    assert main(_tiny_evaluate(trace)) == 0
    assert "evaluate: episodes 1/1 (100%)" in capsys.readouterr().err


def test_evaluate_solver_time_reaches_the_simulator(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,qps\n" + "\n".join(f"{i},{20 + 15 * (i % 4)}" for i in range(12)))
    base = _tiny_evaluate(trace, "--json")
    rewards = {}
    for value in ("model", "0"):
        assert main([*base, "--solver-time", value]) == 0
        rewards[value] = json.loads(capsys.readouterr().out)["overall"]["loki"]["reward"]["mean"]
        saved = sorted(tmp_path.glob("evaluate__*/comparison.json"))[-1]
        config = json.loads(saved.read_text())["config"]
        assert config["solver_time"] == ("model" if value == "model" else 0.0)
        assert config["auto_unit"] is None and config["auto_range"] is None  # --rescale none
        saved.unlink()
    # free solves in force at once: no solver term in the reward, no stale plan
    assert rewards["0"] > rewards["model"]
    for bad in ("1.5", "soon", "-1"):
        assert main([*base, "--solver-time", bad]) == 2, bad
        assert "--solver-time" in capsys.readouterr().err
    # hindsight plans ahead with a known solve time: refused before any episode
    ahead = [*base, "--solver-time", "measured", "--controllers", "loki,hindsight"]
    assert main(ahead) == 2
    assert "hindsight plans its switches ahead" in capsys.readouterr().err


def test_evaluate_intervals_take_the_trace_as_the_unit():
    from lokirl.experiments.compare import Comparison

    class Ep:
        def __init__(self, reward):
            self.reward = reward

        def summary(self):
            return dict.fromkeys(METRICS, 0.0) | {"reward": self.reward}

    # two traces far apart, ten seeds of tiny noise each: the spread is the traces'
    comp = Comparison(["a", "r"], ["t1", "t2"], list(range(10)))
    for s in range(10):
        for t, effect in (("t1", -5.0), ("t2", 5.0)):
            comp.episodes[("r", t, s)] = Ep(100.0)
            comp.episodes[("a", t, s)] = Ep(100.0 + effect + 0.01 * s)
    mean, ci, pairs = comp.paired("r")["a"]
    assert pairs == 20 and mean == pytest.approx(0.045)
    assert ci > 20  # t(1) x sd of two trace means; over 20 seeds it would be ~2.4
    m, c = comp.table()["a"]["reward"]
    assert m == pytest.approx(100.045) and c > 20
    assert comp.table("t1")["a"]["reward"][1] < 0.1  # one trace: over its seeds


def test_resume_continues_training(trained, capsys):
    from stable_baselines3 import PPO

    from lokirl.agents.train import train

    cfg = tiny_config("tiny_resumed", 40)  # PPO runs whole rollouts of 32: 64 steps
    before = PPO.load(str(trained / "model.zip"), device="cpu").num_timesteps
    folder = train(cfg, resume=str(trained / "model.zip"), progress=True)
    after = PPO.load(str(folder / "model.zip"), device="cpu").num_timesteps
    assert after == before + 64
    # Off a terminal the bar draws nothing: plain lines count this run's steps, as run.
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train: steps")]
    assert lines and lines[-1].startswith("train: steps 64/64 (100%)")
    assert all("/64 " in ln for ln in lines)


def test_shipped_v1_policy_loads_and_guards_its_pipeline():
    from lokirl.core.controller import Decision

    ppo = make_controller("ppo-v1")
    tasks = ("object_detection", "car_classification", "facial_recognition")
    ctx = ControlContext(
        now_s=5.0, demand_history=(100.0,) * 5, queue_lengths={t: 0 for t in tasks}
    )
    assert isinstance(ppo.decide(ctx), Decision)
    with pytest.raises(ConfigError):
        ppo.decide(ControlContext(now_s=5.0, demand_history=(1.0,), queue_lengths={"detect": 0}))


def test_saved_policy_names_no_training_folder(trained, tmp_path):
    import zipfile

    from stable_baselines3 import PPO

    from lokirl.agents.adapter import save_policy
    from lokirl.envs.features import FeatureSpec

    model = PPO.load(str(trained / "model.zip"), device="cpu", tensorboard_log=str(tmp_path))
    spec = FeatureSpec.from_dict(json.loads((trained / "model.features.json").read_text()))
    out = save_policy(model, tmp_path / "p" / "model.zip", spec)
    with zipfile.ZipFile(out) as z:
        assert str(tmp_path) not in z.read("data").decode()
    assert PPO.load(str(out), device="cpu").tensorboard_log is None


def test_evaluate_rescale_auto_maps_social_media_onto_its_capacity_at_any_accuracy(
    capsys, tmp_path, monkeypatch
):
    from lokirl.commands.evaluate import load_traces
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.experiments.suites import capacities

    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    base = ["evaluate", "--controllers", "static", "--traces", "step_600s", "--seeds", "1",
            "--pipeline", "social_media", "--duration", "3", "--json", "--no-mlflow"]  # fmt: skip
    assert main(base) == 0
    capsys.readouterr()
    config = json.loads(next(tmp_path.glob("evaluate__*/comparison.json")).read_text())["config"]
    sm = load_pipeline("social_media")
    caps = capacities(sm, Cluster.homogeneous(sm, 20))
    assert config["auto_unit"] == "max"
    assert config["auto_range"] == pytest.approx([0.05 * caps["max"], 0.4 * caps["max"]])
    # the traces are mapped onto that range (min..max of the window played)
    args = argparse.Namespace(
        traces="step_600s", trace_format="auto", column=None, time_window=None,
        speedup=1.0, duration=None, rescale="auto",
    )  # fmt: skip
    (trace,) = load_traces(args, (100.0, 500.0))
    assert trace.rates.min() == pytest.approx(100.0) and trace.rates.max() == pytest.approx(500.0)
