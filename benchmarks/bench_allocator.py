"""Allocator solve time: traffic_analysis at 20, 100 and 500 workers, cold vs warm, CBC vs HiGHS.

Run: ``python benchmarks/bench_allocator.py [--repeats 5] [--workers 20,100,500]``.

* hardware phase: demand at half the cluster's capacity on the most accurate variants;
* whole solve at saturation: demands 1.25x, 1.5x, 2x and 3x that capacity (accuracy
  scaling; the whole solve includes the failed-or-skipped hardware phase);
* warm start: consecutive epochs of a random walk (3% steps) around 1.5x capacity,
  each solve seeded with the previous plan, against cold solves of the same demands.

Prints medians and 90th percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline


def hardware_capacity(pipeline, cluster) -> float:
    """Largest demand the most accurate variants carry (bisection on phase 1)."""
    lo, hi = 0.0, 100.0
    while solve(pipeline, cluster, hi).phase == "hardware":
        lo, hi = hi, hi * 2
    for _ in range(12):
        mid = (lo + hi) / 2
        if solve(pipeline, cluster, mid).phase == "hardware":
            lo = mid
        else:
            hi = mid
    return lo


def pct(xs, q):
    return float(np.percentile(xs, q)) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", default="20,100,500")
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args(argv)
    pipeline = load_pipeline("traffic_analysis")
    rng = np.random.default_rng(0)
    print(
        f"{'workers':>7} {'solver':>6} {'case':<28} {'median ms':>10} {'p90 ms':>8} {'status':<20}"
    )
    for n in (int(x) for x in args.workers.split(",")):
        cluster = Cluster.homogeneous(pipeline, n)
        cap = hardware_capacity(pipeline, cluster)
        print(f"# {n} workers: the most accurate variants carry {cap:.0f} frames/s", flush=True)
        for solver in ("cbc", "highs"):
            opts = AllocatorOptions(solver=solver, time_limit_s=args.time_limit)
            hw = [solve(pipeline, cluster, 0.5 * cap, opts) for _ in range(args.repeats)]
            t = [p.solve_time_s for p in hw]
            print(
                f"{n:>7} {solver:>6} {'hardware phase (0.5x cap)':<28} {pct(t, 50):>10.1f} {pct(t, 90):>8.1f} "
                f"{hw[0].phase}/{hw[0].status}"
            )
            sat = []
            statuses = set()
            for mult in (1.25, 1.5, 2.0, 3.0):
                for _ in range(max(1, args.repeats // 2)):
                    p = solve(pipeline, cluster, mult * cap, opts)
                    sat.append(p.solve_time_s)
                    statuses.add(f"{p.phase}/{p.status}")
            print(
                f"{n:>7} {solver:>6} {'whole solve, saturated':<28} {pct(sat, 50):>10.1f} {pct(sat, 90):>8.1f} "
                f"{','.join(sorted(statuses))}"
            )
            demand = 1.5 * cap
            seq = []
            for _ in range(4 * args.repeats):
                demand *= 1 + rng.normal(0, 0.03)
                seq.append(demand)
            cold, warm = [], []
            prev = solve(pipeline, cluster, seq[0], opts)
            acc_gap = []
            for d in seq[1:]:
                c = solve(pipeline, cluster, d, opts)
                w = solve(pipeline, cluster, d, opts, current=prev)
                cold.append(c.solve_time_s)
                warm.append(w.solve_time_s)
                acc_gap.append(c.expected_accuracy - w.expected_accuracy)
                prev = w
            ratio = statistics.median(warm) / statistics.median(cold)
            print(
                f"{n:>7} {solver:>6} {'consecutive epochs, cold':<28} {pct(cold, 50):>10.1f} {pct(cold, 90):>8.1f}"
            )
            print(
                f"{n:>7} {solver:>6} {'consecutive epochs, warm':<28} {pct(warm, 50):>10.1f} {pct(warm, 90):>8.1f} "
                f"warm/cold {ratio:.2f}, accuracy lost <= {max(acc_gap):.3f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
