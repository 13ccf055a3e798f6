"""Run folders and resolved configs.

Every command writes its outputs under ``runs/{kind}__{name}__{YYYYmmdd-HHMMSS}/``;
the base folder is ``runs`` in the working directory unless ``LOKIRL_RUNS_DIR`` is set.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

RUNS_ENV = "LOKIRL_RUNS_DIR"


def runs_root() -> Path:
    """Return the base folder of all runs (``$LOKIRL_RUNS_DIR`` or ``./runs``)."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def run_dir(kind: str, name: str, root: str | Path | None = None) -> Path:
    """Create and return a fresh run folder ``{root}/{kind}__{name}__{time}``.

    Args:
        kind: What made the run (``forecast-train``, ``simulate``...).
        name: A short label (trace, experiment); unsafe characters become ``-``.
        root: Base folder; defaults to :func:`runs_root`.

    If a folder of the same second exists, a suffix ``-1``, ``-2``... is added.

    """
    base = Path(root) if root is not None else runs_root()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem = f"{_slug(kind)}__{_slug(name)}__{stamp}"
    path = base / stem
    n = 0
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            n += 1
            path = base / f"{stem}-{n}"


def to_plain(value: Any) -> Any:
    """Turn dataclasses, paths, enums, tuples and numpy values into YAML-safe values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return to_plain(value.value)
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def write_config(directory: str | Path, config: Any, filename: str = "config.yaml") -> Path:
    """Write the resolved ``config`` (dict or dataclass) as YAML into ``directory``."""
    path = Path(directory) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_plain(config), sort_keys=False), encoding="utf-8")
    return path
