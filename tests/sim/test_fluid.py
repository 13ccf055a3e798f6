"""The fluid surrogate against the simpy engine, on small instances of both."""

import numpy as np
import pytest

from lokirl.core.allocator import solve
from lokirl.sim import SimConfig, Simulation
from lokirl.sim.fluid import FluidSimulation
from lokirl.traces import ArrivalTrace, RateSeries
from tests.sim.conftest import FixedPlanner, cluster, make_plan, resolve, tiny_pipeline


def _play(cls, pipeline, n_workers, rates, decisions, planner=None, seed=0, swap="overlap"):
    """Play ``rates`` with ``decisions[epoch]`` (None: keep) and return the result."""
    trace = RateSeries(np.asarray(rates, dtype=float), 1.0, "t")
    cfg = SimConfig(swap=swap)
    sim = cls(pipeline, cluster(n_workers), trace, cfg, np.random.default_rng(seed))
    sim.reset()
    epoch = 0
    sim.apply(decisions[0], planner=planner)
    while not sim.done:
        sim.step_epoch()
        epoch += 1
        d = decisions[epoch] if epoch < len(decisions) else None
        if d is not None and not sim.done:
            sim.apply(d, planner=planner)
    return sim.finish()


def test_light_load_is_served_on_time_at_the_plan_accuracy():
    p = tiny_pipeline(slo_ms=200.0)
    demand = 20.0
    rates = [demand] * 30
    fluid = _play(FluidSimulation, p, 4, rates, [resolve(demand)])
    simpy_ = _play(Simulation, p, 4, rates, [resolve(demand)])
    assert fluid.frame_violation_ratio < 0.01
    assert simpy_.frame_violation_ratio < 0.01
    assert fluid.accuracy == pytest.approx(simpy_.accuracy, abs=0.5)
    assert fluid.frames.arrived == pytest.approx(simpy_.frames.arrived, rel=0.1)


def test_overload_violations_track_the_simpy_engine():
    p = tiny_pipeline(slo_ms=200.0)
    plan = make_plan(p, [("d1", 4, 1), ("c1", 8, 1)], demand=30.0)
    rates = [30.0] * 10 + [400.0] * 20
    fluid = _play(FluidSimulation, p, 2, rates, [resolve()], FixedPlanner(plan))
    simpy_ = _play(Simulation, p, 2, rates, [resolve()], FixedPlanner(plan))
    assert simpy_.frame_violation_ratio > 0.5
    assert fluid.frame_violation_ratio == pytest.approx(simpy_.frame_violation_ratio, abs=0.1)
    assert fluid.sub_violation_ratio == pytest.approx(simpy_.sub_violation_ratio, abs=0.1)


@pytest.mark.parametrize("swap", ["stop", "overlap", "free"])
def test_reconfiguration_costs_the_same_workers_and_downtime(swap):
    p = tiny_pipeline(slo_ms=200.0)
    first = make_plan(p, [("d1", 2, 2), ("c1", 8, 2)], demand=40.0)
    second = make_plan(p, [("d2", 2, 2), ("c1", 8, 2)], demand=40.0)
    rates = [40.0] * 20
    decisions = [resolve()] + [None] * 9 + [resolve()]
    out = {}
    for cls in (FluidSimulation, Simulation):
        res = _play(cls, p, 4, rates, decisions, FixedPlanner(first, second), swap=swap)
        out[cls.__name__] = res
        assert res.reconfigurations == 2  # both detector workers change variant
        assert res.series["reconfigurations"][10] == 2
        assert res.frames.conserved and res.subrequests.conserved
    f, s = out["FluidSimulation"].series, out["Simulation"].series
    assert f["frame_violations"][:10].sum() == 0
    if swap == "stop":
        # Both detectors load for 0.25 s: that second loses frames in both engines.
        assert f["frame_violations"][10] > 5 and s["frame_violations"][10] > 5
    else:
        # The old detector serves until the new one is loaded (or the swap is free).
        assert f["frame_violations"][10] == 0 and s["frame_violations"][10] == 0
    # after the swap both engines serve at d2's accuracy (50)
    assert f["accuracy"][12] == pytest.approx(50.0) and s["accuracy"][12] == pytest.approx(50.0)


def test_same_seed_same_series_and_counts_add_up():
    p = tiny_pipeline(slo_ms=200.0)
    rates = list(np.linspace(10, 150, 25))
    runs = [
        _play(FluidSimulation, p, 4, rates, [resolve(60.0)] + [None] * 11 + [resolve(150.0)])
        for _ in range(2)
    ]
    for key in ("arrivals", "frame_violations", "sub_done", "accuracy"):
        np.testing.assert_array_equal(runs[0].series[key], runs[1].series[key])
    for tally in (runs[0].frames, runs[0].subrequests):
        assert tally.conserved
        assert tally.arrived > 0


def test_plans_from_the_allocator_and_bad_step():
    p = tiny_pipeline(slo_ms=200.0)
    plan = solve(p, cluster(4), 50.0)
    res = _play(FluidSimulation, p, 4, [50.0] * 10, [resolve(50.0)])
    assert res.solves == 1
    assert res.mean_active_workers == pytest.approx(plan.active_workers, abs=0.01)
    trace = RateSeries(np.ones(3), 1.0, "t")
    with pytest.raises(ValueError, match="dt"):
        FluidSimulation(p, cluster(2), trace, SimConfig(epoch_s=1.0), dt=2.0)


def test_sub_request_accuracy_is_the_fluid_mean_over_the_rounded_count():
    # the tally's on-time count is rounded; its accuracy must stay the fluid mean
    # (a sum left unrounded read up to 100.08 on an all-100 path)
    p = tiny_pipeline(slo_ms=200.0)
    plan = make_plan(p, [("d1", 4, 1), ("c1", 8, 1)], demand=30.0)
    trace = RateSeries(np.asarray([33.3] * 7 + [400.0] * 6, dtype=float), 1.0, "t")
    sim = FluidSimulation(p, cluster(2), trace, SimConfig(), np.random.default_rng(0))
    sim.reset()
    sim.apply(resolve(), planner=FixedPlanner(plan))
    while not sim.done:
        sim.step_epoch()
    res = sim.finish()
    subs = res.subrequests
    assert subs.on_time > 0 and subs.on_time != pytest.approx(sim.r_on_time, abs=1e-6)
    assert subs.accuracy == pytest.approx(sim.r_acc_sum / sim.r_on_time, rel=1e-12)


@pytest.mark.parametrize("drain", [0.0, 2.0])
def test_a_request_at_the_trace_end_arrives_as_in_simpy(drain):
    p = tiny_pipeline(slo_ms=200.0)
    arrivals = np.asarray([0.25, 1.5, 2.0, 3.0])  # the trace ends at its last request
    out = {}
    for cls in (FluidSimulation, Simulation):
        trace = ArrivalTrace(arrivals, name="t")
        sim = cls(p, cluster(2), trace, SimConfig(drain_s=drain), np.random.default_rng(0))
        sim.reset()
        sim.apply(resolve(2.0), planner=None)
        while not sim.done:
            sim.step_epoch()
        out[cls] = sim.finish()
    assert out[FluidSimulation].frames.arrived == out[Simulation].frames.arrived == 4
