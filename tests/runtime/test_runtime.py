"""End-to-end tests of the live runtime on a small local Ray (tiny CNNs, 16x16 inputs)."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import replace

import numpy as np
import pytest

from lokirl.core.controller import KEEP, ControlContext, Decision

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def _actors_import_test_helpers():
    """Let worker actors import this folder's helpers (``slow_model``) by name.

    Autouse, module scope: it runs before the module's Ray starts, whose worker
    processes inherit ``PYTHONPATH``.
    """
    from pathlib import Path

    here = str(Path(__file__).parent)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


class KeepController:
    """Never re-solves on its own (the tests change plans by hand)."""

    name = "keep"

    def decide(self, context: ControlContext) -> Decision:
        return KEEP


def _frame(i: int = 0) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 255, (3, 16, 16)).astype(np.uint8)


def _runtime(pipeline: str, workers: int = 2, **kw):
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    kw.setdefault("solve_in_subprocess", False)  # one test below solves in a subprocess
    cfg = RuntimeConfig(pipeline=pipeline, workers=workers, initial_demand=5.0, epoch_s=0.5, **kw)
    return Runtime(cfg, controller=KeepController())


def _check_conserved(rt) -> None:
    ft, st = rt.plane.frame_tally(), rt.plane.sub_tally()
    assert ft.conserved and st.conserved
    assert ft.in_flight == 0 and st.in_flight == 0
    assert ft.arrived == ft.on_time + ft.late + ft.dropped_total
    assert st.arrived == st.on_time + st.late + st.dropped_total


async def _send(rt, n: int, gap_s: float = 0.01) -> list[dict]:
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(rt.submit(_frame(i))))
        await asyncio.sleep(gap_s)
    return await asyncio.gather(*tasks)


def _serve(make_runtime, n: int) -> tuple:
    """Build a runtime in the event loop, start it, send ``n`` frames, stop it.

    Returns:
        (runtime, results).

    """

    async def main():
        rt = make_runtime()
        await rt.start()
        try:
            return rt, await _send(rt, n)
        finally:
            await rt.stop()

    return asyncio.run(main())


def test_two_stage_end_to_end(ray_local, tiny_pipeline):
    rt, results = _serve(lambda: _runtime(tiny_pipeline), 30)
    assert all(r["outcome"] == "on_time" for r in results), results
    assert {"det-large"} <= {v for r in results for v in r["variants"]}
    assert any("cls-large" in r["variants"] for r in results)
    assert all(r["accuracy_source"] == "profile" for r in results)
    _check_conserved(rt)
    st = rt.plane.sub_tally()
    assert st.arrived > 30  # sub-requests were spawned
    assert rt.plane.accuracy == pytest.approx(100.0)
    assert all(lt["load_s"] > 0 for lt in rt.load_times)


def test_plan_change_swaps_variant_without_losing_requests(ray_local, tiny_pipeline):
    async def main():
        rt = _runtime(tiny_pipeline)
        await rt.start()
        try:
            plan = rt.plane.plan
            det = next(g for g in plan.groups if g.task == "detect")
            small = rt.pipeline.variant("det-small")
            new_det = replace(det, variant="det-small", accuracy=small.accuracy)
            new_plan = replace(plan, groups=[new_det if g is det else g for g in plan.groups])
            sender = asyncio.create_task(_send(rt, 40))
            await asyncio.sleep(0.15)
            before = rt.reconfigurations
            swapped = await rt.install(new_plan)
            # counted when the swap starts, as in the simulator (the load is still running)
            assert rt.reconfigurations - before == len(swapped)
            assert any(w.status == "loading" for w in rt.plane.workers)
            results = await sender
            more = await _send(rt, 10)
        finally:
            await rt.stop()
        return rt, swapped, results + more

    rt, swapped, results = asyncio.run(main())
    assert len(swapped) == 1  # only the detector's worker changed variant
    assert all(r["outcome"] == "on_time" for r in results), [
        r for r in results if r["outcome"] != "on_time"
    ]
    assert any("det-small" in r["variants"] for r in results[-10:])
    _check_conserved(rt)
    assert rt.plane.frame_tally().dropped_total == 0


def test_killed_worker_leads_to_replan(ray_local, tiny_pipeline):
    async def main():
        # Not replaced here (test_health.py tests that): the re-plan uses the 2 left.
        rt = _runtime(tiny_pipeline, workers=3, solve_in_subprocess=True, replace_workers=False)
        await rt.start()
        try:
            await _send(rt, 10)
            victim = next(w for w in rt.plane.workers if w.group is not None)
            pid = await asyncio.wrap_future(victim.actor.pid.remote().future())
            solves_before = rt.solves
            os.kill(pid, signal.SIGKILL)
            await _send(rt, 40, gap_s=0.02)
            for _ in range(300):  # the re-plan installs within a few epochs, then loads
                loading = any(w.status == "loading" for w in rt.plane.workers)
                if rt.solves > solves_before and not rt.solving and not loading:
                    break
                await asyncio.sleep(0.1)
            after = await _send(rt, 20)
        finally:
            await rt.stop()
        return rt, victim, solves_before, after

    rt, victim, solves_before, after = asyncio.run(main())
    assert victim.status == "dead"
    assert rt.solves > solves_before
    assert rt.plane.plan.active_workers <= 2
    assert all(r["outcome"] == "on_time" for r in after), after
    _check_conserved(rt)


class FlakyController:
    """Raises on every other tick; re-solves on none."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, context: ControlContext) -> Decision:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("controller bug")
        return KEEP


def test_controller_tick_that_raises_is_survived(ray_local, tiny_pipeline):
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    async def main():
        cfg = RuntimeConfig(
            pipeline=tiny_pipeline,
            workers=2,
            initial_demand=5.0,
            epoch_s=0.2,
            solve_in_subprocess=False,
        )
        ctl = FlakyController()
        rt = Runtime(cfg, controller=ctl)
        await rt.start()
        try:
            await asyncio.sleep(1.0)
            results = await _send(rt, 10)
            ticks = len(rt.tick_ms)
        finally:
            await rt.stop()
        return rt, ctl, results, ticks

    rt, ctl, results, ticks = asyncio.run(main())
    assert ctl.calls >= 4 and ticks >= 4  # the loop kept ticking
    assert rt.tick_errors >= 2
    assert all(r["outcome"] == "on_time" for r in results), results
    _check_conserved(rt)


def test_dead_idle_worker_found_by_health_check(ray_local, tiny_pipeline):
    async def main():
        rt = _runtime(tiny_pipeline, workers=3, health_check_s=0.3)
        await rt.start()
        try:
            await _send(rt, 5)
            victim = rt.plane.workers[-1]
            pid = await asyncio.wrap_future(victim.actor.pid.remote().future())
            solves_before = rt.solves
            os.kill(pid, signal.SIGKILL)
            for _ in range(60):  # no traffic: only the health check can notice
                if victim.status == "dead" and rt.solves > solves_before and not rt.solving:
                    break
                await asyncio.sleep(0.1)
            after = await _send(rt, 10)
        finally:
            await rt.stop()
        return rt, victim, solves_before, after

    rt, victim, solves_before, after = asyncio.run(main())
    assert victim.status == "dead"
    assert rt.health_checks >= 1
    assert rt.solves > solves_before
    assert all(r["outcome"] == "on_time" for r in after), after
    _check_conserved(rt)


def _slow_planner_module(monkeypatch):
    """Import tests/runtime/slow_planner.py by a name a spawned process can import too."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("slow_planner")


def test_solve_in_subprocess_keeps_ingress_serving(ray_local, tiny_pipeline, monkeypatch):
    import time

    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    mod = _slow_planner_module(monkeypatch)
    # A chunk that holds the GIL for >= 0.3 s here: in a thread of the ingress it
    # would stall the event loop that long, again and again.
    chunk = 1_000_000
    t0 = time.perf_counter()
    mod.hold_gil(0.0, chunk)
    sum(range(chunk))
    per = time.perf_counter() - t0
    chunk = int(chunk * max(1.0, 0.3 / max(per, 1e-6)))
    ctl = mod.SlowPlanner(hold_s=0.0, chunk=chunk)

    async def main():
        cfg = RuntimeConfig(
            pipeline=tiny_pipeline,
            workers=2,
            initial_demand=5.0,
            epoch_s=0.2,
            solve_in_subprocess=True,
        )
        rt = Runtime(cfg, controller=ctl)
        await rt.start()
        lags: list[float] = []

        async def probe() -> None:
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - t - 0.01)

        try:
            first_pid = rt.last_solve_pid
            solves = rt.solves
            ctl.hold_s, ctl.want = 2.5, True  # the next solve holds its process's GIL 2.5 s
            for _ in range(50):
                if rt.solving:
                    break
                await asyncio.sleep(0.05)
            assert rt.solving
            prober = asyncio.create_task(probe())
            results = await _send(rt, 30, gap_s=0.02)
            still_solving = rt.solving
            prober.cancel()
            for _ in range(100):  # the slow plan comes back and is installed
                if rt.solves > solves and not rt.solving:
                    break
                await asyncio.sleep(0.1)
        finally:
            await rt.stop()
        return rt, first_pid, results, still_solving, lags

    rt, first_pid, results, still_solving, lags = asyncio.run(main())
    assert first_pid is not None and first_pid != os.getpid()  # the first plan, too
    assert rt.last_solve_pid not in (None, os.getpid())
    assert rt.solves == 2 and rt.solves_in_process == 2
    assert rt.solver_inner_s >= 2.5
    assert still_solving  # the frames below were served while the slow solve ran
    assert all(r["outcome"] == "on_time" for r in results), results
    assert max(lags) < 0.25, max(lags)  # the event loop was never held for a GIL chunk
    _check_conserved(rt)


def test_unpicklable_planner_solves_in_a_thread(ray_local, tiny_pipeline, monkeypatch):
    import threading

    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    mod = _slow_planner_module(monkeypatch)
    ctl = mod.SlowPlanner()
    ctl.lock = threading.Lock()  # cannot be pickled

    cfg = RuntimeConfig(
        pipeline=tiny_pipeline, workers=2, initial_demand=5.0, solve_in_subprocess=True
    )
    rt, results = _serve(lambda: Runtime(cfg, controller=ctl), 5)
    assert rt.solves == 1 and rt.solves_in_process == 0 and rt.process_pool is None
    assert rt.last_solve_pid == os.getpid()
    assert all(r["outcome"] == "on_time" for r in results), results


#: Seconds the small detector takes to load in the swap tests.
SLOW_LOAD_S = 1.5


def _slow_swap_pipeline(tiny_pipeline: str, tmp_path) -> str:
    """The tiny pipeline with ``det-small`` loading slowly (``SLOW_LOAD_S``)."""
    import yaml

    spec = yaml.safe_load(open(tiny_pipeline).read())
    spec["runtime"]["models"]["det-small"] = {
        "source": "slow_model:slow_cnn",
        "kwargs": {"load_s": SLOW_LOAD_S},
    }
    path = tmp_path / "tiny_slow.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _swap_under_load(pipeline: str, swap: str) -> tuple:
    """Swap the detector's worker det-large -> det-small while frames keep arriving.

    Returns:
        (runtime, [(admitted at, result)], install time, load completion time).

    """

    async def main():
        rt = _runtime(pipeline, swap=swap)
        await rt.start()
        sent: list = []
        try:
            plan = rt.plane.plan
            det = next(g for g in plan.groups if g.task == "detect")
            small = rt.pipeline.variant("det-small")
            new_det = replace(det, variant="det-small", accuracy=small.accuracy)
            new_plan = replace(plan, groups=[new_det if g is det else g for g in plan.groups])

            async def one(i):
                at = rt.plane.now()
                return at, await rt.submit(_frame(i))

            tasks = []
            for i in range(130):  # 2.6 s of frames; the swap starts at 0.3 s
                if i == 15:
                    t_install = rt.plane.now()
                    swapped = await rt.install(new_plan)
                    assert len(swapped) == 1
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(0.02)
            sent = await asyncio.gather(*tasks)
        finally:
            await rt.stop()
        loads = [x for x in rt.load_times if x["variant"] == "det-small"]
        assert len(loads) == 1
        return rt, sent, t_install, loads[0]["t"]

    return asyncio.run(main())


def test_overlap_swap_keeps_old_variant_serving_while_the_new_one_loads(
    ray_local, tiny_pipeline, tmp_path
):
    rt, sent, t_install, t_ready = _swap_under_load(
        _slow_swap_pipeline(tiny_pipeline, tmp_path), "overlap"
    )
    assert t_ready - t_install >= SLOW_LOAD_S * 0.9
    # no request lost to the loading worker: every frame on time
    assert all(r["outcome"] == "on_time" for _, r in sent), [
        r for _, r in sent if r["outcome"] != "on_time"
    ]
    during = [r for at, r in sent if t_install + 0.05 < at < t_ready - 0.05]
    after = [r for at, r in sent if at > t_ready + 0.2]
    assert len(during) > 30 and len(after) > 10
    # the old variant serves until the new one is ready, then the new one
    assert all("det-large" in r["variants"] and "det-small" not in r["variants"] for r in during)
    assert all("det-small" in r["variants"] and "det-large" not in r["variants"] for r in after)
    _check_conserved(rt)
    assert rt.plane.frame_tally().dropped_total == 0


def test_stop_swap_routes_nothing_to_the_loading_worker(ray_local, tiny_pipeline, tmp_path):
    rt, sent, t_install, t_ready = _swap_under_load(
        _slow_swap_pipeline(tiny_pipeline, tmp_path), "stop"
    )
    during = [r for at, r in sent if t_install + 0.05 < at < t_ready - 0.05]
    after = [r for at, r in sent if at > t_ready + 0.2]
    assert len(during) > 30 and len(after) > 10
    # the detector's only worker is loading: frames are refused at admission, none
    # waits at (or times out on) the loading worker
    assert all(r["outcome"] == "dropped" and r["reason"] == "over_capacity" for r in during)
    assert all(r["outcome"] == "on_time" and "det-small" in r["variants"] for r in after)
    assert set(rt.plane.frame_tally().dropped) == {"over_capacity"}
    _check_conserved(rt)


def test_worker_loads_beside_the_old_variant_and_switches():
    """The actor side of an overlap swap, without Ray: two variants, then one."""
    from lokirl.runtime.worker import Worker

    src = {"source": "lokirl.runtime.models:tiny_cnn", "input_size": 16}
    w = Worker(0, device="cpu")
    w.load("a", src, {"c": 1.0})
    res = w.load("b", {**src, "kwargs": {"depth": 2}}, {}, keep_old=True)
    assert res["kept_old"] and w.variant == "a" and w.pending.keys() == {"b"}
    assert w.infer([_frame()], "a")["variant"] == "a"
    out = w.infer([_frame()], "b")
    assert out["variant"] == "b" and out["counts"] == {}  # b's branching, not a's
    assert w.switch("b") == {"variant": "b"} and not w.pending
    with pytest.raises(RuntimeError, match="no variant a"):
        w.infer([_frame()], "a")
    # a plain load frees the current variant first
    assert not w.load("a", src)["kept_old"] and w.variant == "a"


def test_free_swap_counts_the_worker_at_once(ray_local, tiny_pipeline, tmp_path):
    # The authors' assumption live: the router counts the loading worker at once and
    # its requests wait for the load (1.5 s, inside the 3 s SLO here).
    rt, sent, t_install, t_ready = _swap_under_load(
        _slow_swap_pipeline(tiny_pipeline, tmp_path), "free"
    )
    during = [r for at, r in sent if t_install + 0.05 < at < t_ready - 0.05]
    assert len(during) > 30
    assert all(r["outcome"] == "on_time" for _, r in sent)
    assert all("det-small" in r["variants"] for r in during)
    _check_conserved(rt)


def test_the_first_plans_solve_time_is_not_in_the_controllers_context(ray_local, tiny_pipeline):
    """As in the simulator, where the first plan takes no solve time."""
    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.sim import SimConfig, Simulation
    from lokirl.traces import RateSeries

    async def main():
        rt = _runtime(tiny_pipeline)
        await rt.start()
        try:
            return rt.solves, rt.solver_wall_s, rt.context()
        finally:
            await rt.stop()

    solves, wall, ctx = asyncio.run(main())
    assert solves == 1 and wall > 0.0  # the first solve is counted and timed
    assert ctx.last_solve_time_s == 0.0 and not ctx.solving
    sim = Simulation(
        load_pipeline(tiny_pipeline), Cluster({"cpu": 2}), RateSeries(np.full(5, 5.0), name="flat"),
        SimConfig(initial_demand=5.0, solver_time="measured"),
    )  # fmt: skip
    sim.apply(make_controller("static").decide(sim.reset()))
    assert sim._context(initial=False).last_solve_time_s == ctx.last_solve_time_s
