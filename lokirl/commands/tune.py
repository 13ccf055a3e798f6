"""``lokirl tune``: budgeted, reproducible tuning of a baseline on the validation suite."""

from __future__ import annotations

import argparse
from pathlib import Path

from lokirl.commands.options import parse_solver_time, seed
from lokirl.commands.stdout import strict_json
from lokirl.errors import ConfigError

EPILOG = """\
what it does: Optuna's TPE sampler (seeded) searches the baseline's grid; each trial plays
the setting on every (case, seed) of the suite in the simulator (common random numbers,
deterministic solves) and scores it by the mean over cases of the mean reward. The
budget is counted in simulated episodes (one setting on one case and seed), the unit in
which every method's tuning budget is stated. --write commits the chosen setting to
lokirl/data/tuned/NAME.yaml, which the controllers periodic-tuned and trigger-tuned use.

--violation-budget PCT serves the constrained objective instead of the reward: the most
effective accuracy with at most PCT% of frames violating the SLO (mean over cases). The
sampler maximises effective accuracy less 10 points per percentage point over the
budget; the choice is the most accurate trial within the budget (or, if none is, the
lowest-violation one, reported as such). --write commits it to NAME-bPCT.yaml, played
as the controller NAME-bPCT-tuned (e.g. fluid-b5-tuned).

The hindsight reference from above (--controller hindsight; not a proven bound) is tuned by a full grid instead (burst allowance
x derating, 12 knob sets; each knob set's DP schedule on each (case, seed) is one episode,
576 on validation, the baselines' budget). The knob sets whose per-episode best scores
highest are picked greedily (at most 4) and written to lokirl/data/tuned/hindsight.yaml:
the candidates `hindsight` replays on every episode.

search spaces:
  periodic   period_s x headroom x churn_weight x warm_start x com (EWMA centre of mass)
  trigger    low x high (band) x headroom x churn_weight x horizon_s x min_interval_s
  fluid      horizon x burst_s x derate x headroom (the model-based controller)
  hindsight  burst_s (0.02, 0.05, 0.1, 0.2) x derate (0.8, 0.9, 1.0), the whole grid

examples:
  lokirl tune --controller periodic --suite validation --budget-episodes 480 --write
  lokirl tune --controller trigger --suite dev --budget-episodes 24 --json
  lokirl tune --controller periodic --suite validation --budget-episodes 576 --from-committed --write
  lokirl tune --controller hindsight --suite validation --budget-episodes 576 --jobs 2 --write
  lokirl tune --controller fluid --suite validation --budget-episodes 576 --violation-budget 5 --from-committed --write
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tune`` subcommand."""
    p = subparsers.add_parser(
        "tune",
        help="tune a baseline (periodic MILP, trigger) or the hindsight bound on validation",
        description="Search a baseline's settings on a suite within a budget of episodes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--controller", required=True, help="what to tune: periodic, trigger, fluid or hindsight"
    )
    p.add_argument("--suite", default="validation", help="suite name or YAML (default: validation)")
    p.add_argument(
        "--budget-episodes",
        type=int,
        required=True,
        help="simulated episodes the search may play (a trial costs cases x seeds)",
    )
    p.add_argument("--seed", type=seed, default=0, help="sampler seed (default: 0)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes playing a trial's episodes at once; the result does not depend on it",
    )
    p.add_argument(
        "--from-committed",
        action="store_true",
        help="play the committed setting (lokirl/data/tuned/NAME.yaml) as the first trial, "
        "counted in the budget: a retune continues the search instead of restarting it",
    )
    p.add_argument(
        "--from-defaults",
        action="store_true",
        help="play the controller's default setting as the first trial, counted in the "
        "budget (a first search of a controller that has no committed setting)",
    )
    p.add_argument(
        "--solver-time",
        default="model",
        metavar="model|SECONDS",
        help="simulated duration of every solve (default: the model, what the committed "
        "settings are tuned under); seconds for a sensitivity check, e.g. 0.02 (not with "
        "--write or hindsight)",
    )
    p.add_argument(
        "--violation-budget",
        type=float,
        metavar="PCT",
        help="search for the most effective accuracy within this share of frames "
        "violating the SLO, in percent (e.g. 5) instead of the reward; --write commits "
        "NAME-bPCT.yaml (controller NAME-bPCT-tuned)",
    )
    p.add_argument("--write", action="store_true", help="commit the choice to lokirl/data/tuned/")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl tune``."""
    from lokirl.experiments.hindsight_tuning import grid, tune_hindsight
    from lokirl.experiments.suites import load_suite
    from lokirl.experiments.tuning import (
        SPACES,
        TUNED_DIR,
        check_budget_decimals,
        check_in_space,
        committed_params,
        default_params,
        episodes_per_trial,
        record_name,
        tune,
        write_tuned,
    )

    names = sorted([*SPACES, "hindsight"])
    if args.controller not in names:
        raise ConfigError("--controller", args.controller, "no search space", f"use one of {names}")
    if args.jobs < 1:
        raise ConfigError("--jobs", str(args.jobs), "must be >= 1", "pass e.g. --jobs 2")
    if args.budget_episodes < 1:
        raise ConfigError(
            "--budget-episodes",
            str(args.budget_episodes),
            "must be >= 1",
            "pass e.g. --budget-episodes 576 (12 trials on validation)",
        )
    hindsight = args.controller == "hindsight"
    budget = None
    if args.violation_budget is not None:
        if hindsight:
            raise ConfigError(
                "--violation-budget",
                str(args.violation_budget),
                "the hindsight reference is tuned for the reward over its whole grid",
                "drop --violation-budget, or tune periodic, trigger or fluid",
            )
        if not 0.0 < args.violation_budget < 100.0:  # named as typed, a percentage
            raise ConfigError(
                "--violation-budget",
                f"{args.violation_budget:g}",
                "a frame-violation budget is a percentage of frames in (0, 100)",
                "pass e.g. --violation-budget 5 (5% of frames may miss the SLO)",
            )
        check_budget_decimals(args.violation_budget)
        budget = args.violation_budget / 100
    solver_time = parse_solver_time(args.solver_time)
    if solver_time != "model" and (args.write or hindsight):
        raise ConfigError(
            "--solver-time",
            args.solver_time,
            "the committed settings and the hindsight candidates are tuned under the "
            "modelled solve time that every table uses",
            "drop --write (a sensitivity search is reported, not committed) or --solver-time"
            if args.write
            else "drop --solver-time (hindsight candidates are tuned under the modelled time)",
        )
    start_from = None
    if args.from_committed and args.from_defaults:
        raise ConfigError(
            "--from-defaults",
            "with --from-committed",
            "only one setting can be the first trial",
            "pass one of the two",
        )
    if args.from_defaults:
        if hindsight:
            raise ConfigError(
                "--from-defaults",
                "hindsight",
                "the hindsight bound is tuned over its whole grid",
                "drop --from-defaults",
            )
        start_from = default_params(args.controller)
        check_in_space(args.controller, start_from, "--from-defaults")
    if args.from_committed:
        if hindsight:
            raise ConfigError(
                "--from-committed",
                "hindsight",
                "the hindsight bound is tuned over its whole grid",
                "drop --from-committed",
            )
        # a budgeted search continues its own record, or starts from the reward's
        name = record_name(args.controller, budget)
        own = (TUNED_DIR / f"{name}.yaml").exists()
        start_from = committed_params(name if own else args.controller)  # tune() checks it
    suite = load_suite(args.suite)
    per = episodes_per_trial(suite)
    if not args.json:
        trials = len(grid()) if hindsight else args.budget_episodes // per
        print(
            f"tuning {args.controller} on {suite.spec.name} ({per} episodes a trial, "
            f"{trials} trials)",
            flush=True,
        )

    def show(t: dict) -> None:
        if args.json:
            return
        m = t.get("metrics", {})
        extra = (
            ""
            if budget is None
            else f"  eff. acc. {m.get('effective_accuracy', float('nan')):6.2f}"
            f"  frame viol {100 * m.get('frame_violation_ratio', float('nan')):5.2f}%"
        )
        print(f"  {t['score']:9.2f}{extra}  {t['spec']}", flush=True)

    if hindsight:
        from lokirl.tracking.progress import ProgressLines, live_bar

        # one step per (case, seed) pair, each playing the whole knob grid
        lines = ProgressLines(per, "tune hindsight: (case, seed) pairs", enabled=not args.json)
        with live_bar(transient=True, disable=args.json) as progress:
            task = progress.add_task("hindsight grid", total=per)

            def advance(case: str, seed: int) -> None:
                progress.update(task, advance=1, description=f"{case} (seed {seed})")
                lines.advance()

            result = tune_hindsight(
                suite, args.budget_episodes, on_trial=show, jobs=args.jobs, on_pair=advance
            )
    else:
        result = tune(
            args.controller,
            suite,
            args.budget_episodes,
            args.seed,
            on_trial=show,
            jobs=args.jobs,
            start_from=start_from,
            solver_time=solver_time,
            violation_budget=budget,
        )
    path = write_tuned(result) if args.write else None
    if args.json:
        print(strict_json(result.to_dict() | {"written": str(path) if path else None}))
    else:
        chosen = result.best_params.get("candidates") if hindsight else None
        what = f"candidates {chosen}" if chosen else result.best_spec
        print(f"best: {what}  (score {result.best_score:.2f}, {result.episodes} episodes)")
        if budget is not None:
            v = result.best_violation
            if result.budget_met:
                print(f"  frame violations {100 * v:.2f}%, within the {100 * budget:g}% budget")
            else:
                print(
                    f"  frame violations {100 * v:.2f}%: NO trial met the {100 * budget:g}% "
                    "budget; this is the lowest-violation one"
                )
        if path:
            # where the user stands (the record sits in the package's data folder)
            shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
            plays = "hindsight reads it" if hindsight else f"`{path.stem}-tuned` now plays it"
            print(f"written: {shown} ({plays})")
    return 0
