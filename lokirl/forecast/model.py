"""The learned forecaster's network, its input features and its artifact file.

Reference level: ``log1p`` of Loki's EWMA of the rate (``com = ref_com``) over the
window (``ref = "ewma"``, version 2), or the mean ``log1p`` of the last ``ref_s``
rates (``ref = "mean"``, version 1 artifacts).

Input: the last ``window`` per-second rates as ``log1p`` minus the reference, then
(``multiscale``) summaries at several time scales, each minus the reference: EWMAs
at longer centres of mass, max and min of the last 10 and 30 s, least-squares
slopes of the log-rate over the last 10 and 30 s and its spread, and last the
standardised reference level itself.

Output per horizon ``h``: ``log1p(mean rate over the next h s)`` minus the
reference, once for the mean (Huber loss) and once for the upper quantile
(pinball loss). With the EWMA reference, an output of zero *is* the EWMA
forecast: the network only learns a correction of it.

The artifact is one ``torch.save`` file holding a plain dict: ``format``,
``version``, ``config``, ``norm``, ``state_dict`` and optional ``meta``. It loads
with ``torch.load(weights_only=True)`` and needs none of the training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lokirl.forecast.base import DEFAULT_HORIZONS, ForecastError

ARTIFACT_FORMAT = "lokirl-forecaster"
ARTIFACT_VERSION = 2

#: Centres of mass of the extra EWMA features (``multiscale``).
MULTISCALE_COMS: tuple[float, ...] = (5.0, 15.0, 40.0)
#: Spans (seconds) of the max/min/slope/spread features.
MULTISCALE_SPANS: tuple[int, ...] = (10, 30)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the learned forecaster.

    Attributes:
        arch: ``mlp`` or ``lstm``.
        window: Input length in seconds.
        ref_s: Seconds averaged for the reference level.
        hidden: Hidden width.
        layers: Hidden layers (MLP) or stacked LSTM layers.
        horizons_s: Forecast horizons in seconds.
        quantile: The upper quantile the second head estimates.
        ref: Reference level the outputs are relative to: ``ewma`` or ``mean``.
        ref_com: Centre of mass of the EWMA reference (Loki's 1.6).
        multiscale: Add the multi-scale summary features to the raw window.
        calib_step: Step of the online (adaptive conformal) calibration of the
            upper quantile, in log units per miss; 0 turns it off.
        blend_rate: Weight of the newest error in the running per-horizon errors
            of model and EWMA that set their blend; 0 uses the model alone.

    """

    arch: str = "mlp"
    window: int = 64
    ref_s: int = 5
    hidden: int = 96
    layers: int = 2
    horizons_s: tuple[int, ...] = DEFAULT_HORIZONS
    quantile: float = 0.9
    ref: str = "ewma"
    ref_com: float = 1.6
    multiscale: bool = True
    calib_step: float = 0.05
    blend_rate: float = 0.0

    @property
    def n_inputs(self) -> int:
        """Number of input features."""
        extra = len(MULTISCALE_COMS) + 4 * len(MULTISCALE_SPANS) if self.multiscale else 0
        return self.window + extra + 1


#: Config values a version 1 artifact implied (before the fields existed).
LEGACY_CONFIG: dict[str, Any] = {
    "ref": "mean",
    "multiscale": False,
    "calib_step": 0.0,
    "blend_rate": 0.0,
}


@dataclass
class Norm:
    """Standardisation of the level feature (fit on the training set)."""

    level_mu: float = 5.0
    level_sd: float = 1.0


@dataclass
class Artifact:
    """A loaded forecaster model: config, normalisation, weights and free-form metadata."""

    config: ModelConfig
    norm: Norm
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


def _ewma_weights(window: int, com: float) -> np.ndarray:
    """Normalised EWMA weights over a window, oldest first (pandas ``adjust=True``)."""
    w = (com / (1.0 + com)) ** np.arange(window)[::-1]
    return w / w.sum()


def _slope_weights(span: int) -> np.ndarray:
    """Weights giving the least-squares slope (per second) of the last ``span`` values."""
    x = np.arange(span) - (span - 1) / 2.0
    return x / (x**2).sum()


def reference(windows: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Return the reference level (``log1p`` space) of raw rate windows ``(N, window)``."""
    if cfg.ref == "ewma":
        return np.log1p(windows @ _ewma_weights(windows.shape[1], cfg.ref_com))
    if cfg.ref == "mean":
        return np.log1p(windows[:, -cfg.ref_s :]).mean(axis=1)
    raise ForecastError(f"unknown reference {cfg.ref!r}. Fix: use ewma or mean")


def features(windows: np.ndarray, cfg: ModelConfig, norm: Norm) -> tuple[np.ndarray, np.ndarray]:
    """Turn raw rate windows ``(N, window)`` into model inputs and reference levels.

    Returns:
        ``(inputs (N, n_inputs), ref (N,))``; ``ref`` is in ``log1p`` space.

    """
    windows = np.asarray(windows, dtype=float)
    logs = np.log1p(windows)
    ref = reference(windows, cfg)
    cols = [logs - ref[:, None]]
    if cfg.multiscale:
        w = windows.shape[1]
        for com in MULTISCALE_COMS:
            cols.append((np.log1p(windows @ _ewma_weights(w, com)) - ref)[:, None])
        for span in MULTISCALE_SPANS:
            last = logs[:, -min(span, w) :]
            cols.append((last.max(axis=1) - ref)[:, None])
            cols.append((last.min(axis=1) - ref)[:, None])
            cols.append((last @ _slope_weights(last.shape[1]) * span)[:, None])
            cols.append(last.std(axis=1)[:, None])
    cols.append(((ref - norm.level_mu) / norm.level_sd)[:, None])
    return np.concatenate(cols, axis=1).astype(np.float32), ref


class MLPNet(nn.Module):
    """Feed-forward net: ``n_inputs`` inputs → ``2 * len(horizons)`` outputs."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        dims = [cfg.n_inputs] + [cfg.hidden] * cfg.layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            mods += [nn.Linear(a, b), nn.ReLU()]
        mods.append(nn.Linear(dims[-1], 2 * len(cfg.horizons_s)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs ``(N, n_inputs)`` to ``(N, 2H)``: mean heads then upper heads."""
        return self.net(x)


class LSTMNet(nn.Module):
    """LSTM over the window (one value per step); the other features join its last state."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.window = cfg.window
        self.lstm = nn.LSTM(1, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden + cfg.n_inputs - cfg.window, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, 2 * len(cfg.horizons_s)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs ``(N, n_inputs)`` to ``(N, 2H)``."""
        seq = x[:, : self.window].unsqueeze(-1)
        out, _ = self.lstm(seq)
        return self.head(torch.cat([out[:, -1], x[:, self.window :]], dim=1))


def build_net(cfg: ModelConfig) -> nn.Module:
    """Build the network named by ``cfg.arch``."""
    if cfg.arch == "mlp":
        return MLPNet(cfg)
    if cfg.arch == "lstm":
        return LSTMNet(cfg)
    raise ForecastError(f"unknown forecaster arch {cfg.arch!r}. Fix: use mlp or lstm")


def save_artifact(artifact: Artifact, path: str | Path) -> Path:
    """Write ``artifact`` to ``path`` (one file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = asdict(artifact.config)
    cfg["horizons_s"] = list(cfg["horizons_s"])
    torch.save(
        {
            "format": ARTIFACT_FORMAT,
            "version": ARTIFACT_VERSION,
            "config": cfg,
            "norm": asdict(artifact.norm),
            "state_dict": {k: v.detach().cpu().clone() for k, v in artifact.state_dict.items()},
            "meta": artifact.meta,
        },
        path,
    )
    return path


def load_artifact(path: str | Path) -> Artifact:
    """Read a forecaster artifact written by :func:`save_artifact`.

    Raises:
        ForecastError: missing file, not a forecaster artifact, or a newer version.

    """
    path = Path(path)
    if not path.is_file():
        raise ForecastError(
            f"{path}: no such forecaster model. Fix: train one with lokirl forecast train"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ForecastError(
            f"{path}: not a readable model file ({type(exc).__name__}). Fix: retrain it"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != ARTIFACT_FORMAT:
        raise ForecastError(
            f"{path}: not a lokirl forecaster artifact. Fix: pass a file from lokirl forecast train"
        )
    if int(blob.get("version", 0)) > ARTIFACT_VERSION:
        raise ForecastError(
            f"{path}: artifact version {blob['version']} is newer than this lokirl "
            f"({ARTIFACT_VERSION}). Fix: upgrade lokirl"
        )
    cfg = dict(blob["config"])
    if int(blob.get("version", 0)) < 2:
        cfg = LEGACY_CONFIG | cfg
    cfg["horizons_s"] = tuple(int(h) for h in cfg["horizons_s"])
    return Artifact(
        ModelConfig(**cfg), Norm(**blob["norm"]), blob["state_dict"], blob.get("meta", {})
    )
