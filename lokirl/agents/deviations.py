"""What deviating from a fallback controller is worth, measured by paired rollouts.

A residual policy (``env.fallback`` plus the ``FOLLOW`` action) learns where to leave
its fallback. Whether there is anything to learn can be measured directly: along an
episode played by the fallback, branch at a state, play one other action there and
the fallback again for the next ``horizon`` epochs, and compare the reward of that
window with the fallback's own over the same window. The environment is replayed from
its reset with the same seed (the same trace, arrivals and service draws: common
random numbers), so the difference is the action's effect plus what the action
changes downstream, not traffic noise. A replay that does not reproduce the
fallback's rewards up to the branch point is refused (the comparison would not be
paired).

The gains are hindsight figures: the best action at a state is picked knowing that
episode's future, so their mean is an upper estimate of what a one-step improvement
on the fallback could earn; the share of states where some deviation gains, and
whether the winning action can be told from the observation, say whether a learner
has a signal at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lokirl.envs.features import FOLLOW, KEEP_PLAN, RESOLVE_COLD, RESOLVE_WARM, FeatureSpec
from lokirl.envs.serving import EnvConfig, LokiServingEnv


@dataclass(frozen=True)
class DeviationStudy:
    """Paired rollout gains of every action over following the fallback.

    Attributes:
        actions: The deviations tried, ``[kind, headroom index]`` per row.
        labels: A short name per deviation (``keep``, ``warm@1.45``, ``cold@1.6``).
        obs: The observation at each branch state, one row per state.
        gains: Window reward of each deviation minus the fallback's over the same
            window, shape ``(states, deviations)``.
        base_window: The fallback's own window reward per state.
        episode: Episode index of each state; ``step`` its epoch within the episode.
        horizon: Epochs in a window (the deviation's epoch included).
        persist: Epochs the deviation was played for (the rest of the window follows).
        episode_rewards: The fallback's reward per episode.
        spec: The environment's feature spec (what the observations mean).

    """

    actions: np.ndarray
    labels: tuple[str, ...]
    obs: np.ndarray
    gains: np.ndarray
    base_window: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    horizon: int
    persist: int
    episode_rewards: np.ndarray
    spec: FeatureSpec

    def summary(self, margin: float = 0.05) -> dict[str, Any]:
        """Headline figures: how often and by how much the best deviation beats following.

        Args:
            margin: A deviation "wins" a state when its gain exceeds this (reward units
                of one window).

        """
        best = self.gains.max(axis=1)
        arg = self.gains.argmax(axis=1)
        wins = best > margin
        per_action = {
            lab: {
                "mean_gain": float(self.gains[:, i].mean()),
                "share_best_and_winning": float(np.mean(wins & (arg == i))),
            }
            for i, lab in enumerate(self.labels)
        }
        steps_per_episode = len(self.step) / max(1, len(self.episode_rewards))
        return {
            "states": int(len(best)),
            "episodes": int(len(self.episode_rewards)),
            "horizon": self.horizon,
            "persist": self.persist,
            "fallback_episode_reward": float(self.episode_rewards.mean()),
            "best_gain_mean": float(best.mean()),
            "best_gain_median": float(np.median(best)),
            "best_gain_p90": float(np.quantile(best, 0.9)),
            "share_states_won": float(wins.mean()),
            "margin": margin,
            "states_per_episode": steps_per_episode,
            "per_action": per_action,
        }


def deviation_actions(headrooms: int) -> np.ndarray:
    """Every deviation of the residual action space: keep, warm and cold at each headroom."""
    rows = [[KEEP_PLAN, 0]]
    for kind in (RESOLVE_WARM, RESOLVE_COLD):
        rows += [[kind, i] for i in range(headrooms)]
    return np.asarray(rows, dtype=np.int64)


def deviation_labels(cfg: EnvConfig) -> tuple[str, ...]:
    """A name per deviation of :func:`deviation_actions`, e.g. ``keep``, ``warm@1.45``."""
    out = ["keep"]
    for kind in ("warm", "cold"):
        out += [f"{kind}@{h:g}" for h in cfg.headrooms]
    return tuple(out)


def _play(env: LokiServingEnv, seed: int, actions: list[np.ndarray]) -> list[float]:
    env.reset(seed=seed)
    out = []
    for a in actions:
        _, r, terminated, truncated, _ = env.step(a)
        out.append(float(r))
        if terminated or truncated:
            break
    return out


def study_deviations(
    cfg: EnvConfig,
    *,
    episodes: int,
    states_per_episode: int,
    horizon: int = 20,
    persist: int = 1,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> DeviationStudy:
    """Branch every deviation at sampled states of episodes played by the fallback.

    Args:
        cfg: The training environment's configuration; it must name a ``fallback``.
        episodes: Episodes played (seeds ``seed .. seed + episodes - 1``).
        states_per_episode: Branch states drawn per episode (uniformly among the
            epochs that leave a whole window before the episode ends).
        horizon: Epochs compared after the branch (the deviation's own included).
        persist: Epochs the deviation is played for before following again (1: one
            step, as a residual policy that deviates once; ``horizon``: the whole
            window, as one that holds a plan or keeps its own headroom for a while).
        seed: First episode seed; also seeds the choice of states.
        progress: Called with the number of states done after each one.

    Raises:
        ValueError: no fallback, bad sizes, or an environment that does not replay
            the same rewards for the same seed and actions.

    """
    if not cfg.fallback:
        raise ValueError("env.fallback: a deviation study needs a fallback to deviate from")
    if episodes < 1 or states_per_episode < 1 or horizon < 1:
        raise ValueError("episodes, states_per_episode and horizon must be >= 1")
    if not 1 <= persist <= horizon:
        raise ValueError(f"persist: must be in 1..horizon={horizon}, got {persist}")
    env = LokiServingEnv(cfg)
    limit = max(1, int(cfg.episode_s / cfg.epoch_s))
    devs = deviation_actions(len(cfg.headrooms))
    labels = deviation_labels(cfg)
    follow = np.array([FOLLOW, 0], dtype=np.int64)
    rng = np.random.default_rng(seed)
    obs_rows, gains, base_w, ep_idx, st_idx, ep_rewards = [], [], [], [], [], []
    done_states = 0
    for e in range(episodes):
        ep_seed = seed + e
        obs, _ = env.reset(seed=ep_seed)
        base: list[float] = []
        observations = [obs]
        for _ in range(limit):
            obs, r, terminated, truncated, _ = env.step(follow)
            base.append(float(r))
            observations.append(obs)
            if terminated or truncated:
                break
        ep_rewards.append(sum(base))
        last = len(base) - horizon
        if last < 0:
            continue
        picks = np.sort(rng.choice(last + 1, size=min(states_per_episode, last + 1), replace=False))
        for t in picks:
            t = int(t)
            window = sum(base[t : t + horizon])
            row = []
            for a in devs:
                branch = [follow] * t + [a] * persist + [follow] * (horizon - persist)
                played = _play(env, ep_seed, branch)
                if not np.allclose(played[:t], base[:t], rtol=0, atol=1e-9):
                    raise ValueError(
                        "the environment did not replay the same rewards for the same seed "
                        "and actions: paired rollouts need a deterministic replay"
                    )
                row.append(sum(played[t : t + horizon]) - window)
            obs_rows.append(observations[t])
            gains.append(row)
            base_w.append(window)
            ep_idx.append(e)
            st_idx.append(t)
            done_states += 1
            if progress is not None:
                progress(done_states)
    return DeviationStudy(
        actions=devs,
        labels=labels,
        obs=np.asarray(obs_rows, dtype=np.float32),
        gains=np.asarray(gains, dtype=float).reshape(-1, len(devs)),
        base_window=np.asarray(base_w, dtype=float),
        episode=np.asarray(ep_idx, dtype=np.int64),
        step=np.asarray(st_idx, dtype=np.int64),
        horizon=horizon,
        persist=persist,
        episode_rewards=np.asarray(ep_rewards, dtype=float),
        spec=env.features,
    )
