from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import lokirl.envs  # noqa: F401 - registers the id
from lokirl.core.controller import KEEP, ControlContext
from lokirl.core.forecasting import Forecast
from lokirl.envs import ENV_ID, FeatureSpec, LokiServingEnv, observe, to_decision
from lokirl.traces import RateSeries

SMALL = dict(
    pipeline="configs/pipelines/example.yaml",
    workers=6,
    episode_s=12,
    traces=("gen:bursts", "gen:step"),
)


@pytest.fixture(scope="module")
def env():
    return LokiServingEnv(**SMALL)


def test_check_env_passes(env):
    check_env(env, skip_render_check=True)


def test_registered_id_has_time_limit():
    e = gym.make(ENV_ID, **SMALL)
    assert e.spec.max_episode_steps == 120
    obs, _ = e.reset(seed=3)
    assert e.observation_space.contains(obs)
    e.close()


def _rollout(seed, actions):
    e = LokiServingEnv(**SMALL)
    obs, _ = e.reset(seed=seed)
    out = [obs]
    rewards = []
    for a in actions:
        obs, r, term, trunc, info = e.step(a)
        out.append(obs)
        rewards.append(r)
        if term:
            break
    return np.array(out), np.array(rewards), e.sim.finish()


def test_same_seed_rollouts_are_identical():
    actions = [(i % 3, i % 5) for i in range(10)]
    o1, r1, res1 = _rollout(7, actions)
    o2, r2, res2 = _rollout(7, actions)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    assert res1.totals() == res2.totals()
    o3, _, _ = _rollout(8, actions)
    assert not np.array_equal(o1, o3)


def test_resolving_costs_solves_and_keeping_does_not(env):
    trace = RateSeries(np.full(40, 30.0), 1.0, "flat")
    env.reset(seed=1, options={"trace": trace})
    solves = [env.step((0, 1))[4]["solves"] for _ in range(3)]
    assert solves == [0, 0, 0]
    info = env.step((1, 2))[4]
    assert info["solves"] == 1 and info["solver_s"] >= 0
    # conservation holds whatever the policy did
    res = env.sim.finish()
    assert res.frames.conserved and res.subrequests.conserved


def test_reward_penalises_violations():
    # far more demand than the cluster carries: violations, a much lower reward than light load
    e = LokiServingEnv(**SMALL)
    e.reset(seed=0, options={"trace": RateSeries(np.full(40, 10.0), 1.0, "light")})
    light = sum(e.step((0, 1))[1] for _ in range(8))
    e.reset(seed=0, options={"trace": RateSeries(np.full(40, 5000.0), 1.0, "flood")})
    heavy = [e.step((0, 1)) for _ in range(8)]
    assert sum(h[1] for h in heavy) < light
    assert max(h[4]["violation_ratio"] for h in heavy) > 0.5


def test_features_and_decisions():
    spec = FeatureSpec(tasks=("a", "b"), workers=10, demand_scale=100.0, headrooms=(1.0, 1.5))
    fc = Forecast((5, 30), (50.0, 60.0), (70.0, 80.0))
    ctx = ControlContext(now_s=10.0, demand_history=(40.0,) * 20, queue_lengths={"a": 50})
    obs = observe(spec, ctx, fc)
    assert obs.shape == (spec.size,) and obs.dtype == np.float32
    assert obs[spec.history_s - 1] == pytest.approx(0.4)
    # without a plan every action solves the first plan
    d = to_decision(spec, (0, 0), ctx, fc)
    assert d.resolve and d.demand == pytest.approx(50.0)
    from lokirl.core.plan import Plan

    ctx2 = ControlContext(now_s=10.0, demand_history=(40.0,), plan=Plan("p", 50.0, ()))
    assert to_decision(spec, (0, 1), ctx2, fc) == KEEP
    warm = to_decision(spec, (1, 1), ctx2, fc)
    cold = to_decision(spec, (2, 1), ctx2, fc)
    assert warm.warm_start and not cold.warm_start
    assert warm.demand == pytest.approx(75.0)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_fluid_engine_env_passes_check_env_and_is_deterministic():
    e = LokiServingEnv(**SMALL, engine="fluid")
    check_env(e, skip_render_check=True)
    runs = []
    for _ in range(2):
        obs, _ = e.reset(seed=11)
        seq = [obs]
        for a in [(0, 0), (1, 2), (0, 0), (2, 4), (0, 1)] * 2:
            obs, r, *_ = e.step(a)
            seq += [obs, np.array([r])]
        runs.append(np.concatenate(seq))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert e.sim.finish().frames.conserved
    with pytest.raises(ValueError, match="engine"):
        LokiServingEnv(**SMALL, engine="warp")


def test_forecast_tracker_matches_a_replay_and_recovers_from_gaps():
    from lokirl.envs.features import ForecastTracker, forecast_for
    from lokirl.forecast import make_forecaster

    spec = FeatureSpec(tasks=("a",), workers=4, demand_scale=100.0, forecaster="ewma")
    fc = make_forecaster("ewma")
    tracker = ForecastTracker(spec, fc)
    rng = np.random.default_rng(0)
    arrivals = list(rng.poisson(50, 40).astype(float))

    def ctx(now, hist):
        return ControlContext(now_s=float(now), demand_history=tuple(hist), plan=None)

    for s in range(1, 30):
        c = ctx(s, arrivals[:s])
        assert tracker(c) == forecast_for(spec, fc, c)
    # A jump back in time (another run) is not a continuation: replayed afresh.
    c = ctx(3, arrivals[10:13])
    assert tracker(c) == forecast_for(spec, fc, c)
    # A sliding window carries on from the kept state.
    c1, c2 = ctx(20, arrivals[5:20]), ctx(21, arrivals[6:21])
    tracker(c1)
    moved = tracker(c2)
    assert moved != forecast_for(spec, fc, c2)  # remembers arrivals[5]
    assert moved == forecast_for(spec, fc, ctx(21, arrivals[5:21]))


def test_fallback_action_follows_the_fallback_controller():
    import lokirl.agents  # noqa: F401 - registers trigger
    from lokirl.envs.features import FOLLOW

    e = LokiServingEnv(**SMALL, fallback="trigger")
    check_env(e, skip_render_check=True)
    assert e.action_space.nvec[0] == 4
    assert e.observation_space.shape == (e.features.size,)
    obs, _ = e.reset(seed=2)
    for _ in range(10):
        hint = e.hint
        assert hint is not None
        assert obs[-1] == (1.0 if hint.resolve else 0.0)
        decision = to_decision(e.features, (FOLLOW, 0), e.context, e.forecast, hint)
        assert decision == hint
        obs, *_ = e.step((FOLLOW, 0))
    plain = LokiServingEnv(**SMALL)
    assert plain.action_space.nvec[0] == 3
    assert plain.features.size == e.features.size - 1


def test_plan_cache_keys_the_running_plan_when_churn_depends_on_it():
    from lokirl.core.allocator import AllocatorOptions, solve
    from lokirl.core.controller import Decision
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.envs.serving import _CachedPlanner
    from lokirl.sim.solving import running_plan_signature

    p = load_pipeline("configs/pipelines/example.yaml")
    c = Cluster.homogeneous(p, 6)
    plain = AllocatorOptions(warm_start=False)
    a, b = solve(p, c, 300.0, plain), solve(p, c, 400.0, plain)
    assert a.replicas_by_accelerator() != b.replicas_by_accelerator()
    # A cold solve with a churn term depends on the running plan: it stays near it.
    churn = AllocatorOptions(warm_start=False, churn_weight=5.0)
    planner = _CachedPlanner(quantum=0.05, size=16)
    d = Decision(resolve=True, demand=300.0, warm_start=False)
    from_a = planner.plan(p, c, d, churn, a)
    from_b = planner.plan(p, c, d, churn, b)
    assert planner.misses == 2 and planner.hits == 0
    assert from_a.replicas_by_accelerator() == a.replicas_by_accelerator()
    assert from_b.replicas_by_accelerator() == b.replicas_by_accelerator()
    assert planner.plan(p, c, d, churn, a) is from_a and planner.hits == 1
    # Warm solves depend on it too; a cold solve without churn does not.
    assert running_plan_signature(a, AllocatorOptions(warm_start=True)) is not None
    assert running_plan_signature(a, plain) is None
    planner.plan(p, c, d, plain, a)
    planner.plan(p, c, d, plain, b)
    assert planner.misses == 3 and planner.hits == 2


def test_follow_without_a_running_plan_installs_the_fallbacks_first_plan():
    import lokirl.agents  # noqa: F401 - registers trigger
    from lokirl.envs.features import FOLLOW, RESOLVE_WARM

    e = LokiServingEnv(**SMALL, fallback="periodic(period_s=1,headroom=1.6,com=0.5)")
    e.reset(seed=3, options={"defer_first_plan": True})
    assert e.context.plan is None
    hint = e.hint
    assert hint is not None and hint.resolve
    # the residual policy starts as its fallback: the first plan is the fallback's ...
    assert to_decision(e.features, (FOLLOW, 0), e.context, e.forecast, hint) == hint
    # ... while its own re-solve kinds plan with the policy's headroom
    own = to_decision(e.features, (RESOLVE_WARM, 0), e.context, e.forecast, hint)
    assert own.resolve and own != hint
    # a fallback that would not solve: the first plan is still solved, by the policy
    keep = replace(hint, resolve=False)
    first = to_decision(e.features, (FOLLOW, 0), e.context, e.forecast, keep)
    assert first.resolve


def test_reset_installs_the_fallbacks_first_plan(monkeypatch):
    from lokirl.envs import serving

    made = []

    def spy(*args, **kwargs):
        made.append(to_decision(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(serving, "to_decision", spy)
    e = LokiServingEnv(**SMALL, fallback="periodic(period_s=1,headroom=1.6,com=0.5)")
    e.reset(seed=5)
    # the first plan is the fallback's decision (its reason), not the policy's own solve
    assert len(made) == 1 and made[0].resolve and made[0].reason.startswith("period")
    made.clear()
    LokiServingEnv(**SMALL).reset(seed=5)
    assert len(made) == 1 and made[0].reason.startswith("policy: warm")


def test_a_model_based_fallback_is_bound_and_installs_its_own_plans():
    import lokirl.agents  # noqa: F401 - registers fluid
    from lokirl.envs.features import FOLLOW

    e = LokiServingEnv(**SMALL, fallback="fluid(horizon=3)")
    e.reset(seed=4)
    library = e._fallback.library
    assert library  # bound to the env's pipeline and cluster at reset
    assert any(e.context.plan is p for p in library)  # its first plan, not a re-solve
    for _ in range(6):
        e.step((FOLLOW, 0))
        assert any(e.context.plan is p for p in library)
    assert e._fallback.frames_modelled > 0


@pytest.mark.parametrize("engine", ["simpy", "fluid"])
def test_sub_second_epochs_count_each_second_once(engine):
    # at 0.25 s a step, three of four steps complete no whole second: they repeat the
    # last second's ratios but count none of its frames or reconfigurations again
    e = LokiServingEnv(**{**SMALL, "epoch_s": 0.25, "engine": engine})
    rates = np.r_[np.full(5, 15.0), np.full(7, 120.0)]  # a step up: the re-solve reconfigures
    e.reset(seed=2, options={"trace": RateSeries(rates, 1.0, "step")})
    done = reconf = 0.0
    rewards = []
    for i in range(40):
        obs, r, term, _, info = e.step((1, i % 2) if i % 8 == 0 else (0, 1))
        done += info["frames_done"]
        reconf += info["reconfigured_share"] * e.cluster.total
        rewards.append(r)
        if term:
            break
    sim = e.sim
    assert sim.sec_done >= 8
    assert done == pytest.approx(float(sim.s_frames_done[: sim.sec_done].sum()))
    assert reconf == pytest.approx(float(sim.s_reconf[: sim.sec_done].sum()))
    assert done > 0 and reconf > 0 and all(np.isfinite(rewards))


def test_a_batch_overhead_slows_the_simulated_batches_and_is_refused_where_unmodelled():
    trace = RateSeries(np.full(20, 60.0), 1.0, "flat")

    def played(overhead):
        e = LokiServingEnv(**SMALL, batch_overhead_s=overhead)
        e.reset(seed=3, options={"trace": trace})
        assert e.sim.config.batch_overhead_s == overhead
        for _ in range(10):
            e.step((0, 1))
        return e.sim.finish()

    plain, slow = played(0.0), played(0.05)
    assert plain.frames.arrived == slow.frames.arrived  # the same arrivals
    assert slow.frames.conserved
    # the same plan, each batch held 50 ms longer: frames finish later
    assert slow.frames.on_time < plain.frames.on_time
    with pytest.raises(ValueError, match="fluid engine does not model"):
        LokiServingEnv(**SMALL, engine="fluid", batch_overhead_s=0.004)
    with pytest.raises(ValueError, match="batch_overhead_s"):
        LokiServingEnv(**SMALL, batch_overhead_s=-0.001)
