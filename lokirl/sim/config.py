"""Simulator configuration, results and the solver-time model."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lokirl.core.allocator import AllocatorOptions
from lokirl.core.metrics import Tally
from lokirl.core.plan import Plan
from lokirl.core.reconfig import SwapMode, check_swap_mode
from lokirl.sim.overhead import OverheadTrace

#: Modelled solver wall time per plan phase, in seconds. Calibrated on
#: ``lokirl plan --sweep 25:400:75 --workers 20`` for traffic_analysis with CBC on
#: one core: hardware-scaling solves took 13-17 ms, accuracy-scaling solves
#: 137-169 ms; partial solves run phase 3 after a failed phase 2 and cost more.
#: A ``failed`` solve costs its time limit in the worst case; we charge the
#: accuracy cost (the running plan stays in force either way).
SOLVE_TIME_BY_PHASE: dict[str, float] = {
    "hardware": 0.02,
    "accuracy": 0.15,
    "partial": 0.25,
    "fallback": 0.15,
}


def modelled_solve_time(plan: Plan) -> float:
    """Deterministic solver wall time of a plan: a fixed cost per phase (seconds)."""
    return SOLVE_TIME_BY_PHASE.get(plan.phase, 0.15)


def solve_delay(plan: Plan, solver_time: str | float, wall_s: float | None = None) -> float:
    """Simulated seconds before a solved plan is in force (``SimConfig.solver_time``).

    Args:
        plan: The plan the solve gave.
        solver_time: ``"model"`` (:func:`modelled_solve_time`), ``"measured"`` (the
            solve's own wall time) or a fixed number of seconds.
        wall_s: The solve's wall time, needed for ``"measured"``.

    Raises:
        ValueError: ``"measured"`` without a wall time (planning ahead of the solve
            needs a repeatable solve time: the model or seconds).

    """
    if solver_time == "model":
        return modelled_solve_time(plan)
    if solver_time == "measured":
        if wall_s is None:
            raise ValueError(
                "planning ahead needs a repeatable solve time ('model' or seconds), not 'measured'"
            )
        return wall_s
    return float(solver_time)


@dataclass(frozen=True)
class SimConfig:
    """How a simulation runs.

    Attributes:
        epoch_s: Seconds between controller decisions (Loki: 1).
        duration_s: Simulated seconds of trace to play; ``None``: the whole trace.
        drain_s: Seconds simulated after the trace ends (no new arrivals, no
            controller calls) so that requests in flight can finish.
        solver_time: How long a solve takes in simulated time before its plan is in
            force: ``"model"`` (deterministic, :func:`modelled_solve_time`),
            ``"measured"`` (the solve's own wall time: not repeatable), or a fixed
            number of seconds.
        allocator: Allocator options; a decision's ``warm_start`` and
            ``churn_weight`` override the matching fields. Default: work-bounded
            (``deterministic``) solves, so that the same run gives the same result.
        initial_demand: Demand (frames/s) the first plan is solved for, at time 0,
            before any arrival; ``None``: the trace's mean rate over the first epoch.
            The first plan is in force at once and its workers are loaded already
            (the cluster was serving before the trace started).
        branching_window: Observations per (variant, child) the branching estimate
            averages (Loki: 50).
        history_s: Seconds of per-second arrivals a controller context carries.
        early_drop: Drop at the queue head requests that cannot meet their deadline
            (Loki does); ``False`` serves them and counts them late.
        demand_quantum: Round a decision's demand up to a multiple of this (frames/s)
            before solving (0: off); with a plan cache, nearby demands share a solve.
        check_conservation: Raise if arrived != on time + late + dropped + in flight.
        shared_cores: ``None`` (default): every worker has its own accelerator.
            A number: the workers share that many CPU cores (a CPU-only host, as in
            ``lokirl simvslive`` on one machine): a batch that starts while ``k``
            batches run (itself included) takes its profiled latency times
            ``max(1, (k + host_cores) / shared_cores)``.
        host_cores: With ``shared_cores``: cores the serving host's own work (the
            ingress and data plane, Ray's processes) keeps busy on the same cores,
            measured by ``lokirl simvslive`` as ``host_cpu_cores`` (default 0).
        batch_overhead_s: Seconds each batch occupies its worker beyond the profiled
            latency: the live path's per-batch cost outside the accelerator (dispatch,
            the actor call there and back, the wait for the ingress's event loop),
            which ``lokirl simvslive`` measures as the hop. The early-drop rule and
            every plan still read the profile, as the live runtime's do, so requests
            can finish late (default 0: the profile is the whole service time).
        batch_overhead: Instead of the constant ``batch_overhead_s``, each batch's
            overhead drawn from a live run's measured hops at the same moment of the
            run (:class:`~lokirl.sim.overhead.OverheadTrace`; ``lokirl simvslive``
            replays with it). Draws come from their own random stream, so the
            arrivals and routing are those of the run without it.
        wake_delay: The wait between routing waking an idle worker and the worker
            forming its batch, drawn per wake from a live run's measured waits at
            the same moment (``lokirl simvslive`` records them as ``wake_ms``: the
            ingress's event loop runs the woken worker's loop when it gets to it).
            Requests that arrive meanwhile join the batch, as live. ``None``
            (default): a woken worker starts at once. Its own random stream.
        max_span_s: A simulated span longer than this (seconds; default 31 days) is
            refused before the run: the engine steps every epoch, and a trace in the
            wrong time unit or stretched by a tiny ``speedup`` would run for hours.
        max_frames: A trace asking for more frames than this over the simulated span is
            refused before the run (the engine plays every request; 2e7 takes tens of
            minutes): a trace in the wrong unit or not rescaled to the cluster fails at
            once instead of running for hours.
        swap: How a worker changes variant (:data:`~lokirl.core.reconfig.SwapMode`):
            ``"overlap"`` (default: the old variant serves until the new one is
            loaded, when both fit in memory), ``"stop"`` (down for the load time)
            or ``"free"`` (no cost: the Loki authors' simulator). In every mode the
            router counts a worker only once it can serve.

    """

    epoch_s: float = 1.0
    duration_s: float | None = None
    drain_s: float = 2.0
    solver_time: str | float = "model"
    allocator: AllocatorOptions = field(
        default_factory=lambda: AllocatorOptions(deterministic=True)
    )
    initial_demand: float | None = None
    branching_window: int = 50
    history_s: int = 120
    early_drop: bool = True
    demand_quantum: float = 0.0
    check_conservation: bool = True
    shared_cores: float | None = None
    host_cores: float = 0.0
    batch_overhead_s: float = 0.0
    batch_overhead: OverheadTrace | None = None
    wake_delay: OverheadTrace | None = None
    swap: SwapMode = "overlap"
    max_frames: float = 2e7
    max_span_s: float = 31 * 86400.0

    def __post_init__(self) -> None:
        check_swap_mode(self.swap)
        if not self.epoch_s > 0:
            raise ValueError("epoch_s must be positive")
        if not self.max_frames > 0:
            raise ValueError("max_frames must be positive")
        if not self.max_span_s > 0:
            raise ValueError("max_span_s must be positive")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError("duration_s must be positive")
        if self.shared_cores is not None and not self.shared_cores > 0:
            raise ValueError("shared_cores must be positive (or None)")
        if not (self.host_cores >= 0 and math.isfinite(self.host_cores)):
            raise ValueError("host_cores must be >= 0")
        if not (self.batch_overhead_s >= 0 and math.isfinite(self.batch_overhead_s)):
            raise ValueError("batch_overhead_s must be >= 0")
        if self.batch_overhead is not None and self.batch_overhead_s:
            raise ValueError("give batch_overhead_s or batch_overhead, not both")
        if self.drain_s < 0:
            raise ValueError("drain_s must be >= 0")
        if isinstance(self.solver_time, str):
            if self.solver_time not in ("model", "measured"):
                raise ValueError("solver_time must be 'model', 'measured' or seconds")
        elif not (self.solver_time >= 0 and math.isfinite(self.solver_time)):
            raise ValueError("solver_time must be >= 0")


class ConservationError(RuntimeError):
    """The simulator lost or invented requests (a bug, never a user error)."""


@dataclass(frozen=True)
class SimResult:
    """Totals, per-second series and control cost of one run.

    Attributes:
        controller: Controller name.
        trace: Trace name.
        frames: Frame-level tally (a frame is on time when all its sub-requests are;
            dropped when any was dropped, else late when any was late). Its
            ``accuracy_sum`` adds, per on-time frame, the mean path accuracy of the
            frame's terminal sub-requests.
        subrequests: Sub-request-level tally (every request any task serves). Its
            ``accuracy_sum`` adds, per on-time sub-request, the accuracy of its path
            from the root to itself.
        accuracy: System accuracy: mean path accuracy (0-100, multiplicative model)
            of the on-time sub-requests of leaf tasks (root-to-leaf paths).
        effective_accuracy: Effective accuracy: the frames' path accuracy summed
            over on-time frames, divided by all arrived frames (a dropped, late or
            unfinished frame counts 0): ``frames.effective_accuracy``.
        mean_active_workers: Time-average of active workers (sampled each second).
        solves: Solves run (the first, at time 0, included).
        solver_time_s: Simulated solver time charged (per ``SimConfig.solver_time``).
        solver_wall_s: Wall time the solves really took.
        reconfigurations: Workers that changed variant (each loads the new one as
            ``SimConfig.swap`` says; free under ``free``).
        duration_s: Simulated seconds (trace plus drain).
        wall_s: Wall time of the run.
        series: Per-second arrays, all of one length: ``t`` (second start),
            ``arrivals`` (frames), ``demand_estimate``, ``capacity`` (the running
            plan's ``max_demand``), ``frames_done``, ``frame_violations``,
            ``sub_done``, ``sub_violations``, ``accuracy`` (leaf, NaN where none),
            ``effective_accuracy`` (that second's accuracy times the share of the
            frames finished in it that were on time, a violated frame counting 0;
            NaN where no frame finished),
            ``active_workers``, ``queue`` (requests waiting, all tasks),
            ``reconfigurations``, ``solves``; ``queue_<task>`` per task.
        dropped_by_task: Sub-requests dropped, per task that dropped them (they sum
            to ``subrequests.dropped_total``; empty for engines that do not count
            them).
        leaf_served: Sub-requests of leaf tasks that finished service, on time or
            late (the requests the Loki authors' simulator forwards to its sink).
        batches: Per variant, batches served by size (empty for engines that do
            not form batches).
        solve_log: Each solve started: (simulated second, the decision's reason),
            the first plan included (empty for engines that do not keep it).

    """

    controller: str
    trace: str
    frames: Tally
    subrequests: Tally
    accuracy: float
    mean_active_workers: float
    solves: int
    solver_time_s: float
    solver_wall_s: float
    reconfigurations: int
    duration_s: float
    wall_s: float
    series: dict[str, np.ndarray] = field(default_factory=dict)
    dropped_by_task: dict[str, int] = field(default_factory=dict)
    leaf_served: int = 0
    batches: dict[str, dict[int, int]] = field(default_factory=dict)
    solve_log: tuple[tuple[float, str], ...] = ()

    @property
    def effective_accuracy(self) -> float:
        """Effective accuracy (0-100): frame accuracy with violated frames counting 0."""
        return self.frames.effective_accuracy

    @property
    def frame_violation_ratio(self) -> float:
        """Frame-level SLO violation ratio."""
        return self.frames.slo_violation_ratio

    @property
    def sub_violation_ratio(self) -> float:
        """Sub-request-level SLO violation ratio."""
        return self.subrequests.slo_violation_ratio

    def totals(self) -> dict[str, Any]:
        """JSON-ready totals (no series)."""
        return {
            "controller": self.controller,
            "trace": self.trace,
            "frames": self.frames.to_dict(),
            "subrequests": self.subrequests.to_dict(),
            "frame_violation_ratio": self.frame_violation_ratio,
            "sub_violation_ratio": self.sub_violation_ratio,
            "accuracy": self.accuracy,
            "effective_accuracy": self.effective_accuracy,
            "mean_active_workers": self.mean_active_workers,
            "solves": self.solves,
            "solver_time_s": self.solver_time_s,
            "reconfigurations": self.reconfigurations,
            "duration_s": self.duration_s,
        }


def assemble_result(sim: Any, frames: Tally, subs: Tally) -> SimResult:
    """A :class:`SimResult` from a finished run's tallies and per-second arrays.

    ``sim`` is either engine (:class:`~lokirl.sim.engine.Simulation` or
    :class:`~lokirl.sim.fluid.FluidSimulation`): both keep the same ``s_*`` arrays
    and control counters.
    """
    n = int(math.ceil(sim.end))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(sim.s_leaf_n[:n] > 0, sim.s_leaf_acc[:n] / sim.s_leaf_n[:n], np.nan)
        done = sim.s_frames_done[:n].astype(float)
        on_time = done - sim.s_frame_viol[:n]
        # A second whose finished frames were all violated has no accuracy: it counts 0.
        eff = np.where(done > 0, np.nan_to_num(acc) * on_time / done, np.nan)
    series: dict[str, np.ndarray] = {
        "t": np.arange(n, dtype=float),
        "arrivals": sim.s_arrivals[:n].copy(),
        "demand_estimate": sim.s_demand[:n].copy(),
        "capacity": sim.s_capacity[:n].copy(),
        "frames_done": sim.s_frames_done[:n].copy(),
        "frame_violations": sim.s_frame_viol[:n].copy(),
        "sub_done": sim.s_sub_done[:n].copy(),
        "sub_violations": sim.s_sub_viol[:n].copy(),
        "accuracy": acc,
        "effective_accuracy": eff,
        "active_workers": sim.s_active[:n].copy(),
        "queue": sim.s_queue[:n].copy(),
        "reconfigurations": sim.s_reconf[:n].copy(),
        "solves": sim.s_solves[:n].copy(),
    }
    for t, arr in sim.s_queue_task.items():
        series[f"queue_{t}"] = arr[:n].copy()
    tn = max(1, int(math.ceil(sim.trace_end)))
    return SimResult(
        controller=sim.name,
        trace=getattr(sim.trace, "name", "trace"),
        frames=frames,
        subrequests=subs,
        accuracy=sim.leaf_acc_sum / sim.leaf_on_time if sim.leaf_on_time else 0.0,
        mean_active_workers=float(sim.s_active[:tn].mean()),
        solves=sim.solves,
        solver_time_s=sim.solver_time,
        solver_wall_s=sim.solver_wall,
        reconfigurations=sim.reconfigurations,
        duration_s=float(sim.end),
        wall_s=time.perf_counter() - sim.wall_start,
        series=series,
        dropped_by_task=dict(getattr(sim, "r_dropped_task", {})),
        leaf_served=int(round(sim.leaf_on_time + getattr(sim, "leaf_late", 0))),
        batches={
            v: dict(sorted(h.items())) for v, h in sorted(getattr(sim, "batch_tally", {}).items())
        },
        solve_log=tuple(getattr(sim, "solve_log", ())),
    )
