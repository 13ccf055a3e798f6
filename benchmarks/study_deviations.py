"""Is there anything for a residual policy to learn? Paired rollouts from its fallback.

Plays episodes of a training configuration's environment with its fallback, branches
every deviation (keep; warm or cold re-solve at each headroom) at sampled states, and
prints what the best deviation gains over following (see
:mod:`lokirl.agents.deviations`). Then asks whether the winning action can be told
from the observation: a softmax classifier (torch) over {follow, deviations} is
fitted on half of the episodes and scored on the other half by the gain its chosen
actions earn there (a policy that always follows earns 0).

    python benchmarks/study_deviations.py --config configs/agents/ppo_residual.yaml \
        --episodes 24 --states 4 --horizon 20 --json runs/deviations.json

With ``--fit PATH`` it also fits a gain policy on every state studied
(:mod:`lokirl.agents.gain_policy`; ``gain:PATH`` as a controller); ``--load`` fits
from the arrays of earlier runs (their ``.npz``, comma-separated) instead of studying.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.progress import Progress

from lokirl.agents.config import load_train_config
from lokirl.agents.deviations import DeviationStudy, study_deviations
from lokirl.agents.gain_policy import fit_gain_model


def held_out_gain(study: DeviationStudy, margin: float, seed: int = 0) -> dict[str, float]:
    """Fit on even episodes, score on odd ones (and the other way); mean gain per state."""
    import torch as th

    th.manual_seed(seed)
    x = study.obs.astype(np.float32)
    gains = np.concatenate([np.zeros((len(x), 1)), study.gains], axis=1)  # col 0: follow
    label = np.where(gains.max(axis=1) > margin, gains.argmax(axis=1), 0)
    out = {"learned_gain": 0.0, "oracle_gain": 0.0, "share_deviating": 0.0, "states": 0}
    for fold in (0, 1):
        tr = study.episode % 2 == fold
        te = ~tr
        if not tr.any() or not te.any():
            continue
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        xt = th.as_tensor((x[tr] - mu) / sd)
        yt = th.as_tensor(label[tr])
        net = th.nn.Sequential(
            th.nn.Linear(x.shape[1], 32), th.nn.Tanh(), th.nn.Linear(32, gains.shape[1])
        )
        opt = th.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)
        for _ in range(300):
            loss = th.nn.functional.cross_entropy(net(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with th.no_grad():
            pick = net(th.as_tensor((x[te] - mu) / sd)).argmax(1).numpy()
        g = gains[te]
        out["learned_gain"] += float(g[np.arange(len(g)), pick].sum())
        out["oracle_gain"] += float(np.maximum(g.max(axis=1), 0).sum())
        out["share_deviating"] += float((pick > 0).sum())
        out["states"] += int(te.sum())
    n = max(1, out["states"])
    return {
        "learned_gain_per_state": out["learned_gain"] / n,
        "oracle_gain_per_state": out["oracle_gain"] / n,
        "share_deviating": out["share_deviating"] / n,
        "states": out["states"],
    }


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
    p.add_argument("--margin", type=float, default=0.05, help="a deviation wins above this")
    p.add_argument("--json", type=Path, help="write the summary (and the arrays beside it)")
    p.add_argument("--fit", type=Path, help="fit a gain policy and write it here")
    p.add_argument("--ridge", type=float, default=10.0, help="its L2 penalty (default 10)")
    p.add_argument("--load", help="fit from these .npz files instead of studying")
    args = p.parse_args()
    env = load_train_config(args.config).env
    if args.engine:
        env = replace(env, engine=args.engine)
    if args.load:
        return fit_from_arrays(args, env)
    t0 = time.perf_counter()
    with Progress() as bar:
        task = bar.add_task("branch states", total=args.episodes * args.states)
        study = study_deviations(
            env,
            episodes=args.episodes,
            states_per_episode=args.states,
            horizon=args.horizon,
            persist=args.persist,
            seed=args.seed,
            progress=lambda n: bar.update(task, completed=n),
        )
    summary = study.summary(args.margin)
    summary["held_out"] = held_out_gain(study, args.margin)
    summary["engine"] = env.engine
    summary["config"] = args.config
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
        )
    if args.fit:
        meta = {"config": args.config, "engine": env.engine, "seed": args.seed}
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
    from lokirl.agents.deviations import _labels, deviation_actions
    from lokirl.envs.serving import LokiServingEnv

    files = [Path(f) for f in args.load.split(",")]
    arrays = [np.load(f) for f in files]
    obs = np.concatenate([a["obs"] for a in arrays])
    gains = np.concatenate([a["gains"] for a in arrays])
    spec = LokiServingEnv(env).features
    meta = {"config": args.config, "engine": env.engine, "from": [f.name for f in files]}
    model = fit_gain_model(
        obs,
        gains,
        deviation_actions(len(env.headrooms)),
        _labels(env),
        spec,
        args.persist,
        args.ridge,
        meta,
    )
    print(f"gain policy from {len(obs)} states: {model.save(args.fit)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
