"""Pure transforms of traces: window, speed-up, rescale, rebin, concatenation, mixing.

Each function returns a new trace and leaves its input alone. Functions that take
either kind of trace return the same kind.
"""

from __future__ import annotations

import math

import numpy as np

from lokirl.errors import TraceError
from lokirl.traces.types import (
    ArrivalTrace,
    RateSeries,
    Trace,
    arrivals_to_rates,
    rates_to_arrivals,
)


def window(trace: Trace, start_s: float, end_s: float | None = None) -> Trace:
    """Keep ``[start_s, end_s)`` and shift it to start at 0.

    For a rate series the window snaps outward to whole bins. A window that reaches
    the end of arrivals keeps the last one (``[start_s, end]``).

    Args:
        trace: The trace.
        start_s: Start of the window in seconds.
        end_s: End of the window in seconds (``None``: to the end).

    """
    total = trace.duration_s
    end = total if end_s is None else min(end_s, total)
    if start_s < 0 or end <= start_s:
        raise TraceError(
            f"{trace.name}: window {start_s:g}:{end_s} is empty or negative "
            f"(trace lasts {total:g} s). Fix: use 0 <= a < b"
        )
    if isinstance(trace, RateSeries):
        i0 = int(math.floor(start_s / trace.bin_s + 1e-9))
        i1 = int(math.ceil(end / trace.bin_s - 1e-9))
        return RateSeries(trace.rates[i0:i1], bin_s=trace.bin_s, name=trace.name)
    arr = trace.arrivals_s
    # up to the trace's own end the last arrival is kept (its duration is that arrival)
    upto = arr <= end if end >= total else arr < end
    kept = arr[(arr >= start_s) & upto] - start_s
    return ArrivalTrace(kept, name=trace.name, duration_s=end - start_s)


def speedup(trace: Trace, factor: float) -> Trace:
    """Compress time by ``factor`` (2 plays the trace twice as fast, at twice the rate).

    A rate series keeps its bin count: bins get ``factor`` times narrower and
    their rates ``factor`` times higher, so the expected request count is kept.
    """
    if not factor > 0:
        raise TraceError(f"{trace.name}: speed-up must be > 0, got {factor}. Fix: e.g. 2")
    if isinstance(trace, RateSeries):
        return RateSeries(trace.rates * factor, bin_s=trace.bin_s / factor, name=trace.name)
    return ArrivalTrace(
        trace.arrivals_s / factor, name=trace.name, duration_s=trace.duration_s / factor
    )


def rebin(series: RateSeries, bin_s: float) -> RateSeries:
    """Resample a rate series to bins of ``bin_s`` seconds, keeping the request count.

    The new bin must be a whole multiple or a whole fraction of the old one.
    """
    ratio = bin_s / series.bin_s
    if abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1:
        k = round(ratio)
        n = len(series.rates) // k * k
        if n == 0:
            raise TraceError(f"{series.name}: series is shorter than one {bin_s:g} s bin")
        rates = series.rates[:n].reshape(-1, k).mean(axis=1)
        return RateSeries(rates, bin_s=bin_s, name=series.name)
    inv = 1 / ratio
    if abs(inv - round(inv)) < 1e-9:
        return RateSeries(np.repeat(series.rates, round(inv)), bin_s=bin_s, name=series.name)
    raise TraceError(
        f"{series.name}: cannot rebin {series.bin_s:g} s bins to {bin_s:g} s. "
        "Fix: use a whole multiple or fraction"
    )


def rescale(
    trace: Trace,
    lo: float,
    hi: float,
    rng: np.random.Generator | None = None,
    bin_s: float = 1.0,
) -> Trace:
    """Map the trace's rates linearly from their ``min..max`` onto ``lo..hi``.

    This keeps the shape (every bin keeps its relative position between the
    minimum and the maximum), as Loki did with the Azure Functions traces. A flat
    series maps to ``(lo + hi) / 2``; a trace without requests is refused (it has no
    shape to keep).

    Args:
        trace: The trace; arrivals are first counted into ``bin_s`` bins.
        lo: Target minimum rate (req/s), ``>= 0``.
        hi: Target maximum rate (req/s), ``>= lo``.
        rng: Needed for arrivals, which are redrawn as a Poisson process.
        bin_s: Bin width used to count arrivals.

    Returns:
        A rate series for a rate series; arrivals for arrivals.

    """
    if not (0 <= lo <= hi) or not math.isfinite(hi):
        raise TraceError(f"{trace.name}: rescale range {lo:g}:{hi:g} invalid. Fix: 0 <= lo <= hi")
    series = trace if isinstance(trace, RateSeries) else arrivals_to_rates(trace, bin_s)
    r = series.rates
    if not (r.size and float(r.max()) > 0):  # no shape to keep: it would become a flat load
        raise TraceError(
            f"{trace.name}: the trace has no requests, so there is no shape to map onto "
            f"{lo:g}..{hi:g}. Fix: give a trace with requests (or widen its window)"
        )
    span = float(r.max() - r.min()) if r.size else 0.0
    if span == 0:
        scaled = np.full_like(r, (lo + hi) / 2)
    else:
        scaled = lo + (r - r.min()) * (hi - lo) / span
    out = RateSeries(scaled, bin_s=series.bin_s, name=series.name)
    if isinstance(trace, RateSeries):
        return out
    if rng is None:
        raise TraceError(f"{trace.name}: rescaling arrivals needs rng= to redraw them")
    return rates_to_arrivals(out, rng)


def concat(traces: list[Trace], name: str | None = None) -> Trace:
    """Play traces one after the other (all of one kind; rate series of one bin width)."""
    if not traces:
        raise TraceError("concat: no traces given. Fix: pass at least one")
    label = name or "+".join(t.name for t in traces)
    if all(isinstance(t, RateSeries) for t in traces):
        bins = {t.bin_s for t in traces}
        if len(bins) != 1:
            raise TraceError(f"concat: bin widths differ {sorted(bins)}. Fix: rebin first")
        return RateSeries(np.concatenate([t.rates for t in traces]), bin_s=bins.pop(), name=label)
    if all(isinstance(t, ArrivalTrace) for t in traces):
        parts, offset = [], 0.0
        for t in traces:
            parts.append(t.arrivals_s + offset)
            offset += t.duration_s
        return ArrivalTrace(np.concatenate(parts), name=label, duration_s=offset)
    raise TraceError("concat: mixes rate series and arrivals. Fix: convert with as_rates")


def mix_segments(
    series: list[RateSeries],
    duration_s: float,
    rng: np.random.Generator,
    min_segment_s: float = 30.0,
    max_segment_s: float = 120.0,
    name: str = "mix",
) -> RateSeries:
    """Build a training episode from random segments of random source series.

    Each segment picks a source uniformly, a length uniform in
    ``[min_segment_s, max_segment_s]`` (capped at the source's length) and a
    random start inside it. Segments are concatenated until ``duration_s``.

    Args:
        series: Source rate series, all of one bin width.
        duration_s: Length of the result in seconds.
        rng: Source of randomness.
        min_segment_s: Shortest segment in seconds.
        max_segment_s: Longest segment in seconds.
        name: Name of the result.

    """
    if not series:
        raise TraceError("mix_segments: no source series. Fix: pass at least one")
    bins = {s.bin_s for s in series}
    if len(bins) != 1:
        raise TraceError(f"mix_segments: bin widths differ {sorted(bins)}. Fix: rebin first")
    bin_s = bins.pop()
    need = int(math.ceil(duration_s / bin_s))
    lo_n = max(1, int(min_segment_s / bin_s))
    hi_n = max(lo_n, int(max_segment_s / bin_s))
    parts: list[np.ndarray] = []
    have = 0
    while have < need:
        src = series[int(rng.integers(len(series)))].rates
        n = min(int(rng.integers(lo_n, hi_n + 1)), len(src), need - have)
        start = int(rng.integers(0, len(src) - n + 1))
        parts.append(src[start : start + n])
        have += n
    return RateSeries(np.concatenate(parts), bin_s=bin_s, name=name)


def fine_bins(trace: Trace, max_bin_s: float = 1.0) -> Trace:
    """``trace`` with rate bins no wider than ``max_bin_s`` (arrival traces as they are).

    A rate series written per minute (or per any bin wider than the decision epoch)
    keeps its rate within each bin, split into ``max_bin_s`` bins, so that a window or a
    ``--duration`` cuts it to the second instead of snapping outward to the next whole
    minute; the request count is kept.
    """
    if not isinstance(trace, RateSeries) or trace.bin_s <= max_bin_s + 1e-12:
        return trace
    k = int(math.ceil(trace.bin_s / max_bin_s - 1e-9))
    return RateSeries(np.repeat(trace.rates, k), bin_s=trace.bin_s / k, name=trace.name)


def resample(series: RateSeries, bin_s: float = 1.0) -> RateSeries:
    """Resample to any bin width by linear interpolation of the cumulative count.

    Works for any ratio of bin widths (unlike :func:`rebin`); the expected count
    over whole new bins is kept. A final partial bin is dropped.
    """
    if not bin_s > 0:
        raise TraceError(f"{series.name}: bin_s must be > 0, got {bin_s}")
    if abs(series.bin_s - bin_s) < 1e-12:
        return series
    n_new = int(math.floor(series.duration_s / bin_s + 1e-9))
    if n_new < 1:
        raise TraceError(f"{series.name}: series is shorter than one {bin_s:g} s bin")
    edges = np.arange(len(series.rates) + 1) * series.bin_s
    cum = np.concatenate([[0.0], np.cumsum(series.rates * series.bin_s)])
    at = np.interp(np.arange(n_new + 1) * bin_s, edges, cum)
    return RateSeries(np.maximum(np.diff(at), 0.0) / bin_s, bin_s=bin_s, name=series.name)
