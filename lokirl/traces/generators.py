"""Seeded generators of synthetic rate series (1 s bins).

Each family is a function ``f(duration_s, rng, **params) -> RateSeries`` that
returns *mean* rates; draw arrivals from it with
:func:`lokirl.traces.types.rates_to_arrivals`. The same ``rng`` state always
gives the same series. ``generate(family, ...)`` looks families up by name.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable

import numpy as np

from lokirl.errors import TraceError
from lokirl.traces.types import RateSeries

Generator = Callable[..., RateSeries]


def _n_bins(duration_s: float) -> int:
    if not duration_s > 0:
        raise TraceError(f"generate: duration_s must be > 0, got {duration_s}")
    return int(math.ceil(duration_s))


def _jitter(rates: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Multiply by lognormal noise with log-sd ``noise`` (mean-preserving)."""
    if not (noise >= 0 and math.isfinite(noise)):
        raise TraceError(f"generate: noise must be a finite number >= 0, got {noise}")
    if noise == 0:
        return rates
    return rates * rng.lognormal(-0.5 * noise**2, noise, size=rates.shape)


def diurnal(
    duration_s: float,
    rng: np.random.Generator,
    lo: float = 50.0,
    hi: float = 425.0,
    periods: float = 1.0,
    phase: float = 0.0,
    noise: float = 0.0,
) -> RateSeries:
    """Generate a day shape: a raised cosine from ``lo`` up to ``hi`` and back, ``periods`` times.

    Args:
        duration_s: Length in seconds.
        rng: Source of randomness (used by ``noise``).
        lo: Trough rate (req/s) at the start and end of each period.
        hi: Peak rate (req/s) in the middle of each period.
        periods: Number of day cycles in the series.
        phase: Phase shift as a fraction of a period.
        noise: Log-sd of multiplicative noise per second.

    """
    t = np.arange(_n_bins(duration_s)) / duration_s
    shape = 0.5 * (1 - np.cos(2 * np.pi * (periods * t + phase)))
    return RateSeries(_jitter(lo + (hi - lo) * shape, rng, noise), name="diurnal")


def step(
    duration_s: float,
    rng: np.random.Generator,
    levels: tuple[float, ...] = (100.0, 400.0, 800.0, 100.0),
    noise: float = 0.0,
) -> RateSeries:
    """Equal-length steps through ``levels`` (req/s)."""
    n = _n_bins(duration_s)
    idx = np.minimum((np.arange(n) * len(levels)) // n, len(levels) - 1)
    rates = np.asarray(levels, dtype=float)[idx]
    return RateSeries(_jitter(rates, rng, noise), name="step")


def ramp(
    duration_s: float,
    rng: np.random.Generator,
    start: float = 50.0,
    end: float = 500.0,
    noise: float = 0.0,
) -> RateSeries:
    """Generate a linear ramp from ``start`` to ``end`` req/s."""
    n = _n_bins(duration_s)
    rates = np.linspace(start, end, n)
    return RateSeries(_jitter(rates, rng, noise), name="ramp")


def bursts(
    duration_s: float,
    rng: np.random.Generator,
    base: float = 150.0,
    peak: float = 900.0,
    burst_rate_per_min: float = 2.0,
    mean_burst_s: float = 8.0,
    noise: float = 0.05,
) -> RateSeries:
    """Generate a base rate with bursts that start as a Poisson process.

    Args:
        duration_s: Length in seconds.
        rng: Source of randomness.
        base: Rate between bursts (req/s).
        peak: Rate during a burst (req/s).
        burst_rate_per_min: Mean number of bursts started per minute.
        mean_burst_s: Mean burst length (exponential), seconds.
        noise: Log-sd of multiplicative noise per second.

    """
    n = _n_bins(duration_s)
    rates = np.full(n, float(base))
    starts = np.flatnonzero(rng.random(n) < burst_rate_per_min / 60.0)
    for s in starts:
        length = max(1, int(round(rng.exponential(mean_burst_s))))
        rates[s : s + length] = peak
    return RateSeries(_jitter(rates, rng, noise), name="bursts")


def mmpp(
    duration_s: float,
    rng: np.random.Generator,
    low: float = 140.0,
    high: float = 1100.0,
    mean_low_s: float = 20.0,
    mean_high_s: float = 10.0,
    noise: float = 0.05,
) -> RateSeries:
    """Generate a two-state Markov-modulated (on/off) rate with exponential sojourn times."""
    n = _n_bins(duration_s)
    rates = np.empty(n)
    i, state = 0, int(rng.integers(2))
    while i < n:
        mean = mean_high_s if state else mean_low_s
        length = max(1, int(round(rng.exponential(mean))))
        rates[i : i + length] = high if state else low
        i += length
        state = 1 - state
    return RateSeries(_jitter(rates, rng, noise), name="mmpp")


def spikes(
    duration_s: float,
    rng: np.random.Generator,
    base: float = 200.0,
    height: float = 4.0,
    n_spikes: int = 3,
    width_s: float = 3.0,
    noise: float = 0.05,
) -> RateSeries:
    """Generate a base rate with ``n_spikes`` short spikes of ``height`` times the base."""
    n = _n_bins(duration_s)
    rates = np.full(n, float(base))
    width = max(1, int(round(width_s)))
    for s in rng.choice(n, size=min(n_spikes, n), replace=False):
        rates[s : s + width] = base * height
    return RateSeries(_jitter(rates, rng, noise), name="spikes")


def random_walk(
    duration_s: float,
    rng: np.random.Generator,
    start: float = 300.0,
    volatility: float = 0.03,
    lo: float = 20.0,
    hi: float = 1500.0,
) -> RateSeries:
    """Generate a geometric random walk of the rate, clipped to ``[lo, hi]``."""
    n = _n_bins(duration_s)
    log_rate = np.log(start) + np.cumsum(rng.normal(0.0, volatility, n))
    return RateSeries(np.clip(np.exp(log_rate), lo, hi), name="random_walk")


def mixture(
    duration_s: float,
    rng: np.random.Generator,
    min_segment_s: float = 60.0,
    max_segment_s: float = 240.0,
    lo: float = 30.0,
    hi: float = 1200.0,
) -> RateSeries:
    """Segments of random families with random parameters, one after another.

    Levels are drawn log-uniformly in ``[lo, hi]``; each segment starts near the
    previous segment's last level half of the time, so both smooth hand-overs
    and abrupt changes appear.
    """
    n = _n_bins(duration_s)
    parts: list[np.ndarray] = []
    have = 0

    def level() -> float:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    while have < n:
        length = min(int(rng.integers(int(min_segment_s), int(max_segment_s) + 1)), n - have)
        family = str(rng.choice(_MIXABLE))
        a, b = sorted((level(), level()))
        if parts and rng.random() < 0.5:
            a = float(parts[-1][-1])
            b = max(a, b) if rng.random() < 0.5 else min(a, b)
        noise = float(rng.uniform(0.0, 0.15))
        if family == "diurnal":
            seg = diurnal(length, rng, lo=min(a, b), hi=max(a, b), periods=1.0, noise=noise)
        elif family == "step":
            k = int(rng.integers(2, 5))
            seg = step(length, rng, levels=tuple(level() for _ in range(k)), noise=noise)
        elif family == "ramp":
            seg = ramp(length, rng, start=a, end=b, noise=noise)
        elif family == "bursts":
            seg = bursts(length, rng, base=min(a, b), peak=max(a, b) * 1.5, noise=noise)
        elif family == "mmpp":
            seg = mmpp(length, rng, low=min(a, b), high=max(a, b) * 1.5, noise=noise)
        elif family == "spikes":
            seg = spikes(length, rng, base=a, height=float(rng.uniform(2, 5)), noise=noise)
        else:
            seg = random_walk(length, rng, start=a, lo=lo, hi=hi)
        parts.append(seg.rates)
        have += length
    return RateSeries(np.concatenate(parts)[:n], name="mixture")


_MIXABLE = ("diurnal", "step", "ramp", "bursts", "mmpp", "spikes", "random_walk")

#: Trace families by name.
FAMILIES: dict[str, Generator] = {
    "diurnal": diurnal,
    "step": step,
    "ramp": ramp,
    "bursts": bursts,
    "mmpp": mmpp,
    "spikes": spikes,
    "random_walk": random_walk,
    "mixture": mixture,
}


def generate(family: str, duration_s: float, rng: np.random.Generator, **params) -> RateSeries:
    """Generate a rate series of a named family.

    Args:
        family: One of :data:`FAMILIES`.
        duration_s: Length in seconds (1 s bins).
        rng: Source of randomness.
        **params: The family's own parameters (see its function).

    Raises:
        TraceError: unknown family or parameter.

    """
    try:
        fn = FAMILIES[family]
    except KeyError:
        raise TraceError(
            f"unknown trace family {family!r}. Fix: use one of {sorted(FAMILIES)}"
        ) from None
    known = [n for n in inspect.signature(fn).parameters if n not in ("duration_s", "rng")]
    for name in params:
        if name not in known:  # a misspelled one was a TypeError naming a Python function
            close = difflib.get_close_matches(name, known, n=1)
            raise TraceError(
                f"trace family {family!r} has no parameter {name!r}. Fix: "
                + (f"did you mean {close[0]!r}? " if close else "")
                + f"its parameters are {', '.join(known)}"
            )
    try:
        return fn(duration_s, rng, **params)
    except TypeError as exc:
        raise TraceError(f"trace family {family!r}: {exc}") from None
