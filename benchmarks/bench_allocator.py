"""Allocator solve time and quality: demand sweeps, cold and warm, HiGHS and CBC.

Run: ``python benchmarks/bench_allocator.py [--workers 20,100,500] [--solvers highs,cbc]``.

For each pipeline and cluster size it solves one demand every 50 frames/s from 50 to
1,000 at 20 workers (the same relative range at other sizes: 250-5,000 at 100,
1,250-25,000 at 500):

* **cold**: no running plan;
* **warm**: the demand moved by -5% and +5% from a solved one, seeded with its plan.

It prints, per (pipeline, workers, solver, mode), the median, 90th percentile and
maximum solve time (wall clock, and the CPU time of this process and its children
beside it: on a busy machine the two part), the status counts, and how far each objective is from
the best known value for that demand and phase (the best over every solver and mode
run, and a cold solve for the warm demands), as the worst relative shortfall.
Defaults: the options a user gets (10 s limit, 0.1% gap). ``--reference`` adds the
plain PuLP formulation (the slow path before the tight model) for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter

import numpy as np

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline

HETERO_MIX = {"pascal": 0.35, "ampere": 0.35, "cpu": 0.30}


def cluster_for(pipeline, n: int) -> Cluster:
    if pipeline.name == "detect_classify_hetero":
        counts = {a: max(1, round(n * share)) for a, share in HETERO_MIX.items()}
        return Cluster(counts)
    return Cluster.homogeneous(pipeline, n)


def pct(xs, q):
    return float(np.percentile(xs, q)) * 1000


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (CBC runs as a child)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(pipeline, cluster, demand, opts, current=None):
    w, c = time.perf_counter(), cpu_s()
    plan = solve(pipeline, cluster, demand, opts, current)
    return plan, time.perf_counter() - w, cpu_s() - c


def shortfall(plan, best) -> float:
    """Relative distance to the best known objective of the same phase (0 = best)."""
    ref = best.get((plan.demand, plan.phase))
    if ref is None or ref == 0:
        return 0.0
    if plan.phase == "hardware":  # minimise workers
        return max(0.0, (plan.objective - ref) / abs(ref))
    return max(0.0, (ref - plan.objective) / abs(ref))


def record(best, plan):
    key = (plan.demand, plan.phase)
    if plan.status == "failed":
        return
    old = best.get(key)
    better = old is None or (
        plan.objective < old if plan.phase == "hardware" else plan.objective > old
    )
    if better:
        best[key] = plan.objective


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workers", default="20,100,500", help="cluster sizes (default: 20,100,500)")
    ap.add_argument(
        "--pipelines",
        default="traffic_analysis,social_media,detect_classify_hetero",
        help="pipelines (social_media and detect_classify_hetero at the first size only)",
    )
    ap.add_argument("--solvers", default="highs,cbc")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--step", type=float, default=50.0, help="demand step at 20 workers")
    ap.add_argument("--no-warm", action="store_true", help="cold solves only")
    ap.add_argument("--reference", action="store_true", help="also time the plain PuLP formulation")
    ap.add_argument("--deterministic", action="store_true", help="work-bounded solves (node limit)")
    ap.add_argument(
        "--search-nodes",
        type=int,
        default=AllocatorOptions.search_nodes,
        help="nodes of lokirl's best-first search before HiGHS's branch and bound "
        "(0: HiGHS's from the start, the path before the search existed)",
    )
    ap.add_argument(
        "--warm-neighbourhood",
        type=int,
        default=AllocatorOptions.warm_neighbourhood,
        help="accuracy ranks a warm solve may move (0: every variant, a proven optimum)",
    )
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.workers.split(",")]
    variants = [(s, "tight") for s in args.solvers.split(",")]
    if args.reference:
        variants += [(s, "reference") for s in args.solvers.split(",")]
    print(
        f"{'pipeline':<22} {'workers':>7} {'solver':<16} {'mode':<5} {'median ms':>9} "
        f"{'p90 ms':>8} {'max ms':>8} {'cpu med':>8} {'cpu max':>8} {'worst gap':>9}  status"
    )
    for pname in args.pipelines.split(","):
        pipeline = load_pipeline(pname)
        for n in sizes if pname == "traffic_analysis" else sizes[:1]:
            cluster = cluster_for(pipeline, n)
            scale = cluster.total / 20.0
            demands = [d * scale for d in np.arange(args.step, 1000.0 + 1e-9, args.step)]
            rows = []
            best: dict = {}
            for solver, form in variants:
                opts = AllocatorOptions(
                    solver=solver,
                    time_limit_s=args.time_limit,
                    formulation=form,
                    deterministic=args.deterministic,
                    search_nodes=args.search_nodes,
                    warm_neighbourhood=args.warm_neighbourhood,
                )
                cold = [timed(pipeline, cluster, d, opts) for d in demands]
                for plan, _, _ in cold:
                    record(best, plan)
                rows.append((solver, form, "cold", cold))
                if args.no_warm:
                    continue
                warm = []
                for plan, _, _ in cold:
                    if plan.status == "failed":
                        continue
                    for f in (0.95, 1.05):
                        warm.append(timed(pipeline, cluster, plan.demand * f, opts, plan))
                rows.append((solver, form, "warm", warm))
            if not args.no_warm:
                ref_opts = AllocatorOptions(time_limit_s=60.0)
                for d in sorted(
                    {p.demand for _, _, mode, res in rows if mode == "warm" for p, _, _ in res}
                ):
                    record(best, solve(pipeline, cluster, d, ref_opts))
            for solver, form, mode, res in rows:
                walls = [w for _, w, _ in res]
                cpus = [c for _, _, c in res]
                statuses = Counter(p.status for p, _, _ in res)
                gaps = [shortfall(p, best) for p, _, _ in res]
                label = solver if form == "tight" else f"{solver}/reference"
                print(
                    f"{pname:<22} {cluster.total:>7} {label:<16} {mode:<5} "
                    f"{pct(walls, 50):>9.1f} {pct(walls, 90):>8.1f} {max(walls) * 1000:>8.1f} "
                    f"{statistics.median(cpus) * 1000:>8.1f} {max(cpus) * 1000:>8.1f} "
                    f"{max(gaps):>9.2%}  {dict(sorted(statuses.items()))}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
