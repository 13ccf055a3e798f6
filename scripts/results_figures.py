"""Figures of docs/results.md from committed tuning records and bench run folders.

Run after ``lokirl bench`` (see docs/results.md, "How to reproduce")::

    python scripts/results_figures.py --validation runs/bench__validation__... \
        --test runs/bench__test__... --img docs/img

Writes ``results_tuning_fronts.png`` (every trial of each tuning grid on
``validation``, with the validation bench's other controllers), and copies each
bench's Pareto plot as ``results_validation_pareto.png`` / ``results_test_pareto.png``;
prints the tuning tables as markdown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

from lokirl.experiments.report import tuning_front_plot, tuning_table
from lokirl.experiments.tuning import TUNED_DIR


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validation", help="run folder of lokirl bench --suite validation")
    ap.add_argument("--test", help="run folder of lokirl bench --suite test")
    ap.add_argument("--img", default="docs/img", help="where the figures go")
    args = ap.parse_args(argv)
    img = Path(args.img)
    img.mkdir(parents=True, exist_ok=True)
    tuned = [
        yaml.safe_load(p.read_text())
        for p in sorted(TUNED_DIR.glob("*.yaml"))
        if p.stem in ("periodic", "trigger")
    ]
    others = []
    if args.validation:
        summary = json.loads((Path(args.validation) / "summary.json").read_text())
        others = [p for p in summary["pareto"] if "(" not in p["controller"]]
        shutil.copy(Path(args.validation) / "pareto.png", img / "results_validation_pareto.png")
    if args.test:
        shutil.copy(Path(args.test) / "pareto.png", img / "results_test_pareto.png")
    if tuned:
        tuning_front_plot(tuned, img / "results_tuning_fronts.png", others)
        for t in tuned:
            print(f"### {t['baseline']} ({len(t['trials'])} trials, {t['episodes']} episodes)\n")
            print(tuning_table(t, top=len(t["trials"])))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
