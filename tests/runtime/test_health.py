"""Self-healing, health endpoints, input limits and start-up refusals of the live runtime.

Fault tests stop (SIGSTOP) or kill (SIGKILL) one worker actor's process under load
and check that the runtime finds it within 3 s, takes it out of service, replaces
its actor and re-plans, and that every frame is accounted for.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lokirl.core.controller import KEEP, ControlContext, Decision
from lokirl.errors import ConfigError

HERE = Path(__file__).parent


class KeepController:
    """Never re-solves on its own (re-plans come from the runtime's self-healing)."""

    name = "keep"

    def decide(self, context: ControlContext) -> Decision:
        return KEEP


def _frame(i: int = 0) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 255, (3, 16, 16)).astype(np.uint8)


def _check_conserved(rt) -> None:
    ft, st = rt.plane.frame_tally(), rt.plane.sub_tally()
    assert ft.in_flight == 0 and st.in_flight == 0
    assert ft.arrived == ft.on_time + ft.late + ft.dropped_total
    assert st.arrived == st.on_time + st.late + st.dropped_total


def _metric_values(body: bytes) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------- faults
@pytest.mark.ray
@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["sigstop", "sigkill"])
def test_failed_worker_is_found_replaced_and_replanned(ray_local, tiny_pipeline, sig):
    import httpx

    from lokirl.runtime.app import create_app
    from lokirl.runtime.metrics import render_metrics
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    cfg = RuntimeConfig(
        pipeline=tiny_pipeline,
        workers=3,
        initial_demand=20.0,
        epoch_s=0.25,
        solve_in_subprocess=False,
        health_check_s=0.5,
        ping_timeout_s=1.5,
    )

    async def main():
        rt = Runtime(cfg, controller=KeepController())
        app = create_app(rt)
        transport = httpx.ASGITransport(app=app)
        out: dict = {"ready": [], "health": []}
        pid = None
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await rt.start()
            try:
                victim = next(w for w in rt.plane.workers if w.group and w.group.task == "detect")
                pid = await asyncio.wrap_future(victim.actor.pid.remote().future())
                stop = asyncio.Event()
                results: list = []

                async def load():  # ~30 frames/s until told to stop
                    tasks, i = [], 0
                    while not stop.is_set():
                        tasks.append(asyncio.create_task(rt.submit(_frame(i))))
                        i += 1
                        await asyncio.sleep(0.033)
                    results.extend(await asyncio.gather(*tasks))

                sender = asyncio.create_task(load())
                await asyncio.sleep(1.0)
                solves = rt.solves
                t_sig = time.monotonic()
                os.kill(pid, sig)
                while victim.status != "dead" and time.monotonic() - t_sig < 10:
                    await asyncio.sleep(0.02)
                out["detect_s"] = time.monotonic() - t_sig
                r = await client.get("/readyz")
                out["ready"].append((r.status_code, r.json()))
                out["health"].append((await client.get("/healthz")).status_code)
                while time.monotonic() - t_sig < 40:
                    rec = rt.recoveries[-1] if rt.recoveries else {}
                    if "replanned_s" in rec and not rt.solving:
                        break
                    await asyncio.sleep(0.05)
                out["recovered_s"] = time.monotonic() - t_sig
                await asyncio.sleep(0.5)
                t_after = rt.plane.now()
                await asyncio.sleep(1.5)
                stop.set()
                await sender
                r = await client.get("/readyz")
                out["ready"].append((r.status_code, r.json()))
                out["solves"] = rt.solves - solves
                out["t_after"] = t_after
                out["tail"] = results[-30:]  # the last second, after the recovery
                out["metrics"] = render_metrics(rt)[0]
            finally:
                await rt.stop()
                if pid is not None and _alive(pid):  # never leave a stopped process behind
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
        return rt, victim, out

    rt, victim, out = asyncio.run(main())
    print(
        f"{signal.Signals(sig).name}: detected in {out['detect_s']:.2f} s, "
        f"recoveries {rt.recoveries}"
    )
    assert victim.status == "dead" and victim.failure
    assert out["detect_s"] < 3.0, out["detect_s"]
    kind = "hung" if sig == signal.SIGSTOP else "died"
    assert rt.worker_failures.get(kind, 0) >= 1, rt.worker_failures
    # /readyz said so while the worker was down; /healthz stayed ok
    code, body = out["ready"][0]
    assert code == 503 and f"worker {victim.wid}" in body["reason"], body
    assert out["health"] == [200]
    # replaced (a new actor in the same slot) and re-planned on it
    assert rt.replacements >= 1
    new = next(w for w in rt.plane.workers if w.wid == victim.wid)
    assert new is not victim and new.status != "dead" and new.restarts == 1
    assert "replanned_s" in rt.recoveries[0], rt.recoveries
    assert out["solves"] >= 2  # once on the workers left, once with the new actor
    assert out["ready"][-1][0] == 200, out["ready"][-1]
    # every frame accounted for; the failure's frames were dropped with a reason
    _check_conserved(rt)
    ft = rt.plane.frame_tally()
    assert set(ft.dropped) <= {"worker_failed", "no_worker", "over_capacity", "timeout", "deadline"}
    assert ft.on_time > 0
    assert sum(r["outcome"] == "on_time" for r in out["tail"]) >= 27, out["tail"]
    # metrics: the outcome counters and in-flight gauge sum to the arrivals
    m = _metric_values(out["metrics"])
    outcomes = sum(v for (n, _), v in m.items() if n == "lokirl_frames_total")
    assert outcomes + m[("lokirl_frames_in_flight", ())] == m[("lokirl_frames_arrived_total", ())]
    assert m[("lokirl_frames_arrived_total", ())] == ft.arrived
    assert m[("lokirl_worker_replacements_total", ())] >= 1
    assert any(n == "lokirl_frame_latency_seconds_count" for n, _ in m)
    for name in ("stage_latency", "queue_wait"):
        assert m[(f"lokirl_{name}_seconds_count", (("task", "detect"),))] > 0
    assert any(n == "lokirl_batch_service_seconds_bucket" for n, _ in m)


def _slow_planner(monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(HERE))  # a spawned solver imports it by name too
    return importlib.import_module("slow_planner")


@pytest.mark.ray
def test_hung_solve_is_abandoned_and_the_next_tick_solves(ray_local, tiny_pipeline, monkeypatch):
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    mod = _slow_planner(monkeypatch)
    ctl = mod.SlowPlanner(hold_s=0.0)
    cfg = RuntimeConfig(
        pipeline=tiny_pipeline,
        workers=2,
        initial_demand=5.0,
        epoch_s=0.2,
        solve_in_subprocess=True,
        solve_timeout_s=2.0,
    )

    async def main():
        rt = Runtime(cfg, controller=ctl)
        await rt.start()
        try:
            plan = rt.plane.plan
            procs = list(rt.process_pool._processes.values())
            ctl.hold_s, ctl.want = 600.0, True  # this solve never ends on its own
            t0 = time.monotonic()
            while not rt.solving and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.02)
            during = await asyncio.gather(*(rt.submit(_frame(i)) for i in range(10)))
            while rt.solving and time.monotonic() - t0 < 15:
                await asyncio.sleep(0.05)
            abandoned_after = time.monotonic() - t0
            same_plan = rt.plane.plan is plan
            for _ in range(100):  # SIGKILL, then reaped
                if not any(p.is_alive() for p in procs):
                    break
                await asyncio.sleep(0.02)
            killed = [not p.is_alive() for p in procs]
            solves = rt.solves
            ctl.hold_s, ctl.want = 0.0, True  # the next tick solves again, in a new process
            while (rt.solves == solves or rt.solving) and time.monotonic() - t0 < 40:
                await asyncio.sleep(0.05)
            resolved_after = time.monotonic() - t0
            after = await asyncio.gather(*(rt.submit(_frame(i)) for i in range(5)))
        finally:
            await rt.stop()
        print(
            f"hung solve abandoned after {abandoned_after:.2f} s, solved again {resolved_after:.2f} s"
        )
        return rt, same_plan, killed, abandoned_after, solves, during + after

    rt, same_plan, killed, abandoned_after, solves, results = asyncio.run(main())
    assert rt.solve_timeouts == 1
    assert same_plan  # the running plan stayed in force
    assert killed and all(killed)  # the hung solving process was killed
    assert abandoned_after < 8.0, abandoned_after
    assert rt.solves == solves + 1 and rt.solves_in_process == 2
    assert all(r["outcome"] == "on_time" for r in results), results
    _check_conserved(rt)


@pytest.mark.ray
def test_first_plan_that_cannot_load_is_refused(ray_local, tiny_pipeline, tmp_path):
    import yaml

    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    spec = yaml.safe_load(Path(tiny_pipeline).read_text())
    spec["runtime"]["models"]["det-large"] = "no_such_module_here:net"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(spec))
    cfg = RuntimeConfig(
        pipeline=str(path), workers=2, initial_demand=5.0, solve_in_subprocess=False
    )

    async def main():
        rt = Runtime(cfg, controller=KeepController())
        with pytest.raises(ConfigError) as info:
            await rt.start()
        return rt, str(info.value)

    rt, msg = asyncio.run(main())
    assert "det-large" in msg and "could not load" in msg and "Fix:" in msg
    assert not rt.started


# ---------------------------------------------------------------------------- start-up refusals
def test_policy_for_another_pipeline_or_cluster_is_refused(tiny_pipeline):
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    pytest.importorskip("stable_baselines3")
    with pytest.raises(ConfigError, match="trained on a pipeline with tasks"):
        Runtime(RuntimeConfig(pipeline=tiny_pipeline, workers=2, controller="ppo-v1"))
    with pytest.raises(ConfigError, match="trained for a cluster of exactly 20 workers, not 8"):
        Runtime(RuntimeConfig(pipeline="traffic_analysis", workers=8, controller="ppo-v1"))
    with pytest.raises(ConfigError, match="no policy of the set fits tiny"):
        Runtime(RuntimeConfig(pipeline=tiny_pipeline, workers=2, controller="ppo"))


def test_more_gpu_workers_than_gpus_is_refused(tiny_pipeline, monkeypatch):
    import lokirl.runtime.worker as worker
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    monkeypatch.setattr(worker, "cluster_gpus", lambda: 2.0)
    # A whole GPU each (--gpus-per-worker 1); by default the 3 workers share the 2 GPUs.
    config = RuntimeConfig(pipeline=tiny_pipeline, workers=3, controller="static")
    rt = Runtime(replace(config, gpus_per_worker=1.0))
    with pytest.raises(ConfigError, match="3 GPU workers need 3 GPUs but the Ray cluster has 2"):
        rt._check_gpus()
    Runtime(RuntimeConfig(pipeline=tiny_pipeline, workers=2, controller="static"))._check_gpus()
    monkeypatch.setattr(worker, "cluster_gpus", lambda: 0.0)
    Runtime(config)._check_gpus()  # no GPUs: CPU workers


def _lokirl(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    exe = Path(sys.executable).with_name("lokirl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lokirl"]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    t0 = time.monotonic()
    r = subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    return r, time.monotonic() - t0


def test_port_in_use_and_unreachable_address_fail_fast(tiny_pipeline):
    with socket.socket() as busy, socket.socket() as closed:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        nothing = closed.getsockname()[1]
        base = ("serve", "--pipeline", tiny_pipeline, "--workers", "2")
        r, took = _lokirl(*base, "--port", str(port))
        assert r.returncode != 0 and took < 15, (took, r.stderr)
        assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Fix:" in r.stderr
        assert "serving" not in r.stdout and "Traceback" not in r.stderr
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            spare = free.getsockname()[1]
        r, took = _lokirl(*base, "--port", str(spare), "--address", f"127.0.0.1:{nothing}")
        assert r.returncode != 0 and took < 15, (took, r.stderr)
        assert "no Ray cluster answers there" in r.stderr and "Traceback" not in r.stderr
        # something listens there, but it is not Ray: ray.init() would hang on it
        r, took = _lokirl(*base, "--port", str(spare), "--address", f"127.0.0.1:{port}")
        assert r.returncode != 0 and took < 15, (took, r.stderr)
        assert "not a Ray cluster's GCS" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- ingress input
class _StubRuntime:
    """What the app needs of a runtime, without Ray: serves nothing, always live."""

    class pipeline:  # noqa: N801 - an attribute holder
        name = "tiny"

    started = True

    def liveness(self):
        return True, "ok"

    def readiness(self):
        return False, "stub"

    async def submit(self, frame):
        return {"outcome": "on_time", "shape": list(frame.shape)}


def test_huge_image_is_refused_from_its_header_without_stalling(tmp_path):
    import httpx
    from PIL import Image

    from lokirl.runtime.app import create_app

    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")  # decodes to 243 MB of RGB
    png = buf.getvalue()
    app = create_app(_StubRuntime(), max_body_bytes=1 << 20)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            lags: list[float] = []

            async def probe():
                for _ in range(20):
                    t = time.perf_counter()
                    r = await client.get("/healthz")
                    assert r.status_code == 200
                    lags.append(time.perf_counter() - t)
                    await asyncio.sleep(0.01)

            t0 = time.perf_counter()
            hdr = {"content-type": "image/png"}
            big, _ = await asyncio.gather(
                client.post("/v1/pipelines/tiny/infer", content=png, headers=hdr), probe()
            )
            took = time.perf_counter() - t0
            small = io.BytesIO()
            Image.new("RGB", (32, 24)).save(small, format="PNG")
            ok = await client.post(
                "/v1/pipelines/tiny/infer", content=small.getvalue(), headers=hdr
            )
            ready = await client.get("/readyz")
        return big, took, lags, ok, ready

    big, took, lags, ok, ready = asyncio.run(main())
    assert big.status_code == 413, big.text
    assert "9000x9000" in big.json()["error"] and "resize" in big.json()["error"]
    assert took < 2.0 and max(lags) < 0.5, (took, max(lags))
    assert ok.status_code == 200 and ok.json()["shape"] == [3, 24, 32]
    assert ready.status_code == 503 and ready.json()["reason"] == "stub"


def test_decode_refuses_large_image_before_decoding():
    from PIL import Image

    from lokirl.runtime.app import BadInput, decode_frame

    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, format="PNG")
    with pytest.raises(BadInput) as info:
        decode_frame(buf.getvalue(), "image/png", {}, max_pixels=50 * 50)
    assert info.value.status == 413 and "100x100" in str(info.value)
    assert decode_frame(buf.getvalue(), "image/png", {}).shape == (3, 100, 100)


# ---------------------------------------------------------------------------- bounded state, logs
def test_demand_history_is_bounded_after_a_month(tiny_pipeline):
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.runtime.dataplane import DataPlane

    plane = DataPlane(load_pipeline(tiny_pipeline), history_s=120)

    async def main():
        for day in range(31):
            plane.t0 = time.monotonic() - day * 86400.0 - 0.5
            for _ in range(3):
                plane.new_frame(_frame())  # no plan: dropped, but counted as an arrival
        plane.t0 -= 1.0  # the last arrival's second is complete
        t = time.perf_counter()
        hist = plane.history(120)
        return hist, time.perf_counter() - t

    hist, took = asyncio.run(main())
    assert len(plane.arrivals_per_s) <= 121
    assert len(hist) == 120 and hist[-1] == 3.0 and sum(hist) == 3.0
    assert took < 0.01
    assert plane.frame_tally().arrived == 93 and plane.frame_tally().dropped == {"no_plan": 93}


def test_repeated_failure_logs_one_line_with_a_count(caplog):
    from lokirl.runtime.runtime import RepeatedFailure

    log = logging.getLogger("lokirl.test.repeated")
    rep = RepeatedFailure(log, "controller tick", window_s=60.0)
    with caplog.at_level(logging.ERROR, logger="lokirl.test.repeated"):
        for _ in range(17):
            try:
                raise RuntimeError("policy bug")
            except RuntimeError as exc:
                rep.failed(exc)
        rep.flush()
        assert len(caplog.records) == 1 and not caplog.records[0].exc_info
        assert "controller tick failed: RuntimeError: policy bug" in caplog.text
        rep.reported_at -= 61.0
        rep.flush()
    assert len(caplog.records) == 2
    assert "controller tick failed 16 times in the last 61 s: RuntimeError: policy bug" in (
        caplog.records[1].getMessage()
    )
    assert rep.total == 17


# ---------------------------------------------------------------------------- multi-node
# Last in the module: it shuts the module's local Ray down and starts a 2-node cluster.
@pytest.mark.ray
@pytest.mark.slow
def test_node_removed_under_load_every_request_accounted(tiny_pipeline):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    if ray.is_initialized():
        ray.shutdown()
    # A temp dir of its own: the default one would advertise this cluster
    # (ray_current_cluster) to every ray.init() on the machine while it runs.
    import tempfile

    local = {"node_ip_address": "127.0.0.1", "temp_dir": tempfile.mkdtemp(prefix="lokirl-ray-")}
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, **local}
    )
    try:
        node2 = cluster.add_node(num_cpus=1, **local)
        ray.init(address=cluster.address, log_to_driver=False)
        # 0.5 CPU a worker: two fit on each node, so the workers spread over both.
        cfg = RuntimeConfig(
            pipeline=tiny_pipeline,
            workers=4,
            worker_num_cpus=0.5,
            initial_demand=20.0,
            epoch_s=0.25,
            solve_in_subprocess=False,
            load_timeout_s=60.0,
        )

        async def main():
            rt = Runtime(cfg, controller=KeepController())
            await rt.start()
            try:
                nodes = {
                    w.wid: await asyncio.wrap_future(
                        w.actor.__ray_call__.remote(
                            lambda self: ray.get_runtime_context().get_node_id()
                        ).future()
                    )
                    for w in rt.plane.workers
                }
                stop = asyncio.Event()
                results: list = []

                async def load():
                    tasks, i = [], 0
                    while not stop.is_set():
                        tasks.append(asyncio.create_task(rt.submit(_frame(i))))
                        i += 1
                        await asyncio.sleep(0.033)
                    results.extend(await asyncio.gather(*tasks))

                sender = asyncio.create_task(load())
                await asyncio.sleep(1.0)
                on2 = {wid for wid, n in nodes.items() if n == node2.node_id}
                t0 = time.monotonic()
                cluster.remove_node(node2)
                while time.monotonic() - t0 < 10:
                    dead = {w.wid for w in rt.plane.workers if w.status == "dead"}
                    if dead >= on2:
                        break
                    await asyncio.sleep(0.02)
                detect_s = time.monotonic() - t0
                cluster.add_node(num_cpus=1, **local)  # room for the replacements
                while time.monotonic() - t0 < 60:
                    if rt.replacements >= len(on2) and rt.readiness()[0] and not rt.solving:
                        break
                    await asyncio.sleep(0.1)
                ready = rt.readiness()
                await asyncio.sleep(1.0)
                stop.set()
                await sender
            finally:
                await rt.stop()
            return rt, on2, detect_s, results, ready

        rt, on2, detect_s, results, ready = asyncio.run(main())
        print(f"node removed: workers {sorted(on2)} found failed in {detect_s:.2f} s")
        assert on2 and len(on2) < 4  # the workers were spread over both nodes
        assert detect_s < 3.0, detect_s
        assert rt.replacements >= len(on2) and ready[0], (ready, rt.recoveries)
        assert all("replanned_s" in r for r in rt.recoveries), rt.recoveries
        _check_conserved(rt)
        assert len(results) == rt.plane.frame_tally().arrived
        assert sum(r["outcome"] == "on_time" for r in results[-30:]) >= 27
    finally:
        ray.shutdown()
        cluster.shutdown()
