"""Trace data types and the conversions between them.

A trace is either a :class:`RateSeries` (mean request rate per time bin) or an
:class:`ArrivalTrace` (one timestamp per request). Rates become arrivals through
a Poisson process within each bin; arrivals become rates by counting per bin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lokirl.errors import TraceError


@dataclass(frozen=True)
class RateSeries:
    """Request rate per time bin.

    Attributes:
        rates: Mean request rate (req/s) in each bin, finite and ``>= 0``.
        bin_s: Width of a bin in seconds.
        name: A short name for tables and plots.

    """

    rates: np.ndarray
    bin_s: float = 1.0
    name: str = "rates"

    def __post_init__(self) -> None:
        rates = np.asarray(self.rates, dtype=float).reshape(-1)
        if not self.bin_s > 0:
            raise TraceError(f"{self.name}: bin_s must be > 0, got {self.bin_s}")
        if not np.all(np.isfinite(rates)):
            i = int(np.flatnonzero(~np.isfinite(rates))[0])
            raise TraceError(f"{self.name}: rate of bin {i} is not finite. Fix: drop or fill it")
        if np.any(rates < 0):
            i = int(np.flatnonzero(rates < 0)[0])
            raise TraceError(
                f"{self.name}: rate of bin {i} is negative ({rates[i]}). Fix: use >= 0"
            )
        rates.setflags(write=False)
        object.__setattr__(self, "rates", rates)

    @property
    def duration_s(self) -> float:
        """Length of the series in seconds."""
        return len(self.rates) * self.bin_s

    @property
    def times_s(self) -> np.ndarray:
        """Start time of each bin in seconds."""
        return np.arange(len(self.rates)) * self.bin_s

    @property
    def expected_requests(self) -> float:
        """Expected number of requests over the whole series."""
        return float(self.rates.sum() * self.bin_s)

    def __len__(self) -> int:
        return len(self.rates)


@dataclass(frozen=True)
class ArrivalTrace:
    """Arrival time of each request.

    Attributes:
        arrivals_s: Arrival times in seconds from the start of the trace, sorted, ``>= 0``.
        name: A short name for tables and plots.
        duration_s: Length of the trace in seconds; defaults to the last arrival
            (a trace may end with a quiet spell, which only this records).

    """

    arrivals_s: np.ndarray
    name: str = "arrivals"
    duration_s: float = field(default=-1.0)

    def __post_init__(self) -> None:
        arr = np.asarray(self.arrivals_s, dtype=float).reshape(-1)
        if not np.all(np.isfinite(arr)):
            raise TraceError(f"{self.name}: arrival times must be finite. Fix: drop the bad rows")
        if arr.size and arr.min() < 0:
            raise TraceError(f"{self.name}: negative arrival time {arr.min()}. Fix: use times >= 0")
        if arr.size > 1 and np.any(np.diff(arr) < 0):
            arr = np.sort(arr)
        arr.setflags(write=False)
        object.__setattr__(self, "arrivals_s", arr)
        last = float(arr[-1]) if arr.size else 0.0
        if self.duration_s < 0:
            object.__setattr__(self, "duration_s", last)
        elif self.duration_s < last:
            raise TraceError(
                f"{self.name}: duration_s {self.duration_s} is before the last arrival {last}"
            )

    def __len__(self) -> int:
        return len(self.arrivals_s)


Trace = RateSeries | ArrivalTrace


#: Most bins :func:`arrivals_to_rates` makes (about 3 years of 1 s bins).
MAX_BINS = 100_000_000


def arrivals_to_rates(trace: ArrivalTrace, bin_s: float = 1.0) -> RateSeries:
    """Count arrivals per bin.

    Args:
        trace: The arrivals.
        bin_s: Bin width in seconds.

    Returns:
        A series with ``ceil(duration / bin_s)`` bins (at least one) whose
        ``rates * bin_s`` sum to the number of arrivals.

    """
    if not bin_s > 0:
        raise TraceError(f"{trace.name}: bin_s must be > 0, got {bin_s}")
    n_bins = max(1, math.ceil(trace.duration_s / bin_s - 1e-9))
    if n_bins > MAX_BINS:
        raise TraceError(
            f"{trace.name}: the arrivals span {trace.duration_s:.3g} s, {n_bins:.3g} bins of "
            f"{bin_s:g} s (at most {MAX_BINS:.0e}). Fix: check the time unit (arrival files "
            "are in ms), or keep the part that matters (--window A:B, --duration)"
        )
    idx = np.minimum((trace.arrivals_s / bin_s).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(float)
    return RateSeries(counts / bin_s, bin_s=bin_s, name=trace.name)


def rates_to_arrivals(series: RateSeries, rng: np.random.Generator) -> ArrivalTrace:
    """Draw arrivals as a Poisson process whose rate is constant within each bin.

    Args:
        series: The rates.
        rng: Source of randomness.

    Returns:
        Sorted arrival times covering ``[0, series.duration_s)``.

    """
    counts = rng.poisson(series.rates * series.bin_s)
    starts = np.repeat(series.times_s, counts)
    arrivals = np.sort(starts + rng.random(starts.size) * series.bin_s)
    return ArrivalTrace(arrivals, name=series.name, duration_s=series.duration_s)


def as_rates(trace: Trace, bin_s: float = 1.0) -> RateSeries:
    """Return ``trace`` as a rate series (arrivals are binned at ``bin_s``)."""
    if isinstance(trace, RateSeries):
        return trace
    return arrivals_to_rates(trace, bin_s)


def as_arrivals(trace: Trace, rng: np.random.Generator) -> ArrivalTrace:
    """Return ``trace`` as arrivals (rates are drawn as a Poisson process)."""
    if isinstance(trace, ArrivalTrace):
        return trace
    return rates_to_arrivals(trace, rng)
