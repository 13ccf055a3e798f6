"""The hindsight controller: realised arrivals, its DP, and that it bounds the others."""

from dataclasses import replace

import numpy as np
import pytest

import lokirl.agents  # noqa: F401
from lokirl.agents.actors import actor_factory
from lokirl.agents.hindsight import (
    EpochModel,
    HindsightController,
    HindsightKnobs,
    parse_spec,
    plan_library,
    plan_schedule,
    realised_arrivals,
)
from lokirl.agents.rollout import rollout
from lokirl.core.allocator import AllocatorOptions
from lokirl.core.controller import ControlContext
from lokirl.core.controllers import make_controller
from lokirl.envs import LokiServingEnv
from lokirl.experiments.compare import compare
from lokirl.traces import RateSeries, generate, rescale
from tests.agents.conftest import ENV

OTHERS = ["loki", "loki-5s", "trigger", "oracle", "inferline", "static"]


def _trace(env: LokiServingEnv, family: str, seed: int, seconds: int = 12):
    rng = np.random.default_rng(seed)
    tr = rescale(generate(family, seconds, rng), 0.3 * env.hw_capacity, 1.5 * env.hw_capacity)
    return RateSeries(tr.rates, tr.bin_s, f"{family}-{seed}")


def _play(
    env: LokiServingEnv, spec: str, trace, cache: dict | None = None, seed: int = 0, spy=None
):
    """One episode of a hindsight ``spec``; returns its controller and the episode.

    ``spy``: called with the controller before the episode plays it (may wrap it).
    """
    holder = {}
    make = actor_factory(spec, trace, {} if cache is None else cache)

    def wrapped(e):
        holder["ctl"] = make(e)
        if spy is not None:
            spy(holder["ctl"])
        return holder["ctl"]

    ep = rollout(env, wrapped, seed, trace=trace)
    return holder["ctl"], ep


def _play_hindsight(env: LokiServingEnv, trace, cache: dict | None = None):
    """One episode of ``hindsight``; returns its controller and the episode."""
    return _play(env, "hindsight", trace, cache)


@pytest.fixture(scope="module")
def env():
    return LokiServingEnv(ENV)


def test_realised_arrivals_are_the_simulators(env):
    trace = _trace(env, "bursts", 3)
    seen = {}

    def make(e):
        seen["arr"] = realised_arrivals(trace, e.sim)
        return make_controller("static")

    ep = rollout(env, make, 4, trace=trace)
    n = len(trace.rates)
    counts = np.bincount(seen["arr"].astype(int), minlength=n)[:n]
    assert np.array_equal(counts, ep.result.series["arrivals"][:n])
    assert len(seen["arr"]) == ep.result.frames.arrived
    # Without a simulator: the expected counts.
    assert abs(len(realised_arrivals(trace)) - trace.rates.sum()) <= n


@pytest.mark.parametrize(
    ("family", "seed", "swap"),
    [("step", 6, "overlap"), ("mmpp", 9, "overlap"), ("bursts", 5, "stop")],
)
def test_hindsight_beats_every_other_controller(family, seed, swap):
    env = LokiServingEnv(replace(ENV, swap=swap))
    trace = _trace(env, family, seed)
    comp = compare(env, [*OTHERS, "hindsight"], [trace], [0])
    reward = {c: comp.episodes[(c, trace.name, 0)].reward for c in comp.controllers}
    for c in OTHERS:
        assert reward["hindsight"] >= reward[c], (c, reward)


def test_schedule_is_deterministic_within_the_library_and_replayed_exactly(env):
    trace = _trace(env, "step", 6)
    cache: dict = {}
    played = []

    def run():
        ctl, ep = _play_hindsight(env, trace, cache)
        played.append(ep)
        return ctl, ep

    a, ep_a = run()
    b, ep_b = run()
    assert a.schedule == b.schedule and [p.groups for p in a.library] == [
        p.groups for p in b.library
    ]
    assert ep_a.reward == ep_b.reward
    assert all(0 <= j < len(a.library) for j in a.schedule)
    assert len(set(a.schedule)) <= len(a.library)
    # One solve for the first plan and one per switch; each solve hands out a library plan.
    assert ep_a.result.solves == a.switches + 1
    assert ep_a.result.solves <= len(a.library) * len(a.schedule)
    # The replica's reward is the episode's: the replay mirrors the env exactly.
    assert a.replayed_reward == pytest.approx(ep_a.reward, abs=1e-9)
    # Several identical plans are kept once.
    sigs = {tuple(sorted((g.key, g.replicas) for g in p.groups)) for p in a.library}
    assert len(sigs) == len(a.library)


def test_dp_holds_through_small_gains_and_switches_for_large_ones(env):
    lib = plan_library(env.pipeline, env.cluster, [40.0, 200.0], AllocatorOptions())
    assert len(lib) == 2
    n_ep = 6

    def schedule(gain: float) -> tuple[int, ...]:
        value = np.zeros((n_ep, 2))
        value[:3, 0] = gain  # plan 0 is better in the first three epochs,
        value[3:, 1] = gain  # plan 1 in the last three
        model = EpochModel(value, np.ones((n_ep, 2)), np.ones(n_ep), np.ones(n_ep))
        w = {"violation": 1.0, "reconfiguration": 0.5, "solver": 0.1, "workers": 0.05}
        return plan_schedule(model, lib, env.pipeline, 6, 1.0, "overlap", w).plans

    assert len(set(schedule(1e-4))) == 1  # not worth a reconfiguration
    switched = schedule(1.0)
    assert (
        switched[-1] == 1
        and switched[0] == 0
        and sum(1 for x, y in zip(switched, switched[1:], strict=False) if x != y) == 1
    )


def test_registry_and_specs():
    ctl = make_controller("hindsight")
    assert isinstance(ctl, HindsightController) and ctl.name == "hindsight"
    with pytest.raises(RuntimeError, match="future"):
        ctl.decide(ControlContext(now_s=0.0, demand_history=(1.0,)))
    assert parse_spec("hindsight-g0.02-b0.2") == HindsightKnobs(grid_step=0.02, burst_s=0.2)
    assert parse_spec("hindsight-d1") == HindsightKnobs(derate=1.0)
    assert parse_spec("trigger") is None
    assert make_controller("hindsight-d0.9").knobs.derate == 0.9
    with pytest.raises(ValueError):
        HindsightKnobs(headroom=0.5)


def test_fluid_engine_plans_on_expected_arrivals_without_replay():
    env = LokiServingEnv(replace(ENV, engine="fluid"))
    trace = _trace(env, "step", 6)
    ctl, ep = _play_hindsight(env, trace)
    assert ctl.replayed_reward is None and ep.steps == len(trace.rates)


def test_local_search_never_loses_to_the_plain_replay(env):
    trace = _trace(env, "random_walk", 7)
    got = {}
    for spec in ("hindsight", "hindsight-search"):
        make = actor_factory(spec, trace, {})

        def wrapped(e, make=make, spec=spec):
            got[spec] = make(e)
            return got[spec]

        ep = rollout(env, wrapped, 0, trace=trace)
        assert got[spec].replayed_reward == pytest.approx(ep.reward, abs=1e-9)
    assert got["hindsight-search"].replayed_reward >= got["hindsight"].replayed_reward


def test_dp_charges_the_simulators_solve_time():
    env = LokiServingEnv(ENV)
    lib = plan_library(env.pipeline, env.cluster, [40.0, 200.0], AllocatorOptions())
    n_ep = 6
    value = np.zeros((n_ep, 2))
    value[:3, 0] = value[3:, 1] = 1.0
    model = EpochModel(value, np.ones((n_ep, 2)), np.ones(n_ep), np.ones(n_ep))
    w = {"violation": 1.0, "reconfiguration": 0.5, "solver": 0.1, "workers": 0.05}

    def sched(solver_time):
        return plan_schedule(model, lib, env.pipeline, 6, 1.0, "overlap", w, solver_time)

    fast, slow = sched(0.0), sched(0.9)
    # An instant solve switches when the better plan changes; one that keeps the old
    # plan in force for 0.9 s is issued an epoch early, so that the new plan's load
    # falls in the epoch the old one is still worth serving.
    assert fast.plans == (0, 0, 0, 1, 1, 1)
    assert slow.plans == (0, 0, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="repeatable"):
        sched("measured")


def test_hindsight_replays_exactly_under_a_fixed_solve_time():
    env = LokiServingEnv(replace(ENV, solver_time=0.03))
    trace = _trace(env, "step", 6)
    ctl, ep = _play_hindsight(env, trace)
    # Every solve after the first plan (in force at time 0, free) takes 0.03 s.
    assert ep.result.solves >= 2
    assert ep.result.solver_time_s == pytest.approx(0.03 * (ep.result.solves - 1))
    assert ctl.replayed_reward == pytest.approx(ep.reward, abs=1e-9)


def test_lagged_schedule_changes_plan_n_epochs_late(env):
    lib = tuple(plan_library(env.pipeline, env.cluster, [40.0, 200.0], AllocatorOptions()))
    ctl = make_controller("hindsight-lag2")
    assert isinstance(ctl, HindsightController) and ctl.lag_epochs == 2
    ctl = replace(ctl, library=lib, schedule=(0, 0, 1, 1, 0, 0, 0))

    def target(second: int, plan) -> str:
        d = ctl.decide(ControlContext(now_s=float(second), demand_history=(1.0,), plan=plan))
        return d.reason if d.resolve else "keep"

    # the DP's switch to plan 1 at epoch 2 is played at epoch 4, back to 0 at epoch 6
    assert [target(k, lib[0]) for k in range(7)] == ["keep"] * 4 + ["hindsight plan 1"] * 2 + [
        "keep"
    ]
    assert target(6, lib[1]) == "hindsight plan 0"
    assert target(0, None) == "hindsight plan 0"


def test_lagged_hindsight_plays_hindsights_schedule(env):
    trace = _trace(env, "step", 6)
    cache: dict = {}
    plain, _ = _play_hindsight(env, trace, cache)
    lagged, ep = _play(env, "hindsight-lag1", trace, cache)
    assert lagged.lag_epochs == 1 and lagged.replayed_reward is None
    assert lagged.schedule == plain.schedule
    # one epoch late: the schedule's last epoch is never reached
    played = plain.schedule[:-1]
    assert ep.result.solves == 1 + sum(a != b for a, b in zip(played, played[1:], strict=False))


def test_past_chooser_decides_on_the_epoch_just_ended_only(env):
    from lokirl.agents.hindsight import PastChooser, SwitchModel

    lib = plan_library(env.pipeline, env.cluster, [40.0, 200.0], AllocatorOptions())
    w = {"violation": 1.0, "reconfiguration": 0.5, "solver": 0.1, "workers": 0.05}
    switch = SwitchModel.build(lib, env.pipeline, env.cluster.total, 1.0, "overlap", w)
    value = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    served = np.ones((4, 2))
    arrivals = np.ones(4)
    past = PastChooser(value, served, arrivals, switch, horizon=5)
    assert past.choose(0, None) == 0  # the first epoch: the best plan for it
    assert past.choose(1, 0) == 0  # epoch 0 favoured plan 0: stay
    assert past.choose(2, 0) == 1  # epoch 1 favoured plan 1 by a lot: switch
    # the future (epochs >= the one decided) never enters a decision
    future = value.copy()
    future[2:] = [[5.0, 0.0], [5.0, 0.0]]
    assert PastChooser(future, served, arrivals, switch, 5).choose(2, 0) == 1
    assert PastChooser(future, served, arrivals, switch, 5).choose(1, 0) == 0
    assert PastChooser(future, served, arrivals, switch, 5).choose(2, None) == 1
    # one epoch of foresight scores the epoch being decided instead
    ahead = PastChooser(value, served, arrivals, switch, horizon=5, foresight=1)
    assert ahead.choose(1, 0) == 1 and ahead.choose(2, 1) == 0
    assert ahead.choose(9, 0) == 0  # past the end: the last epoch
    # a small gain held briefly does not pay for a switch
    small = np.array([[1.0, 0.0], [0.99, 1.0]])
    assert PastChooser(small, np.ones((2, 2)), np.ones(2), switch, 1).choose(2, 0) == 0


def test_past_only_hindsight_plays_an_episode(env):
    trace = _trace(env, "step", 6)
    asked = []

    def counting(ctl):
        decide = ctl.decide

        def spy(context):
            d = decide(context)
            asked.append(d.resolve)
            return d

        object.__setattr__(ctl, "decide", spy)

    ctl, ep = _play(env, "hindsight-past5", trace, spy=counting)
    assert ctl.past is not None and ctl.past.horizon == 5 and ctl.name == "hindsight-past5"
    assert ctl.schedule == () and ctl.switches == 0  # no DP schedule is planned
    # every solve is one of its own decisions (the library plan it names)
    assert ep.result.solves == sum(asked) >= 1 and np.isfinite(ep.reward)
    assert make_controller("hindsight-past3").name == "hindsight-past3"


def test_past_only_cap_library_is_fixed_by_the_cluster_not_the_trace(env):
    from lokirl.agents.hindsight import CAP_FLOOR

    libraries = []
    for family, seed in (("step", 6), ("bursts", 7)):
        trace = _trace(env, family, seed)
        libraries.append(_play(env, "hindsight-past1-cap", trace)[0].library)
    demands = [[p.demand for p in lib] for lib in libraries]
    assert demands[0] == demands[1]
    assert min(demands[0]) == pytest.approx(max(1.0, CAP_FLOOR * env.max_capacity), rel=0.05)


def test_per_second_counts_are_spread_evenly_within_their_second():
    from lokirl.agents.hindsight import spread_within_seconds

    arr = np.array([0.1, 0.9, 0.95, 2.2, 2.5, 5.0])
    out = spread_within_seconds(arr)
    assert np.array_equal(np.bincount(out.astype(int)), np.bincount(arr.astype(int)))
    assert np.allclose(out, [1 / 6, 0.5, 5 / 6, 2.25, 2.75, 5.5])
    assert spread_within_seconds(np.array([])).size == 0
    assert make_controller("hindsight-past5-cap-sec").name == "hindsight-past5-cap-sec"
    assert make_controller("hindsight-past5-cap-f1").name == "hindsight-past5-cap-f1"


def test_lead_of_a_switch_ahead_of_demand_is_counted_in_seconds():
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    path = Path(__file__).resolve().parents[2] / "scripts" / "hindsight_lead.py"
    spec = importlib.util.spec_from_file_location("hindsight_lead", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lib = [SimpleNamespace(max_demand=10.0), SimpleNamespace(max_demand=30.0)]
    quiet_then_busy = np.array([5, 5, 5, 5, 20, 20, 20, 5], dtype=float)
    # up at second 2, demand passes the old plan at second 4: two seconds ahead;
    # the way down (second 7) is not an upward switch
    assert mod.leads((0, 0, 1, 1, 1, 1, 1, 0), lib, quiet_then_busy) == [2]
    # up at second 5, after demand passed at second 4: it followed demand
    assert mod.leads((0, 0, 0, 0, 0, 1, 1, 1), lib, quiet_then_busy) == [-1]
    # never overloaded: no lead
    assert mod.leads((0, 1), lib, np.full(4, 5.0)) == [None]
    # half-second epochs: the switch at epoch 4 is issued at second 2
    assert mod.leads((0, 0, 0, 0, 1, 1), lib, quiet_then_busy, epoch_s=0.5) == [2]


def test_foresight_suffix_reaches_the_chooser(env):
    trace = _trace(env, "step", 6)
    ctl, _ = _play(env, "hindsight-past5-cap-f1", trace)
    assert ctl.past.foresight == 1 and ctl.past.horizon == 5


def test_rate_foresight_reads_the_noiseless_model(env):
    from lokirl.agents.hindsight import expected_arrivals

    arr = expected_arrivals(RateSeries(np.array([2.0, 0.0, 3.4]), 1.0, "r"), 3.0)
    assert np.allclose(arr, [0.25, 0.75, 2 + 1 / 6, 2.5, 2 + 5 / 6])
    trace = _trace(env, "bursts", 7)
    past = _play(env, "hindsight-past5-cap-r1", trace)[0].past
    assert past.foresight == 1 and past.ahead is not None
    # a separate model, on the noiseless rates rather than the realised arrivals
    assert past.ahead.value.shape == past.value.shape
    assert not np.array_equal(past.ahead.arrivals, past.arrivals)


def test_rates_bound_plans_without_the_noise(env):
    trace = _trace(env, "bursts", 7)
    rates, _ = _play(env, "hindsight-rates", trace)
    assert rates.name == "hindsight-rates" and rates.replayed_reward is None and rates.schedule
    # the same for every simulator seed: it never reads the realised arrivals
    again, _ = _play(env, "hindsight-rates", trace, seed=5)
    assert again.schedule == rates.schedule
    assert make_controller("hindsight-rates").name == "hindsight-rates"


def test_a_row_of_the_switch_values_alone_equals_that_row_of_the_matrix(env):
    from lokirl.agents.hindsight import SwitchModel

    grid = list(np.geomspace(5, env.max_capacity, 8))
    lib = plan_library(env.pipeline, env.cluster, grid, AllocatorOptions())
    w = {"violation": 1.0, "reconfiguration": 0.5, "solver": 0.1, "workers": 0.05}
    rng = np.random.default_rng(11)
    for swap in ("overlap", "stop"):
        sw = SwitchModel.build(lib, env.pipeline, env.cluster.total, 1.0, swap, w)
        assert sw.f_load.max() > 0  # switches that load spend time in transition
        vk = rng.normal(0.8, 0.2, len(lib))
        served = rng.uniform(0, 300, len(lib))
        full = sw.epoch_values(vk, served, 320.0)
        for x in range(len(lib)):
            assert np.array_equal(sw.row_values(vk, served, 320.0, x), full[x])


def test_the_replay_mirrors_the_env_at_sub_second_epochs():
    # the replay kept the env's old rule of counting a second again in a step that
    # completes none, after the env stopped: a replica reward the episode never got
    env = LokiServingEnv(replace(ENV, epoch_s=0.5))
    ctl, ep = _play_hindsight(env, _trace(env, "bursts", 5))
    assert ep.result.reconfigurations > 0
    assert ctl.replayed_reward == pytest.approx(ep.reward, abs=1e-9)
