"""Random draws tied to the request, not to the order in which requests are served.

Common random numbers make two controllers comparable on one seed: what is random
about the *traffic* must come out the same whatever the controller does. Arrivals
already come from their own generator. Branching (how many objects a detector
finds in a frame, hence how many sub-requests go to each child task) depended on
the order in which batches finished, which differs between controllers; here it is
a function of the request itself.

Every sub-request carries a 64-bit key: a frame's root sub-requests derive theirs
from the episode's branching seed, the frame's arrival number and the root's index;
a spawned sub-request from its parent's key, the child task's index and its own
index among its siblings. The number of sub-requests a request spawns to a child is
the inverse Poisson CDF of the child's mean at a uniform hashed from the key, so the
same frame spawns the same count under every controller that serves it with the
same variant, and counts move monotonically with the mean when the variant differs
(the draws of two variants are coupled). The hash is SplitMix64's finaliser.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_UNIT = 2.0**-53


def mix64(x: int) -> int:
    """SplitMix64's finaliser of ``x + golden ratio`` (a bijection of 64-bit integers)."""
    z = (x + _GOLDEN) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def root_key(seed: int, frame_no: int, root: int) -> int:
    """Key of root sub-request ``root`` (< 256) of the ``frame_no``-th frame of an episode."""
    return mix64(seed ^ ((frame_no << 8) | root))


def child_key(parent: int, child: int, index: int) -> int:
    """Key of the ``index``-th sub-request a request with key ``parent`` sends to ``child``."""
    return mix64(parent ^ (((child + 1) << 40) | index))


#: Per-child salts of the count draw (distinct from the key derivations' inputs).
_SALT = tuple((0xD1B54A32D192ED03 * (c + 1)) & ((1 << 64) - 1) for c in range(64))


def uniform(key: int, child: int) -> float:
    """The uniform in [0, 1) that decides how many sub-requests ``key`` sends to ``child``."""
    return (mix64(key ^ _SALT[child % len(_SALT)]) >> 11) * _UNIT


@lru_cache(maxsize=256)
def poisson_cdf(mean: float) -> np.ndarray:
    """The Poisson CDF at 0, 1, 2, ... until it is within 1e-15 of 1."""
    if mean <= 0.0:
        return np.array([1.0])
    out = []
    p = math.exp(-mean) if mean < 700 else 0.0
    acc = 0.0
    k = 0
    limit = int(mean + 40.0 * math.sqrt(mean) + 40)
    if p == 0.0:  # very large means: a normal approximation of the CDF
        ks = np.arange(0, limit + 1)
        z = (ks + 0.5 - mean) / math.sqrt(mean)
        return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    while k <= limit:
        acc += p
        out.append(acc)
        if acc >= 1.0 - 1e-15:
            break
        k += 1
        p *= mean / k
    return np.array(out)


def poisson_counts(mean: float, us: list[float]) -> list[int]:
    """Poisson(``mean``) counts by inversion at the uniforms ``us``."""
    cdf = poisson_cdf(float(mean))
    n = len(cdf)
    idx = np.searchsorted(cdf, np.asarray(us, dtype=float), side="right")
    return np.minimum(idx, n).tolist()
