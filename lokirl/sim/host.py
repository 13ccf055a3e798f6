"""What both simulation engines share: the per-second bookkeeping and the controller's view."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lokirl.core.controller import (
    ARRIVAL_BIN_S,
    ControlContext,
    arrival_bin,
    arrival_bin_range,
    ewma_demand,
)
from lokirl.traces.types import RateSeries


class EpochHost:
    """Mixin of :class:`~lokirl.sim.engine.Simulation` and :class:`~lokirl.sim.fluid.FluidSimulation`.

    The engine keeps the per-second arrays (``s_arrivals``, ``s_frames_done``, ...),
    ``sec_done``, ``next_epoch``, ``trace_end``, the running ``plan`` and the solve
    counters, and provides ``now``, ``_queue_lengths()`` and ``_active()``.
    """

    config: Any
    trace: Any
    plan: Any
    pending: Any
    sec_done: int
    next_epoch: float
    trace_end: float
    end: float
    _finished: Any
    n_sec: int
    demand_estimate: float
    last_solve_at: float
    last_solve_time: float
    task_names: list[str]

    @property
    def now(self) -> float:  # pragma: no cover - provided by the engine
        """Current simulated time in seconds."""
        raise NotImplementedError

    def run_until(self, t: float) -> None:  # pragma: no cover - provided by the engine
        """Advance the clock to ``t``, doing the per-second bookkeeping on the way."""
        raise NotImplementedError

    def _rebuild_routes(self) -> None:  # pragma: no cover - provided by the engine
        raise NotImplementedError

    def _queue_lengths(self) -> dict[str, int]:  # pragma: no cover - provided by the engine
        raise NotImplementedError

    def _active(self) -> int:  # pragma: no cover - provided by the engine
        raise NotImplementedError

    def _result(self) -> Any:  # pragma: no cover - provided by the engine
        raise NotImplementedError

    def finish(self) -> Any:
        """Play to the end (drain included) and return the :class:`SimResult`.

        The simpy engine checks conservation; the fluid engine's counts are amounts
        of requests rounded to integers, with what is still queued reported in flight.
        """
        if self._finished is not None:
            return self._finished
        self.run_until(self.end)
        self._finished = self._result()
        return self._finished

    @property
    def done(self) -> bool:
        """Whether the trace is over (no more controller epochs)."""
        return self.next_epoch >= self.trace_end - 1e-9

    def step_epoch(self) -> ControlContext:
        """Advance one epoch; rebuild the routing table; return the new context."""
        self.next_epoch = min(self.next_epoch + self.config.epoch_s, self.trace_end)
        self.run_until(self.next_epoch)
        self.demand_estimate = ewma_demand(self._history())
        if self.plan is not None:
            self._rebuild_routes()
        return self._context()

    def _init_arrival_bins(self, n_sec: int) -> None:
        """Allocate the sub-second arrival counts for ``n_sec`` seconds."""
        self.b_arrivals = np.zeros(int(math.ceil(n_sec / ARRIVAL_BIN_S)) + 1, dtype=np.int64)

    def _count_arrivals(self, t: float, n: int = 1) -> None:
        """Count ``n`` root arrivals at time ``t`` in their sub-second bin."""
        b = min(arrival_bin(t), len(self.b_arrivals) - 1)
        self.b_arrivals[b] += n

    def _recent_bins(self, now: float) -> tuple[float, ...]:
        """The sub-second arrival counts of the epoch ending at ``now`` (whole bins)."""
        r = arrival_bin_range(now, self.config.epoch_s)
        return tuple(float(x) for x in self.b_arrivals[r.start : r.stop])

    def _history(self) -> tuple[float, ...]:
        s = self.sec_done
        lo = max(0, s - self.config.history_s)
        return tuple(float(x) for x in self.s_arrivals[lo:s])

    def _context(self, initial: bool = False) -> ControlContext:
        if initial:
            d0 = self.config.initial_demand
            if d0 is None:
                d0 = self._initial_rate()
            history: tuple[float, ...] = (d0,)
        else:
            history = self._history()
        s = self.sec_done - 1
        viol = acc = 0.0
        if s >= 0:
            k = max(1, int(round(self.config.epoch_s)))
            lo = max(0, s - k + 1)
            done = float(self.s_frames_done[lo : s + 1].sum())
            viol = float(self.s_frame_viol[lo : s + 1].sum()) / done if done else 0.0
            ln = float(self.s_leaf_n[lo : s + 1].sum())
            acc = float(self.s_leaf_acc[lo : s + 1].sum()) / ln if ln else 0.0
        now = float(self.now)
        bins = () if initial else self._recent_bins(now)
        return ControlContext(
            now_s=now,
            demand_history=history,
            plan=self.plan,
            time_since_solve_s=now - self.last_solve_at,
            last_solve_time_s=self.last_solve_time,
            solving=self.pending is not None,
            slo_violation_ratio=viol,
            accuracy=acc,
            queue_lengths=self._queue_lengths(),
            active_workers=self._active(),
            arrival_bins=bins,
            arrival_bin_s=ARRIVAL_BIN_S if bins else 0.0,
        )

    def _initial_rate(self) -> float:
        tr = self.trace
        ep = self.config.epoch_s
        if isinstance(tr, RateSeries):
            k = max(1, int(math.ceil(ep / tr.bin_s)))
            return float(tr.rates[:k].mean()) if len(tr.rates) else 0.0
        return float(np.searchsorted(tr.arrivals_s, ep) / ep)

    def _second(self, s: int) -> None:
        """Bookkeeping at the end of second ``s``."""
        if s >= self.n_sec:
            return
        self.s_demand[s] = self.demand_estimate
        self.s_capacity[s] = self.plan.max_demand if self.plan is not None else 0.0
        self.s_active[s] = self._active()
        total = 0
        for task, n in self._queue_lengths().items():
            self.s_queue_task[task][s] = n
            total += n
        self.s_queue[s] = total
