"""Tuning the hindsight upper bound's knobs on a suite (never on ``test``).

``hindsight`` plays, on each episode, the best of a few knob sets' DP schedules
(each replayed on a replica of the episode: :func:`lokirl.agents.hindsight.hindsight_actor`).
Which knob sets it replays is chosen here, with the budget the baselines get:

1. Every knob set of a grid (:data:`HINDSIGHT_SPACE`: burst allowance x derating)
   plays its DP schedule, not replayed (``hindsight-bB-dD``), on every (case, seed)
   of the suite, all knob sets of one (case, seed) sharing one plan library. One
   knob set on one (case, seed) is one simulated episode of the budget; the whole
   grid on ``validation`` is 12 x 48 = 576 episodes, the budget the baselines were
   tuned with.
2. A played schedule's reward is what a replay of it scores (same generators), so
   the reward of ``hindsight`` replaying a set of knob sets is, per episode, the
   best of theirs. The candidates are picked greedily: each step adds the knob set
   that raises that score most (mean over cases of the per-case mean, the trace is
   the unit), until :data:`N_CANDIDATES` are picked or none adds anything.

``lokirl tune --controller hindsight --write`` commits the choice to
``lokirl/data/tuned/hindsight.yaml``, from which ``hindsight`` reads its candidates.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from lokirl.errors import ConfigError
from lokirl.experiments.suites import Suite
from lokirl.experiments.tuning import (
    FRONT_METRICS,
    TuningResult,
    episodes_per_trial,
    refuse_frozen,
)

#: The grid: knob -> candidate values (the DP's other knobs keep their defaults).
HINDSIGHT_SPACE: dict[str, tuple[float, ...]] = {
    "burst_s": (0.02, 0.05, 0.1, 0.2),
    "derate": (0.8, 0.9, 1.0),
}

#: Knob sets ``hindsight`` replays per episode (each replay costs about an episode).
N_CANDIDATES = 4


def knob_spec(burst_s: float, derate: float) -> str:
    """The controller spec of one knob set's schedule, e.g. ``hindsight-b0.1-d0.9``."""
    return f"hindsight-b{burst_s:g}-d{derate:g}"


def grid(space: dict[str, Sequence[float]] | None = None) -> list[dict[str, float]]:
    """The knob sets of ``space`` (default :data:`HINDSIGHT_SPACE`), in a fixed order."""
    space = space or HINDSIGHT_SPACE
    return [{"burst_s": b, "derate": d} for b in space["burst_s"] for d in space["derate"]]


def pick_candidates(
    per_pair: dict[str, dict[tuple[str, int], float]], n: int = N_CANDIDATES
) -> tuple[list[str], float]:
    """Greedy choice of the knob sets whose per-episode best scores highest.

    Args:
        per_pair: spec -> (case, seed) -> reward.
        n: Knob sets to pick at most.

    Returns:
        The picked specs (in the order picked) and their score: the mean over cases
        of the per-case mean of the best picked reward per (case, seed).

    """
    specs = list(per_pair)
    pairs = sorted({p for by in per_pair.values() for p in by})

    def score(chosen: Sequence[str]) -> float:
        by_case: dict[str, list[float]] = {}
        for p in pairs:
            best = max(per_pair[s].get(p, -1e9) for s in chosen)
            by_case.setdefault(p[0], []).append(best)
        return statistics.fmean(statistics.fmean(v) for v in by_case.values())

    chosen: list[str] = []
    best_score = -math.inf
    while len(chosen) < n:
        options = [(score([*chosen, s]), -i, s) for i, s in enumerate(specs) if s not in chosen]
        if not options:
            break
        sc, _, s = max(options)
        if chosen and not sc > best_score:
            break
        chosen.append(s)
        best_score = sc
    return chosen, best_score


def tune_hindsight(
    suite: Suite,
    budget_episodes: int,
    space: dict[str, Sequence[float]] | None = None,
    n_candidates: int = N_CANDIDATES,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    play: Callable[..., list[dict[str, Any]]] | None = None,
    jobs: int = 1,
    on_pair: Callable[[str, int], None] | None = None,
) -> TuningResult:
    """Play the hindsight knob grid on ``suite`` and pick the candidates ``hindsight`` replays.

    Args:
        suite: The tuning suite (never the frozen test suite).
        budget_episodes: Simulated episodes allowed; the whole grid must fit.
        space: The grid (default :data:`HINDSIGHT_SPACE`).
        n_candidates: Knob sets to pick at most.
        on_trial: Called with each knob set's record once the grid is played.
        play: ``play_case_seed``-compatible function (tests pass a stub).
        jobs: Processes playing (case, seed) pairs at once; the result does not depend
            on it.
        on_pair: Called with (case id, seed) as each pair's grid finishes.

    Returns:
        A result whose ``best_spec`` is ``hindsight``, ``best_params`` holds the
        picked ``candidates`` (knob dicts, in the order picked) and ``best_score``
        their score; one trial per knob set.

    Raises:
        ConfigError: a frozen suite, or a budget below the grid's cost.

    """
    from lokirl.experiments.runner import git_commit, play_case_seed

    refuse_frozen(suite)
    knobs = grid(space)
    specs = [knob_spec(k["burst_s"], k["derate"]) for k in knobs]
    per_trial = episodes_per_trial(suite)
    need = per_trial * len(knobs)
    if budget_episodes < need:
        raise ConfigError(
            "--budget-episodes",
            str(budget_episodes),
            f"the hindsight grid ({len(knobs)} knob sets x {per_trial} episodes on "
            f"{suite.spec.name}) costs {need}",
            f"pass at least {need}",
        )
    play = play or play_case_seed
    pairs = [(c, s) for c in suite.spec.cases for s in suite.spec.seeds_of(c)]
    results: list[list[dict[str, Any]]] = [[] for _ in pairs]
    if jobs > 1:
        from concurrent.futures import as_completed

        from lokirl.sim.pool import process_pool

        with process_pool(jobs) as pool:
            futures = {
                pool.submit(play, c, s, specs, suite.base_dir): i for i, (c, s) in enumerate(pairs)
            }
            for f in as_completed(futures):
                i = futures[f]
                results[i] = f.result()
                if on_pair is not None:
                    on_pair(pairs[i][0].id, pairs[i][1])
    else:
        for i, (c, s) in enumerate(pairs):
            results[i] = play(c, s, specs, suite.base_dir)
            if on_pair is not None:
                on_pair(c.id, s)

    per_pair: dict[str, dict[tuple[str, int], float]] = {s: {} for s in specs}
    metrics: dict[str, dict[str, dict[str, list[float]]]] = {
        s: {m: {} for m in FRONT_METRICS} for s in specs
    }
    for (case, seed), rows in zip(pairs, results, strict=True):
        for spec, row in zip(specs, rows, strict=True):
            r = row.get("reward")
            per_pair[spec][(case.id, seed)] = (
                float(r) if r is not None and math.isfinite(r) else -1e9
            )
            for m in FRONT_METRICS:
                v = row.get(m)
                if v is not None and math.isfinite(v):
                    metrics[spec][m].setdefault(case.id, []).append(float(v))
    trials = []
    for kn, spec in zip(knobs, specs, strict=True):
        by_case: dict[str, list[float]] = {}
        for (cid, _), r in per_pair[spec].items():
            by_case.setdefault(cid, []).append(r)
        case_means = {c: statistics.fmean(v) for c, v in by_case.items()}
        rec = {
            "spec": spec,
            "params": dict(kn),
            "score": statistics.fmean(case_means.values()),
            "metrics": {
                m: statistics.fmean(statistics.fmean(v) for v in bc.values()) if bc else math.nan
                for m, bc in metrics[spec].items()
            },
            "per_case": case_means,
        }
        trials.append(rec)
        if on_trial is not None:
            on_trial(rec)
    chosen, score = pick_candidates(per_pair, n_candidates)
    by_spec = dict(zip(specs, knobs, strict=True))
    return TuningResult(
        baseline="hindsight",
        suite=suite.spec.name,
        suite_hash=suite.hash,
        commit=git_commit(),
        budget_episodes=budget_episodes,
        episodes=need,
        best_spec="hindsight",
        best_params={"candidates": [dict(by_spec[s]) for s in chosen]},
        best_score=score,
        trials=trials,
    )
