"""``lokirl evaluate``: controllers x traces x seeds in the simulator, with confidence intervals."""

from __future__ import annotations

import argparse
import math
import sys

from lokirl.commands.options import (
    add_trace_format_options,
    check_distinct,
    check_workers,
    parse_range,
    parse_solver_time,
    split_specs,
)
from lokirl.commands.stdout import strict_json
from lokirl.core.reconfig import SWAP_MODES, swap_help
from lokirl.errors import ConfigError

DEFAULT_CONTROLLERS = (
    "loki,loki-5s,loki-10s,loki-30s,loki-1s-churn,loki-5s-churn,loki-10s-churn,loki-30s-churn,"
    "trigger,oracle"
)
DEFAULT_TRACES = "diurnal_600s,step_600s"

EPILOG = """\
examples:
  lokirl evaluate                                  # baselines on the bundled diurnal and step traces
  lokirl evaluate --controllers ppo:runs/train__x/model.zip,loki,loki-5s,trigger,oracle
  lokirl evaluate --traces my_trace.csv --rescale 40:400 --seeds 5 --json

controllers: loki (re-solve every 1 s, Loki's default), loki-Ns (every N s), loki-Ns-churn
(with the allocator's churn term), trigger (demand-triggered band), oracle (knows the
future demand), inferline, proteus, static, ppo:PATH (a trained policy), module:attr.
traces: bundled names or files in any documented format (arrival files are counted into
1 s rates and played as Poisson arrivals at those rates, as every trace here is; lokirl
simulate plays an arrival file's own arrivals); each is rescaled so that its
minimum..maximum maps onto --rescale (default 'auto': 0.3..2.0 x the cluster's capacity
at full accuracy, or, for a pipeline whose most accurate variants cannot meet the SLO
such as social_media, 0.05..0.4 x its largest capacity at any accuracy, as the suites
load them; 'none' to play it as is). Every (trace, seed) is played by every controller
with the same randomness (common random numbers). Intervals are 95% t-intervals over
traces (each trace's seeds averaged first: seeds of one trace are not independent
samples of traffic), over the seeds when one trace is played; play many traces for a
claim. The bundled twitter traces are held out for the frozen test suite: evaluate
refuses them (and any file with the same bytes) without --allow-test.
progress: a live bar on a terminal; elsewhere (a log file, CI) a line on stderr about
every 5% of the episodes with the time elapsed and an estimate of what is left (none
with --json).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="compare controllers (PPO, Loki at several periods, trigger, oracle) in the simulator",
        description="Run each controller on each trace in the simulator and print a comparison.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--controllers",
        default=DEFAULT_CONTROLLERS,
        help=f"comma-separated (default: {DEFAULT_CONTROLLERS})",
    )
    p.add_argument("--traces", default=DEFAULT_TRACES, help="comma-separated trace names or files")
    add_trace_format_options(p)
    p.add_argument(
        "--pipeline",
        default="traffic_analysis",
        help="pipeline name or YAML (default: traffic_analysis)",
    )
    p.add_argument("--workers", type=int, default=20, help="workers (default: 20)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per trace (default: 3)")
    p.add_argument(
        "--window", dest="time_window", metavar="A:B", help="keep seconds A..B of each trace"
    )
    p.add_argument("--speedup", type=float, default=1.0, help="compress time by this factor")
    p.add_argument(
        "--rescale",
        default="auto",
        metavar="LO:HI|auto|none",
        help="rate range each trace is mapped onto",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=300.0,
        help="play at most N seconds of each trace (default: 300)",
    )
    p.add_argument(
        "--forecaster", default="ewma", help="forecaster of the env's observation (default: ewma)"
    )
    p.add_argument(
        "--reference",
        default=None,
        help=(
            "controller the others are compared with pair by pair (same trace and seed, "
            "hence the same arrivals); default: trigger if listed, else the first"
        ),
    )
    p.add_argument(
        "--swap",
        default="overlap",
        choices=SWAP_MODES,
        help=f"how a worker changes variant in the simulator (default: overlap). {swap_help()}",
    )
    p.add_argument(
        "--solver-time",
        default="model",
        metavar="model|measured|SECONDS",
        help="simulated duration of every solve, during which the old plan stays in force "
        "(the reward's solver term charges it too): 'model' (default: a fixed cost per "
        "allocator phase), 'measured' (this machine's wall time: results then depend on "
        "its load) or seconds for every solve, shorter than the decision epoch",
    )
    p.add_argument(
        "--allow-test",
        action="store_true",
        help="play traces of the frozen test suite (to report a finished choice, never to choose)",
    )
    p.add_argument("--json", action="store_true", help="print the aggregates as JSON")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under runs/)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.set_defaults(handler=run)


def _range(text: str, option: str) -> tuple[float, float]:
    return parse_range(text, option, "40:400", allow_equal=True)


def load_traces(args: argparse.Namespace, auto: tuple[float, float] | None) -> list:
    """Resolve, transform and rescale the traces named by the options.

    ``auto`` is the frames/s range of ``--rescale auto``
    (:func:`lokirl.core.load_range.auto_load_range`).
    """
    from lokirl.traces import (
        as_rates,
        fine_bins,
        late_start_s,
        rescale,
        resolve_trace_noted,
        speedup,
        window,
    )
    from lokirl.traces.types import RateSeries

    out = []
    specs = [s.strip() for s in args.traces.split(",") if s.strip()]
    check_distinct(specs, "--traces")  # one trace twice would count as two traces
    for spec in specs:
        read, note = resolve_trace_noted(spec, fmt=args.trace_format, column=args.column)
        if note:  # how a file was read: a unit guessed wrong shows in its span and count
            print(f"evaluate: {note}", file=sys.stderr)
        trace = as_rates(read)
        # bins wider than a second would stretch --window and --duration to whole bins
        trace = as_rates(fine_bins(trace))
        if args.time_window:
            a, b = _range(args.time_window, "--window")
            trace = as_rates(window(trace, a, b))
        if args.speedup != 1.0:
            if not args.speedup > 0:
                raise ConfigError(
                    "--speedup", str(args.speedup), "must be > 0", "pass e.g. --speedup 2"
                )
            trace = as_rates(speedup(trace, args.speedup))
        if args.duration and trace.duration_s > args.duration:
            trace = as_rates(window(trace, 0, args.duration))
        if trace.rates.size == 0 or float(trace.rates.sum()) <= 0:
            first = late_start_s(read)
            raise ConfigError(
                spec,
                "--traces",
                "the trace has no requests" + (" in the seconds played" if first else ""),
                f"its first request arrives at {first:,.6g} s: start there with --window "
                f"{math.floor(first)}:{math.ceil(read.duration_s)}"
                if first
                else "give a trace with requests",
            )
        if args.rescale == "auto":
            assert auto is not None, "--rescale auto needs the cluster's range"
            trace = rescale(trace, *auto)
        elif args.rescale != "none":
            trace = rescale(trace, *_range(args.rescale, "--rescale"))
        if not isinstance(trace, RateSeries) or not trace.expected_requests >= 1:
            raise ConfigError(
                spec,
                "--traces",
                "the trace has no requests after the transforms (fewer than one expected)",
                "lengthen --duration, widen --window or raise --rescale",
            )
        out.append(trace)
    if not out:
        raise ConfigError(
            "--traces", args.traces, "no trace given", "pass e.g. --traces diurnal_600s"
        )
    return out


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl evaluate``."""
    import lokirl.agents  # noqa: F401 - registers ppo: and trigger
    from lokirl.core.controllers import make_controller
    from lokirl.envs.serving import LokiServingEnv
    from lokirl.experiments.compare import METRICS, compare, paired_summary, plot_comparison
    from lokirl.tracking import mlflow_run, run_dir, write_config

    controllers = split_specs(args.controllers)
    if not controllers:
        raise ConfigError(
            "--controllers",
            args.controllers,
            "no controller given",
            "pass e.g. --controllers loki,trigger",
        )
    check_distinct(controllers, "--controllers")
    for c in controllers:
        if c != "oracle":
            make_controller(c)  # unknown names fail here, before any work
    if args.seeds < 1:
        raise ConfigError("--seeds", str(args.seeds), "must be >= 1", "pass e.g. --seeds 3")
    if args.duration is not None and not (args.duration > 0 and math.isfinite(args.duration)):
        # 0, nan and inf played the whole trace; a negative one failed as an empty window
        raise ConfigError(
            "--duration", f"{args.duration:g}", "must be a number of seconds > 0", "pass e.g. 300"
        )
    reference = args.reference or ("trigger" if "trigger" in controllers else controllers[0])
    if reference not in controllers:
        raise ConfigError(
            "--reference", reference, "not one of --controllers", f"pick one of {controllers}"
        )
    from lokirl.core.pipeline_config import load_pipeline

    check_workers(load_pipeline(args.pipeline), args.workers)
    from lokirl.experiments.suites import check_not_held_out

    names = [t.strip() for t in args.traces.split(",") if t.strip()]
    check_not_held_out(names, args.allow_test, "--traces")
    solver_time = parse_solver_time(args.solver_time, measured=True)
    planners = [c for c in controllers if c.startswith("hindsight")]
    if solver_time == "measured" and planners:
        raise ConfigError(
            "--solver-time",
            "measured",
            f"{planners[0]} plans its switches ahead with a known solve time, which a "
            "measured one is not",
            "pass --solver-time model or a number of seconds",
        )
    env = LokiServingEnv(
        pipeline=args.pipeline,
        workers=args.workers,
        forecaster=args.forecaster,
        swap=args.swap,
        solver_time=solver_time,
    )
    if isinstance(solver_time, float) and solver_time >= env.config.epoch_s:
        raise ConfigError(
            "--solver-time",
            args.solver_time,
            f"not shorter than the {env.config.epoch_s:g} s decision epoch (a solve would "
            "still be running at the next decision)",
            "pass e.g. --solver-time 0.02",
        )
    auto: tuple[float, float] | None = None
    auto_unit = None
    if args.rescale == "auto":  # two solves; only when asked for
        from lokirl.commands.options import auto_load

        lo, hi, auto_unit = auto_load(env.pipeline, env.cluster)
        auto = (lo, hi)
    traces = load_traces(args, auto)
    seeds = list(range(args.seeds))
    folder = run_dir("evaluate", "_".join(c.split(":")[0] for c in controllers)[:60])
    total = len(traces) * len(seeds) * len(controllers)

    from lokirl.tracking.progress import ProgressLines, live_bar

    lines = ProgressLines(total, "evaluate: episodes", enabled=not args.json)
    with live_bar(transient=True, disable=args.json) as progress:
        task = progress.add_task("evaluating", total=total)

        def tick(spec, trace, seed, ep):
            progress.update(task, advance=1, description=f"{spec} on {trace} (seed {seed})")
            lines.advance()

        comp = compare(env, controllers, traces, seeds, on_episode=tick)
    data = comp.to_dict()
    data["paired"] = paired_summary(comp, reference)
    data["config"] = {
        "pipeline": args.pipeline,
        "workers": args.workers,
        "hw_capacity": env.hw_capacity,
        "rescale": args.rescale,
        "auto_range": list(auto) if auto else None,
        "auto_unit": auto_unit,
        "duration": args.duration,
        "swap": args.swap,
        "solver_time": solver_time,
        "reward_weights": vars(env.config.weights),
    }
    (folder / "comparison.json").write_text(strict_json(data, indent=2))
    write_config(folder, vars(args) | {"handler": None})
    plot_comparison(comp, folder / "comparison.png")
    if not args.no_mlflow:
        with mlflow_run(
            "lokirl-evaluate",
            folder.name,
            args.tracking_uri,
            params={
                "controllers": args.controllers,
                "traces": args.traces,
                "seeds": args.seeds,
                "solver_time": str(solver_time),
            },
        ) as ml:
            for c in controllers:
                ml.log_metrics(
                    {f"{c.replace(':', '_')}/{m}": v[0] for m, v in comp.table()[c].items()}
                )
            ml.log_artifact(folder / "comparison.json")
    if args.json:
        print(strict_json({"overall": data["overall"], "paired": data["paired"]}, indent=2))
        return 0
    _print(comp, METRICS, folder, reference, solver_time)
    return 0


def _print(comp, metrics, folder, reference: str, solver_time: str | float = "model") -> None:
    from rich.table import Table

    from lokirl.commands.plan import make_console

    labels = {
        "frame_violation_ratio": "frame viol",
        "sub_violation_ratio": "sub viol",
        "accuracy": "accuracy",
        "effective_accuracy": "eff. acc.",
        "mean_active_workers": "workers",
        "solves": "solves",
        "reconfigurations": "reconfigs",
        "reward": "reward",
    }
    table = Table(
        title=f"controllers on {len(comp.traces)} trace(s) x {len(comp.seeds)} seed(s), "
        "mean ± 95% CI over traces"
        + (f"; every solve {solver_time} s" if isinstance(solver_time, float) else "")
        + ("; solve times measured on this machine" if solver_time == "measured" else "")
    )
    table.add_column("controller")
    for m in metrics:
        table.add_column(labels[m], justify="right")
    tab = comp.table()
    best = max(tab, key=lambda c: tab[c]["reward"][0])
    for c, row in tab.items():
        cells = []
        for m in metrics:
            mean, ci = row[m]
            f = (
                ".2%"
                if "violation" in m
                else ".0f"
                if m in ("solves", "reconfigurations")
                else ".2f"
            )
            cells.append(f"{mean:{f}} ± {ci:{f}}" if ci == ci else f"{mean:{f}} ± n/a")
        table.add_row(f"[bold]{c}[/]" if c == best else c, *cells)
    console = make_console()
    console.print(table)
    if len(comp.controllers) > 1:
        pt = Table(
            title=f"paired differences vs {reference} (same trace and seed), "
            "mean ± 95% CI over traces"
        )
        pt.add_column("controller")
        for label in ("reward", "frame viol", "accuracy", "eff. acc.", "pairs"):
            pt.add_column(label, justify="right")
        rew = comp.paired(reference, "reward")
        viol = comp.paired(reference, "frame_violation_ratio")
        acc = comp.paired(reference, "accuracy")
        eff = comp.paired(reference, "effective_accuracy")
        for c in rew:
            r, v, a, e = rew[c], viol[c], acc[c], eff[c]
            win = r[0] - r[1] > 0
            pt.add_row(
                f"[bold]{c}[/]" if win else c,
                *(
                    f"{d[0]:+{f}} ± {d[1]:{f}}" if d[1] == d[1] else f"{d[0]:+{f}} ± n/a"
                    for d, f in ((r, ".2f"), (v, ".2%"), (a, ".2f"), (e, ".2f"))
                ),
                str(r[2]),
            )
        console.print(pt)
        console.print("bold: reward higher than the reference's with 95% confidence")
    console.print(f"results: {folder}")
