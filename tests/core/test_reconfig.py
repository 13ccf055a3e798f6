"""Swap decisions and the serving view the router is built from (lokirl.core.reconfig)."""

import pytest

from lokirl.core.pipeline import Pipeline, Task, Variant
from lokirl.core.plan import Plan, WorkerGroup
from lokirl.core.reconfig import (
    SWAP_MODES,
    WorkerServing,
    check_swap_mode,
    drains_on_removal,
    plan_swap,
    serving_table,
    serving_view,
    swap_help,
)
from lokirl.core.router import DROP


def _with_memory(d_big: float, d_small: float, gpu: float = 1000.0) -> Pipeline:
    """detect -> classify with the detectors' memory and load times given."""
    big = Variant("d_big", "detect", 100.0, {"gpu": {1: 10.0}}, 2.0, {"classify": 1.0}, d_big)
    small = Variant("d_small", "detect", 50.0, {"gpu": {1: 5.0}}, 0.5, {"classify": 1.0}, d_small)
    cls = Variant("c_big", "classify", 100.0, {"gpu": {1: 10.0}}, 1.0)
    return Pipeline(
        "tiny",
        (Task("detect", (big, small), ("classify",)), Task("classify", (cls,))),
        slo_ms=100.0,
        accelerator_memory_mb={"gpu": gpu},
    )


def group(task, variant, replicas, thr, acc, lat=10.0):
    return WorkerGroup(task, variant, "gpu", 1, replicas, lat, thr, acc)


def test_modes_and_help():
    assert SWAP_MODES == ("overlap", "stop", "free")
    assert all(m in swap_help() for m in SWAP_MODES)
    with pytest.raises(ValueError, match="swap mode"):
        check_swap_mode("instant")
    assert drains_on_removal("free") and drains_on_removal("overlap")
    assert not drains_on_removal("stop")


def test_overlap_keeps_old_variant_serving_when_both_fit():
    p = _with_memory(400.0, 300.0)
    s = plan_swap(p, "gpu", "d_big", "d_small", "overlap")
    assert (s.mode, s.ready_s, s.old_serves, s.fits) == ("overlap", 0.5, True, True)


def test_overlap_falls_back_to_stop_when_they_do_not_fit():
    p = _with_memory(700.0, 400.0)
    s = plan_swap(p, "gpu", "d_big", "d_small", "overlap")
    assert (s.mode, s.ready_s, s.old_serves, s.fits) == ("stop", 0.5, False, False)


def test_overlap_with_unknown_memory_assumes_it_fits(tiny):
    s = plan_swap(tiny, "gpu", "d_big", "d_small", "overlap")
    assert s.fits is None and s.old_serves and s.mode == "overlap"


def test_stop_free_and_no_swap(tiny):
    load = tiny.variant("d_small").load_time_s
    assert plan_swap(tiny, "gpu", "d_big", "d_small", "stop").ready_s == load
    assert not plan_swap(tiny, "gpu", "d_big", "d_small", "stop").old_serves
    free = plan_swap(tiny, "gpu", "d_big", "d_small", "free")
    assert (free.mode, free.ready_s) == ("free", 0.0)
    same = plan_swap(tiny, "gpu", "d_big", "d_big", "stop")
    assert same.ready_s == 0.0 and same.old_serves
    # nothing loaded yet: nothing to keep serving
    cold = plan_swap(tiny, "gpu", None, "d_small", "overlap")
    assert cold.mode == "stop" and not cold.old_serves
    assert plan_swap(tiny, "gpu", "d_big", "d_small", "stop", load_time_s=3.0).ready_s == 3.0


def _plan():
    # ids: 0 d_small (1 replica), 1 c_big (1 replica)
    return Plan(
        "tiny",
        100.0,
        (
            group("detect", "d_small", 1, 200.0, 50.0, lat=5.0),
            group("classify", "c_big", 1, 200.0, 100.0),
        ),
    )


def test_loading_group_gets_no_traffic_under_stop(tiny):
    plan = _plan()
    view = serving_view(
        plan,
        [WorkerServing("gpu", 0, ready=False), WorkerServing("gpu", 1, ready=True)],
    )
    assert view.serving == (None, 1)
    assert [g.replicas for g in view.plan.groups] == [0, 1]
    table = serving_table(view, tiny, demand=100.0)
    assert table.probabilities("detect", None) == {DROP: pytest.approx(1.0)}
    assert table.drop_share["detect"] == pytest.approx(1.0)


def test_overlap_worker_counts_for_its_old_variant_until_ready(tiny):
    plan = _plan()
    old = group("detect", "d_big", 1, 100.0, 100.0)
    workers = [WorkerServing("gpu", 0, ready=False, old=old), WorkerServing("gpu", 1, ready=True)]
    view = serving_view(plan, workers)
    assert view.n_plan == 2 and view.serving == (2, 1)
    assert [g.variant for g in view.interim] == ["d_big"]
    assert view.interim[0].replicas == 1 and view.plan.groups[0].replicas == 0
    table = serving_table(view, tiny, demand=80.0)
    # all root traffic goes to the old variant's interim group, none to the loading one
    assert table.probabilities("detect", None) == {2: pytest.approx(1.0)}
    assert table.probabilities("classify", 2) == {1: pytest.approx(1.0)}
    # once ready the worker counts for its new group and the interim group is gone
    ready = serving_view(plan, [WorkerServing("gpu", 0, True, old), workers[1]])
    assert ready.serving == (0, 1) and ready.interim == ()
    assert serving_table(ready, tiny, demand=80.0).probabilities("detect", None) == {
        0: pytest.approx(1.0)
    }


def test_overlap_worker_joins_a_plan_group_of_its_old_variant(tiny):
    plan = Plan(
        "tiny",
        100.0,
        (
            group("detect", "d_big", 2, 100.0, 100.0),
            group("classify", "c_big", 1, 200.0, 100.0),
        ),
    )
    old_c = group("classify", "c_big", 1, 200.0, 100.0)
    # worker 2 moves classify -> detect (loading), still serving c_big meanwhile
    view = serving_view(
        plan,
        [
            WorkerServing("gpu", 0, True),
            WorkerServing("gpu", 0, False, old=old_c),
            WorkerServing("gpu", 1, True),
        ],
    )
    assert view.serving == (0, 1, 1)
    assert [g.replicas for g in view.plan.groups] == [1, 2]
    assert view.interim == ()


def test_downstream_latency_ignores_groups_that_do_not_serve(tiny):
    plan = Plan(
        "tiny",
        10.0,
        (
            group("detect", "d_big", 1, 100.0, 100.0),
            group("classify", "c_small", 1, 200.0, 80.0, lat=5.0),
            group("classify", "c_big", 1, 100.0, 100.0),
        ),
    )
    loading = serving_view(
        plan,
        [
            WorkerServing("gpu", 0, True),
            WorkerServing("gpu", 1, False),
            WorkerServing("gpu", 2, True),
        ],
    )
    both = serving_view(
        plan,
        [
            WorkerServing("gpu", 0, True),
            WorkerServing("gpu", 1, True),
            WorkerServing("gpu", 2, True),
        ],
    )
    # only c_big (10 ms) serves: the least latency below the detector is 10 ms, not 5 ms
    assert serving_table(loading, tiny).downstream_ms[0] == pytest.approx(10.0)
    assert serving_table(both, tiny).downstream_ms[0] == pytest.approx(5.0)
