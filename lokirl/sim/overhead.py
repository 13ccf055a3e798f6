"""A per-batch overhead drawn from measured samples, by the moment the batch starts.

Live, a worker is occupied from the dispatch of its batch until the result is back
in the ingress's event loop: the profiled service time plus the *hop* (the actor
call there and back, the wait for the loop). The hop is not a constant: it has a
long tail (p99 three to five times the median) and it grows with the load and with
the stalls of the host at that moment. :class:`OverheadTrace` carries a live run's
hops as ``(start time, seconds)`` samples; the simulator replaying the same arrivals
draws each batch's overhead from the samples of the same time bin (the whole pool
where a bin is empty), so it sees the hop's distribution and its course over the
run rather than its mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OverheadTrace:
    """Measured per-batch overheads by time bin.

    Attributes:
        bins: Overhead samples (seconds) per bin of ``bin_s``, bin ``k`` covering
            ``[k * bin_s, (k + 1) * bin_s)`` of the run.
        bin_s: Width of a bin, seconds.
        pool: Every sample (drawn from where a batch's bin has none).

    """

    bins: tuple[tuple[float, ...], ...]
    bin_s: float = 1.0
    pool: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (self.bin_s > 0 and math.isfinite(self.bin_s)):
            raise ValueError("bin_s must be a positive number of seconds")
        pool = self.pool or tuple(x for b in self.bins for x in b)
        if not pool:
            raise ValueError("an overhead trace needs at least one sample")
        if any(not (x >= 0 and math.isfinite(x)) for x in pool):
            raise ValueError("overhead samples must be finite and >= 0 seconds")
        object.__setattr__(self, "pool", pool)

    @classmethod
    def from_samples(
        cls, samples: Iterable[tuple[float, float]], bin_s: float = 1.0
    ) -> OverheadTrace:
        """Bin ``(start time s, overhead s)`` samples; negative overheads count as 0.

        Samples before time 0 go to the first bin.
        """
        by_bin: dict[int, list[float]] = {}
        for t, x in samples:
            if not (math.isfinite(t) and math.isfinite(x)):
                continue
            by_bin.setdefault(max(0, int(t // bin_s)), []).append(max(0.0, float(x)))
        n = max(by_bin) + 1 if by_bin else 0
        return cls(tuple(tuple(by_bin.get(k, ())) for k in range(n)), bin_s)

    @property
    def mean_s(self) -> float:
        """Mean of every sample, seconds."""
        return float(np.mean(self.pool))

    def sampler(self, rng: np.random.Generator) -> OverheadSampler:
        """A sampler drawing with ``rng``."""
        return OverheadSampler(self, rng)


class OverheadSampler:
    """Draws a batch's overhead for its start time (see :class:`OverheadTrace`)."""

    def __init__(self, trace: OverheadTrace, rng: np.random.Generator) -> None:
        self._bins = [np.asarray(b, float) for b in trace.bins]
        self._pool = np.asarray(trace.pool, float)
        self._bin_s = trace.bin_s
        self._rng = rng

    def draw(self, t: float) -> float:
        """Overhead (seconds) of a batch starting at ``t`` seconds."""
        k = int(t // self._bin_s)
        b = self._bins[k] if 0 <= k < len(self._bins) else self._pool
        if not len(b):
            b = self._pool
        return float(b[int(self._rng.random() * len(b))])
