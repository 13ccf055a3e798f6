"""Do summaries of the demand history predict which ``fluid`` setting wins? (a diagnostic)

Reads a deviation study written by ``benchmarks/study_deviations.py --json F`` (``F`` and
``F.npz``: each state's observation and every deviation's measured gain over following
the fallback) and asks the study's held-out question of features a linear rule cannot
form from the raw history: per state, from the observation's first ``history_s``
entries (the last seconds' demand over the running plan's capacity):

- ``last``: the last second;
- ``mean5``: the mean of the last 5 s;
- ``cv5`` and ``cv16``: the coefficient of variation over the last 5 s and over the whole
  history;
- ``peak``: the history's peak over its mean;
- ``trend``: the last 5 s's mean less the mean of the seconds before, over the history's mean.

A study that kept each state's sub-second arrivals (``recent_bins``, the last few
epochs' 0.05 s counts) adds three features below the per-second history (:data:`SUBSECOND`):

- ``disp1`` and ``disp5``: the index of dispersion (variance over mean) of the bin counts
  in the last epoch and in the last five (1 for Poisson arrivals at a steady rate);
- ``burst5``: the busiest 0.25 s of the last five epochs over their mean 0.25 s.

States early in an episode are kept, as the policy saw them: their history is
zero-padded (the observation's own padding) and their sub-second features cover the
epochs played so far (the reset plays the first).

Only the deviations that follow at another setting are candidates (``follow@...``
columns; following at the study's own setting earns 0). For each ridge penalty it
prints the held-out rule's gain per state with its 95% interval over episodes
(:func:`lokirl.agents.gain_policy.held_out_gain`), on the six summaries alone and on
the whole observation with them appended. Run from the repository root::

    python scripts/deviation_summaries.py \\
        docs/bench_records/2026-12-06_settings_fluid/deviation_study/settings_s50000.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from lokirl.agents.deviations import RECENT_EPOCHS
from lokirl.agents.gain_policy import held_out_gain
from lokirl.envs.features import FeatureSpec

SUMMARIES = ("last", "mean5", "cv5", "cv16", "peak", "trend")
SUBSECOND = ("disp1", "disp5", "burst5")


def history_summaries(obs: np.ndarray, history_s: int) -> np.ndarray:
    """The six summaries (:data:`SUMMARIES`) of each row's demand history."""
    h = np.asarray(obs, dtype=float)[:, :history_s]
    eps = 1e-6
    m5 = h[:, -5:].mean(1)
    m = h.mean(1)
    return np.c_[
        h[:, -1],
        m5,
        h[:, -5:].std(1) / np.maximum(m5, eps),
        h.std(1) / np.maximum(m, eps),
        h.max(1) / np.maximum(m, eps),
        (m5 - h[:, :-5].mean(1)) / np.maximum(m, eps),
    ]


def subsecond_features(recent: np.ndarray, per_epoch: int) -> np.ndarray:
    """The three sub-second features (:data:`SUBSECOND`) of each row of ``recent``.

    ``recent`` holds the last epochs' bin counts, the latest ``per_epoch`` last (NaN
    where there was none); a row without a whole epoch gives NaN features.
    """
    r = np.asarray(recent, dtype=float)
    eps = 1e-6
    last = r[:, -per_epoch:]
    m1 = np.nanmean(last, 1)
    m5 = np.nanmean(r, 1)
    # 0.25 s windows: five bins of 0.05 s
    k = 5
    usable = (r.shape[1] // k) * k
    win = r[:, r.shape[1] - usable :].reshape(len(r), -1, k).sum(2)  # NaN where partial
    return np.c_[
        np.nanvar(last, 1) / np.maximum(m1, eps),
        np.nanvar(r, 1) / np.maximum(m5, eps),
        np.nanmax(win, 1) / np.maximum(np.nanmean(win, 1), eps),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path, help="the study's JSON summary (its .npz beside it)")
    p.add_argument("--ridges", default="1,10,100,300,1000", help="penalties (default 1-1000)")
    args = p.parse_args()
    arrays = args.study.with_suffix(".npz")
    if not args.study.is_file() or not arrays.is_file():
        print(f"{args.study}: needs the study's JSON and {arrays.name} beside it", file=sys.stderr)
        return 2
    labels = list(json.loads(args.study.read_text())["per_action"])
    data = np.load(arrays)
    obs, gains, episode = data["obs"], data["gains"], data["episode"]
    if len(labels) != gains.shape[1]:
        print(f"{args.study}: {len(labels)} labels for {gains.shape[1]} gains", file=sys.stderr)
        return 2
    cols = [i for i, name in enumerate(labels) if name.startswith("follow@")]
    if not cols:
        print(f"{args.study}: no follow@ deviations (a study without follow choices)")
        return 2
    history = next(f.default for f in dataclasses.fields(FeatureSpec) if f.name == "history_s")
    summ = history_summaries(obs, history)
    sets = [("six summaries", summ)]
    if "recent_bins" in data.files and data["recent_bins"].size:
        per = data["recent_bins"].shape[1] // RECENT_EPOCHS  # bins an epoch
        sub = subsecond_features(data["recent_bins"], per)
        keep = np.isfinite(sub).all(1)
        if not keep.all():
            print(f"{(~keep).sum()} states without a whole epoch of bins are left out")
            obs, gains, episode = obs[keep], gains[keep], episode[keep]
            summ, sub = summ[keep], sub[keep]
        sets = [("six summaries", summ), ("six + sub-second", np.c_[summ, sub])]
    sets.append(("observation + all", np.c_[obs, sets[-1][1]]))
    print(
        f"{len(obs)} states, {len(np.unique(episode))} episodes; candidates: "
        f"{', '.join(labels[i] for i in cols)}; best in hindsight "
        f"{np.maximum(gains[:, cols].max(1), 0).mean():+.3f} a state"
    )
    for name, x in sets:
        for r in (float(v) for v in args.ridges.split(",")):
            h = held_out_gain(x, gains[:, cols], episode, r)
            print(
                f"  {name:<18} ridge {r:>6g}: {h['gain_per_state']:+.3f} "
                f"[{h['lo']:+.3f}, {h['hi']:+.3f}] a state, deviating in "
                f"{h['share_deviating']:.0%} of states"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
