"""Feature versions: version 1 pinned byte for byte; versions 2 and 3 relative to the served cluster."""

import json
from dataclasses import replace

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lokirl.core.controller import ControlContext
from lokirl.core.forecasting import Forecast
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.core.plan import Plan
from lokirl.envs.features import ClusterScale, FeatureSpec, PolicyScope, cluster_scale, observe
from lokirl.envs.serving import EnvConfig, EpisodeRandomisation, LokiServingEnv

TASKS = ("object_detection", "car_classification", "facial_recognition")

#: The shipped policy's observation of :func:`_context` (float32 bytes, hex), taken
#: before version 2 existed: version 1 must never change.
V1_PINNED = (
    "0a06623ed2b0743ecead833e32038d3e9658963efbad9f3e5f03a93ec458b23e28aebb3e8c03c53e"
    "f158ce3e55aed73eba03e13e1e59ea3e82aef33ee703fd3e42a5ef3ee65a173ff3c7fe3ea0313d3f"
    "febd0a3f08236d3e0000603f0000803f8fc2f53cd578693f9a99593fefeeee3dc3f5283f6666a63f"
    "6666e63e00002041"
)

SMALL = dict(pipeline="configs/pipelines/example.yaml", workers=6, episode_s=8)


def _context(k: float = 1.0, workers_active: int = 17) -> ControlContext:
    plan = Plan(
        "traffic_analysis",
        900.0 * k,
        (),
        expected_accuracy=87.5,
        max_demand=1100.0 * k,
        phase="accuracy",
    )
    return ControlContext(
        now_s=42.0,
        demand_history=tuple(float(300 + 37 * i) * k for i in range(20)),
        plan=plan,
        time_since_solve_s=7.0,
        last_solve_time_s=0.8,
        solving=True,
        slo_violation_ratio=0.03,
        accuracy=91.2,
        queue_lengths={
            "object_detection": int(130 * k),
            "car_classification": int(45 * k),
            "facial_recognition": int(2000 * k),
        },
        active_workers=workers_active,
    )


def _forecast(k: float = 1.0) -> Forecast:
    return Forecast((5, 30), (950.0 * k, 1010.0 * k), (1200.0 * k, 1500.0 * k))


def test_v1_observation_of_the_shipped_policy_is_pinned():
    from lokirl.agents.adapter import features_path, shipped_policy_paths

    (v1,) = shipped_policy_paths("ppo-v1") or []
    doc = json.loads(features_path(v1).read_text())
    spec = FeatureSpec.from_dict(doc)
    assert spec.version == 1 and spec.workers == 20 and spec.scope is None
    obs = observe(spec, _context(), _forecast())
    assert obs.tobytes().hex() == V1_PINNED
    # saving a version-1 spec writes what it read (no new keys)
    assert spec.to_dict() == doc


def test_v2_observation_is_relative_to_the_cluster():
    spec = FeatureSpec(TASKS, version=2)
    assert spec.workers is None and spec.demand_scale is None
    scale = ClusterScale(
        workers=20, full_capacity=200.0, max_capacity=2000.0, slo_s=0.25, max_load_time_s=0.4
    )
    obs = observe(spec, _context(), _forecast(), scale=scale)
    assert obs.shape == (spec.size,) and obs.dtype == np.float32
    # twice the cluster, twice the demand, plan and queues: the same observation but
    # the cluster-size feature (and the active share, as half as many are busy)
    big = replace(scale, workers=40, full_capacity=400.0, max_capacity=4000.0)
    obs2 = observe(spec, _context(2.0, workers_active=34), _forecast(2.0), scale=big)
    assert obs2.shape == obs.shape
    diff = np.flatnonzero(~np.isclose(obs, obs2, rtol=1e-5))
    assert list(diff) == [spec.size - 6]
    assert obs[spec.size - 6] == pytest.approx(0.5) and obs2[spec.size - 6] == pytest.approx(0.625)
    # the newest arrival over the plan's capacity; swap one-hot; load time
    assert obs[spec.history_s - 1] == pytest.approx((300 + 37 * 19) / 1100.0)
    assert list(obs[-4:-1]) == [1.0, 0.0, 0.0] and obs[-1] == pytest.approx(0.04)
    stop = observe(spec, _context(), _forecast(), scale=replace(scale, swap="stop"))
    assert list(stop[-4:-1]) == [0.0, 1.0, 0.0]
    # the size never depends on the cluster, and v2 needs a scale
    assert FeatureSpec(TASKS, version=2, history_s=8).size == spec.size - 8
    with pytest.raises(ValueError, match="scale"):
        observe(spec, _context(), _forecast())
    # without a plan rates are over the full-accuracy capacity
    bare = observe(spec, replace(_context(), plan=None), _forecast(), scale=scale)
    assert bare[spec.history_s - 1] == pytest.approx(min((300 + 37 * 19) / 200.0, 10.0))


def test_v3_observation_puts_demand_over_the_capacity_at_any_accuracy():
    v2, v3 = FeatureSpec(TASKS, version=2), FeatureSpec(TASKS, version=3)
    assert v3.size == v2.size
    scale = ClusterScale(
        workers=20, full_capacity=200.0, max_capacity=2000.0, slo_s=0.25, max_load_time_s=0.4
    )
    obs3 = observe(v3, _context(), _forecast(), scale=scale)
    # version 3 is version 2 on a cluster whose full-accuracy capacity were its largest,
    # but for the feature saying how much accuracy scaling adds (the same in both)
    as_v2 = observe(v2, _context(), _forecast(), scale=replace(scale, full_capacity=2000.0))
    added = v2.history_s + 3 * len(v2.horizons_s) + 4 + 5 + len(TASKS) + 1
    diff = np.flatnonzero(~np.isclose(obs3, as_v2, rtol=1e-6))
    assert list(diff) == [added]
    assert obs3[added] == pytest.approx(np.log2(10) / 8)
    obs2 = observe(v2, _context(), _forecast(), scale=scale)
    means = v2.history_s + 2 * len(v2.horizons_s)
    assert obs3[means] == pytest.approx(950.0 / 2000.0) and obs2[means] == pytest.approx(
        950.0 / 200
    )
    # without a plan, rates are over the capacity at any accuracy (not clipped at 10)
    bare = observe(v3, replace(_context(), plan=None), _forecast(), scale=scale)
    assert bare[v3.history_s - 1] == pytest.approx((300 + 37 * 19) / 2000.0)
    with pytest.raises(ValueError, match="version-3"):
        observe(v3, _context(), _forecast())


def test_load_unit_max_draws_loads_in_the_capacity_at_any_accuracy():
    base = dict(pipeline="social_media", workers=20, episode_s=8, traces=("gen:step",))
    env = LokiServingEnv(EnvConfig(**base, feature_version=3, load_unit="max"))
    assert env.features.version == 3 and env.features.scope.pipeline == "social_media"
    env.reset(seed=0)
    # social_media's most accurate variants miss the SLO: the two units differ widely
    assert env.max_capacity > 10 * env.hw_capacity
    assert env.load_capacity == env.max_capacity
    for seed in range(6):
        env.reset(seed=seed)
        trace = env._draw_trace()
        assert 0.8 * env.max_capacity <= trace.rates.max() <= 2.5 * env.max_capacity + 1e-6
        low = trace.rates.min()
        assert 0.1 * env.max_capacity - 1e-6 <= low <= 0.6 * env.max_capacity + 1e-6
    old = LokiServingEnv(EnvConfig(**base, feature_version=2))
    old.reset(seed=0)
    assert old.load_capacity == old.hw_capacity
    assert old._draw_trace().rates.max() <= 2.5 * old.hw_capacity + 1e-6
    with pytest.raises(ValueError, match="load_unit"):
        EnvConfig(**base, load_unit="peak")
    # the unit and the features go together
    with pytest.raises(ValueError, match="feature_version 3"):
        EnvConfig(**base, feature_version=2, load_unit="max")
    with pytest.raises(ValueError, match="feature_version 3"):
        EnvConfig(**base, feature_version=3)


def test_feature_spec_round_trips_and_refuses_unknown_versions():
    scope = PolicyScope("traffic_analysis", ("gpu",), (10, 40), ("overlap", "stop"), (0.5, 2.0))
    spec = FeatureSpec(TASKS, version=2, scope=scope)
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="version"):
        FeatureSpec(TASKS, version=4)
    with pytest.raises(ValueError, match="workers"):
        FeatureSpec(TASKS)  # version 1 needs workers and demand_scale


def test_cluster_scale_grows_with_the_cluster():
    pipe = load_pipeline("configs/pipelines/example.yaml")
    s6 = cluster_scale(pipe, Cluster.homogeneous(pipe, 6), "stop")
    s12 = cluster_scale(pipe, Cluster.homogeneous(pipe, 12))
    assert s6.workers == 6 and s6.swap == "stop" and s6.slo_s == pytest.approx(pipe.slo_ms / 1000)
    assert s6.max_load_time_s == max(v.load_time_s for v in pipe.variants())
    assert 0 < s6.full_capacity <= s6.max_capacity
    assert s12.full_capacity > s6.full_capacity


def test_one_capacity_solve_serves_the_env_the_training_checks_and_the_suites():
    from lokirl.agents.train_schema import check_full_accuracy_unit
    from lokirl.envs.features import solve_capacities
    from lokirl.errors import ConfigError
    from lokirl.experiments.suites import capacities

    sm = load_pipeline("social_media")
    ta = load_pipeline("traffic_analysis")
    sm20, ta20 = Cluster.homogeneous(sm, 20), Cluster.homogeneous(ta, 20)
    caps = solve_capacities(sm, sm20)
    # social_media's most accurate variants miss the SLO: a failed plan's sliver
    assert not caps.full_accuracy_ok and caps.max > 10 * caps.full_accuracy
    assert capacities(sm, sm20) == {
        "full_accuracy": caps.full_accuracy,
        "full_accuracy_ok": False,
        "max": caps.max,
    }
    assert cluster_scale(sm, sm20).max_capacity == caps.max
    with pytest.raises(ConfigError, match="no capacity at full accuracy"):
        check_full_accuracy_unit(sm, 20, "x.yaml")
    ok = solve_capacities(ta, ta20)
    assert ok.full_accuracy_ok and 0 < ok.full_accuracy < ok.max
    check_full_accuracy_unit(ta, 20, "x.yaml")  # traffic_analysis has the unit


def test_randomised_env_draws_clusters_per_episode():
    cfg = EnvConfig(
        **SMALL,
        feature_version=2,
        randomise=EpisodeRandomisation(
            workers=(3, 6, 12), swaps=("overlap", "stop"), load_scale=(0.5, 2.0)
        ),
    )
    env = LokiServingEnv(cfg)
    check_env(env, skip_render_check=True)
    assert env.features.scope.workers == (3, 12)
    assert env.features.scope.swaps == ("overlap", "stop")
    seen = []
    for seed in range(16):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        assert env.cluster.total == info["workers"] and env.sim.cluster.total == info["workers"]
        assert env.sim.config.swap == info["swap"] == env.scale.swap
        assert 0.5 <= info["load_scale"] <= 2.0
        top = max(v.load_time_s for v in env.base_pipeline.variants())
        assert env.scale.max_load_time_s == pytest.approx(top * info["load_scale"])
        seen.append((info["workers"], info["swap"]))
        env.step((1, 1))
    assert {w for w, _ in seen} == {3, 6, 12} and {s for _, s in seen} == {"overlap", "stop"}
    # the same seed draws the same episode; capacities are cached per cluster size
    assert env.reset(seed=3)[1] == LokiServingEnv(cfg).reset(seed=3)[1]
    assert len(env._scales) == 3 and len(env._clusters) == 3
    # options set the cluster instead
    _, info = env.reset(seed=0, options={"workers": 5, "swap": "free", "load_scale": 1.0})
    assert info == {"workers": 5, "swap": "free", "load_scale": 1.0}


def test_workers_range_and_validation():
    env = LokiServingEnv(
        EnvConfig(**SMALL, feature_version=2, randomise=EpisodeRandomisation(workers_range=(4, 7)))
    )
    sizes = {env.reset(seed=s)[1]["workers"] for s in range(12)}
    assert sizes <= {4, 5, 6, 7} and len(sizes) > 1
    with pytest.raises(ValueError, match="feature_version"):
        EnvConfig(**SMALL, randomise=EpisodeRandomisation(workers=(4, 8)))
    with pytest.raises(ValueError, match="randomise.workers_range"):
        EpisodeRandomisation(workers_range=(8, 4))
    with pytest.raises(ValueError, match="randomise.swaps"):
        EpisodeRandomisation(swaps=("warp",))
    with pytest.raises(ValueError, match="feature_version"):
        LokiServingEnv(EnvConfig(**SMALL)).reset(seed=0, options={"workers": 4})


def test_version_1_env_is_unchanged_by_default():
    env = LokiServingEnv(EnvConfig(**SMALL))
    assert env.features.version == 1 and env.scale is None
    obs, info = env.reset(seed=1)
    assert info == {"workers": 6, "swap": "overlap", "load_scale": 1.0}
    assert obs.shape == (env.features.size,)
