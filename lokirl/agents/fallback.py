"""The fallback of a residual controller: bound with it, and building the plans it decides.

A residual controller (:class:`~lokirl.agents.adapter.PPOController`,
:class:`~lokirl.agents.gain_policy.GainController`) follows a fallback controller or
deviates from it. A model-based fallback (``fluid(...)``) builds a plan library when
it is bound and names the plan it wants in its decision: the residual controller binds
it (:func:`bind_fallback`) and, as the hosts' planner hook, hands the fallback's
decisions to the fallback's own planner (:class:`FallbackPlanner`), as the training
environment does. Its own re-solves are solved by the allocator, as without a hook.
"""

from __future__ import annotations

import math
from typing import Any

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.binding import bind_controller
from lokirl.core.controller import Decision
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.envs.features import POLICY_REASON


class FallbackPlanner:
    """Planner hook of a residual controller whose fallback builds its own plans.

    Picklable (the live runtime sends the planner to its solving process), so it holds
    the fallback alone, not the policy.

    Args:
        fallback: A controller with a ``plan`` method.

    """

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """The fallback's plan for its own decisions; the allocator's for the policy's."""
        if not decision.reason.startswith(POLICY_REASON):
            return self.fallback.plan(pipeline, cluster, decision, options, current)
        demand = max(0.0, float(decision.demand)) if math.isfinite(decision.demand) else 0.0
        return solve(pipeline, cluster, demand, options, current)

    def __repr__(self) -> str:  # the hosts' plan caches key on the planner's repr
        return f"FallbackPlanner({self.fallback!r})"


def bind_fallback(
    owner: Any, fallback: Any, pipeline: Pipeline, cluster: Cluster, swap: str
) -> None:
    """Bind ``fallback``; give ``owner`` a planner hook when the fallback builds plans.

    Raises:
        ConfigError: the fallback does not fit the pipeline or cluster.

    """
    if fallback is None:
        return
    bind_controller(fallback, pipeline, cluster, swap)
    if callable(getattr(fallback, "plan", None)):
        owner.plan = FallbackPlanner(fallback).plan
