"""``lokirl train``: train the PPO re-solve controller in the simulator."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  lokirl train --config configs/agents/ppo.yaml
  lokirl train --config configs/agents/ppo.yaml --timesteps 2000 --n-envs 1   # a quick try
  lokirl train --config configs/agents/ppo.yaml --resume runs/train__ppo_traffic__.../model.zip
  lokirl train --config configs/agents/ppo_imitation.yaml   # clone the trigger first, then PPO

outputs (runs/train__NAME__TIME/): model.zip + model.features.json (use it as
--controller ppo:runs/.../model.zip), best_model.zip, checkpoints/, tb/ (TensorBoard:
tensorboard --logdir runs), eval.json, config.yaml; the run is also in MLflow.
With an `imitation:` section (a teacher controller), the policy is first fitted to
the teacher's decisions: imitation.json (agreement, losses) and imitation_model.zip
(the cloned policy before PPO) are added.
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
        "--resume", metavar="MODEL_ZIP", help="continue training a saved model or checkpoint"
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite under runs/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


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
                args.config, "--config", "no such file", "pass an existing training YAML"
            )
    overrides = {
        "total_timesteps": args.timesteps,
        "n_envs": args.n_envs,
        "seed": args.seed,
        "name": args.name,
    }
    cfg = load_train_config(config, overrides)
    if args.resume and not Path(args.resume).is_file():
        raise ConfigError(
            args.resume, "--resume", "no such model file", "pass a model.zip or a checkpoint"
        )
    from lokirl.agents.train import train

    folder = train(
        cfg, resume=args.resume, tracking_uri=args.tracking_uri, progress=not args.no_progress
    )
    print(f"model: {folder / 'model.zip'}")
    print(f"use it: lokirl evaluate --controllers ppo:{folder / 'model.zip'},loki,trigger")
    return 0
