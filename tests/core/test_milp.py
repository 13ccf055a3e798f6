import math

import numpy as np
import pytest

from lokirl.core.milp import MilpLimits, MilpModel, solve_milp


def knapsack() -> MilpModel:
    # max 5a + 4b + 3c  s.t.  2a + 3b + c <= 5,  4a + b + 2c <= 11,  3a + 4b + 2c <= 8
    m = MilpModel(maximize=True)
    a, b, c = (m.add_col(0, 10, cost, integer=True) for cost in (5, 4, 3))
    m.add_row(-math.inf, 5, [a, b, c], [2, 3, 1])
    m.add_row(-math.inf, 11, [a, b, c], [4, 1, 2])
    m.add_row(-math.inf, 8, [a, b, c], [3, 4, 2])
    return m


@pytest.mark.parametrize("solver", ["highs", "cbc"])
@pytest.mark.parametrize("limit", [5.0, None])
def test_small_milp_is_solved_to_optimality(solver, limit):
    res = solve_milp(knapsack(), solver, MilpLimits(time_limit_s=limit))
    assert res.status == "optimal"
    assert res.objective == pytest.approx(13.0)  # a=2, c=1 (LP optimum is fractional)
    assert knapsack().feasible(res.values)


def test_infeasible_model_has_no_solution():
    m = MilpModel()
    x = m.add_col(0, 1, 1.0, integer=True)
    m.add_row(2, math.inf, [x], [1.0])
    assert solve_milp(m).status is None


def test_a_feasible_start_is_kept_when_nothing_beats_it():
    m = knapsack()
    start = np.array([2.0, 0.0, 1.0])
    assert m.feasible(start)
    res = solve_milp(m, "highs", MilpLimits(time_limit_s=None), start=start)
    assert res.status == "optimal" and res.objective == pytest.approx(13.0)
    assert not m.feasible(np.array([3.0, 0.0, 0.0]))  # violates row 3


def test_whole_number_objective_is_proven_from_the_rounded_lp_bound():
    # min x + y  s.t.  3x + 2y >= 7: LP bound 7/3, every solution costs a whole number,
    # so the dive's x=1, y=2 (cost 3 = ceil(7/3)) is optimal without branching.
    m = MilpModel(maximize=False)
    x = m.add_col(0, 10, 1.0, integer=True)
    y = m.add_col(0, 10, 1.0, integer=True)
    m.add_row(7, math.inf, [x, y], [3.0, 2.0])
    res = solve_milp(m, "highs", MilpLimits(time_limit_s=None))
    assert res.status == "optimal" and res.objective == pytest.approx(3.0)
    assert res.bound == 3.0 and res.how == "lp-dive"
    # A fractional cost gives no such guarantee: the LP bound (7/3) leaves a gap that
    # only branching closes (optimum x=3 at cost 3).
    m.cost[y] = 1.5
    res = solve_milp(m, "highs", MilpLimits(time_limit_s=None))
    assert res.objective == pytest.approx(3.0) and res.how == "branch-and-bound"


def test_the_dive_is_the_fallback_when_branch_and_bound_stops_with_nothing(monkeypatch):
    import lokirl.core.milp as milp

    m = knapsack()
    m.cost = [5.5, 4.25, 3.1]  # not whole numbers: no dive before branch and bound
    assert solve_milp(m, "highs", MilpLimits(time_limit_s=None)).how == "branch-and-bound"
    made = []
    real = milp._new_highs

    def stopped(limits, deadline):
        h = real(limits, deadline)
        made.append(h)
        if len(made) == 2:  # the branch-and-bound instance stops before any solution
            h.setOptionValue("time_limit", 0.0)
        return h

    monkeypatch.setattr(milp, "_new_highs", stopped)
    res = solve_milp(m, "highs", MilpLimits(time_limit_s=None))
    assert len(made) == 2 and made[1].getInfo().primal_solution_status != 2
    assert res.how == "lp-dive" and res.status is not None and m.feasible(res.values)
    assert res.objective == pytest.approx(14.1)  # a=2, c=1 again


def test_one_cbc_thread_runs_cbc_serial_code():
    # `-threads 1` starts CBC's threaded search, which stalled ~10 s on the knapsack above
    # in about 1 of 550 runs; one thread must therefore pass no threads option at all.
    from lokirl.core.milp import cbc_threads

    assert cbc_threads(1) is None and cbc_threads(None) is None
    assert cbc_threads(4) == 4
