"""``lokirl reproduce``: regenerate the simulator's check of Loki's headline claims.

The experiments (effective capacity, peak-load traces, active workers at low load,
violations where capacity exceeds demand, the authors' own metrics) live in
:mod:`lokirl.experiments.reproduction`; their tables and figures in
:mod:`lokirl.experiments.reproduction_report`. See docs/reproduction.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from lokirl.commands.stdout import strict_json
from lokirl.core.reconfig import SWAP_MODES, swap_help
from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl reproduce --quick             # a few minutes: one seed, coarse search, 10x traces
  lokirl reproduce --out runs/repro    # full version (an hour or more on two busy cores)
  lokirl reproduce --swap free --out runs/repro_free   # the Loki authors' free swaps
  lokirl reproduce --compare runs/repro_free runs/repro_stop runs/repro_overlap
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` subcommand."""
    p = subparsers.add_parser(
        "reproduce",
        help="re-run the simulator experiments behind docs/reproduction.md",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="coarse version (one seed, short runs)")
    p.add_argument("--workers", type=int, default=20, help="workers (default: 20)")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for tables.md, results.json and img/*.png (default: a new run folder)",
    )
    p.add_argument(
        "--swap",
        default="overlap",
        choices=SWAP_MODES,
        help=f"how a worker changes variant (default: overlap; Loki's own simulator: free). "
        f"{swap_help()}",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="instead of running: put the results.json of earlier runs (one per swap mode) "
        "side by side, claims and fidelity (written to --out/comparison.md when --out is given)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON (no progress; otherwise a live bar on a terminal, "
        "elsewhere a line on stderr as each experiment starts)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl reproduce``."""
    from lokirl.commands.plan import make_console
    from lokirl.experiments.reproduction import FULL, QUICK, Settings, run_reproduction
    from lokirl.experiments.reproduction_report import write_reproduction
    from lokirl.tracking import run_dir
    from lokirl.tracking.progress import StageLines, live_bar

    if args.compare:
        return compare(args.compare, args.out)
    from lokirl.commands.options import check_workers
    from lokirl.core.pipeline_config import load_pipeline

    check_workers(load_pipeline("traffic_analysis"), args.workers)  # the runs' pipeline
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigError("--out", str(args.out), "is a file", "name a folder (made if missing)")
    base = QUICK if args.quick else FULL
    settings = Settings(**{**asdict(base), "workers": args.workers, "swap": args.swap})
    out = args.out or run_dir("reproduce", "quick" if args.quick else "full")
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    console = make_console()
    lines = StageLines("reproduce", "simulations", enabled=not args.json)

    def tick() -> None:
        bar.advance(task)
        lines.tick()

    def on_stage(description: str) -> None:
        bar.update(task, description=description)
        lines.stage(description)

    with live_bar(transient=True, disable=args.json) as bar:
        task = bar.add_task("simulations", total=None)
        results = run_reproduction(settings, img, tick=tick, on_stage=on_stage)
    tables = write_reproduction(results, out)
    lines.finish()
    if args.json:
        print(strict_json(results, indent=2))
    else:
        console.print(tables)
        console.print(f"written: {out / 'tables.md'}, {out / 'results.json'}, {img}")
    return 0


def compare(dirs: Sequence[Path], out: Path | None) -> int:
    """Handle ``lokirl reproduce --compare``: runs side by side, one column per swap mode."""
    from lokirl.experiments.reproduction_report import compare_runs

    print(compare_runs(dirs, out))
    return 0
