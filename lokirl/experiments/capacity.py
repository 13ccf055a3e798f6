"""Effective capacity on a demand grid: the largest steady demand every seed serves.

For each controller and steady Poisson demand of a grid, every seed is simulated
and the worst SLO violation ratio over the seeds kept, at the sub-request and the
frame level (the design's metrics); a controller's effective capacity at a level
is the largest demand of the grid whose worst ratio is at or below a bound.
Complements :mod:`lokirl.experiments.reproduction`, which measures Loki's own
controllers by a grid scan refined by bisection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.sim import SimConfig, simulate
from lokirl.traces import RateSeries


def capacity_rows(
    pipeline: Pipeline,
    cluster: Cluster,
    controllers: Sequence[str],
    demands: Sequence[float],
    seeds: Sequence[int],
    duration_s: float,
    swap: str = "overlap",
) -> Iterator[dict]:
    """One row per (controller, demand), in that order, as each is simulated.

    Args:
        pipeline: The pipeline served.
        cluster: The workers.
        controllers: Controller specs (a fresh controller per run).
        demands: Steady demands, frames/s.
        seeds: Simulator seeds; each (controller, demand) runs every seed.
        duration_s: Seconds of each steady run.
        swap: How a worker changes variant (:data:`lokirl.core.reconfig.SWAP_MODES`).

    Yields:
        ``{"controller", "demand", "sub", "frame", "accuracy"}``: the worst sub-request
        and frame violation ratios over the seeds and the mean accuracy.

    """
    for name in controllers:
        for d in demands:
            sub, frame, acc = [], [], []
            for seed in seeds:
                trace = RateSeries(np.full(int(duration_s), float(d)), 1.0, f"steady{d:g}")
                r = simulate(
                    pipeline,
                    cluster,
                    trace,
                    make_controller(name),
                    SimConfig(swap=swap),
                    np.random.default_rng(seed),
                )
                sub.append(r.sub_violation_ratio)
                frame.append(r.frame_violation_ratio)
                acc.append(r.accuracy)
            yield {
                "controller": name,
                "demand": d,
                "sub": max(sub),
                "frame": max(frame),
                "accuracy": float(np.mean(acc)),
            }


def best_demands(
    rows: Sequence[dict], bound: float, controllers: Sequence[str] = ()
) -> dict[str, dict[str, float]]:
    """Each controller's largest demand whose worst violation ratio is <= ``bound``.

    Args:
        rows: Rows of :func:`capacity_rows`.
        bound: The SLO violation bound.
        controllers: Controllers listed first, in this order (0 where none passes).

    Returns:
        ``{controller: {"sub": demand, "frame": demand}}`` (0.0 where no demand passes).

    """
    best: dict[str, dict[str, float]] = {c: {"sub": 0.0, "frame": 0.0} for c in controllers}
    for row in rows:
        b = best.setdefault(row["controller"], {"sub": 0.0, "frame": 0.0})
        for level in ("sub", "frame"):
            if row[level] <= bound:
                b[level] = max(b[level], row["demand"])
    return best
