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


@pytest.mark.parametrize("name", ["inferline", "proteus", "static", "loki-h1.2", "inferline-h1.5"])
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
