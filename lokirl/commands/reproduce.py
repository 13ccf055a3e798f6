"""``lokirl reproduce``: regenerate the simulator's check of Loki's headline claims.

Three experiments on traffic_analysis, 20 workers (see docs/reproduction.md):

1. **Effective capacity**: steady Poisson demand on a grid; the largest demand
   whose frame-level SLO violation ratio stays <= 1% (and <= 5%, and per
   sub-request), for Loki (accuracy scaling) and InferLine-like (hardware scaling
   only). Paper: > 2.7x.
2. **Peak-load trace**: the diurnal day (50 -> 425 -> 50 QPS) for Loki,
   InferLine-like, Proteus-like and static peak provisioning: violations (frame
   and sub-request) and accuracy. Paper: up to 10x fewer violations than the
   baselines.
3. **Active workers at low load**: Loki's mean active workers on the steady grid
   versus peak provisioning (all 20 workers). Paper: up to 2.67x fewer.

Plus the design's check that violations are near zero wherever the running plan's
capacity exceeds the demand (seconds of the diurnal runs split by capacity/demand).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

GRID_CONTROLLERS = ("loki", "inferline", "loki-h1.2", "inferline-h1.2")
DIURNAL_CONTROLLERS = ("loki", "loki-h1.2", "inferline", "inferline-h1.2", "proteus", "static")

EPILOG = """\
examples:
  lokirl reproduce --quick             # about a minute: coarse grid, short runs
  lokirl reproduce --out docs          # full version; tables + docs/img/*.png
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
    p.add_argument("--quick", action="store_true", help="short version (coarse grid, short runs)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--workers", type=int, default=20, help="workers (default: 20)")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for tables.md, results.json and img/*.png (default: a new run folder)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=run)


def _steady(pipeline, cluster, controller, demand, seconds, seed, cache):
    import numpy as np

    from lokirl.core.controllers import make_controller
    from lokirl.sim import SimConfig, simulate
    from lokirl.traces import RateSeries

    trace = RateSeries(np.full(seconds, float(demand)), name=f"steady{demand:g}")
    cfg = SimConfig(demand_quantum=5.0, initial_demand=float(demand))
    return simulate(
        pipeline,
        cluster,
        trace,
        make_controller(controller),
        cfg,
        np.random.default_rng(seed),
        plan_cache=cache,
    )


def run(args: argparse.Namespace) -> int:  # noqa: C901 - a script, top to bottom
    """Handle ``lokirl reproduce``."""
    import numpy as np
    from rich.progress import Progress

    import lokirl.sim  # noqa: F401
    from lokirl.commands.plan import make_console
    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.sim import SimConfig, simulate
    from lokirl.sim.plots import plot_results
    from lokirl.traces import rescale, resolve_trace, speedup
    from lokirl.tracking import run_dir

    pipeline = load_pipeline("traffic_analysis")
    cluster = Cluster.homogeneous(pipeline, args.workers)
    out = args.out or run_dir("reproduce", "quick" if args.quick else "full")
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    grid = list(range(50, 701, 50)) if not args.quick else [50, 100, 200, 300, 400, 600]
    seconds = 12 if args.quick else 30
    cache: dict = {}
    results: dict = {"grid": {}, "diurnal": {}, "settings": {}}
    results["settings"] = {
        "workers": args.workers,
        "grid": grid,
        "steady_seconds": seconds,
        "seed": args.seed,
        "quick": args.quick,
    }
    console = make_console()
    with Progress(console=console, transient=True, disable=args.json) as bar:
        t1 = bar.add_task("steady grid", total=len(GRID_CONTROLLERS) * len(grid))
        for ctl in GRID_CONTROLLERS:
            rows = []
            for d in grid:
                r = _steady(pipeline, cluster, ctl, d, seconds, args.seed, cache)
                rows.append(
                    {
                        "demand": d,
                        "frame_violation_ratio": r.frame_violation_ratio,
                        "sub_violation_ratio": r.sub_violation_ratio,
                        "accuracy": r.accuracy,
                        "mean_active_workers": r.mean_active_workers,
                        "capacity": float(np.mean(r.series["capacity"][:seconds])),
                    }
                )
                bar.advance(t1)
            results["grid"][ctl] = rows
        # Peak-load trace: the diurnal day, compressed.
        factor = 10.0 if args.quick else 2.0
        trace = rescale(speedup(resolve_trace("diurnal_600s"), factor), 50, 425)
        t2 = bar.add_task("diurnal", total=len(DIURNAL_CONTROLLERS))
        diurnal = []
        for ctl in DIURNAL_CONTROLLERS:
            r = simulate(
                pipeline,
                cluster,
                trace,
                make_controller(ctl),
                SimConfig(demand_quantum=5.0),
                np.random.default_rng(args.seed),
                plan_cache=cache,
            )
            diurnal.append(r)
            bar.advance(t2)
    for r in diurnal:
        s = r.series
        n = int(math.ceil(r.duration_s - 2.0))
        cap, arr = s["capacity"][:n], s["arrivals"][:n].astype(float)
        fv, fd = s["frame_violations"][:n], s["frames_done"][:n]
        ample = cap >= 1.2 * np.maximum(arr, 1.0)
        tight = ~ample

        def ratio(mask, fv=fv, fd=fd):
            d = fd[mask].sum()
            return float(fv[mask].sum() / d) if d else float("nan")

        results["diurnal"][r.controller] = {
            **r.totals(),
            "seconds_capacity_ge_1.2x_demand": int(ample.sum()),
            "frame_violation_ratio_when_capacity_ge_1.2x": ratio(ample),
            "frame_violation_ratio_otherwise": ratio(tight),
        }
    _effective(results)
    plot_results(diurnal, img)
    (img / "comparison.png").rename(img / "diurnal_comparison.png")
    _plot_grid(results, img / "steady_grid.png")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    tables = _tables(results)
    (out / "tables.md").write_text(tables)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        console.print(tables)
        console.print(f"written: {out / 'tables.md'}, {out / 'results.json'}, {img}")
    return 0


def _effective(results: dict) -> None:
    eff = {}
    for ctl, rows in results["grid"].items():
        e = {}
        for label, key, thr in (
            ("frame_1pct", "frame_violation_ratio", 0.01),
            ("frame_5pct", "frame_violation_ratio", 0.05),
            ("sub_1pct", "sub_violation_ratio", 0.01),
            ("sub_5pct", "sub_violation_ratio", 0.05),
        ):
            ok = [r["demand"] for r in rows if r[key] <= thr]
            e[label] = max(ok) if ok else 0
        eff[ctl] = e
    results["effective_capacity"] = eff
    low = results["grid"]["loki"][0]
    results["low_load"] = {
        "demand": low["demand"],
        "loki_active_workers": low["mean_active_workers"],
        "peak_provisioning_workers": results["settings"]["workers"],
        "ratio": results["settings"]["workers"] / max(low["mean_active_workers"], 1e-9),
    }


def _plot_grid(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ctl, rows in results["grid"].items():
        d = [r["demand"] for r in rows]
        axes[0].plot(d, [r["frame_violation_ratio"] for r in rows], "o-", label=f"{ctl} frame")
        axes[0].plot(d, [r["sub_violation_ratio"] for r in rows], "x--", label=f"{ctl} sub-req")
        axes[1].plot(d, [r["accuracy"] for r in rows], "o-", label=ctl)
        axes[2].plot(d, [r["mean_active_workers"] for r in rows], "o-", label=ctl)
    axes[0].axhline(0.01, color="0.5", lw=0.8, ls=":")
    axes[0].set_ylabel("SLO violation ratio")
    axes[1].set_ylabel("system accuracy")
    axes[2].set_ylabel("mean active workers")
    for a in axes:
        a.set_xlabel("steady demand (frames/s)")
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tables(results: dict) -> str:
    lines = ["## Steady demand grid", ""]
    lines.append("| controller | demand | viol/frame | viol/sub-req | accuracy | workers |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for ctl, rows in results["grid"].items():
        for r in rows:
            lines.append(
                f"| {ctl} | {r['demand']} | {r['frame_violation_ratio']:.2%} | "
                f"{r['sub_violation_ratio']:.2%} | {r['accuracy']:.2f} | "
                f"{r['mean_active_workers']:.1f} |"
            )
    lines += ["", "## Effective capacity (frames/s, largest grid demand under the bound)", ""]
    lines.append("| controller | frame <= 1% | frame <= 5% | sub-req <= 1% | sub-req <= 5% |")
    lines.append("|---|---:|---:|---:|---:|")
    eff = results["effective_capacity"]
    for ctl, e in eff.items():
        lines.append(
            f"| {ctl} | {e['frame_1pct']} | {e['frame_5pct']} | {e['sub_1pct']} | {e['sub_5pct']} |"
        )
    lines += ["", "## Diurnal day (50 -> 425 -> 50 QPS)", ""]
    lines.append(
        "| controller | viol/frame | viol/sub-req | accuracy | workers | solves | reconfig | "
        "viol/frame when capacity >= 1.2x demand (seconds) | otherwise |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ctl, t in results["diurnal"].items():
        lines.append(
            f"| {ctl} | {t['frame_violation_ratio']:.2%} | {t['sub_violation_ratio']:.2%} | "
            f"{t['accuracy']:.2f} | {t['mean_active_workers']:.1f} | {t['solves']} | "
            f"{t['reconfigurations']} | {t['frame_violation_ratio_when_capacity_ge_1.2x']:.2%} "
            f"({t['seconds_capacity_ge_1.2x_demand']}) | {t['frame_violation_ratio_otherwise']:.2%} |"
        )
    low = results["low_load"]
    lines += [
        "",
        f"Low load ({low['demand']} frames/s): Loki uses {low['loki_active_workers']:.1f} active "
        f"workers vs {low['peak_provisioning_workers']} for peak provisioning "
        f"({low['ratio']:.2f}x fewer).",
        "",
    ]
    return "\n".join(lines)
