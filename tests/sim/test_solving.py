"""solve_decision's memo: keyed by the running plan whenever the solve depends on it."""

import pytest

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import Decision
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.sim import SimConfig
from lokirl.sim.solving import running_plan_signature, solve_decision


@pytest.fixture(scope="module")
def example():
    p = load_pipeline("configs/pipelines/example.yaml")
    c = Cluster.homogeneous(p, 6)
    cold = AllocatorOptions(warm_start=False)
    return p, c, solve(p, c, 300.0, cold), solve(p, c, 400.0, cold)


def test_signature_ignores_solve_metadata(example):
    _, _, a, b = example
    warm, churn = AllocatorOptions(warm_start=True), AllocatorOptions(churn_weight=1.0)
    assert running_plan_signature(None, warm) is None
    assert running_plan_signature(a, AllocatorOptions(warm_start=False)) is None
    assert running_plan_signature(a, warm) != running_plan_signature(b, warm)
    from dataclasses import replace

    again = replace(a, solve_time_s=a.solve_time_s + 1.0, message="other")
    assert running_plan_signature(again, churn) == running_plan_signature(a, churn)
    hash(running_plan_signature(a, churn))


def test_cold_churn_solves_are_not_shared_between_running_plans(example):
    p, c, a, b = example
    cfg = SimConfig(allocator=AllocatorOptions(warm_start=False))
    d = Decision(resolve=True, demand=300.0, warm_start=False, churn_weight=5.0)
    memo: dict = {}
    from_a = solve_decision(p, c, cfg, d, a, plan_cache=memo).plan
    from_b = solve_decision(p, c, cfg, d, b, plan_cache=memo).plan
    assert len(memo) == 2
    assert from_a.replicas_by_accelerator() == a.replicas_by_accelerator()
    assert from_b.replicas_by_accelerator() == b.replicas_by_accelerator()
    plain = Decision(resolve=True, demand=300.0, warm_start=False, churn_weight=0.0)
    solve_decision(p, c, cfg, plain, a, plan_cache=memo)
    solve_decision(p, c, cfg, plain, b, plan_cache=memo)
    assert len(memo) == 3  # without churn the running plan does not matter


def test_a_shared_memo_keeps_each_cluster_its_own_plans(example):
    """A memo shared across runs on two cluster sizes never hands one size's plan to the other."""
    p, c, _, _ = example
    big = Cluster.homogeneous(p, 12)
    cfg = SimConfig(allocator=AllocatorOptions(warm_start=False))
    d = Decision(resolve=True, demand=300.0, warm_start=False, churn_weight=0.0)
    memo: dict = {}
    small_plan = solve_decision(p, c, cfg, d, None, plan_cache=memo).plan
    big_plan = solve_decision(p, big, cfg, d, None, plan_cache=memo).plan
    assert len(memo) == 2
    # 300 frames/s take 8 workers when 12 are there: the 6-worker plan would not do
    assert small_plan.active_workers <= c.total < big_plan.active_workers


def test_a_planner_cache_does_not_merge_decisions_that_name_different_plans():
    """Two decisions whose demands round alike but name different plans get their own."""
    from lokirl.core.controller import Decision
    from lokirl.core.pipeline import Cluster
    from lokirl.sim.config import SimConfig
    from lokirl.sim.solving import solve_decision

    from .conftest import make_plan, tiny_pipeline

    pipe = tiny_pipeline()
    plans = {
        "a": make_plan(pipe, [("d1", 1, 1), ("c1", 1, 1)]),
        "b": make_plan(pipe, [("d2", 1, 2), ("c1", 1, 2)]),
    }

    class ByReason:
        def plan(self, pipeline, cluster, decision, options, current):
            return plans[decision.reason]

    cache: dict = {}
    cfg = SimConfig(demand_quantum=25.0)
    planner = ByReason()
    got = [
        solve_decision(
            pipe, Cluster({"gpu": 4}), cfg, Decision(True, d, False, 0.0, r), None, planner, cache
        ).plan
        for d, r in ((101.0, "a"), (104.0, "b"), (110.0, "a"))
    ]
    assert got[0] is plans["a"] and got[1] is plans["b"] and got[2] is plans["a"]
    assert len(cache) == 2
