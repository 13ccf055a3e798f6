"""Loki's MILP allocator: hardware scaling, then accuracy scaling, then best partial plan.

``plan = solve(pipeline, cluster, demand, options, current)`` is a pure function.

Formulation (lokirl's reading of Loki, HPDC 2024; the model itself is written in
:mod:`lokirl.core.allocation_model`). A *config* is a variant on an accelerator type
at a batch size; its replicas ``x_c`` are integers and each serves
``thr_c = b / L_c(b)`` requests per second. Linearising the replica x batch-size
choice this way (a variant may run at two batch sizes on different workers) removes
Loki's binary batch variables and their big-M constraints. A *chain* is a sequence
of configs from a root task down the tree; ``f_q`` is the share of root demand
(frames) routed along chain ``q``. Only chains whose root-to-leaf batch latency fits
the budget (Loki: the sum of batch latencies on a path must fit in SLO/2, one batch
of waiting plus one of service per stage) are generated, so the latency constraint
holds by construction and needs no path binaries. Constraints:

* each root's chains carry the served share ``s`` of frames: ``sum f = s``;
* flow is conserved into every child task: ``f_q = sum_{c in child} f_{q+c}``;
* capacity: ``sum_{q ending at c} f_q * D * m(q) <= thr_c * x_c``, where ``m(q)`` is
  the product of the upstream variants' branching factors along ``q``;
* workers: ``sum_{c on accelerator a} x_c <= N_a``; at least one replica per task.

Phases: (1) *hardware scaling* — only each task's most accurate variant, ``s = 1``,
minimise workers; (2) *accuracy scaling* — all variants, ``s = 1``, maximise the
frame-weighted path accuracy (mean over leaf branches); (3) *partial* — maximise
``s`` (then accuracy). A churn term penalises workers whose variant changes from
the running plan; the running plan seeds the solver (warm start).

Solve path (the default, ``formulation="tight"``): the model carries integer
aggregate columns (replicas per variant and per task) that branch and bound
branches on; it is built as arrays and solved by HiGHS in process: LP relaxation,
the running plan with its flows re-optimised as the incumbent (proven optimal when
within the gap of the LP bound), then lokirl's best-first search over HiGHS LPs,
branching on replicas per task, then per variant, then per config, with HiGHS's own
branch and bound behind it (:mod:`lokirl.core.milp`, where what it runs and why is
measured); CBC solves the
same model through PuLP. ``formulation="reference"`` solves the plain PuLP
formulation (:mod:`lokirl.core.allocator_reference`), kept for tests. Every solve
is bounded by wall time (live serving) or, with ``deterministic=True``, by work
(a node limit, one thread, no clock anywhere): the same inputs then give the same
plan on every run. A solve reports ``optimal`` only when the gap was proven.

Batch widening (``widen_batches``, on by default): the objective says nothing about
batch sizes beyond capacity, so plans of equal objective differ in them from solver
to solver (HiGHS put one worker of a variant at batch 1 beside five at 16 where CBC
chose 8). After the solve each group moves to its variant's largest-throughput batch
size that keeps every path through it latency-feasible (:func:`widen_batches`): the
same workers, variants, path shares and objective, no less capacity. A group capped
at a small batch cannot absorb the burst of sub-requests one parent batch sends it;
on ``traffic_analysis`` at 20 workers (``loki``, diurnal, three seeds, simulated)
widening took frame violations from 0.116 to 0.051 with the same workers and solves,
and made the HiGHS and CBC runs identical.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from lokirl.core.allocation_model import Structure as _Structure
from lokirl.core.allocation_model import (
    build_model,
    decode,
    lp_max_share,
    start_from_plan,
    structure,
)
from lokirl.core.milp import MilpLimits, solve_milp
from lokirl.core.pipeline import DEFAULT_BATCH_SIZES, Cluster, Pipeline, Variant
from lokirl.core.plan import PathShare, Phase, Plan, Status, WorkerGroup

SolverName = Literal["cbc", "highs"]

_EPS = 1e-9


@dataclass(frozen=True)
class AllocatorOptions:
    """Options of :func:`solve`.

    Attributes:
        solver: ``"highs"`` (default: in process, the faster on
            ``benchmarks/bench_allocator.py``) or ``"cbc"`` (through PuLP).
        time_limit_s: Wall-time limit for all phases together (ignored when
            ``deterministic``).
        latency_budget: Fraction of the SLO the sum of batch latencies along a path
            must fit in (Loki: 0.5).
        accuracy_model: ``"multiplicative"`` or ``"e2e"`` (measured table where present).
        churn_weight: Cost of a worker that changes variant versus the running plan:
            in phase 1 in units of active workers, in phases 2-3 in accuracy points.
            0 disables the term (Loki).
        worker_weight: Tie-breaker in phases 2-3: accuracy points per active worker
            (0: spare workers stay in the plan as headroom).
        warm_start: Seed the solver with the running plan when one is given.
        warm_neighbourhood: On a warm start, consider only the variants the running
            plan uses and this many accuracy ranks on either side of them (plus each
            task's best variant); 0 (the default) keeps every variant. Such a solve
            is optimal only within that neighbourhood and reports ``feasible``.
            Used only when the demand moved by at most ``warm_max_change``
            (relative). With the best-first search a whole-model warm solve is
            proven optimal in about the time the neighbourhood saved (median 17.8
            vs 11.3 ms on ``traffic_analysis`` at 20 workers, where the
            neighbourhood lost up to 0.96% of accuracy; ``docs/allocator.md``).
        warm_radius: On such a warm start, optionally keep each config's replicas
            within this many of the running plan's (a box around it: a smaller search
            for HiGHS, but too tight on large clusters, where it slowed CBC; ``None``,
            the default, adds no box).
        warm_max_change: See ``warm_neighbourhood``.
        min_replicas_per_task: Keep at least this many workers on every task.
        gap_rel: Relative MIP gap at which the solver stops (1e-3 of an objective
            near 100 is 0.1 accuracy points).
        threads: Solver threads (1 keeps runs repeatable).
        batch_sizes: Batch sizes a plan may configure (profiles may list more; the
            simulator and the runtime use the full profile for partial batches).
            ``None`` allows every profiled size.
        deterministic: Bound each solve by work (``max_nodes`` of branch and bound,
            one thread) instead of wall time, so that the same inputs give the same
            plan on every run and machine load; evaluations and tests use it. Wall
            time stays for live serving.
        max_nodes: Branch-and-bound node limit per phase (all modes).
        search_nodes: Nodes of lokirl's best-first search (HiGHS LPs, no cuts)
            before HiGHS's own branch and bound takes over from its incumbent; 0
            starts with HiGHS's (see :mod:`lokirl.core.milp`).
        warm_max_nodes: Node limit of a warm solve inside the neighbourhood (``None``:
            ``max_nodes``; 0: the LP relaxation and a dive from it, no branching).
        formulation: ``"tight"`` (default: the aggregate-column model solved by
            :mod:`lokirl.core.milp`) or ``"reference"`` (the plain PuLP model of
            :mod:`lokirl.core.allocator_reference`, slower; for tests).
        widen_batches: After the solve, move each group to the largest batch size
            of its variant that every path through it still fits in the latency
            budget (:func:`widen_batches`): the same workers, variants, routes and
            objective, more capacity. Plans of equal objective differ in batch sizes
            from solver to solver, and a group capped at batch 1 drops the bursts
            a parent's batch sends it; ``False`` keeps the solver's own choice.

    """

    solver: SolverName = "highs"
    time_limit_s: float = 10.0
    latency_budget: float = 0.5
    accuracy_model: Literal["multiplicative", "e2e"] = "multiplicative"
    churn_weight: float = 0.0
    worker_weight: float = 0.0
    warm_start: bool = True
    warm_neighbourhood: int = 0
    warm_radius: int | None = None
    warm_max_change: float = 0.25
    min_replicas_per_task: int = 1
    gap_rel: float = 1e-3
    threads: int = 1
    batch_sizes: tuple[int, ...] | None = DEFAULT_BATCH_SIZES
    deterministic: bool = False
    max_nodes: int = 20_000
    search_nodes: int = 400
    warm_max_nodes: int | None = None
    formulation: Literal["tight", "reference"] = "tight"
    widen_batches: bool = True

    def __post_init__(self) -> None:
        if self.solver not in ("cbc", "highs"):
            raise ValueError(f"unknown solver {self.solver!r}: use 'cbc' or 'highs'")
        if self.formulation not in ("tight", "reference"):
            raise ValueError(
                f"unknown formulation {self.formulation!r}: use 'tight' or 'reference'"
            )
        if self.max_nodes < 1:
            raise ValueError("max_nodes must be at least 1")
        if self.search_nodes < 0:
            raise ValueError("search_nodes must be >= 0")
        if self.warm_max_nodes is not None and self.warm_max_nodes < 0:
            raise ValueError("warm_max_nodes must be >= 0")
        if not 0 < self.latency_budget <= 1:
            raise ValueError("latency_budget must be in (0, 1]")
        if self.time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive")


_banner_done = False


def _silence_highs_banner() -> None:
    """HiGHS prints a banner on stdout the first time a model is built; swallow it once."""
    global _banner_done
    if _banner_done:
        return
    _banner_done = True
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class _Outcome:
    status: Status | None  # None: no solution
    x: dict[int, int]
    f: dict[int, float]
    s: float
    objective: float


def _build_and_solve(
    st: _Structure,
    cluster: Cluster,
    demand: float,
    options: AllocatorOptions,
    phase: Phase,
    time_limit: float,
    current: Plan | None,
    box: dict[tuple[str, str, int], int] | None = None,
    restricted: bool = False,
) -> _Outcome:
    """Build the MILP for ``phase`` over structure ``st`` and solve it.

    ``restricted``: a warm solve inside the running plan's neighbourhood (node
    limit ``options.warm_max_nodes``).
    """
    if options.formulation == "reference":
        from lokirl.core.allocator_reference import build_and_solve_reference

        limit = 3600.0 if options.deterministic else time_limit
        return build_and_solve_reference(st, cluster, demand, options, phase, limit, current, box)
    model, cols = build_model(st, cluster, demand, options, phase, current, box)
    start = None
    if options.warm_start and current is not None and current.groups:
        start = start_from_plan(st, model, cols, current)
    limits = MilpLimits(
        gap_rel=options.gap_rel,
        time_limit_s=None if options.deterministic else max(time_limit, 0.05),
        max_nodes=(
            options.warm_max_nodes
            if restricted and options.warm_max_nodes is not None
            else options.max_nodes
        ),
        threads=1 if options.deterministic else options.threads,
        search_nodes=options.search_nodes,
    )
    res = solve_milp(model, options.solver, limits, start)
    if res.status is None:
        return _Outcome(None, {}, {}, 0.0, 0.0)
    xs, fs, sv = decode(cols, res.values)
    return _Outcome(res.status, xs, fs, sv, res.objective)


def widen_batches(st: _Structure, x: dict[int, int], f: dict[int, float]) -> tuple[dict, dict]:
    """The same plan with each group at the largest batch size its paths allow.

    Every group moves to the config of its variant and accelerator with the highest
    throughput such that each chain carrying flow through it, with the config
    replaced, is a latency-feasible chain of ``st``; its flows move along. Workers,
    variants, path shares (hence accuracy and the objective) are unchanged and no
    group loses capacity, so the plan stays feasible.

    Args:
        st: The structure the solution belongs to.
        x: Replicas per config index.
        f: Flow per chain index.

    Returns:
        The new ``(x, f)``.

    """
    configs, chains = st.configs, st.chains
    index = {ch.configs: q for q, ch in enumerate(chains)}
    x, f = dict(x), dict(f)
    for i in sorted(x):
        if x.get(i, 0) <= 0:
            continue
        c = configs[i]
        better = sorted(
            (
                j
                for j in st.by_task.get(c.task, ())
                if configs[j].variant.name == c.variant.name
                and configs[j].accelerator == c.accelerator
                and configs[j].throughput > c.throughput
            ),
            key=lambda j: (-configs[j].throughput, j),
        )
        using = [q for q, share in f.items() if share > 0 and i in chains[q].configs]
        for j in better:
            moved = {}
            for q in using:
                r = index.get(tuple(j if k == i else k for k in chains[q].configs))
                if r is None:
                    break
                moved[q] = r
            else:
                for q, r in moved.items():
                    f[r] = f.get(r, 0.0) + f.pop(q)
                x[j] = x.get(j, 0) + x.pop(i)
                break
    return x, f


def _plan_from(
    st: _Structure,
    out: _Outcome,
    pipeline: Pipeline,
    cluster: Cluster,
    demand: float,
    phase: Phase,
    solver: str,
    elapsed: float,
    message: str,
    widen: bool = True,
) -> Plan:
    configs, chains = st.configs, st.chains
    if widen and out.x:
        xs, fs = widen_batches(st, out.x, out.f)
        out = _Outcome(out.status, xs, fs, out.s, out.objective)
    unit_load: dict[int, float] = defaultdict(float)
    for q, share in out.f.items():
        if share > _EPS:
            unit_load[chains[q].configs[-1]] += share * chains[q].mult
    groups = []
    for i, n in out.x.items():
        if n <= 0:
            continue
        c = configs[i]
        groups.append(
            WorkerGroup(
                task=c.task,
                variant=c.variant.name,
                accelerator=c.accelerator,
                batch_size=c.batch_size,
                replicas=n,
                latency_ms=c.latency_ms,
                throughput=c.throughput,
                accuracy=c.variant.accuracy,
                load=unit_load.get(i, 0.0) * demand,
            )
        )
    order = {t.name: k for k, t in enumerate(pipeline.tasks)}
    groups.sort(key=lambda g: (order[g.task], -g.accuracy, g.variant, g.accelerator, g.batch_size))
    paths = []
    acc_sum = 0.0
    for q, share in out.f.items():
        ch = chains[q]
        if ch.leaf and share > 1e-7:
            paths.append(
                PathShare(
                    groups=tuple(configs[i].key for i in ch.configs),
                    share=share,
                    accuracy=100.0 * ch.accuracy,
                    latency_ms=ch.latency_ms,
                )
            )
            acc_sum += st.leaf_weight * share * 100.0 * ch.accuracy
    paths.sort(key=lambda p: -p.share)
    served = out.s
    max_demand = math.inf
    for i, per_unit in unit_load.items():
        if per_unit > _EPS:
            max_demand = min(max_demand, out.x.get(i, 0) * configs[i].throughput / per_unit)
    if max_demand == math.inf:
        max_demand = 0.0
    return Plan(
        pipeline=pipeline.name,
        demand=demand,
        groups=tuple(groups),
        paths=tuple(paths),
        expected_accuracy=acc_sum / served if served > _EPS else 0.0,
        served_share=served,
        max_demand=max_demand * served if served < 1 - 1e-6 else max_demand,
        phase=phase,
        status=out.status or "failed",
        solver=solver,
        solve_time_s=elapsed,
        objective=out.objective,
        message=message,
        workers=cluster.workers,
    )


def solve(
    pipeline: Pipeline,
    cluster: Cluster,
    demand: float,
    options: AllocatorOptions | None = None,
    current: Plan | None = None,
) -> Plan:
    """Allocate workers to variants for a root demand.

    Args:
        pipeline: The pipeline to serve.
        cluster: Workers per accelerator type.
        demand: Root demand in frames per second (>= 0).
        options: Solver and formulation options.
        current: The running plan: used for the churn term and the warm start, and
            returned (marked ``failed``) if the solver finds no solution in time.

    Returns:
        The plan. Never raises for hard demands: an impossible demand gives a
        ``partial`` plan that serves the largest share it can.

    Raises:
        ValueError: ``demand`` is negative or not finite, or the cluster has no
            workers of any accelerator type the pipeline is profiled on.

    """
    options = options or AllocatorOptions()
    if not math.isfinite(demand) or demand < 0:
        raise ValueError(f"demand must be a finite number >= 0, got {demand!r}")
    usable = [a for a in pipeline.accelerators if cluster.workers.get(a, 0) > 0]
    if not usable:
        raise ValueError(
            f"the cluster has no workers of the accelerator types {pipeline.accelerators} "
            f"that pipeline {pipeline.name!r} is profiled on"
        )
    solver_name = "CBC" if options.solver == "cbc" else "HiGHS"
    _silence_highs_banner()
    start = time.perf_counter()

    def remaining() -> float:
        if options.deterministic:
            return math.inf
        return options.time_limit_s - (time.perf_counter() - start)

    warm = (
        options.warm_start
        and current is not None
        and current.groups
        and current.status != "failed"
        and abs(demand - current.demand) <= options.warm_max_change * max(current.demand, 1.0)
    )
    # Phase 1: hardware scaling on the most accurate variants. A warm solve skips it
    # when the running plan already needed cheaper variants at a lower demand.
    st1 = structure(pipeline, cluster, options, best_only=True)
    skip1 = warm and current.phase in ("accuracy", "partial") and demand >= current.demand
    if not skip1 and st1.feasible() and lp_max_share(st1, cluster, demand) >= 1 - 1e-6:
        out = _build_and_solve(st1, cluster, demand, options, "hardware", remaining(), current)
        if out.status is not None:
            return _plan_from(
                st1,
                out,
                pipeline,
                cluster,
                demand,
                "hardware",
                solver_name,
                time.perf_counter() - start,
                "demand fits on the most accurate variants",
                widen=options.widen_batches,
            )
    allowed = _neighbourhood(pipeline, current, options.warm_neighbourhood) if warm else None
    st = structure(pipeline, cluster, options, best_only=False, allowed=allowed)
    if allowed is not None and not st.feasible():
        allowed = None
        st = structure(pipeline, cluster, options, best_only=False)
    restricted = allowed is not None
    # Optional replica box around the running plan (see ``warm_radius``).
    box = (
        {g.key: g.replicas for g in current.groups}
        if restricted and options.warm_radius is not None
        else None
    )
    if not st.feasible():
        return _failed(
            pipeline,
            cluster,
            demand,
            current,
            solver_name,
            start,
            "no combination of variants and batch sizes fits the latency budget "
            f"({options.latency_budget:g} x SLO {pipeline.slo_ms:g} ms)",
        )
    # Phase 2 when its LP relaxation can carry the demand, else straight to phase 3.
    fits = (
        restricted and current.phase != "partial" and demand <= current.max_demand * 1.1
    ) or lp_max_share(st, cluster, demand) >= 1 - 1e-6
    if fits and remaining() > 0:
        out = _build_and_solve(
            st, cluster, demand, options, "accuracy", remaining(), current, box, restricted
        )
        if out.status is None and restricted and remaining() > 0:
            # Nothing inside the warm neighbourhood: solve on every variant.
            restricted = False
            st = structure(pipeline, cluster, options, best_only=False)
            if lp_max_share(st, cluster, demand) >= 1 - 1e-6:
                out = _build_and_solve(
                    st, cluster, demand, options, "accuracy", remaining(), current
                )
        if out.status is not None:
            if restricted:
                out.status = "feasible"
            return _plan_from(
                st,
                out,
                pipeline,
                cluster,
                demand,
                "accuracy",
                solver_name,
                time.perf_counter() - start,
                "demand exceeds the most accurate variants' capacity; cheaper variants mixed in",
                widen=options.widen_batches,
            )
    if remaining() > 0:
        out = _build_and_solve(
            st,
            cluster,
            demand,
            options,
            "partial",
            remaining(),
            current,
            box if restricted else None,
            restricted,
        )
        if (out.status is None or out.s < 1 - 1e-6) and restricted:
            # The neighbourhood could not carry the demand: retry on every variant.
            st = structure(pipeline, cluster, options, best_only=False)
            out = _build_and_solve(st, cluster, demand, options, "partial", remaining(), current)
            restricted = False
        if out.status is not None:
            if restricted:
                out.status = "feasible"
            if out.s >= 1 - 1e-6:
                phase: Phase = "accuracy"
                msg = "demand carried with cheaper variants"
            else:
                phase = "partial"
                msg = f"the cluster carries at most {max(out.s, 0.0):.1%} of the demand; the rest is dropped"
                have = sum(cluster.workers.get(a, 0) for a in usable)
                need = len(pipeline.tasks) * max(1, options.min_replicas_per_task)
                if have < need:
                    msg += (
                        f" ({have} workers for {len(pipeline.tasks)} tasks that need "
                        f"{need}: one per task at least)"
                    )
            return _plan_from(
                st,
                out,
                pipeline,
                cluster,
                demand,
                phase,
                solver_name,
                time.perf_counter() - start,
                msg,
                widen=options.widen_batches,
            )
    return _failed(
        pipeline,
        cluster,
        demand,
        current,
        solver_name,
        start,
        f"no solution within the {options.time_limit_s:g} s time limit",
    )


def _neighbourhood(pipeline: Pipeline, current: Plan, ranks: int) -> frozenset[str] | None:
    """Variants the running plan uses, ``ranks`` accuracy ranks around them, and each best."""
    if ranks <= 0:
        return None
    used = set(current.replicas())
    allowed: set[str] = set()
    for task in pipeline.tasks:
        names = [v.name for v in task.variants]
        allowed.add(names[0])
        for k, name in enumerate(names):
            if name in used:
                allowed.update(names[max(0, k - ranks) : k + ranks + 1])
    return frozenset(allowed)


def _failed(
    pipeline: Pipeline,
    cluster: Cluster,
    demand: float,
    current: Plan | None,
    solver: str,
    start: float,
    message: str,
) -> Plan:
    elapsed = time.perf_counter() - start
    if current is not None:
        return Plan(
            **{
                **current.__dict__,
                "status": "failed",
                "solve_time_s": elapsed,
                "message": f"{message}; the running plan stays in force",
            }
        )
    return greedy_plan(pipeline, cluster, demand, solver_time=elapsed, message=message)


def greedy_plan(
    pipeline: Pipeline,
    cluster: Cluster,
    demand: float,
    solver_time: float = 0.0,
    message: str = "",
    latency_budget: float = 0.5,
) -> Plan:
    """A heuristic plan used when the solver returns nothing and no plan is running.

    Every task gets its highest-throughput variant that fits the latency budget
    on the cluster's largest accelerator pool, and workers are split in
    proportion to each task's load. Where that pool has fewer workers than the
    pipeline has tasks (a mixed cluster), each task gets one worker, pool by pool,
    so the plan never books more workers of a type than the cluster has.
    """
    pools = sorted(
        (a for a in pipeline.accelerators if cluster.workers.get(a, 0) > 0),
        key=lambda a: -cluster.workers[a],
    )
    accel = pools[0]  # the largest pool (the first of equals, in the pipeline's order)
    budget = (
        latency_budget * pipeline.slo_ms / max(1, len(max(pipeline.root_to_leaf_tasks(), key=len)))
    )
    n = cluster.workers[accel]
    # Each task on the largest pool; where that pool has fewer workers than the pipeline
    # has tasks, one worker each, taken pool by pool (a plan booking more workers than a
    # type has serves nothing).
    spread = n < len(pipeline.tasks)
    if not spread:
        where = {t.name: accel for t in pipeline.tasks}
    else:
        slots = [a for a in pools for _ in range(cluster.workers[a])]
        where = {t.name: slots[i % len(slots)] for i, t in enumerate(pipeline.tasks)}
    choice: dict[str, tuple[Variant, int]] = {}
    for task in pipeline.tasks:
        best = None
        on = where[task.name]
        for v in task.variants:
            for b in v.batch_sizes(on):
                if v.latency(on, b) <= budget or b == 1:
                    thr = v.throughput(on, b)
                    if best is None or thr > best[2]:
                        best = (v, b, thr)
        assert best is not None
        choice[task.name] = (best[0], best[1])
    mult: dict[str, float] = {}
    for task in pipeline.tasks:
        parent = pipeline.parents[task.name]
        if parent is None:
            mult[task.name] = 1.0
        else:
            mult[task.name] = mult[parent] * choice[parent][0].branching.get(task.name, 1.0)
    if not spread:
        need = {
            t: mult[t] * max(demand, 1.0) / choice[t][0].throughput(accel, choice[t][1])
            for t in mult
        }
        total_need = sum(need.values())
        reps = {t: max(1, int(n * need[t] / total_need)) for t in need}
        while sum(reps.values()) > n and max(reps.values()) > 1:
            t = max(reps, key=reps.get)
            reps[t] -= 1
    else:
        reps = {t: 1 for t in mult}
    groups = []
    for task in pipeline.tasks:
        v, b = choice[task.name]
        on = where[task.name]
        groups.append(
            WorkerGroup(
                task=task.name,
                variant=v.name,
                accelerator=on,
                batch_size=b,
                replicas=reps[task.name],
                latency_ms=v.latency(on, b),
                throughput=v.throughput(on, b),
                accuracy=v.accuracy,
                load=mult[task.name] * demand,
            )
        )
    max_demand = min(g.capacity / mult[g.task] for g in groups)
    leaf_acc = []
    for chain in pipeline.root_to_leaf_tasks():
        leaf_acc.append(pipeline.path_accuracy(tuple(choice[t][0].name for t in chain)))
    return Plan(
        pipeline=pipeline.name,
        demand=demand,
        groups=tuple(groups),
        expected_accuracy=sum(leaf_acc) / len(leaf_acc),
        served_share=min(1.0, max_demand / demand) if demand > 0 else 1.0,
        max_demand=max_demand,
        phase="fallback",
        status="failed",
        solver="heuristic",
        solve_time_s=solver_time,
        message=(message + "; " if message else "") + "heuristic plan (fastest variants)",
        workers=cluster.workers,
    )
