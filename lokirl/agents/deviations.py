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

Two ways to branch give the same figures: ``replay`` plays every branch from the
reset (a branch costs the whole prefix); ``fork`` replays the episode once and forks
the process at each branch state (POSIX ``fork``: the child holds an exact copy of
the simulation, random streams included), so a branch costs only its window. The
plan library's SQLite connection is not shared with a child (it opens its own).

The gains are hindsight figures: the best action at a state is picked knowing that
episode's future, so their mean is an upper estimate of what a one-step improvement
on the fallback could earn; the share of states where some deviation gains, and
whether the winning action can be told from the observation, say whether a learner
has a signal at all.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lokirl.core.controllers import make_controller
from lokirl.envs.features import (
    FOLLOW,
    KEEP_PLAN,
    RESOLVE_COLD,
    RESOLVE_WARM,
    FeatureSpec,
    own_follow_index,
)
from lokirl.envs.serving import EnvConfig, LokiServingEnv

#: Epochs of sub-second arrivals kept per branch state (:attr:`DeviationStudy.recent_bins`).
RECENT_EPOCHS = 5


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
        recent_bins: The sub-second root arrivals of the last :data:`RECENT_EPOCHS`
            epochs before each state (``arrival_bins`` of the host's contexts, oldest
            first; the reset plays the first epoch; NaN where fewer epochs had been
            played and where an epoch had fewer bins), one row per state: what a
            controller saw below the per-second history of its observation.

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
    recent_bins: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

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


def deviation_actions(headrooms: int, follow_choices: int = 0, own: int = 0) -> np.ndarray:
    """Every deviation of the residual action space.

    Keep, warm and cold at each headroom; with ``follow_choices`` (a policy choosing
    the fallback's horizon or setting), following at each choice but the fallback's
    own (``own``), after them.
    """
    rows = [[KEEP_PLAN, 0]]
    for kind in (RESOLVE_WARM, RESOLVE_COLD):
        rows += [[kind, i] for i in range(headrooms)]
    rows += [[FOLLOW, i] for i in range(follow_choices) if i != own]
    return np.asarray(rows, dtype=np.int64)


def deviation_labels(cfg: EnvConfig, own: int = 0) -> tuple[str, ...]:
    """A name per deviation of :func:`deviation_actions`, e.g. ``keep``, ``warm@1.45``.

    Following at another horizon or setting reads ``follow@h16`` or
    ``follow@h1,b0.01,d0.7``.
    """
    out = ["keep"]
    for kind in ("warm", "cold"):
        out += [f"{kind}@{h:g}" for h in cfg.headrooms]
    choices = [f"h{h}" for h in cfg.follow_horizons] or [
        f"h{h},b{b:g},d{d:g}" for h, b, d in cfg.follow_settings
    ]
    out += [f"follow@{c}" for i, c in enumerate(choices) if i != own]
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


#: Inherited SQLite connections a forked child must neither use nor close (kept
#: referenced so that no finaliser of the child touches the parent's file handle).
_ORPHANED: list[Any] = []


def _detach_library(env: LokiServingEnv) -> None:
    """In a forked child: let the plan library open its own connection."""
    library = getattr(getattr(env, "planner", None), "library", None)
    if library is not None and getattr(library, "_db", None) is not None:
        _ORPHANED.append(library._db)
        library._db = None


def _child(env: LokiServingEnv, actions: list[np.ndarray], r: int, w: int) -> None:
    """A forked child: play ``actions``, send the rewards (or the error) down ``w``, exit."""
    code = 0
    try:
        os.close(r)
        _detach_library(env)
        rewards: list[float] | BaseException = []
        try:
            for a in actions:
                _, rew, terminated, truncated, _ = env.step(a)
                rewards.append(float(rew))
                if terminated or truncated:
                    break
        except Exception as exc:  # reported to the parent, raised there
            rewards = exc
        with os.fdopen(w, "wb") as f:
            f.write(pickle.dumps(rewards))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _fork_branches(
    env: LokiServingEnv, branches: list[list[np.ndarray]], jobs: int
) -> list[list[float]]:
    """Play each branch (a list of actions) in a forked copy of ``env``; their rewards.

    The parent's environment is left as it was. ``jobs`` children run at once.
    """
    out: list[list[float] | None] = [None] * len(branches)
    running: dict[int, tuple[int, int]] = {}  # pid -> (branch index, read fd)

    def reap_one() -> None:
        # the oldest child: read until it closes the pipe, then collect its status
        # (waitpid on our own children only: a solver's subprocesses are not ours)
        pid = next(iter(running))
        i, fd = running.pop(pid)
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not data:
            raise RuntimeError(f"a forked branch failed (exit status {status})")
        result = pickle.loads(data)
        if isinstance(result, BaseException):
            raise result
        out[i] = result

    try:
        for i, actions in enumerate(branches):
            while len(running) >= max(1, jobs):
                reap_one()
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child
                _child(env, actions, r, w)
            os.close(w)
            running[pid] = (i, r)
        while running:
            reap_one()
    finally:  # on a failure, no child is left behind
        for pid, (_, fd) in list(running.items()):
            os.waitpid(pid, 0)
            os.close(fd)
    return [o if o is not None else [] for o in out]


def _check_replay(played: list[float], base: list[float]) -> None:
    if len(played) != len(base) or not np.allclose(played, base, rtol=0, atol=1e-9):
        raise ValueError(
            "the environment did not replay the same rewards for the same seed "
            "and actions: paired rollouts need a deterministic replay"
        )


def study_deviations(
    cfg: EnvConfig,
    *,
    episodes: int,
    states_per_episode: int,
    horizon: int = 20,
    persist: int = 1,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    branch: str = "fork" if hasattr(os, "fork") else "replay",
    jobs: int = 1,
    behaviour: Callable[[np.ndarray, int], np.ndarray] | None = None,
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
        branch: ``fork`` (default where the OS has it: one replay per episode, a
            forked child per branch) or ``replay`` (every branch from the reset);
            the figures are the same.
        jobs: Forked branches played at once (``fork`` only).
        behaviour: Who plays the episodes, ``(observation, step) -> action``
            (default: following the fallback). With another player (a learned
            policy: the states it visits, as in DAgger), each state also branches
            "follow for the window", and gains are measured against that branch
            (``base_window`` is its reward; ``episode_rewards`` the player's).

    Raises:
        ValueError: no fallback, bad sizes, an unknown ``branch``, or an
            environment that does not replay the same rewards for the same seed and
            actions.

    """
    if not cfg.fallback:
        raise ValueError("env.fallback: a deviation study needs a fallback to deviate from")
    if episodes < 1 or states_per_episode < 1 or horizon < 1:
        raise ValueError("episodes, states_per_episode and horizon must be >= 1")
    if not 1 <= persist <= horizon:
        raise ValueError(f"persist: must be in 1..horizon={horizon}, got {persist}")
    if branch not in ("fork", "replay") or (branch == "fork" and not hasattr(os, "fork")):
        raise ValueError(f"branch: 'fork' (POSIX only) or 'replay', got {branch!r}")
    env = LokiServingEnv(cfg)
    limit = max(1, int(cfg.episode_s / cfg.epoch_s))
    own = own_follow_index(env.features, make_controller(cfg.fallback))
    devs = deviation_actions(len(cfg.headrooms), env.features.follow_choices, own)
    labels = deviation_labels(cfg, own)
    follow = np.array([FOLLOW, own], dtype=np.int64)
    rng = np.random.default_rng(seed)
    obs_rows, gains, base_w, ep_idx, st_idx, ep_rewards = [], [], [], [], [], []
    recent_rows: list[list[np.ndarray]] = []
    done_states = 0
    for e in range(episodes):
        ep_seed = seed + e
        obs, _ = env.reset(seed=ep_seed)
        base: list[float] = []
        played_actions: list[np.ndarray] = []
        observations = [obs]
        bins_seen = [_arrival_bins(env)]
        for step in range(limit):
            act = follow if behaviour is None else np.asarray(behaviour(obs, step))
            played_actions.append(act)
            obs, r, terminated, truncated, _ = env.step(act)
            base.append(float(r))
            observations.append(obs)
            bins_seen.append(_arrival_bins(env))
            if terminated or truncated:
                break
        ep_rewards.append(sum(base))
        last = len(base) - horizon
        if last < 0:
            continue
        picks = np.sort(rng.choice(last + 1, size=min(states_per_episode, last + 1), replace=False))
        if branch == "fork":
            env.reset(seed=ep_seed)
            replayed: list[float] = []
        for t in picks:
            t = int(t)
            tails = [[a] * persist + [follow] * (horizon - persist) for a in devs]
            if behaviour is not None:  # the reference: following from this state on
                tails.append([follow] * horizon)
            if branch == "fork":
                while len(replayed) < t:
                    replayed.append(float(env.step(played_actions[len(replayed)])[1]))
                _check_replay(replayed, base[:t])
                played_tails = _fork_branches(env, tails, jobs)
            else:
                played_tails = []
                for tail in tails:
                    played = _play(env, ep_seed, played_actions[:t] + tail)
                    _check_replay(played[:t], base[:t])
                    played_tails.append(played[t:])
            if behaviour is None:
                window = sum(base[t : t + horizon])
            else:
                window = sum(played_tails.pop()[:horizon])
            row = [sum(p[:horizon]) - window for p in played_tails]
            obs_rows.append(observations[t])
            recent_rows.append(bins_seen[max(0, t + 1 - RECENT_EPOCHS) : t + 1])
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
        recent_bins=_stack_recent(recent_rows),
    )


def _arrival_bins(env: LokiServingEnv) -> np.ndarray:
    """The sub-second arrivals of the epoch just ended (a reset plays the first)."""
    ctx = env.context
    return np.asarray(ctx.arrival_bins if ctx is not None else (), dtype=float)


def _stack_recent(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Each state's last epochs of bins, right-aligned in one NaN-padded array."""
    if not rows:
        return np.zeros((0, 0))
    per = max((len(b) for row in rows for b in row), default=0)
    out = np.full((len(rows), RECENT_EPOCHS * per), np.nan)
    for i, row in enumerate(rows):
        for k, b in enumerate(reversed(row)):  # the latest epoch last
            end = (RECENT_EPOCHS - k) * per
            out[i, end - len(b) : end] = b[-per:] if len(b) > per else b
    return out
