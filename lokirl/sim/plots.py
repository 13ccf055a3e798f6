"""PNG plots of simulation results (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lokirl.sim.config import SimResult


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(x) < k:
        return x
    kernel = np.ones(k) / k
    return np.convolve(np.nan_to_num(x, nan=0.0), kernel, mode="same")


def _ratio(num: np.ndarray, den: np.ndarray, k: int) -> np.ndarray:
    n = _smooth(num.astype(float), k)
    d = _smooth(den.astype(float), k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / d, np.nan)


def plot_results(results: Sequence[SimResult], folder: str | Path, smooth_s: int = 5) -> list[Path]:
    """Write the comparison plots of ``results`` into ``folder``; returns the PNG paths.

    Plots (one line per controller): demand vs plan capacity, frame-level SLO
    violation ratio, system accuracy and effective accuracy, active workers; all smoothed over
    ``smooth_s`` seconds (ratios as ratios of sums).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    ax = axes[0]
    if results:
        r0 = results[0]
        ax.plot(r0.series["t"], r0.series["arrivals"], color="0.6", lw=1, label="arrivals")
    for r in results:
        s = r.series
        line = ax.plot(s["t"], s["capacity"], lw=1.2, label=f"{r.controller} capacity")[0]
        ax.plot(s["t"], s["demand_estimate"], lw=0.8, ls=":", color=line.get_color())
    ax.set_ylabel("frames/s")
    ax.set_title("demand (grey), plan capacity (solid) and demand estimate (dotted)")
    ax.legend(fontsize=8, loc="upper left")
    for r in results:
        s = r.series
        viol = _ratio(s["frame_violations"], s["frames_done"], smooth_s)
        axes[1].plot(s["t"], viol, label=r.controller)
        line = axes[2].plot(s["t"], s["accuracy"], lw=1, label=r.controller)[0]
        if "effective_accuracy" in s:
            axes[2].plot(s["t"], s["effective_accuracy"], lw=0.8, ls="--", color=line.get_color())
        axes[3].step(s["t"], s["active_workers"], where="post", label=r.controller)
    axes[1].set_ylabel("frame SLO violations")
    axes[1].set_ylim(-0.02, 1.02)
    axes[2].set_ylabel("system accuracy")
    axes[2].set_title("accuracy (solid) and effective accuracy (dashed: violated frames count 0)")
    axes[3].set_ylabel("active workers")
    axes[3].set_xlabel("time (s)")
    for a in axes[1:]:
        a.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = folder / "comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out.append(path)
    return out
