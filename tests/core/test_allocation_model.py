"""The tight model (compact flows, aggregate columns, pruning) against the reference."""

import json

import numpy as np
import pytest

import lokirl.core.allocator as allocator
from lokirl.core.allocation_model import build_model, lp_max_share, max_servable, structure
from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.milp import MilpLimits, MilpResult, solve_milp
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline

from .test_allocator import check_plan

DET = AllocatorOptions(deterministic=True)
REF = AllocatorOptions(formulation="reference", solver="highs", deterministic=True)


@pytest.mark.parametrize(
    ("name", "workers", "demands"),
    [
        ("traffic_analysis", {"gpu": 8}, [30.0, 400.0]),
        ("social_media", {"gpu": 10}, [20.0, 100.0, 300.0, 2000.0]),
        ("detect_classify_hetero", {"pascal": 2, "cpu": 3}, [10.0, 30.0, 60.0]),
    ],
)
def test_tight_model_reaches_the_reference_optimum(name, workers, demands):
    pipe = load_pipeline(name)
    cluster = Cluster(workers)
    for d in demands:
        fast = solve(pipe, cluster, d, DET)
        ref = solve(pipe, cluster, d, REF)
        assert fast.status == ref.status == "optimal", (name, d)
        assert fast.phase == ref.phase, (name, d)
        assert fast.objective == pytest.approx(ref.objective, rel=1e-3), (name, d)
        check_plan(fast, pipe, cluster)


def test_tiny_pipeline_matches_reference(tiny):
    cluster = Cluster({"gpu": 4})
    for d in (50.0, 300.0, 500.0):
        fast, ref = solve(tiny, cluster, d, DET), solve(tiny, cluster, d, REF)
        assert (fast.phase, fast.replicas()) == (ref.phase, ref.replicas())
        assert fast.objective == pytest.approx(ref.objective, rel=1e-6)


def test_compact_and_chain_layouts_have_the_same_optimum(traffic):
    cluster = Cluster.homogeneous(traffic, 10)
    st = structure(traffic, cluster, DET, best_only=False)
    limits = MilpLimits(time_limit_s=None, max_nodes=5000)
    compact, cc = build_model(st, cluster, 300.0, DET, "accuracy", None, compact=True)
    chain, _ = build_model(st, cluster, 300.0, DET, "accuracy", None, compact=False)
    assert compact.num_cols < chain.num_cols / 2  # the point of the compact layout
    a, b = solve_milp(compact, "highs", limits), solve_milp(chain, "highs", limits)
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, rel=1e-3)
    # decoded chain flows conserve: every root chain's share reaches each child task
    flows = cc.flows.decode(a.values)
    for q in st.root_chains[traffic.roots[0]]:
        for kids in st.chains[q].children.values():
            assert sum(flows.get(k, 0.0) for k in kids) == pytest.approx(flows[q], abs=1e-6)


def test_capacity_bound_is_cached_and_linear_in_demand(traffic):
    cluster = Cluster.homogeneous(traffic, 20)
    st = structure(traffic, cluster, DET, best_only=False)
    assert structure(traffic, cluster, DET, best_only=False) is st
    k = max_servable(st, cluster)
    assert k > 1000  # 20 workers carry over 1,000 frames/s at some accuracy
    assert lp_max_share(st, cluster, k / 2) == 1.0
    assert lp_max_share(st, cluster, 2 * k) == pytest.approx(0.5)


def test_pruning_keeps_the_optimum_and_drops_dominated_configs(traffic):
    cluster = Cluster.homogeneous(traffic, 20)
    pruned = structure(traffic, cluster, DET, best_only=False)
    # a churn term turns pruning off (it cares which variant a worker holds)
    full = structure(traffic, cluster, AllocatorOptions(churn_weight=0.1), best_only=False)
    assert len(pruned.configs) == len(full.configs)
    assert sum(map(len, pruned.by_task.values())) < sum(map(len, full.by_task.values()))


def test_impossible_demand_on_traffic_analysis_is_partial(traffic):
    cluster = Cluster.homogeneous(traffic, 20)
    plan = solve(traffic, cluster, 20_000.0, DET)
    assert plan.phase == "partial" and plan.status == "optimal"
    assert 0 < plan.served_share < 0.2
    check_plan(plan, traffic, cluster)


def test_a_running_plan_the_model_cannot_hold_falls_back_to_a_cold_solve(traffic, tiny):
    cluster = Cluster.homogeneous(traffic, 20)
    alien = solve(tiny, Cluster({"gpu": 4}), 300.0)  # groups of another pipeline
    cold = solve(traffic, cluster, 500.0, DET)
    warm = solve(traffic, cluster, 500.0, DET, current=alien)
    assert warm.status in ("optimal", "feasible")
    assert warm.objective == pytest.approx(cold.objective, rel=1e-3)
    check_plan(warm, traffic, cluster)


def test_a_failed_solve_leaves_the_running_plan(traffic, monkeypatch):
    cluster = Cluster.homogeneous(traffic, 20)
    running = solve(traffic, cluster, 300.0, DET)
    monkeypatch.setattr(
        allocator, "solve_milp", lambda *a, **k: MilpResult(None, np.zeros(0), float("nan"))
    )
    plan = solve(traffic, cluster, 600.0, DET, current=running)
    assert plan.status == "failed" and plan.groups == running.groups
    assert "stays in force" in plan.message


def test_deterministic_solves_are_identical(traffic):
    cluster = Cluster.homogeneous(traffic, 20)
    plans = [solve(traffic, cluster, 850.0, DET) for _ in range(2)]
    strip = [{k: v for k, v in p.to_dict().items() if k != "solve_time_s"} for p in plans]
    assert json.dumps(strip[0], sort_keys=True) == json.dumps(strip[1], sort_keys=True)
    assert plans[0].status == "optimal"


@pytest.mark.parametrize("workers", [20, 100])
def test_best_first_search_matches_highs_branch_and_bound(traffic, workers):
    # lokirl's search (the default) against HiGHS's own branch and bound on the same
    # model, over the saturated range where the LP bound is loose (0.5-3%).
    cluster = Cluster.homogeneous(traffic, workers)
    highs_only = AllocatorOptions(deterministic=True, search_nodes=0)
    scale = workers / 20
    for d in (260.0, 480.0, 735.0, 940.0):
        ours = solve(traffic, cluster, d * scale, DET)
        ref = solve(traffic, cluster, d * scale, highs_only)
        assert ours.status == ref.status == "optimal", d
        assert ours.phase == ref.phase, d
        assert ours.objective == pytest.approx(ref.objective, rel=1e-3), d
        check_plan(ours, traffic, cluster)


def test_warm_solves_are_proven_on_every_variant_unless_a_neighbourhood_is_asked(traffic):
    cluster = Cluster.homogeneous(traffic, 20)
    running = solve(traffic, cluster, 700.0, DET)
    cold = solve(traffic, cluster, 735.0, DET)
    warm = solve(traffic, cluster, 735.0, DET, current=running)
    assert warm.status == "optimal"
    assert warm.objective == pytest.approx(cold.objective, rel=1e-3)
    near = AllocatorOptions(deterministic=True, warm_neighbourhood=1)
    local = solve(traffic, cluster, 735.0, near, current=running)
    assert local.status == "feasible"  # optimal only among the running plan's neighbours
    assert local.objective <= cold.objective * (1 + 1e-3)
    allowed = allocator._neighbourhood(traffic, running, 1)
    assert set(local.replicas()) <= allowed
    check_plan(local, traffic, cluster)
