"""Readers and writers for the three documented trace formats.

1. Arrival file: one request per line, first comma-separated field = arrival
   time in ms (``arrival_ms[,qos,deadline_ms]``), on the file's own time origin unless
   they are epoch times (shifted to start at 0 s).
2. Rate series CSV: ``time_s,qps`` (header optional), evenly spaced rows.
3. Timestamp CSV with a header: one request per row, the column named by
   ``column`` holds ISO datetimes or seconds (milliseconds where the column's name is
   ``ms`` or ends in ``_ms``/``-ms``/``(ms)``, or the numbers are epoch times past the
   year 5000). A datetime without a zone is read as UTC, so a trace plays the same on
   every machine whatever its local zone (and across a daylight-saving change).

A rate file's header is read by name (``time_s``/``time``..., ``qps``/``rate``...)
in any order; a UTF-8 byte-order mark is ignored.

Every problem is raised as :class:`lokirl.errors.TraceError` with one line that
names the file, the line or field, and the fix.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from lokirl.errors import TraceError
from lokirl.traces.types import ArrivalTrace, RateSeries, Trace

FORMATS: tuple[str, ...] = ("auto", "arrivals", "rates", "timestamps")
_RATE_HEADERS = {"qps", "rate", "rps", "rate_qps", "req_s"}
_TIME_HEADERS = {"time_s", "time", "t", "t_s", "second", "seconds", "sec"}


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise TraceError(f"{path}: no such trace file. Fix: check the path or use a bundled name")
    if path.is_dir():
        raise TraceError(f"{path}: is a folder, not a trace file. Fix: name one file")
    raw = path.read_bytes()
    # a byte-order mark is not data; UTF-16 is what some spreadsheets save as "Unicode text"
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise TraceError(
            f"{path}: not a text file ({exc.reason}). Fix: pass a CSV/text trace"
        ) from None
    lines = text.splitlines()
    for i, line in enumerate(lines):  # Excel's "sep=," first line names the separator
        if line.strip():
            if re.fullmatch(r"sep=.", line.strip(), flags=re.IGNORECASE):
                sep = line.strip()[4]
                if sep != ",":
                    raise TraceError(
                        f"{path}: line {i + 1} says the separator is {sep!r}; trace files "
                        "are comma-separated. Fix: save it with commas"
                    )
                lines[i] = ""  # a directive, not a header
            break
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        raise TraceError(f"{path}: trace file is empty. Fix: give a file with at least one row")
    first = next(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if sep in first and "," not in first:
            raise TraceError(
                f"{path}: line 1 is separated by {name}; trace files are comma-separated. "
                f"Fix: replace the {name} with commas"
            )
    return lines


def _data_rows(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Return ``(line number, fields)`` of each non-blank, non-comment line."""
    rows = []
    for n, line in enumerate(lines, start=1):
        s = line.strip()
        if s and not s.startswith("#"):  # CSV quoting: "1,000" is one field, not two
            rows.append((n, [f.strip() for f in next(csv.reader([s]))]))
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _name(path: Path) -> str:
    return path.stem


#: Arrival times (s) from which an arrival file is read as epoch times (about 3 years).
EPOCH_FROM_S = 1e8


def read_arrivals(path: str | Path) -> ArrivalTrace:
    """Read an arrival file (format 1: ``arrival_ms[,qos,deadline_ms]`` per line).

    Times stay on the file's own origin (a first arrival at 6 ms stays at 0.006 s),
    except epoch times (a first arrival past :data:`EPOCH_FROM_S`, about 3 years),
    which are shifted so that the first request arrives at 0 s, as timestamp CSVs are;
    unsorted rows are sorted.

    Raises:
        TraceError: missing/empty file, an unparsable or negative time.

    """
    path = Path(path)
    rows = _data_rows(_read_lines(path))
    out = np.empty(len(rows))
    for i, (n, fields) in enumerate(rows):
        try:
            value = float(fields[0])
        except ValueError:
            raise TraceError(
                f"{path}: line {n}: arrival time {fields[0]!r} is not a number. "
                "Fix: first field must be the arrival time in ms"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise TraceError(
                f"{path}: line {n}: arrival time {fields[0]!r} must be finite and >= 0. "
                "Fix: correct or drop the line"
            )
        out[i] = value / 1000.0
    if out.size and float(out.min()) >= EPOCH_FROM_S:  # epoch ms: years of silence otherwise
        out -= out.min()
    return ArrivalTrace(out, name=_name(path))


def read_rates(path: str | Path) -> RateSeries:
    """Read a rate series CSV (format 2: ``time_s,qps``, header optional).

    The bin width is the spacing of ``time_s`` (1 s for a single row); rows must be
    evenly spaced and ascending.

    Raises:
        TraceError: missing/empty file, unparsable row, negative or NaN rate,
            uneven spacing.

    """
    path = Path(path)
    rows = _data_rows(_read_lines(path))
    cols = (0, 1)  # time_s, qps
    header: list[str] = []
    if rows and not _is_number(rows[0][1][0]):
        header = [h.lower().strip('"') for h in rows[0][1]]
        rows = rows[1:]
        if len(header) < 2:
            raise TraceError(
                f"{path}: header {header} names one column; a rate file has two. "
                "Fix: use time_s,qps"
            )
        rate = [i for i, h in enumerate(header) if h in _RATE_HEADERS]
        time = [i for i, h in enumerate(header) if h in _TIME_HEADERS]
        if rate:  # the columns by their names, in any order
            others = [i for i in range(len(header)) if i != rate[0]]
            cols = (time[0] if time else others[0], rate[0])
        elif len(header) > 2:
            raise TraceError(
                f"{path}: header {header} names no rate column. Fix: name it qps "
                f"(or one of {sorted(_RATE_HEADERS)}), with time_s beside it"
            )
    if not rows:
        raise TraceError(f"{path}: rate file has a header but no rows. Fix: add time_s,qps rows")
    width = len(header) if header else 2
    for n, fields in rows:
        while len(fields) > width and not fields[-1]:
            fields.pop()  # a trailing comma (a spreadsheet's export) is no field
        if len(fields) > width:  # e.g. a decimal comma: 0,100,5 for 100.5
            raise TraceError(
                f"{path}: line {n}: {len(fields)} fields, the "
                + ("header has" if header else "format has")
                + f" {width}. Fix: one value per column, with a decimal point (100.5, "
                "not 100,5)"
            )
    times = np.empty(len(rows))
    rates = np.empty(len(rows))
    for i, (n, fields) in enumerate(rows):
        if len(fields) <= max(cols):
            raise TraceError(
                f"{path}: line {n}: expected time_s,qps, got {','.join(fields)!r}. Fix: write "
                "two numbers a row (seconds, requests/s), or pass --format arrivals for one "
                "arrival time in ms a line"
            )
        for j, (label, target) in zip(cols, (("time_s", times), ("qps", rates)), strict=True):
            try:
                target[i] = float(fields[j].strip('"'))
            except ValueError:
                raise TraceError(
                    f"{path}: line {n}: {label} {fields[j]!r} is not a number. "
                    "Fix: write numbers only (time_s,qps)"
                ) from None
        if not math.isfinite(rates[i]) or rates[i] < 0:
            raise TraceError(
                f"{path}: line {n}: qps {fields[cols[1]]!r} must be finite and >= 0. "
                "Fix: correct it"
            )
        if not math.isfinite(times[i]):
            raise TraceError(f"{path}: line {n}: time_s {fields[cols[0]]!r} is not finite")
    bin_s = 1.0
    if len(times) > 1:
        steps = np.diff(times)
        bin_s = float(steps[0])
        uneven = np.flatnonzero(np.abs(steps - bin_s) > 1e-6 * max(1.0, abs(bin_s)))
        if bin_s <= 0 or uneven.size:
            bad = 1 if bin_s <= 0 else int(uneven[0]) + 1
            raise TraceError(
                f"{path}: line {rows[bad][0]}: time_s is not evenly spaced ascending "
                f"(expected step {bin_s:g}). Fix: one row per equal-width bin"
            )
    with np.errstate(over="ignore"):
        total = float(rates.sum() * bin_s)
    if not math.isfinite(total):
        raise TraceError(
            f"{path}: the rates sum past the largest number a float holds (peak "
            f"{float(rates.max()):.3g}/s). Fix: write requests per second"
        )
    return RateSeries(rates, bin_s=bin_s, name=_name(path))


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:  # naive: UTC, never the reading machine's local zone
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def read_timestamps(path: str | Path, column: str | None = None) -> ArrivalTrace:
    """Read a timestamp CSV (format 3: a header, one request per row).

    Args:
        path: The CSV file.
        column: The header name of the timestamp column; may be omitted when the
            file has a single column.

    Times are shifted so that the earliest request arrives at 0 s.

    Raises:
        TraceError: missing/empty file, unknown column, unparsable timestamp.

    """
    path = Path(path)
    lines = _read_lines(path)
    reader = csv.reader(line for line in lines if line.strip())
    header = [h.strip() for h in next(reader)]
    if column is None:
        if len(header) != 1:
            raise TraceError(
                f"{path}: timestamp CSV has columns {header}. Fix: name the timestamp column "
                "(--column NAME, or column= in a suite); for a rate series pass --format rates "
                "with a header time_s,qps"
            )
        column = header[0]
    if column not in header:
        raise TraceError(
            f"{path}: no column {column!r} in header {header}. Fix: use one of those names"
        )
    col = header.index(column)
    values = []
    n = 1
    for n, fields in enumerate(reader, start=2):
        if col >= len(fields) or not fields[col].strip():
            raise TraceError(f"{path}: line {n}: column {column!r} is missing. Fix: fill it")
        text = fields[col].strip()
        try:
            value = _parse_time(text)
        except ValueError:
            raise TraceError(
                f"{path}: line {n}: {column}={text!r} is neither seconds nor an ISO datetime. "
                "Fix: write e.g. 2021-01-31T12:00:00.250 or 12.25"
            ) from None
        if not math.isfinite(value):
            raise TraceError(f"{path}: line {n}: {column}={text!r} is not finite")
        values.append(value)
    if not values:
        raise TraceError(f"{path}: timestamp CSV has a header but no rows. Fix: add rows")
    arr = np.asarray(values, dtype=float)
    if _in_ms(column, arr):
        arr = arr / 1000.0
    return ArrivalTrace(arr - arr.min(), name=_name(path))


def _in_ms(column: str, values: np.ndarray) -> bool:
    """Whether a numeric timestamp column is in milliseconds.

    Yes for a column named ``ms``, ``*_ms``, ``*-ms`` or ``*(ms)`` (``items`` is not), or
    for epoch times past the year 5000 in seconds.
    """
    name = column.strip().lower()
    return bool(re.search(r"(^|[^a-z])ms\)?$", name)) or float(values.min()) > 1e11


def detect_format(path: str | Path, column: str | None = None) -> str:
    """Guess the format of a trace file: ``arrivals``, ``rates`` or ``timestamps``.

    A ``column`` means timestamps. A header naming a rate column (``qps``) means
    rates; any other header means timestamps. Without a header, two fields per row
    mean rates (``time_s,qps``) and one or three mean arrivals (``arrival_ms,...``).
    """
    if column is not None:
        return "timestamps"
    path = Path(path)
    rows = _data_rows(_read_lines(path))
    first = rows[0][1]
    if not _is_number(first[0]):
        lowered = {f.lower().strip('"') for f in first}
        return "rates" if lowered & _RATE_HEADERS else "timestamps"
    return "rates" if len(first) == 2 else "arrivals"


def load_trace(path: str | Path, fmt: str = "auto", column: str | None = None) -> Trace:
    """Read a trace file in any documented format.

    Args:
        path: The file.
        fmt: ``auto`` (detect), ``arrivals``, ``rates`` or ``timestamps``.
        column: Timestamp column for the timestamp format.

    Returns:
        A :class:`RateSeries` (rates format) or an :class:`ArrivalTrace`.

    """
    if fmt not in FORMATS:
        raise TraceError(f"{path}: unknown trace format {fmt!r}. Fix: use one of {FORMATS}")
    if fmt == "auto":
        fmt = detect_format(path, column)
    if fmt == "arrivals":
        return read_arrivals(path)
    if fmt == "rates":
        return read_rates(path)
    return read_timestamps(path, column)


def write_rates(series: RateSeries, path: str | Path, decimals: int = 3) -> Path:
    """Write ``series`` as a ``time_s,qps`` CSV with a header; returns the path."""
    path = Path(path)
    lines = ["time_s,qps"]
    for t, r in zip(series.times_s, series.rates, strict=True):
        value = f"{r:.{decimals}f}"
        if decimals > 0:
            value = value.rstrip("0").rstrip(".")
        lines.append(f"{t:g},{value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_arrivals(trace: ArrivalTrace, path: str | Path) -> Path:
    """Write ``trace`` as an arrival file (one ``arrival_ms`` per line); returns the path."""
    path = Path(path)
    path.write_text("".join(f"{t * 1000:.3f}\n" for t in trace.arrivals_s), encoding="utf-8")
    return path
