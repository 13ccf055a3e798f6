"""Prefilling a plan library: every cold plan an episode can ask for is then a library hit."""

import math
from dataclasses import replace

import numpy as np
import pytest

from lokirl.agents.prefill import cluster_sizes, demand_grid, prefill_library
from lokirl.core.controller import Decision
from lokirl.envs.serving import EnvConfig, EpisodeRandomisation, LokiServingEnv
from lokirl.sim.plan_library import PlanLibrary

ENV = EnvConfig(
    pipeline="traffic_analysis",
    workers=20,
    episode_s=8,
    traces=("gen:step",),
    engine="fluid",
    demand_quantum=0.25,
    load_high=(0.3, 0.4),
    headrooms=(1.0, 1.2),
    feature_version=2,
    randomise=EpisodeRandomisation(workers=(10, 13)),
)


def test_demand_grid_is_what_the_planner_rounds_to():
    grid = demand_grid(0.25, 100.0)
    assert grid[0] == 1.0
    assert grid[-2] < 100.0 <= grid[-1]
    assert all(math.isclose(b / a, 1.25) for a, b in zip(grid, grid[1:], strict=False))
    env = LokiServingEnv(replace(ENV, plan_library=""))
    assert env.planner._round(37.0) in grid
    with pytest.raises(ValueError, match="quantum"):
        demand_grid(0.0, 100.0)


def test_cluster_sizes_follow_the_randomisation():
    assert cluster_sizes(ENV) == (10, 13)


def test_prefill_grid_reaches_the_load_unit_s_top():
    from lokirl.agents.prefill import FORECAST_MARGIN, _tasks

    sm = replace(ENV, pipeline="social_media", load_unit="max", feature_version=3)
    env = LokiServingEnv(sm)
    env.reset(seed=0, options={"workers": 10})
    top = max(sm.load_high) * max(sm.headrooms) * FORECAST_MARGIN * env.max_capacity
    demands = [d for n, d in _tasks(sm, (10,)) if n == 10]
    # the grid covers the capacity at any accuracy, not the full-accuracy sliver
    assert demands[-2] < top <= demands[-1]
    assert demands[-1] > 10 * max(sm.load_high) * env.hw_capacity
    assert cluster_sizes(replace(ENV, randomise=EpisodeRandomisation())) == (20,)


def test_prefill_fills_once_and_training_solves_then_hit(tmp_path):
    cfg = replace(ENV, plan_library=str(tmp_path / "plans.sqlite"))
    seen = []
    report = prefill_library(cfg, progress=lambda done, total: seen.append((done, total)))
    assert report.clusters == (10, 13)
    assert report.solved == report.visited > 2 * 10
    assert seen[-1] == (report.visited, report.visited)
    # (and the first plan of each reset, at its initial demand)
    assert report.visited <= PlanLibrary(cfg.plan_library).count() <= report.visited + 4
    # A second fill finds every plan in the library.
    again = prefill_library(cfg)
    assert (again.visited, again.solved) == (report.visited, 0)
    # Cold re-solves during an episode are library hits: nothing is solved.
    env = LokiServingEnv(cfg)
    env.reset(seed=3, options={"workers": 13})
    options = replace(env.alloc, warm_start=False)
    misses = env.planner.misses
    for demand in np.linspace(2.0, 0.4 * 1.2 * env.hw_capacity, 7):
        d = Decision(resolve=True, demand=float(demand), reason="test", warm_start=False)
        env.planner.plan(env.pipeline, env.cluster, d, options, None)
    assert env.planner.misses == misses


def test_prefill_needs_a_library_and_a_quantum():
    with pytest.raises(ValueError, match="plan_library"):
        prefill_library(replace(ENV, plan_library=""))
    with pytest.raises(ValueError, match="demand_quantum"):
        prefill_library(replace(ENV, plan_library="x.sqlite", demand_quantum=0.0))


def test_prefill_in_worker_processes_solves_the_same_plans(tmp_path):
    one = prefill_library(replace(ENV, plan_library=str(tmp_path / "a.sqlite")))
    two = prefill_library(replace(ENV, plan_library=str(tmp_path / "b.sqlite")), jobs=2, chunk=8)
    assert (two.visited, two.solved) == (one.visited, one.solved)


def test_train_prefill_writes_progress_lines_off_a_terminal(tmp_path, capsys):
    from lokirl.commands.train import _prefill

    cfg = replace(ENV, plan_library=str(tmp_path / "plans.sqlite"))
    _prefill(cfg, "train.yaml", 1, progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("train --prefill")]
    assert lines and "(100%)" in lines[-1]
    done, total = lines[-1].split()[3].split("/")
    assert done == total and int(total) > 20
    _prefill(cfg, "train.yaml", 1, progress=False)
    assert "train --prefill" not in capsys.readouterr().err
