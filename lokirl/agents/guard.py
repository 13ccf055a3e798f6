"""A guard on a learned controller: re-solve when the running plan keeps under-delivering.

The shipped policy decides from demand, queues and recent violations, and in training
its plans delivered what the profile says they do. Live, every batch also pays a
per-batch cost that no plan accounts for, and a plan with little nominal slack can fall
short while the policy keeps it (``docs/runtime.md``, seed 4 of the live check). The
guard watches the recent frame-violation ratio: when it exceeds ``violation`` in at least
``hits`` of the last ``window`` decisions, the policy chose to keep its plan and no solve
ran for ``cooldown_s`` seconds, it re-solves warm for the window's highest demand times
``headroom`` (a re-solve of the policy's own kind, planned by the allocator). Otherwise
every decision is the policy's.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lokirl.core.controller import ControlContext, Decision
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.envs.features import POLICY_REASON

#: The reason of the guard's own re-solves (a policy re-solve: the allocator plans it).
GUARD_REASON = f"{POLICY_REASON} guard re-solve"


@dataclass
class GuardedPolicy:
    """A controller that follows ``policy`` and re-solves when its plan under-delivers.

    Attributes:
        policy: The guarded controller's spec (default: the shipped ``ppo``).
        violation: A decision counts as bad when the recent frame-violation ratio
            exceeds this.
        hits: Bad decisions among the last ``window`` that make the guard act.
        window: Decisions the guard looks back over.
        headroom: Multiplier on the window's highest demand the guard plans for.
        cooldown_s: Seconds since the last solve before the guard may act.
        name: Display name (the spec).

    """

    policy: str = "ppo"
    violation: float = 0.05
    hits: int = 2
    window: int = 5
    headroom: float = 1.3
    cooldown_s: float = 10.0
    name: str = "ppo-guard"
    _inner: Any = field(init=False, repr=False, default=None)
    _bad: deque = field(init=False, repr=False, default_factory=deque)
    _last_now: float = field(init=False, repr=False, default=-math.inf)
    #: Re-solves the guard made in this episode.
    fired: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not 0 < self.violation < 1:
            raise ValueError(f"violation must be in (0, 1), got {self.violation:g}")
        if not 1 <= self.hits <= self.window:
            raise ValueError(f"hits must be in 1..window ({self.window}), got {self.hits}")
        if not (math.isfinite(self.headroom) and self.headroom >= 1):
            raise ValueError(f"headroom must be a finite number >= 1, got {self.headroom:g}")
        if not (math.isfinite(self.cooldown_s) and self.cooldown_s >= 0):
            raise ValueError(f"cooldown_s must be >= 0, got {self.cooldown_s:g}")
        from lokirl.core.controllers import make_controller

        self._inner = make_controller(self.policy)
        self._bad = deque(maxlen=self.window)

    @property
    def plan(self) -> Any:
        """The guarded controller's planner hook (``None`` when it has none)."""
        return getattr(self._inner, "plan", None)

    @property
    def spec(self) -> Any:
        """The guarded controller's feature spec (``None`` when it has none)."""
        return getattr(self._inner, "spec", None)

    def bind(self, pipeline: Pipeline, cluster: Cluster, swap: str = "overlap") -> None:
        """Bind the guarded controller (it may refuse) and start a fresh watch."""
        bind = getattr(self._inner, "bind", None)
        if callable(bind):
            bind(pipeline, cluster, swap)
        self._reset()

    def _reset(self) -> None:
        self._bad.clear()
        self._last_now = -math.inf
        self.fired = 0

    def decide(self, context: ControlContext) -> Decision:
        """The policy's decision, or the guard's re-solve when the plan keeps failing."""
        if context.now_s < self._last_now:  # a new episode without a new bind
            self._reset()
        self._last_now = context.now_s
        decision = self._inner.decide(context)
        self._bad.append(context.slo_violation_ratio > self.violation)
        if (
            decision.resolve
            or context.solving
            or context.plan is None
            or context.time_since_solve_s < self.cooldown_s
            or sum(self._bad) < self.hits
        ):
            return decision
        recent = context.demand_history[-self.window :]
        demand = max((d for d in recent if math.isfinite(d)), default=0.0)
        if demand <= 0:
            return decision
        self._bad.clear()
        self.fired += 1
        spec = self.spec
        return Decision(
            resolve=True,
            demand=demand * self.headroom,
            warm_start=True,
            churn_weight=getattr(spec, "warm_churn_weight", None),
            reason=GUARD_REASON,
        )
