"""The shared plan library: keys, persistence across processes, and unchanged episodes."""

import pickle
from dataclasses import replace

import numpy as np
import pytest

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.envs import LokiServingEnv
from lokirl.envs.serving import scale_load_times
from lokirl.sim.plan_library import PlanLibrary, plan_key, planning_fingerprint

EXAMPLE = "configs/pipelines/example.yaml"


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(EXAMPLE)


def test_fingerprint_ignores_load_times_only(pipe):
    assert planning_fingerprint(scale_load_times(pipe, 2.0)) == planning_fingerprint(pipe)
    t0 = pipe.tasks[0]
    v0 = replace(t0.variants[0], accuracy=t0.variants[0].accuracy - 1.0)
    other = replace(pipe, tasks=(replace(t0, variants=(v0, *t0.variants[1:])), *pipe.tasks[1:]))
    assert planning_fingerprint(other) != planning_fingerprint(pipe)
    assert planning_fingerprint(replace(pipe, slo_ms=pipe.slo_ms * 2)) != planning_fingerprint(pipe)


def test_solves_do_not_read_load_times(pipe):
    """What lets the key (and the environment's in-memory cache) leave load times out."""
    c = Cluster.homogeneous(pipe, 6)
    slow = scale_load_times(pipe, 3.0)
    cold = AllocatorOptions(warm_start=False, deterministic=True)
    warm = AllocatorOptions(warm_start=True, churn_weight=1.0, deterministic=True)
    running = solve(pipe, c, 250.0, cold)
    for demand in (120.0, 300.0, 450.0):
        assert solve(slow, c, demand, cold).groups == solve(pipe, c, demand, cold).groups
        a = solve(pipe, c, demand, warm, running)
        b = solve(slow, c, demand, warm, running)
        assert (a.groups, a.paths, a.objective) == (b.groups, b.paths, b.objective)


def test_key_names_every_input_the_solve_reads(pipe):
    c6, c7 = Cluster.homogeneous(pipe, 6), Cluster.homogeneous(pipe, 7)
    cold = AllocatorOptions(warm_start=False, deterministic=True)
    warm = AllocatorOptions(warm_start=True, churn_weight=1.0, deterministic=True)
    a = solve(pipe, c6, 300.0, cold)
    b = solve(pipe, c6, 400.0, cold)
    k = plan_key(pipe, c6, 300.0, cold, None)
    assert k == plan_key(scale_load_times(pipe, 1.5), c6, 300.0, cold, None)
    # A cold solve without churn ignores the running plan...
    assert plan_key(pipe, c6, 300.0, cold, a) == k
    # ...a warm one does not, and neither cluster, demand nor options may differ.
    assert plan_key(pipe, c6, 300.0, warm, a) != plan_key(pipe, c6, 300.0, warm, b)
    assert (
        len(
            {
                k,
                plan_key(pipe, c7, 300.0, cold, None),
                plan_key(pipe, c6, 310.0, cold, None),
                plan_key(pipe, c6, 300.0, warm, None),
            }
        )
        == 4
    )


def test_library_persists_across_instances_and_pickles(tmp_path, pipe):
    path = tmp_path / "sub" / "plans.sqlite"
    c = Cluster.homogeneous(pipe, 6)
    opts = AllocatorOptions(warm_start=False, deterministic=True)
    plan = solve(pipe, c, 300.0, opts)
    key = plan_key(pipe, c, 300.0, opts, None)
    lib = PlanLibrary(path)
    assert lib.get(key) is None and lib.misses == 1
    lib.put(key, plan)
    failed = replace(plan, status="failed")
    lib.put("failed", failed)
    # Another process (here: an unpickled copy, as a subprocess env gets) reads it.
    other = pickle.loads(pickle.dumps(lib))
    assert other.get(key) == plan and other.hits == 1
    assert other.get("failed") is None
    assert PlanLibrary(path).count() == 1
    lib.close()
    other.close()


def test_library_is_capped_and_drops_its_oldest_plans(tmp_path, pipe, monkeypatch):
    import lokirl.sim.plan_library as plan_library

    monkeypatch.setattr(plan_library, "_PRUNE_EVERY", 5)
    plan = solve(pipe, Cluster.homogeneous(pipe, 6), 300.0, AllocatorOptions(deterministic=True))
    lib = PlanLibrary(tmp_path / "plans.sqlite", memory=2, max_plans=10)
    for i in range(12):
        lib.put(f"k{i}", plan)
    # After 10 filings: within the cap, nothing dropped; the 12th filing is not a check.
    assert lib.count() == 12 and lib.pruned == 0
    assert lib.prune() == 3 and lib.count() == 9  # down to 90% of the cap, oldest first
    fresh = PlanLibrary(tmp_path / "plans.sqlite")
    assert fresh.get("k0") is None and fresh.get("k2") is None and fresh.get("k3") == plan
    lib.put("k12", plan), lib.put("k13", plan), lib.put("k14", plan)  # 15th filing: a check
    assert lib.count() == 9 and lib.pruned == 6
    with pytest.raises(ValueError, match="max_plans"):
        PlanLibrary(tmp_path / "x.sqlite", max_plans=-1)
    lib.close()
    fresh.close()


def test_unopenable_library_names_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    lib = PlanLibrary(blocker / "plans.sqlite")
    with pytest.raises(OSError, match="plan library .*plans.sqlite"):
        lib.get("k")


def test_a_damaged_library_is_named_with_what_to_do(tmp_path, pipe):
    path = tmp_path / "plans.sqlite"
    plan = solve(pipe, Cluster.homogeneous(pipe, 6), 300.0, AllocatorOptions(deterministic=True))
    lib = PlanLibrary(path, memory=0)
    for i in range(300):
        lib.put(f"k{i}", plan)
    lib._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    lib.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[2 * 4096 :] = b"\xff" * (len(data) - 2 * 4096)  # the header page stays readable
    path.write_bytes(bytes(data))
    damaged = PlanLibrary(path, memory=0)
    with pytest.raises(OSError, match=r"plan library .*plans.sqlite is damaged.*remove it"):
        for i in range(300):
            damaged.get(f"k{i}")
    damaged.close()


def test_env_episode_is_the_same_from_the_library(tmp_path):
    cfg = dict(
        pipeline=EXAMPLE,
        workers=6,
        episode_s=15,
        traces=("gen:bursts",),
        engine="fluid",
        plan_library=str(tmp_path / "plans.sqlite"),
    )
    actions = [(i % 3, i % 5) for i in range(15)]

    def episode(env):
        env.reset(seed=5)
        return np.array([env.step(a)[1] for a in actions]), env.sim.finish().totals()

    first = LokiServingEnv(**cfg)
    r1, t1 = episode(first)
    assert first.planner.misses > 2
    second = LokiServingEnv(**cfg)  # a fresh process's env: empty memory cache
    r2, t2 = episode(second)
    assert second.planner.misses == 0 and second.planner.hits == first.planner.misses + (
        first.planner.hits
    )
    np.testing.assert_array_equal(r1, r2)
    assert t1 == t2
    # Without the library the episode is the same too (the library only saves solves).
    r3, t3 = episode(LokiServingEnv(**{**cfg, "plan_library": ""}))
    np.testing.assert_array_equal(r1, r3)
    assert t1 == t3
