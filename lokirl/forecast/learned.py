"""The learned forecaster: a small network over a rolling window of log-rates.

The state is a :class:`~lokirl.forecast.base.Window` of recent rates. For the MLP
the weights are exported to numpy at load time, so a prediction is three small
matrix products (a few microseconds); the LSTM runs in torch under
``inference_mode``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lokirl.core.forecasting import Forecast
from lokirl.forecast.base import ForecastError, Window, check_horizons, check_rate
from lokirl.forecast.model import Artifact, build_net, features, load_artifact


class LearnedForecaster:
    """Forecaster backed by a trained artifact.

    Args:
        artifact: A loaded :class:`~lokirl.forecast.model.Artifact` or a path to one.
        name: Name shown in tables.

    """

    def __init__(self, artifact: Artifact | str | Path, name: str = "learned") -> None:
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        self.name = name
        self.config = self.artifact.config
        self.norm = self.artifact.norm
        self.horizons_s = self.config.horizons_s
        self.quantile = self.config.quantile
        self._h = np.asarray(self.horizons_s, dtype=float)
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

    def init_state(self) -> Window:
        """Return an empty rolling window."""
        return Window(self.config.window)

    def update(self, state: Window, rate: float) -> Window:
        """Append one per-second rate (mutates and returns ``state``)."""
        state.push(check_rate(rate))
        return state

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

    def predict_batch(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forecast from many full windows ``(N, window)`` at once.

        Returns:
            ``(mean, upper)``, each ``(N, len(horizons_s))``, in req/s.

        """
        inputs, ref = features(windows, self.config, self.norm)
        out = self._raw(inputs)
        n_h = len(self.horizons_s)
        mean = np.expm1(ref[:, None] + out[:, :n_h])
        upper = np.expm1(ref[:, None] + out[:, n_h:])
        mean = np.maximum(mean, 0.0)
        return mean, np.maximum(upper, mean)

    def predict(self, state: Window, horizons_s: tuple[int, ...]) -> Forecast:
        """Forecast mean and upper quantile; horizons between trained ones are interpolated.

        With fewer observations than the window, the oldest one is repeated to fill it.
        """
        if state.n == 0:
            raise ForecastError(
                f"{self.name} forecaster has no history. Fix: call update() at least once"
            )
        hs = check_horizons(horizons_s)
        w = self.config.window
        recent = state.last(w)
        if len(recent) < w:
            recent = np.concatenate([np.full(w - len(recent), recent[0]), recent])
        mean, upper = self.predict_batch(recent[None, :])
        hq = np.asarray(hs, dtype=float)
        m = np.interp(hq, self._h, mean[0])
        u = np.maximum(np.interp(hq, self._h, upper[0]), m)
        return Forecast(hs, tuple(m.tolist()), tuple(u.tolist()), self.quantile)
