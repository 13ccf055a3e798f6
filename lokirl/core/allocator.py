"""Loki's MILP allocator: hardware scaling, then accuracy scaling, then best partial plan.

``plan = solve(pipeline, cluster, demand, options, current)`` is a pure function.

Formulation (lokirl's reading of Loki, HPDC 2024). A *config* is a variant on an
accelerator type at a batch size; its replicas ``x_c`` are integers and each serves
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
the running plan; the running plan seeds the solver (warm start). Every solve has
a time limit and reports ``optimal`` only when the solver proved it.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import pulp

from lokirl.core.pipeline import DEFAULT_BATCH_SIZES, Cluster, Pipeline, Variant
from lokirl.core.plan import PathShare, Phase, Plan, Status, WorkerGroup

SolverName = Literal["cbc", "highs"]

_EPS = 1e-9


@dataclass(frozen=True)
class AllocatorOptions:
    """Options of :func:`solve`.

    Attributes:
        solver: ``"cbc"`` (default) or ``"highs"``.
        time_limit_s: Wall-time limit for all phases together.
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
            task's best variant); 0 keeps every variant. Such a solve is optimal
            only within that neighbourhood and reports ``feasible``. Used only when
            the demand moved by at most ``warm_max_change`` (relative).
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

    """

    solver: SolverName = "cbc"
    time_limit_s: float = 10.0
    latency_budget: float = 0.5
    accuracy_model: Literal["multiplicative", "e2e"] = "multiplicative"
    churn_weight: float = 0.0
    worker_weight: float = 0.0
    warm_start: bool = True
    warm_neighbourhood: int = 1
    warm_radius: int | None = None
    warm_max_change: float = 0.25
    min_replicas_per_task: int = 1
    gap_rel: float = 1e-3
    threads: int = 1
    batch_sizes: tuple[int, ...] | None = DEFAULT_BATCH_SIZES

    def __post_init__(self) -> None:
        if self.solver not in ("cbc", "highs"):
            raise ValueError(f"unknown solver {self.solver!r}: use 'cbc' or 'highs'")
        if not 0 < self.latency_budget <= 1:
            raise ValueError("latency_budget must be in (0, 1]")
        if self.time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive")


@dataclass(frozen=True)
class Config:
    """A variant on an accelerator type at a batch size."""

    task: str
    variant: Variant
    accelerator: str
    batch_size: int
    latency_ms: float
    throughput: float

    @property
    def key(self) -> tuple[str, str, int]:
        """(variant, accelerator, batch size)."""
        return (self.variant.name, self.accelerator, self.batch_size)


@dataclass
class _Chain:
    configs: tuple[int, ...]  # indices into the config list
    latency_ms: float
    mult: float  # load per unit of root demand at the last config
    children: dict[str, list[int]] = field(default_factory=dict)  # child task -> chain ids
    leaf: bool = False
    accuracy: float = 0.0  # path accuracy (0-1) for leaf chains


class _Structure:
    """Configs and latency-feasible chains of a pipeline on a cluster."""

    def __init__(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        options: AllocatorOptions,
        best_only: bool,
        allowed: frozenset[str] | None = None,
    ) -> None:
        self.pipeline = pipeline
        budget = options.latency_budget * pipeline.slo_ms
        self.configs: list[Config] = []
        by_task: dict[str, list[int]] = defaultdict(list)
        for task in pipeline.tasks:
            variants = task.variants
            if best_only:
                # The most accurate variant that can be served within the budget at all.
                servable = [
                    v
                    for v in variants
                    if any(
                        cluster.workers.get(a, 0) > 0
                        and v.latency(a, v.batch_sizes(a)[0]) <= budget
                        for a in v.accelerators
                    )
                ]
                variants = tuple(servable[:1])
            if allowed is not None:
                variants = tuple(v for v in variants if v.name in allowed)
            for v in variants:
                for accel in v.accelerators:
                    if cluster.workers.get(accel, 0) <= 0:
                        continue
                    cands = [
                        (b, v.latency(accel, b), v.throughput(accel, b))
                        for b in v.batch_sizes(accel)
                        if v.latency(accel, b) <= budget
                        and (options.batch_sizes is None or b in options.batch_sizes)
                    ]
                    for b, lat, thr in cands:
                        # Drop batch sizes dominated by one with lower latency and higher throughput.
                        if any(
                            (l2 <= lat and t2 >= thr) and (l2 < lat or t2 > thr)
                            for _, l2, t2 in cands
                        ):
                            continue
                        by_task[task.name].append(len(self.configs))
                        self.configs.append(Config(task.name, v, accel, b, lat, thr))
        self.by_task = dict(by_task)
        # Minimum latency needed below each task (the slowest of its child branches).
        need: dict[str, float] = {}
        for task in reversed(pipeline.tasks):
            below = [
                min((self.configs[i].latency_ms for i in by_task.get(c, [])), default=math.inf)
                + need[c]
                for c in task.children
            ]
            need[task.name] = max(below, default=0.0)
        self.chains: list[_Chain] = []
        self.root_chains: dict[str, list[int]] = defaultdict(list)
        self.chains_at: dict[int, list[int]] = defaultdict(list)
        leaves = pipeline.leaves
        self.leaf_weight = 1.0 / len(leaves)
        for root in pipeline.roots:
            for ci in by_task.get(root, []):
                cid = self._grow((ci,), self.configs[ci].latency_ms, 1.0, budget, need, options)
                if cid is not None:
                    self.root_chains[root].append(cid)

    def _grow(
        self,
        configs: tuple[int, ...],
        latency: float,
        mult: float,
        budget: float,
        need: dict[str, float],
        options: AllocatorOptions,
    ) -> int | None:
        last = self.configs[configs[-1]]
        task = self.pipeline.task(last.task)
        if latency + need[task.name] > budget + _EPS:
            return None
        chain = _Chain(configs, latency, mult)
        cid = len(self.chains)
        self.chains.append(chain)
        self.chains_at[configs[-1]].append(cid)
        if not task.children:
            chain.leaf = True
            names = tuple(self.configs[i].variant.name for i in configs)
            chain.accuracy = self.pipeline.path_accuracy(names, options.accuracy_model) / 100.0
            return cid
        for child in task.children:
            m = mult * last.variant.branching.get(child, 1.0)
            kids = []
            for ci in self.by_task.get(child, []):
                k = self._grow(
                    configs + (ci,), latency + self.configs[ci].latency_ms, m, budget, need, options
                )
                if k is not None:
                    kids.append(k)
            if not kids:
                # No feasible continuation: discard this chain (and what it registered).
                self._truncate(cid)
                return None
            chain.children[child] = kids
        return cid

    def _truncate(self, cid: int) -> None:
        # Chains are appended depth first: everything from ``cid`` on descends from it.
        for q in range(cid, len(self.chains)):
            self.chains_at[self.chains[q].configs[-1]].remove(q)
        del self.chains[cid:]

    def feasible(self) -> bool:
        return all(self.root_chains.get(r) for r in self.pipeline.roots)


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


class _HiGHSWarm(pulp.HiGHS):
    """pulp's HiGHS interface with a MIP start taken from the variables' initial values."""

    def callSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802 (pulp's name)
        if self.optionsDict.get("warm_start_values"):
            import highspy

            values = [0.0] * lp.solverModel.getNumCol()
            for var in lp.variables():
                if var.varValue is not None:
                    values[var.index] = float(var.varValue)
            sol = highspy.HighsSolution()
            sol.col_value = values
            sol.value_valid = True
            lp.solverModel.setSolution(sol)
        lp.solverModel.run()

    def createAndConfigureSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802
        warm = self.optionsDict.pop("warm_start_values", False)
        super().createAndConfigureSolver(lp)
        self.optionsDict["warm_start_values"] = warm


def _make_solver(options: AllocatorOptions, time_limit: float, warm: bool) -> pulp.LpSolver:
    if options.solver == "highs":
        solver = _HiGHSWarm(
            msg=False, timeLimit=time_limit, gapRel=options.gap_rel, threads=options.threads
        )
        solver.optionsDict["warm_start_values"] = warm
        solver.optionsDict["random_seed"] = 0
        return solver
    return pulp.PULP_CBC_CMD(
        msg=False,
        timeLimit=time_limit,
        gapRel=options.gap_rel,
        warmStart=warm,
        threads=options.threads,
    )


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
) -> _Outcome:
    """Build the MILP for ``phase`` over structure ``st`` and solve it.

    ``box`` maps config keys to the running plan's replicas; when given, every
    config's replicas stay within ``options.warm_radius`` of it (0 for absent keys).
    """
    sense = pulp.LpMinimize if phase == "hardware" else pulp.LpMaximize
    prob = pulp.LpProblem(f"lokirl_{phase}", sense)
    configs, chains = st.configs, st.chains
    # Tight bounds on replicas: enough for the heaviest load the config could see.
    max_mult: dict[int, float] = defaultdict(float)
    for ch in chains:
        max_mult[ch.configs[-1]] = max(max_mult[ch.configs[-1]], ch.mult)
    x: dict[int, pulp.LpVariable] = {}
    for i, c in enumerate(configs):
        if i not in max_mult:
            continue
        need = math.ceil(demand * max_mult[i] / c.throughput - _EPS) if demand > 0 else 0
        ub = min(cluster.workers[c.accelerator], max(need, options.min_replicas_per_task))
        lb = 0
        if box is not None and options.warm_radius is not None:
            old = box.get(c.key, 0)
            lb = min(ub, max(0, old - options.warm_radius))
            ub = min(ub, old + options.warm_radius)
        x[i] = pulp.LpVariable(f"x{i}", lowBound=lb, upBound=ub, cat=pulp.LpInteger)
    f = {q: pulp.LpVariable(f"f{q}", lowBound=0, upBound=1) for q in range(len(chains))}
    s = pulp.LpVariable("s", lowBound=0, upBound=1) if phase == "partial" else 1.0

    for root in st.pipeline.roots:
        prob += pulp.lpSum(f[q] for q in st.root_chains[root]) == s, f"served_{root}"
    for q, ch in enumerate(chains):
        for child, kids in ch.children.items():
            prob += pulp.lpSum(f[k] for k in kids) == f[q], f"flow_{q}_{child}"
    for i in x:
        load = pulp.lpSum(chains[q].mult * demand * f[q] for q in st.chains_at[i])
        prob += load <= configs[i].throughput * x[i], f"cap_{i}"
        # No flow through a config without replicas, even when the demand is ~0.
        prob += pulp.lpSum(f[q] for q in st.chains_at[i]) <= x[i], f"link_{i}"
    for accel, n in cluster.workers.items():
        on = [x[i] for i in x if configs[i].accelerator == accel]
        if on:
            prob += pulp.lpSum(on) <= n, f"workers_{accel}"
    if options.min_replicas_per_task > 0 and cluster.total >= options.min_replicas_per_task * len(
        st.pipeline.tasks
    ):
        for task, idx in st.by_task.items():
            prob += (
                pulp.lpSum(x[i] for i in idx if i in x) >= options.min_replicas_per_task,
                f"min_{task}",
            )

    # Churn: workers whose variant (on an accelerator) differs from the running plan.
    churn = 0
    if options.churn_weight > 0 and current is not None:
        old = current.replicas_by_accelerator()
        per_va: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i in x:
            per_va[(configs[i].variant.name, configs[i].accelerator)].append(i)
        terms = []
        for key in set(per_va) | set(old):
            d = pulp.LpVariable(f"d_{len(terms)}", lowBound=0)
            total = pulp.lpSum(x[i] for i in per_va.get(key, []))
            prob += d >= total - old.get(key, 0)
            prob += d >= old.get(key, 0) - total
            terms.append(d)
        churn = 0.5 * pulp.lpSum(terms)

    workers = pulp.lpSum(x.values())
    if phase == "hardware":
        prob += workers + options.churn_weight * churn
    else:
        acc = pulp.lpSum(st.leaf_weight * chains[q].accuracy * f[q] for q in f if chains[q].leaf)
        obj = 100.0 * acc - options.worker_weight * workers - options.churn_weight * churn
        if phase == "partial":
            obj = 1000.0 * s + obj
        prob += obj

    warm = False
    if options.warm_start and current is not None:
        warm = _seed(prob, st, x, f, current)
    solver = _make_solver(options, max(time_limit, 0.05), warm)
    try:
        prob.solve(solver)
    except pulp.PulpSolverError:
        return _Outcome(None, {}, {}, 0.0, 0.0)
    if prob.sol_status == pulp.LpSolutionOptimal:
        status: Status | None = "optimal"
    elif prob.sol_status == pulp.LpSolutionIntegerFeasible:
        status = "feasible"
    else:
        return _Outcome(None, {}, {}, 0.0, 0.0)
    xs = {i: int(round(v.varValue or 0)) for i, v in x.items()}
    fs = {q: max(0.0, v.varValue or 0.0) for q, v in f.items()}
    sv = float(s.varValue) if isinstance(s, pulp.LpVariable) else 1.0
    return _Outcome(status, xs, fs, sv, float(pulp.value(prob.objective) or 0.0))


def _seed(
    prob: pulp.LpProblem,
    st: _Structure,
    x: dict[int, pulp.LpVariable],
    f: dict[int, pulp.LpVariable],
    current: Plan,
) -> bool:
    """Set initial values from the running plan; returns whether anything was set.

    Values are clamped to each variable's bounds; a seed that pulp refuses is
    dropped (the solve then runs cold) rather than failing the solve.
    """

    def clamp(var: pulp.LpVariable, value: float) -> float:
        lo = var.lowBound if var.lowBound is not None else value
        hi = var.upBound if var.upBound is not None else value
        return min(max(value, lo), hi)

    index = {c.key: i for i, c in enumerate(st.configs)}
    seeded = False
    try:
        for g in current.groups:
            i = index.get(g.key)
            if i is not None and i in x:
                x[i].setInitialValue(clamp(x[i], g.replicas))
                seeded = True
        for var in x.values():
            if var.varValue is None:
                var.setInitialValue(clamp(var, 0))
        chain_index = {
            tuple(st.configs[i].key for i in ch.configs): q for q, ch in enumerate(st.chains)
        }
        # Frames through a prefix: the largest sum over its leaf branches.
        per_branch: dict[tuple[int, str | None], float] = defaultdict(float)
        for p in current.paths:
            for depth in range(1, len(p.groups) + 1):
                q = chain_index.get(tuple(p.groups[:depth]))
                if q is None:
                    break
                nxt = p.groups[depth][0] if depth < len(p.groups) else None
                per_branch[(q, nxt)] += p.share
        value: dict[int, float] = defaultdict(float)
        for (q, _), share in per_branch.items():
            value[q] = max(value[q], share)
        for q, v in value.items():
            f[q].setInitialValue(clamp(f[q], v))
    except ValueError:
        for var in list(x.values()) + list(f.values()):
            var.varValue = None
        return False
    return seeded


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
) -> Plan:
    configs, chains = st.configs, st.chains
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
    st1 = _Structure(pipeline, cluster, options, best_only=True)
    skip1 = warm and current.phase in ("accuracy", "partial") and demand >= current.demand
    if not skip1 and st1.feasible() and _lp_max_share(st1, cluster, demand) >= 1 - 1e-6:
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
            )
    allowed = _neighbourhood(pipeline, current, options.warm_neighbourhood) if warm else None
    st = _Structure(pipeline, cluster, options, best_only=False, allowed=allowed)
    if allowed is not None and not st.feasible():
        allowed = None
        st = _Structure(pipeline, cluster, options, best_only=False)
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
    ) or _lp_max_share(st, cluster, demand) >= 1 - 1e-6
    if fits and remaining() > 0:
        out = _build_and_solve(st, cluster, demand, options, "accuracy", remaining(), current, box)
        if out.status is None and restricted and remaining() > 0:
            # Nothing inside the warm neighbourhood: solve on every variant.
            restricted = False
            st = _Structure(pipeline, cluster, options, best_only=False)
            if _lp_max_share(st, cluster, demand) >= 1 - 1e-6:
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
        )
        if (out.status is None or out.s < 1 - 1e-6) and restricted:
            # The neighbourhood could not carry the demand: retry on every variant.
            st = _Structure(pipeline, cluster, options, best_only=False)
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
                msg = f"the cluster carries at most {out.s:.1%} of the demand; the rest is dropped"
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


def _lp_max_share(st: _Structure, cluster: Cluster, demand: float) -> float:
    """Upper bound on the servable share: LP relaxation with continuous replicas.

    Solved as a closed-form-free tiny LP with HiGHS through pulp; cheap (ms).
    """
    if demand <= 0:
        return 1.0
    prob = pulp.LpProblem("lokirl_bound", pulp.LpMaximize)
    f = {q: pulp.LpVariable(f"f{q}", lowBound=0) for q in range(len(st.chains))}
    s = pulp.LpVariable("s", lowBound=0, upBound=1)
    w: dict[int, pulp.LpVariable] = {}
    for root in st.pipeline.roots:
        prob += pulp.lpSum(f[q] for q in st.root_chains[root]) == s
    for q, ch in enumerate(st.chains):
        for kids in ch.children.values():
            prob += pulp.lpSum(f[k] for k in kids) == f[q]
    for i, c in enumerate(st.configs):
        if st.chains_at.get(i):
            w[i] = pulp.LpVariable(f"w{i}", lowBound=0)
            prob += (
                pulp.lpSum(st.chains[q].mult * demand * f[q] for q in st.chains_at[i])
                <= c.throughput * w[i]
            )
    for accel, n in cluster.workers.items():
        on = [w[i] for i in w if st.configs[i].accelerator == accel]
        if on:
            prob += pulp.lpSum(on) <= n
    prob += s
    prob.solve(pulp.HiGHS(msg=False, threads=1))
    if prob.sol_status != pulp.LpSolutionOptimal:
        return 0.0
    return float(s.varValue or 0.0)


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
    proportion to each task's load.
    """
    accel = max(
        (a for a in pipeline.accelerators if cluster.workers.get(a, 0) > 0),
        key=lambda a: cluster.workers[a],
    )
    budget = (
        latency_budget * pipeline.slo_ms / max(1, len(max(pipeline.root_to_leaf_tasks(), key=len)))
    )
    choice: dict[str, tuple[Variant, int]] = {}
    for task in pipeline.tasks:
        best = None
        for v in task.variants:
            for b in v.batch_sizes(accel):
                if v.latency(accel, b) <= budget or b == 1:
                    thr = v.throughput(accel, b)
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
    need = {
        t: mult[t] * max(demand, 1.0) / choice[t][0].throughput(accel, choice[t][1]) for t in mult
    }
    total_need = sum(need.values())
    n = cluster.workers[accel]
    reps = {t: max(1, int(n * need[t] / total_need)) for t in need}
    while sum(reps.values()) > n and max(reps.values()) > 1:
        t = max(reps, key=reps.get)
        reps[t] -= 1
    groups = []
    for task in pipeline.tasks:
        v, b = choice[task.name]
        groups.append(
            WorkerGroup(
                task=task.name,
                variant=v.name,
                accelerator=accel,
                batch_size=b,
                replicas=reps[task.name],
                latency_ms=v.latency(accel, b),
                throughput=v.throughput(accel, b),
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
