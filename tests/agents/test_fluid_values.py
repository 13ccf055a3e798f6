"""The fluid model's plan values, all plans at once, equal the per-plan loop they replace."""

from dataclasses import replace

import numpy as np
import pytest

from lokirl.agents.fluid_values import PlanLayout, plan_values
from lokirl.agents.hindsight import demand_grid, plan_library
from lokirl.core.allocator import AllocatorOptions
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline

W = {"violation": 1.0, "reconfiguration": 0.5, "solver": 0.1, "workers": 0.05}


def _loop_values(library, own, names, accg, fed, lost, admit, a_ep, workers, weights, pipeline):
    """The per-plan loop (the earlier implementation), tasks in the pipeline's order."""
    order = [t.name for t in pipeline.tasks]
    roots = set(pipeline.roots)
    served = np.zeros((len(a_ep), len(library)))
    value = np.zeros((len(a_ep), len(library)))
    for j, plan in enumerate(library):
        m = own == j
        ok = admit[:, j].copy()
        present = [t for t in order if t in set(names[m])]
        mix, load = {}, {}
        for t in present:
            mt = m & (names == t)
            fin, lo = fed[:, mt].sum(axis=1), lost[:, mt].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                f = np.where(fin > 0, lo / np.maximum(fin, 1e-12), 0.0)
                per_frame = np.where(a_ep > 0, fin / np.maximum(a_ep * admit[:, j], 1e-12), 1.0)
            ok = ok * (1.0 - f) ** (1.0 if t in roots else per_frame)
            done = fed[:, mt] - lost[:, mt]
            tot = done.sum(axis=1)
            load[t] = tot
            with np.errstate(invalid="ignore", divide="ignore"):
                mix[t] = np.where(tot > 0, (done * accg[mt]).sum(axis=1) / tot, accg[mt].max())
        served[:, j] = a_ep * ok
        num, den = np.zeros(len(a_ep)), np.zeros(len(a_ep))
        for path in pipeline.root_to_leaf_tasks():
            if path[-1] not in load:
                continue
            pa = np.ones(len(a_ep))
            for t in path:
                pa = pa * (mix[t] / 100.0 if t in mix else 1.0)
            num += load[path[-1]] * pa * 100.0
            den += load[path[-1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(den > 0, num / np.maximum(den, 1e-12), mix[present[0]])
        frac = np.where(a_ep > 0, ok, 0.0)
        bad = np.where(a_ep > 0, 1.0 - ok, 0.0)
        act = plan.active_workers / max(1, workers)
        value[:, j] = frac * acc / 100.0 - weights["violation"] * bad - weights["workers"] * act
    return value, served


@pytest.fixture(scope="module")
def library():
    pipe = load_pipeline("traffic_analysis")
    cluster = Cluster.homogeneous(pipe, 24)
    lib = plan_library(pipe, cluster, demand_grid(50, 2000, 0.25), AllocatorOptions())
    # a plan that serves only its root task (a degraded plan: leaves absent)
    root = pipe.roots[0]
    lib.append(replace(lib[0], groups=tuple(g for g in lib[0].groups if g.task == root)))
    return pipe, cluster, lib


def _groups(lib):
    own, names, accs = [], [], []
    for j, plan in enumerate(lib):
        for g in plan.groups:
            own.append(j)
            names.append(g.task)
            accs.append(g.accuracy)
    return np.asarray(own), np.asarray(names), np.asarray(accs)


def test_all_plans_at_once_equal_the_per_plan_loop_to_the_bit(library):
    pipe, cluster, lib = library
    own, names, accs = _groups(lib)
    assert len(lib) >= 5 and len(set(names)) == len(pipe.tasks) >= 3
    rng = np.random.default_rng(7)
    epochs = 40
    fed = rng.uniform(0, 300, (epochs, len(own))) * (rng.random((epochs, len(own))) > 0.2)
    lost = fed * rng.uniform(0, 1, fed.shape) * (rng.random(fed.shape) > 0.5)
    admit = rng.uniform(0.5, 1.0, (epochs, len(lib)))
    a_ep = rng.uniform(0, 500, epochs)
    a_ep[:3] = 0.0  # epochs with no arrivals
    fed[3] = 0.0  # an epoch in which no group is fed
    args = (lib, own, names, accs, fed, lost, admit, a_ep, cluster.total, W, pipe)
    want_v, want_s = _loop_values(*args)
    layout = PlanLayout.build(lib, own, names, accs, pipe)
    got_v, got_s = plan_values(*args, layout=layout)
    assert np.array_equal(got_s, want_s)
    assert np.array_equal(got_v, want_v)
    # built on the fly: the same
    assert np.array_equal(plan_values(*args)[0], want_v)
    # the degraded plan (root task only) is valued on its root alone
    assert layout.task_pairs[:, len(lib) - 1].tolist().count(-1) == len(pipe.tasks) - 1


def test_a_group_naming_an_unknown_task_is_refused(library):
    pipe, _, lib = library
    own, names, accs = _groups(lib)
    names = names.copy().astype(object)
    names[0] = "no_such_task"
    with pytest.raises(ValueError, match="no_such_task"):
        PlanLayout.build(lib, own, names, accs, pipe)
