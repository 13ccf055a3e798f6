"""Rescore a ``lokirl bench`` run under another worker weight, behaviour held fixed.

The reward charges ``workers`` x the share of the cluster's workers active, each epoch
(:class:`lokirl.envs.serving.RewardWeights`; 0.05 in every run ``lokirl bench`` has
recorded). A user who pays per worker would weigh it more. Holding every controller's
recorded behaviour fixed, an episode's reward at weight ``W`` is::

    reward - (W - recorded) x steps x mean_active_workers / workers

(one-second epochs: the sum over epochs of each epoch's active share; exact for episodes
of whole seconds, as every recorded one is: an epoch ending inside a second would charge
that second twice). A folder rescored before is rescored from the weight its meta records.
The script writes
a copy of the run folder with every row's reward so rescored, which ``lokirl bench
--from`` reads like any run (pooling, paired intervals over cases, families)::

    python scripts/rescore_workers.py docs/bench_records/.../test_whole --weight 0.3 \
        --out /tmp/rescored_0.3
    lokirl bench --from /tmp/rescored_0.3 --reference trigger-tuned --no-mlflow \
        --pool "pool=ppo:*models_sm3_1500k*"

Behaviour held fixed is the limit of the reading: a controller that optimised the heavier
weight would act otherwise (``fluid`` and the learned policies use the weights; the
periodic MILP's and the trigger's decisions do not, but their tuned settings were searched
under 0.05). Rows of pooled
controllers written by ``lokirl bench`` are dropped (``--from`` pools again with
``--pool``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from lokirl.errors import ConfigError
from lokirl.experiments.runner import Results

#: The worker weight every recorded run was played under.
RECORDED_WEIGHT = 0.05


def rescored_reward(row: dict, weight: float, recorded: float = RECORDED_WEIGHT) -> float:
    """``row``'s reward had the worker weight been ``weight`` (its behaviour unchanged).

    Args:
        row: A ``per_episode.json`` row (``reward``, ``steps``, ``mean_active_workers``,
            ``workers``).
        weight: The worker weight to score under.
        recorded: The weight the row was played under.

    """
    if row.get("error") or not row.get("steps"):
        return row["reward"]
    active_epochs = row["steps"] * row["mean_active_workers"] / row["workers"]
    return row["reward"] - (weight - recorded) * active_epochs


def rescore_run(src: Path, dst: Path, weight: float) -> int:
    """Copy run folder ``src`` to ``dst`` with every played row rescored; rows written.

    ``src`` may be a record folder that keeps its table gzipped (``per_episode.json.gz``);
    ``dst`` gets a plain ``per_episode.json``.

    Raises:
        ConfigError: ``src`` has no readable per-episode table (nothing is written).
        FileExistsError: ``dst`` exists.

    """
    data = Results.read(src, "run").to_dict()
    recorded = float(data["meta"].get("rescored_worker_weight", {}).get("to", RECORDED_WEIGHT))
    dst.mkdir(parents=True)
    if (src / "config.yaml").is_file():
        shutil.copy(src / "config.yaml", dst / "config.yaml")
    rows = []
    for row in data["rows"]:
        if "members" in row:  # a pooled row: --from pools the members again (--pool)
            continue
        row = dict(row)
        row["reward"] = rescored_reward(row, weight, recorded)
        rows.append(row)
    meta = dict(data["meta"])
    played = {r["controller"] for r in rows}
    meta["controllers"] = [c for c in meta.get("controllers", []) if c in played]
    meta["rescored_worker_weight"] = {"from": recorded, "to": weight}
    (dst / "per_episode.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "run", help="a lokirl bench run folder or record folder (per_episode.json, or .json.gz)"
    )
    p.add_argument("--weight", type=float, required=True, help="worker weight to score under")
    p.add_argument("--out", required=True, help="new run folder to write (must not exist)")
    args = p.parse_args(argv)
    if not (math.isfinite(args.weight) and args.weight >= 0):
        print(f"rescore_workers: --weight {args.weight}: must be >= 0", file=sys.stderr)
        return 2
    src, dst = Path(args.run), Path(args.out)
    if dst.exists():
        print(f"rescore_workers: {dst} exists; give a new folder", file=sys.stderr)
        return 2
    try:
        n = rescore_run(src, dst, args.weight)
    except ConfigError as exc:
        print(f"rescore_workers: {exc}", file=sys.stderr)
        return 2
    print(
        f"{n} episodes rescored at worker weight {args.weight:g} into {dst}; pooled rows "
        "were dropped: name the pools again with lokirl bench --from DIR --pool NAME=PATTERN"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
