"""``lokirl simvslive``: one trace and controller in the simulator and live, side by side."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from typing import Any

from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl simvslive                                   # diurnal day in 60 s at 2..8 fps, 3 workers, loki
  lokirl simvslive --trace step_600s --speedup 10 --scale 2:12 --duration 60 --json
  lokirl simvslive --pipeline my_cpu.yaml --controller inferline --workers 2
  lokirl simvslive --seeds 0,1,2                     # three draws; per-seed and mean rows
  lokirl simvslive --pipeline traffic_analysis --emulate --dilation 2 --workers 20 \\
      --controller loki --speedup 5 --scale 25:125 --duration 120   # 20 emulated GPU workers

Both runs play the same arrival times (one Poisson draw of the trace) with the
same controller spec and the same number of workers. The simulator uses the
pipeline's profile (measure it on this machine first: lokirl profile); live
serving runs Runtime on a local Ray (or --address) and replays the arrivals
open-loop in-process. Metrics as lokirl simulate defines them; accuracy is the
profile's in both. rel = (live - sim) / sim; with --seeds, rel of the means
over the seeds (and each seed's rel); the last line says how far counting alone moves
the violation ratios' difference (few violated frames: a wide band). Solves: both hosts tick at whole epochs
and skip a solve requested while one is pending; with --solver-time measured
(default) the simulator charges each solve its own wall time.

--emulate: the live workers host no model and take the profile's batch latency
asleep (lokirl.runtime.emulated), so a GPU profile on 20-100 workers runs live
on a few cores through the real ingress path; the simulator then gives each
worker its own accelerator. --dilation K plays both sides K times slower
(latencies, load times, SLO and the controller period x K, arrival rates / K)
for when the ingress cannot keep up at real time; K = 1 by default.
"""

#: Metrics compared: (key, label).
METRICS = (
    ("frame_slo_violation_ratio", "frame SLO violation ratio"),
    ("sub_slo_violation_ratio", "sub-request SLO violation ratio"),
    ("accuracy", "system accuracy"),
    ("effective_accuracy", "effective accuracy"),
    ("mean_active_workers", "mean active workers"),
    ("solves", "solves"),
    ("reconfigurations", "reconfigurations"),
    ("frames", "frames"),
    ("frames_dropped", "frames dropped"),
    ("frames_late", "frames late"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simvslive`` subcommand."""
    p = subparsers.add_parser(
        "simvslive",
        help="run one trace and controller in the simulator and live on Ray; compare",
        description=(
            "Replay the same short trace with the same controller in the simulator and on "
            "the live runtime, and print SLO violations, accuracy, workers, solves and "
            "reconfigurations side by side."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pipeline", default="traffic_analysis_cpu", help="pipeline name or YAML")
    p.add_argument("--trace", default="diurnal_600s", help="trace file or bundled name")
    p.add_argument("--speedup", type=float, default=10.0, help="compress trace time (default 10)")
    p.add_argument(
        "--rescale",
        "--scale",
        dest="scale",
        metavar="LO:HI",
        default="2:8",
        help="rescale rates (default 2:8)",
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds of trace (default 60)")
    p.add_argument("--controller", default="loki", help="controller spec (default: loki)")
    p.add_argument("--workers", type=int, default=3, help="workers (default: 3)")
    p.add_argument("--epoch", type=float, default=1.0, help="controller period in s (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the arrivals and both runs")
    p.add_argument(
        "--seeds", default=None, help="comma-separated seeds: one sim+live pair each (e.g. 0,1,2)"
    )
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (default: input)")
    p.add_argument(
        "--solver-time",
        default="measured",
        help="simulated solve delay: 'measured' (as live), 'model', or seconds",
    )
    p.add_argument(
        "--sim-cores",
        default="auto",
        help=(
            "CPU cores the simulated workers share (batches slow down when more run at once "
            "than there are cores): 'auto' = the local Ray's CPUs when it has no GPU, "
            "'none' = one accelerator per worker, or a number"
        ),
    )
    p.add_argument(
        "--sim-host-cores",
        type=float,
        default=0.0,
        help=(
            "with shared cores: cores the host's own work (ingress, data plane, Ray) keeps "
            "busy, as a live run reports it (host CPU cores); default 0"
        ),
    )
    p.add_argument(
        "--emulate",
        action="store_true",
        help="emulated accelerators live: workers sleep the profiled latency (no model)",
    )
    p.add_argument(
        "--dilation",
        type=float,
        default=1.0,
        help="time dilation K: latencies, load times, SLO and epoch x K, rates / K (default 1)",
    )
    p.add_argument(
        "--sim-overhead-ms",
        type=float,
        default=0.0,
        help=(
            "simulator: extra ms each batch takes on top of its profile (the live path's "
            "dispatch and actor hop, as the live run reports it: hop_ms_p50); default 0"
        ),
    )
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")
    p.add_argument("--max-in-flight", type=int, default=512, help="cap on awaiting requests")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=run)


def arrivals_for(args: argparse.Namespace) -> Any:
    """The arrival trace both runs play (bounded to ``--duration``)."""
    from lokirl.commands.loadgen import load_arrivals
    from lokirl.runtime.loadgen import bounded_arrivals
    from lokirl.traces.types import ArrivalTrace

    arr, name = load_arrivals(args.trace, args.speedup, args.scale, args.seed)
    arr = bounded_arrivals(arr, None, args.duration)
    if len(arr) == 0:
        raise ConfigError("--trace", args.trace, "no arrivals in --duration", "lengthen it")
    k = float(getattr(args, "dilation", 1.0))
    if k != 1.0:  # the same arrivals, k times slower
        arr = arr * k
        name = f"{name} dilated x{k:g}"
    return ArrivalTrace(arr, name=name, duration_s=float(args.duration) * k)


def initial_rate(arrivals_s: Any, epoch_s: float) -> float:
    """Mean rate over the first epoch (the simulator's default first demand)."""
    import numpy as np

    return float(np.searchsorted(arrivals_s, epoch_s) / epoch_s)


def run_sim(pipeline: Any, trace: Any, args: argparse.Namespace, demand0: float) -> dict[str, Any]:
    """Simulate the trace; the metrics compared."""
    import numpy as np

    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline import Cluster
    from lokirl.runtime.emulated import dilate_pipeline
    from lokirl.sim import SimConfig, simulate

    st: str | float = args.solver_time
    if st not in ("model", "measured"):
        st = float(st)
    k = args.dilation
    cfg = SimConfig(
        epoch_s=args.epoch * k,
        duration_s=args.duration * k,
        solver_time=st,
        initial_demand=demand0,
    )
    planned = dilate_pipeline(pipeline, k)
    # The simulator serves batches with the overhead added; its controller plans with
    # the profile, as the live one does.
    pipeline = overhead_pipeline(planned, args.sim_overhead_ms)
    controller = make_controller(args.controller)
    if pipeline is not planned:
        controller = PlansWithProfile(controller, planned)
    cluster = Cluster({pipeline.accelerators[0]: args.workers})
    cores = sim_cores(args)
    cfg = replace(cfg, shared_cores=cores, host_cores=args.sim_host_cores if cores else 0.0)
    res = simulate(
        pipeline,
        cluster,
        trace,
        controller,
        cfg,
        np.random.default_rng(args.seed),
    )
    f, s = res.frames, res.subrequests
    return {
        "frame_slo_violation_ratio": f.slo_violation_ratio,
        "sub_slo_violation_ratio": s.slo_violation_ratio,
        "accuracy": res.accuracy,
        "effective_accuracy": f.effective_accuracy,
        "mean_active_workers": res.mean_active_workers,
        "solves": res.solves,
        "reconfigurations": res.reconfigurations,
        "frames": f.arrived,
        "frames_dropped": f.dropped_total,
        "frames_late": f.late,
        "dropped_by_reason": dict(sorted(f.dropped.items())),
        "solver_wall_s": res.solver_wall_s,
        "shared_cores": cfg.shared_cores,
        "host_cores": cfg.host_cores,
    }


async def run_live(
    pipeline: Any, trace: Any, args: argparse.Namespace, demand0: float
) -> dict[str, Any]:
    """Serve the trace live (Runtime + open-loop replay in this process); the metrics compared."""
    import asyncio

    import numpy as np

    from lokirl.runtime.dataplane import percentile, service_report
    from lokirl.runtime.loadgen import replay
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    cfg = RuntimeConfig(
        pipeline=args.pipeline,
        workers=args.workers,
        controller=args.controller,
        epoch_s=args.epoch * args.dilation,
        initial_demand=demand0,
        seed=args.seed,
        emulate=args.emulate,
        dilation=args.dilation,
        # A ping unanswered 1.5 s (the default) fails healthy actors when 20 of them and
        # other jobs share two cores; the comparison is about the data path.
        ping_timeout_s=10.0,
    )
    rt = Runtime(cfg, pipeline=pipeline)  # the runtime dilates the pipeline itself
    await rt.start()
    initial_loads = rt.reconfigurations  # the first plan's loads (the simulator's are free)
    # Emulated workers never read a frame: send a tiny one (no object-store puts).
    size = args.size or (8 if args.emulate else next(iter(rt.sources.values())).input_size)
    actors = [w.actor for w in rt.plane.workers]
    actor_cpu0 = await actor_cpu_s(actors) if args.emulate else None
    frame = np.random.default_rng(args.seed).integers(0, 255, (3, size, size)).astype(np.uint8)
    active: list[int] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            active.append(rt.plane.active_workers())

    sampler = asyncio.create_task(sample())
    cpu0, self0, wall0 = host_cpu_s(), _self_cpu_s(), time.perf_counter()
    try:
        client = await replay(trace.arrivals_s, lambda i: rt.submit(frame), args.max_in_flight)
    finally:
        wall = max(1e-9, time.perf_counter() - wall0)
        host_cores = (host_cpu_s() - cpu0) / wall
        ingress_cores = (_self_cpu_s() - self0) / wall
        actor_cores = None
        if actor_cpu0 is not None:
            actor_cpu1 = await actor_cpu_s(actors)
            actor_cores = [
                (b - a) / wall
                for a, b in zip(actor_cpu0, actor_cpu1, strict=True)
                if math.isfinite(a) and math.isfinite(b)
            ] or [math.nan]
        sampler.cancel()
        status = rt.status()
        await rt.stop()
    p = rt.plane
    f, s = p.frame_tally(), p.sub_tally()
    n = max(1, int(math.ceil(args.duration * args.dilation)))  # samples: one a wall second
    hops = [rtt - worker for _v, _n, worker, rtt, _prof in p.service_obs]
    return {
        "frame_slo_violation_ratio": f.slo_violation_ratio,
        "sub_slo_violation_ratio": s.slo_violation_ratio,
        "accuracy": p.accuracy,
        "effective_accuracy": f.effective_accuracy,
        "mean_active_workers": float(np.mean(active[:n])) if active else 0.0,
        "solves": rt.solves,
        "reconfigurations": rt.reconfigurations - initial_loads,
        "frames": f.arrived,
        "frames_dropped": f.dropped_total,
        "frames_late": f.late,
        "dropped_by_reason": dict(sorted(f.dropped.items())),
        "client_dropped_by_reason": client.to_dict()["dropped_by_reason"],
        "latency_ms": status["latency_ms"],
        "load_times": status["load_times"],
        "tick_errors": rt.tick_errors,
        # Workers the runtime failed (hung, timed out, died) during the run, by kind.
        "worker_failures": status.get("worker_failures", {}),
        "solver_wall_s": rt.solver_wall_s,
        "solver_inner_s": rt.solver_inner_s,
        "solves_in_process": rt.solves_in_process,
        "service_vs_profile": service_report(p.service_obs),
        "host_cpu_cores": host_cores,
        "ingress_cpu_cores": ingress_cores,
        "ingress_cpu_ms_per_frame": 1000.0 * ingress_cores * wall / max(1, f.arrived),
        "ingress_cpu_ms_per_subrequest": 1000.0 * ingress_cores * wall / max(1, s.arrived),
        "actor_cpu_cores": None if actor_cores is None else sum(actor_cores),
        "actor_cpu_cores_max": None if actor_cores is None else max(actor_cores),
        "hop_ms_mean": float(np.mean(hops)) if hops else math.nan,
        "hop_ms_p50": percentile(hops, 50),
        "hop_ms_p99": percentile(hops, 99),
        "router_overhead_ms_p99": percentile(list(p.dispatch_overhead_ms), 99),
    }


async def actor_cpu_s(actors: list[Any]) -> list[float]:
    """CPU seconds each (emulated) worker actor's process has used so far (NaN: gone).

    An actor the runtime failed and replaced meanwhile answers with an error: NaN.
    """
    import asyncio

    futs = [asyncio.wrap_future(a.cpu_s.remote().future()) for a in actors]
    out = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 30.0)
    return [math.nan if isinstance(x, BaseException) else float(x) for x in out]


def _self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class PlansWithProfile:
    """A controller that plans with the profile whatever pipeline the simulator serves.

    With ``--sim-overhead-ms`` the simulator serves a pipeline whose batches take
    longer than the profile says; the live controller plans with the profile, so
    this one must too (else it would buy capacity for an overhead live never sees).

    Args:
        inner: The controller (its ``decide``, and ``plan`` when it has one).
        pipeline: The pipeline to plan with.

    """

    def __init__(self, inner: Any, pipeline: Any) -> None:
        self.inner = inner
        self.pipeline = pipeline
        self.name = getattr(inner, "name", type(inner).__name__)

    def decide(self, context: Any) -> Any:
        """The inner controller's decision."""
        return self.inner.decide(context)

    def plan(self, _served: Any, cluster: Any, decision: Any, opts: Any, current: Any) -> Any:
        """The inner controller's plan (or the allocator's) on the profile's pipeline."""
        from lokirl.core.allocator import solve

        planner = getattr(self.inner, "plan", None)
        if callable(planner):
            return planner(self.pipeline, cluster, decision, opts, current)
        return solve(self.pipeline, cluster, decision.demand, opts, current)

    def __repr__(self) -> str:
        return f"PlansWithProfile({self.inner!r})"


def overhead_pipeline(pipeline: Any, overhead_ms: float) -> Any:
    """``pipeline`` with ``overhead_ms`` added to every profiled batch latency (0: itself).

    The simulator's stand-in for the live path's per-batch cost outside the worker
    (dispatch, the actor call there and back), which the profile leaves out. (The
    simulator's early-drop rule then counts it too; the live rule does not.)
    """
    from dataclasses import replace as _replace

    from lokirl.core.pipeline import Task

    if not overhead_ms:
        return pipeline
    tasks = []
    for t in pipeline.tasks:
        vs = [
            _replace(
                v,
                latency_ms={
                    a: {b: ms + overhead_ms for b, ms in tab.items()}
                    for a, tab in v.latency_ms.items()
                },
            )
            for v in t.variants
        ]
        tasks.append(Task(t.name, tuple(vs), t.children))
    return _replace(pipeline, tasks=tuple(tasks))


#: Ray's own daemons on a node (``/proc/PID/comm`` names; truncated to 15 characters).
RAY_DAEMONS = ("raylet", "gcs_server")


def host_cpu_s() -> float:
    """CPU seconds used so far by this process and, where ``/proc`` shows them, Ray's daemons.

    What a live run spends besides the worker actors' batches: the ingress, data plane
    and Ray client in this process, the raylet and the GCS. Read before and after the
    replay, the difference over the wall time is the host's share of the cores.
    """
    t = os.times()
    total = t.user + t.system
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    proc = "/proc"
    if not os.path.isdir(proc):
        return total
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(f"{proc}/{pid}/comm") as fh:
                if fh.read().strip() not in RAY_DAEMONS:
                    continue
            with open(f"{proc}/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def compare(sim: dict[str, Any], live: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows ``{metric, sim, live, rel}`` with rel = (live - sim) / sim (None when sim is 0)."""
    rows = []
    for key, label in METRICS:
        a, b = float(sim[key]), float(live[key])
        rel = (b - a) / a if a else (0.0 if b == 0 else None)
        rows.append({"metric": key, "label": label, "sim": a, "live": b, "rel": rel})
    return rows


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{metric, sim, live, rel, rel_per_seed}``: means over the runs; rel of the means."""
    import numpy as np

    rows = []
    for key, label in METRICS:
        a = float(np.mean([r["sim"][key] for r in runs]))
        b = float(np.mean([r["live"][key] for r in runs]))
        rel = (b - a) / a if a else (0.0 if b == 0 else None)
        per = [next(c["rel"] for c in r["comparison"] if c["metric"] == key) for r in runs]
        rows.append(
            {"metric": key, "label": label, "sim": a, "live": b, "rel": rel, "rel_per_seed": per}
        )
    return rows


def counting_noise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How far counting alone moves the frame violation ratios' relative difference.

    Violated frames (dropped or late) are few and near-Poisson: with ``a`` in the
    simulator and ``b`` live, summed over the runs, ``log(b / a)`` has a standard
    error of about ``sqrt(1/a + 1/b)``. Returns the counts and the 95% band
    ``exp(1.96 * se) - 1`` (None when a side counted none): a relative difference
    inside it was not measured.
    """
    a = sum(r["sim"]["frames_dropped"] + r["sim"]["frames_late"] for r in runs)
    b = sum(r["live"]["frames_dropped"] + r["live"]["frames_late"] for r in runs)
    band = math.exp(1.96 * math.sqrt(1 / a + 1 / b)) - 1 if a > 0 and b > 0 else None
    return {"sim_violated_frames": a, "live_violated_frames": b, "rel_band_95": band}


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'metric':34s} {'sim':>10s} {'live':>10s} {'rel':>8s}")
    for r in rows:
        rel = "n/a" if r["rel"] is None else f"{100 * r['rel']:+.1f}%"
        extra = ""
        if "rel_per_seed" in r:
            extra = "  per seed: " + ", ".join(
                "n/a" if x is None else f"{100 * x:+.1f}%" for x in r["rel_per_seed"]
            )
        print(f"{r['label']:34s} {r['sim']:10.4g} {r['live']:10.4g} {rel:>8s}{extra}")


def sim_cores(args: argparse.Namespace) -> float | None:
    """Cores the simulated workers share, from ``--sim-cores`` (None: no sharing)."""
    v = str(args.sim_cores).strip().lower()
    if v == "none" or (getattr(args, "emulate", False) and v == "auto"):
        return None  # emulated accelerators: one per worker, sharing no cores
    if v == "auto":
        if args.address is not None:
            return None
        try:
            import torch

            if torch.cuda.is_available():
                return None
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        return float(args.num_cpus or os.cpu_count() or 1)
    try:
        cores = float(v)
    except ValueError:
        cores = -1.0
    if not cores > 0:
        raise ConfigError(
            "--sim-cores", args.sim_cores, "not auto, none or a positive number", "pass auto"
        )
    return cores


def run_one(args: argparse.Namespace, pipeline: Any) -> dict[str, Any]:
    """One seed: the simulated and the live run and their comparison."""
    import asyncio

    trace = arrivals_for(args)
    demand0 = initial_rate(trace.arrivals_s, args.epoch * args.dilation)
    sim = run_sim(pipeline, trace, args, demand0)
    live = asyncio.run(run_live(pipeline, trace, args, demand0))
    return {
        "seed": args.seed,
        "trace": trace.name,
        "frames": len(trace.arrivals_s),
        "sim": sim,
        "live": live,
        "comparison": compare(sim, live),
    }


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl simvslive``."""
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.runtime.cluster import connect

    if args.workers < 1:
        raise ConfigError("--workers", str(args.workers), "must be at least 1", "pass 2")
    if not (args.duration > 0 and math.isfinite(args.duration)):
        raise ConfigError("--duration", str(args.duration), "must be positive", "pass 60")
    seeds = [args.seed]
    if args.seeds:
        try:
            seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(
                "--seeds", args.seeds, "not a list of integers", "pass 0,1,2"
            ) from None
        if not seeds:
            raise ConfigError("--seeds", args.seeds, "no seeds", "pass 0,1,2")
    sim_cores(args)  # a bad --sim-cores fails here, before Ray starts
    if not (math.isfinite(args.dilation) and args.dilation > 0):
        raise ConfigError(
            "--dilation", str(args.dilation), "must be a number > 0", "pass 1 (real time) or 4"
        )
    if not (args.sim_overhead_ms >= 0 and math.isfinite(args.sim_overhead_ms)):
        raise ConfigError(
            "--sim-overhead-ms", str(args.sim_overhead_ms), "must be >= 0", "pass 0 or 1.5"
        )
    if args.dilation != 1.0 and not args.emulate:
        raise ConfigError(
            "--dilation",
            str(args.dilation),
            "only emulated workers can be slowed down (real models take their own time)",
            "add --emulate, or drop --dilation",
        )
    if not (args.sim_host_cores >= 0 and math.isfinite(args.sim_host_cores)):
        raise ConfigError(
            "--sim-host-cores", str(args.sim_host_cores), "must be >= 0", "pass 0 or 0.5"
        )
    pipeline = load_pipeline(args.pipeline)
    for s in seeds:  # fail on a bad trace before starting Ray
        arrivals_for(argparse.Namespace(**{**vars(args), "seed": s}))
    ray = connect(args.address, args.num_cpus)
    runs = []
    try:
        for s in seeds:
            runs.append(run_one(argparse.Namespace(**{**vars(args), "seed": s}), pipeline))
    finally:
        ray.shutdown()
    first = runs[0]
    out: dict[str, Any] = {
        "pipeline": pipeline.name,
        "trace": first["trace"],
        "duration_s": args.duration,
        "frames": first["frames"],
        "controller": args.controller,
        "workers": args.workers,
        "emulate": args.emulate,
        "dilation": args.dilation,
        "sim_overhead_ms": args.sim_overhead_ms,
        "seed": first["seed"],
        "sim": first["sim"],
        "live": first["live"],
        "comparison": first["comparison"],
    }
    out["counting"] = counting_noise(runs)
    if len(runs) > 1:
        out["seeds"] = seeds
        out["runs"] = runs
        out["summary"] = summarise(runs)
    if args.json:
        print(json.dumps(out, default=str))
        return 0
    for r in runs:
        sim, live = r["sim"], r["live"]
        print(
            f"{pipeline.name} <- {r['trace']} ({r['frames']} frames in "
            f"{args.duration:g} s), controller {args.controller}, {args.workers} workers, "
            f"seed {r['seed']}"
        )
        _print_rows(r["comparison"])
        print(
            f"dropped by reason: sim {sim['dropped_by_reason']}, live {live['dropped_by_reason']}"
        )
        print(
            f"solver wall time: sim {sim['solver_wall_s']:.1f} s, live {live['solver_wall_s']:.1f} s "
            f"({live['solves_in_process']} of {live['solves']} solves in a separate process)"
        )
        print(
            f"host CPU (this process + Ray daemons) while serving: "
            f"{live['host_cpu_cores']:.2f} cores (simulated: {sim['host_cores']:g}); this "
            f"process {live['ingress_cpu_cores']:.2f} cores = "
            f"{live['ingress_cpu_ms_per_frame']:.2f} ms a frame, "
            f"{live['ingress_cpu_ms_per_subrequest']:.3f} ms a sub-request"
        )
        print(
            f"live batches' hop (round trip - worker time): mean {live['hop_ms_mean']:.2f} ms, "
            f"p50 {live['hop_ms_p50']:.2f} ms, "
            f"p99 {live['hop_ms_p99']:.2f} ms (simulated extra per batch: "
            f"{args.sim_overhead_ms:g} ms)"
        )
        if live["actor_cpu_cores"] is not None:
            print(
                f"emulated worker actors' CPU: {live['actor_cpu_cores']:.3f} cores in all, "
                f"busiest {live['actor_cpu_cores_max']:.4f}"
            )
        for v, x in live["service_vs_profile"].items():
            print(
                f"live {v}: {x['batches']} batches, worker time "
                f"{x['worker_over_profile_p50']:.2f}x and round trip "
                f"{x['roundtrip_over_profile_p50']:.2f}x the profile (median)"
            )
        print()
    if len(runs) > 1:
        print(f"mean over seeds {','.join(map(str, seeds))}:")
        _print_rows(out["summary"])
    c = out["counting"]
    band = "n/a" if c["rel_band_95"] is None else f"+-{100 * c['rel_band_95']:.0f}%"
    print(
        f"violated frames counted: sim {c['sim_violated_frames']:g}, live "
        f"{c['live_violated_frames']:g}; counting alone moves the frame violation ratio's "
        f"relative difference by about {band} (95%): a smaller difference is not measured"
    )
    return 0
