"""Is there anything for a residual policy to learn? Paired rollouts from its fallback.

Plays episodes of a training configuration's environment with its fallback, branches
every deviation (keep; warm or cold re-solve at each headroom) at sampled states, and
prints what the best deviation gains over following (see
:mod:`lokirl.agents.deviations`). Then asks whether the winning action can be told
from the observation: a softmax classifier (torch) over {follow, deviations} is
cross-fitted by episode (ridge regressions of each deviation's gain, the gain policy's
rule) and scored on the held-out episodes by the gain its chosen actions earn there
(a policy that always follows earns 0).

    python benchmarks/study_deviations.py --config configs/agents/ppo_residual.yaml \
        --episodes 24 --states 4 --horizon 20 --json runs/deviations.json

With ``--fit PATH`` it also fits a gain policy on every state studied
(:mod:`lokirl.agents.gain_policy`; ``gain:PATH`` as a controller); ``--load`` fits
from the arrays of earlier runs (their ``.npz``, comma-separated) instead of studying.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.progress import Progress

from lokirl.agents.config import load_train_config
from lokirl.agents.deviations import study_deviations
from lokirl.agents.gain_policy import fit_gain_model, held_out_gain, load_gain_model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/agents/ppo_residual.yaml")
    p.add_argument("--episodes", type=int, default=24)
    p.add_argument("--states", type=int, default=4, help="branch states per episode")
    p.add_argument("--horizon", type=int, default=20, help="epochs compared after a branch")
    p.add_argument(
        "--persist", type=int, default=1, help="epochs a deviation is played (default 1)"
    )
    p.add_argument("--seed", type=int, default=1000, help="first episode seed")
    p.add_argument("--engine", choices=("fluid", "simpy"), help="default: the config's")
    p.add_argument(
        "--branch",
        choices=("fork", "replay"),
        default="fork",
        help="fork the process at each branch state (default) or replay every branch "
        "from the reset; the figures are the same",
    )
    p.add_argument(
        "--behaviour",
        metavar="PATH",
        help="play the episodes with this gain policy (its own states, as in DAgger) "
        "instead of the fallback; gains are then against following from each state",
    )
    p.add_argument("--jobs", type=int, default=1, help="forked branches played at once")
    p.add_argument("--margin", type=float, default=0.05, help="a deviation wins above this")
    p.add_argument("--json", type=Path, help="write the summary (and the arrays beside it)")
    p.add_argument("--fit", type=Path, help="fit a gain policy and write it here")
    p.add_argument("--ridge", type=float, default=10.0, help="its L2 penalty (default 10)")
    p.add_argument("--load", help="fit from these .npz files instead of studying")
    p.add_argument(
        "--ridges",
        default="1,10,100,300,1000",
        help="penalties scored held out (default %(default)s)",
    )
    args = p.parse_args()
    env = load_train_config(args.config).env
    if (args.fit or args.load) and (env.follow_horizons or env.follow_settings):
        p.error(
            f"--fit/--load: {args.config} lets FOLLOW choose a horizon or setting; a gain "
            "policy follows the fallback as it is: study it without --fit/--load"
        )
    if args.engine:
        env = replace(env, engine=args.engine)
    if args.load:
        return fit_from_arrays(args, env)
    behaviour = None
    if args.behaviour:
        behaviour = load_gain_model(args.behaviour).behaviour()
    t0 = time.perf_counter()
    total = args.episodes * args.states
    with Progress() as bar:
        task = bar.add_task("branch states", total=total)

        def progress(n: int) -> None:
            bar.update(task, completed=n)
            if not bar.console.is_terminal and (n % max(1, total // 20) == 0 or n == total):
                # No live bar off a terminal (a log file): a plain line every 5%.
                el = time.perf_counter() - t0
                print(f"{n}/{total} branch states, {el:.0f} s", flush=True)

        study = study_deviations(
            env,
            episodes=args.episodes,
            states_per_episode=args.states,
            horizon=args.horizon,
            persist=args.persist,
            seed=args.seed,
            progress=progress,
            branch=args.branch,
            jobs=args.jobs,
            behaviour=behaviour,
        )
    if not sys.stdout.isatty():
        print(f"done: {len(study.obs)} branch states, {time.perf_counter() - t0:.0f} s", flush=True)
    summary = study.summary(args.margin)
    summary["held_out"] = [
        held_out_gain(study.obs, study.gains, study.episode, float(r))
        for r in args.ridges.split(",")
    ]
    summary["engine"] = env.engine
    summary["config"] = args.config
    summary["behaviour"] = args.behaviour or "fallback"
    summary["wall_s"] = time.perf_counter() - t0
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
        np.savez_compressed(
            args.json.with_suffix(".npz"),
            obs=study.obs,
            gains=study.gains,
            base_window=study.base_window,
            episode=study.episode,
            step=study.step,
            recent_bins=study.recent_bins,
        )
    if args.fit:
        meta = {
            "config": args.config,
            "engine": env.engine,
            "seed": args.seed,
            "behaviour": args.behaviour or "fallback",
        }
        model = fit_gain_model(
            study.obs,
            study.gains,
            study.actions,
            study.labels,
            study.spec,
            study.persist,
            args.ridge,
            meta,
        )
        print(f"gain policy: {model.save(args.fit)}")
    return 0


def fit_from_arrays(args: argparse.Namespace, env) -> int:
    """Fit a gain policy from the ``.npz`` arrays of earlier studies of this config."""
    from lokirl.agents.deviations import deviation_actions, deviation_labels
    from lokirl.envs.serving import LokiServingEnv

    files = [Path(f) for f in args.load.split(",")]
    arrays = [np.load(f) for f in files]
    obs = np.concatenate([a["obs"] for a in arrays])
    gains = np.concatenate([a["gains"] for a in arrays])
    # episodes of different files are different episodes
    episode = np.concatenate([a["episode"] + 100_000 * i for i, a in enumerate(arrays)])
    held = [held_out_gain(obs, gains, episode, float(r)) for r in args.ridges.split(",")]
    print(json.dumps({"states": len(obs), "held_out": held}, indent=2))
    spec = LokiServingEnv(env).features
    meta = {"config": args.config, "engine": env.engine, "from": [f.name for f in files]}
    if not args.fit:
        return 0
    model = fit_gain_model(
        obs,
        gains,
        deviation_actions(len(env.headrooms)),
        deviation_labels(env),
        spec,
        args.persist,
        args.ridge,
        meta,
    )
    print(f"gain policy from {len(obs)} states: {model.save(args.fit)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
