"""Effective capacity of controllers on steady demand: the largest demand on a grid at
which every seed keeps the SLO violation ratio at or below a bound.

Run from the repository root, e.g.::

    python scripts/effective_capacity.py --controllers trigger,ppo,inferline-h1.2 \
        --demands 100:800:100 --seeds 3 --duration 40 --swap overlap

Prints one row per (controller, demand) and a summary per controller, at the
sub-request and the frame level (the design's metrics). Complements
``lokirl reproduce``, which measures Loki's own controllers by a grid scan refined
by bisection. ``--swap`` picks how a worker changes variant (``free``: the Loki
authors' simulator). The experiment is :mod:`lokirl.experiments.capacity`.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.core.reconfig import SWAP_MODES
from lokirl.experiments.capacity import best_demands, capacity_rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pipeline", default="traffic_analysis")
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--controllers", default="trigger,ppo,inferline-h1.2")
    ap.add_argument("--demands", default="100:800:100", help="LO:HI:STEP frames/s")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--bound", type=float, default=0.01)
    ap.add_argument(
        "--swap",
        default="overlap",
        choices=SWAP_MODES,
        help="how a worker changes variant (default: overlap; the Loki authors': free)",
    )
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    pipeline = load_pipeline(args.pipeline)
    cluster = Cluster.homogeneous(pipeline, args.workers)
    lo, hi, step = (float(x) for x in args.demands.split(":"))
    demands = list(np.arange(lo, hi + 1e-9, step))
    print(
        f"{'controller':<16} {'demand':>6} {'worst sub viol':>14} {'worst frame viol':>16} {'accuracy':>8}"
    )
    controllers = args.controllers.split(",")
    rows = []
    for row in capacity_rows(
        pipeline, cluster, controllers, demands, range(args.seeds), args.duration, args.swap
    ):
        rows.append(row)
        print(
            f"{row['controller']:<16} {row['demand']:>6.0f} {row['sub']:>14.2%} "
            f"{row['frame']:>16.2%} {row['accuracy']:>8.2f}",
            flush=True,
        )
    best = best_demands(rows, args.bound, controllers)
    print("\nlargest demand on the grid with every seed <= bound (frames/s):")
    for name, b in best.items():
        print(f"  {name:<16} sub-request {b['sub']:>5.0f}   frame {b['frame']:>5.0f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "best": best, "args": vars(args)}, fh, indent=2)


if __name__ == "__main__":
    main()
