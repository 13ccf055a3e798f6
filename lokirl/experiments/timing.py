"""Arrival timing as a sensitivity check: the same frames, milliseconds later.

A suite plays each (case, seed) on a rate series, and the simulator draws the arrivals
from it. Live, every frame also crosses a network hop of a few milliseconds, so the
controller sees the same frames at slightly different instants. How much a
controller's outcome hangs on such timing (its decisions read sub-second counts and
instantaneous queues) is measured by playing the arrivals drawn beforehand, once as
drawn and in copies whose every arrival is delayed independently by a uniform amount
in ``[0, jitter_ms)``: the frames, their order up to the delays and every other draw
stay those of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lokirl.errors import ConfigError
from lokirl.traces.types import ArrivalTrace, RateSeries, rates_to_arrivals

#: Salts of the arrival and delay streams (distinct from the simulator's seeds).
_ARRIVAL_SALT = 0x41525256
_DELAY_SALT = 0x4A495454

#: Largest delay accepted (ms): beyond it the check is no longer about timing.
MAX_JITTER_MS = 1000.0


@dataclass(frozen=True)
class ArrivalTiming:
    """Play each (case, seed) on arrivals drawn beforehand, copy ``copy`` of their delays.

    Attributes:
        jitter_ms: Largest delay added to an arrival, in ms (uniform in
            ``[0, jitter_ms)``, independent per arrival).
        copy: Which draw of the delays: 0 plays the arrivals undelayed, 1, 2, ...
            independent draws.

    """

    jitter_ms: float
    copy: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.jitter_ms) and 0.0 <= self.jitter_ms <= MAX_JITTER_MS):
            raise ConfigError(
                "--arrival-jitter",
                str(self.jitter_ms),
                f"must be a number of milliseconds in [0, {MAX_JITTER_MS:g}]",
                "pass e.g. --arrival-jitter 4 (a network hop's few milliseconds)",
            )
        if self.copy < 0:
            raise ConfigError(
                "--jitter-copy",
                str(self.copy),
                "must be >= 0 (0: the arrivals undelayed)",
                "pass e.g. --jitter-copy 1",
            )

    def to_meta(self) -> dict[str, Any]:
        """How a run records it (``meta["arrival_timing"]``)."""
        return {"jitter_ms": float(self.jitter_ms), "copy": int(self.copy)}


def drawn_arrivals(series: RateSeries, seed: int) -> ArrivalTrace:
    """The arrivals of ``series`` for episode seed ``seed`` (the same in every copy)."""
    rng = np.random.default_rng([_ARRIVAL_SALT, int(seed)])
    return rates_to_arrivals(series, rng)


def timed_arrivals(series: RateSeries, seed: int, timing: ArrivalTiming) -> ArrivalTrace:
    """The seed's arrivals of ``series``, each delayed as copy ``timing.copy`` draws.

    A delay that would move an arrival past the end of the trace leaves it just
    before the end, so every copy plays the same frames over the same duration.
    """
    base = drawn_arrivals(series, seed)
    if timing.copy == 0 or timing.jitter_ms == 0.0 or len(base) == 0:
        return base
    rng = np.random.default_rng([_DELAY_SALT, int(seed), int(timing.copy)])
    delays = rng.random(len(base)) * (timing.jitter_ms / 1000.0)
    end = np.nextafter(base.duration_s, 0.0)
    times = np.sort(np.minimum(base.arrivals_s + delays, end))
    return ArrivalTrace(times, name=base.name, duration_s=base.duration_s)


__all__ = ["MAX_JITTER_MS", "ArrivalTiming", "drawn_arrivals", "timed_arrivals"]
