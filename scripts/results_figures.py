"""Figures of docs/results.md from committed tuning records and bench run folders.

Run after ``lokirl bench`` (see docs/results.md, "How to reproduce")::

    python scripts/results_figures.py --validation runs/bench__validation__... \
        --test runs/bench__test__... --img docs/img

Writes ``results_tuning_fronts.png`` (every trial of each tuning grid on
``validation``, with the validation bench's other controllers), and copies each
bench's Pareto plot as ``results_validation_pareto.png`` / ``results_test_pareto.png``;
prints the tuning tables as markdown. With ``--budgets 1,5``: also
``results_budget_front.png`` (every trial of every committed search, ``fluid`` and
``hindsight`` included, a method's reward and budgeted searches pooled, with the budgets
drawn) and each method's best setting within each budget
(``lokirl.experiments.report.budget_table``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

from lokirl.experiments.report import budget_table, tuning_front_plot, tuning_table
from lokirl.experiments.tuning import TUNED_DIR


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validation", help="run folder of lokirl bench --suite validation")
    ap.add_argument("--test", help="run folder of lokirl bench --suite test")
    ap.add_argument("--img", default="docs/img", help="where the figures go")
    ap.add_argument(
        "--budgets",
        help="frame-violation budgets in percent, comma-separated (e.g. 1,5): adds the "
        "budget front of every committed search",
    )
    args = ap.parse_args(argv)
    budgets: list[float] = []
    if args.budgets:
        try:
            budgets = [float(b) / 100 for b in args.budgets.split(",")]
        except ValueError:
            ap.error(f"--budgets: percentages separated by commas, e.g. 1,5; got {args.budgets!r}")
        if any(not 0 <= b < 1 for b in budgets):
            ap.error(f"--budgets: each in [0, 100) percent; got {args.budgets!r}")
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
    if budgets:
        # every search of a method's grid on validation pooled: the reward's and the
        # budgeted ones (NAME-bPCT.yaml), each setting once
        every = []
        for m in ("periodic", "trigger", "fluid", "hindsight"):
            runs = [yaml.safe_load((TUNED_DIR / f"{m}.yaml").read_text())]
            runs += [yaml.safe_load(p.read_text()) for p in sorted(TUNED_DIR.glob(f"{m}-b*.yaml"))]
            trials = list({t["spec"]: t for r in runs for t in r["trials"]}.values())
            every.append({**runs[0], "trials": trials})
        tuning_front_plot(every, img / "results_budget_front.png", budgets=budgets)
        print(budget_table(every, budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
