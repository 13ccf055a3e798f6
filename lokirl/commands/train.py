"""``lokirl train``: train the PPO re-solve controller in the simulator."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  lokirl train --config configs/agents/ppo.yaml
  lokirl train --config configs/agents/ppo.yaml --timesteps 2000 --n-envs 1   # a quick try
  lokirl train --config configs/agents/ppo.yaml --resume runs/train__ppo_traffic__.../model.zip
  lokirl train --config configs/agents/ppo_imitation.yaml   # clone the trigger first, then PPO
  lokirl train --config configs/agents/ppo_general.yaml --prefill-only   # fill its plan library

outputs (runs/train__NAME__TIME/): model.zip + model.features.json (use it as
--controller ppo:runs/.../model.zip), best_model.zip, checkpoints/, tb/ (TensorBoard:
tensorboard --logdir runs), eval.json, config.yaml; the run is also in MLflow.
With an `imitation:` section (a teacher controller), the policy is first fitted to
the teacher's decisions: imitation.json (agreement, losses) and imitation_model.zip
(the cloned policy before PPO) are added.

progress: a live bar on a terminal; elsewhere (a log file, CI) a line on stderr about
every 5% of the training steps with the time elapsed and an estimate of what is left.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train the PPO controller (when and how to re-solve) in the simulator",
        description=(
            "Train a stable-baselines3 PPO policy on lokirl/LokiServing-v0: each step is a "
            "decision epoch (keep the plan, or re-solve warm or cold with a headroom). "
            "Evaluates against the pure-MILP controller as it goes."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        default="configs/agents/ppo.yaml",
        help="training YAML (default: configs/agents/ppo.yaml)",
    )
    p.add_argument("--timesteps", type=int, help="override total_timesteps")
    p.add_argument("--n-envs", type=int, help="override n_envs (parallel environments)")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--name", help="override the run name")
    p.add_argument(
        "--resume",
        metavar="MODEL_ZIP",
        help=(
            "continue training a saved model or checkpoint (a constrained run continues "
            "from the multiplier saved with it, see constraint.json)"
        ),
    )
    p.add_argument(
        "--restart-multiplier",
        action="store_true",
        help=(
            "with --resume: start the constraint's multiplier at lambda_init instead of "
            "the saved one (what a resumed run did in earlier lokirl versions)"
        ),
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite under runs/)")
    p.add_argument(
        "--prefill",
        action="store_true",
        help="first solve every cold plan the episodes can ask for (each cluster size x the "
        "demand grid) into the config's plan_library: minutes once, then every run and seed "
        "on that library finds them",
    )
    p.add_argument(
        "--prefill-only", action="store_true", help="fill the plan library (--prefill) and stop"
    )
    p.add_argument("--jobs", type=int, default=2, help="worker processes of --prefill (default: 2)")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (nor plain progress lines)"
    )
    p.set_defaults(handler=run)


#: The training file's fields the command line overrides: (option, an example value).
_OVERRIDE_OPTIONS = {
    "total_timesteps": ("--timesteps", "20000"),
    "n_envs": ("--n-envs", "2"),
    "seed": ("--seed", "0"),
    "name": ("--name", "my_policy"),
}


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl train``."""
    from pathlib import Path

    from lokirl.agents.config import load_train_config
    from lokirl.errors import ConfigError

    config = args.config
    if config and not Path(config).is_file():
        if args.config == "configs/agents/ppo.yaml":
            config = None  # the embedded defaults when run outside the repository
        else:
            raise ConfigError(
                args.config,
                "--config",
                "is a folder" if Path(config).is_dir() else "no such file",
                "pass an existing training YAML",
            )
    overrides = {
        "total_timesteps": args.timesteps,
        "n_envs": args.n_envs,
        "seed": args.seed,
        "name": args.name,
    }
    try:
        cfg = load_train_config(config, overrides)
    except ConfigError as exc:  # a bad override is the option's fault, not the file's
        if overrides.get(exc.field) is None:
            raise
        option, example = _OVERRIDE_OPTIONS[exc.field]
        problem = exc.problem.split(" (got ")[0]
        raise ConfigError(
            option, str(overrides[exc.field]), problem, f"pass e.g. {option} {example}"
        ) from None
    if args.restart_multiplier and not args.resume:
        raise ConfigError(
            "--restart-multiplier",
            "--resume",
            "not given",
            "add --resume MODEL_ZIP, or drop --restart-multiplier (it applies only to a resumed run)",
        )
    if args.resume and not Path(args.resume).is_file():
        raise ConfigError(
            args.resume, "--resume", "no such model file", "pass a model.zip or a checkpoint"
        )
    if args.jobs < 1:  # it was taken as 1 (and ignored without --prefill)
        raise ConfigError("--jobs", str(args.jobs), "must be at least 1", "pass e.g. --jobs 2")
    if args.prefill or args.prefill_only:
        _prefill(cfg.env, args.config, args.jobs, not args.no_progress)
        if args.prefill_only:
            return 0
    from lokirl.agents.train import train

    folder = train(
        cfg,
        resume=args.resume,
        tracking_uri=args.tracking_uri,
        progress=not args.no_progress,
        restart_multiplier=args.restart_multiplier,
    )
    print(f"model: {folder / 'model.zip'}")
    print(f"use it: lokirl evaluate --controllers ppo:{folder / 'model.zip'},loki,trigger")
    return 0


def _prefill(env, config: str, jobs: int, progress: bool) -> None:
    """Fill the plan library of ``env`` (``lokirl.agents.prefill``), with a progress bar.

    Off a terminal (a log file, CI) plain lines on stderr stand in for the bar.
    """
    from lokirl.agents.prefill import prefill_library
    from lokirl.errors import ConfigError

    if not env.plan_library:
        raise ConfigError(
            config, "env.plan_library", "--prefill needs a plan library", "set env.plan_library"
        )
    if env.demand_quantum <= 0:
        raise ConfigError(
            config, "env.demand_quantum", "is 0: no two solves share a plan", "set it > 0"
        )
    if progress:
        from lokirl.tracking.progress import ProgressLines, live_bar

        lines: list[ProgressLines] = []  # made at the first report, which knows the total

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if not lines:
                lines.append(ProgressLines(total, "train --prefill: plans"))
            lines[0].update(done)

        with live_bar(transient=True) as bar:
            task = bar.add_task("prefilling the plan library", total=None)
            report = prefill_library(env, jobs, progress=advance)
    else:
        report = prefill_library(env, jobs)
    print(
        f"plan library {report.library}: {report.visited} plans for clusters of "
        f"{', '.join(map(str, report.clusters))} workers (up to {report.demands} demands "
        f"each), {report.solved} solved now, in {report.seconds:.0f} s"
    )
