"""Baseline controllers to compare Loki (and learned controllers) against.

Each implements the :class:`~lokirl.core.controller.Controller` protocol and, where
its plans are not lokirl's plain allocator call, the
:class:`~lokirl.sim.engine.Planner` hook (``plan(pipeline, cluster, decision,
options, current) -> Plan``) that the simulator and the live runtime call instead
of the allocator. Importing this module registers them in
:data:`lokirl.core.controllers.CONTROLLERS`: ``loki`` (the authors' controller,
:class:`LokiController`) and ``loki-b<beta>``, ``inferline``, ``proteus``,
``static``. The core registers lokirl's own periodic MILP (``loki-Ns``,
``loki-Ns-churn``, and here ``loki-h<H>``), which is not the authors' controller.

The plans are built with the same allocator on restricted pipelines, so the
baselines differ from Loki only in the policy they stand for, not in solver
quality.
"""

from __future__ import annotations

import math
import re
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

#: Loki's floor on the planned root demand (frames/s): ``pipeline_ilp.py`` raises
#: an EWMA estimate below 50 to 50 "so that the cluster can be set up and warmed up".
LOKI_MIN_DEMAND = 50.0


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


def scale_branching(pipeline: Pipeline, beta: float) -> Pipeline:
    """Return the pipeline with every branching factor multiplied by ``beta``.

    Every parent-to-child edge of every variant is scaled, an edge the profile
    leaves out (one sub-request per request) included, as Loki's ILP multiplies
    each multiplicative factor by its over-provisioning factor. Root tasks, and so
    the root demand, are untouched.

    Args:
        pipeline: The pipeline.
        beta: The factor (> 0; 1 returns ``pipeline`` itself).

    """
    if not beta > 0:
        raise ValueError("beta must be positive")
    if beta == 1.0:
        return pipeline
    tasks = []
    for task in pipeline.tasks:
        variants = tuple(
            replace(v, branching={c: v.branching.get(c, 1.0) * beta for c in task.children})
            for v in task.variants
        )
        tasks.append(replace(task, variants=variants))
    return replace(pipeline, tasks=tuple(tasks))


@dataclass(frozen=True)
class LokiController:
    """The Loki authors' controller (``loki``), as their simulator runs it.

    Every ``period_s`` seconds it re-solves the MILP, cold and without a churn
    term, for the EWMA of the root task's per-second arrivals (pandas
    ``ewm(com=1.6)`` over the last 20 seconds), raised to ``min_demand`` when below
    it. Over-provisioning ``beta`` multiplies the branching factors the MILP uses
    (the sub-requests each variant sends to each child), not the root demand: the
    root stage is provisioned for the estimate, every later stage for ``beta``
    times its share of it (per stage of depth ``k``, ``beta**k``).

    Source: ``src/simulator/algorithms/pipeline_ilp.py`` (``PipelineIlp.run``:
    ``multFactor[...] = ... * self.beta``, ``if firstTaskEWMADemand < 50``),
    ``src/simulator/core/simulator.py`` (``add_moving_demand``: ``EWMA_WINDOW =
    20``, ``ewm(com=ewma_decay)``), ``src/simulator/run.py`` (``pipeline_aware``:
    ``eventLoop`` every ``solve_interval`` steps of ``allocation_window`` = 1000 ms)
    and ``configs/traffic_analysis/pipeline_offline.json`` (``beta`` 1,
    ``ewma_decay`` 1.6, ``solve_interval`` 1) of UMass-LIDS/Loki. What lokirl does
    differently is listed in ``docs/reproduction.md`` ("Loki baseline: fidelity and
    deviations").

    Attributes:
        beta: Over-provisioning factor applied to the branching factors (Loki: 1;
            1.2 in its ``beta1.2`` configuration).
        min_demand: Floor on the planned root demand in frames/s (Loki: 50).
        period_s: Seconds between solves (Loki: 1).
        com: EWMA centre of mass (Loki's configs: 1.6).
        window_s: Seconds of history the EWMA uses (Loki: 20).
        name: Display name.

    """

    beta: float = 1.0
    min_demand: float = LOKI_MIN_DEMAND
    period_s: float = 1.0
    com: float = 1.6
    window_s: int = 20
    name: str = "loki"

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError("beta must be positive")
        if not self.min_demand >= 0:
            raise ValueError("min_demand must be >= 0")
        if not self.period_s > 0:
            raise ValueError("period_s must be positive")

    def decide(self, context: ControlContext) -> Decision:
        """Re-solve, cold, when the period has elapsed (or there is no plan yet)."""
        due = context.plan is None or context.time_since_solve_s >= self.period_s - 1e-9
        if not due or context.solving:
            return KEEP
        estimate = ewma_demand(context.demand_history, self.com, self.window_s)
        return Decision(
            resolve=True,
            demand=max(estimate, self.min_demand),
            warm_start=False,
            churn_weight=0.0,
            reason=f"period {self.period_s:g} s elapsed",
        )

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """Solve cold, without churn, on the pipeline with its branching scaled by ``beta``.

        The running plan is passed only so that a solve that finds nothing in its
        time limit keeps it in force (Loki's ILP has no time limit and raises
        instead).
        """
        opts = replace(options, warm_start=False, churn_weight=0.0)
        scaled = scale_branching(pipeline, self.beta)
        return solve(scaled, cluster, max(0.0, decision.demand), opts, current)


@dataclass
class _Periodic:
    """Shared decide(): re-solve every ``period_s`` on an EWMA estimate x headroom."""

    period_s: float = 1.0
    headroom: float = 1.0
    com: float = 1.6
    window_s: int = 20

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError(f"period_s must be positive, got {self.period_s:g}")
        if not self.headroom > 0:
            raise ValueError(f"headroom must be positive, got {self.headroom:g}")

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


def _loki_beta(m: re.Match[str]) -> LokiController:
    return LokiController(beta=float(m.group(1)), name=m.group(0))


def _register() -> None:
    # The authors' controller replaces the core's stand-in of the same name.
    CONTROLLERS.register(
        "loki",
        lambda **kw: LokiController(**kw),
        "Loki as its authors run it: cold MILP every 1 s for max(EWMA, 50) frames/s, "
        "over-provisioning beta on the branching factors (beta 1)",
    )
    pattern = r"loki-b(\d+(?:\.\d+)?)"
    if all(p.pattern != pattern for p, _, _ in CONTROLLERS._patterns):
        CONTROLLERS.register_pattern(
            pattern,
            _loki_beta,
            "Loki (the authors' controller) with over-provisioning beta on the branching "
            "factors, e.g. loki-b1.2",
        )
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
