"""What does a policy with FOLLOW choices pick, state by state? (a diagnostic)

Plays a few episodes of a training file's environment following its fallback at the
fallback's own horizon or setting, keeps every observation, and prints each policy's
action probabilities over those states: P(FOLLOW) (mean and range), the mean
probability of each FOLLOW index and how far it moves across states, and how often each
kind and index is the most likely. A policy that picks the same thing in every state
(ranges near 0) has learnt a constant, whatever its average. Run from the repository
root, e.g.::

    python scripts/policy_probe.py configs/agents/ppo_settings_fluid_budget5.yaml \\
        docs/bench_records/2026-12-06_settings_fluid/models_1m/b5/s6/model.zip

The states (seeds 777000 onwards, four episodes of the file's length) are the same for
every policy and every run.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="the training YAML the policies were trained with")
    p.add_argument("models", nargs="+", help="policy files (model.zip)")
    p.add_argument("--episodes", type=int, default=4, help="episodes played (default 4)")
    p.add_argument("--seed", type=int, default=777000, help="first episode seed")
    args = p.parse_args()

    import torch
    from stable_baselines3 import PPO

    from lokirl.agents.config import load_train_config
    from lokirl.core.controllers import make_controller
    from lokirl.envs import LokiServingEnv
    from lokirl.envs.features import FOLLOW, own_follow_index

    cfg = load_train_config(args.config).env
    if not cfg.fallback:
        print(f"{args.config}: env.fallback is empty: nothing to follow", file=sys.stderr)
        return 2
    env = LokiServingEnv(cfg)
    own = own_follow_index(env.features, make_controller(cfg.fallback))
    observations = []
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + ep)
        for _ in range(int(cfg.episode_s / cfg.epoch_s)):
            observations.append(obs)
            obs, _, terminated, truncated, _ = env.step((FOLLOW, own))
            if terminated or truncated:
                break
    x = torch.as_tensor(np.asarray(observations), dtype=torch.float32)
    print(f"{len(x)} states ({args.episodes} episodes from seed {args.seed}, following)")
    for path in args.models:
        model = PPO.load(path, device="cpu")
        with torch.no_grad():
            dist = model.policy.get_distribution(x).distribution
        kind, index = dist[0].probs.numpy(), dist[1].probs.numpy()
        pf = kind[:, FOLLOW]
        print(path)
        print(f"  P(FOLLOW) mean {pf.mean():.3f}, range {pf.min():.3f}-{pf.max():.3f}")
        print(
            f"  P(index) mean {[round(float(v), 3) for v in index.mean(0)]}, "
            f"range across states {[round(float(v), 3) for v in index.max(0) - index.min(0)]}"
        )
        print(
            f"  most likely kind FOLLOW in {(kind.argmax(1) == FOLLOW).mean():.0%} of states; "
            f"most likely index per state {np.bincount(index.argmax(1), minlength=index.shape[1]).tolist()}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
