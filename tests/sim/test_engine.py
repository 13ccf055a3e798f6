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


def test_reconfiguration_downtime_and_count():
    p = single_pipeline(slo_ms=10_000.0)
    a = make_plan(p, [("s1", 1, 1)])
    b = make_plan(p, [("s2", 1, 1)])
    sim, planner = _sim(p, 1, [1.1, 1.2], 3.0, a, b)
    sim.run_until(1.0)
    sim.apply(resolve(), planner=planner)  # solver_time 0: in force now
    assert sim.reconfigurations == 1
    w = sim.workers[0]
    sim.run_until(1.25)
    assert w.loading and w.batch is None and len(sim.groups[0].queue) == 2
    sim.run_until(1.0 + 0.3 + 0.0045)  # s2 loads in 0.3 s, then serves a batch (4 ms)
    assert not w.loading
    r = sim.finish()
    assert r.reconfigurations == 1 and r.subrequests.on_time == 2


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


@pytest.fixture(scope="module")
def traffic():
    return load_pipeline("traffic_analysis"), Cluster({"gpu": 20})


def _run(traffic, seed, controller="loki-5s", rate=150.0, seconds=6):
    p, c = traffic
    trace = RateSeries(np.full(seconds, rate), name="flat")
    rng = np.random.default_rng(seed)
    return simulate(p, c, trace, make_controller(controller), SimConfig(), rng)


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
