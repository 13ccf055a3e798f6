import math

import numpy as np
import pytest

from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.sim import ConservationError, SimConfig, Simulation, simulate
from lokirl.traces import ArrivalTrace, RateSeries
from tests.sim.conftest import (
    FixedPlanner,
    cluster,
    make_plan,
    resolve,
    single_pipeline,
    tiny_pipeline,
)


def _sim(pipeline, n_workers, arrivals, duration, *plans, **cfg):
    trace = ArrivalTrace(np.asarray(arrivals, dtype=float), name="t", duration_s=duration)
    drain, solver = cfg.pop("drain_s", 1.0), cfg.pop("solver_time", 0.0)
    config = SimConfig(drain_s=drain, solver_time=solver, **cfg)
    sim = Simulation(pipeline, cluster(n_workers), trace, config, np.random.default_rng(0))
    sim.reset()
    planner = FixedPlanner(*plans)
    sim.apply(resolve(), planner=planner)
    return sim, planner


def test_batch_takes_what_is_queued_and_pays_rounded_up_latency():
    p = single_pipeline(slo_ms=1000.0)
    sim, _ = _sim(p, 1, [0.0, 0.0, 0.0], 1.0, make_plan(p, [("s1", 4, 1)]))
    sim.run_until(0.001)
    w = sim.workers[0]
    assert w.batch is not None and len(w.batch) == 3  # 3 queued, batch size 4: takes all 3
    sim.run_until(0.0399)  # batch of 3 is served at the profiled size 4: 40 ms
    assert w.batch is not None
    sim.run_until(0.0401)
    assert w.batch is None
    r = sim.finish()
    assert r.subrequests.on_time == 3 and r.frames.on_time == 3


def test_batch_never_exceeds_batch_size():
    p = single_pipeline(slo_ms=1000.0)
    sim, _ = _sim(p, 1, [0.0] * 6, 1.0, make_plan(p, [("s1", 4, 1)]))
    sim.run_until(0.001)
    assert len(sim.workers[0].batch) == 4
    sim.run_until(0.0401)
    assert len(sim.workers[0].batch) == 2


def test_early_drop_at_queue_head():
    # One worker, batch 1, 10 ms per request, SLO 25 ms: requests 1 and 2 fit
    # (finish at 10, 20), request 3 would finish at 30 > 25: dropped with 4 and 5.
    p = single_pipeline(slo_ms=25.0)
    sim, _ = _sim(p, 1, [0.0] * 5, 1.0, make_plan(p, [("s1", 1, 1)]))
    r = sim.finish()
    assert r.subrequests.on_time == 2
    assert dict(r.subrequests.dropped) == {"deadline": 3}
    assert r.subrequests.late == 0
    assert r.frames.dropped_total == 3 and r.frames.slo_violation_ratio == pytest.approx(0.6)


def test_without_early_drop_requests_are_late():
    p = single_pipeline(slo_ms=25.0)
    sim, _ = _sim(p, 1, [0.0] * 5, 1.0, make_plan(p, [("s1", 1, 1)]), early_drop=False)
    r = sim.finish()
    assert r.subrequests.on_time == 2 and r.subrequests.late == 3
    assert r.frames.late == 3 and r.frames.dropped_total == 0


def test_deadline_boundary_is_on_time():
    # A batch of 4 takes 40 ms; SLO exactly 40 ms: finishing at the deadline is on time.
    p = single_pipeline(slo_ms=40.0)
    sim, _ = _sim(p, 1, [0.0] * 4, 1.0, make_plan(p, [("s1", 4, 1)]))
    r = sim.finish()
    assert r.subrequests.on_time == 4 and r.subrequests.dropped_total == 0


def test_branching_spawns_poisson_children_and_is_estimated():
    p = tiny_pipeline(slo_ms=1000.0, branching=3.0)
    arrivals = np.linspace(0.0, 9.9, 400)
    plan = make_plan(p, [("d1", 1, 2), ("c1", 4, 2)])
    sim, _ = _sim(p, 4, arrivals, 10.0, plan)
    r = sim.finish()
    children = r.subrequests.arrived - 400
    assert children / 400 == pytest.approx(3.0, rel=0.1)
    assert sim.estimator.mean("d1", "cls") == pytest.approx(3.0, rel=0.3)
    # Frames are on time only when all their sub-requests are.
    assert r.frames.on_time == 400 and r.subrequests.on_time == r.subrequests.arrived
    # Path accuracy: d1 (100) x c1 (100).
    assert r.accuracy == pytest.approx(100.0)


def test_accuracy_is_mean_leaf_path_accuracy():
    p = tiny_pipeline(slo_ms=1000.0, branching=2.0)
    plan = make_plan(p, [("d2", 1, 2), ("c1", 4, 2)])
    sim, _ = _sim(p, 4, np.linspace(0, 4.9, 100), 5.0, plan)
    r = sim.finish()
    assert r.accuracy == pytest.approx(50.0)  # d2 (50) x c1 (100)
    assert r.frames.accuracy == pytest.approx(50.0)


def _swap_sim(swap, arrivals=(1.1, 1.2, 1.4), workers=1, a=None, b=None):
    """s1 -> s2 (load 0.3 s) on one worker at t=1 (solver time 0)."""
    p = single_pipeline(slo_ms=10_000.0)
    a = a or make_plan(p, [("s1", 1, 1)])
    b = b or make_plan(p, [("s2", 1, 1)])
    sim, planner = _sim(p, workers, list(arrivals), 3.0, a, b, swap=swap)
    sim.run_until(1.0)
    sim.apply(resolve(), planner=planner)  # solver_time 0: in force now
    return sim


def test_stop_swap_is_down_for_the_load_and_routes_nothing_to_it():
    sim = _swap_sim("stop")
    assert sim.reconfigurations == 1
    w = sim.workers[0]
    sim.run_until(1.25)
    # loading: it serves nothing and the router sends it nothing (dropped at admission)
    assert w.loading and w.serve is None and w.batch is None
    assert all(not g.queue for g in sim.groups)
    assert sim.r_dropped == {"over_capacity": 2}
    sim.run_until(1.0 + 0.3 + 1e-6)  # s2 loads in 0.3 s
    assert not w.loading and w.serve is sim.groups[0] and w.serve.variant == "s2"
    r = sim.finish()
    assert r.reconfigurations == 1 and r.subrequests.on_time == 1
    assert r.frames.conserved and r.subrequests.conserved
    assert r.accuracy == pytest.approx(80.0)  # only s2 served


def test_overlap_swap_keeps_the_old_variant_serving_until_ready():
    sim = _swap_sim("overlap")
    w = sim.workers[0]
    sim.run_until(1.25)
    assert w.loading and w.serve.variant == "s1"  # the old variant still serves
    assert sim.table.probabilities("only", None) == {1: pytest.approx(1.0)}  # interim group
    assert sim.r_on_time == 2 and not sim.r_dropped
    sim.run_until(1.3 + 1e-6)
    assert not w.loading and w.serve is sim.groups[0] and w.serve.variant == "s2"
    assert len(sim.groups) == 1  # the interim group is gone once the new variant serves
    r = sim.finish()
    assert r.reconfigurations == 1 and r.subrequests.on_time == 3
    assert r.subrequests.dropped_total == 0 and r.frames.conserved
    assert r.accuracy == pytest.approx((100 + 100 + 80) / 3)  # s1, s1, then s2


def test_overlap_falls_back_to_stop_when_variants_do_not_fit():
    from dataclasses import replace

    p = single_pipeline(slo_ms=10_000.0)
    big = replace(p.tasks[0].variants[0], memory_mb=600.0)
    small = replace(p.tasks[0].variants[1], memory_mb=500.0)
    p = replace(p, tasks=(replace(p.tasks[0], variants=(big, small)),))
    p = replace(p, accelerator_memory_mb={"gpu": 1000.0})
    trace = ArrivalTrace(np.asarray([1.1, 1.2]), name="t", duration_s=3.0)
    cfg = SimConfig(drain_s=1.0, solver_time=0.0, swap="overlap")
    sim = Simulation(p, cluster(1), trace, cfg, np.random.default_rng(0))
    sim.reset()
    planner = FixedPlanner(make_plan(p, [("s1", 1, 1)]), make_plan(p, [("s2", 1, 1)]))
    sim.apply(resolve(), planner=planner)
    sim.run_until(1.0)
    sim.apply(resolve(), planner=planner)
    sim.run_until(1.25)
    assert sim.workers[0].loading and sim.workers[0].serve is None
    assert sim.r_dropped == {"over_capacity": 2}


def test_overlap_swap_under_load_loses_nothing_stop_drops_free_is_instant():
    # 50 frames/s on one worker (100/s at batch 1); the worker swaps s1 -> s2 at t=1.
    arrivals = np.arange(0.01, 2.0, 0.02)
    out = {}
    for mode in ("overlap", "stop", "free"):
        sim = _swap_sim(mode, arrivals)
        if mode == "free":
            assert not sim.workers[0].loading and sim.workers[0].serve.variant == "s2"
        r = sim.finish()
        assert r.frames.conserved and r.subrequests.conserved
        out[mode] = r
    assert out["overlap"].frames.dropped_total == 0 and out["overlap"].frames.on_time == 100
    assert out["free"].frames.dropped_total == 0
    # stop: the arrivals of the 0.3 s load find no serving worker (15 frames)
    assert dict(out["stop"].frames.dropped) == {"over_capacity": 15}
    # overlap serves s1 (100) for 0.3 s longer than free does
    assert out["overlap"].accuracy > out["free"].accuracy


def test_free_swap_removed_worker_drains_its_queue():
    # Two s1 workers with 20 queued requests; the new plan runs one s2 worker.
    p = single_pipeline(slo_ms=10_000.0)
    a = make_plan(p, [("s1", 1, 2)])
    b = make_plan(p, [("s2", 1, 1)])
    for mode, drains in (("free", True), ("overlap", True), ("stop", False)):
        sim = _swap_sim(mode, [0.999] * 20, workers=2, a=a, b=b)
        w0, w1 = sim.workers
        assert w0.variant == "s2" and w1.group is None
        if drains:
            assert w1.serve is not None and w1.drain is w1.serve and w1.serve.variant == "s1"
            # free: s2 serves at once; overlap: s1 (interim group 1) until s2 is loaded
            want = 0 if mode == "free" else 1
            assert sim.table.probabilities("only", None) == {want: pytest.approx(1.0)}
        else:
            assert w1.serve is None and not sim.draining
        queued = len(w1.serve.queue) if drains else 0
        r = sim.finish()
        assert r.frames.conserved and r.subrequests.conserved
        if not drains:
            # stop: the s1 queue is re-routed; the only other worker is loading, so
            # nothing can take it: dropped with a reason, never lost
            assert set(r.subrequests.dropped) == {"no_worker"}
            assert r.subrequests.on_time + r.subrequests.dropped_total == 20
            continue
        assert queued > 10
        assert r.subrequests.dropped_total == 0 and r.subrequests.on_time == 20
        assert w1.serve is None and not sim.draining
        if drains:
            assert r.accuracy > 80.0  # the drained part was served by s1 (100)


def test_batch_size_change_is_free_and_idle_workers_keep_their_variant():
    p = single_pipeline(slo_ms=10_000.0)
    a = make_plan(p, [("s1", 1, 2)])
    b = make_plan(p, [("s1", 4, 1)])
    c = make_plan(p, [("s1", 1, 2)])
    sim, planner = _sim(p, 2, [0.5], 3.0, a, b, c)
    sim.run_until(1.0)
    sim.apply(resolve(), planner=planner)
    assert sim._active() == 1 and sim.reconfigurations == 0
    sim.run_until(2.0)
    sim.apply(resolve(), planner=planner)
    assert sim._active() == 2 and sim.reconfigurations == 0


def test_solver_delay_keeps_old_plan_in_force():
    p = single_pipeline(slo_ms=10_000.0)
    a = make_plan(p, [("s1", 1, 1)])
    b = make_plan(p, [("s2", 1, 1)])
    sim, planner = _sim(p, 1, [0.5], 3.0, a, b, solver_time=0.5)
    sim.run_until(1.0)
    sim.apply(resolve(), planner=planner)
    assert sim.plan is a and sim._context().solving
    assert sim.apply(resolve(), planner=planner) is None  # a solve is pending
    sim.run_until(1.49)
    assert sim.plan is a
    sim.run_until(1.51)
    assert sim.plan is b and sim.reconfigurations == 1
    assert sim.finish().solver_time_s == pytest.approx(0.5)


def test_conservation_check_catches_lost_requests():
    p = single_pipeline(slo_ms=1000.0)
    sim, _ = _sim(p, 1, [0.0, 0.1], 1.0, make_plan(p, [("s1", 1, 1)]))
    sim.run_until(1.0)
    sim.r_on_time += 1
    with pytest.raises(ConservationError):
        sim.finish()


def test_in_flight_requests_count_towards_conservation():
    p = single_pipeline(slo_ms=10_000.0)
    sim, _ = _sim(p, 1, [0.45] * 8, 0.5, make_plan(p, [("s1", 1, 1)]), drain_s=0.0)
    r = sim.finish()
    assert r.subrequests.in_flight > 0 and r.subrequests.conserved
    assert r.frames.in_flight == r.subrequests.in_flight


@pytest.mark.parametrize("drain", [0.0, 1.0])
def test_a_request_at_the_trace_end_arrives(drain):
    # An arrival trace ends at its last request; with no drain simpy's stop at the end
    # came before it and it never arrived.
    p = single_pipeline(slo_ms=10_000.0)
    sim, _ = _sim(p, 1, [0.2, 0.4, 0.5], 0.5, make_plan(p, [("s1", 1, 1)]), drain_s=drain)
    r = sim.finish()
    assert r.frames.arrived == 3 and r.subrequests.conserved
    assert r.frames.on_time + r.frames.in_flight == 3


@pytest.fixture(scope="module")
def traffic():
    return load_pipeline("traffic_analysis"), Cluster({"gpu": 20})


def _run(traffic, seed, controller="loki-5s", rate=150.0, seconds=6):
    p, c = traffic
    trace = RateSeries(np.full(seconds, rate), name="flat")
    rng = np.random.default_rng(seed)
    return simulate(p, c, trace, make_controller(controller), SimConfig(), rng)


def test_solve_log_has_every_solve_with_its_reason(traffic):
    p, c = traffic
    rates = np.concatenate([np.full(6, 100.0), np.full(6, 600.0), np.full(6, 100.0)])
    r = simulate(
        p,
        c,
        RateSeries(rates, name="step"),
        make_controller("trigger"),
        SimConfig(),
        np.random.default_rng(0),
    )
    assert r.solves == len(r.solve_log) >= 3  # the first plan, the step up, the step down
    times = [t for t, _ in r.solve_log]
    assert times[0] == 0.0 and times == sorted(times)
    assert r.solve_log[0][1] == "first plan"
    assert {"forecast above band", "forecast below band"} <= {why for _, why in r.solve_log}
    assert sum(r.series["solves"]) == r.solves


def test_same_seed_same_run_and_other_seed_differs(traffic):
    a, b, c = _run(traffic, 1), _run(traffic, 1), _run(traffic, 2)
    assert a.totals() == b.totals()
    for k in a.series:
        np.testing.assert_array_equal(a.series[k], b.series[k])
    assert a.totals() != c.totals()


@pytest.mark.parametrize("controller", ["loki", "inferline", "proteus", "static"])
def test_every_controller_conserves_and_reports(traffic, controller):
    r = _run(traffic, 3, controller, rate=250.0, seconds=4)
    assert r.frames.conserved and r.subrequests.conserved
    assert r.frames.arrived > 800 and r.subrequests.arrived > r.frames.arrived
    assert 0.0 <= r.frame_violation_ratio <= 1.0
    assert len(r.series["t"]) == math.ceil(r.duration_s)
    assert int(r.series["arrivals"].sum()) == r.frames.arrived
    assert int(r.series["frames_done"].sum()) == r.frames.arrived - r.frames.in_flight
    assert r.mean_active_workers > 0


def test_arrival_trace_is_replayed_exactly(traffic):
    p, c = traffic
    arr = np.sort(np.random.default_rng(5).uniform(0, 3, 300))
    r = simulate(p, c, ArrivalTrace(arr, duration_s=3.0), make_controller("static"), SimConfig())
    assert r.frames.arrived == 300


def test_shared_cores_slow_batches_that_run_together():
    from lokirl.sim import SimConfig, Simulation
    from lokirl.traces import RateSeries
    from tests.sim.conftest import FixedPlanner, make_plan, resolve, single_pipeline

    p = single_pipeline(slo_ms=1000.0)
    plan = make_plan(p, [("s1", 1, 2)], demand=200.0)  # 2 workers, 10 ms per request each
    trace = RateSeries(np.full(5, 300.0), 1.0, "t")  # more than both can serve

    def served(cores, host=0.0):
        cfg = SimConfig(shared_cores=cores, host_cores=host, drain_s=0.0)
        sim = Simulation(p, Cluster({"gpu": 2}), trace, cfg, np.random.default_rng(0))
        sim.reset()
        sim.apply(resolve(200.0), planner=FixedPlanner(plan))
        while not sim.done:
            sim.step_epoch()
        t = sim.finish().subrequests
        return t.on_time + t.late  # completed (contention makes some late)

    alone, shared = served(None), served(1)
    assert alone == pytest.approx(5 * 200, rel=0.05)  # two workers at 100/s each
    assert shared == pytest.approx(5 * 100, rel=0.05)  # one core between them
    # The host's own processes keep half a core of two busy: 2 batches see 1.5 cores.
    assert served(2, 0.5) == pytest.approx(5 * 200 / 1.25, rel=0.05)
    assert served(2, 0.0) == pytest.approx(alone, rel=0.01)  # two cores: no contention
    with pytest.raises(ValueError, match="shared_cores"):
        SimConfig(shared_cores=0)
    with pytest.raises(ValueError, match="host_cores"):
        SimConfig(host_cores=-1.0)


@pytest.mark.parametrize("swap", ["overlap", "stop", "free"])
def test_swap_modes_conserve_under_a_changing_load(traffic, swap):
    p, c = traffic
    trace = RateSeries(np.array([100.0, 250.0, 400.0, 150.0]), name="ramp")
    cfg = SimConfig(swap=swap)
    r = simulate(p, c, trace, make_controller("loki"), cfg, np.random.default_rng(4))
    assert r.frames.conserved and r.subrequests.conserved
    assert r.reconfigurations > 0
    assert r.frames.arrived > 700


def test_swap_mode_is_checked():
    with pytest.raises(ValueError, match="swap mode"):
        SimConfig(swap="instant")


def test_batch_overhead_occupies_the_worker_but_not_the_drop_rule():
    # One worker, batch 1, 10 ms per request + 5 ms overhead, SLO 25 ms. The early-drop
    # rule reads the profile: request 2 starts at 15 ms, 15 + 10 <= 25, so it is sent and
    # finishes at 30 ms, late; request 3 starts at 30 > 25 - 10 and is dropped, with 4, 5.
    p = single_pipeline(slo_ms=25.0)
    sim, _ = _sim(p, 1, [0.0] * 5, 1.0, make_plan(p, [("s1", 1, 1)]), batch_overhead_s=0.005)
    r = sim.finish()
    assert r.subrequests.on_time == 1 and r.subrequests.late == 1
    assert dict(r.subrequests.dropped) == {"deadline": 3}
    assert r.frames.conserved


def test_batch_overhead_must_be_finite_and_non_negative_and_is_simpy_only():
    from lokirl.sim.fluid import FluidSimulation

    for bad in (-0.001, math.inf, math.nan):
        with pytest.raises(ValueError, match="batch_overhead_s"):
            SimConfig(batch_overhead_s=bad)
    p = single_pipeline(slo_ms=25.0)
    trace = RateSeries(np.full(3, 10.0), name="flat")
    with pytest.raises(ValueError, match="batch_overhead_s"):
        FluidSimulation(p, cluster(1), trace, SimConfig(batch_overhead_s=0.005))
