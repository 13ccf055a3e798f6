"""Baseline controllers to compare Loki (and learned controllers) against.

Each implements the :class:`~lokirl.core.controller.Controller` protocol and, where
its plans are not Loki's MILP, the :class:`~lokirl.sim.engine.Planner` hook
(``plan(pipeline, cluster, decision, options, current) -> Plan``) that the
simulator calls instead of the allocator. Importing this module registers them
in :data:`lokirl.core.controllers.CONTROLLERS` (``inferline``, ``proteus``,
``static``); ``loki`` is registered by the core.

The plans are built with the same allocator on restricted pipelines, so the
baselines differ from Loki only in the policy they stand for, not in solver
quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import (
    KEEP,
    ControlContext,
    Decision,
    PeriodicMILPController,
    ewma_demand,
)
from lokirl.core.controllers import CONTROLLERS
from lokirl.core.pipeline import Cluster, Pipeline, Task
from lokirl.core.plan import Plan


def best_only(pipeline: Pipeline) -> Pipeline:
    """Return the pipeline with each task reduced to its most accurate variant."""
    tasks = tuple(Task(t.name, (t.best,), t.children) for t in pipeline.tasks)
    return Pipeline(
        name=pipeline.name,
        tasks=tasks,
        slo_ms=pipeline.slo_ms,
        e2e_accuracy=pipeline.e2e_accuracy,
        description=pipeline.description,
    )


@dataclass
class _Periodic:
    """Shared decide(): re-solve every ``period_s`` on an EWMA estimate x headroom."""

    period_s: float = 1.0
    headroom: float = 1.0
    com: float = 1.6
    window_s: int = 20

    def decide(self, context: ControlContext) -> Decision:
        """Re-solve when the period has elapsed (or there is no plan yet)."""
        due = context.plan is None or context.time_since_solve_s >= self.period_s - 1e-9
        if not due or context.solving:
            return KEEP
        est = ewma_demand(context.demand_history, self.com, self.window_s)
        return Decision(resolve=True, demand=est * self.headroom, reason="period elapsed")


@dataclass
class InferLineController(_Periodic):
    """InferLine-like: hardware scaling only.

    Every ``period_s`` it re-plans for the EWMA demand with each task's most
    accurate variant only, scaling replicas (and batch sizes) to the demand. Past
    the capacity of the most accurate variants it cannot trade accuracy for
    throughput: the plan serves the largest share it can and the router drops the
    rest at admission. (InferLine's own planner also tunes batch sizes and
    hardware types per stage; here the allocator's phase 1 and phase 3 on the
    best-variant pipeline play that role.)
    """

    name: str = "inferline"

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """Solve on the best-variant pipeline."""
        return solve(best_only(pipeline), cluster, decision.demand, options, current)


@dataclass
class ProteusController(_Periodic):
    """Proteus-like: accuracy scaling per task, not pipeline-aware.

    Every ``period_s`` it splits the workers among tasks in proportion to the
    load each task would see at the EWMA demand if every upstream task ran its most
    accurate variant (the profile's branching of the best variants, since it does
    not model how an upstream choice changes downstream load), at least one
    worker per task; then, independently per task, it maximises that task's
    accuracy for its own load on its share of workers, with the SLO split evenly
    among the stages of the longest chain (each stage's batch latency must fit
    ``latency_budget x SLO / stages``). The per-task plans are merged; the router
    then routes Most-Accurate-First on the merged plan.
    """

    name: str = "proteus"

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """Per-task accuracy scaling on an even split of the SLO."""
        demand = max(0.0, decision.demand)
        stages = max(len(c) for c in pipeline.root_to_leaf_tasks())
        # Per-task load assuming the most accurate variants upstream.
        load: dict[str, float] = {}
        for task in pipeline.tasks:
            parent = pipeline.parents[task.name]
            if parent is None:
                load[task.name] = demand
            else:
                mult = pipeline.task(parent).best.branching.get(task.name, 1.0)
                load[task.name] = load[parent] * mult
        accel = max(cluster.workers, key=lambda a: cluster.workers[a])
        n = cluster.workers[accel]
        budget_ms = options.latency_budget * pipeline.slo_ms / stages
        need: dict[str, float] = {}
        for task in pipeline.tasks:
            v = task.best
            fits = [b for b in v.batch_sizes(accel) if v.latency(accel, b) <= budget_ms]
            thr = max((v.throughput(accel, b) for b in fits), default=v.throughput(accel, 1))
            need[task.name] = load[task.name] / thr if thr > 0 else math.inf
        share = {t: 1 for t in need}
        for _ in range(max(0, n - len(share))):
            t = max(need, key=lambda k: (need[k] - share[k], need[k]))
            share[t] += 1
        groups = []
        paths_acc = []
        max_demand = math.inf
        total_time = 0.0
        phases = set()
        for task in pipeline.tasks:
            sub = Pipeline(
                name=f"{pipeline.name}:{task.name}",
                tasks=(Task(task.name, task.variants, ()),),
                slo_ms=pipeline.slo_ms / stages,
            )
            opts = replace(options, warm_start=False, churn_weight=0.0)
            p = solve(sub, Cluster({accel: share[task.name]}), load[task.name], opts, None)
            total_time += p.solve_time_s
            phases.add(p.phase)
            groups.extend(p.groups)
            paths_acc.append(p.expected_accuracy)
            if load[task.name] > 0 and demand > 0:
                max_demand = min(max_demand, p.max_demand * demand / load[task.name])
        phase = next((ph for ph in ("partial", "accuracy") if ph in phases), "hardware")
        acc = 1.0
        for a in paths_acc:
            acc *= a / 100.0
        return Plan(
            pipeline=pipeline.name,
            demand=demand,
            groups=tuple(groups),
            expected_accuracy=100.0 * acc,
            max_demand=0.0 if max_demand == math.inf else max_demand,
            phase=phase,  # type: ignore[arg-type]
            status="feasible",
            solver="proteus-per-task",
            solve_time_s=total_time,
            message="per-task accuracy scaling (not pipeline-aware)",
            workers=cluster.workers,
        )


@dataclass
class StaticController:
    """Static max-accuracy provisioning: one plan at the start, never re-solved.

    With ``demand=None`` the plan puts every worker on the most accurate variants
    (peak provisioning: the largest demand the best variants can carry on the
    whole cluster); with a ``demand`` it is the hardware-scaling plan for that
    (peak) demand. Either way it keeps that plan for the whole run.
    """

    demand: float | None = None
    name: str = "static"

    def decide(self, context: ControlContext) -> Decision:
        """Solve once, when there is no plan; keep it afterwards."""
        if context.plan is not None:
            return KEEP
        return Decision(resolve=True, demand=self.demand or 0.0, reason="initial provisioning")

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """Return the best-variant plan for ``demand``, or for the whole cluster."""
        best = best_only(pipeline)
        if self.demand is not None:
            return solve(best, cluster, self.demand, options, None)
        # A demand no cluster carries: phase 3 gives the largest share, all workers used.
        huge = 1e6
        plan = solve(best, cluster, huge, options, None)
        return replace(plan, demand=plan.max_demand, served_share=1.0, phase="hardware")


def _headroom(kind: str):
    def make(m) -> object:
        h = float(m.group(1))
        if kind == "loki":
            return PeriodicMILPController(period_s=1.0, headroom=h, name=m.group(0))
        return InferLineController(headroom=h, name=m.group(0))

    return make


def _register() -> None:
    for kind in ("loki", "inferline"):
        pattern = rf"{kind}-h(\d+(?:\.\d+)?)"
        if all(p.pattern != pattern for p, _, _ in CONTROLLERS._patterns):
            CONTROLLERS.register_pattern(
                pattern,
                _headroom(kind),
                f"{kind} planning for the EWMA estimate x H (over-provisioning), e.g. {kind}-h1.2",
            )
    if "inferline" not in CONTROLLERS.names():
        CONTROLLERS.register(
            "inferline",
            lambda **kw: InferLineController(**kw),
            "InferLine-like: hardware scaling only (most accurate variants), re-planned every 1 s",
        )
    if "proteus" not in CONTROLLERS.names():
        CONTROLLERS.register(
            "proteus",
            lambda **kw: ProteusController(**kw),
            "Proteus-like: per-task accuracy scaling, SLO split evenly, not pipeline-aware",
        )
    if "static" not in CONTROLLERS.names():
        CONTROLLERS.register(
            "static",
            lambda **kw: StaticController(**kw),
            "static max-accuracy peak provisioning: one plan at the start, never re-solved",
        )


_register()
