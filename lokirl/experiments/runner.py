"""One runner: every controller on every (case, seed) of a suite, as a tidy table.

Episodes are played by :func:`lokirl.agents.rollout.rollout` with the actors of
:func:`lokirl.agents.actors.actor_factory` (the same episodes and reward as
``lokirl evaluate``), with

- **common random numbers**: every controller plays a (case, seed) with the same
  seed, hence the same arrivals, branching and service randomness;
- **deterministic solves**: ``AllocatorOptions(deterministic=True)`` (work-bounded:
  node limits, one thread, no clock) with HiGHS, and a simulated solve duration that
  is modelled (``solver_time="model"``, the default) or fixed, never measured: the
  same command gives the same table on any machine load.

The result is a list of flat dicts, one per episode (:data:`ROW_FIELDS`), plus
metadata; statistics and reports are pure functions of it
(:mod:`lokirl.experiments.stats`, :mod:`lokirl.experiments.report`).
"""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lokirl.errors import ConfigError
from lokirl.experiments.suites import (
    CaseSpec,
    Suite,
    capacities,
    case_trace,
    load_unit,
    matching_case_ids,
)
from lokirl.experiments.timing import ArrivalTiming, timed_arrivals
from lokirl.sim.pool import process_pool

#: Simulator figures of each episode, in table order (``lokirl.experiments.compare.METRICS``
#: plus the modelled solver time and the episode's length).
METRICS: tuple[str, ...] = (
    "reward",
    "frame_violation_ratio",
    "sub_violation_ratio",
    "accuracy",
    "effective_accuracy",
    "mean_active_workers",
    "solves",
    "reconfigurations",
    "solver_time_s",
)

#: Columns of a per-episode row.
ROW_FIELDS: tuple[str, ...] = (
    "suite",
    "suite_hash",
    "commit",
    "case",
    "family",
    "pipeline",
    "workers",
    "swap",
    "seed",
    "controller",
    *METRICS,
    "frames",
    "steps",
    "wall_s",
    "cpu_s",
    "error",
)


@dataclass
class Results:
    """A suite's per-episode table and what produced it.

    Attributes:
        rows: One dict per (case, seed, controller) with :data:`ROW_FIELDS`; a failed
            episode has ``error`` set and NaN metrics. ``wall_s`` and ``cpu_s`` (the
            episode's process CPU time, robust to a busy machine) are the only
            columns that differ between runs.
        meta: Suite name, hash, commit, controllers, reference, cases, seeds.

    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``per_episode.json``)."""
        return {"meta": self.meta, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """Inverse of :meth:`to_dict`."""
        return cls(rows=list(data["rows"]), meta=dict(data["meta"]))

    @classmethod
    def read(cls, path: str | Path, source: str = "--from") -> Results:
        """Read a run's table: its folder, or ``per_episode.json`` (``.json.gz``: records).

        Args:
            path: A ``lokirl bench`` run folder (or a record folder that keeps its table
                gzipped), or the table file itself.
            source: What named the path (for the error).

        Raises:
            ConfigError: no table there, or a file that is not one.

        """
        p = Path(path)
        f = p
        if p.is_dir():
            names = ("per_episode.json", "per_episode.json.gz")
            f = next((p / n for n in names if (p / n).is_file()), p / names[0])
        if not f.is_file():
            raise ConfigError(
                source,
                str(path),
                "no per_episode.json (or per_episode.json.gz) there",
                "pass run folders of lokirl bench",
            )
        try:
            raw = f.read_bytes()
            text = gzip.decompress(raw).decode() if f.suffix == ".gz" else raw.decode()
            return cls.from_dict(json.loads(text))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                source,
                str(f),
                f"not a lokirl bench table ({type(exc).__name__}: {exc})",
                "pass the per_episode.json a lokirl bench run wrote",
            ) from None

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Rows of episodes that raised."""
        return [r for r in self.rows if r.get("error")]


def result_cases(results: Results) -> list[str]:
    """The case ids a table holds, in the run's order."""
    return list(results.meta.get("cases") or dict.fromkeys(r["case"] for r in results.rows))


def select_result_cases(results: Results, patterns: Sequence[str], strict: bool = True) -> Results:
    """The table restricted to the cases whose id matches one of ``patterns``.

    What ``--cases`` does to a suite before it is played, done to a recorded table
    (``lokirl bench --from RUN --cases 'ta20-*'``): the statistics of a subset of the
    cases, from the same episodes.

    Args:
        results: The table.
        patterns: Shell-style patterns of case ids.
        strict: Refuse a pattern that matches no case (else it selects nothing: one run
            of several, before they are merged).

    Raises:
        ConfigError: with ``strict``, a pattern that matches no case of the table (with
            the ids to pick from).

    """
    where = f"the merged runs (suite {results.meta.get('suite')!r})"
    kept = matching_case_ids(result_cases(results), patterns, "--from", where, strict)
    keep = set(kept)
    meta = dict(results.meta, cases=kept)
    for key in ("families", "seeds"):
        if isinstance(meta.get(key), dict):
            meta[key] = {c: v for c, v in meta[key].items() if c in keep}
    return Results(rows=[r for r in results.rows if r["case"] in keep], meta=meta)


#: Meta values of runs recorded before the key existed.
_DEFAULT_META: dict[str, Any] = {
    "solver_time": "model",
    "swap": None,
    "arrival_timing": None,
    "batch_overhead_s": 0.0,
}


def _meta(meta: dict[str, Any], key: str) -> Any:
    return meta.get(key, _DEFAULT_META.get(key))


def merge_results(
    parts: Sequence[Results], reference: str | None = None, across_commits: bool = False
) -> Results:
    """One table from runs of the same suite that played different controllers.

    The runs must agree on what makes their episodes comparable: the suite's
    content hash, the commit, the cases, the seeds (so that common random numbers
    pair their episodes), the solver, the simulated solve time, the swap mode
    (a run under ``--swap`` is not merged with one under the suite's), the
    arrival timing (``--arrival-jitter``: each copy is a run of its own) and the
    per-batch overhead (``--batch-overhead``). A controller
    played in several runs is kept once if its episodes came out the same in each
    (the solves are deterministic); otherwise the merge is refused.

    With ``across_commits`` the runs may come from different commits, on evidence:
    the commits must be linked by controllers played at more than one of them (a
    bridge, e.g. the reference played again at the later commit), every commit
    reached from every other through such links, and every shared controller's
    episodes must come out the same (the commit column aside), which shows that the
    changes between the commits did not alter how the bridges play these episodes.
    The merged meta then names every commit and counts the bridge episodes (the
    distinct episodes of controllers played at two commits or more).

    Args:
        parts: Per-episode tables (``per_episode.json`` of ``lokirl bench`` runs).
        reference: Controller the others are compared with (default: the first
            run's reference).
        across_commits: Allow runs of different commits, checked as above.

    Raises:
        ConfigError: runs that differ in suite hash, commit (unless
            ``across_commits``), cases, seeds, solver, solve time or swap mode, that played a
            controller with different results, or (across commits) a commit that
            no bridge links to the others.

    """
    if not parts:
        raise ConfigError("--from", "", "no run given", "pass run folders of lokirl bench")
    first = parts[0].meta
    commits = list(dict.fromkeys(str(p.meta.get("commit")) for p in parts))
    across = across_commits and len(commits) > 1
    # across commits, the commit is what may differ, as between a recording and a replay
    volatile = VOLATILE_FIELDS if across else TIMING_FIELDS
    keys = (
        "suite_hash",
        "commit",
        "cases",
        "seeds",
        "solver",
        "solver_time",
        "swap",
        "arrival_timing",
        "batch_overhead_s",
    )
    keys = tuple(k for k in keys if k not in volatile)
    controllers: list[str] = []
    kept: list[dict[str, Any]] = []
    played_at: dict[str, list[str]] = {}  # controller -> the commits that played it
    for part in parts:
        m = part.meta
        commit = str(m.get("commit"))
        for key in keys:
            mine_v, first_v = _meta(m, key), _meta(first, key)
            if mine_v != first_v:
                raise ConfigError(
                    "--from",
                    key,
                    f"runs differ in {key} ({first_v!r} vs {mine_v!r}): their "
                    "episodes are not paired",
                    "merge only runs of the same suite, commit, seeds, solver, --solver-time, "
                    "--swap, --arrival-jitter/--jitter-copy and --batch-overhead"
                    + ("" if key != "commit" else " (or pass --allow-commits)"),
                )
        for c in m.get("controllers", []):
            mine = [r for r in part.rows if r["controller"] == c]
            if c in controllers:
                # Played again (e.g. the reference beside each candidate): kept once
                # when every episode came out the same, else its episodes would count
                # twice with two values.
                before = [r for r in kept if r["controller"] == c]
                if _outcomes(mine, volatile) != _outcomes(before, volatile):
                    moved = commit != played_at[c][0]
                    raise ConfigError(
                        "--from",
                        "controllers",
                        f"{c!r} was played in two of the runs with different results"
                        + (" (at different commits: a change alters its play)" if moved else ""),
                        "merge runs that played different controllers, or drop one of them",
                    )
                if commit not in played_at[c]:
                    played_at[c].append(commit)
                continue
            controllers.append(c)
            kept.extend(mine)
            played_at[c] = [commit]
    ref = reference or first.get("reference")
    if ref not in controllers:
        raise ConfigError(
            "--reference",
            str(ref),
            "not one of the merged controllers",
            f"pick one of {controllers}",
        )
    order = {c: i for i, c in enumerate(controllers)}
    rows = kept
    cases = {c: i for i, c in enumerate(first.get("cases", []))}
    rows.sort(key=lambda r: (cases.get(r["case"], 0), r["seed"], order[r["controller"]]))
    meta = {**first, "controllers": controllers, "reference": ref, "merged": len(parts)}
    if across:
        _check_bridges(commits, played_at)
        bridges = {c for c, at in played_at.items() if len(at) > 1}
        meta["commit"] = ", ".join(commits)
        meta["across_commits"] = {
            "commits": commits,
            "bridge_episodes": sum(1 for r in kept if r["controller"] in bridges),
        }
    return Results(rows=rows, meta=meta)


def _check_bridges(commits: Sequence[str], played_at: dict[str, list[str]]) -> None:
    """Across commits: every commit linked to the first by controllers played at both."""
    linked = {commits[0]}
    grew = True
    while grew:
        grew = False
        for at in played_at.values():
            if linked & set(at) and not set(at) <= linked:
                linked |= set(at)
                grew = True
    for commit in commits:
        if commit not in linked:
            raise ConfigError(
                "--allow-commits",
                f"commit {commit[:10]}",
                "no controller was played both at it and at the other runs' commits, so "
                "nothing shows that it plays their episodes alike",
                "play one of the other runs' controllers (e.g. the reference) at that commit too",
            )


#: Columns that differ between two plays of the same episodes at one commit.
TIMING_FIELDS = ("wall_s", "cpu_s")
#: Those, and the commit: what may differ between a recorded play and a later replay.
VOLATILE_FIELDS = (*TIMING_FIELDS, "commit")


def _outcomes(rows, volatile: Sequence[str] = TIMING_FIELDS) -> list[tuple]:
    """A controller's episodes without the columns that may differ between runs."""
    return sorted(
        tuple((k, repr(v)) for k, v in sorted(r.items()) if k not in volatile) for r in rows
    )


@dataclass(frozen=True)
class ReplayDiff:
    """How a replay of a suite's episodes compares with a recorded play.

    Attributes:
        identical: Episodes (controller, case, seed) in both, every result the same.
        only_recorded: Episodes the recorded play has and the replay does not.
        only_replayed: Episodes the replay has and the recorded play does not.
        differing: Per column, the episodes whose value differs (beyond
            :data:`VOLATILE_FIELDS`).

    """

    identical: int
    only_recorded: tuple[tuple[str, str, int], ...]
    only_replayed: tuple[tuple[str, str, int], ...]
    differing: dict[str, tuple[tuple[str, str, int], ...]]

    @property
    def same(self) -> bool:
        """True when every common episode is identical and neither side has extra ones."""
        return not (self.only_recorded or self.only_replayed or self.differing)


def replay_diff(recorded: Results, replayed: Results) -> ReplayDiff:
    """Compare a replay with a recorded play, episode by episode.

    Results are compared by ``repr`` (NaN equals NaN; 0.1 + 0.2 does not equal 0.3),
    ignoring :data:`VOLATILE_FIELDS`. Meant for checking that a later commit still
    gives a recorded table (``scripts/same_rows.py``).

    Args:
        recorded: The per-episode table on record (e.g. under ``docs/bench_records``).
        replayed: The same suite, controllers and seeds played again.

    Returns:
        The comparison.

    """

    def key(r: dict[str, Any]) -> tuple[str, str, int]:
        return (str(r["controller"]), str(r["case"]), int(r["seed"]))

    old = {key(r): r for r in recorded.rows}
    new = {key(r): r for r in replayed.rows}
    differing: dict[str, list[tuple[str, str, int]]] = {}
    identical = 0
    for k in sorted(old.keys() & new.keys()):
        cols = (old[k].keys() | new[k].keys()) - set(VOLATILE_FIELDS)
        bad = [c for c in sorted(cols) if repr(old[k].get(c)) != repr(new[k].get(c))]
        for c in bad:
            differing.setdefault(c, []).append(k)
        identical += not bad
    return ReplayDiff(
        identical=identical,
        only_recorded=tuple(sorted(old.keys() - new.keys())),
        only_replayed=tuple(sorted(new.keys() - old.keys())),
        differing={c: tuple(v) for c, v in differing.items()},
    )


def git_commit(cwd: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the working directory's repository, or ``"unknown"``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def make_env(
    case: CaseSpec,
    solver: str = "highs",
    max_nodes: int | None = None,
    solver_time: str | float = "model",
    batch_overhead_s: float = 0.0,
):
    """The serving environment of a case, with deterministic, work-bounded solves.

    ``solver_time`` is how long a solve keeps the old plan in force in simulated time
    (and what the reward's solver term charges): ``"model"`` (a fixed cost per
    allocator phase, :data:`lokirl.sim.config.SOLVE_TIME_BY_PHASE`) or a fixed number
    of seconds for every solve (a sensitivity check on that model).
    ``batch_overhead_s`` adds that many seconds to every batch's service beyond the
    profile (a per-batch cost no plan accounts for, as the live hop; a sensitivity
    check: every reported table plays 0).

    A homogeneous cluster (``{workers: N}``) is the env's own; an accelerator mix
    replaces the env's cluster and recomputes its capacities (the env takes only a
    worker count).
    """
    from lokirl.core.pipeline import Cluster
    from lokirl.envs.serving import LokiServingEnv, cluster_capacities

    env = LokiServingEnv(
        pipeline=case.pipeline,
        workers=case.workers,
        swap=case.swap,
        epoch_s=case.epoch_s,
        solver=solver,
        solver_time=solver_time,
        batch_overhead_s=batch_overhead_s,
    )
    opts = replace(env.alloc, deterministic=True, threads=1)
    if max_nodes is not None:
        opts = replace(opts, max_nodes=max_nodes)
    env.alloc = opts
    if "workers" not in case.cluster:
        env.cluster = Cluster(dict(case.cluster))
        env.hw_capacity, env.max_capacity = cluster_capacities(env.pipeline, env.cluster)
        env.features = replace(
            env.features, workers=env.cluster.total, demand_scale=env.max_capacity
        )
    return env


def _nan_metrics() -> dict[str, float]:
    return {m: math.nan for m in METRICS}


def play_case_seed(
    case: CaseSpec,
    seed: int,
    controllers: Sequence[str],
    base_dir: Path | None = None,
    solver: str = "highs",
    max_nodes: int | None = None,
    solver_time: str | float = "model",
    timing: ArrivalTiming | None = None,
    batch_overhead_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Play every controller on one (case, seed) with common random numbers.

    With ``timing`` every controller plays the seed's arrivals drawn beforehand,
    delayed as that copy says (:mod:`lokirl.experiments.timing`), instead of the
    simulator drawing them from the case's rates. ``batch_overhead_s``: see
    :func:`make_env`.

    Returns:
        One partial row per controller (case, seed, controller, metrics, steps,
        wall_s, error); the caller adds the suite's columns.

    """
    import lokirl.agents  # noqa: F401 - registers ppo: and trigger
    from lokirl.agents.actors import actor_factory
    from lokirl.agents.rollout import rollout
    from lokirl.experiments.compare import summary

    env = make_env(case, solver, max_nodes, solver_time, batch_overhead_s)
    trace = case_trace(case, load_unit(case, capacities(env.pipeline, env.cluster)), base_dir)
    played = trace if timing is None else timed_arrivals(trace, seed, timing)
    cache: dict = {}
    rows = []
    for spec in controllers:
        t0, c0 = time.perf_counter(), time.process_time()
        row: dict[str, Any] = {"case": case.id, "seed": seed, "controller": spec}
        try:
            ep = rollout(env, actor_factory(spec, trace, cache), seed, trace=played)
            s = summary(ep)
            row.update({m: float(s[m]) for m in METRICS if m in s})
            row["solver_time_s"] = float(ep.result.solver_time_s)
            row["frames"] = ep.result.frames.counts()
            row["steps"] = ep.steps
            row["error"] = None
        except Exception as exc:  # noqa: BLE001 - one failed episode must not lose the suite
            row.update(_nan_metrics())
            row["frames"] = None
            row["steps"] = 0
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["wall_s"] = time.perf_counter() - t0
        row["cpu_s"] = time.process_time() - c0
        rows.append(row)
    return rows


def _task(args: tuple) -> list[dict[str, Any]]:
    return play_case_seed(*args)


def case_cluster(case: CaseSpec, pipeline: Any) -> Any:
    """A case's cluster: ``{workers: N}`` homogeneous for the pipeline, else the mix given."""
    from lokirl.core.pipeline import Cluster

    if "workers" in case.cluster:
        return Cluster.homogeneous(pipeline, case.workers)
    return Cluster(dict(case.cluster))


def check_policies_fit(suite: Suite, controllers: Sequence[str]) -> None:
    """Refuse, before any work, a trained policy that does not fit some case of the suite.

    A policy is built for a pipeline, an accelerator mix, a range of cluster sizes
    and swap modes (:func:`lokirl.agents.adapter.check_spec_fits`); a suite mixes
    them, so a policy is refused with the cases it does fit (play those with
    ``--cases``).

    Raises:
        ConfigError: naming the policy's refusal on the first case that does not fit.

    """
    from lokirl.agents.adapter import check_spec_fits, is_policy_spec
    from lokirl.core.pipeline_config import load_pipeline

    policies = [c for c in controllers if is_policy_spec(c)]
    if not policies:
        return
    pipelines: dict[str, Any] = {}
    for c in policies:
        fits, misfit = [], None
        for case in suite.spec.cases:
            if case.pipeline not in pipelines:
                pipelines[case.pipeline] = load_pipeline(case.pipeline)
            pipe = pipelines[case.pipeline]
            cluster = case_cluster(case, pipe)
            try:
                check_spec_fits(c, pipe, cluster, case.swap)
                fits.append(case.id)
            except ConfigError as exc:
                misfit = misfit or (case.id, exc)
        if misfit is not None:
            case_id, exc = misfit
            raise ConfigError(
                exc.source,
                exc.field,
                f"controller {c!r} does not fit case {case_id!r} of suite "
                f"{suite.name!r}: {exc.problem}",
                (
                    f"play only the cases it fits with --cases {','.join(fits)}"
                    if fits
                    else "it fits no case of this suite; " + exc.fix
                ),
            )


def check_load_units(suite: Suite) -> None:
    """Refuse, before any work, a case whose load its cluster cannot give or that is empty.

    ``load_unit: full_accuracy`` needs the pipeline's most accurate variants to meet the
    SLO on the case's cluster (:func:`lokirl.experiments.suites.load_unit`), and the
    trace mapped onto the load range must expect at least one request
    (:func:`lokirl.experiments.suites.case_trace`); found only inside a worker process,
    either error would stop the run after the pool started. Two deterministic solves per
    (pipeline, cluster) so checked.

    Raises:
        ConfigError: naming the case, ``load_unit`` or ``load``, and the fix.

    """
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.experiments.suites import case_trace

    pipelines: dict[str, Any] = {}
    seen: dict[tuple, dict[str, Any]] = {}
    for case in suite.spec.cases:
        if case.load is None:
            continue
        if case.pipeline not in pipelines:
            pipelines[case.pipeline] = load_pipeline(case.pipeline)
        pipe = pipelines[case.pipeline]
        cluster = case_cluster(case, pipe)
        key = (case.pipeline, tuple(sorted(cluster.workers.items())))
        if key not in seen:
            seen[key] = capacities(pipe, cluster)
        try:
            case_trace(case, load_unit(case, seen[key]), suite.base_dir)
        except ConfigError as exc:
            raise ConfigError(
                f"{suite.source}: case {exc.source}", exc.field, exc.problem, exc.fix
            ) from None


def check_batch_overhead(suite: Suite, batch_overhead_s: float) -> None:
    """Refuse, before any work, a per-batch overhead that is negative or outlasts an epoch."""
    shortest = min(c.epoch_s for c in suite.spec.cases)
    if not (math.isfinite(batch_overhead_s) and 0 <= batch_overhead_s < shortest):
        raise ConfigError(
            "--batch-overhead",
            f"{batch_overhead_s * 1000:g} ms",
            f"must be at least 0 and shorter than the shortest decision epoch of the "
            f"suite ({shortest:g} s)",
            "pass milliseconds, e.g. 4 (a network hop)",
        )


def check_solver_time(suite: Suite, solver_time: str | float) -> None:
    """Refuse, before any work, a fixed solve time as long as a case's epoch.

    A solve that outlasts its epoch keeps the old plan for several epochs and
    swallows the re-solves asked for meanwhile; the hindsight planner (and the
    modelled times, at most 0.25 s) assume a plan in force within its epoch.
    """
    if solver_time == "model":
        return
    if isinstance(solver_time, str):
        raise ConfigError(
            "--solver-time",
            solver_time,
            "a suite's table must be repeatable: a measured solve time is not",
            "pass model or a number of seconds",
        )
    shortest = min(c.epoch_s for c in suite.spec.cases)
    if not 0 <= solver_time < shortest:
        raise ConfigError(
            "--solver-time",
            f"{solver_time:g}",
            f"must be at least 0 and shorter than the shortest decision epoch of the "
            f"suite ({shortest:g} s)",
            f"pass a number of seconds below {shortest:g}, e.g. 0.02",
        )


def run_suite(
    suite: Suite,
    controllers: Sequence[str] | None = None,
    reference: str | None = None,
    jobs: int = 1,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    commit: str | None = None,
    solver: str = "highs",
    max_nodes: int | None = None,
    solver_time: str | float = "model",
    swap: str | None = None,
    timing: ArrivalTiming | None = None,
    batch_overhead_s: float = 0.0,
) -> Results:
    """Play every controller on every (case, seed) of ``suite``.

    Args:
        suite: A loaded suite (:func:`lokirl.experiments.suites.load_suite`).
        controllers: Controller specs (default: the suite's).
        reference: Controller the others are compared with (default: the suite's;
            recorded in ``meta``).
        jobs: Processes playing (case, seed) pairs at once; results do not depend
            on it (each pair is independent and solves are deterministic).
        on_episode: Called with each finished row (progress reporting).
        commit: Git commit recorded in the rows (default: ``git rev-parse HEAD``).
        solver: MILP solver of every solve (deterministic mode).
        max_nodes: Branch-and-bound node limit per phase (default: the allocator's).
        solver_time: Simulated duration of a solve: ``"model"`` (per allocator
            phase, the default every reported table uses) or a fixed number of
            seconds (:func:`make_env`); recorded in ``meta``.
        swap: Play every case under this swap mode instead of the suite's
            (:func:`lokirl.experiments.suites.with_swap`; a sensitivity check);
            recorded in ``meta`` (``None``: as the suite says, also when every
            case already has that mode).
        timing: Play arrivals drawn beforehand, delayed as this copy says (a
            sensitivity check on timing, :mod:`lokirl.experiments.timing`);
            recorded in ``meta`` (``None``: the simulator draws them).
        batch_overhead_s: Seconds every batch occupies its worker beyond its
            profiled latency (a sensitivity check, :func:`make_env`); recorded in
            ``meta``.

    Returns:
        The per-episode table, in (case, seed, controller) order.

    Raises:
        ConfigError: an unknown controller or a reference not among the controllers.

    """
    import lokirl.agents  # noqa: F401 - registers ppo: and trigger
    from lokirl.core.controllers import make_controller

    if swap is not None and any(c.swap != swap for c in suite.spec.cases):
        from lokirl.experiments.suites import with_swap

        suite = with_swap(suite, swap)
    else:
        swap = None  # the suite's own mode: a run like any other (merges with them)
    spec = suite.spec
    ctrls = list(controllers) if controllers else list(spec.controllers)
    if not ctrls:
        raise ConfigError("--controllers", "", "no controller given", "pass e.g. loki,trigger")
    if len(set(ctrls)) != len(ctrls):
        raise ConfigError(
            "--controllers", ",".join(ctrls), "a controller is listed twice", "list each once"
        )
    for c in ctrls:
        # Unknown names fail here, before any work; oracle and hindsight specs are
        # built by actor_factory from the trace (an unknown one fails its episodes).
        if c != "oracle" and not c.startswith("hindsight"):
            make_controller(c)
    check_policies_fit(suite, ctrls)
    check_solver_time(suite, solver_time)
    check_batch_overhead(suite, batch_overhead_s)
    check_load_units(suite)
    ref = reference or (spec.reference if spec.reference in ctrls else ctrls[0])
    if ref not in ctrls:
        raise ConfigError("--reference", ref, "not one of the controllers", f"pick one of {ctrls}")
    commit = commit or git_commit()
    common = {"suite": spec.name, "suite_hash": suite.hash, "commit": commit}
    tasks = [
        (
            case,
            seed,
            tuple(ctrls),
            suite.base_dir,
            solver,
            max_nodes,
            solver_time,
            timing,
            batch_overhead_s,
        )
        for case in spec.cases
        for seed in spec.seeds_of(case)
    ]
    by_case = {c.id: c for c in spec.cases}

    def complete(partial: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for p in partial:
            case = by_case[p["case"]]
            row = {
                **common,
                "case": case.id,
                "family": case.family,
                "pipeline": case.pipeline,
                "workers": case.workers,
                "swap": case.swap,
                **p,
            }
            row = {k: row.get(k) for k in ROW_FIELDS}
            out.append(row)
            if on_episode is not None:
                on_episode(row)
        return out

    chunks: list[list[dict[str, Any]]]
    if jobs <= 1 or len(tasks) <= 1:
        chunks = [complete(_task(t)) for t in tasks]
    else:
        with process_pool(min(jobs, len(tasks))) as pool:
            futures = {pool.submit(_task, t): i for i, t in enumerate(tasks)}
            done: dict[int, list[dict[str, Any]]] = {}
            for f in as_completed(futures):
                done[futures[f]] = complete(f.result())
            chunks = [done[i] for i in range(len(tasks))]
    rows = [r for chunk in chunks for r in chunk]
    meta = {
        "suite": spec.name,
        "suite_hash": suite.hash,
        "suite_source": suite.source,
        "frozen": spec.frozen,
        "commit": commit,
        "controllers": ctrls,
        "reference": ref,
        "cases": [c.id for c in spec.cases],
        "families": {c.id: c.family for c in spec.cases},
        "seeds": {c.id: list(spec.seeds_of(c)) for c in spec.cases},
        "solver": solver,
        "deterministic": True,
        "solver_time": solver_time,
        "swap": swap,
        "arrival_timing": None if timing is None else timing.to_meta(),
        "batch_overhead_s": float(batch_overhead_s),
    }
    return Results(rows=rows, meta=meta)
