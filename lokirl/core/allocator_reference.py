"""The allocator's reference formulation: the MILP written with PuLP expressions.

This is the formulation described at the top of :mod:`lokirl.core.allocator`
before it was tightened, kept readable and kept solvable (CBC or HiGHS through
PuLP) so that tests can check that the fast path
(:mod:`lokirl.core.allocation_model` solved by :mod:`lokirl.core.milp`) reaches the same optimum.
Select it with ``AllocatorOptions(formulation="reference")``.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pulp

from lokirl.core.allocator import AllocatorOptions, _Outcome, _Structure
from lokirl.core.milp import cbc_threads
from lokirl.core.pipeline import Cluster
from lokirl.core.plan import Phase, Plan, Status

_EPS = 1e-9


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
        threads=cbc_threads(options.threads),
    )


def build_and_solve_reference(
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
