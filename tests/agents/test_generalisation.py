"""A version-2 policy trained on randomised clusters serves other sizes; misfits are refused."""

import json
from dataclasses import replace

import numpy as np
import pytest

import lokirl.agents  # noqa: F401 - registers ppo
from lokirl.agents.adapter import check_policy_file, check_spec_fits, features_path
from lokirl.agents.config import load_train_config
from lokirl.agents.rollout import rollout
from lokirl.core.binding import bind_controller
from lokirl.core.controller import ControlContext, Decision
from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.envs.serving import EnvConfig, EpisodeRandomisation, LokiServingEnv
from lokirl.errors import ConfigError
from lokirl.traces import RateSeries
from tests.agents.conftest import tiny_config

TRAIN_ENV = EnvConfig(
    pipeline="traffic_analysis",
    workers=20,
    episode_s=8,
    traces=("gen:bursts", "gen:step"),
    engine="fluid",
    time_limit_s=0.2,
    demand_quantum=0.05,
    feature_version=2,
    randomise=EpisodeRandomisation(workers=(10, 40), swaps=("overlap", "stop")),
)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """A version-2 policy trained for 64 steps on 10- and 40-worker clusters."""
    import os

    os.environ["LOKIRL_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    from lokirl.agents.train import train

    return train(tiny_config("general", 64, TRAIN_ENV, n_steps=64), progress=False) / "model.zip"


def _cluster(pipeline, n):
    return Cluster.homogeneous(pipeline, n)


def test_saved_policy_records_what_it_was_trained_on(policy):
    doc = json.loads(features_path(policy).read_text())
    assert doc["version"] == 2 and doc["workers"] is None and doc["demand_scale"] is None
    assert doc["scope"] == {
        "pipeline": "traffic_analysis",
        "accelerators": ["gpu"],
        "workers": [10, 40],
        "swaps": ["overlap", "stop"],
        "load_scale": [1.0, 1.0],
    }


@pytest.mark.parametrize("workers", [10, 40])
def test_v2_policy_acts_on_other_cluster_sizes(policy, workers):
    ctl = make_controller(f"ppo:{policy}")
    env = LokiServingEnv(
        EnvConfig(pipeline="traffic_analysis", workers=workers, episode_s=10, feature_version=2)
    )
    trace = RateSeries(np.linspace(0.3, 1.2, 12) * env.hw_capacity, 1.0, "ramp")
    decisions = []

    class Recording:
        name = "recording"

        def bind(self, pipeline, cluster, swap):
            ctl.bind(pipeline, cluster, swap)

        def decide(self, context):
            d = ctl.decide(context)
            decisions.append(d)
            return d

    ep = rollout(env, lambda e: Recording(), seed=1, trace=trace)
    assert ep.steps >= 10 and len(decisions) == ep.steps
    assert ctl._scale.workers == workers
    for d in decisions:
        assert isinstance(d, Decision)
        assert not d.resolve or (np.isfinite(d.demand) and d.demand >= 0)
    t = ep.result.frames
    assert t.conserved and ep.result.subrequests.conserved
    assert t.arrived == t.on_time + t.late + t.dropped_total + t.in_flight
    assert t.arrived > 0


def test_v2_policy_drives_the_simulator_at_40_workers(policy):
    from lokirl.sim import SimConfig, simulate

    pipe = load_pipeline("traffic_analysis")
    ctl = make_controller(f"ppo:{policy}")
    trace = RateSeries(np.full(8, 1500.0), 1.0, "flat")
    res = simulate(pipe, _cluster(pipe, 40), trace, ctl, SimConfig(swap="stop"))
    assert res.solves >= 1 and res.frames.conserved


def test_v2_policy_is_refused_where_it_was_not_trained(policy):
    ctl = make_controller(f"ppo:{policy}")
    social = load_pipeline("social_media")
    traffic = load_pipeline("traffic_analysis")
    source = str(features_path(policy))
    with pytest.raises(ConfigError) as err:
        ctl.bind(social, _cluster(social, 20), "overlap")
    assert err.value.source == source and err.value.field == "tasks"
    assert "traffic_analysis" in str(err.value) and "social_media" in str(err.value)
    with pytest.raises(ConfigError) as err:
        check_policy_file(policy, social, _cluster(social, 20))  # without loading the model
    assert err.value.field == "tasks"
    with pytest.raises(ConfigError) as err:
        bind_controller(ctl, traffic, _cluster(traffic, 80), "overlap")
    assert err.value.field == "scope.workers" and "10..40" in err.value.problem
    with pytest.raises(ConfigError) as err:
        ctl.bind(traffic, _cluster(traffic, 20), "free")
    assert err.value.field == "scope.swaps"
    with pytest.raises(ConfigError) as err:
        ctl.bind(traffic, Cluster({"gpu": 10, "tpu": 10}), "overlap")
    assert err.value.field == "scope.accelerators"
    # an unbound version-2 policy does not guess the cluster
    fresh = make_controller(f"ppo:{policy}")
    ctx = ControlContext(now_s=1.0, demand_history=(100.0,), queue_lengths={})
    with pytest.raises(ConfigError) as err:
        fresh.decide(ctx)
    assert err.value.field == "bind"
    ctl.bind(traffic, _cluster(traffic, 25), "stop")  # inside the scope: accepted


def test_shipped_v1_policy_is_refused_elsewhere():
    ppo = make_controller("ppo-v1")
    traffic = load_pipeline("traffic_analysis")
    social = load_pipeline("social_media")
    ppo.bind(traffic, _cluster(traffic, 20), "overlap")
    with pytest.raises(ConfigError) as err:
        ppo.bind(traffic, _cluster(traffic, 40), "overlap")
    e = err.value
    assert e.field == "workers" and e.source.endswith("model.features.json")
    assert "exactly 20 workers, not 40" in e.problem and "--workers" not in e.problem
    assert "20 workers" in e.fix
    with pytest.raises(ConfigError) as err:
        ppo.bind(social, _cluster(social, 20), "overlap")
    assert err.value.field == "tasks" and "social_media" in err.value.problem
    # the same from the spec alone, without loading the model; other specs pass
    with pytest.raises(ConfigError) as err:
        check_spec_fits("ppo-v1", traffic, _cluster(traffic, 10))
    assert err.value.field == "workers"
    check_spec_fits("ppo-v1", traffic, _cluster(traffic, 20), "stop")
    check_spec_fits("loki", social, _cluster(social, 7))


def test_simulate_command_refuses_before_simulating(capsys, tmp_path, monkeypatch):
    from lokirl.cli import main

    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    args = ["simulate", "--controller", "loki", "--controller", "ppo", "--workers", "8"]
    code = main([*args, "--no-mlflow", "--no-plots"])
    assert code == 2
    err = capsys.readouterr()
    assert "10..100 workers, not 8" in err.err + err.out
    assert not any(tmp_path.iterdir())  # no run folder: nothing was simulated
    # Not named, the shipped policy is left out of the defaults where it does not fit.
    args = ["simulate", "--workers", "8", "--duration", "5", "--no-mlflow", "--no-plots"]
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr()
    assert "ppo left out of the default controllers" in out.err
    played = list(json.loads(out.out))  # totals by controller
    assert "ppo" not in played and "loki" in played and "trigger" in played


def test_train_config_randomise_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    cases = {
        "env: {feature_version: 2, randomise: {workers_range: [50, 10]}}": (
            "env.randomise.workers_range"
        ),
        "env: {feature_version: 2, randomise: {swaps: [overlap, warp]}}": "env.randomise.swaps.1",
        "env: {feature_version: 2, randomise: {workers: [10], workers_range: [1, 2]}}": (
            "env.randomise.workers_range"
        ),
        "env: {feature_version: 2, randomise: {load_scale: [0, 2]}}": "env.randomise.load_scale.0",
        "env: {feature_version: 2, randomise: {cores: [1]}}": "env.randomise.cores",
        "env: {randomise: {workers: [10, 20]}}": "env.randomise",
        "env: {feature_version: 4}": "env.feature_version",
    }
    for text, field in cases.items():
        bad.write_text(text + "\n")
        with pytest.raises(ConfigError) as err:
            load_train_config(bad)
        assert err.value.field == field, text
        assert str(bad) in str(err.value)
    cfg = load_train_config("configs/agents/ppo_general.yaml")
    assert cfg.env.feature_version == 2
    assert cfg.env.randomise.worker_bounds(20) == (10, 100)
    assert cfg.env.plan_library


def test_v3_social_media_policy_trains_and_serves_an_untrained_size(tmp_path, monkeypatch):
    """social_media (no capacity at full accuracy) trains with load_unit max, feature version 3."""
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    from lokirl.agents.train import train
    from lokirl.sim import SimConfig, simulate

    env = replace(
        TRAIN_ENV,
        pipeline="social_media",
        traces=("gen:bursts",),
        load_unit="max",
        load_low=(0.02, 0.12),
        load_high=(0.16, 0.5),
        feature_version=3,
        randomise=EpisodeRandomisation(workers=(10, 40)),
    )
    model = train(tiny_config("sm3", 64, env, n_steps=64), progress=False) / "model.zip"
    doc = json.loads(features_path(model).read_text())
    assert doc["version"] == 3 and doc["scope"]["pipeline"] == "social_media"
    pipe = load_pipeline("social_media")
    ctl = make_controller(f"ppo:{model}")
    probe = LokiServingEnv(replace(env, randomise=EpisodeRandomisation()))
    probe.reset(seed=0)
    trace = RateSeries(np.full(8, 0.3 * probe.max_capacity), 1.0, "flat")
    res = simulate(pipe, _cluster(pipe, 20), trace, ctl, SimConfig())
    assert ctl._scale.workers == 20 and ctl._scale.max_capacity == probe.max_capacity
    # what it sees of that demand before a plan: 0.3 of the unit (a version-2 policy
    # would see it over the full-accuracy sliver, 12 times that: clipped at 10)
    from lokirl.envs.features import forecast_for, observe

    ctx = ControlContext(now_s=8.0, demand_history=tuple(trace.rates), plan=None)
    obs = observe(ctl.spec, ctx, forecast_for(ctl.spec, ctl._forecaster, ctx), scale=ctl._scale)
    assert obs[ctl.spec.history_s - 1] == pytest.approx(0.3, rel=1e-4)
    assert res.solves >= 1 and res.frames.conserved and res.frames.on_time > 0
    ta = load_pipeline("traffic_analysis")
    with pytest.raises(ConfigError, match="social_media"):
        check_spec_fits(f"ppo:{model}", ta, _cluster(ta, 20))


@pytest.mark.parametrize("swap", ["overlap", "stop", "free"])
def test_shipped_controller_serves_each_swap_mode_with_a_policy_trained_for_it(swap):
    from lokirl.agents.adapter import features_path, load_feature_spec, shipped_policy_paths
    from lokirl.agents.policy_set import check_one_fits

    paths = [str(p) for p in shipped_policy_paths("ppo") or []]
    members = [(load_feature_spec(p), str(features_path(p))) for p in paths]
    for name in ("traffic_analysis", "social_media"):
        pipe = load_pipeline(name)
        chosen = members[check_one_fits("ppo", members, pipe, _cluster(pipe, 20), swap)][0]
        assert chosen.scope is not None and chosen.scope.pipeline == name
        assert swap in chosen.scope.swaps
        # the policy trained for overlap and stop serves those; the free-trained one free
        assert ("free" in chosen.scope.swaps) == (swap == "free")
