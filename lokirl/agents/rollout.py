"""Play whole episodes of the serving environment with a policy or a controller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lokirl.core.binding import bind_controller
from lokirl.core.controller import Decision
from lokirl.envs.features import POLICY_REASON, to_decision
from lokirl.envs.serving import LokiServingEnv
from lokirl.sim import SimResult
from lokirl.traces.types import Trace


@dataclass(frozen=True)
class Episode:
    """Outcome of one episode.

    Attributes:
        reward: Sum of the per-epoch rewards.
        steps: Epochs played.
        result: The simulator's result (totals, series, control cost).

    """

    reward: float
    steps: int
    result: SimResult

    def summary(self) -> dict[str, float]:
        """Headline figures of the episode."""
        r = self.result
        return {
            "reward": self.reward,
            "frame_violation_ratio": r.frame_violation_ratio,
            "sub_violation_ratio": r.sub_violation_ratio,
            "accuracy": r.accuracy,
            "effective_accuracy": r.effective_accuracy,
            "mean_active_workers": r.mean_active_workers,
            "solves": float(r.solves),
            "reconfigurations": float(r.reconfigurations),
        }


Actor = Callable[[LokiServingEnv], Any]


def act(actor: Any, env: LokiServingEnv, obs: Any) -> tuple[Decision, Any]:
    """What ``actor`` decides this epoch, and the planner that builds its plan.

    A trained policy (``predict``) acts deterministically on ``obs`` and its action
    becomes a decision as in training; a controller (``decide``) decides on the env's
    context and, if it has a ``plan`` method, is also the planner (else ``None``: the
    env's cached allocator). A residual controller's own re-solves (their reason
    begins with :data:`~lokirl.envs.features.POLICY_REASON`) go to the env's cached
    allocator as in training; its fallback's decisions to its planner hook.
    """
    if hasattr(actor, "predict"):
        action, _ = actor.predict(obs, deterministic=True)
        return to_decision(env.features, action, env.context, env.forecast, env.hint), None
    decision = actor.decide(env.context)
    planner = actor if callable(getattr(actor, "plan", None)) else None
    if planner is not None and decision.reason.startswith(POLICY_REASON):
        planner = None
    return decision, planner


def rollout(
    env: LokiServingEnv,
    make_actor: Actor,
    seed: int,
    trace: Trace | None = None,
    max_steps: int | None = None,
) -> Episode:
    """Play one episode.

    Args:
        env: The environment (not wrapped).
        make_actor: Called with the freshly reset env; returns either a model with
            ``predict(obs, deterministic)`` (a trained policy) or a controller with
            ``decide(context)`` (optionally with a ``plan`` method used as planner;
            a controller with ``bind`` is bound to the episode's pipeline, cluster
            and swap mode first, and may refuse them).
        seed: Episode seed: the same seed gives the same trace draw and the same
            simulator randomness for every actor (common random numbers).
        trace: Play this trace (rates, or arrivals drawn beforehand) instead of drawing
            one from the env's mix.
        max_steps: Stop after this many epochs (default: the whole trace).

    Returns:
        The episode's reward, length and simulator result.

    Raises:
        ConfigError: the actor does not fit the episode's pipeline or cluster.

    """
    options: dict[str, Any] = {"defer_first_plan": True}
    if trace is not None:
        options["trace"] = trace
    obs, _ = env.reset(seed=seed, options=options)
    actor = make_actor(env)
    bind_controller(actor, env.pipeline, env.cluster, env.swap)
    total = 0.0
    steps = 0
    limit = (
        max_steps if max_steps is not None else int(np.ceil(env.sim.trace_end / env.config.epoch_s))
    )
    while steps < limit:
        decision, planner = act(actor, env, obs)
        obs, reward, terminated, _, _ = env.advance(decision, planner=planner)
        total += reward
        steps += 1
        if terminated:
            break
    result = env.sim.finish()
    return Episode(reward=total, steps=steps, result=result)
