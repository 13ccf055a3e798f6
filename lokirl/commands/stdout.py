"""Keeping a command's ``--json`` output parseable when libraries print to stdout.

Ray's driver prints its daemons' warnings (e.g. the raylet's "worker processes have
been started" notice when many actors start) to the process's stdout, where they
would precede or follow a command's JSON. :func:`reserve_stdout_for_json` moves every
other writer of file descriptor 1 to stderr for the rest of the process and returns
a stream on the original stdout that only the JSON is written to; :func:`strict_json`
writes ``null`` where a metric has no value (``NaN`` is not JSON).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import sys
from typing import Any, TextIO


def reserve_stdout_for_json() -> TextIO:
    """Send fd 1 (and ``sys.stdout``) to stderr from now on; return the original stdout.

    Call it before starting Ray (or anything else that prints), then write the JSON
    document to the returned stream. Idempotent in effect: a second call returns a
    stream on the same original stdout.

    Returns:
        A line-buffered text stream on the stdout the process was started with (closed,
        and so flushed, when the process exits).

    """
    global _RESERVED
    if _RESERVED is not None and not _RESERVED.closed:
        return _RESERVED
    sys.stdout.flush()
    original = os.dup(1)
    os.dup2(2, 1)
    _RESERVED = os.fdopen(original, "w", buffering=1)
    atexit.register(_RESERVED.close)
    return _RESERVED


_RESERVED: TextIO | None = None


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def strict_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON of ``value``: a metric with no value is ``null``, never ``NaN``.

    Args:
        value: What to write (dicts, lists, numbers, strings; others via ``str``).
        indent: As :func:`json.dumps`.

    """
    return json.dumps(finite(value), default=str, allow_nan=False, indent=indent)
