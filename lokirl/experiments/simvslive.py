"""One trace and controller in the simulator and live, side by side (``lokirl simvslive``).

Both runs play the same arrival times with the same controller spec and the same
number of workers: :func:`run_sim` in the simulator with the pipeline's profile,
:func:`run_live` on :class:`lokirl.runtime.runtime.Runtime` (a Ray connection must
be up) with the arrivals replayed open-loop in-process. :func:`compare`,
:func:`summarise` and :func:`counting_noise` are pure functions of their metrics;
:func:`run_seeds` plays one pair per seed and assembles the report.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from lokirl.errors import ConfigError
from lokirl.sim.overhead import OverheadTrace

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


@dataclass(frozen=True)
class SimVsLiveOptions:
    """How both runs are set up (the options of ``lokirl simvslive`` besides the trace).

    Attributes:
        pipeline: Pipeline name or YAML (the live runtime loads it by this name).
        controller: Controller spec both runs use.
        workers: Workers on both sides.
        epoch: Controller period, seconds (before dilation).
        seed: Seed of the arrivals and both runs.
        duration: Seconds of trace played (before dilation).
        size: Frame side in pixels sent live (``None``: the source's input size;
            8 with emulated workers).
        solver_time: Simulated solve delay: ``"measured"``, ``"model"`` or seconds.
        sim_cores: Cores the simulated workers share: ``"auto"``, ``"none"`` or a number.
        sim_host_cores: With shared cores, cores the host's own work keeps busy.
        emulate: Live workers sleep the profiled latency instead of running models.
        dilation: Time dilation K (latencies, SLO and epoch x K, rates / K).
        sim_overhead_ms: Extra ms per simulated batch on top of its profile.
        address: Ray cluster joined (``None``: a local Ray).
        num_cpus: CPUs of a local Ray.
        max_in_flight: Cap on requests awaiting an answer in the live replay.
        hop_replay: After each live run, simulate it again four times: with the run's
            mean hold (what kept a worker from its next batch beyond the profiled latency:
            its own time over the profile, the hop, routing the results on) as the
            constant per-batch overhead; with its holds drawn by the moment they were
            measured (:class:`~lokirl.sim.overhead.OverheadTrace`); and with those holds
            and each frame at the moment the runtime received it
            (:func:`received_trace`: the live run's per-second counts); and with the
            received frames and the mean hold (one measured constant: a model of the
            live path rather than a replay of it).

    """

    pipeline: str = "traffic_analysis_cpu"
    controller: str = "loki"
    workers: int = 3
    epoch: float = 1.0
    seed: int = 0
    duration: float = 60.0
    size: int | None = None
    solver_time: str = "measured"
    sim_cores: str = "auto"
    sim_host_cores: float = 0.0
    emulate: bool = False
    dilation: float = 1.0
    sim_overhead_ms: float = 0.0
    address: str | None = None
    num_cpus: int | None = None
    max_in_flight: int = 512
    hop_replay: bool = True


def initial_rate(arrivals_s: Any, epoch_s: float) -> float:
    """Mean rate over the first epoch (the simulator's default first demand)."""
    import numpy as np

    return float(np.searchsorted(arrivals_s, epoch_s) / epoch_s)


def run_sim(
    pipeline: Any,
    trace: Any,
    opts: SimVsLiveOptions,
    demand0: float,
    overhead: OverheadTrace | float | None = None,
    wake_delay: OverheadTrace | None = None,
) -> dict[str, Any]:
    """Simulate the trace; the metrics compared.

    ``overhead``: the per-batch overhead, in seconds or as measured hops (default:
    ``opts.sim_overhead_ms``). ``wake_delay``: measured waits from waking an idle
    worker to its dispatch (default: none).
    """
    import numpy as np

    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline import Cluster
    from lokirl.runtime.emulated import dilate_pipeline
    from lokirl.sim import SimConfig, simulate

    st: str | float = opts.solver_time
    if st not in ("model", "measured"):
        st = float(st)
    k = opts.dilation
    cfg = SimConfig(
        epoch_s=opts.epoch * k,
        duration_s=opts.duration * k,
        solver_time=st,
        initial_demand=demand0,
    )
    # The live hop (dispatch, the actor call there and back) occupies a simulated
    # worker beyond its profile; plans and the early-drop rule read the profile, as live.
    if isinstance(overhead, OverheadTrace):
        cfg = replace(cfg, batch_overhead=overhead)
    else:
        secs = opts.sim_overhead_ms / 1000.0 if overhead is None else float(overhead)
        cfg = replace(cfg, batch_overhead_s=secs)
    cfg = replace(cfg, wake_delay=wake_delay)
    pipeline = dilate_pipeline(pipeline, k)
    controller = make_controller(opts.controller)
    cluster = Cluster({pipeline.accelerators[0]: opts.workers})
    cores = sim_cores(opts)
    cfg = replace(cfg, shared_cores=cores, host_cores=opts.sim_host_cores if cores else 0.0)
    res = simulate(
        pipeline,
        cluster,
        trace,
        controller,
        cfg,
        np.random.default_rng(opts.seed),
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
        "sub_dropped_by_task": dict(sorted(res.dropped_by_task.items())),
        "solver_wall_s": res.solver_wall_s,
        "shared_cores": cfg.shared_cores,
        "host_cores": cfg.host_cores,
        "batches_by_variant": batch_sizes(res.batches),
        "solve_log": [[round(t, 3), reason] for t, reason in res.solve_log],
        # Violated frames by the second they were finalised in.
        "violations_per_s": [int(x) for x in res.series["frame_violations"]],
    }


def batch_sizes(tally: Any) -> dict[str, dict[str, Any]]:
    """Per variant: batches, the requests in them, the mean batch size and the histogram.

    Args:
        tally: Per variant, batches by size.

    """
    out: dict[str, dict[str, Any]] = {}
    for v, hist in sorted(tally.items()):
        b = sum(hist.values())
        r = sum(n * c for n, c in hist.items())
        out[v] = {
            "batches": b,
            "requests": r,
            "mean_size": r / b if b else math.nan,
            "by_size": {str(n): c for n, c in sorted(hist.items())},
        }
    return out


async def run_live(
    pipeline: Any, trace: Any, opts: SimVsLiveOptions, demand0: float
) -> dict[str, Any]:
    """Serve the trace live (Runtime + open-loop replay in this process); the metrics compared."""
    import asyncio

    import numpy as np

    from lokirl.runtime.dataplane import percentile, service_report
    from lokirl.runtime.loadgen import replay
    from lokirl.runtime.runtime import Runtime, RuntimeConfig
    from lokirl.sim import SimConfig

    # The allocator options the simulated run solves with (solver, work bound): the
    # same demand gives the same plan on both sides. Equal-objective plans differ in
    # batch sizes from solver to solver, and those batch sizes move violations.
    alloc = SimConfig().allocator
    cfg = RuntimeConfig(
        pipeline=opts.pipeline,
        workers=opts.workers,
        controller=opts.controller,
        epoch_s=opts.epoch * opts.dilation,
        initial_demand=demand0,
        seed=opts.seed,
        emulate=opts.emulate,
        dilation=opts.dilation,
        # A ping unanswered 1.5 s (the default) fails healthy actors when 20 of them and
        # other jobs share two cores; the comparison is about the data path.
        ping_timeout_s=10.0,
        solver=alloc.solver,
        allocator={f.name: getattr(alloc, f.name) for f in fields(alloc) if f.name != "solver"},
    )
    rt = Runtime(cfg, pipeline=pipeline)  # the runtime dilates the pipeline itself
    await rt.start()
    initial_loads = rt.reconfigurations  # the first plan's loads (the simulator's are free)
    # Emulated workers never read a frame: send a tiny one (no object-store puts).
    size = opts.size or (8 if opts.emulate else next(iter(rt.sources.values())).input_size)
    actors = [w.actor for w in rt.plane.workers]
    actor_cpu0 = await actor_cpu_s(actors) if opts.emulate else None
    frame = np.random.default_rng(opts.seed).integers(0, 255, (3, size, size)).astype(np.uint8)
    active: list[int] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            active.append(rt.plane.active_workers())

    sampler = asyncio.create_task(sample())
    rt.plane.hop_log = [] if opts.hop_replay else None
    rt.plane.arrival_log = [] if opts.hop_replay else None
    # The batch records the report averages cover this run, every batch of it (the data
    # plane keeps the last 20,000 by default), as the hold log does.
    rt.plane.service_obs = deque()
    rt.plane.complete_ms = deque()
    rt.plane.wake_ms = deque()
    rt.plane.violation_log = []
    cpu0, self0, wall0 = host_cpu_s(), _self_cpu_s(), time.perf_counter()
    # Time 0 and the controller's ticks at the first send, as the simulator has them (the
    # set-up above took a fraction of a second after the runtime started its clock).
    replay_lag = rt.restart_clock()
    try:
        client = await replay(trace.arrivals_s, lambda i: rt.submit(frame), opts.max_in_flight)
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
    n = max(1, int(math.ceil(opts.duration * opts.dilation)))  # samples: one a wall second
    # Solves started while the trace plays, as the simulator counts them (its controller
    # stops at the trace's end; live, ticks go on while the last frames drain).
    span = float(getattr(trace, "duration_s", None) or n)
    solve_log = [[0.0, "initial"]] + [
        [d["t"], d["reason"]] for d in rt.decisions if d.get("started") and d["t"] < span
    ]
    hops = [rtt - worker for _v, _n, worker, rtt, _prof in p.service_obs]
    wakes = [ms for _t, ms in p.wake_ms]
    return {
        "frame_slo_violation_ratio": f.slo_violation_ratio,
        "sub_slo_violation_ratio": s.slo_violation_ratio,
        "accuracy": p.accuracy,
        "effective_accuracy": f.effective_accuracy,
        "mean_active_workers": float(np.mean(active[:n])) if active else 0.0,
        "solves": len(solve_log),
        "solves_completed": rt.solves,  # every solve finished, the drain's included
        "reconfigurations": rt.reconfigurations - initial_loads,
        "frames": f.arrived,
        "frames_dropped": f.dropped_total,
        "frames_late": f.late,
        "dropped_by_reason": dict(sorted(f.dropped.items())),
        "client_dropped_by_reason": client.to_dict()["dropped_by_reason"],
        "sub_dropped_by_task": dict(sorted(p.dropped_by_task.items())),
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
        "batches_by_variant": batch_sizes(p.batch_tally),
        "hop_ms_mean": float(np.mean(hops)) if hops else math.nan,
        "hop_ms_p50": percentile(hops, 50),
        "hop_ms_p99": percentile(hops, 99),
        # What held a worker beyond its profiled latency, per batch, as the traced replays
        # charge it (a batch quicker than its profile counts 0: OverheadTrace): its own
        # time over the profile, the hop, routing the results on.
        "hold_ms_mean": 1000.0 * float(np.mean([max(0.0, h) for _t, h in p.hop_log]))
        if p.hop_log
        else math.nan,
        "worker_over_profile_ms_mean": float(
            np.mean([worker - prof for _v, _n, worker, _rtt, prof in p.service_obs])
        )
        if p.service_obs
        else math.nan,
        "complete_ms_mean": float(np.mean([c for c, _n in p.complete_ms]))
        if p.complete_ms
        else math.nan,
        "router_overhead_ms_p99": percentile(list(p.dispatch_overhead_ms), 99),
        # Batches an idle worker dispatched after routing woke it: the wait from the wake
        # to the dispatch (the event loop's latency), which neither the hold nor the
        # simulator (it starts such a batch at the arrival) counts.
        "wakes": len(wakes),
        "wake_ms_mean": float(np.mean(wakes)) if wakes else math.nan,
        "wake_ms_p99": percentile(wakes, 99),
        "wake_ms_max": max(wakes, default=math.nan),
        # Per 10 s of the replay: (wakes, summed ms, longest ms) where to look for stalls.
        "wake_ms_by_10s": wake_windows(p.wake_ms, wall0, 10.0),
        # The runtime clock's lead over the replay, removed at the first send.
        "replay_lag_s": replay_lag,
        # Each solve started: (seconds since serving started, reason); the first plan at 0.
        "solve_log": solve_log,
        # (seconds since the replay started, hop s) per batch; popped by run_pair
        "_hop_samples": [(t - wall0, h) for t, h in (p.hop_log or ())],
        # (seconds since the replay started, wake-to-dispatch s) per wake; popped by run_pair
        "_wake_samples": [(t - wall0, ms / 1000.0) for t, ms in p.wake_ms],
        # Each frame's arrival as the runtime received it (s from the first send); popped
        # by run_pair
        "_arrivals_s": list(p.arrival_log or ()),
        # Violated frames by the second they were finalised in, as the simulator counts.
        "violations_per_s": per_second(p.violation_log or ()),
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


#: Ray's own daemons on a node (``/proc/PID/comm`` names; truncated to 15 characters).
RAY_DAEMONS = ("raylet", "gcs_server")


def host_cpu_s() -> float:
    """CPU seconds used so far by this process and, where ``/proc`` shows them, Ray's daemons.

    What a live run spends besides the worker actors' batches: the ingress, data plane
    and Ray client in this process, the raylet and the GCS. Read before and after the
    replay, the difference over the wall time is the host's share of the cores.
    """
    total = time.process_time()  # this process, every thread, at clock resolution (not ticks)
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


def sim_cores(opts: SimVsLiveOptions) -> float | None:
    """Cores the simulated workers share, from ``--sim-cores`` (None: no sharing)."""
    v = str(opts.sim_cores).strip().lower()
    if v == "none" or (getattr(opts, "emulate", False) and v == "auto"):
        return None  # emulated accelerators: one per worker, sharing no cores
    if v == "auto":
        if opts.address is not None:
            return None
        try:
            import torch

            if torch.cuda.is_available():
                return None
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        return float(opts.num_cpus or os.cpu_count() or 1)
    try:
        cores = float(v)
    except ValueError:
        cores = -1.0
    if not cores > 0:
        raise ConfigError(
            "--sim-cores", opts.sim_cores, "not auto, none or a positive number", "pass auto"
        )
    return cores


def solve_divergence(
    sim_log: list[list[Any]], live_log: list[list[Any]], tolerance_s: float = 1.0
) -> dict[str, Any]:
    """Where the two sides' solves part: the first solve started on one side only.

    Solves are matched in order; the first pair further apart than ``tolerance_s``
    (a controller period: the two sides tick on the same whole seconds), or the
    first solve left over when one side stops solving, is the divergence.

    Args:
        sim_log: ``[t, reason]`` per solve started in the simulator, in order.
        live_log: The same for the live run.
        tolerance_s: Largest gap between two solves counted the same solve.

    Returns:
        ``matched`` (solves paired before the divergence), ``diverged_at_s`` (the
        earlier of the two times there; ``None``: the logs agree), ``sim_next`` and
        ``live_next`` (the solve each side made there, ``None`` if none), and the
        solves per reason on each side (``sim_reasons``, ``live_reasons``).

    """
    matched = 0
    for a, b in zip(sim_log, live_log, strict=False):
        if abs(float(a[0]) - float(b[0])) > tolerance_s:
            break
        matched += 1
    sim_next = list(sim_log[matched]) if matched < len(sim_log) else None
    live_next = list(live_log[matched]) if matched < len(live_log) else None
    times = [float(x[0]) for x in (sim_next, live_next) if x is not None]

    def reasons(log: list[list[Any]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for _t, reason in log:
            out[str(reason)] = out.get(str(reason), 0) + 1
        return dict(sorted(out.items()))

    return {
        "matched": matched,
        "diverged_at_s": min(times) if times else None,
        "sim_next": sim_next,
        "live_next": live_next,
        "sim_reasons": reasons(sim_log),
        "live_reasons": reasons(live_log),
    }


def per_second(times_s: Sequence[float]) -> list[int]:
    """Counts of ``times_s`` per whole second from 0 (negative times in second 0)."""
    import numpy as np

    secs = np.maximum(np.asarray(times_s, dtype=float).astype(np.int64), 0)
    return np.bincount(secs).tolist()


def violation_gaps(
    sim_per_s: Sequence[int], live_per_s: Sequence[int], window_s: int = 10, top: int = 3
) -> list[dict[str, int]]:
    """The windows where live violated the most frames more than the simulator.

    Args:
        sim_per_s: Violated frames per second, simulated.
        live_per_s: The same, live.
        window_s: Window length in seconds.
        top: How many windows to return.

    Returns:
        ``{"from_s", "to_s", "sim", "live"}`` per window, largest ``live - sim`` first
        (only windows where live violated more).

    """
    n = max(len(sim_per_s), len(live_per_s))
    rows = []
    for a in range(0, n, window_s):
        sim = int(sum(sim_per_s[a : a + window_s]))
        live = int(sum(live_per_s[a : a + window_s]))
        if live > sim:
            rows.append({"from_s": a, "to_s": a + window_s, "sim": sim, "live": live})
    rows.sort(key=lambda r: (r["sim"] - r["live"], r["from_s"]))
    return rows[:top]


def describe_received(rp: dict[str, Any]) -> str:
    """Lines on a replay of the received arrivals.

    Every such replay has its solves against live's; the ``received`` replay itself
    also the arrival lag and the worst windows (the other replays share those, so
    they are said once).
    """
    lines = []
    lag = rp.get("arrival_lag_ms")
    if lag is not None:
        lines.append(f"  received after sent: mean {lag['mean']:.1f}, p99 {lag['p99']:.1f} ms")
    lines.append(f"  {describe_solves(rp['solves_compared'])}")
    if "violation_gaps" in rp:
        gaps = "; ".join(
            f"{g['from_s']}-{g['to_s']} s sim {g['sim']} live {g['live']}"
            for g in rp["violation_gaps"]
        )
        lines.append(f"  violated frames, windows where live lost the most more: {gaps or 'none'}")
    return "\n".join(lines)


def describe_solves(sc: dict[str, Any]) -> str:
    """One line on :func:`solve_divergence`'s result, for the command's report."""
    where = (
        "the same solves throughout"
        if sc["diverged_at_s"] is None
        else f"first apart at {sc['diverged_at_s']:g} s (sim {sc['sim_next']}, "
        f"live {sc['live_next']})"
    )
    return (
        f"solves: {sc['matched']} started together, {where}; by reason: sim "
        f"{sc['sim_reasons']}, live {sc['live_reasons']}"
    )


def run_pair(opts: SimVsLiveOptions, pipeline: Any, trace: Any) -> dict[str, Any]:
    """One seed: the simulated and the live run of ``trace`` and their comparison.

    Args:
        opts: The setup (``opts.seed`` seeds both runs).
        pipeline: The loaded pipeline (``opts.pipeline``).
        trace: The arrivals both runs play (:class:`lokirl.traces.types.ArrivalTrace`).

    """
    import asyncio

    demand0 = initial_rate(trace.arrivals_s, opts.epoch * opts.dilation)
    sim = run_sim(pipeline, trace, opts, demand0)
    live = asyncio.run(run_live(pipeline, trace, opts, demand0))
    hops = live.pop("_hop_samples", [])
    wake_samples = live.pop("_wake_samples", [])
    received = live.pop("_arrivals_s", [])
    out: dict[str, Any] = {
        "seed": opts.seed,
        "trace": trace.name,
        "frames": len(trace.arrivals_s),
        "sim": sim,
        "live": live,
        "comparison": compare(sim, live),
        "solves_compared": solve_divergence(sim["solve_log"], live["solve_log"]),
    }
    if opts.hop_replay and hops:
        traced = OverheadTrace.from_samples(hops)
        hold_ms = 1000.0 * traced.mean_s
        reps: dict[str, Any] = {}
        out["replays"] = reps

        def replay(tr: Any, overhead: Any, wake: OverheadTrace | None = None, **extra: Any):
            again = run_sim(pipeline, tr, opts, demand0, overhead, wake)
            rec = {"overhead_ms_mean": hold_ms, **extra, "sim": again}
            rec["comparison"] = compare(again, live)
            if tr is not trace:  # the received replays: their solves against live's
                rec["solves_compared"] = solve_divergence(again["solve_log"], live["solve_log"])
            return rec

        reps["mean_hop"] = replay(trace, traced.mean_s)
        reps["traced_hop"] = replay(trace, traced)
        arrived = received_trace(trace, received)
        if arrived is not None:
            reps["received"] = replay(
                arrived, traced, arrival_lag_ms=arrival_lag_ms(trace, arrived)
            )
            reps["received"]["violation_gaps"] = violation_gaps(
                reps["received"]["sim"]["violations_per_s"], live["violations_per_s"], window_s=10
            )
            # The same arrivals with one constant for the live path (a model, not a
            # replay of measured holds): how much the holds' timing adds.
            reps["received_mean"] = replay(arrived, traced.mean_s)
            if wake_samples:
                # The received replay plus each wake's measured wait before its batch.
                woken = OverheadTrace.from_samples(wake_samples)
                wake_ms = 1000.0 * woken.mean_s
                reps["received_wake"] = replay(arrived, traced, woken, wake_ms_mean=wake_ms)
                # The same with holds and wakes drawn from 50 ms bins, not 1 s: a stall that
                # holds every worker at once stays at its moment instead of being spread
                # over its second.
                reps["received_fine"] = replay(
                    arrived,
                    OverheadTrace.from_samples(hops, bin_s=FINE_BIN_S),
                    OverheadTrace.from_samples(wake_samples, bin_s=FINE_BIN_S),
                    wake_ms_mean=wake_ms,
                    bin_s=FINE_BIN_S,
                )
    return out


def wake_windows(
    wakes: Sequence[tuple[float, float]], t0: float, window_s: float
) -> list[tuple[int, float, float]]:
    """Wake-to-dispatch waits per window: ``(count, summed ms, longest ms)`` each.

    Args:
        wakes: ``(perf_counter time, ms)`` per batch (:attr:`DataPlane.wake_ms`).
        t0: The ``perf_counter`` time window 0 starts at.
        window_s: Window length in seconds.

    """
    out: list[list[float]] = []
    for t, ms in wakes:
        k = max(0, int((t - t0) // window_s))
        while len(out) <= k:
            out.append([0, 0.0, 0.0])
        row = out[k]
        row[0] += 1
        row[1] += ms
        row[2] = max(row[2], ms)
    return [(int(n), round(total, 3), round(top, 3)) for n, total, top in out]


def received_trace(trace: Any, received_s: Sequence[float]) -> Any:
    """The trace with each frame at the moment the runtime received it, or None.

    The live runtime counts a frame in the second it receives it, some milliseconds
    after it was sent; a controller deciding on one second's count (``trigger``'s band
    test) can then decide differently from the simulator, which counts it when sent.
    Replaying the received times gives the simulator the live run's counts.

    Args:
        trace: The arrivals sent.
        received_s: Arrival times as received (seconds from the first send).

    Returns:
        An :class:`~lokirl.traces.types.ArrivalTrace` of the received times, or
        ``None`` when their number differs from the trace's (frames the client could
        not send).

    """
    import numpy as np

    from lokirl.traces.types import ArrivalTrace

    if len(received_s) != len(trace.arrivals_s):
        return None
    arr = np.maximum(np.sort(np.asarray(received_s, dtype=float)), 0.0)
    duration = max(float(trace.duration_s), float(arr[-1]) if len(arr) else 0.0)
    return ArrivalTrace(arr, name=trace.name, duration_s=duration)


def arrival_lag_ms(sent: Any, received: Any) -> dict[str, float]:
    """Mean, p50, p99 and max of received minus sent time, frame by frame (ms).

    Both traces are sorted; the ``i``-th received frame is paired with the ``i``-th sent.
    """
    import numpy as np

    lag = 1000.0 * (np.asarray(received.arrivals_s) - np.asarray(sent.arrivals_s))
    if not len(lag):
        return {"mean": math.nan, "p50": math.nan, "p99": math.nan, "max": math.nan}
    sent_s = np.asarray(sent.arrivals_s)
    windows = (sent_s // 10.0).astype(int)
    by_10s = np.zeros(int(windows.max()) + 1)
    np.maximum.at(by_10s, windows, lag)
    return {
        "mean": float(lag.mean()),
        "p50": float(np.percentile(lag, 50)),
        "p99": float(np.percentile(lag, 99)),
        "max": float(lag.max()),
        # The longest lag per 10 s of sent time: where the ingress stalled.
        "max_by_10s": [round(float(v), 3) for v in by_10s],
    }


#: The simulator's replays of a live run (:attr:`SimVsLiveOptions.hop_replay`): key, label.
REPLAYS = (
    ("mean_hop", "simulator with the run's mean hold"),
    ("traced_hop", "simulator with the run's holds, drawn by the moment measured"),
    ("received", "simulator with the run's holds and each frame when received"),
    ("received_mean", "simulator with the run's mean hold and each frame when received"),
    (
        "received_wake",
        "simulator with the run's holds, each frame when received and each wake's wait",
    ),
    ("received_fine", "the same with holds and wakes drawn by the 50 ms they were measured in"),
)

#: Bin width of the ``received_fine`` replay's holds and wakes, seconds.
FINE_BIN_S = 0.05


def replay_summaries(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """:func:`summarise` of each replay over the runs that have it (every run, or none)."""
    out = {}
    for key, _label in REPLAYS:
        if runs and all(key in r.get("replays", {}) for r in runs):
            out[key] = summarise([{**r["replays"][key], "live": r["live"]} for r in runs])
    return out


def run_seeds(
    opts: SimVsLiveOptions, pipeline: Any, traces: Sequence[tuple[int, Any]]
) -> dict[str, Any]:
    """One simulated and live pair per seed on a Ray connection; the report.

    Args:
        opts: The setup (its ``seed`` is replaced by each seed's).
        pipeline: The loaded pipeline (``opts.pipeline``).
        traces: ``(seed, arrivals)`` pairs, played in order.

    Returns:
        The first seed's pair (``sim``, ``live``, ``comparison``) and the setup,
        ``counting`` (:func:`counting_noise`), and with several seeds ``seeds``,
        ``runs`` and ``summary`` (:func:`summarise`).

    """
    from lokirl.runtime.cluster import connect

    seeds = [s for s, _ in traces]
    ray = connect(opts.address, opts.num_cpus)
    runs = []
    try:
        for s, trace in traces:
            runs.append(run_pair(replace(opts, seed=s), pipeline, trace))
    finally:
        ray.shutdown()
    first = runs[0]
    out: dict[str, Any] = {
        "pipeline": pipeline.name,
        "trace": first["trace"],
        "duration_s": opts.duration,
        "frames": first["frames"],
        "controller": opts.controller,
        "workers": opts.workers,
        "emulate": opts.emulate,
        "dilation": opts.dilation,
        "sim_overhead_ms": opts.sim_overhead_ms,
        "seed": first["seed"],
        "sim": first["sim"],
        "live": first["live"],
        "comparison": first["comparison"],
        "solves_compared": first["solves_compared"],
    }
    out["counting"] = counting_noise(runs)
    if "replays" in first:
        out["replays"] = first["replays"]
        out["replay_summary"] = replay_summaries(runs)
    if len(runs) > 1:
        out["seeds"] = seeds
        out["runs"] = runs
        out["summary"] = summarise(runs)
    return out
