"""One line on how a trace file was read, and the requests a span of a trace holds.

A trace read with the wrong unit (arrival times written in seconds, a column of rates
read as arrival milliseconds) runs at the wrong scale without any error; the commands
that read a file print :func:`read_note` so the span and the request count can be
checked at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lokirl.traces.bundled import resolve_trace
from lokirl.traces.readers import detect_format, load_trace
from lokirl.traces.types import ArrivalTrace, RateSeries, Trace

_KINDS = {
    "arrivals": "an arrival file (one arrival time in ms a line)",
    "rates": "a rate file (time_s,qps rows)",
    "timestamps": "a timestamp CSV (one request a row)",
}

#: A first arrival later than this many seconds (and a tenth of the span) is called out.
LATE_START_S = 10.0


def describe_trace(trace: Trace) -> str:
    """Describe a trace's span, rates and request count in one phrase.

    Args:
        trace: A rate series or arrivals.

    Returns:
        E.g. ``300 bins of 1 s (300 s), mean 512 req/s, peak 900 req/s, about 153,600
        requests``.

    """
    if isinstance(trace, RateSeries):
        r = trace.rates
        if r.size == 0:
            return "no bins"
        return (
            f"{r.size:,} bins of {trace.bin_s:g} s ({trace.duration_s:,.6g} s), mean "
            f"{float(r.mean()):.4g} req/s, peak {float(r.max()):.4g} req/s, about "
            f"{trace.expected_requests:,.0f} requests"
        )
    a = trace.arrivals_s
    if a.size == 0:
        return "no requests"
    span = max(trace.duration_s, 1e-9)
    return (
        f"{a.size:,} requests in {float(a[-1] - a[0]):,.6g} s (from {float(a[0]):,.6g} s to "
        f"{float(a[-1]):,.6g} s), a mean of {a.size / span:.4g} req/s over "
        f"{trace.duration_s:,.6g} s"
    )


def late_start_s(trace: Trace) -> float:
    """The quiet seconds before a trace's first request when they stand out, else 0.

    A file of arrivals keeps its own time origin, so a trace cut from a longer log
    (first request at 1,000 s) plays those seconds as silence; this is the length of
    that silence when it is longer than :data:`LATE_START_S` and a tenth of the trace.
    """
    if isinstance(trace, RateSeries):
        nz = np.flatnonzero(trace.rates > 0)
        first = float(nz[0]) * trace.bin_s if nz.size else 0.0
    else:
        first = float(trace.arrivals_s[0]) if trace.arrivals_s.size else 0.0
    span = max(trace.duration_s, 1e-9)
    return first if first > LATE_START_S and first > 0.1 * span else 0.0


def read_note(
    spec: str | Path, trace: Trace, kind: str, column: str | None = None, detected: bool = False
) -> str:
    """Say how a trace file was read: its format, span, rates and request count.

    Args:
        spec: The file as the user named it.
        trace: What the reader made of it.
        kind: The format it was read as (``arrivals``, ``rates`` or ``timestamps``).
        column: The timestamp column, if one was named.
        detected: Whether the format was detected rather than given.

    Returns:
        One line, e.g. ``t.csv: read as a rate file (time_s,qps rows), auto-detected:
        300 bins of 1 s (300 s), ...``; a late first request adds how long the trace
        is silent before it.

    """
    how = _KINDS.get(kind, kind) + (", auto-detected" if detected else "")
    if kind == "timestamps" and column:
        how += f", column {column!r}"
    line = f"{spec}: read as {how}: {describe_trace(trace)}"
    quiet = late_start_s(trace)
    if quiet:
        line += (
            f"; no request before {quiet:,.6g} s, which play as silence (a file keeps its "
            "own time origin)"
        )
    return line


def resolve_trace_noted(
    spec: str | Path, fmt: str = "auto", column: str | None = None
) -> tuple[Trace, str | None]:
    """:func:`lokirl.traces.resolve_trace`, with :func:`read_note` for a file.

    Returns:
        The trace, and the note for a trace file (``None`` for a bundled name, whose
        reading is known).

    """
    path = Path(spec)
    if not path.is_file():  # a bundled name, or the reader's own error for a folder
        return resolve_trace(spec, fmt=fmt, column=column), None
    kind = detect_format(path, column) if fmt == "auto" else fmt
    trace = load_trace(path, fmt=kind, column=column)  # refuses an unknown format
    return trace, read_note(spec, trace, kind, column, detected=fmt == "auto")


def requests_before(trace: Trace, horizon_s: float) -> float:
    """Requests a trace holds (expects, for rates) in its first ``horizon_s`` seconds.

    Args:
        trace: A rate series or arrivals.
        horizon_s: Seconds from the trace's start.

    """
    if isinstance(trace, ArrivalTrace):
        return float(np.searchsorted(trace.arrivals_s, horizon_s, side="left"))
    r = trace.rates
    whole = int(min(len(r), max(0.0, horizon_s) // trace.bin_s))
    total = float(r[:whole].sum() * trace.bin_s)
    if whole < len(r):
        total += float(r[whole]) * (max(0.0, horizon_s) - whole * trace.bin_s)
    return total
