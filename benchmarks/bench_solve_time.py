"""Measured solve times in evaluation episodes against the simulator's solve-time model.

Run: ``python benchmarks/bench_solve_time.py [--suite validation] [--cases 'ta*']
[--controllers periodic-tuned,trigger-tuned,loki] [--seeds 1] [--jobs 2]``.

The simulator charges every solve a modelled duration per allocator phase
(:data:`lokirl.sim.config.SOLVE_TIME_BY_PHASE`: the old plan stays in force that long,
and the reward's solver term charges it). This plays a suite's cases as ``lokirl
bench`` does (deterministic, work-bounded HiGHS solves) and times every solve the
episodes ask for, with the plan cache bypassed so that each is a real solve. It
prints, per allocator phase and cluster size, the count and the median, 90th
percentile and maximum wall time beside the modelled figure; the episodes' own
results are those of ``lokirl bench`` (the model still sets the simulated delay).
Wall times are this machine's, on one core per process: run it on a quiet machine.
The suite's episodes run on the simpy engine (as ``lokirl bench`` plays them), whose
solves this wraps.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def _play(args: tuple) -> list[tuple[int, str, str, float, float]]:
    """Play one (case, seed) with every controller; return (workers, controller, phase, wall, model)."""
    case, seed, controllers, base_dir = args
    import lokirl.agents  # noqa: F401 - registers the controllers
    import lokirl.sim.engine as engine
    from lokirl.agents.actors import actor_factory
    from lokirl.agents.rollout import rollout
    from lokirl.experiments.runner import make_env
    from lokirl.experiments.suites import capacities, case_trace, load_unit
    from lokirl.sim.config import modelled_solve_time

    original = engine.solve_decision
    log: list[tuple[int, str, str, float, float]] = []
    current = {"controller": ""}

    def timed(pipeline, cluster, config, decision, plan, planner=None, plan_cache=None):
        t0 = time.perf_counter()
        solved = original(pipeline, cluster, config, decision, plan, planner, None)
        wall = time.perf_counter() - t0
        phase = "first" if plan is None else solved.plan.phase
        log.append(
            (cluster.total, current["controller"], phase, wall, modelled_solve_time(solved.plan))
        )
        return solved

    engine.solve_decision = timed
    try:
        env = make_env(case)
        trace = case_trace(case, load_unit(case, capacities(env.pipeline, env.cluster)), base_dir)
        cache: dict = {}
        for spec in controllers:
            current["controller"] = spec
            rollout(env, actor_factory(spec, trace, cache), seed, trace=trace)
    finally:
        engine.solve_decision = original
    return log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--suite", default="validation", help="suite name or YAML (default: validation)"
    )
    ap.add_argument("--cases", default="ta*", help="case patterns, comma-separated (default: ta*)")
    ap.add_argument(
        "--controllers",
        default="periodic-tuned,trigger-tuned,loki",
        help="controller specs, comma-separated (default: periodic-tuned,trigger-tuned,loki)",
    )
    ap.add_argument("--seeds", type=int, default=1, help="first N seeds of each case (default: 1)")
    ap.add_argument("--jobs", type=int, default=2, help="processes (default: 2)")
    args = ap.parse_args(argv)
    from lokirl.experiments.suites import load_suite, select_cases
    from lokirl.sim.config import SOLVE_TIME_BY_PHASE

    suite = select_cases(load_suite(args.suite), [c for c in args.cases.split(",") if c])
    if suite.spec.frozen:
        print("refusing the frozen test suite: measure on validation or dev", file=sys.stderr)
        return 2
    controllers = tuple(c for c in args.controllers.split(",") if c)
    planned = [c for c in controllers if c.startswith("hindsight")]
    if planned:
        # Their solves are library lookups planned before the episode, not solves.
        print(f"refusing {planned}: hindsight plans ahead; time it elsewhere", file=sys.stderr)
        return 2
    tasks = [
        (case, seed, controllers, suite.base_dir)
        for case in suite.spec.cases
        for seed in suite.spec.seeds_of(case)[: args.seeds]
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        logs = [row for part in pool.map(_play, tasks) for row in part]
    print(
        f"{len(logs)} solves in {len(tasks)} (case, seed) pairs x {len(controllers)} controllers "
        f"of {suite.name} ({args.cases}), {time.perf_counter() - t0:.0f} s, {args.jobs} processes"
    )
    groups: dict[tuple, list[float]] = defaultdict(list)
    for workers, _ctl, phase, wall, _model in logs:
        groups[(phase, workers)].append(wall)
        groups[(phase, "all")].append(wall)
    print(
        f"{'phase':<10} {'workers':>7} {'solves':>6} {'median ms':>9} {'p90 ms':>8} "
        f"{'max ms':>8} {'model ms':>8}"
    )
    for (phase, workers), walls in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        w = np.asarray(walls) * 1000
        model = "-" if phase == "first" else f"{SOLVE_TIME_BY_PHASE.get(phase, 0.15) * 1000:.0f}"
        print(
            f"{phase:<10} {workers!s:>7} {len(w):>6} {np.median(w):>9.1f} "
            f"{np.percentile(w, 90):>8.1f} {w.max():>8.1f} {model:>8}"
        )
    later = [(wall, model) for _w, _c, phase, wall, model in logs if phase != "first"]
    if later:
        walls = np.asarray([x for x, _ in later])
        models = np.asarray([m for _, m in later])
        print(
            f"every solve after the first: measured mean {walls.mean() * 1000:.1f} ms, "
            f"median {np.median(walls) * 1000:.1f} ms, p90 {np.percentile(walls, 90) * 1000:.1f} "
            f"ms; modelled mean {models.mean() * 1000:.1f} ms ({models.mean() / walls.mean():.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
