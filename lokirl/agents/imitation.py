"""Start a policy from a teacher controller's decisions (behaviour cloning) before PPO.

A heuristic such as the tuned ``trigger`` is already a good controller; PPO started
from a random policy has to rediscover it. Here the teacher plays episodes of the
training environment, each of its decisions is written as the nearest action of the
policy's own action space (keep, or re-solve warm/cold with the headroom closest to
the demand it planned for), and the environment plays that action, so the states seen
are the ones the cloned policy reaches. A teacher that is the environment's own
fallback controller is written as ``FOLLOW`` (defer to the fallback) at every step: the
cloned policy then starts as that controller exactly, and PPO learns where to deviate
from it (a residual policy). The policy network is then fitted to the
actions (cross-entropy; the headroom term only where the teacher re-solved) and the
value network to the discounted returns, and PPO fine-tunes from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lokirl.core.binding import bind_controller
from lokirl.core.controller import Decision
from lokirl.core.controllers import make_controller
from lokirl.envs.features import (
    FOLLOW,
    KEEP_PLAN,
    RESOLVE_COLD,
    RESOLVE_WARM,
    FeatureSpec,
    base_demand,
    own_follow_index,
)
from lokirl.envs.serving import EnvConfig, LokiServingEnv


@dataclass(frozen=True)
class ImitationParams:
    """Behaviour cloning of a teacher controller before PPO (off when ``teacher`` is empty).

    Attributes:
        teacher: Controller spec to imitate (e.g. ``trigger``); empty: no cloning.
        steps: Environment steps of demonstrations (whole episodes, at least this many).
        epochs: Passes over the demonstrations (the decision boundaries are small
            differences between features: fewer passes leave a policy that always keeps).
        batch_size: Minibatch size.
        learning_rate: Adam step size of the cloning.
        smoothing: Label smoothing of the action kind: the cloned policy keeps this
            share of its probability spread over every kind (the teacher's included),
            so that PPO still tries the others (0: fit the teacher's kind only; a
            constant teacher, such as a followed fallback, is then fitted to a
            probability near 1 and PPO hardly ever tries anything else).
        index_smoothing: The same for the second index where it is fitted (a
            re-solve's headroom; with ``follow_horizons`` the fallback's horizon, with
            ``follow_settings`` its setting).

    """

    teacher: str = ""
    steps: int = 20000
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 3e-3
    smoothing: float = 0.0
    index_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("steps: steps, epochs and batch_size must be >= 1")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate: must be positive")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError("smoothing: must be in [0, 1)")
        if not 0.0 <= self.index_smoothing < 1.0:
            raise ValueError("index_smoothing: must be in [0, 1)")


@dataclass(frozen=True)
class Demonstrations:
    """What the teacher did.

    Attributes:
        obs: Observations, one row per step.
        actions: ``[kind, headroom index]`` per step.
        resolved: Whether the step's second index counts: the teacher re-solved at that
            headroom, or (``follow_horizons``) followed the fallback at that horizon.
        returns: Discounted return from each step to the end of its episode.
        episodes: Episodes played.
        teacher_reward: Mean episode reward of the teacher (through its actions).

    """

    obs: np.ndarray
    actions: np.ndarray
    resolved: np.ndarray
    returns: np.ndarray
    episodes: int
    teacher_reward: float


def _own_follow_index(env: LokiServingEnv) -> int:
    """Where the followed fallback's own horizon (or setting) sits among FOLLOW's choices."""
    try:
        return own_follow_index(env.features, env._fallback)
    except ValueError as err:
        raise ValueError(f"{err}; imitation could not start the policy as the fallback") from None


def teacher_action(
    spec: FeatureSpec, decision: Decision, context: Any, forecast: Any
) -> np.ndarray:
    """The action of the policy's space nearest to a controller's decision.

    A re-solve maps to warm (seeded with the running plan, churn term) or cold, with
    the headroom whose demand (forecast mean at ``spec.base_horizon_s`` times the
    headroom, as :func:`~lokirl.envs.features.to_decision` plans) is closest in
    ratio to the demand the controller planned for. A keep maps to keep (headroom
    index 0, not used).
    """
    if not decision.resolve:
        return np.array([KEEP_PLAN, 0], dtype=np.int64)
    kind = RESOLVE_WARM if decision.warm_start else RESOLVE_COLD
    base = base_demand(spec, context, forecast)
    if base > 0 and decision.demand > 0:
        ratio = math.log(decision.demand / base)
        idx = int(np.argmin([abs(math.log(h) - ratio) for h in spec.headrooms]))
    else:
        idx = 0
    return np.array([kind, idx], dtype=np.int64)


def collect(
    cfg: EnvConfig,
    teacher: str,
    steps: int,
    seed: int,
    gamma: float,
    progress: Callable[[int], None] | None = None,
) -> Demonstrations:
    """Play whole episodes with the teacher until ``steps`` steps are recorded.

    Episodes last ``cfg.episode_s`` as in training (the ``TimeLimit``). When the teacher
    is the environment's fallback (``cfg.fallback``), every step is recorded as
    ``FOLLOW`` (the teacher's decision is the hint the environment already holds).

    Args:
        cfg: The training environment's configuration.
        teacher: Controller spec.
        steps: Least number of steps to record.
        seed: Seed of the first episode (the next ones follow it).
        gamma: Discount of the returns (the PPO ``gamma``).
        progress: Called with the number of steps recorded so far after each episode.

    """
    env = LokiServingEnv(cfg)
    obs_rows: list[np.ndarray] = []
    acts: list[np.ndarray] = []
    resolved: list[bool] = []
    returns: list[float] = []
    rewards_ep: list[float] = []
    limit = max(1, int(cfg.episode_s / cfg.epoch_s))  # the TimeLimit training uses
    episode = 0
    follow = bool(cfg.fallback) and teacher == cfg.fallback
    while len(obs_rows) < steps:
        obs, _ = env.reset(seed=seed + episode)
        horizon_index = _own_follow_index(env) if follow else 0
        ctl = None
        if not follow:  # a followed teacher is the env's own fallback, bound and fed there
            ctl = make_controller(teacher)
            bind_controller(ctl, env.pipeline, env.cluster, env.swap)
        rewards: list[float] = []
        done = False
        while not done and len(rewards) < limit:
            if ctl is None:
                if env.features.follow_choices:
                    # the index picks the fallback's horizon: the teacher's own, fitted
                    action = np.array([FOLLOW, horizon_index], dtype=np.int64)
                    resolved.append(True)
                else:
                    action = np.array([FOLLOW, 0], dtype=np.int64)
                    # a followed re-solve uses the fallback's demand, not a headroom
                    resolved.append(False)
            else:
                decision = ctl.decide(env.context)
                action = teacher_action(env.features, decision, env.context, env.forecast)
                resolved.append(bool(decision.resolve))
            obs_rows.append(obs)
            acts.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        g = 0.0
        back = []
        for r in reversed(rewards):
            g = r + gamma * g
            back.append(g)
        returns.extend(reversed(back))
        rewards_ep.append(float(sum(rewards)))
        episode += 1
        if progress is not None:
            progress(len(obs_rows))
    return Demonstrations(
        obs=np.asarray(obs_rows, dtype=np.float32),
        actions=np.asarray(acts, dtype=np.int64),
        resolved=np.asarray(resolved, dtype=bool),
        returns=np.asarray(returns, dtype=np.float32),
        episodes=episode,
        teacher_reward=float(np.mean(rewards_ep)),
    )


def clone(model: Any, demos: Demonstrations, params: ImitationParams, seed: int = 0) -> dict:
    """Fit an SB3 policy (MultiDiscrete ``[kind, headroom]``) to the demonstrations.

    Args:
        model: A stable-baselines3 PPO model (its policy is trained in place).
        demos: The teacher's demonstrations.
        params: Cloning settings.
        seed: Seed of the minibatch order.

    Returns:
        ``{"agreement_kind", "agreement_headroom", "policy_loss", "value_loss"}``: the
        share of steps whose kind (and, where the teacher re-solved, headroom) the
        cloned policy's most likely action matches, and the final losses.

    """
    import torch as th

    policy = model.policy
    policy.set_training_mode(True)
    opt = th.optim.Adam(policy.parameters(), lr=params.learning_rate)
    obs = th.as_tensor(demos.obs)
    kind = th.as_tensor(demos.actions[:, 0])
    head = th.as_tensor(demos.actions[:, 1])
    mask = th.as_tensor(demos.resolved.astype(np.float32))
    ret = th.as_tensor(demos.returns)
    rng = np.random.default_rng(seed)
    n = len(obs)
    pol_loss = val_loss = th.tensor(0.0)
    for _ in range(params.epochs):
        order = rng.permutation(n)
        for i in range(0, n, params.batch_size):
            idx = th.as_tensor(order[i : i + params.batch_size])
            dist = policy.get_distribution(obs[idx])
            cats = dist.distribution
            lp_kind = cats[0].log_prob(kind[idx])
            if params.smoothing > 0:
                # cross-entropy against (1 - eps) on the teacher's kind + eps spread evenly
                spread = cats[0].logits.mean(dim=1)
                lp_kind = (1.0 - params.smoothing) * lp_kind + params.smoothing * spread
            lp_head = cats[1].log_prob(head[idx])
            if params.index_smoothing > 0:
                eps = params.index_smoothing
                lp_head = (1.0 - eps) * lp_head + eps * cats[1].logits.mean(dim=1)
            m = mask[idx]
            pol_loss = -lp_kind.mean() - (lp_head * m).sum() / m.sum().clamp(min=1.0)
            values = policy.predict_values(obs[idx]).flatten()
            val_loss = th.nn.functional.mse_loss(values, ret[idx])
            loss = pol_loss + 0.5 * val_loss
            opt.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            opt.step()
    policy.set_training_mode(False)
    with th.no_grad():
        cats = policy.get_distribution(obs).distribution
        k_hat = cats[0].probs.argmax(dim=1)
        h_hat = cats[1].probs.argmax(dim=1)
    ok_kind = float((k_hat == kind).float().mean())
    res = mask > 0
    ok_head = float((h_hat[res] == head[res]).float().mean()) if bool(res.any()) else 1.0
    return {
        "agreement_kind": ok_kind,
        "agreement_headroom": ok_head,
        "policy_loss": float(pol_loss.detach()),
        "value_loss": float(val_loss.detach()),
    }
