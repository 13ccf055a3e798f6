"""Held-out evaluation: train without one bundled twitter scenario, evaluate on it.

``medium_normal_load`` and ``zipf_exponential`` are one underlying series at two
scales, so they are held out together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lokirl.forecast.baselines import EWMA, LastValue, LinearTrend, SeasonalNaive
from lokirl.forecast.evaluate import evaluate
from lokirl.forecast.learned import LearnedForecaster
from lokirl.forecast.train import TrainConfig, train
from lokirl.traces import as_rates, bundled_trace

#: Folds: the traces held out together, and the ones evaluated.
FOLDS: tuple[tuple[str, ...], ...] = (
    ("twitter_zipf_flat_bursty",),
    ("twitter_zipf_exponential_bursty",),
    ("twitter_medium_normal_load", "twitter_zipf_exponential"),
)


def heldout(
    cfg: TrainConfig,
    horizons_s: tuple[int, ...] = (1, 5, 10, 30, 60),
    on_fold: Callable[[tuple[str, ...]], None] | None = None,
) -> dict[str, Any]:
    """Run every fold; returns ``{trace: {forecaster: {horizon: metrics}}}``."""
    out: dict[str, Any] = {}
    for fold in FOLDS:
        if on_fold is not None:
            on_fold(fold)
        result = train(replace(cfg, holdout=fold))
        learned = LearnedForecaster(result.artifact)
        for name in fold:
            rates = as_rates(bundled_trace(name)).rates
            forecasters = [learned, EWMA(), LastValue(), LinearTrend(), SeasonalNaive()]
            out[name] = evaluate(forecasters, rates, horizons_s)["metrics"]
    return out


def markdown_table(results: dict[str, Any], horizons_s: tuple[int, ...] = (5, 30)) -> str:
    """Format held-out results as a markdown table (MAPE, peak under-forecast, coverage %)."""
    head = ["trace", "forecaster"]
    for h in horizons_s:
        head += [f"MAPE {h}s %", f"peak under {h}s %", f"coverage {h}s %"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for trace, per_f in results.items():
        for fname, per_h in per_f.items():
            cells = [trace, fname]
            for h in horizons_s:
                m = per_h[h] if h in per_h else per_h[str(h)]
                cells += [f"{m['mape']:.1f}", f"{m['peak_under']:.0f}", f"{m['coverage']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
