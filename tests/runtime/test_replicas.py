"""Several ingress replicas in front of one controller: one table, one accounting."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from lokirl.core.pipeline_config import load_pipeline
from lokirl.runtime.dataplane import DataPlane
from lokirl.runtime.replicas import ReplicaSet

_SEQ = itertools.count(1)


def _report(arrived, on_time, late, dropped, in_flight, arrivals, subs=None):
    subs = subs or (arrived, on_time, late, dropped, in_flight)
    return {
        "seq": next(_SEQ),
        "frames": (arrived, on_time, late, dict(dropped), 100.0 * on_time),
        "subs": (subs[0], subs[1], subs[2], dict(subs[3]), 100.0 * subs[1]),
        "in_flight": (in_flight, subs[4]),
        "leaf": (on_time, 100.0 * on_time),
        "batches": on_time,
        "arrivals": arrivals,
        "window": {},
        "hist": {"frame": ([on_time] + [0] * 14, 0.01 * on_time, on_time)},
        "branching": [("det-large", "classify", 2)],
        "samples": {
            "latencies_ms": [5.0] * on_time,
            "admit_ms": [],
            "dispatch_overhead_ms": [],
            "complete_ms": [],
            "service_obs": [],
        },
        "queues": {"detect": 1, "classify": 0},
        "version": 3,
        "lost": [],
    }


def test_reports_are_added_once_and_in_flight_of_a_dead_replica_dropped(tiny_pipeline):
    plane = DataPlane(load_pipeline(tiny_pipeline))
    rt = SimpleNamespace(plane=plane, config=SimpleNamespace(replica_report_s=0.2))
    rs = ReplicaSet(rt, 2)
    rs.last, rs.queues, rs.alive, rs.applied = [None, None], [{}, {}], [True, True], [0, 0]
    plane.add_arrivals(0, 1)  # one of the controller's own (no frame object needed here)
    rs.absorb(0, _report(5, 2, 1, {"deadline": 1}, 1, {0: 5}))
    rs.absorb(1, _report(3, 3, 0, {}, 0, {0: 2, 1: 1}))
    # The same totals again add nothing; growth adds the difference only.
    rs.absorb(0, _report(5, 2, 1, {"deadline": 1}, 1, {0: 5}))
    rs.absorb(0, _report(7, 3, 1, {"deadline": 2}, 1, {0: 5, 1: 2}))
    stale = _report(9, 9, 0, {}, 0, {0: 9})
    stale["seq"] = 1  # overtaken by later reports (a pull racing the final one): ignored
    rs.absorb(0, stale)
    f = plane.frame_tally()
    assert (f.arrived, f.on_time, f.late, f.dropped, f.in_flight) == (10, 6, 1, {"deadline": 2}, 1)
    assert f.arrived == f.on_time + f.late + sum(f.dropped.values()) + f.in_flight
    assert list(plane.arrivals_per_s) == [1 + 5 + 2, 1 + 2]  # seconds 0 and 1: the demand
    assert plane.hist["frame"].count == 6 and len(plane.latencies_ms) == 2 + 3 + 2 + 3
    assert plane.leaf_on_time == 6 and plane.batches == 6
    assert rs.queue_lengths() == {"detect": 2, "classify": 0}
    assert [r["frames"]["arrived"] for r in rs.status()] == [7, 3]
    rs._replica_gone(0, "died")  # its frame in flight will never be answered
    f = plane.frame_tally()
    assert f.in_flight == 0 and f.dropped == {"deadline": 2, "replica_failed": 1}
    assert f.arrived == f.on_time + f.late + sum(f.dropped.values())
    rs._replica_gone(0, "died")  # once
    assert plane.frame_tally().dropped["replica_failed"] == 1


@pytest.mark.ray
def test_three_ingress_replicas_share_one_table_and_one_accounting(ray_local, tiny_pipeline):
    import httpx

    from lokirl.core.controller import Decision
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    cfg = RuntimeConfig(
        pipeline=tiny_pipeline,
        workers=3,
        controller="loki-1s",
        emulate=True,
        initial_demand=10.0,
        solve_in_subprocess=False,
        ping_timeout_s=30.0,  # actors starting on a busy 2-core box are not hung
        ingress_replicas=3,
        replica_host="127.0.0.1",
    )
    per, frame = 20, np.zeros((3, 16, 16), np.uint8)
    headers = {"content-type": "application/octet-stream", "x-tensor-shape": "3,16,16"}

    async def main() -> dict:
        rt = Runtime(cfg)
        await rt.start()
        try:
            ports = rt.replicas.ports
            assert len(ports) == 2 and len(set(ports)) == 2
            # the replicas' clocks were aligned at start: time 0 cannot move under them
            with pytest.raises(RuntimeError, match="ingress replicas"):
                rt.restart_clock()
            urls = [f"http://127.0.0.1:{p}/v1/pipelines/tiny/infer" for p in ports]
            async with httpx.AsyncClient(timeout=30) as client:

                async def over_http(url: str) -> dict:
                    r = await client.post(url, content=frame.tobytes(), headers=headers)
                    return r.json()

                calls = []
                for _ in range(per):  # 20 frames to each of the three ingresses
                    calls.append(asyncio.create_task(rt.submit(frame)))
                    calls += [asyncio.create_task(over_http(u)) for u in urls]
                    await asyncio.sleep(0.05)
                outs = await asyncio.gather(*calls)
                # A re-plan: the new table reaches every replica.
                before = rt.replicas.version
                plan = await rt._solve(Decision(resolve=True, demand=40.0, reason="test"))
                await rt.install(plan)
                for _ in range(50):
                    await rt.replicas.collect()
                    if min(rt.replicas.applied) == rt.replicas.version:
                        break
                    await asyncio.sleep(0.1)
                assert rt.replicas.version > before
                assert rt.replicas.applied == [rt.replicas.version] * 2
                views = [
                    (await client.get(f"http://127.0.0.1:{p}/v1/status")).json() for p in ports
                ]
                assert [v["epoch"] for v in views] == [rt.plane.epoch] * 2
                # loadgen --rescale auto reads the same range from any ingress
                assert [v["auto_load"] for v in views] == [rt.auto_load()] * 2
                assert [v["frames"]["arrived"] for v in views] == [per, per]
                scraped = await client.get(f"http://127.0.0.1:{ports[0]}/metrics")
                assert scraped.status_code == 404  # only the controller's port is scraped
        finally:
            await rt.stop()
        return {"status": rt.status(), "outs": outs, "aps": sum(rt.plane.arrivals_per_s)}

    got = asyncio.run(main())
    status, outs = got["status"], got["outs"]
    f, s = status["frames"], status["subrequests"]
    assert f["arrived"] == 3 * per == len(outs) == got["aps"]  # the demand history counts all
    assert f["in_flight"] == 0 and s["in_flight"] == 0
    assert f["arrived"] == f["on_time"] + f["late"] + sum(f["dropped"].values())
    assert s["arrived"] == s["on_time"] + s["late"] + sum(s["dropped"].values())
    assert s["arrived"] > f["arrived"]  # the detector's sub-requests, from every replica
    by_outcome = {o["outcome"] for o in outs}
    assert by_outcome <= {"on_time", "late", "dropped"}
    served = sum(o["outcome"] != "dropped" for o in outs)
    assert served == f["on_time"] + f["late"] and served >= 0.8 * len(outs), f
    rows = status["ingress_replicas"]
    assert [r["frames"]["arrived"] for r in rows] == [per, per]
    assert all(r["frames"]["in_flight"] == 0 for r in rows)


def test_groups_with_a_worker_per_ingress_are_split_smaller_ones_shared():
    from lokirl.runtime.replicas import owners

    def w(wid, status="ready"):
        return SimpleNamespace(wid=wid, status=status)

    ws = [w(i) for i in range(6)]
    big = SimpleNamespace(workers=[ws[4], ws[0], ws[2]])  # three workers, two ingresses
    small = SimpleNamespace(workers=[ws[1]])
    dead = SimpleNamespace(workers=[ws[3], w(5, "dead")])  # one live worker: shared
    plane = SimpleNamespace(workers=ws, groups=[big, small, dead])
    assert owners(plane, 2) == {0: 0, 2: 1, 4: 0, 1: None, 3: None, 5: None}
    assert owners(plane, 1) == dict.fromkeys(range(6))
    assert owners(plane, 4) == dict.fromkeys(range(6))  # no group has four


def test_serve_refuses_a_bad_replica_count_before_ray():
    from lokirl.commands.serve import run
    from lokirl.errors import ConfigError

    args = SimpleNamespace(
        pipeline="traffic_analysis_cpu", controller="loki-1s", workers=None, address=None,
        num_cpus=2, host="127.0.0.1", port=65535, initial_demand=None, epoch=1.0,
        accelerator=None, input_size=None, max_body_mb=8.0, no_early_drop=False,
        swap="overlap", emulate=False, dilation=1.0, ingress_replicas=2,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="ports 65535..65536"):
        run(args)
    with pytest.raises(ConfigError, match="at least 1"):
        run(SimpleNamespace(**{**vars(args), "port": 8000, "ingress_replicas": 0}))


@pytest.mark.ray
@pytest.mark.slow
def test_lokirl_serve_with_two_ingresses_over_loopback(tiny_pipeline, tmp_path):
    """``lokirl serve --ingress-replicas 2``: both ports serve; the first counts both."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    with socket.socket() as a:  # a free port; the next one is the replica's
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
    exe = Path(sys.executable).with_name("lokirl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lokirl"]
    argv = ["serve", "--pipeline", tiny_pipeline, "--emulate", "--workers", "3", "--num-cpus", "2"]
    argv += ["--port", str(port), "--ingress-replicas", "2", "--controller", "loki-1s"]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*cmd, *argv], stdout=log, stderr=subprocess.STDOUT, env=env)
    urls = [f"http://127.0.0.1:{p}" for p in (port, port + 1)]
    body = np.zeros((3, 16, 16), np.uint8).tobytes()
    headers = {"content-type": "application/octet-stream", "x-tensor-shape": "3,16,16"}
    try:
        with httpx.Client(timeout=10) as c:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if all(c.get(f"{u}/healthz").status_code == 200 for u in urls):
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
            outs = [
                c.post(f"{urls[i % 2]}/v1/pipelines/tiny/infer", content=body, headers=headers)
                for i in range(10)
            ]
            assert {r.status_code for r in outs} <= {200, 503}
            time.sleep(1.0)  # a report or two
            status = c.get(f"{urls[0]}/v1/status").json()
            assert c.get(f"{urls[1]}/metrics").status_code == 404
            assert "lokirl_frames_arrived_total 10.0" in c.get(f"{urls[0]}/metrics").text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    f = status["frames"]
    assert f["arrived"] == 10
    assert f["arrived"] == f["on_time"] + f["late"] + sum(f["dropped"].values()) + f["in_flight"]
    assert [r["frames"]["arrived"] for r in status["ingress_replicas"]] == [5]
    assert status["ingress_replicas"][0]["port"] == port + 1


@pytest.mark.ray
@pytest.mark.slow
def test_a_worker_killed_under_two_ingresses_loses_no_request(ray_local, tiny_pipeline):
    import httpx

    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    ray = ray_local
    cfg = RuntimeConfig(
        pipeline=tiny_pipeline,
        workers=4,
        controller="loki-1s",
        emulate=True,
        initial_demand=20.0,
        solve_in_subprocess=False,
        ping_timeout_s=30.0,  # a dead actor is found by its failed ping, at once
        ingress_replicas=2,
    )
    frame = np.zeros((3, 16, 16), np.uint8)
    headers = {"content-type": "application/octet-stream", "x-tensor-shape": "3,16,16"}

    async def main() -> dict:
        rt = Runtime(cfg)
        await rt.start()
        try:
            url = f"http://127.0.0.1:{rt.replicas.ports[0]}/v1/pipelines/tiny/infer"
            victim = next(w for w in rt.plane.workers if w.serving and w.serving.task == "detect")
            async with httpx.AsyncClient(timeout=30) as client:

                async def over_http() -> dict:
                    r = await client.post(url, content=frame.tobytes(), headers=headers)
                    return r.json()

                calls = []
                for i in range(40):
                    calls.append(asyncio.create_task(rt.submit(frame) if i % 2 else over_http()))
                    if i == 10:
                        ray.kill(victim.actor, no_restart=True)
                    await asyncio.sleep(0.05)
                outs = await asyncio.gather(*calls)
            for _ in range(300):  # replaced and re-planned; the replica has the new table
                await rt.replicas.collect()
                if rt.replacements and min(rt.replicas.applied) == rt.replicas.version:
                    break
                await asyncio.sleep(0.1)
            replaced = rt.replacements
        finally:
            await rt.stop()
        return {"status": rt.status(), "outs": outs, "replaced": replaced}

    got = asyncio.run(main())
    f, s = got["status"]["frames"], got["status"]["subrequests"]
    assert got["replaced"] >= 1
    assert f["arrived"] == 40 == len(got["outs"])
    assert f["in_flight"] == 0 and s["in_flight"] == 0
    assert f["arrived"] == f["on_time"] + f["late"] + sum(f["dropped"].values())
    assert s["arrived"] == s["on_time"] + s["late"] + sum(s["dropped"].values())
    served = sum(o["outcome"] != "dropped" for o in got["outs"])
    assert served == f["on_time"] + f["late"] >= 20, f


def test_replica_applies_tables_and_reroutes_a_failed_workers_batch(tiny_pipeline):
    from lokirl.core.allocator import AllocatorOptions, solve
    from lokirl.core.pipeline import Cluster
    from lokirl.runtime.dataplane import WorkerState
    from lokirl.runtime.replicas import ReplicaPlane, routing_snapshot

    pipeline = load_pipeline(tiny_pipeline)

    async def main() -> None:
        ctl = DataPlane(pipeline)
        ctl.workers = [WorkerState(i, actor=f"actor{i}") for i in range(4)]
        plan = solve(pipeline, Cluster({"cpu": 4}), 20.0, AllocatorOptions())
        two = replace(plan.groups[0], replicas=2)  # the detector's group keeps a worker
        plan = replace(plan, groups=(two, *plan.groups[1:]))
        for w in ctl.install(plan):
            ctl.worker_ready(w)
        snap = routing_snapshot(ctl, 1, ingresses=2)
        rep = ReplicaPlane(pipeline, rid=1)
        started = rep.apply(snap)
        assert [w.wid for w in started] == [0, 1, 2, 3]
        assert rep.table is ctl.table and [g.variant for g in rep.groups] == [
            g.variant for g in ctl.groups
        ]
        # A frame admitted here; its detect request is taken as the batch in flight.
        frame = rep.new_frame(np.zeros((3, 16, 16), np.uint8))
        g = next(g for g in rep.groups if g.queue)
        assert len(g.workers) == 2
        w = g.workers[0]
        w.inflight = [g.queue.popleft()]
        # The controller failed that worker: the batch is re-routed through the new table.
        ctl.fail_worker(ctl.workers[w.wid], "test", kind="died")
        snap2 = routing_snapshot(ctl, 2, ingresses=2)
        rep.apply(snap2)
        assert rep.apply(snap) == [] and rep.version == 2  # an older snapshot is ignored
        queued = sum(len(x.queue) for x in rep.groups)
        dropped = sum(rep.subs.dropped.values())
        assert queued == 1 and dropped == 0 and rep.subs_in_flight == 1  # re-routed, not lost
        assert all(q is not w for x in rep.groups for q in x.workers)
        assert rep.lost == []  # the controller told us: nothing to report back
        rep.shutdown()
        assert frame.final and rep.frames_in_flight == 0

    asyncio.run(main())


def test_round_robin_spreads_requests_over_the_ingresses():
    from lokirl.runtime.loadgen import round_robin

    seen: list[tuple[str, int]] = []

    def sender(name):
        async def send(i):
            seen.append((name, i))
            return {"outcome": "on_time"}

        return send

    send = round_robin([sender("a"), sender("b")])

    async def main():
        for i in range(4):
            await send(i)

    asyncio.run(main())
    assert seen == [("a", 0), ("b", 1), ("a", 2), ("b", 3)]
    one = sender("only")
    assert round_robin([one]) is one


def _replica_pair(n: int):
    """A controller plane over ``n`` workers and a replica fed every snapshot it publishes."""
    from lokirl.runtime.dataplane import WorkerState
    from lokirl.runtime.replicas import ReplicaPlane, routing_snapshot
    from tests.sim.conftest import tiny_pipeline

    p = tiny_pipeline()
    ctl = DataPlane(p, accelerator="gpu")
    ctl.workers = [WorkerState(i, None) for i in range(n)]
    rep = ReplicaPlane(p, rid=1, accelerator="gpu")
    versions = itertools.count(1)
    ctl.on_rebuild = lambda: rep.apply(routing_snapshot(ctl, next(versions), ingresses=2))
    return p, ctl, rep


def _enqueue(ctl, rep, k: int) -> None:
    """``k`` requests at each of the controller's groups and at the replica's same group."""
    from lokirl.runtime.dataplane import Frame, Req

    loop = asyncio.get_running_loop()
    mirror = {g.uid: g for g in rep.groups + rep.draining}
    for g in ctl.groups + ctl.draining:
        for plane, group in ((ctl, g), (rep, mirror[g.uid])):
            for _ in range(k):
                now = plane.now()
                frame = Frame(plane.next_id, now, now + 10.0, None, loop.create_future())
                plane.next_id += 1
                frame.outstanding = 1
                plane.frames_in_flight += 1
                plane.subs_in_flight += 1
                group.queue.append(Req(frame, g.task, None, plane.epoch, 1.0))


def _queues(plane) -> list[tuple]:
    return [(g.uid, g.variant, len(g.queue)) for g in plane.groups + plane.draining]


def _agree(ctl, rep, what: str) -> None:
    assert _queues(rep) == _queues(ctl), what
    assert rep.subs.dropped == ctl.subs.dropped, what
    assert rep.subs_in_flight == ctl.subs_in_flight, what
    for wc, wr in zip(ctl.workers, rep.workers, strict=True):
        assert (wr.status, wr.serving is None, wr.drain is None) == (
            wc.status,
            wc.serving is None,
            wc.drain is None,
        ), f"{what}: worker {wc.wid}"


def test_a_replicas_queues_wait_for_loading_workers_and_drain_as_the_controllers():
    from tests.sim.conftest import make_plan

    async def main() -> None:
        p, ctl, rep = _replica_pair(4)
        for w in ctl.install(make_plan(p, [("d1", 1, 2), ("c1", 1, 2)])):
            ctl.worker_ready(w)
        _enqueue(ctl, rep, 3)
        # d1 leaves the plan: worker 0 loads d2 and keeps serving d1 (an interim
        # group, overlap); worker 1 leaves the plan and drains d1 at every ingress.
        ctl.install(make_plan(p, [("d2", 1, 1), ("c1", 1, 2)]), swap="overlap")
        _agree(ctl, rep, "d1 dropped")
        d1 = next(g for g in rep.groups if g.variant == "d1")
        assert len(d1.queue) == 3 and rep.workers[1].drain is d1
        assert rep.subs.dropped == {}
        # d1 comes back on worker 1 while worker 0 still loads d2... and d2's group,
        # whose only worker loads, keeps its queue for it at the replica too.
        _enqueue(ctl, rep, 2)
        ctl.install(make_plan(p, [("d1", 1, 1), ("d2", 1, 1), ("c1", 1, 1)]), swap="stop")
        _agree(ctl, rep, "d1 back")
        d2 = next(g for g in rep.groups if g.variant == "d2")
        assert len(d2.queue) == 2 and not d2.live()
        assert rep.reap() == 0 and rep.subs.dropped == {}

    asyncio.run(main())


@pytest.mark.parametrize("swap", ["overlap", "stop", "free"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_replicas_queues_follow_the_controllers_hand_over(swap, seed):
    from tests.sim.conftest import make_plan

    async def main() -> None:
        n = 6
        p, ctl, rep = _replica_pair(n)
        rng = np.random.default_rng(seed)
        for k in range(12):
            d1, d2 = rng.integers(0, 3, size=2)
            d1 = max(d1, 1 - d2)
            c1 = rng.integers(1, n - d1 - d2 + 1)
            groups = [(v, 1, int(m)) for v, m in (("d1", d1), ("d2", d2), ("c1", c1)) if m]
            _enqueue(ctl, rep, int(rng.integers(0, 3)))
            ctl.install(make_plan(p, groups), swap=swap)
            _agree(ctl, rep, f"seed {seed}, plan {k}: {groups}")
            if rng.random() < 0.6:  # the loads finish before the next plan
                for w in ctl.workers:
                    if w.status == "loading":
                        ctl.worker_ready(w)
                _agree(ctl, rep, f"seed {seed}, plan {k}, loads done")

    asyncio.run(main())
