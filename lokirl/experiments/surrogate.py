"""Is the fluid surrogate faithful where training uses it? Checked on a policy's own path.

Training may run on the flow-level engine (:class:`~lokirl.sim.fluid.FluidSimulation`)
because it is faster; every reported number comes from the discrete-event simulator.
Episode totals can agree while the step-by-step signal a policy learns from does
not, so the check works per step, on the trajectories the policy itself produces:

1. **Open loop.** The policy plays an episode on the simpy engine; its decisions,
   observations and rewards are recorded. The same decisions are replayed, epoch by
   epoch, on the fluid engine (same trace, cluster and seed). The per-step reward
   errors (mean absolute error, bias, correlation) and the per-feature observation
   errors say how well the surrogate predicts the consequences of the very actions
   the policy takes.
2. **Closed loop.** The policy also plays the episode on the fluid engine, choosing
   its own actions there. The two-sample Kolmogorov-Smirnov distance between the
   observation distributions of the two engines, feature by feature, says whether
   the policy visits the same states in training as in evaluation.

``benchmarks/bench_surrogate.py`` prints the report for a policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lokirl.agents.rollout import act
from lokirl.core.controller import Decision
from lokirl.envs.serving import EnvConfig, LokiServingEnv


@dataclass(frozen=True)
class Trajectory:
    """One episode step by step.

    Attributes:
        decisions: The decision of each epoch.
        observations: The observation before each decision (steps x features).
        rewards: The reward of each epoch.

    """

    decisions: list[Decision]
    observations: np.ndarray
    rewards: np.ndarray


def play(
    env: LokiServingEnv,
    make_actor: Callable[[LokiServingEnv], Any],
    seed: int,
    decisions: Sequence[Decision] | None = None,
    max_steps: int | None = None,
) -> Trajectory:
    """Play one episode, recording each step; replay ``decisions`` if given (open loop).

    Args:
        env: The environment (either engine).
        make_actor: A trained policy (``predict``) or a controller (``decide``).
        seed: Episode seed (the same trace and cluster on both engines).
        decisions: Decisions to replay instead of asking the actor.
        max_steps: Stop after this many epochs.

    """
    from lokirl.core.binding import bind_controller

    obs, _ = env.reset(seed=seed, options={"defer_first_plan": True})
    actor = make_actor(env)
    bind_controller(actor, env.pipeline, env.cluster, env.swap)
    limit = int(np.ceil(env.sim.trace_end / env.config.epoch_s))
    if max_steps is not None:
        limit = min(limit, max_steps)
    if decisions is not None:
        limit = min(limit, len(decisions))
    out_d: list[Decision] = []
    out_o: list[np.ndarray] = []
    out_r: list[float] = []
    for step in range(limit):
        if decisions is not None:
            decision, planner = decisions[step], None
        else:
            decision, planner = act(actor, env, obs)
        out_o.append(np.asarray(obs, dtype=float))
        out_d.append(decision)
        obs, reward, terminated, _, _ = env.advance(decision, planner=planner)
        out_r.append(float(reward))
        if terminated:
            break
    return Trajectory(out_d, np.array(out_o), np.array(out_r))


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if not len(a) or not len(b):
        return float("nan")
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


@dataclass(frozen=True)
class SurrogateReport:
    """Fluid engine against simpy on a policy's trajectories.

    Attributes:
        seeds: Episode seeds played.
        steps: Epochs compared in the open-loop replay (all episodes).
        reward_mae: Mean absolute per-step reward error of the fluid replay.
        reward_bias: Mean per-step (fluid - simpy) reward.
        reward_corr: Correlation of per-step rewards (simpy vs fluid replay).
        reward_scale: Mean absolute per-step simpy reward (to read the errors by).
        episode_simpy: Episode reward on simpy, per seed.
        episode_fluid_replay: The same decisions on fluid, per seed.
        episode_fluid_closed: The policy acting on fluid, per seed.
        obs_mae: Per feature, mean absolute open-loop observation error.
        obs_ks: Per feature, KS distance of closed-loop observation distributions.

    """

    seeds: tuple[int, ...]
    steps: int
    reward_mae: float
    reward_bias: float
    reward_corr: float
    reward_scale: float
    episode_simpy: tuple[float, ...]
    episode_fluid_replay: tuple[float, ...]
    episode_fluid_closed: tuple[float, ...]
    obs_mae: tuple[float, ...]
    obs_ks: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    def lines(self) -> list[str]:
        """A short human-readable report."""
        worst = int(np.nanargmax(self.obs_ks)) if self.obs_ks else -1
        return [
            f"episodes (seeds {', '.join(map(str, self.seeds))}), {self.steps} steps compared",
            f"per-step reward: simpy mean |r| {self.reward_scale:.3f}; fluid replay MAE "
            f"{self.reward_mae:.3f}, bias {self.reward_bias:+.3f}, correlation "
            f"{self.reward_corr:.3f}",
            "episode reward simpy / fluid replay / fluid closed loop: "
            + "; ".join(
                f"{a:.1f} / {b:.1f} / {c:.1f}"
                for a, b, c in zip(
                    self.episode_simpy,
                    self.episode_fluid_replay,
                    self.episode_fluid_closed,
                    strict=True,
                )
            ),
            f"observations: open-loop MAE mean {np.nanmean(self.obs_mae):.3f} (max "
            f"{np.nanmax(self.obs_mae):.3f}); closed-loop KS mean {np.nanmean(self.obs_ks):.3f}"
            f" (max {np.nanmax(self.obs_ks):.3f} at feature {worst})",
        ]


def surrogate_check(
    config: EnvConfig,
    make_actor: Callable[[LokiServingEnv], Any],
    seeds: Sequence[int],
    max_steps: int | None = None,
) -> SurrogateReport:
    """Compare the fluid engine with simpy on ``make_actor``'s trajectories.

    Args:
        config: The environment (its ``engine`` is overridden for each side).
        make_actor: The policy or controller.
        seeds: Episode seeds.
        max_steps: Epochs per episode (default: whole episodes).

    """
    simpy_env = LokiServingEnv(replace(config, engine="simpy"))
    fluid_env = LokiServingEnv(replace(config, engine="fluid"))
    r_s, r_f, o_s, o_f, o_c = [], [], [], [], []
    ep_s, ep_f, ep_c = [], [], []
    for seed in seeds:
        ts = play(simpy_env, make_actor, seed, max_steps=max_steps)
        tf = play(fluid_env, make_actor, seed, decisions=ts.decisions)
        tc = play(fluid_env, make_actor, seed, max_steps=max_steps)
        n = min(len(ts.rewards), len(tf.rewards))
        r_s.append(ts.rewards[:n])
        r_f.append(tf.rewards[:n])
        o_s.append(ts.observations[:n])
        o_f.append(tf.observations[:n])
        o_c.append(tc.observations)
        ep_s.append(float(ts.rewards.sum()))
        ep_f.append(float(tf.rewards.sum()))
        ep_c.append(float(tc.rewards.sum()))
    rs, rf = np.concatenate(r_s), np.concatenate(r_f)
    os_, of, oc = np.concatenate(o_s), np.concatenate(o_f), np.concatenate(o_c)
    corr = float(np.corrcoef(rs, rf)[0, 1]) if len(rs) > 1 and rs.std() and rf.std() else 0.0
    return SurrogateReport(
        seeds=tuple(int(s) for s in seeds),
        steps=len(rs),
        reward_mae=float(np.mean(np.abs(rf - rs))),
        reward_bias=float(np.mean(rf - rs)),
        reward_corr=corr,
        reward_scale=float(np.mean(np.abs(rs))),
        episode_simpy=tuple(ep_s),
        episode_fluid_replay=tuple(ep_f),
        episode_fluid_closed=tuple(ep_c),
        obs_mae=tuple(float(x) for x in np.mean(np.abs(of - os_), axis=0)),
        obs_ks=tuple(ks_distance(os_[:, j], oc[:, j]) for j in range(os_.shape[1])),
    )
