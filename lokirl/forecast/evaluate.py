"""Offline evaluation of forecasters on a rate series.

At every second ``t`` (after a warm-up) each forecaster has seen rates
``0..t`` and forecasts the mean over ``t+1..t+h``. Metrics per horizon:

- ``mape``: mean ``|forecast - actual| / actual`` (seconds with ``actual > 0``), in %;
- ``peak_under``: share of *peak* seconds — those whose actual future mean is at
  or above the 90th percentile of all of them — where the *upper* forecast
  (the value one would provision for) is below the actual, in %;
- ``peak_under_mean``: the same for the mean forecast;
- ``coverage``: share of all scored seconds where the actual is at or below the
  upper forecast, in % (a calibrated p90 gives about 90);
- ``pinball``: pinball loss of the upper forecast at its quantile, divided by the
  mean actual rate (scale-free), in %.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lokirl.core.forecasting import Forecaster


def rollout(
    forecaster: Forecaster, rates: np.ndarray, horizons_s: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``rates`` one at a time; return ``(mean, upper)`` forecasts, each ``(T, H)``."""
    state = forecaster.init_state()
    T, H = len(rates), len(horizons_s)
    mean = np.empty((T, H))
    upper = np.empty((T, H))
    for t, r in enumerate(rates):
        state = forecaster.update(state, float(r))
        f = forecaster.predict(state, horizons_s)
        mean[t] = f.mean
        upper[t] = f.upper
    return mean, upper


def future_means(rates: np.ndarray, horizons_s: Sequence[int]) -> np.ndarray:
    """Actual mean over ``t+1..t+h`` for each ``t`` and ``h`` (NaN past the end)."""
    T = len(rates)
    csum = np.concatenate([[0.0], np.cumsum(rates)])
    out = np.full((T, len(horizons_s)), np.nan)
    t = np.arange(T)
    for j, h in enumerate(horizons_s):
        ok = t + h <= T - 1
        out[ok, j] = (csum[t[ok] + 1 + h] - csum[t[ok] + 1]) / h
    return out


def score(
    mean: np.ndarray,
    upper: np.ndarray,
    rates: np.ndarray,
    horizons_s: tuple[int, ...],
    quantile: float = 0.9,
    warmup_s: int = 10,
) -> dict[int, dict[str, float]]:
    """Compute the metrics of forecasts ``(mean, upper)`` against ``rates``, per horizon."""
    actual = future_means(rates, horizons_s)
    out: dict[int, dict[str, float]] = {}
    for j, h in enumerate(horizons_s):
        a = actual[warmup_s:, j]
        ok = np.isfinite(a)
        a, m, u = a[ok], mean[warmup_s:, j][ok], upper[warmup_s:, j][ok]
        if a.size == 0:
            out[h] = {
                "mape": float("nan"),
                "peak_under": float("nan"),
                "peak_under_mean": float("nan"),
                "coverage": float("nan"),
                "pinball": float("nan"),
                "n": 0,
            }
            continue
        pos = a > 0
        mape = float(np.mean(np.abs(m[pos] - a[pos]) / a[pos]) * 100) if pos.any() else float("nan")
        peak = a >= np.quantile(a, 0.9)
        diff = a - u
        pin = np.maximum(quantile * diff, (quantile - 1) * diff).mean() / max(a.mean(), 1e-9)
        out[h] = {
            "mape": mape,
            "peak_under": float(np.mean(u[peak] < a[peak]) * 100),
            "peak_under_mean": float(np.mean(m[peak] < a[peak]) * 100),
            "coverage": float(np.mean(a <= u) * 100),
            "pinball": float(pin * 100),
            "n": int(a.size),
        }
    return out


def evaluate(
    forecasters: Sequence[Forecaster],
    rates: np.ndarray,
    horizons_s: tuple[int, ...],
    warmup_s: int = 10,
) -> dict[str, Any]:
    """Roll out and score each forecaster; returns ``{name: {horizon: metrics}}`` and forecasts.

    Returns:
        ``{"metrics": {name: {h: {...}}}, "forecasts": {name: (mean, upper)}}``.

    """
    metrics: dict[str, Any] = {}
    forecasts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rates = np.asarray(rates, dtype=float)
    for f in forecasters:
        mean, upper = rollout(f, rates, horizons_s)
        q = float(getattr(f, "quantile", 0.9))
        metrics[f.name] = score(mean, upper, rates, horizons_s, q, warmup_s)
        forecasts[f.name] = (mean, upper)
    return {"metrics": metrics, "forecasts": forecasts}
