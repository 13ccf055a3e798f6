"""Handing the cluster over to a new plan: the pure rules both engines apply."""

import pytest

from lokirl.core.handover import QueueMove, WorkerHolding, assign_workers, old_queue_moves
from lokirl.core.plan import Plan, WorkerGroup


def _plan(*groups: tuple[str, int] | tuple[str, int, str]) -> Plan:
    out = []
    for spec in groups:
        variant, replicas = spec[0], spec[1]
        accel = spec[2] if len(spec) > 2 else "gpu"
        out.append(WorkerGroup("t", variant, accel, 1, replicas, 1.0, 100.0, 1.0, 0.0))
    return Plan("p", 10.0, tuple(out), max_demand=10.0, workers={})


def _w(variant=None, in_plan=False, loading=False, accel="gpu") -> WorkerHolding:
    return WorkerHolding(accel, variant, in_plan, loading)


def test_holders_keep_their_variant_and_the_rest_go_to_workers_left_over_first():
    plan = _plan(("a", 2), ("b", 1))
    workers = [_w("b", in_plan=True), _w("a", in_plan=True), _w(), _w("c", in_plan=False)]
    # w1 keeps a; w0 keeps b; a's second replica goes to the first worker the running
    # plan does not use (w2, empty), not to w3 or a worker in the plan.
    assert assign_workers(plan, workers) == (1, 0, 0, None)


def test_workers_out_of_the_plan_are_taken_in_worker_order_empty_or_not():
    plan = _plan(("a", 1))
    # w0 holds another variant and is out of the plan, w1 is empty: worker order decides.
    assert assign_workers(plan, [_w("c"), _w()]) == (0, None)
    # A worker the running plan uses is taken last.
    assert assign_workers(plan, [_w("c", in_plan=True), _w("d")]) == (None, 0)


def test_among_holders_in_plan_then_loaded_then_worker_order():
    plan = _plan(("a", 1))
    assert assign_workers(plan, [_w("a"), _w("a", in_plan=True)]) == (None, 0)
    assert assign_workers(plan, [_w("a", True, loading=True), _w("a", True)]) == (None, 0)
    assert assign_workers(plan, [_w("a", True), _w("a", True)]) == (0, None)


def test_slots_follow_the_plan_groups_and_the_accelerator():
    plan = _plan(("a", 1), ("a", 1), ("b", 1, "cpu"))
    workers = [_w(accel="cpu"), _w("a"), _w("a")]
    assert assign_workers(plan, workers) == (2, 0, 1)
    # More replicas than workers of that accelerator: the rest stay unfilled.
    assert assign_workers(_plan(("b", 3, "cpu")), workers) == (0, None, None)


def test_old_queues_go_to_the_new_group_the_interim_group_a_drainer_or_the_router():
    old = [("a", "gpu"), ("b", "gpu"), ("b", "gpu"), ("c", "gpu"), ("d", "gpu")]
    new = [("x", "gpu"), ("a", "gpu"), ("a", "gpu")]
    moves = old_queue_moves(old, new, {("b", "gpu")}, [False, True, False, True, False])
    assert moves == (
        QueueMove("group", 1),  # the first new group of its variant
        QueueMove("interim"),  # overlap workers keep serving b: the group stays
        QueueMove("join", 1),  # a second old b group joins that interim group
        QueueMove("drain"),  # a worker left out drains it
        QueueMove("reroute"),  # nobody serves d any more
    )
    # A variant on another accelerator is another group.
    assert old_queue_moves([("a", "cpu")], new, set(), [False]) == (QueueMove("reroute"),)
    with pytest.raises(ValueError, match="differ"):
        old_queue_moves(old, new, set(), [False])
