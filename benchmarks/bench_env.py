"""Environment steps per second: traffic_analysis, 20 workers, about 400 QPS, 1 s epochs.

Run: ``python benchmarks/bench_env.py [--steps 60]``. Plays a steady 400 frames/s
trace (plus a 100 frames/s one for scale) with three policies: keep the plan
(simulation cost alone), re-solve every epoch warm (Loki-like, solver cost
included; the env caches plans by demand rounded to 2%), and random actions; on
the simpy engine and on the fluid surrogate (``--engine``). Then random actions on
the environment settings of a training config (``--train-config``: its trace mix,
engine, solver and time limit): what PPO's first updates cost. With a config that
randomises episodes (``configs/agents/ppo_general.yaml``: version-2 features, a
cluster size, swap mode and load-time scale drawn per episode) the figure includes
the resets, which solve a cluster's capacities the first time its size is drawn;
``--engine none`` times only the training config::

    python benchmarks/bench_env.py --engine none \
        --train-config configs/agents/ppo_general.yaml --episodes 4

The training configs share a plan library on disk (``plan_library``); ``--passes 3``
plays three sets of new episodes over it, and ``--plan-library /tmp/x.sqlite``
starts from an empty one; ``--prefill`` first fills it with every cold plan the
episodes can ask for (``lokirl train --prefill``), and prints how long that took.

A policy's training speed depends on how often it asks for a plan, so each pass also
prints the cost of a step by kind (no plan asked; a plan found in the cache or the
library; a real solve) and, from those, one environment's steps/s at several shares of
solving steps (the rest keeping): PPO's ``time/fps`` follows its policy's own shares
of the three kinds (a policy that has learnt to keep its plan trains several times
faster than one that re-solves).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from lokirl.envs import LokiServingEnv
from lokirl.envs.features import FOLLOW
from lokirl.traces import RateSeries


def run(env: LokiServingEnv, qps: float, steps: int, policy, seed: int = 0) -> tuple[float, float]:
    trace = RateSeries(np.full(steps + 40, qps), 1.0, f"flat{qps:g}")
    env.reset(seed=seed, options={"trace": trace})
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    sub0 = env.sim.r_arrived
    for i in range(steps):
        env.step(policy(i, rng))
    dt = time.perf_counter() - start
    return steps / dt, (env.sim.r_arrived - sub0) / dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument(
        "--engine",
        choices=("simpy", "fluid", "both", "none"),
        default="both",
        help="simulation engine of the fixed-trace runs ('none': only --train-config)",
    )
    ap.add_argument(
        "--train-config",
        default="configs/agents/ppo.yaml",
        help="training YAML whose env settings to time with random actions ('' to skip)",
    )
    ap.add_argument("--episodes", type=int, default=3, help="episodes for --train-config")
    ap.add_argument(
        "--passes",
        type=int,
        default=1,
        help="passes of --episodes new episodes over the same plan library",
    )
    ap.add_argument(
        "--plan-library",
        default=None,
        help="plan library file for --train-config ('' for none; default: the config's)",
    )
    ap.add_argument(
        "--prefill",
        action="store_true",
        help="fill the plan library with every cold plan first (lokirl.agents.prefill)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="processes of --prefill")
    ap.add_argument(
        "--follow-share",
        type=float,
        default=0.0,
        help="share of --train-config steps that follow the config's fallback (FOLLOW; "
        "a residual policy's cloned start follows ~0.93 of the time); the rest random",
    )
    args = ap.parse_args(argv)
    if not 0.0 <= args.follow_share <= 1.0:
        ap.error(f"--follow-share must be in [0, 1], got {args.follow_share}")
    engines = {"both": ("simpy", "fluid"), "none": ()}.get(args.engine, (args.engine,))
    for engine in engines:
        bench(engine, args.steps)
    if args.train_config:
        bench_training(
            args.train_config,
            args.episodes,
            args.passes,
            args.plan_library,
            args.jobs if args.prefill else 0,
            args.follow_share,
        )
    return 0


def bench_training(
    path: str,
    episodes: int,
    passes: int = 1,
    library: str | None = None,
    prefill: int = 0,
    follow_share: float = 0.0,
) -> None:
    """Random actions on a training config's environment (its own trace mix).

    With a plan library (the config's ``plan_library`` or ``library``), each pass
    plays new episodes on the same library: the first pass fills it, later ones
    show what a run costs once the library holds what earlier runs solved. With
    ``follow_share`` > 0 (a config with a fallback) that share of steps follows the
    fallback; a fallback that builds its own plans (``fluid``) asks the allocator
    for none.
    """
    from dataclasses import replace

    from lokirl.agents.config import load_train_config

    cfg = load_train_config(path).env
    if library is not None:
        cfg = replace(cfg, plan_library=library)
    if prefill:
        from lokirl.agents.prefill import prefill_library

        r = prefill_library(cfg, jobs=prefill)
        print(
            f"prefill of {r.library}: {r.visited} cold plans ({r.solved} solved) for clusters "
            f"of {', '.join(map(str, r.clusters))} workers in {r.seconds:.1f} s ({prefill} jobs)",
            flush=True,
        )
    if follow_share > 0 and not cfg.fallback:
        raise SystemExit(f"--follow-share: {path} has no fallback to follow")
    env = LokiServingEnv(cfg)
    lib = env.planner.library
    rng = np.random.default_rng(0)
    for p in range(passes):
        steps = 0
        drawn = []
        hits0, misses0 = env.planner.hits, env.planner.misses
        # seconds per step by what the step cost: no plan asked, a plan handed out by
        # the cache or the library, a real solve
        split: dict[str, list[float]] = {"keep": [], "plan found": [], "solved": []}
        followed = 0
        start = time.perf_counter()
        for ep in range(episodes):
            _, info = env.reset(seed=p * 10_000 + ep)
            drawn.append(f"{info['workers']}w/{info['swap']}/x{info['load_scale']:g}")
            for _ in range(int(cfg.episode_s / cfg.epoch_s)):
                h, m = env.planner.hits, env.planner.misses
                t = time.perf_counter()
                if follow_share > 0 and rng.random() < follow_share:
                    env.step((FOLLOW, 0))
                    followed += 1
                else:
                    env.step((int(rng.integers(3)), int(rng.integers(len(cfg.headrooms)))))
                kind = (
                    "solved"
                    if env.planner.misses > m
                    else "plan found"
                    if env.planner.hits > h
                    else "keep"
                )
                split[kind].append(time.perf_counter() - t)
                steps += 1
        dt = time.perf_counter() - start
        hits, misses = env.planner.hits - hits0, env.planner.misses - misses0
        shared = f"; library {cfg.plan_library}: {lib.count()} plans" if lib is not None else ""
        print(
            f"training settings of {path} (engine {cfg.engine}, solver {cfg.solver}, "
            f"features v{cfg.feature_version}), pass {p + 1}/{passes}: "
            f"{'random actions' if not followed else f'{followed / steps:.0%} following'} "
            f"{steps / dt:.1f} steps/s over {episodes} episodes ({', '.join(drawn)}); "
            f"plan cache {hits} hits, {misses} solves ({hits / max(1, hits + misses):.0%} hits)"
            f"{shared}",
            flush=True,
        )
        # A policy's speed depends on how often it asks for a plan: from these costs,
        # steps/s of one environment at any share of solving steps.
        cost = {k: (sum(v) / len(v) if v else float("nan")) for k, v in split.items()}
        print(
            "  ms per step: "
            + ", ".join(f"{k} {1000 * c:.2f} ({len(split[k])} steps)" for k, c in cost.items())
            + "; one env at a share s of steps solving (the rest keeping): "
            + ", ".join(
                f"s={s:.0%} {1 / (s * cost['solved'] + (1 - s) * cost['keep']):.0f} steps/s"
                for s in (0.0, 0.1, 0.3, 0.67, 1.0)
            ),
            flush=True,
        )


def bench(engine: str, steps: int) -> None:
    """Print steps/s of each policy at 400 and 100 frames/s on one engine."""
    env = LokiServingEnv(pipeline="traffic_analysis", workers=20, engine=engine)
    print(f"engine: {engine}")
    policies = {
        "keep": lambda i, rng: (0, 1),
        "re-solve warm every epoch": lambda i, rng: (1, 1),
        "random": lambda i, rng: (int(rng.integers(3)), int(rng.integers(5))),
    }
    print(f"{'qps':>5} {'policy':<28} {'steps/s':>8} {'sub-requests/s':>15}")
    for qps in (400.0, 100.0):
        for name, pol in policies.items():
            sps, rps = run(env, qps, steps, pol)
            print(f"{qps:>5.0f} {name:<28} {sps:>8.1f} {rps:>15.0f}", flush=True)
    print(f"plan cache: {env.planner.hits} hits, {env.planner.misses} misses\n")


if __name__ == "__main__":
    sys.exit(main())
