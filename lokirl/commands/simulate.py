"""``lokirl simulate``: run controllers on a trace in the simulator and compare them."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from lokirl.commands.options import (
    add_trace_format_options,
    check_simulated,
    check_workers,
    parse_range,
    parse_solver_time,
)
from lokirl.commands.stdout import strict_json
from lokirl.core.reconfig import SWAP_MODES, swap_help
from lokirl.errors import ConfigError, TraceError

DEFAULT_TRACE = "diurnal_600s"
DEFAULT_CONTROLLERS = ("loki", "inferline", "proteus", "static", "trigger", "ppo")
#: Without --trace: the 600 s diurnal day played 10x faster at its own rates (50..425 QPS).
DEFAULT_SPEEDUP = 10.0
DEFAULT_RESCALE = "50:425"

EPILOG = """\
examples:
  lokirl simulate                      # diurnal day 50..425 QPS in 60 s, 6 controllers
  lokirl simulate --trace step_600s --speedup 5 --controller loki --controller inferline
  lokirl simulate --trace twitter_zipf_flat_bursty --rescale 50:400 --duration 120 --json
  lokirl simulate --trace my_arrivals.txt --controller loki-5s --workers 16
  lokirl simulate --trace my_rates.csv --pipeline social_media --workers 33 --rescale auto

metrics: violations = (dropped + late) / arrived, per frame (a frame is on time only if all
its sub-requests are) and per sub-request; accuracy = mean path accuracy of on-time leaf
sub-requests; eff. acc. = effective accuracy, the frames' path accuracy over all arrived
frames (a dropped or late frame counts 0); workers = mean active workers; solver = simulated
solver seconds charged.
"""


#: Frames a simulation may ask for before it is refused (``--max-frames``).
MAX_FRAMES = 2e7


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate controllers on a trace and compare SLO violations, accuracy, workers",
        description=(
            "Play a trace through the discrete-event model of the cluster once per controller "
            "(same seed, same arrivals) and print a comparison table; write plots, the resolved "
            "config and the totals into a run folder and log an MLflow run."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pipeline", default="traffic_analysis", help="pipeline name or YAML file")
    p.add_argument(
        "--trace",
        help=f"bundled trace name or trace file (default: {DEFAULT_TRACE}, --speedup 10 "
        "--rescale 50:425)",
    )
    add_trace_format_options(p)
    p.add_argument(
        "--controller",
        action="append",
        dest="controllers",
        metavar="NAME",
        help=f"controller (repeatable; default: {' '.join(DEFAULT_CONTROLLERS)}); oracle "
        "plans from the played trace's future rates (a reference, not a controller)",
    )
    p.add_argument("--window", dest="time_window", metavar="A:B", help="keep seconds A..B")
    p.add_argument("--speedup", type=float, help="compress time by this factor")
    p.add_argument(
        "--rescale",
        metavar="LO:HI|auto",
        help="map the trace's min..max rate onto LO..HI frames/s; 'auto': the evaluation "
        "suites' range for this pipeline on this cluster (0.3..2.0 x its capacity at full "
        "accuracy, or 0.05..0.4 x its capacity at any accuracy where the most accurate "
        "variants cannot meet the SLO, as for social_media)",
    )
    p.add_argument("--workers", type=int, default=20, help="workers (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--epoch", type=float, default=1.0, help="decision period in s (default: 1)")
    p.add_argument("--duration", type=float, help="simulate only the first N seconds of the trace")
    p.add_argument(
        "--max-frames",
        type=float,
        default=MAX_FRAMES,
        help="refuse a trace asking for more frames than this before simulating "
        f"(the simulator plays each request; default: {MAX_FRAMES:.0e})",
    )
    p.add_argument(
        "--solver-time",
        default="model",
        help="'model' (deterministic per-phase cost), 'measured', or seconds (default: model)",
    )
    p.add_argument(
        "--swap",
        default="overlap",
        choices=SWAP_MODES,
        help=f"how a worker changes variant (default: overlap). {swap_help()}",
    )
    p.add_argument("--json", action="store_true", help="print the totals as JSON")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under runs/)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.set_defaults(handler=run)


def _range(text: str, option: str) -> tuple[float, float]:
    return parse_range(text, option, "0:300")


def load_trace_args(args: argparse.Namespace) -> Any:
    """Resolve and transform the trace named by the options."""
    import numpy as np

    from lokirl.traces import (
        RateSeries,
        late_start_s,
        requests_before,
        rescale,
        resolve_trace_noted,
        speedup,
        window,
    )

    name = args.trace or DEFAULT_TRACE
    speed = _speed(args)
    if args.trace is None and args.rescale is None:
        args.rescale = DEFAULT_RESCALE
    trace, note = resolve_trace_noted(name, fmt=args.trace_format, column=args.column)
    if note:  # how a file was read: a unit guessed wrong shows in its span and count
        print(f"simulate: {note}", file=sys.stderr)
    first = late_start_s(trace)  # in the file's own seconds, as --window takes them
    file_s = trace.duration_s
    if args.time_window:
        a, b = _range(args.time_window, "--window")
        trace = window(trace, a, b)
    if speed != 1.0:
        if not (speed > 0 and math.isfinite(speed)):
            raise ConfigError("--speedup", str(speed), "must be > 0", "pass e.g. --speedup 2")
        trace = speedup(trace, speed)
    if args.rescale:
        if ":" not in args.rescale:
            raise ConfigError(
                "--rescale",
                args.rescale,
                "expected LO:HI frames/s or auto",
                "pass e.g. --rescale 50:400, or --rescale auto for the suites' range on "
                "this cluster",
            )
        lo, hi = _range(args.rescale, "--rescale")
        trace = rescale(trace, lo, hi, rng=np.random.default_rng(args.seed))
    n = len(trace.rates) if isinstance(trace, RateSeries) else len(trace.arrivals_s)
    horizon = min(trace.duration_s, args.duration) if args.duration else trace.duration_s
    if args.duration and trace.duration_s < args.duration:
        print(
            f"simulate: {name} lasts {trace.duration_s:g} s after the transforms, less than "
            f"--duration {args.duration:g}: {trace.duration_s:g} s played",
            file=sys.stderr,
        )
    frames = requests_before(trace, horizon)  # arrivals: counted, not a pro-rata share
    if n == 0 or not frames >= 1:  # a run of no frames would report 0% violations
        raise TraceError(
            f"{name}: the trace (after transforms) has no requests ({frames:.3g} expected in "
            f"the {horizon:g} s played). Fix: "
            + (
                f"its first request arrives at {first:,.6g} s: start there with --window "
                f"{math.floor(first)}:{math.ceil(file_s)}"
                if first and not args.time_window
                else "give a trace with a non-zero rate, widen --window or raise --rescale"
            )
        )
    limit = getattr(args, "max_frames", MAX_FRAMES)
    if not (limit > 0 and math.isfinite(limit)):
        raise ConfigError(
            "--max-frames", str(limit), "must be a positive number", "pass e.g. --max-frames 2e7"
        )
    if not frames <= limit:
        raise TraceError(
            f"{name}: the trace asks for about {frames:.3g} frames over {horizon:g} s "
            f"(a mean of {frames / max(horizon, 1e-9):.3g}/s), more than --max-frames "
            f"{limit:.3g}; the simulator plays every request one by one. Fix: map its rates "
            "onto your cluster with --rescale auto or LO:HI (e.g. --rescale 50:400), cut it with "
            "--duration or --window, or raise --max-frames"
        )
    return trace


def default_controllers(pipeline: Any, cluster: Any, swap: str) -> list[str]:
    """:data:`DEFAULT_CONTROLLERS`, less a trained policy that has nothing for this cluster.

    Named with ``--controller``, a policy that does not fit is refused (the error says
    why); among the defaults, which the user did not name, it is left out with a note.
    """
    from lokirl.agents.adapter import check_spec_fits, is_policy_spec

    names = []
    for name in DEFAULT_CONTROLLERS:
        if is_policy_spec(name):
            try:
                check_spec_fits(name, pipeline, cluster, swap)
            except ConfigError:
                print(
                    f"simulate: {name} left out of the default controllers: it has no policy "
                    f"for {pipeline.name} on {cluster.total} workers under {swap} swaps "
                    f"(--controller {name} says why)",
                    file=sys.stderr,
                )
                continue
        names.append(name)
    return names


def _speed(args: argparse.Namespace) -> float:
    if args.speedup is not None:
        return float(args.speedup)
    return DEFAULT_SPEEDUP if args.trace is None else 1.0


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl simulate``."""
    import numpy as np

    import lokirl.sim  # noqa: F401 - registers the baselines
    from lokirl.commands.options import auto_rescale
    from lokirl.core.binding import bind_controller
    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.sim import SimConfig, simulate

    pipeline = load_pipeline(args.pipeline)
    check_workers(pipeline, args.workers)
    if not (args.epoch >= 0.01 and math.isfinite(args.epoch)):
        raise ConfigError(
            "--epoch",
            str(args.epoch),
            "must be at least 0.01 s (one decision per epoch; a solve alone takes longer)",
            "pass --epoch 1",
        )
    if args.duration is not None and not (args.duration > 0 and math.isfinite(args.duration)):
        raise ConfigError("--duration", str(args.duration), "must be > 0", "pass --duration 60")
    cluster = Cluster.homogeneous(pipeline, args.workers)
    names = args.controllers or default_controllers(pipeline, cluster, args.swap)
    check_simulated(names, args.seed)
    # the oracle is built below, from the trace it plays (it knows its future rates)
    controllers = [None if n == "oracle" else make_controller(n) for n in names]
    args.rescale_auto = None
    if args.rescale == "auto":  # the suites' range on this cluster (two solves)
        args.rescale, args.rescale_auto = auto_rescale(pipeline, cluster)
    trace = load_trace_args(args)
    if "oracle" in names:
        from lokirl.agents.heuristics import OracleController
        from lokirl.traces import as_rates, resample

        oracle = OracleController.for_trace(resample(as_rates(trace, 1.0), 1.0))
        controllers = [oracle if c is None else c for c in controllers]
    config = SimConfig(
        max_frames=args.max_frames,
        epoch_s=args.epoch,
        # --duration plays the first N seconds: past the trace's end nothing arrives.
        duration_s=min(args.duration, trace.duration_s) if args.duration else None,
        solver_time=parse_solver_time(args.solver_time, measured=True),
        swap=args.swap,
    )
    for ctl in controllers:  # a trained policy built for another cluster is refused here
        bind_controller(ctl, pipeline, cluster, config.swap)
    results = []
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from lokirl.tracking.progress import ProgressLines, live_bar

    trace_len = min(trace.duration_s, args.duration or math.inf)
    # off a terminal the bar draws nothing: plain lines over all controllers' seconds
    per = math.ceil(trace_len)
    lines = ProgressLines(per * len(controllers), "simulate: simulated s", enabled=not args.json)
    with live_bar(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        transient=True,
        disable=args.json,
    ) as bar:
        for i, (name, ctl) in enumerate(zip(names, controllers, strict=True)):
            task = bar.add_task(name, total=trace_len)

            def tick(t: float, task=task, before=i * per) -> None:
                bar.update(task, completed=t)
                lines.update(before + math.ceil(t))

            res = simulate(
                pipeline,
                cluster,
                trace,
                ctl,
                config,
                np.random.default_rng(args.seed),
                progress=tick,
            )
            if getattr(res, "controller", "") != name:
                res = _renamed(res, name)
            results.append(res)
    folder = _record(args, pipeline, trace, config, names, results)
    if args.json:
        print(strict_json({r.controller: r.totals() for r in results}, indent=2))
    else:
        print_table(
            results,
            title=f"{pipeline.name} on {args.workers} workers, trace {trace.name}, "
            f"swaps: {args.swap}",
        )
        print(f"run folder: {folder}")
    return 0


def _renamed(res: Any, name: str) -> Any:
    from dataclasses import replace

    return replace(res, controller=name)


def _record(args, pipeline, trace, config, names, results):
    from lokirl.tracking import mlflow_run, result_metrics, run_dir, to_plain, write_config

    folder = run_dir("simulate", f"{pipeline.name}-{trace.name}")
    cfg = {
        "pipeline": pipeline.name,
        "trace": args.trace or DEFAULT_TRACE,
        "window": args.time_window,
        "speedup": _speed(args),
        "rescale": args.rescale,
        # --rescale auto: the range above is the suites' on this cluster, in this unit
        "rescale_auto_unit": args.rescale_auto,
        "workers": args.workers,
        "seed": args.seed,
        "controllers": names,
        "sim": to_plain(config),
    }
    write_config(folder, cfg)
    (folder / "totals.json").write_text(
        strict_json({r.controller: r.totals() for r in results}, indent=2) + "\n"
    )
    plots = []
    if not args.no_plots:
        from lokirl.sim.plots import plot_results

        plots = plot_results(results, folder)
    if not args.no_mlflow:
        with mlflow_run(
            "simulate",
            folder.name,
            tracking_uri=args.tracking_uri,
            params=cfg,
            tags={"kind": "simulate"},
        ) as ml:
            for r in results:
                ml.log_metrics(result_metrics(r, f"{r.controller}/"))
            ml.log_artifact(folder / "totals.json")
            for p in plots:
                ml.log_artifact(p)
    return folder


def print_table(results, title: str = "") -> None:
    """Print the comparison table of ``results``."""
    from rich.table import Table

    from lokirl.commands.plan import make_console

    table = Table(title=title)
    cols = (
        "controller",
        "frames",
        "viol/frame",
        "viol/sub-req",
        "accuracy",
        "eff. acc.",
        "workers",
        "solves",
        "reconfig",
        "solver s",
    )
    for c in cols:
        table.add_column(c, justify="left" if c == "controller" else "right")
    for r in results:
        table.add_row(
            r.controller,
            str(r.frames.arrived),
            f"{r.frame_violation_ratio:.2%}",
            f"{r.sub_violation_ratio:.2%}",
            f"{r.accuracy:.2f}",
            f"{r.effective_accuracy:.2f}",
            f"{r.mean_active_workers:.1f}",
            str(r.solves),
            str(r.reconfigurations),
            f"{r.solver_time_s:.1f}",
        )
    make_console().print(table)
