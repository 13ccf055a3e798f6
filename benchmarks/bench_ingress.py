"""Benchmark of ingress replicas: requests/s served through 1 vs N HTTP ingresses.

::

    python benchmarks/bench_ingress.py [--replicas 1,2] [--rate 300[,600,...]] [--seconds 15] [--json]

For each replica count: a local Ray, the runtime on ``--workers`` emulated workers
(``traffic_analysis``, Loki's GPU profile: workers sleep the profiled batch latency
and claim no CPU; by default a first plan solved for ``--headroom`` times the rate
serves throughout, so the ingresses, not the workers, are what is measured; the plan's
capacity is printed to check it) with ``--ingress-replicas N`` (the controller's own ingress on a free loopback port, served by uvicorn in this
process as ``lokirl serve`` does, plus N-1 replica actors), and a load generator in
a separate process sending open-loop Poisson arrivals at ``--rate`` frames/s for
``--seconds`` over HTTP on 127.0.0.1 (a minimal keep-alive client: the client
shares the cores it measures), round robin over the ingresses.

Reported per replica count: frames served per second (on time or late) over the
client's window (first request to last answer), on time per second, frames dropped by reason, the client's latency
p50/p99; router overhead over every replica (admission per frame; batch formation,
dispatch and completion per request, p50/p99); the hop per batch (round trip minus
the worker's own time: dispatch, Ray's call there and back, the wait for the
ingress's event loop), which is the most a direct stage-to-stage hand-off could
save per stage; the CPU of the controller's process, of each replica and of the
emulated worker actors; batches answered per second and their mean size per
variant, beside the batch calls per second the plan's groups take with full
batches (replicas x 1000 / batch ms: a partly filled batch is shorter, so a group
can answer more); the machine's core count and load average beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lokirl.experiments.simvslive import actor_cpu_s  # noqa: E402
from lokirl.runtime.dataplane import percentile  # noqa: E402

#: A first plan solved for the initial demand (``--headroom`` x ``--rate``), never re-solved.
FIXED = "periodic(period_s=1e9,headroom=1)"


class _Http:
    """A minimal HTTP/1.1 keep-alive client for one ingress (a fraction of httpx's CPU).

    The client shares the box's cores with the ingresses it measures, so it must be
    cheap: one request per connection at a time, connections reused.
    """

    def __init__(self, host: str, port: int, path: str, body: bytes) -> None:
        self.host, self.port = host, port
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/octet-stream\r\nX-Tensor-Shape: 3,8,8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(self, _i: int) -> dict:
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        try:
            writer.write(self.request)
            status = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
        except Exception:
            writer.close()
            raise
        self.idle.append(conn)
        code = int(status.split()[1])
        if code in (200, 503):
            return json.loads(body)
        return {"outcome": "dropped", "reason": f"http_{code}"}


def _client(
    ports: list[int], path: str, rate: float, seconds: float, seed: int, out: object
) -> None:
    """Load generator (its own process): Poisson arrivals, round robin over the ingresses."""
    from lokirl.runtime.loadgen import replay, round_robin

    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, int(rate * seconds)))
    body = np.zeros((3, 8, 8), np.uint8).tobytes()

    async def main() -> dict:
        clients = [_Http("127.0.0.1", port, path, body) for port in ports]
        res = await replay(arrivals, round_robin([c.send for c in clients]), max_in_flight=4096)
        return res.to_dict()

    out.put(asyncio.run(main()))  # type: ignore[attr-defined]


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _free_port() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def one(args: argparse.Namespace, replicas: int) -> dict:
    """Serve ``--rate`` frames/s for ``--seconds`` through ``replicas`` ingresses."""
    import uvicorn

    from lokirl.runtime.app import create_app
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    rt = Runtime(
        RuntimeConfig(
            pipeline="traffic_analysis",
            workers=args.workers,
            controller=args.controller,
            emulate=True,
            initial_demand=args.rate * args.headroom,
            ping_timeout_s=60.0,  # actors starting on a busy box are not hung
            ingress_replicas=replicas,
        )
    )
    t0 = time.perf_counter()
    await rt.start()
    p = rt.plane
    pings = [asyncio.wrap_future(w.actor.ping.remote().future()) for w in p.workers]
    await asyncio.wait_for(asyncio.gather(*pings, return_exceptions=True), 300.0)
    sock = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt), log_level="warning", log_config=None, lifespan="on")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    start_s = time.perf_counter() - t0
    ports = [sock.getsockname()[1], *(rt.replicas.ports if rt.replicas else [])]
    path = f"/v1/pipelines/{rt.pipeline.name}/infer"
    pids = []
    if rt.replicas is not None:
        pids = [await asyncio.wrap_future(a.pid.remote().future()) for a in rt.replicas.actors]
    for q in (p.admit_ms, p.dispatch_overhead_ms, p.complete_ms, p.service_obs):
        q.clear()
    actors = [w.actor for w in p.workers]
    plan = [
        {
            "variant": g.variant,
            "replicas": g.replicas,
            "batch": g.batch_size,
            "batch_ms": g.latency_ms,
            "calls_per_s": g.replicas * 1000.0 / g.latency_ms if g.latency_ms > 0 else math.nan,
        }
        for g in (p.plan.groups if p.plan is not None else [])
    ]
    a0 = await actor_cpu_s(actors)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    client = ctx.Process(
        target=_client, args=(ports, path, args.rate, args.seconds, args.seed, out)
    )
    c0, r0, load0 = os.times(), [_proc_cpu_s(x) for x in pids], os.getloadavg()[0]
    w0 = time.perf_counter()
    client.start()
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(None, out.get, True, args.seconds + 120.0)
    finally:
        wall = time.perf_counter() - w0
        c1, r1, load1 = os.times(), [_proc_cpu_s(x) for x in pids], os.getloadavg()[0]
        await loop.run_in_executor(None, client.join, 10.0)
        if rt.replicas is not None:
            await rt.replicas.collect()
        admit = list(p.admit_ms)
        per_req = [
            d + c / n for d, (c, n) in zip(p.dispatch_overhead_ms, p.complete_ms, strict=False)
        ]
        hop = [rtt - w for _v, _n, w, rtt, _prof in p.service_obs if np.isfinite(w)]
        by_variant: dict[str, list[int]] = {}
        for v, n, *_ in p.service_obs:
            acc = by_variant.setdefault(v, [0, 0])
            acc[0] += 1
            acc[1] += n
        a1 = await actor_cpu_s(actors)
        actor_cores = [
            (b - a) / wall
            for a, b in zip(a0, a1, strict=True)
            if math.isfinite(a) and math.isfinite(b)
        ]
        server.should_exit = True
        await asyncio.wait_for(serving, 10.0)
        await rt.stop()
        status = rt.status()
    f = status["frames"]
    sent_s = args.seconds
    return {
        "replicas": replicas,
        "ports": ports,
        "start_s": start_s,
        "wall_s": wall,
        "loadavg_1m": [load0, load1],
        "frames": f,
        "per_replica_arrived": [
            f["arrived"] - sum(r["frames"]["arrived"] for r in status["ingress_replicas"] or [])
        ]
        + [r["frames"]["arrived"] for r in status["ingress_replicas"] or []],
        # Over the client's window: its first request to its last answer.
        "served_per_s": (f["on_time"] + f["late"]) / max(sent_s, result["wall_s"]),
        "on_time_per_s": f["on_time"] / max(sent_s, result["wall_s"]),
        "client": result,
        "admit_ms_p50": percentile(admit, 50),
        "admit_ms_p99": percentile(admit, 99),
        "router_ms_p50": percentile(per_req, 50),
        "router_ms_p99": percentile(per_req, 99),
        "hop_ms_p50": percentile(hop, 50),
        "hop_ms_p99": percentile(hop, 99),
        "batches": len(hop),
        "controller_cpu_cores": (c1.user + c1.system - c0.user - c0.system) / wall,
        "replica_cpu_cores": [(b - a) / wall for a, b in zip(r0, r1, strict=True)],
        "actor_cpu_cores": sum(actor_cores) if actor_cores else math.nan,
        "actor_cpu_cores_max": max(actor_cores) if actor_cores else math.nan,
        # Batches the workers answered over the run (every ingress), per variant.
        "batches_by_variant": {
            v: {"per_s": b / wall, "mean_size": r / b} for v, (b, r) in sorted(by_variant.items())
        },
        # The plan: batch calls per second its groups take when every worker is busy.
        "plan": plan,
        "plan_capacity": p.plan.max_demand if p.plan is not None else math.nan,
        "plan_phase": p.plan.phase if p.plan is not None else "",
    }


def _text(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"bench_ingress: traffic_analysis on {args.workers} emulated workers ({args.controller}, "
        f"first plan for {args.headroom:g}x the rate, capacity {rows[0]['plan_capacity']:.0f} frames/s), {args.rate:g} frames/s offered for {args.seconds:g} s over HTTP on 127.0.0.1 (client in its own "
        f"process); machine: {os.cpu_count()} cores"
    ]
    for r in rows:
        f, c = r["frames"], r["client"]
        cap = r["plan_capacity"]
        if cap < args.rate:
            lines.append(
                f"  warning: the plan carries {cap:.0f} frames/s ({r['plan_phase']}), less than "
                f"the {args.rate:g} offered: the workers, not the ingresses, limit this run"
            )
        lines.append(
            f"  {r['replicas']} ingress(es) (frames per ingress {r['per_replica_arrived']}): "
            f"served {r['served_per_s']:.1f} frames/s ({r['on_time_per_s']:.1f} on time); "
            f"arrived {f['arrived']}, on time {f['on_time']}, late {f['late']}, dropped "
            f"{sum(f['dropped'].values())} {f['dropped']}, in flight {f['in_flight']}; client "
            f"p50/p99 {c['latency_ms_p50']:.1f}/{c['latency_ms_p99']:.1f} ms over {c['wall_s']:.1f} s"
        )
        lines.append(
            f"    router overhead: admission p50/p99 {r['admit_ms_p50']:.3f}/{r['admit_ms_p99']:.3f} "
            f"ms, batch formation + dispatch + completion per request p50/p99 "
            f"{r['router_ms_p50']:.3f}/{r['router_ms_p99']:.3f} ms; hop per batch (round trip - "
            f"worker) p50/p99 {r['hop_ms_p50']:.2f}/{r['hop_ms_p99']:.2f} ms over {r['batches']} "
            f"batches"
        )
        reps = ", ".join(f"{x:.2f}" for x in r["replica_cpu_cores"]) or "-"
        lines.append(
            f"    CPU: controller process {r['controller_cpu_cores']:.2f} cores, replicas "
            f"[{reps}]; load average {r['loadavg_1m'][0]:.1f} -> {r['loadavg_1m'][1]:.1f}; "
            f"start-up {r['start_s']:.1f} s; emulated actors {r['actor_cpu_cores']:.2f} cores in "
            f"all (busiest {r['actor_cpu_cores_max']:.2f})"
        )
        busy: dict[str, list[dict]] = {}
        for g in r["plan"]:
            busy.setdefault(g["variant"], []).append(g)
        cells = []
        for v, b in r["batches_by_variant"].items():
            gs = busy.get(v, [])
            groups = " + ".join(f"{g['replicas']} x b{g['batch']}" for g in gs)
            calls = sum(g["calls_per_s"] for g in gs)
            plan = f" of {calls:.0f} ({groups})" if gs else ""
            cells.append(f"{v} {b['per_s']:.1f}{plan} mean size {b['mean_size']:.1f}")
        lines.append(
            "    batches/s by variant (of the plan's with full batches): " + "; ".join(cells)
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", default="1,2", help="ingress counts to compare (default 1,2)")
    ap.add_argument(
        "--rate",
        default="300",
        help="offered frames/s, or a comma-separated sweep (e.g. 300,600,900; default 300)",
    )
    ap.add_argument("--seconds", type=float, default=15.0, help="sending window (default 15)")
    ap.add_argument("--workers", type=int, default=20, help="emulated workers (default 20)")
    ap.add_argument(
        "--controller",
        default=FIXED,
        help=f"controller (default {FIXED}: the first plan, solved for --headroom x --rate, "
        "serves throughout, so the workers are not what limits; `static` would keep the "
        "most accurate variants' peak plan, about 200 frames/s on 20 workers)",
    )
    ap.add_argument(
        "--headroom", type=float, default=2.0, help="first plan's demand over --rate (default 2)"
    )
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from lokirl.commands.stdout import reserve_stdout_for_json, strict_json
    from lokirl.runtime.cluster import connect

    try:
        rates = [float(x) for x in args.rate.split(",")]
        counts = [int(x) for x in args.replicas.split(",")]
    except ValueError:
        ap.error("--rate and --replicas take comma-separated numbers, e.g. --rate 300,600")
    if not rates or min(rates) <= 0 or not counts or min(counts) < 1:
        ap.error("--rate must be > 0 and --replicas >= 1")
    json_out = reserve_stdout_for_json() if args.json else None  # Ray prints to stdout
    ray = connect(None, args.num_cpus)
    sweeps: list[tuple[argparse.Namespace, list[dict]]] = []
    try:
        for rate in rates:
            sub = argparse.Namespace(**{**vars(args), "rate": rate})
            rows = [{"rate": rate, **asyncio.run(one(sub, n))} for n in counts]
            sweeps.append((sub, rows))
            if json_out is None:
                print(_text(rows, sub), flush=True)
    finally:
        ray.shutdown()
    if json_out is not None:
        rows = [r for _, rs in sweeps for r in rs]
        print(strict_json({"cores": os.cpu_count(), "rows": rows}), file=json_out)
    elif len(sweeps) > 1:
        print(f"summary ({os.cpu_count()} cores): offered, ingresses, served/s (on time/s)")
        for _, rs in sweeps:
            for r in rs:
                print(
                    f"  {r['rate']:>7g} {r['replicas']:>3} {r['served_per_s']:>8.1f} "
                    f"({r['on_time_per_s']:.1f})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
