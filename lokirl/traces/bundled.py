"""Traces shipped inside the package (``lokirl/data/traces``) and name resolution."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lokirl.errors import TraceError
from lokirl.traces.readers import load_trace
from lokirl.traces.types import Trace

_SUFFIXES = (".csv", ".txt")


def _data_dir() -> Path:
    return Path(str(resources.files("lokirl") / "data" / "traces"))


def list_bundled() -> list[str]:
    """Names of the bundled traces (file names without suffix), sorted."""
    return sorted(p.stem for p in _data_dir().iterdir() if p.suffix in _SUFFIXES)


def bundled_path(name: str) -> Path:
    """Path of the bundled trace ``name``.

    Raises:
        TraceError: no bundled trace of that name.

    """
    for suffix in _SUFFIXES:
        p = _data_dir() / f"{name}{suffix}"
        if p.is_file():
            return p
    raise TraceError(f"no bundled trace {name!r}. Fix: use one of {list_bundled()} or a file path")


def bundled_trace(name: str) -> Trace:
    """Load the bundled trace ``name`` (see :func:`list_bundled`)."""
    return load_trace(bundled_path(name))


def resolve_trace(spec: str | Path, fmt: str = "auto", column: str | None = None) -> Trace:
    """Load a trace from a bundled name or a file path.

    A bundled name wins over a relative file of the same name only when no such
    file exists.

    Args:
        spec: Bundled name (``twitter_zipf_flat_bursty``) or a path to a trace file.
        fmt: Format of a file (see :func:`lokirl.traces.readers.load_trace`).
        column: Timestamp column for the timestamp format.

    """
    path = Path(spec)
    if path.exists():
        return load_trace(path, fmt=fmt, column=column)
    if str(spec) in list_bundled():
        return bundled_trace(str(spec))
    raise TraceError(
        f"{spec}: neither a trace file nor a bundled trace. "
        f"Fix: give an existing path or one of {list_bundled()}"
    )
