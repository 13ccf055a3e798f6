import numpy as np
import pytest

from lokirl.core.controller import Decision
from lokirl.core.pipeline import Cluster, Pipeline, Task, Variant
from lokirl.core.plan import Plan, WorkerGroup


def tiny_pipeline(slo_ms: float = 100.0, branching: float = 2.0) -> Pipeline:
    """det -> cls; det has a slow accurate and a fast cheap variant."""
    d1 = Variant("d1", "det", 100.0, {"gpu": {1: 10.0, 2: 15.0, 4: 20.0}}, 0.5, {"cls": branching})
    d2 = Variant("d2", "det", 50.0, {"gpu": {1: 5.0, 2: 7.0, 4: 9.0}}, 0.25, {"cls": branching})
    c1 = Variant("c1", "cls", 100.0, {"gpu": {1: 5.0, 4: 10.0, 8: 50.0}}, 0.5)
    return Pipeline(
        "tiny",
        (Task("det", (d1, d2), ("cls",)), Task("cls", (c1,), ())),
        slo_ms=slo_ms,
    )


def single_pipeline(slo_ms: float = 25.0) -> Pipeline:
    v = Variant("s1", "only", 100.0, {"gpu": {1: 10.0, 4: 40.0}}, 0.5)
    w = Variant("s2", "only", 80.0, {"gpu": {1: 4.0, 4: 8.0}}, 0.3)
    return Pipeline("single", (Task("only", (v, w), ()),), slo_ms=slo_ms)


def make_plan(pipeline: Pipeline, groups: list[tuple[str, int, int]], demand: float = 10.0) -> Plan:
    """A plan from (variant, batch size, replicas) triples, routing loads at capacity."""
    out = []
    for name, b, n in groups:
        v = pipeline.variant(name)
        lat = v.latency("gpu", b)
        out.append(
            WorkerGroup(
                task=v.task,
                variant=name,
                accelerator="gpu",
                batch_size=b,
                replicas=n,
                latency_ms=lat,
                throughput=v.throughput("gpu", b),
                accuracy=v.accuracy,
                load=0.0,
            )
        )
    return Plan(pipeline.name, demand, tuple(out), max_demand=demand, workers={"gpu": 1})


class FixedPlanner:
    """A planner that hands out the given plans in turn."""

    name = "fixed"

    def __init__(self, *plans: Plan) -> None:
        self.plans = list(plans)

    def plan(self, pipeline, cluster, decision, options, current):
        return self.plans.pop(0)


def resolve(demand: float = 10.0) -> Decision:
    return Decision(resolve=True, demand=demand)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def cluster(n: int) -> Cluster:
    return Cluster({"gpu": n})
