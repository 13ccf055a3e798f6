"""TensorBoard scalars under a run's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NullWriter:
    """Stands in for a SummaryWriter when TensorBoard is unavailable."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing."""

    def add_scalars(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing."""

    def flush(self) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def tb_writer(directory: str | Path, subdir: str = "tb") -> Any:
    """Return a ``torch.utils.tensorboard.SummaryWriter`` writing to ``directory/subdir``.

    Falls back to a :class:`NullWriter` if TensorBoard cannot be imported.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - optional sink
        return NullWriter()
    return SummaryWriter(log_dir=str(Path(directory) / subdir))


def log_scalars(writer: Any, metrics: dict[str, float], step: int) -> None:
    """Write each ``metrics`` entry (namespaced key such as ``train/loss``) at ``step``."""
    for key, value in metrics.items():
        writer.add_scalar(key, float(value), step)
