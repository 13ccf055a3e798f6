"""The learned forecaster's network, its input features and its artifact file.

Input: the last ``window`` per-second rates, as ``log1p`` minus their recent
level (the mean ``log1p`` of the last ``ref_s`` rates), plus the standardised
level itself. Output per horizon ``h``: the forecast of ``log1p(mean rate over
the next h s)`` minus the level, once for the mean (Huber loss) and once for the
upper quantile (pinball loss).

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
ARTIFACT_VERSION = 1


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

    """

    arch: str = "mlp"
    window: int = 64
    ref_s: int = 5
    hidden: int = 96
    layers: int = 2
    horizons_s: tuple[int, ...] = DEFAULT_HORIZONS
    quantile: float = 0.9


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


def features(windows: np.ndarray, cfg: ModelConfig, norm: Norm) -> tuple[np.ndarray, np.ndarray]:
    """Turn raw rate windows ``(N, window)`` into model inputs and reference levels.

    Returns:
        ``(inputs (N, window + 1), ref (N,))``; ``ref`` is in ``log1p`` space.

    """
    logs = np.log1p(windows)
    ref = logs[:, -cfg.ref_s :].mean(axis=1)
    z = logs - ref[:, None]
    level = (ref - norm.level_mu) / norm.level_sd
    return np.concatenate([z, level[:, None]], axis=1).astype(np.float32), ref


class MLPNet(nn.Module):
    """Feed-forward net: ``window + 1`` inputs → ``2 * len(horizons)`` outputs."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        dims = [cfg.window + 1] + [cfg.hidden] * cfg.layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            mods += [nn.Linear(a, b), nn.ReLU()]
        mods.append(nn.Linear(dims[-1], 2 * len(cfg.horizons_s)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs ``(N, window + 1)`` to ``(N, 2H)``: mean heads then upper heads."""
        return self.net(x)


class LSTMNet(nn.Module):
    """LSTM over the window (one value per step) with the level appended to its last state."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.window = cfg.window
        self.lstm = nn.LSTM(1, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden + 1, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, 2 * len(cfg.horizons_s)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs ``(N, window + 1)`` to ``(N, 2H)``."""
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
    cfg["horizons_s"] = tuple(int(h) for h in cfg["horizons_s"])
    return Artifact(
        ModelConfig(**cfg), Norm(**blob["norm"]), blob["state_dict"], blob.get("meta", {})
    )
