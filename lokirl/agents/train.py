"""PPO training of the re-solve controller with stable-baselines3.

One function, :func:`train`, reads top to bottom: build vectorised environments,
build (or resume) the PPO model, attach the callbacks (progress bar, periodic
evaluation against the pure-MILP controller, checkpoints, MLflow), learn, save the
policy with its feature spec, and return the run folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from lokirl.agents.adapter import save_policy
from lokirl.agents.config import TrainConfig
from lokirl.agents.constraint import LagrangeMultiplier, resumed_multiplier, selection_key
from lokirl.agents.rollout import rollout
from lokirl.core.controllers import make_controller
from lokirl.envs.serving import EnvConfig, LokiServingEnv
from lokirl.tracking import RunLogger, run_dir, to_plain, write_config
from lokirl.tracking.progress import ProgressLines, live_bar

#: Seeds of evaluation episodes, far from the training seeds.
EVAL_SEED0 = 1_000_003


def make_env(cfg: EnvConfig, seed: int, rank: int) -> Callable[[], gym.Env]:
    """A thunk building one monitored, time-limited environment."""

    def thunk() -> gym.Env:
        env = LokiServingEnv(cfg)
        env = gym.wrappers.TimeLimit(env, max_episode_steps=int(cfg.episode_s / cfg.epoch_s))
        env = Monitor(env)
        env.reset(seed=seed + rank)
        return env

    return thunk


class RichProgress(BaseCallback):
    """A rich progress bar over the training steps, and plain lines off a terminal.

    The bar draws on stderr; where stderr is not a terminal (a log file, CI, nohup) it
    draws nothing, so :class:`lokirl.tracking.progress.ProgressLines` writes a line at
    about every 5% of this run's steps there (counted in whole rollouts, as PPO runs them:
    a run may end past ``total``).

    Args:
        total: Steps expected (a resumed run counts the steps it starts from).

    """

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.lines: ProgressLines | None = None
        self._start = 0
        self._progress: Any = None
        self._task: Any = None

    def _on_training_start(self) -> None:
        from rich.progress import (
            BarColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = live_bar(
            TextColumn("[bold]training[/]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("reward {task.fields[reward]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._start = self.num_timesteps
        # PPO stops only after a whole rollout: the steps this run really takes
        rollout = max(1, int(self.model.n_steps) * int(self.model.n_envs))
        steps = -(-max(0, self.total - self._start) // rollout) * rollout
        self.lines = ProgressLines(steps, "train: steps")
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=self._start + steps, completed=self._start, reward="-"
        )

    def _on_step(self) -> bool:
        rew = self.logger.name_to_value.get("rollout/ep_rew_mean")
        self._progress.update(
            self._task,
            completed=self.num_timesteps,
            reward=f"{rew:.2f}" if rew is not None else "-",
        )
        if self.lines is not None:
            self.lines.update(self.num_timesteps - self._start)
        return True

    def _on_training_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class MLflowMetrics(BaseCallback):
    """Copies the SB3 logger's scalars to an MLflow run at the end of each rollout."""

    def __init__(self, logger: RunLogger) -> None:
        super().__init__()
        self.mlflow = logger

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        values = {k: float(v) for k, v in self.logger.name_to_value.items() if np.isscalar(v)}
        if values:
            self.mlflow.log_metrics(values, step=self.num_timesteps)


class BaselineEval(BaseCallback):
    """Every ``every`` steps, compare the policy with a baseline controller.

    Both play the same evaluation episodes (same seeds: the same traces and the
    same simulator randomness) on the simpy engine, whatever engine training uses
    (a policy trained on the fluid surrogate is judged on the discrete-event
    simulator). Logs ``eval/policy_reward``,
    ``eval/baseline_reward`` and violation/solve figures to TensorBoard (through the
    SB3 logger) and MLflow, and saves the best policy so far: by reward, or under a
    violation budget by effective accuracy within it
    (:func:`lokirl.agents.constraint.selection_key`).
    """

    def __init__(self, cfg: TrainConfig, folder: Path, mlflow: RunLogger, spec: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.folder = folder
        self.mlflow = mlflow
        self.spec = spec
        self.env = LokiServingEnv(replace(cfg.env, engine="simpy"))
        self.best: tuple[float, float] | None = None
        self.baseline_cache: dict[int, dict[str, float]] = {}
        self.history: list[dict[str, float]] = []
        self._last = 0

    def _episodes(self, make_actor: Callable[[LokiServingEnv], Any]) -> dict[str, float]:
        rows = [
            rollout(self.env, make_actor, EVAL_SEED0 + i).summary()
            for i in range(self.cfg.eval_episodes)
        ]
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    def evaluate(self) -> dict[str, float]:
        """Run the comparison now and log it."""
        pol = self._episodes(lambda env: self.model)
        if not self.baseline_cache:
            self.baseline_cache[0] = self._episodes(lambda env: make_controller(self.cfg.baseline))
        base = self.baseline_cache[0]
        metrics = {f"eval/policy_{k}": v for k, v in pol.items()}
        metrics.update({f"eval/baseline_{k}": v for k, v in base.items()})
        for k, v in metrics.items():
            self.logger.record(k, v)
        self.mlflow.log_metrics(metrics, step=self.num_timesteps)
        self.history.append({"step": float(self.num_timesteps), **metrics})
        key = selection_key(pol, self.cfg.constraint.violation_budget)
        if self.best is None or key > self.best:
            self.best = key
            save_policy(self.model, self.folder / "best_model.zip", self.spec)
        return metrics

    def _on_step(self) -> bool:
        if self.cfg.eval_every > 0 and self.num_timesteps - self._last >= self.cfg.eval_every:
            self._last = self.num_timesteps
            self.evaluate()
        return True


def imitate(
    model: Any, cfg: TrainConfig, spec: Any, folder: Path, ml: RunLogger, progress: bool
) -> dict:
    """Clone the teacher of ``cfg.imitation`` into ``model`` (before PPO); log and save it.

    Writes ``imitation.json`` (agreement, losses, the teacher's training reward) and
    ``imitation_model.zip`` (the cloned policy before any PPO update, saved with the
    run's feature ``spec``) to the run folder.
    """
    from lokirl.agents.imitation import clone, collect

    im = cfg.imitation
    bar = None
    if progress:
        bar = live_bar(transient=True)
        bar.start()
        task = bar.add_task(f"demonstrations of {im.teacher}", total=im.steps)
        # off a terminal the bar draws nothing: plain lines instead
        lines = ProgressLines(im.steps, f"train imitation: steps of {im.teacher}")

    def on_steps(n: int) -> None:
        bar.update(task, completed=min(n, im.steps))
        lines.update(min(n, im.steps))

    try:
        demos = collect(
            cfg.env,
            im.teacher,
            im.steps,
            cfg.seed + 7919,
            cfg.ppo.gamma,
            on_steps if bar else None,
        )
    finally:
        if bar is not None:
            bar.stop()
    stats = clone(model, demos, im, cfg.seed)
    stats.update(
        steps=float(len(demos.actions)),
        episodes=float(demos.episodes),
        teacher_reward=demos.teacher_reward,
        resolve_share=float(demos.resolved.mean()),
    )
    (folder / "imitation.json").write_text(json.dumps(stats, indent=2))
    save_policy(model, folder / "imitation_model.zip", spec)
    ml.log_metrics({f"imitation/{k}": float(v) for k, v in stats.items()})
    return stats


def train(
    cfg: TrainConfig,
    resume: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    restart_multiplier: bool = False,
) -> Path:
    """Train a PPO controller; returns the run folder holding ``model.zip``.

    Args:
        cfg: The training configuration.
        resume: Path of a saved model (or checkpoint) to continue training from.
        tracking_uri: MLflow tracking URI (default: SQLite under ``runs/``).
        progress: Show a progress bar (on stderr; plain lines there when it is not a
            terminal).
        restart_multiplier: A resumed constrained run starts its multiplier at
            ``lambda_init`` instead of the one saved with the model
            (:func:`lokirl.agents.constraint.resumed_multiplier`).

    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        return _train(cfg, resume, tracking_uri, progress, restart_multiplier)
    finally:
        torch.set_num_threads(threads)


def _train(
    cfg: TrainConfig,
    resume: str | None,
    tracking_uri: str | None,
    progress: bool,
    restart_multiplier: bool = False,
) -> Path:
    from lokirl.tracking import mlflow_run, tb_writer  # noqa: F401 - tb via SB3 below

    folder = run_dir("train", cfg.name)
    write_config(folder, to_plain(cfg))
    thunks = [make_env(cfg.env, cfg.seed, i) for i in range(cfg.n_envs)]
    vec = (
        SubprocVecEnv(thunks)
        if cfg.vec_env == "subproc" and cfg.n_envs > 1
        else DummyVecEnv(thunks)
    )
    vec.seed(cfg.seed)
    probe = LokiServingEnv(cfg.env)
    spec = probe.features
    p = cfg.ppo
    with mlflow_run("lokirl-train", folder.name, tracking_uri, params=to_plain(cfg)) as ml:
        if resume:
            model = PPO.load(resume, env=vec, device="cpu", tensorboard_log=str(folder / "tb"))
        else:
            model = PPO(
                "MlpPolicy",
                vec,
                learning_rate=p.learning_rate,
                n_steps=p.n_steps,
                batch_size=p.batch_size,
                n_epochs=p.n_epochs,
                gamma=p.gamma,
                gae_lambda=p.gae_lambda,
                clip_range=p.clip_range,
                ent_coef=p.ent_coef,
                policy_kwargs={"net_arch": list(p.net_arch)},
                seed=cfg.seed,
                device="cpu",
                tensorboard_log=str(folder / "tb"),
                verbose=0,
            )
        if cfg.imitation.teacher and not resume:
            imitate(model, cfg, spec, folder, ml, progress)
        evaluator = BaselineEval(cfg, folder, ml, spec)
        callbacks: list[BaseCallback] = [MLflowMetrics(ml), evaluator]
        lagrange = None
        if cfg.constraint.enabled:
            start = None
            if resume and restart_multiplier:
                print(
                    "constraint: resuming with lambda_init (--restart-multiplier)", file=sys.stderr
                )
            elif resume:
                start, why = resumed_multiplier(resume, cfg.constraint)
                lam = cfg.constraint.lambda_init if start is None else start
                print(f"constraint: resuming with multiplier {lam:g}: {why}", file=sys.stderr)
            lagrange = LagrangeMultiplier(cfg.constraint, start)
        if lagrange is not None:
            callbacks.insert(0, lagrange)
        if cfg.checkpoint_every > 0:
            callbacks.append(
                CheckpointCallback(
                    save_freq=max(1, cfg.checkpoint_every // cfg.n_envs),
                    save_path=str(folder / "checkpoints"),
                    name_prefix="ppo",
                )
            )
        if progress:
            callbacks.append(
                RichProgress(cfg.total_timesteps + (model.num_timesteps if resume else 0))
            )
        model.learn(
            total_timesteps=cfg.total_timesteps,
            callback=CallbackList(callbacks),
            tb_log_name="ppo",
            reset_num_timesteps=not resume,
        )
        vec.close()
        save_policy(model, folder / "model.zip", spec)
        if lagrange is not None:
            ml.log_artifact(lagrange.save(folder))
            ml.log_metrics({"constraint/lambda_final": lagrange.state.value})
        if cfg.eval_every > 0:
            final = evaluator.evaluate()
            (folder / "eval.json").write_text(json.dumps(evaluator.history, indent=2))
            ml.log_metrics({f"final/{k.split('/', 1)[1]}": v for k, v in final.items()})
        ml.log_artifact(folder / "model.zip")
        ml.log_artifact(folder / "model.features.json")
        ml.log_artifact(folder / "config.yaml")
    return folder
