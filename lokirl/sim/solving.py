"""Turning a controller decision into a plan: shared by the simulation engines."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import Decision
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.sim.config import SimConfig, solve_delay


@dataclass(frozen=True)
class Solved:
    """A plan solved for a decision.

    Attributes:
        plan: The plan.
        wall_s: Wall time the solve (or cache lookup) really took.
        delay_s: Simulated time before the plan is in force (per
            ``SimConfig.solver_time``).

    """

    plan: Plan
    wall_s: float
    delay_s: float


def running_plan_signature(current: Plan | None, options: AllocatorOptions) -> tuple | None:
    """What of the running plan a solve with ``options`` depends on, as a hashable key.

    A cold solve without a churn term ignores the running plan (``None``). A warm
    start (seeded from the running plan's groups and path shares, gated by its
    phase, status and demand) or a churn term (changed workers versus the running
    plan) depends on it: the signature is then the running plan's content (its
    groups, path shares, demand, capacity, phase and status; not the solve's wall
    time or messages), so that a memo never hands out a plan solved against
    another running plan.

    Args:
        current: The running plan, if any.
        options: The options of the solve.

    """
    if current is None or not (options.warm_start or options.churn_weight > 0):
        return None
    return (
        current.phase,
        current.status,
        current.demand,
        current.max_demand,
        current.served_share,
        current.groups,
        tuple((p.groups, p.share) for p in current.paths),
    )


def solve_decision(
    pipeline: Pipeline,
    cluster: Cluster,
    config: SimConfig,
    decision: Decision,
    current: Plan | None,
    planner: object | None = None,
    plan_cache: dict | None = None,
) -> Solved:
    """Solve the plan a ``resolve`` decision asks for.

    The decision's ``warm_start`` and ``churn_weight`` override the allocator
    options of ``config``; its demand is rounded up to ``config.demand_quantum``.

    Args:
        pipeline: The pipeline served.
        cluster: Workers per accelerator type.
        config: The simulation's configuration.
        decision: A decision with ``resolve`` set.
        current: The running plan (warm start, churn term), if any.
        planner: An object with a ``plan`` method used instead of the allocator.
        plan_cache: Memo of solves keyed by (planner, pipeline name, cluster, demand,
            the decision's reason when a planner builds the plan, options, running plan
            when the solve depends on it: :func:`running_plan_signature`); ``None``: no
            memo.

    """
    opts = config.allocator
    changes: dict[str, Any] = {"warm_start": decision.warm_start}
    if decision.churn_weight is not None:
        changes["churn_weight"] = decision.churn_weight
    opts = replace(opts, **changes)
    demand = max(0.0, float(decision.demand)) if math.isfinite(decision.demand) else 0.0
    q = config.demand_quantum
    if q > 0:
        demand = math.ceil(demand / q - 1e-9) * q
        decision = replace(decision, demand=demand)
    start = time.perf_counter()
    has_planner = planner is not None and callable(getattr(planner, "plan", None))
    key = None
    if plan_cache is not None:
        # a planner may choose by more than the demand (a library index in the
        # decision's reason): two decisions whose demands round alike are not one plan
        key = (
            repr(planner) if has_planner else "solve",
            # a memo its owner shares across runs stays right across pipelines and clusters
            pipeline.name,
            tuple(sorted(cluster.workers.items())),
            demand,
            decision.reason if has_planner else "",
            opts,
            running_plan_signature(current, opts),
        )
    plan = plan_cache.get(key) if key is not None else None
    if plan is None:
        if has_planner:
            plan = planner.plan(pipeline, cluster, decision, opts, current)
        else:
            plan = solve(pipeline, cluster, demand, opts, current)
        if key is not None:
            plan_cache[key] = plan
    wall = time.perf_counter() - start
    return Solved(plan, wall, solve_delay(plan, config.solver_time, wall))
