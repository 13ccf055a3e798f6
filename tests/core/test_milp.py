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
    assert res.objective == pytest.approx(3.0) and res.how == "best-first"
    res = solve_milp(m, "highs", MilpLimits(time_limit_s=None, search_nodes=0))
    assert res.objective == pytest.approx(3.0) and res.how == "branch-and-bound"


def random_milp(seed: int) -> MilpModel:
    # max c.x + d.y over integer x and continuous y, a few knapsack rows coupling them.
    rng = np.random.default_rng(seed)
    m = MilpModel(maximize=bool(seed % 2))
    nx, ny = 6, 4
    xs = [
        m.add_col(0, 6, float(rng.uniform(1, 9)), integer=True, priority=k % 2) for k in range(nx)
    ]
    ys = [m.add_col(0, 3, float(rng.uniform(0.5, 4))) for _ in range(ny)]
    if not m.maximize:  # a covering problem
        m.cost = [-c for c in m.cost]
        m.cost = [abs(c) for c in m.cost]
        for _ in range(3):
            w = rng.uniform(0.5, 5, nx + ny)
            m.add_row(float(rng.uniform(8, 20)), math.inf, xs + ys, list(w))
    else:
        for _ in range(3):
            w = rng.uniform(0.5, 5, nx + ny)
            m.add_row(-math.inf, float(rng.uniform(8, 20)), xs + ys, list(w))
    return m


@pytest.mark.parametrize("seed", range(12))
def test_best_first_search_reaches_the_optimum_highs_proves(seed):
    m = random_milp(seed)
    ours = solve_milp(m, "highs", MilpLimits(time_limit_s=None, gap_rel=1e-6))
    ref = solve_milp(m, "highs", MilpLimits(time_limit_s=None, gap_rel=1e-6, search_nodes=0))
    assert ours.status == ref.status == "optimal"
    assert m.feasible(ours.values)
    assert ours.objective == pytest.approx(ref.objective, rel=1e-5)
    # The bound it reports holds on the optimum's side.
    if m.maximize:
        assert ours.bound >= ref.objective - 1e-6
    else:
        assert ours.bound <= ref.objective + 1e-6


def test_best_first_search_is_repeatable_and_hands_over_at_its_node_budget():
    m = random_milp(4)
    limits = MilpLimits(time_limit_s=None, gap_rel=1e-6)
    a, b = solve_milp(m, "highs", limits), solve_milp(m, "highs", limits)
    assert a.how == "best-first" and np.array_equal(a.values, b.values)
    # One node of our search: HiGHS's branch and bound finishes from its incumbent.
    one = solve_milp(m, "highs", MilpLimits(time_limit_s=None, gap_rel=1e-6, search_nodes=1))
    assert one.how == "branch-and-bound" and one.status == "optimal"
    assert one.objective == pytest.approx(a.objective, rel=1e-5)
    # A node limit that the search spends: the best it has, marked by what it proved.
    capped = solve_milp(m, "highs", MilpLimits(time_limit_s=None, gap_rel=1e-6, max_nodes=1))
    assert capped.how in ("best-first", "lp-dive") and m.feasible(capped.values)
    assert capped.status in ("optimal", "feasible")


def test_a_node_stopped_by_the_clock_leaves_the_search_unproven():
    # A node LP that ends without an answer (e.g. HiGHS's time limit) is not infeasible:
    # the search must stop unproven, with a bound that still holds.
    import highspy

    import lokirl.core.milp as milp

    m = random_milp(4)
    ref = solve_milp(m, "highs", MilpLimits(time_limit_s=None, gap_rel=1e-6, search_nodes=0))
    h = milp._new_highs(MilpLimits(), None)
    h.passModel(milp._highs_lp(m, with_integrality=False))
    h.run()
    real, calls = h.getModelStatus, []

    def status():
        calls.append(1)
        return real() if len(calls) <= 2 else highspy.HighsModelStatus.kTimeLimit

    h.getModelStatus = status
    found = milp._best_first(h, m, None, 1e-6, 100, None)
    assert len(calls) > 2 and not found.proven
    if m.maximize:
        assert found.bound >= ref.objective - 1e-6
    else:
        assert found.bound <= ref.objective + 1e-6


def test_tiers_put_lower_priorities_first_and_unprioritised_integers_last():
    m = MilpModel()
    a = m.add_col(0, 1, integer=True, priority=2)
    b = m.add_col(0, 1, integer=True)
    c = m.add_col(0, 1, integer=True, priority=0)
    m.add_col(0, 1)  # continuous: in no tier
    assert m.tiers() == [[c], [a], [b]]


def test_the_dive_is_the_fallback_when_branch_and_bound_stops_with_nothing(monkeypatch):
    import lokirl.core.milp as milp

    m = knapsack()
    m.cost = [5.5, 4.25, 3.1]  # not whole numbers: no dive before branch and bound
    hand_over = MilpLimits(time_limit_s=None, search_nodes=0)  # HiGHS's from the start
    assert solve_milp(m, "highs", hand_over).how == "branch-and-bound"
    made = []
    real = milp._new_highs

    def stopped(limits, deadline):
        h = real(limits, deadline)
        made.append(h)
        if len(made) == 2:  # the branch-and-bound instance stops before any solution
            h.setOptionValue("time_limit", 0.0)
        return h

    monkeypatch.setattr(milp, "_new_highs", stopped)
    res = solve_milp(m, "highs", hand_over)
    assert len(made) == 2 and made[1].getInfo().primal_solution_status != 2
    assert res.how == "lp-dive" and res.status is not None and m.feasible(res.values)
    assert res.objective == pytest.approx(14.1)  # a=2, c=1 again


def test_one_cbc_thread_runs_cbc_serial_code():
    # `-threads 1` starts CBC's threaded search, which stalled ~10 s on the knapsack above
    # in about 1 of 550 runs; one thread must therefore pass no threads option at all.
    from lokirl.core.milp import cbc_threads

    assert cbc_threads(1) is None and cbc_threads(None) is None
    assert cbc_threads(4) == 4
