"""The fluid surrogate against the simpy simulator on a policy's own trajectories.

Run: ``python benchmarks/bench_surrogate.py [--policy PATH] [--seeds 3] [--steps 120]``.
Plays the policy (default: ``ppo-v1``, the first round's, which the figures quoted in the
docs were measured with) on the environment of its training
config (``config.yaml`` beside ``model.zip``; the simpy engine) and replays its
decisions on the fluid engine, then lets it act on the fluid engine too, and prints
per-step reward errors and per-feature observation distances
(:mod:`lokirl.experiments.surrogate`). Deterministic solves (node-limited), so the
figures repeat; they do not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from lokirl.agents.adapter import PPOController, shipped_policy_paths
from lokirl.agents.config import load_train_config
from lokirl.experiments.surrogate import surrogate_check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", help="model.zip of a trained policy (default: ppo-v1's)")
    ap.add_argument("--seeds", type=int, default=3, help="episodes (seeds 0..N-1)")
    ap.add_argument("--steps", type=int, default=120, help="epochs per episode")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    model = Path(args.policy) if args.policy else (shipped_policy_paths("ppo-v1") or [])[0]
    # The env solves deterministically (work-bounded) with modelled solver time.
    cfg = replace(load_train_config(model.parent / "config.yaml").env, solver_time="model")
    t0 = time.perf_counter()
    rep = surrogate_check(
        cfg, lambda env: PPOController(str(model)), range(args.seeds), max_steps=args.steps
    )
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        print(f"policy: {model}")
        for line in rep.lines():
            print(line)
        print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
