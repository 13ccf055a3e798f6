"""The Controller protocol, its frozen snapshot types, and the pure-MILP periodic controller.

Every epoch the host (the simulator or the live runtime) hands a controller a
:class:`ControlContext` snapshot and gets back a :class:`Decision`: keep the running
plan, or re-solve the allocator for a given demand (with headroom, warm or cold).
The host runs the solve; meanwhile the running plan stays in force. Controllers
keep no hidden state that the context does not carry, so the same object drives
the simulator and the live runtime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from lokirl.core.forecasting import Forecast
from lokirl.core.frozen import FrozenMap
from lokirl.core.plan import Plan

#: Width (s) of the bins in which the hosts (both simulators, the live runtime) count
#: root arrivals for :attr:`ControlContext.arrival_bins`.
ARRIVAL_BIN_S = 0.05


def arrival_bin(t_s: float) -> int:
    """Index of the :data:`ARRIVAL_BIN_S` bin holding time ``t_s`` (s since the start)."""
    return int(t_s / ARRIVAL_BIN_S)


def arrival_bin_range(now_s: float, span_s: float) -> range:
    """The whole bins of the ``span_s`` seconds ending at ``now_s``, oldest first.

    What every host hands a controller as :attr:`ControlContext.arrival_bins` (the
    simulators for the epoch just ended, the live runtime for the time since its
    last tick); both ends are rounded to the nearest bin edge.
    """
    hi = int(round(now_s / ARRIVAL_BIN_S))
    lo = max(0, int(round((now_s - span_s) / ARRIVAL_BIN_S)))
    return range(lo, max(lo, hi))


@dataclass(frozen=True)
class ControlContext:
    """What a controller sees at a decision epoch.

    Attributes:
        now_s: Current time in seconds since the run started.
        demand_history: Observed root arrivals per second, oldest first (the last
            entry is the most recent complete second).
        plan: The running plan (``None`` before the first solve).
        time_since_solve_s: Seconds since the last solve was requested (``inf`` if never).
        last_solve_time_s: Wall time the last solve took.
        solving: Whether a solve is still running (its plan not yet in force).
        slo_violation_ratio: Recent frame-level SLO violation ratio.
        accuracy: Recent system accuracy (0-100).
        queue_lengths: Requests waiting per task.
        active_workers: Workers holding a variant and taking traffic.
        forecast: The forecaster's output, when the host runs one.
        arrival_bins: Root arrivals per bin of ``arrival_bin_s`` seconds over the epoch
            just ended, oldest first, the bins aligned on multiples of ``arrival_bin_s``
            from the run's start (empty when the host does not count them): what
            happened within the seconds ``demand_history`` sums.
        arrival_bin_s: Width of those bins in seconds (0 when there are none).

    """

    now_s: float
    demand_history: tuple[float, ...]
    plan: Plan | None = None
    time_since_solve_s: float = math.inf
    last_solve_time_s: float = 0.0
    solving: bool = False
    slo_violation_ratio: float = 0.0
    accuracy: float = 0.0
    queue_lengths: Mapping[str, int] = field(default_factory=dict)
    active_workers: int = 0
    forecast: Forecast | None = None
    arrival_bins: tuple[float, ...] = ()
    arrival_bin_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "demand_history", tuple(float(x) for x in self.demand_history))
        object.__setattr__(self, "arrival_bins", tuple(float(x) for x in self.arrival_bins))
        if self.arrival_bins and not self.arrival_bin_s > 0:
            raise ValueError("arrival_bins needs a positive arrival_bin_s")
        object.__setattr__(self, "queue_lengths", FrozenMap(dict(self.queue_lengths)))


@dataclass(frozen=True)
class Decision:
    """A controller's answer.

    Attributes:
        resolve: Whether to re-solve the allocation now.
        demand: Root demand (frames/s) to plan for, headroom included.
        warm_start: Seed the solver with the running plan.
        churn_weight: Override of the allocator's churn weight (``None``: its default).
        reason: Why, for logs.

    """

    resolve: bool
    demand: float = 0.0
    warm_start: bool = True
    churn_weight: float | None = None
    reason: str = ""


#: The decision that keeps the running plan.
KEEP = Decision(resolve=False, reason="keep")


@runtime_checkable
class Controller(Protocol):
    """Decides, every epoch, whether and how to re-solve the allocation."""

    name: str

    def decide(self, context: ControlContext) -> Decision:
        """Return the decision for this epoch."""
        ...


def ewma_demand(history: Sequence[float], com: float = 1.6, window: int = 20) -> float:
    """Loki's demand estimate: pandas ``ewm(com=com).mean()`` over the last ``window`` seconds.

    Matches pandas' default ``adjust=True`` weighting: the most recent value has
    weight 1, the one before ``(1 - alpha)``, and so on, normalised, with
    ``alpha = 1 / (1 + com)``.

    Args:
        history: Per-second arrivals, oldest first.
        com: Centre of mass (Loki: 1.6).
        window: Seconds of history used (Loki: 20).

    Returns:
        The estimate (0 for an empty history).

    """
    if com < 0:
        raise ValueError("com must be >= 0")
    tail = list(history)[-window:]
    if not tail:
        return 0.0
    decay = 1.0 - 1.0 / (1.0 + com)
    num = den = 0.0
    w = 1.0
    for x in reversed(tail):
        num += w * x
        den += w
        w *= decay
    return num / den


@dataclass(frozen=True)
class PeriodicMILPController:
    """lokirl's periodic MILP: re-solve every ``period_s`` seconds on an EWMA demand estimate.

    Loki's control loop without its shortcuts (``loki-Ns``, ``loki-Ns-churn``,
    ``loki-hH``): the headroom multiplies the root demand, there is no demand
    floor, and warm starts and the churn term can be switched on. The authors'
    own controller (over-provisioning on the branching factors, a 50 frames/s
    floor) is the ``loki`` baseline, :class:`lokirl.sim.baselines.LokiController`.

    Attributes:
        period_s: Seconds between solves (Loki: 1).
        headroom: Multiplier on the root demand estimate (lokirl's over-provisioning;
            Loki's beta scales the branching factors instead).
        com: EWMA centre of mass.
        window_s: Seconds of history the EWMA uses.
        warm_start: Ask for warm-started solves (Loki solves cold each time).
        churn_weight: Allocator churn weight override (``None``: allocator default, 0 in Loki).
        name: Display name.

    """

    period_s: float = 1.0
    headroom: float = 1.0
    com: float = 1.6
    window_s: int = 20
    warm_start: bool = False
    churn_weight: float | None = None
    name: str = "periodic-milp"

    def __post_init__(self) -> None:
        if self.period_s <= 0:
            raise ValueError("period_s must be positive")
        if self.headroom <= 0:
            raise ValueError("headroom must be positive")

    def decide(self, context: ControlContext) -> Decision:
        """Re-solve when the period has elapsed (or there is no plan yet)."""
        due = context.plan is None or context.time_since_solve_s >= self.period_s - 1e-9
        if not due or context.solving:
            return KEEP
        estimate = ewma_demand(context.demand_history, self.com, self.window_s)
        return Decision(
            resolve=True,
            demand=estimate * self.headroom,
            warm_start=self.warm_start,
            churn_weight=self.churn_weight,
            reason=f"period {self.period_s:g} s elapsed",
        )
