"""A small mixed-integer program held as arrays, solved by HiGHS directly or by CBC.

The allocator builds its models here instead of through PuLP's expression
objects: building a few hundred rows as index lists costs a millisecond, where
PuLP took tens. :func:`solve_milp` then solves the model:

* **HiGHS** (``highspy``, in process): first the LP relaxation (an upper bound
  for a maximisation) and the caller's start with its continuous part
  re-optimised; when that start is within the relative gap of the LP bound it is
  proven optimal and no branching is needed. Otherwise lokirl's best-first search
  (:func:`_best_first`: branch and bound over HiGHS LPs, each node solved from its
  parent's basis, branching tier by tier as ``MilpModel.priority`` says, no cuts)
  runs for up to ``MilpLimits.search_nodes`` nodes; on the allocator's models it
  proves the optimum in a few dozen LPs (the median cold solve of
  ``traffic_analysis`` on 20 workers: 62 -> 18 ms, ``docs/allocator.md``). If it
  has not closed the gap by then, HiGHS's branch and bound continues from its
  incumbent, without restarts and without the RINS, RENS and feasibility-jump
  heuristics: on these models they cost more than they find (the median cold solve
  fell from 122 to 62 ms with them off, before the search existed). A
  *fractional dive* (round the least fractional integer column to its nearest
  value, re-solve the LP hot-started, repeat) runs first only where it can end the
  solve at once, when every solution's objective is a whole number (the rounded
  LP bound is then often reached); later it is the fallback incumbent when branch
  and bound stops with none (a work-bounded dive, at most ``4 x integers + 10`` LPs).
* **CBC** through PuLP (``PULP_CBC_CMD``): the same rows as a PuLP problem, with
  a warm start when one is given. One thread is CBC's serial code (no ``-threads``
  option): ``-threads 1`` starts CBC's threaded search with one worker, which on
  a three-column knapsack stalled 10 s in about 1 of 550 runs (11 of 6,000 under
  load; 0 of 7,800 serial).

Limits are either wall time (live serving) or work (``max_nodes`` and a fixed
single thread: the same model gives the same answer on every run, whatever the
machine is doing).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MilpStatus = Literal["optimal", "feasible"]

_INT_TOL = 1e-6


@dataclass
class MilpModel:
    """Columns and rows of a MILP, appended one by one.

    Attributes:
        maximize: Sense of the objective.
        lower, upper, cost, integer: Per column.
        rows: ``(lo, hi, indices, values)`` per row.
        priority: Branching tier of integer columns (lower branches first; columns
            without one come last), for lokirl's best-first search.

    """

    maximize: bool = True
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    rows: list[tuple[float, float, list[int], list[float]]] = field(default_factory=list)
    priority: dict[int, int] = field(default_factory=dict)

    @property
    def num_cols(self) -> int:
        """Number of columns."""
        return len(self.cost)

    def add_col(
        self,
        lo: float,
        hi: float,
        cost: float = 0.0,
        integer: bool = False,
        priority: int | None = None,
    ) -> int:
        """Add a column; returns its index (``priority``: its branching tier)."""
        self.lower.append(float(lo))
        self.upper.append(float(hi))
        self.cost.append(float(cost))
        self.integer.append(integer)
        k = len(self.cost) - 1
        if priority is not None:
            self.priority[k] = int(priority)
        return k

    def tiers(self) -> list[list[int]]:
        """Integer columns grouped by branching tier, lowest tier first."""
        by: dict[int, list[int]] = {}
        last = max(self.priority.values(), default=0) + 1
        for k, is_int in enumerate(self.integer):
            if is_int:
                by.setdefault(self.priority.get(k, last), []).append(k)
        return [by[t] for t in sorted(by)]

    def add_row(self, lo: float, hi: float, idx: list[int], val: list[float]) -> None:
        """Add ``lo <= sum(val * x[idx]) <= hi`` (use ``-inf``/``inf`` for one side)."""
        self.rows.append((lo, hi, idx, val))

    def objective(self, values: np.ndarray) -> float:
        """Objective of a column vector."""
        return float(np.dot(self.cost, values))

    def feasible(self, values: np.ndarray, tol: float = 1e-6) -> bool:
        """Whether ``values`` satisfies bounds, rows and integrality (within ``tol``)."""
        v = np.asarray(values, float)
        if np.any(v < np.asarray(self.lower) - tol) or np.any(v > np.asarray(self.upper) + tol):
            return False
        for k, is_int in enumerate(self.integer):
            if is_int and abs(v[k] - round(v[k])) > tol:
                return False
        for lo, hi, idx, val in self.rows:
            act = float(np.dot(val, v[idx])) if idx else 0.0
            scale = max(
                1.0, abs(lo) if math.isfinite(lo) else 0.0, abs(hi) if math.isfinite(hi) else 0.0
            )
            if act < lo - tol * scale or act > hi + tol * scale:
                return False
        return True


@dataclass(frozen=True)
class MilpLimits:
    """How long a solve may run and when it stops.

    Attributes:
        gap_rel: Relative gap at which a solution counts as optimal.
        time_limit_s: Wall-clock limit, or ``None`` (work-bounded solve).
        max_nodes: Branch-and-bound node limit (the work bound, lokirl's search and
            HiGHS's together); 0: no branch and bound, the LP relaxation and the dive
            only.
        threads: Solver threads.
        search_nodes: Nodes of lokirl's best-first search before HiGHS's branch and
            bound takes over from its incumbent (0: HiGHS's from the start).

    """

    gap_rel: float = 1e-3
    time_limit_s: float | None = 10.0
    max_nodes: int = 20_000
    threads: int = 1
    search_nodes: int = 400


@dataclass
class MilpResult:
    """Outcome of :func:`solve_milp`.

    Attributes:
        status: ``"optimal"`` (proven within the gap), ``"feasible"`` (best found
            within the limits) or ``None`` (no solution).
        values: Column values (empty without a solution).
        objective: Objective value.
        bound: Best proven bound on the objective (``nan`` when unknown).
        how: What produced the answer (``"lp-dive"``, ``"branch-and-bound"``, ``"cbc"``).

    """

    status: MilpStatus | None
    values: np.ndarray
    objective: float
    bound: float = math.nan
    how: str = ""


def _csc(model: MilpModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = model.num_cols
    cols: list[int] = []
    rws: list[int] = []
    vals: list[float] = []
    for r, (_, _, idx, val) in enumerate(model.rows):
        cols.extend(idx)
        rws.extend([r] * len(idx))
        vals.extend(val)
    c = np.asarray(cols, dtype=np.int64)
    r = np.asarray(rws, dtype=np.int64)
    v = np.asarray(vals, dtype=float)
    order = np.lexsort((r, c))
    c, r, v = c[order], r[order], v[order]
    start = np.searchsorted(c, np.arange(n + 1))
    return start.astype(np.int32), r.astype(np.int32), v


def _highs_lp(model: MilpModel, with_integrality: bool):  # -> highspy.HighsLp
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_ = model.num_cols
    lp.num_row_ = len(model.rows)
    lp.col_cost_ = np.asarray(model.cost, float)
    lp.col_lower_ = np.asarray(model.lower, float)
    lp.col_upper_ = np.asarray(model.upper, float)
    lp.row_lower_ = np.asarray([r[0] for r in model.rows], float)
    lp.row_upper_ = np.asarray([r[1] for r in model.rows], float)
    start, index, value = _csc(model)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.sense_ = highspy.ObjSense.kMaximize if model.maximize else highspy.ObjSense.kMinimize
    if with_integrality:
        kint, kcont = highspy.HighsVarType.kInteger, highspy.HighsVarType.kContinuous
        lp.integrality_ = [kint if i else kcont for i in model.integer]
    return lp


def _new_highs(limits: MilpLimits, deadline: float | None):  # -> highspy.Highs
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", int(limits.threads))
    h.setOptionValue("random_seed", 0)
    if deadline is not None:
        h.setOptionValue("time_limit", max(0.01, deadline - time.perf_counter()))
    return h


def _better(maximize: bool, a: float, b: float) -> bool:
    return a > b if maximize else a < b


def _within_gap(maximize: bool, obj: float, bound: float, gap: float) -> bool:
    diff = (bound - obj) if maximize else (obj - bound)
    return diff <= gap * max(abs(obj), 1e-9) + 1e-9


def _whole_objective(model: MilpModel) -> bool:
    """Whether every solution's objective is a whole number.

    That holds when only integer columns carry a cost and every cost is a whole
    number (the hardware phase: minimise workers).
    """
    return all(
        not c or (is_int and abs(c - round(c)) <= 1e-9)
        for c, is_int in zip(model.cost, model.integer, strict=True)
    )


def _integral_bound(model: MilpModel, bound: float) -> float:
    """The LP bound rounded to an integer when every solution's objective is one.

    Then no solution beats the rounded bound, and an incumbent that reaches it is
    optimal without branching.
    """
    if not math.isfinite(bound) or not _whole_objective(model):
        return bound
    return math.floor(bound + 1e-6) if model.maximize else math.ceil(bound - 1e-6)


def _dive(h, model: MilpModel, int_cols: list[int], deadline: float | None) -> np.ndarray | None:
    """Fractional diving on a solved LP ``h``; returns an integral solution or None."""
    import highspy

    lower = list(model.lower)
    upper = list(model.upper)
    for _ in range(4 * len(int_cols) + 10):
        if deadline is not None and time.perf_counter() > deadline:
            return None
        sol = np.asarray(h.getSolution().col_value, float)
        best = None
        for k in int_cols:
            v = sol[k]
            frac = v - math.floor(v)
            if _INT_TOL < frac < 1 - _INT_TOL:
                dist = min(frac, 1 - frac)
                if best is None or dist < best[0] - 1e-12:
                    best = (dist, k, v)
        if best is None:
            return sol
        _, k, v = best
        first_up = v - math.floor(v) >= 0.5
        ok = False
        for up in (first_up, not first_up):
            lo, hi = (math.ceil(v), upper[k]) if up else (lower[k], math.floor(v))
            h.changeColBounds(k, float(lo), float(hi))
            h.run()
            if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                lower[k], upper[k] = lo, hi
                ok = True
                break
            h.changeColBounds(k, float(lower[k]), float(upper[k]))
        if not ok:
            return None
    return None


def _polish(h, model: MilpModel, int_cols: list[int], start: np.ndarray) -> np.ndarray | None:
    """The LP over the continuous columns with the integer ones fixed at ``start``.

    Leaves ``h`` solved on the unrestricted LP again. Returns the solution, or None
    when the fixed integers admit no feasible continuous part.
    """
    import highspy

    if not int_cols:
        return None
    idx = np.asarray(int_cols, dtype=np.int32)
    fixed = np.clip(
        np.round(start[idx]), np.asarray(model.lower)[idx], np.asarray(model.upper)[idx]
    )
    h.changeColsBounds(len(idx), idx, fixed, fixed)
    h.run()
    out = None
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        out = np.asarray(h.getSolution().col_value, float)
        out[idx] = fixed
    h.changeColsBounds(len(idx), idx, np.asarray(model.lower)[idx], np.asarray(model.upper)[idx])
    h.run()
    return out


class _Interrupted(Exception):
    """A node LP stopped without an answer (time limit or solver trouble)."""


def _node_infeasible():  # -> set of HighsModelStatus
    import highspy

    return {
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    }


def _lp_highs(model: MilpModel, limits: MilpLimits, deadline: float | None):  # -> highspy.Highs
    """A HiGHS instance holding ``model``'s LP relaxation, presolve off.

    HiGHS's presolve costs more than it saves on these LPs (the root: 2.7 -> 1.8 ms,
    traffic_analysis at 20 workers); every later LP starts from a basis anyway.
    """
    h = _new_highs(limits, deadline)
    h.setOptionValue("presolve", "off")
    h.passModel(_highs_lp(model, with_integrality=False))
    return h


def _reset_bounds(h, model: MilpModel) -> None:
    """Give ``h`` the model's column bounds again and re-solve its LP."""
    n = model.num_cols
    lower = np.asarray(model.lower, float)
    upper = np.asarray(model.upper, float)
    h.changeColsBounds(n, np.arange(n, dtype=np.int32), lower, upper)
    h.run()


class _Rounder:
    """An incumbent from an LP point: its base columns rounded, the rest re-optimised.

    Base columns that share a budget row (``sum x <= N`` with unit coefficients:
    the workers of an accelerator) are rounded by largest remainder within it,
    keeping the LP's total; others to nearest. The LP is then solved with them
    fixed (a second HiGHS instance, so the search's basis is left alone); the
    point counts only if every other integer column comes out whole.
    """

    def __init__(self, model: MilpModel, base: list[int]) -> None:
        self.model = model
        self.base = np.asarray(base, dtype=np.int32)
        in_base = set(base)
        self.budgets: list[np.ndarray] = []
        for lo, hi, idx, val in model.rows:
            if (
                not math.isfinite(lo)
                and math.isfinite(hi)
                and idx
                and all(v == 1.0 for v in val)
                and all(k in in_base for k in idx)
            ):
                self.budgets.append(np.asarray(idx, dtype=np.int32))
        self.ints = np.asarray([k for k, i in enumerate(model.integer) if i], dtype=np.int32)
        self.lower = np.asarray(model.lower, float)
        self.upper = np.asarray(model.upper, float)
        self.h = _lp_highs(model, MilpLimits(threads=1), None)

    def polish(self, sol: np.ndarray) -> np.ndarray | None:
        """The rounded point with its other columns re-optimised, or None."""
        import highspy

        vals = np.round(sol)
        for idx in self.budgets:
            v = sol[idx]
            down = np.floor(v + _INT_TOL)
            extra = int(math.floor(float(v.sum()) + 0.5) - down.sum())
            up = np.zeros(len(idx))
            if extra > 0:
                up[np.argsort(down - v, kind="stable")[:extra]] = 1.0
            vals[idx] = down + up
        fixed = np.clip(vals[self.base], self.lower[self.base], self.upper[self.base])
        self.h.changeColsBounds(len(self.base), self.base, fixed, fixed)
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        out = np.asarray(self.h.getSolution().col_value, float)
        # Other integer columns must come out whole from the rows (aggregates of the
        # base ones do); otherwise this is no incumbent.
        whole = np.round(out[self.ints])
        if np.any(np.abs(out[self.ints] - whole) > _INT_TOL):
            return None
        out[self.ints] = whole
        return out


@dataclass
class _Search:
    """Outcome of :func:`_best_first`."""

    best: np.ndarray | None
    bound: float  # best proven bound (the model's sense)
    nodes: int
    proven: bool  # the search closed (best within the gap, or no solution exists)


def _best_first(
    h,
    model: MilpModel,
    best: np.ndarray | None,
    gap: float,
    max_nodes: int,
    deadline: float | None,
) -> _Search:
    """Best-first branch and bound on the LP relaxation held in ``h``.

    Branches on the most fractional column of the first tier (``model.tiers()``)
    that has one, evaluates both children at once (dual simplex from the parent's
    basis, which each node keeps), and always expands the open node with the best
    bound; it stops when that bound is within ``gap`` of the incumbent. A node
    whose only fractional columns are of the last tier (the base columns: replicas
    per config) is rounded for an incumbent (:class:`_Rounder`). No cut
    separation: on the allocator's models the integrality gap sits in the few
    aggregate columns (replicas per task and per variant), which the tiers put
    first, and closing it by branching costs a few dozen LPs where HiGHS's root
    cut loop costs 40-200 ms (``docs/allocator.md``). No clock unless ``deadline``
    is given: with a node limit the search is the same on every run.
    """
    import heapq

    import highspy

    sign = 1.0 if model.maximize else -1.0  # internally: maximise sign * objective
    whole = _whole_objective(model)
    tiers = model.tiers()
    last = set(tiers[-1]) if tiers else set()
    lower = np.asarray(model.lower, float)
    upper = np.asarray(model.upper, float)
    _reset_bounds(h, model)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return _Search(best, math.nan, 0, False)
    cur_lo, cur_hi = lower.copy(), upper.copy()
    infeasible = _node_infeasible()

    def node_bound(value: float) -> float:
        # Every solution's objective is whole: no child beats the rounded LP value.
        return math.floor(value + 1e-6) if whole else value

    def solve_node(lo: np.ndarray, hi: np.ndarray, basis) -> tuple[float, np.ndarray] | None:
        nonlocal cur_lo, cur_hi
        changed = np.nonzero((lo != cur_lo) | (hi != cur_hi))[0]
        if len(changed):
            h.changeColsBounds(len(changed), changed.astype(np.int32), lo[changed], hi[changed])
        cur_lo, cur_hi = lo, hi
        if basis is not None:
            h.setBasis(basis)
        h.run()
        status = h.getModelStatus()
        if status in infeasible:
            return None
        if status != highspy.HighsModelStatus.kOptimal:
            # Stopped (time limit, solver trouble): the node is not settled.
            raise _Interrupted
        value = sign * float(h.getInfo().objective_function_value)
        return node_bound(value), np.asarray(h.getSolution().col_value, float)

    best_obj = sign * model.objective(best) if best is not None else -math.inf
    rounder: _Rounder | None = None

    def try_round(sol: np.ndarray) -> None:
        nonlocal best, best_obj, rounder
        if rounder is None:
            rounder = _Rounder(model, tiers[-1])
        cand = rounder.polish(sol)
        if cand is not None:
            obj = sign * model.objective(cand)
            if obj > best_obj:
                best, best_obj = cand, obj

    def closed(bound: float) -> bool:
        return best is not None and bound - best_obj <= gap * max(abs(best_obj), 1e-9) + 1e-9

    root = (
        node_bound(sign * float(h.getInfo().objective_function_value)),
        np.asarray(h.getSolution().col_value, float),
    )
    # (-bound, id, lower, upper, LP solution, basis)
    heap = [(-root[0], 0, lower, upper, root[1], h.getBasis())]
    made = nodes = 0
    interrupted = False
    while heap:
        if closed(-heap[0][0]):
            break
        if nodes >= max_nodes or (deadline is not None and time.perf_counter() > deadline):
            break
        negb, _, lo, hi, sol, basis = heapq.heappop(heap)
        b = -negb
        nodes += 1
        pick = None
        for tier in tiers:
            for k in tier:
                frac = sol[k] - math.floor(sol[k])
                if _INT_TOL < frac < 1 - _INT_TOL and (
                    pick is None or abs(frac - 0.5) < abs(pick[1] - 0.5)
                ):
                    pick = (k, frac)  # the most fractional of the tier
            if pick is not None:
                break
        if pick is not None and len(tiers) > 1 and pick[0] in last:
            # Only base columns left fractional: round them for an incumbent.
            try_round(sol)
            if closed(b):
                continue
        if pick is None:  # integral: a new incumbent when better
            obj = sign * model.objective(sol)
            if obj > best_obj:
                best, best_obj = sol, obj
            continue
        k = pick[0]
        kids = []
        try:
            for up in (False, True):
                clo, chi = lo.copy(), hi.copy()
                if up:
                    clo[k] = math.ceil(sol[k])
                else:
                    chi[k] = math.floor(sol[k])
                if clo[k] > chi[k]:
                    continue
                child = solve_node(clo, chi, basis)
                if child is None or closed(child[0]):
                    continue
                made += 1
                kids.append((-child[0], -made, clo, chi, child[1], h.getBasis()))
        except _Interrupted:
            # The parent stays open with its own bound: nothing is proven.
            made += 1
            heapq.heappush(heap, (negb, -made, lo, hi, sol, basis))
            interrupted = True
            break
        for kid in kids:
            heapq.heappush(heap, kid)
    proven = not interrupted and (not heap or closed(-heap[0][0]))
    top = -heap[0][0] if heap else best_obj
    bound = sign * max(top, best_obj) if best is not None else sign * top
    return _Search(best, bound, nodes, proven)


def solve_milp(
    model: MilpModel,
    solver: Literal["highs", "cbc"] = "highs",
    limits: MilpLimits | None = None,
    start: np.ndarray | None = None,
) -> MilpResult:
    """Solve ``model``.

    Args:
        model: The MILP.
        solver: ``"highs"`` (in process) or ``"cbc"`` (through PuLP).
        limits: Gap, time or node limits and threads.
        start: A candidate solution (e.g. the running plan's); used as the
            incumbent when it is feasible and better than the dive's.

    Returns:
        The result; ``status`` is ``None`` when no solution was found.

    """
    limits = limits or MilpLimits()
    if solver == "cbc":
        return _solve_cbc(model, limits, start)
    return _solve_highs(model, limits, start)


def _solve_highs(model: MilpModel, limits: MilpLimits, start: np.ndarray | None) -> MilpResult:
    import highspy

    t0 = time.perf_counter()
    deadline = None if limits.time_limit_s is None else t0 + limits.time_limit_s
    none = MilpResult(None, np.zeros(0), math.nan)
    int_cols = [k for k, i in enumerate(model.integer) if i]
    # 1. LP relaxation: a bound, and the point the dive starts from.
    h = _lp_highs(model, limits, deadline)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return none
    bound = _integral_bound(model, float(h.getInfo().objective_function_value))
    # 2. Incumbent: the caller's start (its integer part with the best continuous part,
    # i.e. the running plan's replicas with flows re-optimised); the dive where it can
    # prove optimality at once (whole-number objectives) or no branching is allowed.
    best: np.ndarray | None = None
    if start is not None and len(start) == model.num_cols:
        polished = _polish(h, model, int_cols, np.asarray(start, float))
        if polished is not None:
            best = polished
        elif model.feasible(start):
            best = np.asarray(start, float)
    dove = False
    if not (
        best is not None
        and _within_gap(model.maximize, model.objective(best), bound, limits.gap_rel)
    ) and (limits.max_nodes <= 0 or _whole_objective(model)):
        dove = True
        dived = _dive(h, model, int_cols, deadline)
        if dived is not None and (
            best is None or _better(model.maximize, model.objective(dived), model.objective(best))
        ):
            best = dived
    if best is not None and _within_gap(
        model.maximize, model.objective(best), bound, limits.gap_rel
    ):
        return MilpResult("optimal", best, model.objective(best), bound, "lp-dive")
    if limits.max_nodes <= 0 or (deadline is not None and time.perf_counter() >= deadline):
        if best is None:
            return none
        return MilpResult("feasible", best, model.objective(best), bound, "lp-dive")
    # 3. lokirl's best-first search from the incumbent (no cuts, no heuristics).
    nodes_left = limits.max_nodes
    if limits.search_nodes > 0:
        found = _best_first(
            h, model, best, limits.gap_rel, min(limits.search_nodes, nodes_left), deadline
        )
        best = found.best
        if found.proven:
            if best is None:
                return none
            return MilpResult("optimal", best, model.objective(best), found.bound, "best-first")
        if math.isfinite(found.bound):
            bound = min(bound, found.bound) if model.maximize else max(bound, found.bound)
        nodes_left -= found.nodes
        if nodes_left <= 0 or (deadline is not None and time.perf_counter() >= deadline):
            if best is None:
                return none
            status: MilpStatus = (
                "optimal"
                if _within_gap(model.maximize, model.objective(best), bound, limits.gap_rel)
                else "feasible"
            )
            return MilpResult(status, best, model.objective(best), bound, "best-first")
    # 4. HiGHS's branch and bound from the incumbent.
    m = _new_highs(limits, deadline)
    m.setOptionValue("mip_rel_gap", float(limits.gap_rel))
    m.setOptionValue("mip_max_nodes", int(nodes_left))
    # Restarts re-run the root and its sub-MIP heuristics; RINS, RENS and the
    # feasibility jump cost more than they find on these models (module docstring).
    m.setOptionValue("mip_allow_restart", False)
    m.setOptionValue("mip_heuristic_run_rins", False)
    m.setOptionValue("mip_heuristic_run_rens", False)
    m.setOptionValue("mip_heuristic_run_feasibility_jump", False)
    m.passModel(_highs_lp(model, with_integrality=True))
    if best is not None:
        sol = highspy.HighsSolution()
        sol.col_value = [float(v) for v in best]
        sol.value_valid = True
        m.setSolution(sol)
    m.run()
    status = m.getModelStatus()
    info = m.getInfo()
    values = np.asarray(m.getSolution().col_value, float)
    has = info.primal_solution_status == 2 and len(values) == model.num_cols
    how = "branch-and-bound"
    if not has:
        how = "lp-dive"
        if best is None and not dove:
            # Branch and bound stopped (time or node limit) before any solution:
            # the dive, bounded by work, is the fallback.
            _reset_bounds(h, model)
            best = _dive(h, model, int_cols, None)
        if best is None:
            return none
        values = best
    obj = model.objective(values)
    mip_bound = float(info.mip_dual_bound)
    if math.isfinite(mip_bound):
        bound = min(bound, mip_bound) if model.maximize else max(bound, mip_bound)
    if status == highspy.HighsModelStatus.kOptimal or _within_gap(
        model.maximize, obj, bound, limits.gap_rel
    ):
        return MilpResult("optimal", values, obj, bound, how)
    return MilpResult("feasible", values, obj, bound, how)


def cbc_threads(threads: int | None) -> int | None:
    """The ``threads`` to give ``PULP_CBC_CMD``: ``None`` (CBC's serial code) for one.

    Args:
        threads: Threads asked for.

    Returns:
        ``threads`` when more than one, else ``None``.

    """
    return threads if threads is not None and threads > 1 else None


def _solve_cbc(model: MilpModel, limits: MilpLimits, start: np.ndarray | None) -> MilpResult:
    import pulp

    sense = pulp.LpMaximize if model.maximize else pulp.LpMinimize
    prob = pulp.LpProblem("lokirl", sense)
    cols = [
        pulp.LpVariable(
            f"c{k}",
            lowBound=None if not math.isfinite(lo) else lo,
            upBound=None if not math.isfinite(hi) else hi,
            cat=pulp.LpInteger if model.integer[k] else pulp.LpContinuous,
        )
        for k, (lo, hi) in enumerate(zip(model.lower, model.upper, strict=True))
    ]
    for r, (lo, hi, idx, val) in enumerate(model.rows):
        expr = pulp.lpSum(v * cols[k] for k, v in zip(idx, val, strict=True))
        if lo == hi:
            prob += expr == lo, f"r{r}"
        else:
            if math.isfinite(lo):
                prob += expr >= lo, f"r{r}lo"
            if math.isfinite(hi):
                prob += expr <= hi, f"r{r}hi"
    prob += pulp.lpSum(c * col for c, col in zip(model.cost, cols, strict=True) if c)
    warm = start is not None and len(start) == model.num_cols and model.feasible(start)
    if warm:
        for col, v in zip(cols, start, strict=True):
            col.setInitialValue(float(round(v)) if col.cat == pulp.LpInteger else float(v))
    kwargs: dict = {
        "msg": False,
        "gapRel": limits.gap_rel,
        "warmStart": warm,
        "threads": cbc_threads(limits.threads),
    }
    if limits.time_limit_s is not None:
        kwargs["timeLimit"] = max(0.05, limits.time_limit_s)
    else:
        kwargs["options"] = [f"maxNodes {int(limits.max_nodes)}"]
    try:
        prob.solve(pulp.PULP_CBC_CMD(**kwargs))
    except pulp.PulpSolverError:
        return MilpResult(None, np.zeros(0), math.nan, how="cbc")
    if prob.sol_status == pulp.LpSolutionOptimal:
        status: MilpStatus = "optimal"
    elif prob.sol_status == pulp.LpSolutionIntegerFeasible:
        status = "feasible"
    else:
        return MilpResult(None, np.zeros(0), math.nan, how="cbc")
    values = np.asarray([c.varValue or 0.0 for c in cols], float)
    return MilpResult(status, values, model.objective(values), how="cbc")
