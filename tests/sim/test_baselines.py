import pytest

import lokirl.sim  # noqa: F401
from lokirl.core.allocator import AllocatorOptions
from lokirl.core.controller import ControlContext, Controller, Decision
from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline


@pytest.fixture(scope="module")
def traffic():
    return load_pipeline("traffic_analysis"), Cluster({"gpu": 20})


@pytest.mark.parametrize(
    "name", ["loki", "loki-b1.2", "inferline", "proteus", "static", "loki-h1.2", "inferline-h1.5"]
)
def test_registered_and_protocol(name):
    c = make_controller(name)
    assert isinstance(c, Controller) and c.name == name


def test_inferline_uses_only_best_variants_and_drops_past_capacity(traffic):
    p, c = traffic
    plan = make_controller("inferline").plan(p, c, Decision(True, 600.0), AllocatorOptions(), None)
    best = {t.best.name for t in p.tasks}
    assert {g.variant for g in plan.groups} <= best
    assert plan.phase == "partial" and plan.max_demand < 600


def test_proteus_scales_accuracy_per_task(traffic):
    p, c = traffic
    plan = make_controller("proteus").plan(p, c, Decision(True, 400.0), AllocatorOptions(), None)
    assert {g.task for g in plan.groups} == {t.name for t in p.tasks}
    assert plan.active_workers <= 20
    assert any(g.variant != p.task(g.task).best.name for g in plan.groups)


def test_static_provisions_the_whole_cluster_once(traffic):
    p, c = traffic
    s = make_controller("static")
    assert s.decide(ControlContext(0.0, (10.0,))).resolve
    plan = s.plan(p, c, Decision(True, 0.0), AllocatorOptions(), None)
    assert plan.active_workers == 20
    assert not s.decide(ControlContext(5.0, (10.0,), plan=plan)).resolve


def test_loki_is_the_authors_controller_and_loki_ns_is_lokirls():
    from lokirl.core.controller import PeriodicMILPController
    from lokirl.sim.baselines import LokiController

    loki = make_controller("loki")
    assert isinstance(loki, LokiController) and loki.beta == 1.0 and loki.min_demand == 50.0
    assert (loki.period_s, loki.com, loki.window_s) == (1.0, 1.6, 20)
    assert make_controller("loki-b1.2").beta == 1.2
    assert isinstance(make_controller("loki-1s"), PeriodicMILPController)
    assert isinstance(make_controller("loki-h1.2"), PeriodicMILPController)


def test_loki_floors_the_planned_demand_at_50_and_solves_cold():
    from lokirl.sim.baselines import LokiController

    loki = LokiController()
    low = loki.decide(ControlContext(0.0, (10.0,) * 20))
    assert low.resolve and low.demand == 50.0
    assert low.warm_start is False and low.churn_weight == 0.0
    high = loki.decide(ControlContext(0.0, (80.0,) * 20))
    assert high.demand == pytest.approx(80.0)
    # Over-provisioning does not touch the root demand.
    assert LokiController(beta=1.2).decide(ControlContext(0.0, (80.0,) * 20)) == high
    no_floor = LokiController(min_demand=0.0).decide(ControlContext(0.0, (10.0,) * 20))
    assert no_floor.demand == pytest.approx(10.0)


def test_loki_resolves_every_second(traffic):
    from lokirl.core.allocator import solve

    p, c = traffic
    loki = make_controller("loki")
    plan = solve(p, c, 50.0)
    ctx = ControlContext(3.5, (60.0,) * 3, plan=plan, time_since_solve_s=0.5)
    assert not loki.decide(ctx).resolve
    assert loki.decide(ControlContext(4.0, (60.0,) * 4, plan=plan, time_since_solve_s=1.0)).resolve
    busy = ControlContext(4.0, (60.0,) * 4, plan=plan, time_since_solve_s=2.0, solving=True)
    assert not loki.decide(busy).resolve


def test_scale_branching_scales_every_edge_but_not_the_roots(traffic):
    from lokirl.sim.baselines import scale_branching

    p, _ = traffic
    q = scale_branching(p, 1.2)
    assert scale_branching(p, 1.0) is p
    for task in p.tasks:
        for v in task.variants:
            w = q.variant(v.name)
            assert set(w.branching) == set(task.children)
            for child in task.children:
                assert w.branching[child] == pytest.approx(1.2 * v.branching.get(child, 1.0))
            assert w.latency_ms == v.latency_ms and w.accuracy == v.accuracy
    assert q.roots == p.roots and q.slo_ms == p.slo_ms and q.name == p.name
    with pytest.raises(ValueError):
        scale_branching(p, 0.0)


@pytest.mark.parametrize("demand", [30.0, 150.0])
def test_loki_beta_goes_to_the_branching_not_the_root_demand(traffic, demand):
    from lokirl.sim.baselines import LokiController

    p, c = traffic
    history = (demand,) * 20
    plans = {}
    for beta in (1.0, 1.2):
        loki = LokiController(beta=beta)
        decision = loki.decide(ControlContext(0.0, history))
        plans[beta] = loki.plan(p, c, decision, AllocatorOptions(), None)
    one, more = plans[1.0], plans[1.2]
    assert one.phase == more.phase == "hardware"
    # The same root capacity target (the floored estimate) and root workers...
    assert one.demand == more.demand == max(demand, 50.0)
    assert one.replicas()["yolov5x"] == more.replicas()["yolov5x"]
    assert one.capacity()["object_detection"] == more.capacity()["object_detection"]

    # ... but 1.2x the sub-request load planned for the child task, and more capacity there.
    def load(plan, task):
        return sum(g.load for g in plan.groups if g.task == task)

    assert load(more, "object_detection") == pytest.approx(load(one, "object_detection"))
    assert load(more, "car_classification") == pytest.approx(1.2 * load(one, "car_classification"))
    assert more.capacity()["car_classification"] > one.capacity()["car_classification"]
