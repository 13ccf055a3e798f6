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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lokirl.errors import ConfigError
from lokirl.traces.types import ArrivalTrace, RateSeries, rates_to_arrivals

if TYPE_CHECKING:
    from lokirl.experiments.runner import Results

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


@dataclass(frozen=True)
class CopySpread:
    """How much one controller's metric moves between copies, against between seeds.

    Attributes:
        controller: The controller.
        metric: The metric (additive ones per 120 epochs, as the reports count them).
        within: Mean over (case, seed) of the standard deviation over the copies.
        between: Mean over cases of the standard deviation over the seeds of copy 0
            (other Poisson draws of the same case); NaN with fewer than two seeds.
        flipped: Share of (case, seed) whose solve count is not the same in every copy.
        episodes: (case, seed) pairs played without error in every copy.

    """

    controller: str
    metric: str
    within: float
    between: float
    flipped: float
    episodes: int

    @property
    def ratio(self) -> float:
        """``within / between`` (NaN where ``between`` is 0 or NaN)."""
        if not self.between > 0:
            return math.nan
        return self.within / self.between


def _check_copies(runs: Sequence[Results]) -> list[int]:
    """The copies of ``runs``, refused unless they are copies of one run's episodes."""
    if len(runs) < 2:
        raise ConfigError("runs", str(len(runs)), "need at least two copies", "pass copies 0..K")
    timings = [r.meta.get("arrival_timing") for r in runs]
    if any(t is None for t in timings):
        raise ConfigError(
            "runs",
            "arrival_timing",
            "a run was not played with --arrival-jitter",
            "pass runs of lokirl bench --arrival-jitter MS --jitter-copy K",
        )
    copies = [int(t["copy"]) for t in timings]
    if len(set(copies)) != len(copies) or len({t["jitter_ms"] for t in timings}) != 1:
        raise ConfigError(
            "runs",
            "arrival_timing",
            f"copies {copies} at jitters {sorted({t['jitter_ms'] for t in timings})}: "
            "need distinct copies of one jitter",
            "pass each copy once, all with the same --arrival-jitter",
        )
    for key in ("suite_hash", "commit", "controllers", "solver_time", "swap"):
        if len({repr(r.meta.get(key)) for r in runs}) != 1:
            raise ConfigError(
                "runs", key, f"the copies differ in {key}", "pass copies of one command"
            )
    return copies


def copy_spread(runs: Sequence[Results], metric: str) -> list[CopySpread]:
    """Per controller, the spread of ``metric`` over the copies and over the seeds.

    Args:
        runs: Runs of one ``lokirl bench`` command that differ only in
            ``--jitter-copy`` (copy 0 among them for the spread over seeds).
        metric: A per-episode metric column (e.g. ``frame_violation_ratio``).

    Raises:
        ConfigError: runs that are not copies of one command's episodes.

    """
    from lokirl.experiments.stats import row_value

    copies = _check_copies(runs)
    values: dict[tuple[str, str, int], dict[int, float]] = {}
    solves: dict[tuple[str, str, int], set[float]] = {}
    for copy, run in zip(copies, runs, strict=True):
        for r in run.rows:
            if r.get("error") or r.get(metric) is None or not math.isfinite(float(r[metric])):
                continue
            key = (r["controller"], r["case"], int(r["seed"]))
            values.setdefault(key, {})[copy] = row_value(r, metric)
            solves.setdefault(key, set()).add(float(r["solves"]))
    out = []
    for controller in runs[0].meta["controllers"]:
        full = {k: v for k, v in values.items() if k[0] == controller and len(v) == len(copies)}
        within = [float(np.std(list(v.values()), ddof=1)) for v in full.values()]
        between = []
        if 0 in copies:
            for case in sorted({k[1] for k in full}):
                seeds = [v[0] for k, v in full.items() if k[1] == case]
                if len(seeds) > 1:
                    between.append(float(np.std(seeds, ddof=1)))
        flipped = [len(solves[k]) > 1 for k in full]
        out.append(
            CopySpread(
                controller=controller,
                metric=metric,
                within=float(np.mean(within)) if within else math.nan,
                between=float(np.mean(between)) if between else math.nan,
                flipped=float(np.mean(flipped)) if flipped else math.nan,
                episodes=len(full),
            )
        )
    return out


def pooled_copies(runs: Sequence[Results]) -> list[dict[str, Any]]:
    """Rows of every controller averaged over the copies, per (case, seed).

    Raises:
        ConfigError: runs that are not copies of one command's episodes.

    """
    from lokirl.experiments.stats import pool_controllers

    copies = _check_copies(runs)
    rows = [
        {**r, "controller": f"{r['controller']}@{copy}"}
        for copy, run in zip(copies, runs, strict=True)
        for r in run.rows
    ]
    out: list[dict[str, Any]] = []
    for c in runs[0].meta["controllers"]:
        out += pool_controllers(rows, [f"{c}@{k}" for k in copies], c)
    return out


__all__ = [
    "MAX_JITTER_MS",
    "ArrivalTiming",
    "CopySpread",
    "copy_spread",
    "drawn_arrivals",
    "pooled_copies",
    "timed_arrivals",
]
