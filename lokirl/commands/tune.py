"""``lokirl tune``: budgeted, reproducible tuning of a baseline on the validation suite."""

from __future__ import annotations

import argparse
import json

from lokirl.errors import ConfigError

EPILOG = """\
what it does: Optuna's TPE sampler (seeded) searches the baseline's grid; each trial plays
the setting on every (case, seed) of the suite in the simulator (common random numbers,
deterministic solves) and scores it by the mean over cases of the mean reward. The
budget is counted in simulated episodes (one setting on one case and seed), the unit in
which every method's tuning budget is stated. --write commits the chosen setting to
lokirl/data/tuned/NAME.yaml, which the controllers periodic-tuned and trigger-tuned use.

search spaces:
  periodic   period_s x headroom x churn_weight x warm_start (lokirl's periodic MILP)
  trigger    low x high (band) x headroom x churn_weight

examples:
  lokirl tune --controller periodic --suite validation --budget-episodes 480 --write
  lokirl tune --controller trigger --suite dev --budget-episodes 24 --json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tune`` subcommand."""
    p = subparsers.add_parser(
        "tune",
        help="tune a baseline (periodic MILP, trigger) on the validation suite within a budget",
        description="Search a baseline's settings on a suite within a budget of episodes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--controller", required=True, help="baseline to tune: periodic or trigger")
    p.add_argument("--suite", default="validation", help="suite name or YAML (default: validation)")
    p.add_argument(
        "--budget-episodes",
        type=int,
        required=True,
        help="simulated episodes the search may play (a trial costs cases x seeds)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes playing a trial's episodes at once; the result does not depend on it",
    )
    p.add_argument("--write", action="store_true", help="commit the choice to lokirl/data/tuned/")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl tune``."""
    from lokirl.experiments.suites import load_suite
    from lokirl.experiments.tuning import SPACES, episodes_per_trial, tune, write_tuned

    if args.controller not in SPACES:
        raise ConfigError(
            "--controller", args.controller, "no search space", f"use one of {sorted(SPACES)}"
        )
    if args.jobs < 1:
        raise ConfigError("--jobs", str(args.jobs), "must be >= 1", "pass e.g. --jobs 2")
    if args.budget_episodes < 1:
        raise ConfigError("--budget-episodes", str(args.budget_episodes), "must be >= 1", "")
    suite = load_suite(args.suite)
    per = episodes_per_trial(suite)
    if not args.json:
        print(
            f"tuning {args.controller} on {suite.spec.name} ({per} episodes a trial, "
            f"{args.budget_episodes // per} trials)",
            flush=True,
        )

    def show(t: dict) -> None:
        if not args.json:
            print(f"  {t['score']:9.2f}  {t['spec']}", flush=True)

    result = tune(
        args.controller, suite, args.budget_episodes, args.seed, on_trial=show, jobs=args.jobs
    )
    path = write_tuned(result) if args.write else None
    if args.json:
        print(json.dumps(result.to_dict() | {"written": str(path) if path else None}))
    else:
        print(
            f"best: {result.best_spec}  (score {result.best_score:.2f}, {result.episodes} episodes)"
        )
        if path:
            print(f"written: {path}")
    return 0
