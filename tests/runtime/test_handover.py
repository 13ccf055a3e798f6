"""The live data plane hands workers over to a new plan exactly as the simulator does."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from lokirl.core.pipeline import Cluster
from lokirl.runtime.dataplane import DataPlane, Frame, Req, WorkerState
from lokirl.sim import SimConfig, Simulation
from lokirl.traces import ArrivalTrace
from tests.sim.conftest import make_plan, tiny_pipeline

N = 6


def _engines(p, n: int, swap: str = "overlap", duration_s: float = 10.0):
    """The simulator and a live data plane over ``n`` empty workers, nothing installed."""
    trace = ArrivalTrace(np.asarray([duration_s - 0.1]), name="t", duration_s=duration_s)
    sim = Simulation(p, Cluster({"gpu": n}), trace, SimConfig(swap=swap))
    sim.reset()
    plane = DataPlane(p, accelerator="gpu")
    for i in range(n):
        plane.workers.append(WorkerState(i, None))
    return sim, plane


def _start(p, n: int, groups: list[tuple[str, int, int]]):
    """Both engines with a first plan (``overlap``) installed and its loads done at 1 s."""
    sim, plane = _engines(p, n)
    first = make_plan(p, groups)
    sim._install(first, instant=False)
    for w in plane.install(first, swap="overlap"):
        plane.worker_ready(w)
    sim.run_until(1.0)
    return sim, plane


def _sim_state(sim: Simulation) -> list[tuple]:
    return [(w.variant, None if w.group is None else w.group.gid, w.loading) for w in sim.workers]


def _live_state(plane: DataPlane) -> list[tuple]:
    return [
        (w.variant, None if w.group is None else w.group.gid, w.status == "loading")
        for w in plane.workers
    ]


def test_live_and_simulated_handovers_agree_worker_by_worker():
    p = tiny_pipeline()
    plans = [
        make_plan(p, [("d1", 1, 2), ("c1", 1, 2)]),  # two workers stay empty
        make_plan(p, [("d2", 1, 1), ("c1", 1, 1)]),  # d2 goes to an empty worker
        # d2 x 3: two more workers for d2, taken from those out of the plan in worker
        # order (a worker holding d1 before an empty one), before the loads finish.
        make_plan(p, [("d2", 1, 3), ("c1", 1, 1)]),
        make_plan(p, [("d1", 1, 1), ("d2", 1, 1), ("c1", 1, 2)]),
    ]
    sim, plane = _engines(p, N)
    t = 0.0
    installed = []
    for k, plan in enumerate(plans):
        sim._install(plan, instant=False)
        to_load = plane.install(plan, swap="overlap")
        installed.append(_live_state(plane))
        assert installed[-1] == _sim_state(sim), f"plan {k}, as installed"
        if k == 1:
            continue  # the next plan arrives while these loads are in flight
        t += 1.0  # longer than any load
        sim.run_until(t)
        for w in to_load:
            plane.worker_ready(w)
        for w in plane.workers:  # loads still in flight from an earlier plan
            if w.status == "loading":
                plane.worker_ready(w)
        assert _live_state(plane) == _sim_state(sim), f"plan {k}, loads done"
    # The case this test is about: the second plan put d2 on an empty worker (4); the
    # third took worker 0 (holding d1, out of the plan) and worker 1 for d2, not the
    # empty worker 5, while worker 4's load was still in flight.
    assert installed[1][4] == ("d2", 0, True) and installed[1][0] == ("d1", None, False)
    assert installed[2][0][0] == "d2" and installed[2][1][0] == "d2"
    assert installed[2][5] == (None, None, False)


@pytest.mark.parametrize("swap", ["overlap", "stop"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_plan_sequences_hand_over_alike(swap, seed):
    p = tiny_pipeline()
    rng = np.random.default_rng(seed)
    sim, plane = _engines(p, N, swap, duration_s=100.0)
    t = 0.0
    for k in range(12):
        d1, d2 = rng.integers(0, 3, size=2)
        d1 = max(d1, 1 - d2)  # at least one detector replica
        c1 = rng.integers(1, N - d1 - d2 + 1)
        groups = [(v, 1, int(n)) for v, n in (("d1", d1), ("d2", d2), ("c1", c1)) if n]
        if rng.random() < 0.3 and groups[0][2] > 1:  # two groups of one variant
            v, b, n = groups[0]
            groups[0:1] = [(v, b, 1), (v, 2, n - 1)]
        plan = make_plan(p, groups)
        sim._install(plan, instant=False)
        plane.install(plan, swap=swap)
        sim_state = [
            (w.variant, None if w.group is None else w.group.gid, w.loading, _served(w.serve))
            for w in sim.workers
        ]
        live_state = [
            (
                w.variant,
                None if w.group is None else w.group.gid,
                w.status == "loading",
                _served(w.serving),
            )
            for w in plane.workers
        ]
        assert live_state == sim_state, f"seed {seed}, plan {k}: {groups}"
        if rng.random() < 0.6:  # the loads finish before the next plan
            t += 1.0
            sim.run_until(t)
            for w in plane.workers:
                if w.status == "loading":
                    plane.worker_ready(w)


def _served(g) -> str | None:
    return None if g is None else g.variant


def test_a_worker_left_out_drains_an_old_group_that_overlap_workers_keep_serving():
    p = tiny_pipeline()
    sim, plane = _start(p, 4, [("d1", 1, 2), ("c1", 1, 2)])
    # Requests wait at the d1 group when the next plan drops d1: worker 0 swaps to d2
    # and keeps serving d1 meanwhile (overlap), so that group stays as an interim group;
    # worker 1 leaves the plan and drains it too.
    for groups in (sim.plan_groups, plane.plan_groups):
        next(g for g in groups if g.variant == "d1").queue.extend(["r1", "r2", "r3"])
    second = make_plan(p, [("d2", 1, 1), ("c1", 1, 2)])
    sim._install(second, instant=False)
    plane.install(second, swap="overlap")
    sim_state = [(w.variant, w.loading, _served(w.serve), _served(w.drain)) for w in sim.workers]
    live_state = [
        (w.variant, w.status == "loading", _served(w.serving), _served(w.drain))
        for w in plane.workers
    ]
    assert live_state == sim_state
    assert live_state[:2] == [("d2", True, "d1", None), ("d1", False, "d1", "d1")]


def test_a_queue_moved_to_a_group_whose_workers_load_waits_for_them():
    p = tiny_pipeline()

    async def main() -> None:
        sim, plane = _start(p, 3, [("c1", 1, 2), ("d1", 1, 1)])
        loop = asyncio.get_running_loop()
        # Worker 2 loads d2 and keeps serving d1 (an interim group) meanwhile.
        second = make_plan(p, [("d2", 1, 1), ("c1", 1, 2)])
        sim._install(second, instant=False)
        plane.install(second, swap="overlap")
        sim.interim[("d1", "gpu")].queue.extend(["r1", "r2", "r3"])
        now = plane.now()
        for i in range(3):
            frame = Frame(i, now, now + 10.0, None, loop.create_future())
            frame.outstanding = 1
            plane.interim[("d1", "gpu")].queue.append(Req(frame, "det", None, plane.epoch, 1.0))
        # d1 comes back: worker 1 loads it; the waiting requests move to its group
        # and wait for the load in both engines (the live plane re-routed them, and
        # with no d1 worker serving yet dropped them as no_worker).
        third = make_plan(p, [("d1", 1, 1), ("c1", 1, 1)])
        sim._install(third, instant=False)
        plane.install(third, swap="overlap")
        sim_q = [(g.variant, len(g.queue)) for g in sim.plan_groups]
        live_q = [(g.variant, len(g.queue)) for g in plane.plan_groups]
        assert live_q == sim_q == [("d1", 3), ("c1", 0)]
        assert plane.subs.dropped == {} and plane.frames.dropped == {}
        assert plane.workers[1].status == "loading" and plane.workers[1].variant == "d1"
        assert plane.reap() == 0  # the tick's reaper leaves them to the load too

    asyncio.run(main())


def test_an_interim_group_that_stops_serving_is_stale_for_its_batches_in_flight():
    p = tiny_pipeline()
    sim, plane = _start(p, 4, [("d1", 1, 2), ("c1", 1, 2)])
    second = make_plan(p, [("d2", 1, 1), ("c1", 1, 2)])
    sim._install(second, instant=False)
    loading = plane.install(second, swap="overlap")
    old_sim, old_live = sim.interim[("d1", "gpu")], plane.interim[("d1", "gpu")]
    assert old_live.epoch == plane.epoch  # serving, through the current rows
    sim.run_until(2.0)  # the d2 load completes: the interim d1 group leaves the view
    for w in loading:
        plane.worker_ready(w)
    assert ("d1", "gpu") not in plane.interim and ("d1", "gpu") not in sim.interim
    assert old_sim.version == -1 and old_live.epoch == -1


def test_a_plan_for_another_accelerator_is_refused_before_anything_changes():
    p = tiny_pipeline()
    plane = DataPlane(p, accelerator="cpu")
    plane.workers.append(WorkerState(0, None))
    with pytest.raises(ValueError, match="solve the plan for a cluster of cpu workers"):
        plane.install(make_plan(p, [("d1", 1, 1)]))
    assert plane.epoch == 0 and plane.workers[0].group is None
