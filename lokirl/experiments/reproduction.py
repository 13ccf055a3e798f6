"""The simulator's check of Loki's headline claims (``lokirl reproduce``).

Experiments on traffic_analysis, 20 homogeneous workers (see docs/reproduction.md):

1. **Effective capacity**: the largest steady Poisson demand (frames/s) whose SLO
   violation ratio stays <= 1% on *every* seed, found by bisection on demand (to a
   resolution of 5 frames/s), at the sub-request level and at the frame level, for
   accuracy scaling (``loki-hX``) and hardware scaling alone (``inferline-hX``),
   each with its best headroom X from a small set. Paper: > 2.7x.
2. **Peak-load traces**: the diurnal day (50 -> 425 -> 50 frames/s) and the step
   trace (100/400/800/100), played at 2x speed, for Loki, InferLine-like,
   Proteus-like and static peak provisioning, over several seeds: violations
   (frame and sub-request) and the accuracy kept. Paper: up to 10x fewer
   violations than the baselines.
3. **Active workers at low load**: mean active workers at steady low demand versus
   peak provisioning (all workers). Paper: up to 2.67x fewer.
4. **Near-zero violations where capacity exceeds demand** (DESIGN's lesson):
   steady low-demand runs with headroom, with drop reasons, reconfigurations and
   the plan's utilisation per task; and the seconds of the peak traces split by
   the running plan's capacity over that second's arrivals.
5. **Fidelity**: the authors' own metrics on their diurnal day
   (:mod:`lokirl.experiments.fidelity`).

:func:`run_reproduction` runs them all into one results dict;
:mod:`lokirl.experiments.reproduction_report` renders and writes it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

#: The SLO violation bound of the effective-capacity definition (DESIGN, Metrics).
BOUND = 0.01


@dataclass(frozen=True)
class Settings:
    """What one ``reproduce`` run does (full or quick)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    steady_s: int = 30
    capacity_controllers: tuple[str, ...] = (
        "loki",
        "loki-b1.2",
        "loki-b1.5",
        "loki-h1.2",
        "loki-h1.35",
        "inferline-h1.2",
        "inferline-h1.35",
        "inferline-h1.5",
    )
    resolution: int = 5
    grid: int = 100
    ceiling: int = 1600
    speedup: float = 2.0
    low_demands: tuple[int, ...] = (50, 100, 150)
    low_controllers: tuple[str, ...] = ("loki", "loki-h1.2", "inferline", "inferline-h1.2")
    trace_controllers: tuple[str, ...] = (
        "loki",
        "loki-b1.2",
        "loki-h1.2",
        "inferline",
        "inferline-h1.2",
        "proteus",
        "static",
    )
    fidelity_controllers: tuple[str, ...] = ("loki", "inferline")
    fidelity_seeds: tuple[int, ...] = (0, 1, 2)
    fidelity_speedup: float = 1.0
    demand_quantum: float = 5.0
    time_limit_s: float = 1.0
    workers: int = 20
    swap: str = "overlap"


FULL = Settings()
QUICK = Settings(
    seeds=(0,),
    steady_s=8,
    capacity_controllers=("loki", "loki-h1.2", "inferline-h1", "inferline-h1.2"),
    resolution=25,
    grid=200,
    speedup=10.0,
    low_demands=(50,),
    low_controllers=("loki", "loki-h1.2"),
    trace_controllers=("loki", "loki-h1.2", "inferline", "static"),
    fidelity_seeds=(0,),
    fidelity_speedup=1.0,
    demand_quantum=25.0,
)


def system_of(controller: str) -> str:
    """Which system a capacity controller stands for.

    ``loki`` and ``loki-b<beta>``: the authors' controller (``loki``);
    ``loki-h<H>``: lokirl's periodic MILP with root headroom (``periodic-milp``);
    ``inferline*``: hardware scaling alone (``inferline``).
    """
    if controller.startswith("inferline"):
        return "inferline"
    if re.fullmatch(r"loki(-b\d+(\.\d+)?)?", controller):
        return "loki"
    return "periodic-milp"


#: Peak-load traces: (bundled name, low, high) frames/s after the speed-up.
TRACES = (("diurnal_600s", 50.0, 425.0), ("step_600s", 100.0, 800.0))


# ---------------------------------------------------------------- bisection
def bisect_capacity(
    passes: Callable[[float], bool],
    resolution: float,
    start: float,
    ceiling: float,
    grid: float = 0.0,
) -> tuple[float, list[tuple[float, bool]]]:
    """Largest multiple of ``resolution`` (<= ``ceiling``) at which ``passes`` holds.

    Without ``grid``: gallops up from ``start`` (doubling while it passes), then
    bisects between the last passing and the first failing demand. It assumes
    ``passes`` is monotone (holds below some demand, fails above); where it is
    not, the answer is *a* boundary, not necessarily the largest passing demand.
    0 when even the first probe below ``start`` fails down to ``resolution``.

    With ``grid`` (a multiple of ``resolution``): probes every multiple of ``grid``
    up to ``ceiling`` first, then bisects between the largest passing one and the
    next grid point (between 0 and ``grid`` when none passes): the largest passing
    demand on the grid, refined to ``resolution``; ``start`` is unused.

    Returns:
        The demand and the probes in order, as ``(demand, passed)``.

    """
    probes: list[tuple[float, bool]] = []

    def ok(k: int) -> bool:
        res = passes(k * resolution)
        probes.append((k * resolution, res))
        return res

    def bisect(lo: int, hi: int) -> int:
        # ok(lo) holds (or lo is 0), ok(hi) fails: the last passing step between them.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid
        return lo

    top = int(ceiling // resolution)
    lo, hi = 0, None
    if grid:
        # Scan the whole grid first: violations are not monotone in demand (bursts fail
        # low demands, churn middle ones), so the largest passing grid point is the
        # boundary to refine, not the first failure met while galloping.
        step = max(1, int(round(grid / resolution)))
        points = list(range(step, top + 1, step))
        if not points or points[-1] != top:
            points.append(top)
        passing = [k for k in points if ok(k)]
        if not passing:
            lo, hi = 0, points[0]
        else:
            lo = passing[-1]
            above = [k for k in points if k > lo]
            if not above:
                return lo * resolution, probes
            hi = above[0]
        return bisect(lo, hi) * resolution, probes
    k = min(top, max(1, int(round(start / resolution))))
    while hi is None:
        if ok(k):
            lo = k
            if k == top:
                return k * resolution, probes
            k = min(top, 2 * k)
        else:
            hi = k
    return bisect(lo, hi) * resolution, probes


# ---------------------------------------------------------------- runners
class Runner:
    """Runs simulations with one shared plan cache, memoising steady runs."""

    def __init__(self, settings: Settings, tick: Callable[[], None] | None = None) -> None:
        import lokirl.sim  # noqa: F401  (registers the baselines)
        from lokirl.core.allocator import AllocatorOptions
        from lokirl.core.pipeline import Cluster
        from lokirl.core.pipeline_config import load_pipeline

        self.s = settings
        self.pipeline = load_pipeline("traffic_analysis")
        self.cluster = Cluster.homogeneous(self.pipeline, settings.workers)
        # The authors' allocator keeps the solver's batch sizes: no widening here.
        self.options = AllocatorOptions(
            time_limit_s=settings.time_limit_s, deterministic=True, widen_batches=False
        )
        self.cache: dict = {}
        self.steady_runs: dict[tuple[str, int, int], dict] = {}
        self.sim_wall = 0.0
        self.n_runs = 0
        self.tick = tick or (lambda: None)

    def config(self, initial: float | None = None):
        """The simulator configuration every run uses."""
        from lokirl.sim import SimConfig

        return SimConfig(
            demand_quantum=self.s.demand_quantum,
            initial_demand=initial,
            allocator=self.options,
            swap=self.s.swap,
        )

    def simulate(self, controller: str, trace, seed: int, initial: float | None = None):
        """Run ``controller`` on ``trace`` with ``seed`` (shared plan cache)."""
        import numpy as np

        from lokirl.core.controllers import make_controller
        from lokirl.sim import simulate

        t0 = time.perf_counter()
        r = simulate(
            self.pipeline,
            self.cluster,
            trace,
            make_controller(controller),
            self.config(initial),
            np.random.default_rng(seed),
            plan_cache=self.cache,
        )
        self.sim_wall += time.perf_counter() - t0
        self.n_runs += 1
        self.tick()
        return r

    def steady(self, controller: str, demand: int, seed: int) -> dict:
        """Summary of a steady run (memoised)."""
        import numpy as np

        from lokirl.traces import RateSeries

        key = (controller, int(demand), seed)
        if key not in self.steady_runs:
            n = self.s.steady_s
            trace = RateSeries(np.full(n, float(demand)), name=f"steady{demand:g}")
            r = self.simulate(controller, trace, seed, initial=float(demand))
            self.steady_runs[key] = {
                "frame": r.frame_violation_ratio,
                "sub": r.sub_violation_ratio,
                "accuracy": r.accuracy,
                "effective_accuracy": r.effective_accuracy,
                "workers": r.mean_active_workers,
                "reconfigurations": r.reconfigurations,
                "capacity": float(np.mean(r.series["capacity"][:n])),
                "sub_dropped": dict(r.subrequests.dropped),
                "sub_late": r.subrequests.late,
                "sub_arrived": r.subrequests.arrived,
                "frames_arrived": r.frames.arrived,
            }
        return self.steady_runs[key]

    def initial_plan(self, controller: str, demand: float):
        """The plan ``controller`` puts in force at time 0 for a steady ``demand``."""
        import numpy as np

        from lokirl.core.controllers import make_controller
        from lokirl.sim import Simulation
        from lokirl.traces import RateSeries

        c = make_controller(controller)
        trace = RateSeries(np.full(2, float(demand)), name="plan")
        sim = Simulation(
            self.pipeline, self.cluster, trace, self.config(float(demand)), plan_cache=self.cache
        )
        sim.apply(c.decide(sim.reset()), planner=c)
        return sim.plan


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def _spread(xs: Sequence[float]) -> dict:
    return {"mean": _mean(xs), "min": float(min(xs)), "max": float(max(xs)), "n": len(xs)}


# ---------------------------------------------------------------- experiments
def effective_capacity(runner: Runner) -> dict:
    """Experiment 1: bisection on steady demand, per controller and level."""
    s = runner.s
    out: dict = {"controllers": {}, "best": {}}
    for ctl in s.capacity_controllers:
        system = system_of(ctl)
        start = 100.0 if system == "inferline" else 200.0
        row: dict = {"system": system, "headroom": _overprovisioning(ctl)}
        for level in ("sub", "frame"):

            def passes(d: float, ctl=ctl, level=level) -> bool:
                # Every seed must meet the bound; stop at the first that does not.
                return all(runner.steady(ctl, int(d), k)[level] <= BOUND for k in s.seeds)

            cap, probes = bisect_capacity(passes, s.resolution, start, s.ceiling, s.grid)
            at = [runner.steady(ctl, int(cap), k) for k in s.seeds] if cap > 0 else []
            row[level] = {
                "capacity": cap,
                "probes": probes,
                "mean_ratio_at_capacity": _mean([a[level] for a in at]),
                "accuracy_at_capacity": _mean([a["accuracy"] for a in at]),
                "effective_accuracy_at_capacity": _mean([a["effective_accuracy"] for a in at]),
            }
        out["controllers"][ctl] = row
    systems = {r["system"] for r in out["controllers"].values()}
    for level in ("sub", "frame"):
        best: dict = {}
        for system in sorted(systems):
            rows = [r for r in out["controllers"].items() if r[1]["system"] == system]
            ctl, r = max(rows, key=lambda kv: (kv[1][level]["capacity"], -kv[1]["headroom"]))
            best[system] = {"controller": ctl, "capacity": r[level]["capacity"]}
        il = best.get("inferline", {}).get("capacity", 0.0)
        for system in sorted(systems - {"inferline"}):
            li = best[system]["capacity"]
            best[system]["ratio"] = li / il if il > 0 else (math.inf if li > 0 else float("nan"))
        # ``ratio``: Loki's own controller against hardware scaling alone (the claim).
        main = "loki" if "loki" in best else next(iter(sorted(systems - {"inferline"})), None)
        best["ratio"] = best[main]["ratio"] if main else float("nan")
        best["main"] = main
        out["best"][level] = best
    # Violation ratio vs demand of every probe (mean over the seeds that ran).
    curves: dict = {}
    for (ctl, d, _k), v in runner.steady_runs.items():
        curves.setdefault(ctl, {}).setdefault(d, []).append(v)
    out["curves"] = {
        ctl: [
            {
                "demand": d,
                "seeds": len(vs),
                "sub": _mean([v["sub"] for v in vs]),
                "frame": _mean([v["frame"] for v in vs]),
                "accuracy": _mean([v["accuracy"] for v in vs]),
                "effective_accuracy": _mean([v["effective_accuracy"] for v in vs]),
            }
            for d, vs in sorted(by.items())
        ]
        for ctl, by in curves.items()
    }
    return out


def _overprovisioning(controller: str) -> float:
    """The beta or headroom in a controller's name (1 when it has none)."""
    for mark in ("-b", "-h"):
        if mark in controller:
            try:
                return float(controller.rsplit(mark, 1)[1])
            except ValueError:
                return 1.0
    return 1.0


def low_load(runner: Runner) -> dict:
    """Experiments 3 and 4 at steady low demand: workers, violations and their causes."""
    s = runner.s
    rows = []
    for ctl in s.low_controllers:
        for d in s.low_demands:
            runs = [runner.steady(ctl, d, k) for k in s.seeds]
            plan = runner.initial_plan(ctl, d)
            util: dict[str, float] = {}
            scale = d / plan.demand if plan.demand > 0 else 0.0
            for task in runner.pipeline.tasks:
                gs = [g for g in plan.groups if g.task == task.name]
                cap = sum(g.throughput * g.replicas for g in gs)
                load = sum(g.load for g in gs) * scale
                util[task.name] = load / cap if cap > 0 else float("nan")
            drops: dict[str, int] = {}
            for r in runs:
                for why, n in r["sub_dropped"].items():
                    drops[why] = drops.get(why, 0) + n
            rows.append(
                {
                    "controller": ctl,
                    "demand": d,
                    "frame": _spread([r["frame"] for r in runs]),
                    "sub": _spread([r["sub"] for r in runs]),
                    "accuracy": _mean([r["accuracy"] for r in runs]),
                    "effective_accuracy": _mean([r["effective_accuracy"] for r in runs]),
                    "workers": _mean([r["workers"] for r in runs]),
                    "plan_capacity": _mean([r["capacity"] for r in runs]),
                    "reconfigurations": _mean([r["reconfigurations"] for r in runs]),
                    "sub_dropped": drops,
                    "sub_late": sum(r["sub_late"] for r in runs),
                    "sub_arrived": sum(r["sub_arrived"] for r in runs),
                    "plan": {
                        "demand": plan.demand,
                        "groups": [
                            f"{g.variant} x{g.replicas} b{g.batch_size}" for g in plan.groups
                        ],
                        "utilisation": util,
                    },
                }
            )
    lowest = [r for r in rows if r["controller"] == "loki" and r["demand"] == min(s.low_demands)]
    claim = {}
    if lowest:
        w = lowest[0]["workers"]
        claim = {
            "demand": lowest[0]["demand"],
            "loki_active_workers": w,
            "peak_provisioning_workers": s.workers,
            "ratio": s.workers / w if w > 0 else float("nan"),
        }
    return {"rows": rows, "claim": claim}


def peak_traces(runner: Runner, img: Path) -> dict:
    """Experiment 2 (and the capacity split of 4): the peak-load traces."""
    import numpy as np

    from lokirl.sim.plots import plot_results
    from lokirl.traces import rescale, resolve_trace, speedup

    s = runner.s
    out: dict = {}
    for name, lo, hi in TRACES:
        trace = rescale(speedup(resolve_trace(name), s.speedup), lo, hi)
        per: dict = {}
        first = []
        for ctl in s.trace_controllers:
            runs = []
            for k in s.seeds:
                r = runner.simulate(ctl, trace, k)
                if k == s.seeds[0]:
                    first.append(r)
                sr = r.series
                n = int(math.ceil(r.duration_s - 2.0))
                cap, arr = sr["capacity"][:n], sr["arrivals"][:n].astype(float)
                fv, fd = sr["frame_violations"][:n], sr["frames_done"][:n]
                sv, sd = sr["sub_violations"][:n], sr["sub_done"][:n]
                ample = cap >= 1.2 * np.maximum(arr, 1.0)
                runs.append(
                    {
                        "frame": r.frame_violation_ratio,
                        "sub": r.sub_violation_ratio,
                        "accuracy": r.accuracy,
                        "effective_accuracy": r.effective_accuracy,
                        "workers": r.mean_active_workers,
                        "reconfigurations": r.reconfigurations,
                        "solves": r.solves,
                        "frames_dropped": dict(r.frames.dropped),
                        "frames_late": r.frames.late,
                        "frames_arrived": r.frames.arrived,
                        "sub_dropped": dict(r.subrequests.dropped),
                        "ample_seconds": int(ample.sum()),
                        "ample_frame_viol": int(fv[ample].sum()),
                        "ample_frames": int(fd[ample].sum()),
                        "ample_sub_viol": int(sv[ample].sum()),
                        "ample_subs": int(sd[ample].sum()),
                        "ample_reconfigurations": int(sr["reconfigurations"][:n][ample].sum()),
                    }
                )
            af = sum(r["ample_frames"] for r in runs)
            asub = sum(r["ample_subs"] for r in runs)
            per[ctl] = {
                "frame": _spread([r["frame"] for r in runs]),
                "sub": _spread([r["sub"] for r in runs]),
                "accuracy": _spread([r["accuracy"] for r in runs]),
                "effective_accuracy": _spread([r["effective_accuracy"] for r in runs]),
                "workers": _mean([r["workers"] for r in runs]),
                "reconfigurations": _mean([r["reconfigurations"] for r in runs]),
                "solves": _mean([r["solves"] for r in runs]),
                "ample_seconds": _mean([r["ample_seconds"] for r in runs]),
                "ample_frame_ratio": (
                    sum(r["ample_frame_viol"] for r in runs) / af if af else float("nan")
                ),
                "ample_sub_ratio": (
                    sum(r["ample_sub_viol"] for r in runs) / asub if asub else float("nan")
                ),
                "ample_reconfigurations": _mean([r["ample_reconfigurations"] for r in runs]),
                "runs": runs,
            }
        ref_name = "loki" if "loki" in per else next(iter(per))
        ref = per[ref_name]
        for v in per.values():
            for level in ("frame", "sub"):
                mine = v[level]["mean"]
                v[f"{level}_vs_ref"] = mine / ref[level]["mean"] if ref[level]["mean"] else None
        out[name] = {
            "low": lo,
            "high": hi,
            "speedup": s.speedup,
            "reference": ref_name,
            "controllers": per,
        }
        plot_results(first, img)
        (img / "comparison.png").replace(img / f"{name.split('_')[0]}_comparison.png")
    return out


def fidelity_check(runner: Runner) -> dict:
    """Experiment 5: the authors' metrics on their diurnal day (see ``experiments.fidelity``).

    Run with the authors' simulator's assumptions except the swap mode: the plan
    applied in the step it is solved in (``solver_time=0``) for the exact EWMA
    estimate (``demand_quantum=0``).
    """
    from lokirl.experiments.fidelity import fidelity

    s = runner.s
    # The authors' assumptions but the swap mode: no solver delay, the exact estimate.
    config = replace(runner.config(), solver_time=0.0, demand_quantum=0.0)
    out = fidelity(
        runner.pipeline,
        runner.cluster,
        config,
        controllers=s.fidelity_controllers,
        seeds=s.fidelity_seeds,
        speedup=s.fidelity_speedup,
        plan_cache=runner.cache,
    )
    runner.n_runs += len(s.fidelity_controllers) * len(s.fidelity_seeds)
    runner.sim_wall += out["wall_s"]
    return out


# ---------------------------------------------------------------- all of them
def run_reproduction(
    settings: Settings,
    img: Path,
    tick: Callable[[], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Run every experiment with ``settings``; the results dict ``results.json`` holds.

    Args:
        settings: What to run (:data:`FULL`, :data:`QUICK` or a variant).
        img: Folder the peak traces' figures are written to (must exist).
        tick: Called after every simulation (progress).
        on_stage: Called with a description as each experiment starts (progress).

    Returns:
        ``settings``, ``bound``, one entry per experiment and ``runtime`` (wall
        time, simulations run and their wall time).

    """
    stage = on_stage or (lambda _description: None)
    t0 = time.perf_counter()
    runner = Runner(settings, tick=tick)
    results: dict = {"settings": asdict(settings), "bound": BOUND}
    stage("effective capacity (bisection)")
    results["effective_capacity"] = effective_capacity(runner)
    stage("low load")
    results["low_load"] = low_load(runner)
    stage("peak-load traces")
    results["traces"] = peak_traces(runner, img)
    stage("fidelity (the authors' diurnal day)")
    results["fidelity"] = fidelity_check(runner)
    results["runtime"] = {
        "wall_s": time.perf_counter() - t0,
        "simulations": runner.n_runs,
        "simulation_wall_s": runner.sim_wall,
    }
    return results
