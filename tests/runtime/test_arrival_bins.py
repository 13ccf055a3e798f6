"""The live runtime's sub-second arrival counts (``ControlContext.arrival_bins``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from lokirl.core.controller import ARRIVAL_BIN_S
from lokirl.core.pipeline_config import load_pipeline
from lokirl.runtime.dataplane import CountRing, DataPlane
from lokirl.runtime.replicas import ReplicaSet
from tests.runtime.test_replicas import _report


def test_count_ring_keeps_the_newest_slots():
    ring = CountRing(4)
    ring.add(2, 1)
    ring.add(2, 2)
    ring.add(5, 1)
    assert [ring.get(s) for s in range(1, 7)] == [0, 3, 0, 0, 1, 0]
    ring.add(9, 4)  # slots 2 and 5 fall out of the four kept
    assert ring.get(2) == ring.get(5) == 0 and ring.get(9) == 4
    ring.add(7, 1)  # late, still kept
    ring.add(3, 1)  # too old: ignored
    assert ring.recent(10) == {7: 1, 9: 4}
    ring.clear()
    assert ring.recent(10) == {} and ring.get(9) == 0


def test_plane_bins_split_its_per_second_history(tiny_pipeline):
    plane = DataPlane(load_pipeline(tiny_pipeline), history_s=10)
    frame = np.zeros((3, 8, 8), np.uint8)
    offsets = [0.01, 0.02, 0.31, 0.32, 0.33, 0.99]

    async def main():
        for off in offsets:
            plane.now = lambda off=off: 2.0 + off  # the plane's clock, placed
            plane.new_frame(frame)

    asyncio.run(main())
    bins = plane.recent_bins(3.0, 1.0)
    assert len(bins) == round(1.0 / ARRIVAL_BIN_S)
    assert bins[0] == 2 and bins[6] == 3 and bins[19] == 1 and sum(bins) == 6
    plane.now = lambda: 3.0
    assert plane.history(3) == (0.0, 0.0, sum(bins))
    assert plane.recent_bins(2.0, 1.0) == (0.0,) * 20
    # two epochs at once (a skipped tick), and never more than the seconds kept
    assert plane.recent_bins(3.0, 2.0) == (0.0,) * 20 + bins
    assert len(plane.recent_bins(30.0, 30.0)) == round((plane.bin_seconds - 1) / ARRIVAL_BIN_S)


def test_replica_reports_add_their_bins_once(tiny_pipeline):
    plane = DataPlane(load_pipeline(tiny_pipeline))
    rt = SimpleNamespace(plane=plane, config=SimpleNamespace(replica_report_s=0.2))
    rs = ReplicaSet(rt, 1)
    rs.last, rs.queues, rs.alive, rs.applied = [None], [{}], [True], [0]
    rep = _report(3, 3, 0, {}, 0, {0: 3})
    rep["bins"] = {0: 2, 7: 1}
    rs.absorb(0, rep)
    again = dict(rep, seq=rep.get("seq", 0) + 1, bins={0: 2, 7: 2})
    rs.absorb(0, again)  # cumulative: only the new arrival in bin 7 is added
    assert plane.arrival_bins.get(0) == 2 and plane.arrival_bins.get(7) == 2


@pytest.mark.ray
def test_live_emulated_fluid_controller_models_the_arrivals(ray_local):
    from lokirl.runtime.loadgen import replay
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    k = 3.0
    rate, n = 40.0 / k, 120
    cfg = RuntimeConfig(
        pipeline="traffic_analysis",
        workers=10,
        controller="fluid(horizon=3)",
        emulate=True,
        dilation=k,
        initial_demand=rate,
        solve_in_subprocess=False,
        ping_timeout_s=30.0,
    )

    arrivals = np.cumsum(np.random.default_rng(0).exponential(1 / rate, n))

    async def main():
        rt = Runtime(cfg)
        await rt.start()
        try:
            frame = np.zeros((3, 8, 8), np.uint8)
            rt.restart_clock()
            await replay(arrivals, lambda i: rt.submit(frame), 10000)
            return rt.status(), list(rt.decisions), rt.controller
        finally:
            await rt.stop()

    status, decisions, ctl = asyncio.run(main())
    f = status["frames"]
    assert f["arrived"] == n
    assert f["arrived"] == f["on_time"] + f["late"] + sum(f["dropped"].values()) + f["in_flight"]
    assert len(decisions) >= 3
    assert not any("failed" in d["reason"] for d in decisions)
    # the arrivals of the epochs before the last tick reached the model through the
    # context's bins (half a second of slack for the replay's own lag)
    last = decisions[-1]["t"]
    before = int(np.sum(arrivals < last - 0.5))
    assert before > n / 2
    # and nothing from after the last tick (the replay's own lag as slack)
    assert before <= ctl.frames_modelled <= int(np.sum(arrivals < last + 0.5))
