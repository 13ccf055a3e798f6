"""Benchmark of the live runtime: router overhead per request and served throughput.

Runs unchanged on a CPU box or a GPU machine::

    python benchmarks/bench_runtime.py [--workers N] [--seconds 10] [--json]

1. Profiles a small CNN through a worker actor (back-to-back calls from this
   process, frames passed as the ingress passes them) and writes a one-task
   pipeline whose profile is this machine's as served.
2. Starts a local Ray, the runtime with ``--workers`` actors (default: one per
   GPU, else 1) and a plan solved for a demand beyond capacity (largest batch).
3. Router overhead: at light load, the ingress's own time per request (admission
   + batch formation and dispatch + completion), p50/p99 over ``--light``
   requests (default 2000), and the p99 of each of ``--blocks`` consecutive
   blocks of them (min / median / max), to show how much other load on the box
   moves it. Target: p99 under 2 ms. The parts (admit, dispatch, complete) are
   reported too.
4. Throughput: open-loop Poisson loads at ``--loads`` times the plan's profiled
   capacity (default 1.0 and 1.3); frames served per second over the steady
   window as a share of that capacity (target: at least 90% at 1.0x, and
   overload must shed by early drops and keep serving near capacity, not
   collapse).

``--emulate``: the live system at the size it exists for, on emulated accelerators
(:mod:`lokirl.runtime.emulated`: workers sleep the profiled batch latency and
claim no CPU): ``traffic_analysis`` (Loki's GPU profile) on ``--workers`` (default
20) workers under a controller (default ``loki-1s``), serving a 10-minute trace
shape (default ``diurnal_600s``) compressed ``--speedup`` times (default 10: 60 s)
and rescaled to ``--scale`` frames/s, optionally time-dilated (``--dilation``).
Reported: router overhead (admission; batch formation, dispatch and completion
per request), the ingress's CPU per frame, the worker actors' CPU, and the served
share of the plan's capacity: frames served (on time or late) over the frames the
running plan could carry, summed per second as min(arrivals, plan capacity)
(target >= 95%).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lokirl.core.controller import KEEP  # noqa: E402
from lokirl.core.pipeline_config import pipeline_from_dict  # noqa: E402
from lokirl.runtime.dataplane import percentile  # noqa: E402
from lokirl.runtime.loadgen import replay  # noqa: E402
from lokirl.runtime.models import ModelSource  # noqa: E402
from lokirl.runtime.profiler import profile_pipeline  # noqa: E402

SOURCE = "lokirl.runtime.models:tiny_cnn"
KWARGS = {"depth": 4, "width": 64}


class Keep:
    """Holds the first plan (the benchmark measures the data path, not the controller)."""

    name = "keep"

    def decide(self, context):  # noqa: ANN001, ANN201, D102
        return KEEP


def build_pipeline(size: int, slo_ms: float, accel: str) -> tuple[Path, dict]:
    base = pipeline_from_dict(
        {
            "name": "bench",
            "slo_ms": slo_ms,
            "tasks": [
                {
                    "name": "classify",
                    "variants": [{"name": "cnn", "accuracy": 100, "latency_ms": {accel: {1: 1}}}],
                }
            ],
        }
    )
    src = ModelSource(SOURCE, KWARGS, input_size=size)
    device = "cuda" if accel == "gpu" else "cpu"
    measured = profile_pipeline(
        base, {"cnn": src}, [1, 2, 4, 8], device=device, repeats=7, mode="actor"
    )
    lat = measured["cnn"]["latency_ms"]
    doc = {
        "name": "bench",
        "slo_ms": slo_ms,
        "tasks": [
            {
                "name": "classify",
                "variants": [
                    {
                        "name": "cnn",
                        "accuracy": 100,
                        "load_time_s": measured["cnn"]["load_s"],
                        "latency_ms": {accel: lat},
                    }
                ],
            }
        ],
        "runtime": {"input_size": size, "models": {"cnn": {"source": SOURCE, "kwargs": KWARGS}}},
    }
    import yaml

    path = Path(tempfile.mkdtemp()) / "bench.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, lat


async def _throughput(rt, frame: np.ndarray, rate: float, seconds: float, seed: int) -> dict:
    p = rt.plane
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    before = p.frames.on_time + p.frames.late
    t0 = time.perf_counter()
    served_at: list[float] = []

    async def send(i: int) -> dict:
        res = await rt.submit(frame)
        if res["outcome"] != "dropped":
            served_at.append(time.perf_counter() - t0)
        return res

    result = await replay(arrivals, send, max_in_flight=100000)
    warm = 0.2 * seconds
    steady = [t for t in served_at if warm <= t < seconds]
    await asyncio.sleep(0.5)
    return {
        "offered_rps": rate,
        "served": p.frames.on_time + p.frames.late - before,
        "served_rps_steady": len(steady) / (seconds - warm),
        "frames": result.to_dict(),
    }


async def run_emulated(args: argparse.Namespace) -> dict:
    """The emulated traffic_analysis under a controller, serving a compressed trace."""
    from lokirl.commands.loadgen import load_arrivals
    from lokirl.experiments.simvslive import actor_cpu_s
    from lokirl.runtime.loadgen import bounded_arrivals
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    k = args.dilation
    arr, name = load_arrivals(args.trace, args.speedup, args.scale, 0)
    duration = 600.0 / args.speedup
    arr = bounded_arrivals(arr, None, duration) * k
    first = float(np.searchsorted(arr, k) / k)  # frames/s over the first epoch (dilated)
    rt = Runtime(
        RuntimeConfig(
            pipeline=args.pipeline,
            workers=args.workers or 20,
            controller=args.controller,
            emulate=True,
            dilation=k,
            epoch_s=k,
            initial_demand=max(first, 1.0),
            # The default 1.5 s fails healthy actors on a busy 2-core box, and actors
            # still starting (Ray spawns their processes two at a time) for hung ones.
            ping_timeout_s=args.ping_timeout,
        )
    )
    t0 = time.perf_counter()
    await rt.start()
    p = rt.plane
    # Serve once every actor answers (the first plan may need fewer than started).
    pings = [asyncio.wrap_future(w.actor.ping.remote().future()) for w in p.workers]
    await asyncio.wait_for(asyncio.gather(*pings, return_exceptions=True), 600.0)
    start_s = time.perf_counter() - t0
    frame = np.zeros((3, 8, 8), np.uint8)
    capacity: list[float] = []  # plan capacity (frames/s), one sample a second

    async def sample() -> None:
        while True:
            plan = p.plan
            capacity.append(0.0 if plan is None else float(plan.max_demand))
            await asyncio.sleep(1.0)

    actors = [w.actor for w in p.workers]
    for q in (p.admit_ms, p.dispatch_overhead_ms, p.complete_ms):
        q.clear()
    sampler = asyncio.create_task(sample())
    a0 = await actor_cpu_s(actors)
    c0, w0, load0 = os.times(), time.perf_counter(), os.getloadavg()[0]
    try:
        result = await replay(arr, lambda i: rt.submit(frame), max_in_flight=100000)
    finally:
        wall = time.perf_counter() - w0
        c1, load1 = os.times(), os.getloadavg()[0]
        a1 = await actor_cpu_s(actors)
        sampler.cancel()
        status = rt.status()
        await rt.stop()
    ingress_cpu = c1.user + c1.system - c0.user - c0.system
    f = status["frames"]
    served = f["on_time"] + f["late"]
    per_s = np.bincount(arr.astype(int), minlength=len(capacity))
    n = min(len(capacity), len(per_s))
    carriable = float(np.minimum(per_s[:n], np.asarray(capacity[:n])).sum())
    hop = [d + c / m for d, (c, m) in zip(p.dispatch_overhead_ms, p.complete_ms, strict=False)]
    actor_cores = [(b - a) / wall for a, b in zip(a0, a1, strict=True)]
    return {
        "mode": "emulated",
        "pipeline": rt.pipeline.name,
        "workers": len(actors),
        "controller": args.controller,
        "trace": name,
        "dilation": k,
        "cores": os.cpu_count(),
        "start_s": start_s,
        "wall_s": wall,
        "loadavg_1m": [load0, load1],
        "frames": f,
        "subrequests": status["subrequests"],
        "served_share_of_capacity": served / carriable if carriable else math.nan,
        "carriable_frames": carriable,
        "served_frames": served,
        "admit_ms_p50": percentile(list(p.admit_ms), 50),
        "admit_ms_p99": percentile(list(p.admit_ms), 99),
        "hop_overhead_ms_p50": percentile(hop, 50),
        "hop_overhead_ms_p99": percentile(hop, 99),
        "ingress_cpu_cores": ingress_cpu / wall,
        "ingress_cpu_ms_per_frame": 1000.0 * ingress_cpu / max(1, f["arrived"]),
        "ingress_cpu_ms_per_subrequest": 1000.0
        * ingress_cpu
        / max(1, status["subrequests"]["arrived"]),
        "actor_cpu_cores_total": float(np.nansum(actor_cores)),
        "actor_cpu_cores_max": float(np.nanmax(actor_cores)),
        "actor_cpu_ms_per_batch": 1000.0 * float(np.nansum(actor_cores)) * wall / max(1, p.batches),
        "solves": status["solves"],
        "reconfigurations": status["reconfigurations"],
        "client": result.to_dict(),
    }


async def run(args: argparse.Namespace) -> dict:
    from lokirl.runtime.runtime import Runtime, RuntimeConfig
    from lokirl.runtime.worker import cluster_gpus

    gpus = cluster_gpus()
    accel = "gpu" if gpus >= 1 else "cpu"
    workers = args.workers or (int(gpus) if gpus >= 1 else 1)
    path, lat = build_pipeline(args.size, args.slo_ms, accel)
    rt = Runtime(
        RuntimeConfig(pipeline=str(path), workers=workers, initial_demand=1e6, epoch_s=1.0),
        controller=Keep(),
    )
    await rt.start()
    frame = np.random.default_rng(0).integers(0, 255, (3, args.size, args.size)).astype(np.uint8)
    try:
        plan = rt.plane.plan
        capacity = sum(g.capacity for g in plan.groups)
        batch = plan.groups[0].batch_size
        # 1. Overhead at light load (one request at a time, batches of one).
        p = rt.plane
        # The plan was solved for a demand beyond capacity (largest batch); route as
        # the control loop does from the observed demand (nothing shed at admission).
        p.rebuild(0.0)
        p.admit_ms.clear()
        p.dispatch_overhead_ms.clear()
        p.complete_ms.clear()
        for _ in range(20):  # warm-up, not counted
            await rt.submit(frame)
        p.admit_ms.clear()
        p.dispatch_overhead_ms.clear()
        p.complete_ms.clear()
        load_before = os.getloadavg()[0]
        e2e = []
        for _ in range(args.light):
            t0 = time.perf_counter()
            await rt.submit(frame)
            e2e.append((time.perf_counter() - t0) * 1000.0)
        load_after = os.getloadavg()[0]
        light = (list(p.admit_ms), list(p.dispatch_overhead_ms), list(p.complete_ms))
        per_req = [a + d + c / n for a, d, (c, n) in zip(*light, strict=False)]
        k = max(1, len(per_req) // max(1, args.blocks))
        block_p99 = [percentile(per_req[i : i + k], 99) for i in range(0, len(per_req) - k + 1, k)]
        # 2. Throughput at each load (a multiple of the capacity profiled through the actor).
        loads = []
        for k, mult in enumerate(args.loads):
            loads.append(await _throughput(rt, frame, mult * capacity, args.seconds, k + 1))
    finally:
        await rt.stop()
    return {
        "device": accel,
        "workers": workers,
        "input_size": args.size,
        "profile_latency_ms": lat,
        "plan_batch_size": batch,
        "plan_capacity_rps": capacity,
        "light_requests": len(per_req),
        "loadavg_1m": [load_before, load_after],
        "admit_ms_p50": percentile(light[0], 50),
        "admit_ms_p99": percentile(light[0], 99),
        "dispatch_ms_p50": percentile(light[1], 50),
        "dispatch_ms_p99": percentile(light[1], 99),
        "complete_ms_p50": percentile([c / n for c, n in light[2]], 50),
        "complete_ms_p99": percentile([c / n for c, n in light[2]], 99),
        "router_overhead_ms_p50": percentile(per_req, 50),
        "router_overhead_ms_p99": percentile(per_req, 99),
        "router_overhead_ms_p999": percentile(per_req, 99.9),
        "router_overhead_ms_p99_blocks": block_p99,
        "light_load_e2e_ms_p50": percentile(e2e, 50),
        "light_load_e2e_ms_p99": percentile(e2e, 99),
        "loads": [
            dict(x, load=m, throughput_share=x["served_rps_steady"] / capacity)
            for m, x in zip(args.loads, loads, strict=True)
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=0, help="worker actors (0: one per GPU, else 1)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the throughput run")
    ap.add_argument("--light", type=int, default=2000, help="requests of the overhead run")
    ap.add_argument("--blocks", type=int, default=4, help="blocks the overhead p99 is split in")
    ap.add_argument("--size", type=int, default=64, help="input side in pixels")
    ap.add_argument("--slo-ms", type=float, default=1000.0, help="SLO of the bench pipeline")
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
    ap.add_argument(
        "--loads",
        type=lambda x: [float(v) for v in x.split(",")],
        default=[1.0, 1.3],
        help="offered loads as multiples of the profiled capacity (default 1.0,1.3)",
    )
    ap.add_argument(
        "--emulate", action="store_true", help="emulated traffic_analysis at scale (see above)"
    )
    ap.add_argument("--pipeline", default="traffic_analysis", help="--emulate: pipeline")
    ap.add_argument("--controller", default="loki-1s", help="--emulate: controller")
    ap.add_argument("--trace", default="diurnal_600s", help="--emulate: 10-minute trace")
    ap.add_argument("--speedup", type=float, default=10.0, help="--emulate: time compression")
    ap.add_argument("--scale", default="25:125", help="--emulate: frames/s range LO:HI")
    ap.add_argument("--dilation", type=float, default=2.0, help="--emulate: time dilation")
    ap.add_argument(
        "--ping-timeout",
        type=float,
        default=60.0,
        help="--emulate: seconds a ping may go unanswered before a worker is failed (60)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from lokirl.commands.stdout import reserve_stdout_for_json, strict_json
    from lokirl.runtime.cluster import connect

    json_out = reserve_stdout_for_json() if args.json else None  # Ray prints to stdout
    ray = connect(None, args.num_cpus)
    try:
        out = asyncio.run(run_emulated(args) if args.emulate else run(args))
    finally:
        ray.shutdown()
    if json_out is not None:
        print(strict_json(out), file=json_out)
        return 0
    if args.emulate:
        print(_emulated_text(out))
        return 0
    blocks = out["router_overhead_ms_p99_blocks"] or [math.nan]
    print(
        f"router overhead per request ({out['light_requests']} requests): "
        f"p50 {out['router_overhead_ms_p50']:.3f} ms, "
        f"p99 {out['router_overhead_ms_p99']:.3f} ms (target < 2 ms), "
        f"p99.9 {out['router_overhead_ms_p999']:.3f} ms\n"
        f"p99 of {len(blocks)} blocks: min {min(blocks):.3f}, median "
        f"{float(np.median(blocks)):.3f}, max {max(blocks):.3f} ms; parts p50/p99: admit "
        f"{out['admit_ms_p50']:.3f}/{out['admit_ms_p99']:.3f}, dispatch "
        f"{out['dispatch_ms_p50']:.3f}/{out['dispatch_ms_p99']:.3f}, complete "
        f"{out['complete_ms_p50']:.3f}/{out['complete_ms_p99']:.3f} ms; load average "
        f"{out['loadavg_1m'][0]:.2f} -> {out['loadavg_1m'][1]:.2f}\n"
        f"light-load end-to-end: p50 {out['light_load_e2e_ms_p50']:.2f} ms, "
        f"p99 {out['light_load_e2e_ms_p99']:.2f} ms"
        + "".join(
            f"\nthroughput at {x['load']:.2f}x: {x['served_rps_steady']:.1f} req/s served of "
            f"{out['plan_capacity_rps']:.1f} planned capacity = "
            f"{100 * x['throughput_share']:.1f}% (target >= 90%); offered "
            f"{x['offered_rps']:.1f} req/s, dropped {x['frames']['dropped_by_reason']}, "
            f"late {x['frames']['late']}"
            for x in out["loads"]
        )
        + f"\n{out['workers']} {out['device']} worker(s), batch {out['plan_batch_size']}, "
        f"profile (through the actor) {out['profile_latency_ms']}"
    )
    return 0


def _emulated_text(out: dict) -> str:
    f = out["frames"]
    return (
        f"{out['pipeline']} on {out['workers']} emulated workers, {out['controller']}, "
        f"{out['trace']} (dilation {out['dilation']:g}), {out['cores']} cores, load average "
        f"{out['loadavg_1m'][0]:.1f} -> {out['loadavg_1m'][1]:.1f}; start-up "
        f"{out['start_s']:.1f} s\n"
        f"frames {f['arrived']}: on time {f['on_time']}, late {f['late']}, dropped "
        f"{f['dropped']}; violation ratio {f['slo_violation_ratio']:.4f}; "
        f"{out['subrequests']['arrived']} sub-requests\n"
        f"served share of the plan's capacity: {100 * out['served_share_of_capacity']:.1f}% "
        f"(target >= 95%)\n"
        f"router overhead: admission p50/p99 {out['admit_ms_p50']:.3f}/"
        f"{out['admit_ms_p99']:.3f} ms, batch formation + dispatch + completion per request "
        f"p50/p99 {out['hop_overhead_ms_p50']:.3f}/{out['hop_overhead_ms_p99']:.3f} ms "
        f"(target p99 <= 2 ms)\n"
        f"ingress CPU {out['ingress_cpu_cores']:.2f} cores = "
        f"{out['ingress_cpu_ms_per_frame']:.2f} ms a frame, "
        f"{out['ingress_cpu_ms_per_subrequest']:.3f} ms a sub-request; emulated actors' CPU "
        f"{out['actor_cpu_cores_total']:.3f} cores in all (busiest "
        f"{out['actor_cpu_cores_max']:.4f}); solves {out['solves']}, reconfigurations "
        f"{out['reconfigurations']}"
    )


if __name__ == "__main__":
    sys.exit(main())
