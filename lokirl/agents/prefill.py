"""Filling a training run's plan library before it starts: every cold plan it can ask for.

Training spends nearly all its time in the allocator (a profile of random actions on
``configs/agents/ppo_general.yaml``: 96% of the step time inside HiGHS). A cold solve
depends only on the cluster and the demand, and the
environment rounds demands to a relative grid (``demand_quantum``): for the cluster
sizes a config draws, the cold plans it can ever ask for are finite, a few hundred per
size. :func:`prefill_library` solves them all up front into the config's plan library
(:class:`lokirl.sim.plan_library.PlanLibrary`), through the environment's own planner
so that the keys are the ones training looks up. Solves are work-bounded, so a plan
from the library is the plan training would have solved: filling it changes the
speed of training, never its result. What is left to solve while training is the warm
re-solves, whose plans depend on the running plan (warm start, churn term).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, replace

from lokirl.envs.serving import EnvConfig
from lokirl.sim.pool import process_pool

#: Demands are covered up to this factor over the largest the episodes draw
#: (forecasts overshoot the rates they follow).
FORECAST_MARGIN = 1.25


@dataclass(frozen=True)
class PrefillReport:
    """What :func:`prefill_library` did.

    Attributes:
        library: The plan library file.
        clusters: Cluster sizes covered (workers).
        demands: Grid demands per cluster size (the largest count).
        visited: Plans asked for (cluster sizes x grid demands).
        solved: Of those, solved now (the rest were in the library already).
        seconds: Wall time.

    """

    library: str
    clusters: tuple[int, ...]
    demands: int
    visited: int
    solved: int
    seconds: float


def demand_grid(quantum: float, high: float) -> list[float]:
    """The demands the environment's planner rounds to, from 1 frame/s up to ``high``.

    Args:
        quantum: The relative step (``EnvConfig.demand_quantum``, > 0).
        high: The largest demand to cover (frames/s).

    Returns:
        Increasing demands ``exp(k * log1p(quantum))`` for ``k = 0 ..``, the first
        at or above ``high`` included.

    Raises:
        ValueError: ``quantum`` is not positive.

    """
    if quantum <= 0:
        raise ValueError("demand_quantum must be > 0 to prefill a plan library")
    step = math.log1p(quantum)
    top = math.ceil(math.log(max(high, 1.0)) / step)
    return [math.exp(k * step) for k in range(top + 1)]


def cluster_sizes(config: EnvConfig) -> tuple[int, ...]:
    """The cluster sizes (workers) episodes of ``config`` can draw."""
    rz = config.randomise
    if rz.workers:
        return tuple(sorted({int(w) for w in rz.workers}))
    if rz.workers_range is not None:
        return tuple(range(int(rz.workers_range[0]), int(rz.workers_range[1]) + 1))
    return (int(config.workers),)


def _tasks(config: EnvConfig, sizes: tuple[int, ...]) -> list[tuple[int, float]]:
    """(workers, demand) pairs to solve: each size's grid up to its largest demand."""
    from lokirl.envs.serving import LokiServingEnv

    env = LokiServingEnv(config)
    top = max(config.load_high) * max(config.headrooms) * FORECAST_MARGIN
    out = []
    for n in sizes:
        env.reset(seed=0, options={"workers": n})
        out += [(n, d) for d in demand_grid(config.demand_quantum, top * env.load_capacity)]
    env.close()
    return out


_ENVS: dict[str, object] = {}


def _solve_chunk(config: EnvConfig, chunk: list[tuple[int, float]]) -> tuple[int, int]:
    """Solve ``chunk`` through this process's environment's planner; (asked, solved)."""
    from lokirl.core.controller import Decision
    from lokirl.envs.serving import LokiServingEnv

    env = _ENVS.get(repr(config))
    if env is None:
        env = _ENVS.setdefault(repr(config), LokiServingEnv(config))
    options = replace(env.alloc, warm_start=False)
    solved = 0
    for n, demand in chunk:
        if env.cluster.total != n:
            env.reset(seed=0, options={"workers": n})
        before = env.planner.misses
        decision = Decision(resolve=True, demand=demand, reason="prefill", warm_start=False)
        env.planner.plan(env.pipeline, env.cluster, decision, options, None)
        solved += env.planner.misses - before
    return len(chunk), solved


def prefill_library(
    config: EnvConfig,
    jobs: int = 1,
    chunk: int = 24,
    progress: Callable[[int, int], None] | None = None,
) -> PrefillReport:
    """Solve every cold plan the episodes of ``config`` can ask for into its plan library.

    Args:
        config: The environment settings of a training run (``plan_library`` set,
            ``demand_quantum`` > 0).
        jobs: Worker processes (each builds its own environment).
        chunk: (cluster size, demand) pairs per task handed to a worker.
        progress: Called with (done, total) pairs as chunks finish.

    Returns:
        What was covered and how many plans were solved.

    Raises:
        ValueError: The config has no plan library or no demand quantum.

    """
    if not config.plan_library:
        raise ValueError("the training config has no plan_library to fill (env.plan_library)")
    if config.demand_quantum <= 0:
        raise ValueError("env.demand_quantum must be > 0 for plans to be shared")
    t0 = time.perf_counter()
    sizes = cluster_sizes(config)
    tasks = _tasks(config, sizes)
    chunks = [tasks[i : i + chunk] for i in range(0, len(tasks), chunk)]
    done = solved = 0
    if jobs <= 1:
        for c in chunks:
            n, s = _solve_chunk(config, c)
            done, solved = done + n, solved + s
            if progress:
                progress(done, len(tasks))
        _ENVS.pop(repr(config), None)  # this process goes on (to train): let it go
    else:
        with process_pool(jobs) as pool:
            for fut in as_completed([pool.submit(_solve_chunk, config, c) for c in chunks]):
                n, s = fut.result()
                done, solved = done + n, solved + s
                if progress:
                    progress(done, len(tasks))
    per_size = max((sum(1 for n, _ in tasks if n == s) for s in sizes), default=0)
    return PrefillReport(
        str(config.plan_library), sizes, per_size, len(tasks), solved, time.perf_counter() - t0
    )
