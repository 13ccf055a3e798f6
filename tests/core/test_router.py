import numpy as np
import pytest

from lokirl.core.allocator import solve
from lokirl.core.pipeline import Cluster
from lokirl.core.plan import Plan, WorkerGroup
from lokirl.core.router import DROP, BranchingEstimator, build_routing_table, should_drop_early


def group(task, variant, replicas, thr, acc, lat=10.0, accel="gpu", batch=1):
    return WorkerGroup(task, variant, accel, batch, replicas, lat, thr, acc)


def two_stage_plan(demand=100.0):
    return Plan(
        pipeline="tiny",
        demand=demand,
        groups=(
            group("detect", "d_small", 1, 200.0, 50.0, lat=5.0),
            group("detect", "d_big", 1, 100.0, 100.0),
            group("classify", "c_big", 1, 100.0, 100.0),
            group("classify", "c_small", 1, 200.0, 80.0, lat=5.0),
        ),
    )


def test_maf_fills_most_accurate_first(tiny):
    table = build_routing_table(two_stage_plan(), tiny, demand=150.0, target_utilisation=1.0)
    # ids: 0 d_small, 1 d_big, 2 c_big, 3 c_small
    root = table.probabilities("detect", None)
    assert root == pytest.approx({1: 100 / 150, 0: 50 / 150})
    assert table.expected_load[1] == pytest.approx(100.0)
    assert table.expected_load[0] == pytest.approx(50.0)
    # the big detector's output (100/s, branching 1) goes to the big classifier first
    assert table.probabilities("classify", 1) == pytest.approx({2: 1.0})
    # the small detector's output finds the big classifier full and overflows to c_small
    assert table.probabilities("classify", 0) == pytest.approx({3: 1.0})
    assert table.drop_share["detect"] == 0.0


def test_groups_first_filled_to_target_utilisation(tiny):
    # 150/s: the big detector takes 85% of its 100/s, the small one the rest
    table = build_routing_table(two_stage_plan(), tiny, demand=150.0, target_utilisation=0.85)
    assert table.probabilities("detect", None) == pytest.approx({1: 85 / 150, 0: 65 / 150})
    # 280/s is above 85% of the 300/s capacity: both tiers then fill towards 100%
    table = build_routing_table(two_stage_plan(), tiny, demand=280.0, target_utilisation=0.85)
    assert table.expected_load[1] == pytest.approx(100.0)
    assert table.expected_load[0] == pytest.approx(180.0)
    with pytest.raises(ValueError):
        build_routing_table(two_stage_plan(), tiny, target_utilisation=0.0)


def test_groups_of_one_variant_share_load_by_capacity(tiny):
    plan = Plan(
        pipeline="tiny",
        demand=60.0,
        groups=(
            group("detect", "d_big", 1, 30.0, 100.0, lat=10.0, batch=1),
            group("detect", "d_big", 2, 60.0, 100.0, lat=20.0, batch=2),
            group("classify", "c_big", 1, 100.0, 100.0),
        ),
    )
    table = build_routing_table(plan, tiny, demand=60.0)
    # same variant: loads in proportion to capacity (30 : 120), none filled to 100%
    assert table.expected_load[0] == pytest.approx(12.0)
    assert table.expected_load[1] == pytest.approx(48.0)


def test_overflow_at_root_is_dropped(tiny):
    table = build_routing_table(two_stage_plan(), tiny, demand=400.0)
    root = table.probabilities("detect", None)
    assert root[DROP] == pytest.approx(100 / 400)
    assert table.drop_share["detect"] == pytest.approx(0.25)


def test_branching_estimates_change_downstream_load(tiny):
    t1 = build_routing_table(two_stage_plan(), tiny, demand=100.0)
    t2 = build_routing_table(
        two_stage_plan(), tiny, demand=100.0, branching={"d_big": {"classify": 1.5}}
    )
    # 100/s to d_big; with branching 1.5 it emits 150/s: 100 to c_big, 50 overflow to c_small
    assert t1.probabilities("classify", 1) == pytest.approx({2: 1.0})
    assert t2.probabilities("classify", 1) == pytest.approx({2: 100 / 150, 3: 50 / 150})


def test_next_hop_sampling_matches_probabilities(tiny):
    table = build_routing_table(two_stage_plan(), tiny, demand=150.0, target_utilisation=1.0)
    rng = np.random.default_rng(0)
    hops = [table.next_hop("detect", None, u) for u in rng.random(20000)]
    share_big = hops.count(1) / len(hops)
    assert share_big == pytest.approx(2 / 3, abs=0.02)
    assert set(hops) == {0, 1}


def test_latency_budget_steers_slow_parents_to_fast_children(tiny):
    # d_slow takes 45 ms, so with a 50 ms budget only the 5 ms classifier keeps the path inside it
    plan = Plan(
        pipeline="tiny",
        demand=50.0,
        groups=(
            group("detect", "d_big", 1, 100.0, 100.0, lat=45.0),
            group("classify", "c_big", 1, 100.0, 100.0, lat=10.0),
            group("classify", "c_small", 1, 200.0, 80.0, lat=5.0),
        ),
    )
    table = build_routing_table(plan, tiny, demand=50.0)
    assert table.probabilities("classify", 0) == pytest.approx({2: 1.0})


def test_tables_from_real_plan_cover_every_group(traffic):
    cluster = Cluster.homogeneous(traffic, 20)
    plan = solve(traffic, cluster, 400.0)
    table = build_routing_table(plan, traffic)
    for gid, g in enumerate(plan.groups):
        # no group receives more than its capacity at the planned demand
        assert table.expected_load[gid] <= g.capacity * (1 + 1e-6)
        if g.task != "object_detection":
            assert ("car_classification", gid) not in table.targets
    for key, cum in table.cumulative.items():
        assert cum[-1] == 1.0 and list(cum) == sorted(cum), key
    # a frame routed anywhere at the root never hits a DROP when demand is within capacity
    assert DROP not in table.targets[("object_detection", None)]


def test_early_drop_rule():
    assert not should_drop_early(now_ms=100, deadline_ms=250, service_ms=50, downstream_ms=90)
    assert should_drop_early(now_ms=100, deadline_ms=250, service_ms=50, downstream_ms=101)
    assert should_drop_early(now_ms=260, deadline_ms=250, service_ms=0, downstream_ms=0)


def test_branching_estimator_mean_of_last_window(tiny):
    est = BranchingEstimator(tiny, window=50)
    assert est.mean("d_big", "classify") == 1.0  # the profile's value before observations
    for _ in range(50):
        est.observe("d_big", "classify", 10)
    for _ in range(25):
        est.observe("d_big", "classify", 0)
    assert est.mean("d_big", "classify") == pytest.approx(5.0)  # 25 tens and 25 zeros
    assert est.snapshot()["d_big"] == {"classify": pytest.approx(5.0)}
    assert est.snapshot()["d_small"] == {"classify": 1.0}
    with pytest.raises(ValueError):
        BranchingEstimator(tiny, window=0)
