"""What the live runtime hands its controller reads as the simulator's does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lokirl.core.pipeline import Cluster
from lokirl.runtime.dataplane import DataPlane, GroupState, WorkerState
from lokirl.sim import SimConfig, Simulation
from lokirl.sim.engine import _Group
from lokirl.traces import ArrivalTrace
from tests.sim.conftest import make_plan, tiny_pipeline


def test_violations_and_accuracy_are_over_the_last_window_not_the_whole_run():
    plane = DataPlane(tiny_pipeline())
    plane.frames.on_time, plane.leaf_on_time, plane.leaf_acc_sum = 100, 100, 9000.0
    assert plane.recent_window() == (0.0, 90.0)
    # The next window: 10 frames, 2 late, 1 dropped; 8 leaves at accuracy 50.
    plane.frames.on_time += 7
    plane.frames.late += 2
    plane.frames.dropped["deadline"] = 1
    plane.leaf_on_time += 8
    plane.leaf_acc_sum += 8 * 50.0
    violation, accuracy = plane.recent_window()
    assert violation == pytest.approx(0.3)
    assert accuracy == pytest.approx(50.0)  # the whole run's would be about 87.0
    assert plane.accuracy == pytest.approx(9400.0 / 108)
    assert plane.recent_window() == (0.0, 0.0)  # nothing finished since


def test_with_no_demand_estimate_the_table_is_built_for_the_plans_demand():
    p = tiny_pipeline()
    plan = make_plan(p, [("d1", 1, 1), ("d2", 1, 1), ("c1", 4, 1)], demand=40.0)
    plane = DataPlane(p, accelerator="gpu")
    for i in range(3):
        plane.workers.append(WorkerState(i, None))
    for w in plane.install(plan, swap="overlap", demand=40.0):
        plane.worker_ready(w)
    at_plan = plane.table.probabilities("det", None)
    plane.rebuild(0.0)  # a tick after seconds with no arrivals
    assert plane.table.probabilities("det", None) == at_plan
    # The simulator, with no estimate yet, routes the same way.
    trace = ArrivalTrace(np.asarray([9.9]), name="t", duration_s=10.0)
    sim = Simulation(p, Cluster({"gpu": 3}), trace, SimConfig(swap="overlap"))
    sim.reset()
    sim._install(plan, instant=True)
    assert sim.table.probabilities("det", None) == at_plan
    assert max(at_plan.values()) == 1.0  # most accurate first: d1 takes all 40 frames/s


def test_a_batch_beyond_the_largest_profiled_size_costs_the_same_in_both_engines():
    p = tiny_pipeline()  # c1 profiled at batch sizes 1, 4 and 8 (50 ms)
    g = replace(make_plan(p, [("c1", 8, 1)]).groups[0], batch_size=16)  # a hand-written plan
    sim_group, live_group = _Group(0, 1, g, p), GroupState(0, 1, g, p, 0.0)
    for n in (1, 3, 8, 12, 16):
        assert sim_group.lat[n] * 1000.0 == pytest.approx(live_group.service_ms(n)), n
    assert live_group.service_ms(16) == pytest.approx(100.0)
