"""Shared machinery of the forecasters: input checks, a rolling window, residual quantiles.

Every forecaster here implements :class:`lokirl.core.forecasting.Forecaster`:
``init_state()``, ``update(state, rate) -> state`` and ``predict(state, horizons)``.
A forecast for horizon ``h`` is the mean rate over the next ``h`` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lokirl.core.forecasting import Forecast
from lokirl.errors import LokiError

DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 10, 30, 60)


class ForecastError(LokiError):
    """A forecaster got bad input (NaN or negative rate, no history) or a bad model file."""


def check_rate(rate: float) -> float:
    """Return ``rate`` as a float, or raise :class:`ForecastError` if NaN, infinite or < 0."""
    r = float(rate)
    if not math.isfinite(r) or r < 0:
        raise ForecastError(
            f"rate observation {rate!r} is invalid. Fix: pass a finite request rate >= 0 (req/s)"
        )
    return r


def check_horizons(horizons_s: tuple[int, ...]) -> tuple[int, ...]:
    """Return the horizons as a tuple of positive ints, ascending."""
    hs = tuple(int(h) for h in horizons_s)
    if not hs or any(h < 1 for h in hs) or list(hs) != sorted(set(hs)):
        raise ForecastError(
            f"horizons {horizons_s!r} are invalid. Fix: give ascending whole seconds >= 1"
        )
    return hs


class Window:
    """A rolling window of the last ``size`` observations, read as contiguous slices.

    Values are written twice into a buffer of ``2 * size`` so that the last ``k``
    values are always one slice, without copying.
    """

    __slots__ = ("size", "buf", "pos", "n")

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.buf = np.zeros(2 * self.size)
        self.pos = 0
        self.n = 0

    def push(self, value: float) -> None:
        """Append one observation."""
        self.buf[self.pos] = value
        self.buf[self.pos + self.size] = value
        self.pos = (self.pos + 1) % self.size
        self.n += 1

    def last(self, k: int) -> np.ndarray:
        """Return the last ``min(k, n, size)`` observations, oldest first (a view)."""
        k = min(k, self.n, self.size)
        end = self.pos + self.size
        return self.buf[end - k : end]

    def copy(self) -> Window:
        """Return an independent copy."""
        w = Window(self.size)
        w.buf = self.buf.copy()
        w.pos, w.n = self.pos, self.n
        return w


@dataclass
class BaselineState:
    """State of a baseline forecaster.

    Attributes:
        window: Recent observations.
        level: Model-specific scalars (EWMA numerator/denominator...).
        preds: Ring of past point forecasts, one row per step, one column per horizon.
        resid: Ring of recent log-ratio errors ``log((actual+1)/(forecast+1))`` per horizon.
        n_resid: Number of errors recorded per horizon.

    """

    window: Window
    level: dict[str, float] = field(default_factory=dict)
    preds: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    resid: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    n_resid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class ResidualForecaster:
    """Base of point forecasters whose upper quantile comes from their own recent errors.

    After each update, the point forecast made ``h`` steps ago for horizon ``h``
    is compared with what happened; the empirical ``quantile`` of the last
    ``resid_window`` log-ratio errors, added to the current forecast, gives the
    upper bound. With fewer than ``min_resid`` errors the upper bound is the mean
    times ``1 + cold_margin``.

    Args:
        horizons_s: Horizons whose errors are tracked; other horizons borrow the
            nearest tracked one.
        quantile: Which quantile ``upper`` is.
        resid_window: How many recent errors the quantile uses.
        min_resid: Errors needed before the quantile is trusted.
        cold_margin: Relative margin before that.

    """

    name = "base"

    def __init__(
        self,
        horizons_s: tuple[int, ...] = DEFAULT_HORIZONS,
        quantile: float = 0.9,
        resid_window: int = 120,
        min_resid: int = 5,
        cold_margin: float = 0.2,
    ) -> None:
        if not 0 < quantile < 1:
            raise ForecastError(f"quantile {quantile} must be in (0, 1). Fix: e.g. 0.9")
        self.horizons_s = check_horizons(horizons_s)
        self.quantile = float(quantile)
        self.resid_window = int(resid_window)
        self.min_resid = int(min_resid)
        self.cold_margin = float(cold_margin)
        self._h = np.asarray(self.horizons_s)

    # -- subclass hooks -------------------------------------------------------
    def _history_size(self) -> int:
        """How many past observations the point forecast needs."""
        return max(self.horizons_s) + 1

    def _fold(self, state: BaselineState, rate: float) -> None:
        """Update model scalars with a new observation (already in the window)."""

    def _point(self, state: BaselineState, horizons: np.ndarray) -> np.ndarray:
        """Point forecasts of the mean rate over the next ``h`` s, per horizon."""
        raise NotImplementedError

    # -- Forecaster protocol ---------------------------------------------------
    def init_state(self) -> BaselineState:
        """Return a fresh state with no observations."""
        n_h = len(self.horizons_s)
        return BaselineState(
            window=Window(max(self._history_size(), max(self.horizons_s) + 1)),
            preds=np.zeros((max(self.horizons_s) + 1, n_h)),
            resid=np.zeros((self.resid_window, n_h)),
            n_resid=np.zeros(n_h, dtype=np.int64),
        )

    def update(self, state: BaselineState, rate: float) -> BaselineState:
        """Fold one per-second rate into ``state`` (mutated and returned)."""
        r = check_rate(rate)
        state.window.push(r)
        self._fold(state, r)
        t = state.window.n - 1  # index of this observation
        period = state.preds.shape[0]
        for j, h in enumerate(self.horizons_s):
            s = t - h
            if s >= 0:
                actual = float(state.window.last(h).mean())
                err = math.log((actual + 1.0) / (state.preds[s % period, j] + 1.0))
                state.resid[state.n_resid[j] % self.resid_window, j] = err
                state.n_resid[j] += 1
        state.preds[t % period] = self._point(state, self._h)
        return state

    def predict(self, state: BaselineState, horizons_s: tuple[int, ...]) -> Forecast:
        """Forecast mean and upper quantile for each horizon in seconds."""
        if state.window.n == 0:
            raise ForecastError(
                f"{self.name} forecaster has no history. Fix: call update() at least once"
            )
        hs = check_horizons(horizons_s)
        mean = np.maximum(self._point(state, np.asarray(hs)), 0.0)
        if state.n_resid.min() >= self.resid_window:  # steady state: one vectorised call
            qs = np.quantile(state.resid, self.quantile, axis=0)
        else:
            qs = np.full(len(self.horizons_s), np.nan)
            for j in range(len(self.horizons_s)):
                k = int(min(state.n_resid[j], self.resid_window))
                if k >= self.min_resid:
                    qs[j] = np.quantile(state.resid[:k, j], self.quantile)
        upper = np.empty_like(mean)
        for i, h in enumerate(hs):
            q = qs[int(np.argmin(np.abs(self._h - h)))]
            if np.isnan(q):
                upper[i] = mean[i] * (1 + self.cold_margin)
            else:
                upper[i] = max(mean[i], (mean[i] + 1.0) * math.exp(q) - 1.0)
        return Forecast(hs, tuple(mean.tolist()), tuple(upper.tolist()), self.quantile)
