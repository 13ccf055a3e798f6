"""Batch formation of the live data plane, without Ray: a burst is spread as in the simulator."""

from __future__ import annotations

import asyncio
import concurrent.futures
from types import SimpleNamespace

import numpy as np

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.runtime.dataplane import DataPlane, Frame, Req, WorkerState


class _SlowActor:
    """Answers each batch after ``delay_s`` on the running loop; logs (time, size) per batch."""

    def __init__(self, log: list[tuple[float, int]], delay_s: float) -> None:
        self.log = log
        self.delay_s = delay_s
        self.infer = SimpleNamespace(remote=self._remote)

    def _remote(self, frames: list, variant: str) -> SimpleNamespace:
        loop = asyncio.get_running_loop()
        self.log.append((loop.time(), len(frames)))
        fut: concurrent.futures.Future = concurrent.futures.Future()
        answer = {"variant": variant, "service_ms": 1.0, "worker_ms": 1.0, "counts": {}}
        loop.call_later(self.delay_s, fut.set_result, answer)
        return SimpleNamespace(future=lambda: fut)


def test_a_burst_goes_to_as_many_idle_workers_as_it_fills(tiny_pipeline):
    pipeline = load_pipeline(tiny_pipeline)
    plan = solve(pipeline, Cluster({"cpu": 6}), 800.0, AllocatorOptions())
    det = next(g for g in plan.groups if g.task == "detect")
    assert det.replicas == 2 and det.batch_size == 4  # the case this test is about
    log: list[tuple[float, int]] = []

    async def main() -> None:
        plane = DataPlane(pipeline)
        plane.early_drop = False
        for i in range(sum(g.replicas for g in plan.groups)):
            plane.workers.append(WorkerState(i, _SlowActor(log, 0.5)))
        for w in plane.install(plan, swap="free"):
            plane.worker_ready(w)
        loops = [asyncio.create_task(plane.worker_loop(w)) for w in plane.workers]
        await asyncio.sleep(0.01)
        g = next(gs for gs in plane.groups if gs.task == "detect")
        now = plane.now()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(8):  # two full batches at once (a parent batch's children)
            frame = Frame(i, now, now + 10.0, np.zeros((3, 4, 4), np.uint8), loop.create_future())
            frame.outstanding = 1
            g.queue.append(Req(frame, "detect", None, plane.epoch, 1.0))
        plane._wake_idle(g)  # what routing does: wake one idle worker
        await asyncio.sleep(0.1)  # well before any batch answers (0.5 s)
        plane.closed = True
        for t in loops:
            t.cancel()
        # Both detect workers took a full batch at once; none waited for an answer.
        assert [n for _t, n in log] == [4, 4]
        assert all(t - t0 < 0.1 for t, _n in log)
        assert plane.batch_tally == {det.variant: {4: 2}}
        # Each was an idle worker woken by routing: the wake-to-dispatch wait is recorded.
        assert len(plane.wake_ms) == 2
        assert all(0.0 <= ms < 100.0 for _t, ms in plane.wake_ms)
        assert all(w.woken_at is None for w in plane.workers)

    asyncio.run(main())
