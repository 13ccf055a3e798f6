"""Budgeted tuning of the baselines on a suite: the same budget for every method.

A *budget* is a number of simulated episodes (one controller on one (case, seed) of
the suite). Each trial is one setting of a baseline played on every (case, seed) of
the tuning suite with common random numbers and deterministic solves
(:func:`lokirl.experiments.runner.play_case_seed`); its score is the mean over cases
of the per-case mean reward (the trace is the unit, as in the statistics). The
search is Optuna's TPE sampler, seeded, over a discrete grid per baseline
(:data:`SPACES`), so the same command with the same budget picks the same setting.

The chosen settings are written into the package (``lokirl/data/tuned/NAME.yaml``)
with the suite, its hash, the commit, the budget and every trial, and become the
controllers ``periodic-tuned`` and ``trigger-tuned``. Tuning on the frozen ``test``
suite is refused: decisions are made on ``validation``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from lokirl.errors import ConfigError
from lokirl.experiments.suites import Suite

#: Search spaces: baseline -> setting -> candidate values (keyword specs of the
#: controller registry: ``periodic(...)``, ``trigger(...)``).
SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "periodic": {
        "period_s": (1.0, 2.0, 5.0, 10.0, 30.0),
        "headroom": (1.0, 1.1, 1.2, 1.3, 1.45, 1.6, 1.8, 2.0),
        "churn_weight": (0.0, 0.5, 1.0, 2.0, 4.0),
        "warm_start": (False, True),
        # how fast the demand estimate follows the arrivals (EWMA centre of mass, s)
        "com": (0.25, 0.5, 1.0, 1.6, 3.0),
    },
    "trigger": {
        "low": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
        "high": (0.85, 0.95, 1.0, 1.1),
        "headroom": (1.0, 1.15, 1.3, 1.45, 1.6),
        "churn_weight": (0.0, 1.0, 2.0, 4.0),
        # how far ahead the forecast looks and how soon it may re-solve again
        "horizon_s": (1, 2, 5),
        "min_interval_s": (1.0, 2.0),
    },
    # the model-based controller (lokirl.agents.fluid_chooser): how long a plan must
    # pay for its switch, and the fluid model's burst allowance, derating and reach
    "fluid": {
        "horizon": (1, 2, 3, 5, 8, 12),
        "burst_s": (0.02, 0.05, 0.1, 0.2),
        "derate": (0.8, 0.9, 1.0, 1.1),
        "headroom": (1.0, 1.3, 1.6),
    },
}

#: The value a knob had before it joined its grid (the controller's default): a
#: setting committed then is read as having played with it.
GRID_DEFAULTS: dict[str, dict[str, Any]] = {
    "periodic": {"com": 1.6},
    "trigger": {"horizon_s": 5, "min_interval_s": 2.0},
}

#: Metrics recorded per trial (mean over cases of the per-case mean) for the Pareto
#: front of a tuning grid (effective accuracy against frame violations).
FRONT_METRICS: tuple[str, ...] = (
    "effective_accuracy",
    "frame_violation_ratio",
    "solves",
    "reconfigurations",
    "mean_active_workers",
)

#: Where chosen settings are written (inside the package, so they ship).
TUNED_DIR = Path(__file__).resolve().parent.parent / "data" / "tuned"


def spec_of(baseline: str, params: dict[str, Any]) -> str:
    """The controller spec of a setting, e.g. ``periodic(period_s=5.0,headroom=1.3)``."""
    inner = ",".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items()))
    return f"{baseline}({inner})"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


@dataclass
class TuningResult:
    """What a tuning run tried and chose.

    Attributes:
        baseline: ``periodic`` or ``trigger``.
        suite: Suite name; ``suite_hash`` its content hash.
        budget_episodes: Episodes allowed; ``episodes`` those played.
        best_spec: The chosen setting as a controller spec; ``best_params`` its
            settings; ``best_score`` its score (mean per-case reward).
        trials: Every trial (spec, params, score, mean metrics of
            :data:`FRONT_METRICS`, per-case mean rewards; with a budget also its
            ``objective``).
        violation_budget: The frame-violation budget the search served (``None``:
            the reward was its objective); see :func:`budget_objective`.

    """

    baseline: str
    suite: str
    suite_hash: str
    commit: str
    budget_episodes: int
    episodes: int
    best_spec: str
    best_params: dict[str, Any]
    best_score: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    violation_budget: float | None = None

    @property
    def best_violation(self) -> float:
        """The chosen trial's frame-violation share (``inf`` if it was not recorded)."""
        chosen = next((t for t in self.trials if t["spec"] == self.best_spec), {})
        return chosen.get("metrics", {}).get("frame_violation_ratio", math.inf)

    @property
    def budget_met(self) -> bool | None:
        """Whether the choice is within the violation budget (``None`` without one).

        ``False``: no trial met the budget and the choice is the lowest-violation one.
        """
        if self.violation_budget is None:
            return None
        return self.best_violation <= self.violation_budget

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-ready."""
        budget: dict[str, Any] = {}
        if self.violation_budget is not None:
            budget = {"violation_budget": self.violation_budget, "budget_met": self.budget_met}
        return {
            "baseline": self.baseline,
            **budget,
            "spec": self.best_spec,
            "params": dict(self.best_params),  # a copy: no YAML alias to the trial
            "score": self.best_score,
            "suite": self.suite,
            "suite_hash": self.suite_hash,
            "commit": self.commit,
            "budget_episodes": self.budget_episodes,
            "episodes": self.episodes,
            "tuned_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trials": self.trials,
        }


#: Effective-accuracy points a budgeted search's objective loses per unit of frame
#: violation share over the budget (10 points per percentage point).
OVER_BUDGET_PENALTY = 1000.0


def budget_objective(metrics: dict[str, float], budget: float) -> float:
    """A budgeted search's objective for one trial (higher is better).

    The mean effective accuracy, less :data:`OVER_BUDGET_PENALTY` per unit of frame
    violation share above ``budget``: the sampler is steered to the budget, and among
    settings within it to the most accurate. The written choice is
    :func:`within_budget`'s, not this number's.
    """
    a = metrics.get("effective_accuracy", math.nan)
    v = metrics.get("frame_violation_ratio", math.nan)
    if not (math.isfinite(a) and math.isfinite(v)):
        return -1e9
    return a - OVER_BUDGET_PENALTY * max(0.0, v - budget)


BUDGET_DECIMALS = 4
"""Decimals of a percent a budgeted record's name keeps (``fluid-b0.0125``)."""


def check_budget(budget: float, flag: str = "--violation-budget") -> None:
    """Refuse a frame-violation budget outside (0, 1), or one its record cannot name.

    A record's name keeps the percentage to :data:`BUDGET_DECIMALS` decimals
    (:func:`record_name`), so a budget with more decimals is refused too: its record
    would carry another budget's name (``5.00001`` would write over ``fluid-b5``, and
    ``0.00001`` would be named ``fluid-b0``, a budget that is itself refused).

    Raises:
        ConfigError: naming the flag and the fix.

    """
    if not (isinstance(budget, int | float) and 0.0 < budget < 1.0):
        raise ConfigError(
            flag,
            str(budget),
            "a frame-violation budget is a share of frames in (0, 1)",
            "pass a percentage in (0, 100) on the command line, e.g. --violation-budget 5",
        )
    check_budget_decimals(100 * budget, flag)


def check_budget_decimals(percent: float, flag: str = "--violation-budget") -> None:
    """Refuse a budget percentage with more decimals than a record's name keeps.

    Raises:
        ConfigError: naming the flag, the percentage and the fix.

    """
    named = round(percent, BUDGET_DECIMALS)
    if not 0.0 < named < 100.0 or abs(named - percent) > 1e-9:
        raise ConfigError(
            flag,
            f"{percent:g}",
            f"a budget's record is named by its percentage to {BUDGET_DECIMALS} decimals, "
            f"and this one would be named {named:g}",
            f"pass a percentage with at most {BUDGET_DECIMALS} decimals, from "
            f"{10.0**-BUDGET_DECIMALS:g} to {100 - 10.0**-BUDGET_DECIMALS:g}",
        )


def refuse_frozen(suite: Suite) -> None:
    """Refuse to tune on a frozen suite: ``test`` is for reporting, never for choosing.

    Raises:
        ConfigError: ``suite`` is frozen.

    """
    if suite.spec.frozen:
        raise ConfigError(
            "--suite",
            suite.spec.name,
            "the frozen test suite is for reporting, never for choosing",
            "tune on validation",
        )


def episodes_per_trial(suite: Suite) -> int:
    """Episodes one setting costs on ``suite``: its (case, seed) pairs."""
    return sum(len(suite.spec.seeds_of(c)) for c in suite.spec.cases)


def tune(
    baseline: str,
    suite: Suite,
    budget_episodes: int,
    seed: int = 0,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    play: Callable[..., list[dict[str, Any]]] | None = None,
    jobs: int = 1,
    start_from: dict[str, Any] | None = None,
    solver_time: str | float = "model",
    violation_budget: float | None = None,
) -> TuningResult:
    """Search ``baseline``'s settings on ``suite`` within ``budget_episodes``.

    Args:
        baseline: A key of :data:`SPACES`.
        suite: The tuning suite (never the frozen test suite).
        budget_episodes: Simulated episodes the search may play (at least one trial).
        seed: Seed of the sampler.
        on_trial: Called with each finished trial.
        play: ``play_case_seed``-compatible function (tests pass a stub).
        jobs: Processes playing a trial's (case, seed) pairs at once; the result does
            not depend on it (pairs are independent, solves deterministic).
        start_from: A setting played as the first trial (counted in the budget), e.g.
            the committed one, so that a retune continues the search instead of
            restarting it and never writes a setting that scored lower on this suite.
        solver_time: Simulated duration of every solve (``"model"``, the default, or
            seconds: a sensitivity check; see :func:`lokirl.experiments.runner.run_suite`).
        violation_budget: A frame-violation budget (share of frames): the search
            serves the user's constrained objective instead of the reward (the sampler
            maximises :func:`budget_objective`; the choice is :func:`within_budget`'s,
            or the lowest-violation trial when none meets the budget).

    Raises:
        ConfigError: unknown baseline, a frozen suite, a budget below one trial, a
            ``start_from`` setting outside the search space, or a violation budget
            outside (0, 1).

    """
    import optuna

    from lokirl.experiments.runner import (
        check_load_units,
        check_solver_time,
        git_commit,
        play_case_seed,
    )

    if baseline not in SPACES:
        raise ConfigError(
            "--controller", baseline, "no search space", f"use one of {sorted(SPACES)}"
        )
    refuse_frozen(suite)
    check_solver_time(suite, solver_time)
    check_load_units(suite)
    if violation_budget is not None:
        check_budget(violation_budget)
    # Extra arguments of play_case_seed (solver, node limit, solve time), only when
    # the solve time is not the model's (stubs in tests take the first four).
    extra: tuple = () if solver_time == "model" else ("highs", None, solver_time)
    if start_from is not None:
        start_from = {**GRID_DEFAULTS.get(baseline, {}), **start_from}
        check_in_space(baseline, start_from)
    per_trial = episodes_per_trial(suite)
    n_trials = budget_episodes // per_trial
    if n_trials < 1:
        raise ConfigError(
            "--budget-episodes",
            str(budget_episodes),
            f"one trial costs {per_trial} episodes on {suite.spec.name}",
            f"pass at least {per_trial}",
        )
    pool = None
    if play is None and jobs > 1:
        from lokirl.sim.pool import process_pool

        pool = process_pool(jobs)
    play = play or play_case_seed
    pairs = [(c, s) for c in suite.spec.cases for s in suite.spec.seeds_of(c)]
    space = SPACES[baseline]
    trials: list[dict[str, Any]] = []
    seen: dict[str, float] = {}

    def objective(trial: optuna.Trial) -> float:
        params = {k: trial.suggest_categorical(k, list(v)) for k, v in space.items()}
        spec = spec_of(baseline, params)
        if spec in seen:  # the sampler repeated itself: no new episodes
            return seen[spec]
        per_case: dict[str, list[float]] = {}
        if pool is not None:
            futures = [pool.submit(play, c, s, [spec], suite.base_dir, *extra) for c, s in pairs]
            rows = [f.result()[0] for f in futures]
        else:
            rows = [play(c, s, [spec], suite.base_dir, *extra)[0] for c, s in pairs]
        other: dict[str, dict[str, list[float]]] = {m: {} for m in FRONT_METRICS}
        for (case, _), row in zip(pairs, rows, strict=True):
            r = row.get("reward")
            per_case.setdefault(case.id, []).append(
                float(r) if r is not None and math.isfinite(r) else -1e9
            )
            for m in FRONT_METRICS:
                v = row.get(m)
                if v is not None and math.isfinite(v):
                    other[m].setdefault(case.id, []).append(float(v))
        case_means = {c: statistics.fmean(v) for c, v in per_case.items()}
        score = statistics.fmean(case_means.values())
        seen[spec] = score
        means = {
            m: statistics.fmean(statistics.fmean(v) for v in by_case.values())
            if by_case
            else math.nan
            for m, by_case in other.items()
        }
        rec = {
            "spec": spec,
            "params": params,
            "score": score,
            "metrics": means,
            "per_case": case_means,
        }
        if violation_budget is not None:
            rec["objective"] = seen[spec] = budget_objective(means, violation_budget)
        trials.append(rec)
        if on_trial is not None:
            on_trial(rec)
        return seen[spec]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, n_trials))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    if start_from is not None:
        study.enqueue_trial({k: start_from[k] for k in space})
    # The budget counts episodes played: a setting the sampler repeats costs none, so
    # sampling goes on until n_trials distinct settings were played (or the grid is
    # exhausted, or the sampler keeps repeating itself).
    grid = math.prod(len(v) for v in space.values())
    want = min(n_trials, grid)
    attempts = 0
    try:
        while len(trials) < want and attempts < 50 * n_trials:
            study.optimize(objective, n_trials=1)
            attempts += 1
    finally:
        if pool is not None:
            pool.shutdown()
    if violation_budget is None:
        best = max(trials, key=lambda t: (t["score"], t["spec"]))
    else:
        best = within_budget({"trials": trials}, violation_budget) or min(
            trials,
            key=lambda t: (t["metrics"].get("frame_violation_ratio", math.inf), t["spec"]),
        )
    return TuningResult(
        baseline=baseline,
        suite=suite.spec.name,
        suite_hash=suite.hash,
        commit=git_commit(),
        budget_episodes=budget_episodes,
        episodes=len(trials) * per_trial,
        best_spec=best["spec"],
        best_params=best["params"],
        best_score=best["score"],
        trials=trials,
        violation_budget=violation_budget,
    )


def within_budget(tuned: Mapping[str, Any], budget: float) -> dict[str, Any] | None:
    """A tuning search read under a frame-violation budget.

    The user's objective (most effective accuracy with at most ``budget`` of frames
    violating the SLO) applied to the trials a search already played: the trial with
    the highest mean effective accuracy among those at or under the budget.

    Args:
        tuned: The tuning record (:meth:`lokirl.experiments.tuning.TuningResult.to_dict`).
        budget: Largest frame-violation share allowed, in [0, 1).

    Returns:
        The trial (``spec``, ``params``, ``score``, ``metrics``), or ``None`` when no
        trial of the search meets the budget.

    Raises:
        ValueError: a budget outside [0, 1).

    """
    if not 0.0 <= budget < 1.0:
        raise ValueError(f"budget: a frame-violation share in [0, 1), e.g. 0.05; got {budget}")
    ok = [
        t
        for t in tuned.get("trials", [])
        if math.isfinite(t.get("metrics", {}).get("effective_accuracy", math.nan))
        and t.get("metrics", {}).get("frame_violation_ratio", math.inf) <= budget
    ]
    if not ok:
        return None
    return max(ok, key=lambda t: (t["metrics"]["effective_accuracy"], t["spec"]))


def check_in_space(baseline: str, params: dict[str, Any], flag: str = "--from-committed") -> None:
    """Refuse a setting that is not a point of ``baseline``'s grid.

    Raises:
        ConfigError: a setting is missing or its value is not a candidate.

    """
    for k, values in SPACES[baseline].items():
        if k not in params or params[k] not in values:
            raise ConfigError(
                flag,
                f"{k}={params.get(k)!r}",
                f"not a point of the {baseline} grid ({k} in {list(values)})",
                f"tune without {flag}, or add the value to tuning.SPACES",
            )


def default_params(baseline: str) -> dict[str, Any]:
    """The default setting of ``baseline``'s controller on its grid's knobs.

    Raises:
        ConfigError: the controller has no default for a knob of the grid.

    """
    from lokirl.core.controllers import make_controller

    controller = make_controller(f"{baseline}()")
    missing = [k for k in SPACES[baseline] if not hasattr(controller, k)]
    if missing:
        raise ConfigError(
            "--from-defaults",
            baseline,
            f"its controller has no default for {', '.join(missing)}",
            "tune without --from-defaults",
        )
    return {k: getattr(controller, k) for k in SPACES[baseline]}


def committed_params(name: str, directory: Path | None = None) -> dict[str, Any]:
    """The settings of a committed tuned setting (see :func:`tuned_spec`).

    A knob that joined the grid after the setting was written is filled in with the
    value it played with (:data:`GRID_DEFAULTS`).

    Args:
        name: A record's name: the baseline (``periodic``) or a budgeted search's
            (``fluid-b5``, :func:`record_name`).
        directory: Where the records are (default: the package's).

    """
    path, data = _read_tuned(name, directory)
    baseline = _base_of(name)
    params = data.get("params")
    if not isinstance(params, dict):
        raise ConfigError(str(path), "params", "missing or malformed", "re-run lokirl tune --write")
    return {**GRID_DEFAULTS.get(baseline, {}), **params}


def record_name(baseline: str, violation_budget: float | None = None) -> str:
    """The name of a tuning record: ``fluid``, or ``fluid-b5`` for a 5% budget.

    ``NAME-tuned`` is the controller that plays the record's choice.
    """
    if violation_budget is None:
        return baseline
    return f"{baseline}-b{round(100 * violation_budget, BUDGET_DECIMALS):g}"


def _base_of(name: str) -> str:
    """The baseline a record's name names (``fluid-b5`` -> ``fluid``); else the name."""
    parts = split_record_name(name)
    return parts[0] if parts else name


def split_record_name(name: str) -> tuple[str, float | None] | None:
    """``fluid-b5`` -> ``("fluid", 0.05)``; ``fluid`` -> ``("fluid", None)``; else ``None``."""
    if name in SPACES:
        return name, None
    base, sep, pct = name.rpartition("-b")
    if not sep or base not in SPACES:
        return None
    try:
        budget = float(pct) / 100
    except ValueError:
        return None
    return (base, budget) if 0.0 < budget < 1.0 and record_name(base, budget) == name else None


def write_tuned(result: TuningResult, directory: Path | None = None) -> Path:
    """Write the chosen setting where ``NAME-tuned`` (e.g. ``periodic-tuned``) reads it."""
    directory = directory or TUNED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    name = record_name(result.baseline, result.violation_budget)
    path = directory / f"{name}.yaml"
    budget = (
        ""
        if result.violation_budget is None
        else f" --violation-budget {100 * result.violation_budget:g}"
    )
    header = (
        f"# Chosen by `lokirl tune --controller {result.baseline} --suite {result.suite} "
        f"--budget-episodes {result.budget_episodes}{budget} --write`; do not edit by hand.\n"
    )
    path.write_text(header + yaml.safe_dump(result.to_dict(), sort_keys=False))
    return path


def _read_tuned(name: str, directory: Path | None) -> tuple[Path, dict[str, Any]]:
    """The path and contents of a committed record (with the fix if absent)."""
    path = (directory or TUNED_DIR) / f"{name}.yaml"
    if not path.exists():
        parts = split_record_name(name)
        budget = "" if not parts or parts[1] is None else f" --violation-budget {100 * parts[1]:g}"
        raise ConfigError(
            str(path),
            "spec",
            f"{name} has not been tuned",
            f"run lokirl tune --controller {_base_of(name)} --suite validation{budget} --write",
        )
    return path, yaml.safe_load(path.read_text()) or {}


def tuned_spec(name: str, directory: Path | None = None) -> str:
    """The spec of a committed tuned setting (``periodic``, ``fluid-b5``, ...).

    Raises:
        ConfigError: nothing was tuned yet (with the command that tunes it).

    """
    path, data = _read_tuned(name, directory)
    baseline = _base_of(name)
    spec = data.get("spec")
    if not isinstance(spec, str) or not spec.startswith(f"{baseline}("):
        raise ConfigError(str(path), "spec", "missing or malformed", "re-run lokirl tune --write")
    return spec


def tuned_names(directory: Path | None = None) -> Sequence[str]:
    """Committed tuning records of baselines (``NAME-tuned`` controllers).

    A record per baseline tuned for the reward (``periodic``) and per budgeted search
    (``fluid-b5``). The hindsight bound's committed candidates (``hindsight.yaml``) are
    not a baseline: ``hindsight`` itself reads them.
    """
    directory = directory or TUNED_DIR
    if not directory.exists():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml") if split_record_name(p.stem))
