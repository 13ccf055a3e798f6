"""The learned forecaster: a small network over a rolling window of log-rates.

The network predicts, per horizon, a correction of the EWMA forecast in ``log1p``
space (see :mod:`lokirl.forecast.model`). Two online mechanisms, both kept in the
state and both driven only by what the forecaster has already seen, make it
robust to traffic unlike its training data:

- **blend with EWMA**: per horizon, running mean squared log errors of the model
  and of the EWMA (updated as each forecast's horizon elapses, with weight
  ``blend_rate`` on the newest) weight the two by inverse error, so the forecast
  leans on whichever has been right lately;
- **calibrated upper quantile** (adaptive conformal inference, Gibbs and Candès
  2021): the upper bound is the blended mean plus the model's spread plus a
  per-horizon log margin ``c``. When a bound made ``h`` s ago turns out below the
  actual, ``c`` grows by ``calib_step * q``; when it covered, ``c`` shrinks by
  ``calib_step * (1 - q)``. Whatever the traffic, the long-run share of misses
  tends to ``1 - q``.

The network runs once per :meth:`~LearnedForecaster.update` (the forecast is cached
in the state, :meth:`~LearnedForecaster.predict` only reads it). For the MLP the
weights are exported to numpy at load time, so a step is a few small matrix
products; the LSTM runs in torch under ``inference_mode``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lokirl.core.forecasting import Forecast
from lokirl.forecast.base import ForecastError, Window, check_horizons, check_rate
from lokirl.forecast.model import Artifact, build_net, features, load_artifact

#: Starting running squared log error of both model and EWMA (equal blend at first).
_PRIOR_SQ_ERR = 0.01


@dataclass
class LearnedState:
    """State of the learned forecaster.

    Attributes:
        window: Recent rates.
        ring: Past forecasts in ``log1p`` space, one row per step (``t % rows``),
            shape ``(rows, 4, H)``: model mean, EWMA, blended mean, calibrated upper.
        sq_err: Running mean squared log errors per horizon, ``(2, H)``: model, EWMA.
        margin: Calibration log margin per horizon, ``(H,)``.
        misses: Upper-bound misses counted per horizon, ``(H,)``.
        checked: Upper bounds checked per horizon, ``(H,)``.
        mean: Current blended mean forecast per trained horizon (req/s).
        upper: Current calibrated upper forecast per trained horizon (req/s).

    """

    window: Window
    ring: np.ndarray
    sq_err: np.ndarray
    margin: np.ndarray
    misses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    checked: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        """Number of observations seen."""
        return self.window.n


class LearnedForecaster:
    """Forecaster backed by a trained artifact.

    Args:
        artifact: A loaded :class:`~lokirl.forecast.model.Artifact` or a path to one.
        name: Name shown in tables.
        calib_step: Override the artifact's calibration step (0: raw upper head).
        blend_rate: Override the artifact's blend rate (0: model mean alone).

    """

    def __init__(
        self,
        artifact: Artifact | str | Path,
        name: str = "learned",
        calib_step: float | None = None,
        blend_rate: float | None = None,
    ) -> None:
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        self.name = name
        self.config = self.artifact.config
        self.norm = self.artifact.norm
        self.horizons_s = self.config.horizons_s
        self.quantile = self.config.quantile
        self.calib_step = float(self.config.calib_step if calib_step is None else calib_step)
        self.blend_rate = float(self.config.blend_rate if blend_rate is None else blend_rate)
        if self.calib_step < 0 or not 0 <= self.blend_rate < 1:
            raise ForecastError(
                f"calib_step {self.calib_step} / blend_rate {self.blend_rate} out of range. "
                "Fix: calib_step >= 0, 0 <= blend_rate < 1"
            )
        self._h = np.asarray(self.horizons_s, dtype=float)
        self._hi = np.asarray(self.horizons_s, dtype=np.int64)
        self._net = build_net(self.config)
        self._net.load_state_dict(self.artifact.state_dict)
        self._net.eval()
        self._layers: list[tuple[np.ndarray, np.ndarray]] = []
        if self.config.arch == "mlp":
            sd = {k: v.numpy().astype(np.float64) for k, v in self.artifact.state_dict.items()}
            n = len([k for k in sd if k.endswith(".weight")])
            self._layers = [
                (sd[f"net.{2 * i}.weight"].T.copy(), sd[f"net.{2 * i}.bias"]) for i in range(n)
            ]

    # -- network --------------------------------------------------------------
    def _raw(self, inputs: np.ndarray) -> np.ndarray:
        if self._layers:
            x = inputs.astype(np.float64)
            for i, (w, b) in enumerate(self._layers):
                x = x @ w + b
                if i < len(self._layers) - 1:
                    np.maximum(x, 0.0, out=x)
            return x
        with torch.inference_mode():
            return self._net(torch.from_numpy(inputs)).numpy().astype(np.float64)

    def raw_batch(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network forecasts from full windows ``(N, window)``, in ``log1p`` space.

        Returns:
            ``(ref (N,), mean (N, H), upper (N, H))``: the reference level and the
            model's mean and upper-quantile forecasts (no blending, no calibration).

        """
        inputs, ref = features(windows, self.config, self.norm)
        out = self._raw(inputs)
        n_h = len(self.horizons_s)
        return ref, ref[:, None] + out[:, :n_h], ref[:, None] + out[:, n_h:]

    def predict_batch(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forecast from many full windows ``(N, window)`` at once, without online state.

        Returns:
            ``(mean, upper)``, each ``(N, len(horizons_s))``, in req/s: the network's
            own heads (no EWMA blend, no calibration).

        """
        _, mean, upper = self.raw_batch(windows)
        mean = np.maximum(np.expm1(mean), 0.0)
        return mean, np.maximum(np.expm1(upper), mean)

    # -- Forecaster protocol ----------------------------------------------------
    def init_state(self) -> LearnedState:
        """Return a fresh state with no observations."""
        n_h = len(self.horizons_s)
        return LearnedState(
            window=Window(max(self.config.window, max(self.horizons_s) + 1)),
            ring=np.zeros((max(self.horizons_s) + 1, 4, n_h)),
            sq_err=np.full((2, n_h), _PRIOR_SQ_ERR),
            margin=np.zeros(n_h),
            misses=np.zeros(n_h),
            checked=np.zeros(n_h),
        )

    def update(self, state: LearnedState, rate: float) -> LearnedState:
        """Fold one per-second rate into ``state`` and refresh the forecast (mutates it)."""
        r = check_rate(rate)
        win = state.window
        win.push(r)
        t = win.n - 1
        rows = state.ring.shape[0]
        q = self.quantile
        # score the forecasts whose horizon ends now
        for j, h in enumerate(self._hi):
            s = t - h
            if s < 0:
                continue
            actual = math.log1p(float(win.last(h).mean()))
            past = state.ring[s % rows, :, j]
            if self.blend_rate > 0:
                b = self.blend_rate
                state.sq_err[0, j] += b * ((actual - past[0]) ** 2 - state.sq_err[0, j])
                state.sq_err[1, j] += b * ((actual - past[1]) ** 2 - state.sq_err[1, j])
            miss = actual > past[3]
            state.misses[j] += miss
            state.checked[j] += 1
            if self.calib_step > 0:
                state.margin[j] += self.calib_step * (q if miss else q - 1.0)
        # forecast from the current window (padded with the oldest value while short)
        w = self.config.window
        recent = win.last(w)
        if len(recent) < w:
            recent = np.concatenate([np.full(w - len(recent), recent[0]), recent])
        ref, m_log, u_log = self.raw_batch(recent[None, :])
        m_log, u_log, ewma = m_log[0], u_log[0], ref[0]
        if self.blend_rate > 0:
            inv = 1.0 / np.maximum(state.sq_err, 1e-12)
            wm = inv[0] / (inv[0] + inv[1])
            mean_log = ewma + wm * (m_log - ewma)
        else:
            mean_log = m_log
        upper_log = mean_log + np.maximum(u_log - m_log, 0.0) + state.margin
        upper_log = np.maximum(upper_log, mean_log)
        row = state.ring[t % rows]
        row[0], row[1], row[2], row[3] = m_log, ewma, mean_log, upper_log
        state.mean = np.maximum(np.expm1(mean_log), 0.0)
        state.upper = np.maximum(np.expm1(upper_log), state.mean)
        return state

    def coverage(self, state: LearnedState) -> np.ndarray:
        """Share of checked upper bounds that covered the actual, per trained horizon."""
        return 1.0 - state.misses / np.maximum(state.checked, 1)

    def predict(self, state: LearnedState, horizons_s: tuple[int, ...]) -> Forecast:
        """Forecast mean and upper quantile; horizons between trained ones are interpolated."""
        if state.n == 0:
            raise ForecastError(
                f"{self.name} forecaster has no history. Fix: call update() at least once"
            )
        hs = check_horizons(horizons_s)
        hq = np.asarray(hs, dtype=float)
        m = np.interp(hq, self._h, state.mean)
        u = np.maximum(np.interp(hq, self._h, state.upper), m)
        return Forecast(hs, tuple(m.tolist()), tuple(u.tolist()), self.quantile)
