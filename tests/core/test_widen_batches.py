"""Widening a solved plan's batch sizes: same objective and workers, more capacity."""

from __future__ import annotations

import pytest

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline


def _by_variant(plan):
    out: dict[str, int] = {}
    for g in plan.groups:
        out[g.variant] = out.get(g.variant, 0) + g.replicas
    return out


@pytest.mark.parametrize("solver", ["highs", "cbc"])
@pytest.mark.parametrize("demand", [20.0, 45.0, 90.0, 150.0, 400.0])
def test_widened_plan_keeps_objective_and_workers_and_gains_capacity(solver, demand):
    p = load_pipeline("traffic_analysis")
    cluster = Cluster({"gpu": 20})
    base = AllocatorOptions(solver=solver, deterministic=True, widen_batches=False)
    raw = solve(p, cluster, demand, base)
    wide = solve(p, cluster, demand, AllocatorOptions(solver=solver, deterministic=True))
    assert wide.status == raw.status and wide.phase == raw.phase
    assert wide.objective == pytest.approx(raw.objective)
    assert wide.expected_accuracy == pytest.approx(raw.expected_accuracy)
    assert _by_variant(wide) == _by_variant(raw)
    assert wide.max_demand >= raw.max_demand - 1e-9
    budget = 0.5 * p.slo_ms
    lat = {g.key: g.latency_ms for g in wide.groups}
    for path in wide.paths:
        assert all(k in lat for k in path.groups)
        assert sum(lat[k] for k in path.groups) <= budget + 1e-9


def test_a_batch_one_group_is_widened_when_its_paths_allow():
    # 44 frames/s on traffic_analysis at 20 workers: HiGHS's own optimum puts one
    # efficientnet-b6 worker at batch 1 beside five at 16 (same worker count as 6 at 16).
    from lokirl.runtime.emulated import dilate_pipeline

    p = dilate_pipeline(load_pipeline("traffic_analysis"), 2.0)
    cluster = Cluster({p.accelerators[0]: 20})
    raw = solve(p, cluster, 44.0, AllocatorOptions(deterministic=True, widen_batches=False))
    wide = solve(p, cluster, 44.0, AllocatorOptions(deterministic=True))
    assert ("efficientnet-b6", 1) in {(g.variant, g.batch_size) for g in raw.groups}
    assert {(g.variant, g.batch_size) for g in wide.groups if g.task == "car_classification"} == {
        ("efficientnet-b6", 16)
    }
    assert sum(g.replicas for g in wide.groups) == sum(g.replicas for g in raw.groups)
    assert wide.max_demand > raw.max_demand
