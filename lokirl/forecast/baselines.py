"""Baseline forecasters: last value, EWMA (Loki's), seasonal naive, linear trend."""

from __future__ import annotations

import numpy as np

from lokirl.forecast.base import DEFAULT_HORIZONS, BaselineState, ForecastError, ResidualForecaster


class LastValue(ResidualForecaster):
    """Forecast the last observed rate for every horizon."""

    name = "last"

    def _point(self, state: BaselineState, horizons: np.ndarray) -> np.ndarray:
        return np.full(len(horizons), state.window.last(1)[0])


class EWMA(ResidualForecaster):
    """Exponentially weighted mean of past rates, flat over the horizon.

    Matches pandas ``Series.ewm(com=com, adjust=True).mean()`` over the whole
    history (Loki used ``com=1.6`` over the last 20 s; weights older than 20 s are
    below 1e-4 of the newest).

    Args:
        com: Centre of mass; ``alpha = 1 / (1 + com)``.
        **kwargs: See :class:`ResidualForecaster`.

    """

    name = "ewma"

    def __init__(self, com: float = 1.6, **kwargs) -> None:
        super().__init__(**kwargs)
        if com < 0:
            raise ForecastError(f"EWMA com {com} must be >= 0. Fix: e.g. 1.6")
        self.com = float(com)
        self.alpha = 1.0 / (1.0 + self.com)

    def _fold(self, state: BaselineState, rate: float) -> None:
        decay = 1.0 - self.alpha
        state.level["num"] = rate + decay * state.level.get("num", 0.0)
        state.level["den"] = 1.0 + decay * state.level.get("den", 0.0)

    def _point(self, state: BaselineState, horizons: np.ndarray) -> np.ndarray:
        return np.full(len(horizons), state.level["num"] / state.level["den"])


class SeasonalNaive(ResidualForecaster):
    """Repeat the rates of one period ago (falls back to the last value until a period is seen).

    Args:
        period_s: Season length in seconds.
        **kwargs: See :class:`ResidualForecaster`.

    """

    name = "seasonal"

    def __init__(self, period_s: int = 60, **kwargs) -> None:
        super().__init__(**kwargs)
        if period_s < 1:
            raise ForecastError(f"seasonal period {period_s} must be >= 1 s")
        self.period_s = int(period_s)

    def _history_size(self) -> int:
        return self.period_s + 1

    def _point(self, state: BaselineState, horizons: np.ndarray) -> np.ndarray:
        p = self.period_s
        if state.window.n < p:
            return np.full(len(horizons), state.window.last(1)[0])
        season = state.window.last(p)  # values at t-p+1 .. t; index k-1 is "one period before t+k"
        out = np.empty(len(horizons))
        for i, h in enumerate(horizons):
            k = np.arange(h) % p
            out[i] = season[k].mean()
        return out


class LinearTrend(ResidualForecaster):
    """Least-squares line over the last ``window_s`` rates, extrapolated and averaged per horizon.

    Args:
        window_s: Fit window in seconds.
        **kwargs: See :class:`ResidualForecaster`.

    """

    name = "trend"

    def __init__(self, window_s: int = 30, **kwargs) -> None:
        super().__init__(**kwargs)
        if window_s < 2:
            raise ForecastError(f"trend window {window_s} must be >= 2 s")
        self.window_s = int(window_s)

    def _history_size(self) -> int:
        return self.window_s

    def _point(self, state: BaselineState, horizons: np.ndarray) -> np.ndarray:
        y = state.window.last(self.window_s)
        n = len(y)
        if n < 2:
            return np.full(len(horizons), y[-1])
        x = np.arange(n) - (n - 1)  # 0 at the newest point
        xm = x.mean()
        slope = float(((x - xm) * (y - y.mean())).sum() / ((x - xm) ** 2).sum())
        at_now = y.mean() - slope * xm
        # mean of the line over t+1..t+h is the line at (h + 1) / 2
        return np.maximum(at_now + slope * (horizons + 1) / 2.0, 0.0)


__all__ = ["DEFAULT_HORIZONS", "EWMA", "LastValue", "LinearTrend", "SeasonalNaive"]
