"""Effective capacity of controllers on steady demand: the largest demand on a grid at
which every seed keeps the SLO violation ratio at or below a bound.

Run from the repository root, e.g.::

    python scripts/effective_capacity.py --controllers trigger,ppo,inferline-h1.2 \
        --demands 100:800:100 --seeds 3 --duration 40 --swap overlap

Prints one row per (controller, demand) and a summary per controller, at the
sub-request and the frame level (the design's metrics). Complements
``lokirl reproduce``, which measures Loki's own controllers by a grid scan refined
by bisection. ``--swap`` picks how a worker changes variant (``free``: the Loki
authors' simulator).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.core.reconfig import SWAP_MODES
from lokirl.sim import SimConfig, simulate
from lokirl.traces import RateSeries


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
    rows = []
    best = {}
    print(
        f"{'controller':<16} {'demand':>6} {'worst sub viol':>14} {'worst frame viol':>16} {'accuracy':>8}"
    )
    for name in args.controllers.split(","):
        best[name] = {"sub": 0.0, "frame": 0.0}
        for d in demands:
            sub, frame, acc = [], [], []
            for seed in range(args.seeds):
                trace = RateSeries(np.full(int(args.duration), float(d)), 1.0, f"steady{d:g}")
                r = simulate(
                    pipeline,
                    cluster,
                    trace,
                    make_controller(name),
                    SimConfig(swap=args.swap),
                    np.random.default_rng(seed),
                )
                sub.append(r.sub_violation_ratio)
                frame.append(r.frame_violation_ratio)
                acc.append(r.accuracy)
            row = {
                "controller": name,
                "demand": d,
                "sub": max(sub),
                "frame": max(frame),
                "accuracy": float(np.mean(acc)),
            }
            rows.append(row)
            for level in ("sub", "frame"):
                if row[level] <= args.bound:
                    best[name][level] = max(best[name][level], d)
            print(
                f"{name:<16} {d:>6.0f} {max(sub):>14.2%} {max(frame):>16.2%} {np.mean(acc):>8.2f}",
                flush=True,
            )
    print("\nlargest demand on the grid with every seed <= bound (frames/s):")
    for name, b in best.items():
        print(f"  {name:<16} sub-request {b['sub']:>5.0f}   frame {b['frame']:>5.0f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "best": best, "args": vars(args)}, fh, indent=2)


if __name__ == "__main__":
    main()
