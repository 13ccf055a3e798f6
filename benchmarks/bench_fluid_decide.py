"""What one decision of the model-based ``fluid`` controller costs, by cluster size.

Run: ``python benchmarks/bench_fluid_decide.py [--controller fluid-tuned]
[--workers 10,20,40,100] [--epochs 120]``.

For each cluster size it binds the controller to ``traffic_analysis`` (the plan
library is built then: its time is printed apart) and feeds it the contexts of a
synthetic episode: per-second Poisson arrivals in 0.05-s bins, the rate sweeping from
0.2 to 1.4 x the cluster's largest capacity and back, with the plan in force being the
one it chose. Each decision is timed on its own. The first pass starts with the
routing memo empty (a new estimate level costs a routing table per library plan);
the second replays the same episode in a fresh controller bound to the same library,
whose memo the first left filled (an evaluation's later episodes, a long live run).
Prints median and p90 per decision in ms. Nothing here depends on a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from lokirl.core.binding import bind_controller
from lokirl.core.controller import ARRIVAL_BIN_S, ControlContext
from lokirl.core.controllers import CONTROLLERS, load_plugins
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.envs.serving import cluster_capacities


def episode_bins(most: float, epochs: int, seed: int) -> list[np.ndarray]:
    """Arrival bins of each epoch (1 s, 20 bins), rate up to 1.4 x ``most`` and back."""
    rng = np.random.default_rng(seed)
    half = np.linspace(0.2, 1.4, epochs // 2)
    shape = np.concatenate([half, half[::-1]])[:epochs]
    per_bin = int(round(1.0 / ARRIVAL_BIN_S))
    return [rng.poisson(r * most * ARRIVAL_BIN_S, per_bin).astype(float) for r in shape]


def play(ctrl, pipe, cluster, bins: list[np.ndarray]) -> np.ndarray:
    """Feed the episode to ``ctrl``; returns seconds per decision (the first plan aside)."""
    hist: list[float] = []
    ctx = ControlContext(now_s=0.0, demand_history=(float(bins[0].sum()),))
    d = ctrl.decide(ctx)
    plan = ctrl.plan(pipe, cluster, d, None, None)
    times = []
    for k, b in enumerate(bins):
        hist.append(float(b.sum()))
        ctx = ControlContext(
            now_s=float(k + 1),
            demand_history=tuple(hist[-120:]),
            plan=plan,
            arrival_bins=tuple(b),
            arrival_bin_s=ARRIVAL_BIN_S,
        )
        t0 = time.perf_counter()
        d = ctrl.decide(ctx)
        times.append(time.perf_counter() - t0)
        if d.resolve:
            plan = ctrl.plan(pipe, cluster, d, None, None)
    return np.asarray(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--controller", default="fluid-tuned", help="a fluid(...) spec")
    ap.add_argument("--workers", default="10,20,40,100", help="cluster sizes, comma-separated")
    ap.add_argument("--epochs", type=int, default=120, help="decisions per episode")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    load_plugins()
    pipe = load_pipeline("traffic_analysis")
    print(f"{args.controller} on traffic_analysis, {args.epochs} decisions per pass")
    print(
        f"{'workers':>7} {'plans':>5} {'bind s':>6} | first pass ms: median   p90 | replay ms: median   p90"
    )
    for w in (int(x) for x in args.workers.split(",")):
        cluster = Cluster.homogeneous(pipe, w)
        _, most = cluster_capacities(pipe, cluster)
        bins = episode_bins(most, args.epochs, args.seed)
        ctrl = CONTROLLERS.create(args.controller)
        t0 = time.perf_counter()
        bind_controller(ctrl, pipe, cluster)
        bind_s = time.perf_counter() - t0
        first = play(ctrl, pipe, cluster, bins) * 1000
        again = CONTROLLERS.create(args.controller)
        bind_controller(again, pipe, cluster)
        second = play(again, pipe, cluster, bins) * 1000
        print(
            f"{w:>7} {len(ctrl.library):>5} {bind_s:>6.2f} | "
            f"{np.median(first):>17.2f} {np.percentile(first, 90):>5.2f} | "
            f"{np.median(second):>13.2f} {np.percentile(second, 90):>5.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
