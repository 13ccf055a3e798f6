"""``lokirl forecast``: train the learned demand forecaster and compare forecasters on a trace."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lokirl.commands.options import add_trace_format_options, seed
from lokirl.commands.stdout import strict_json
from lokirl.errors import LokiError

HORIZONS = (1, 5, 10, 30, 60)
DEFAULT_SET = "last,ewma,seasonal,trend,learned"


class ForecastUsageError(LokiError):
    """A ``lokirl forecast`` option is malformed."""


def _range(text: str, option: str) -> tuple[float, float]:
    a, sep, b = text.partition(":")
    try:
        lo, hi = float(a), float(b)
    except ValueError:
        raise ForecastUsageError(
            f"{option} {text!r} is not A:B with numbers. Fix: e.g. 50:425"
        ) from None
    if not sep or hi <= lo:
        raise ForecastUsageError(f"{option} {text!r} needs A < B. Fix: e.g. {option} 0:120")
    return lo, hi


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ForecastUsageError(
            f"{option} {text!r} must be whole seconds. Fix: e.g. 1,5,30"
        ) from None
    if not values or any(v < 1 for v in values) or list(values) != sorted(set(values)):
        raise ForecastUsageError(f"{option} {text!r}: give ascending seconds >= 1")
    return values


def register(subparsers: Any) -> None:
    """Add ``forecast train``, ``forecast eval`` and ``forecast heldout`` to the CLI."""
    p = subparsers.add_parser(
        "forecast",
        help="train and evaluate demand forecasters",
        description=(
            "Demand forecasters for the controller: baselines (last value, EWMA as in Loki, "
            "seasonal naive, linear trend) and a small learned model. Each forecasts the mean "
            "request rate and an upper quantile over the next h seconds."
        ),
    )
    sub = p.add_subparsers(dest="forecast_command", metavar="ACTION")
    p.set_defaults(handler=lambda args: (p.print_help(), 1)[1])

    t = sub.add_parser(
        "train",
        help="train the learned forecaster",
        description=(
            "Train the learned forecaster on generated trace families plus the bundled traces "
            "(time-based train/validation split). Writes model.pt, config.yaml, metrics.json and "
            "TensorBoard scalars under runs/forecast-train__NAME__TIME/ and logs an MLflow run."
        ),
    )
    t.add_argument("--name", default="default", help="run name (default: %(default)s)")
    t.add_argument(
        "--arch", choices=("mlp", "lstm"), default="mlp", help="network (default: %(default)s)"
    )
    t.add_argument(
        "--window", type=int, default=64, help="input window in seconds (default: %(default)s)"
    )
    t.add_argument("--hidden", type=int, default=96, help="hidden width (default: %(default)s)")
    t.add_argument("--epochs", type=int, default=12, help="training epochs (default: %(default)s)")
    t.add_argument(
        "--n-synthetic", type=int, default=120, help="generated series (default: %(default)s)"
    )
    t.add_argument(
        "--holdout",
        action="append",
        default=[],
        metavar="TRACE",
        help="bundled trace to leave out of training (repeatable; default: the twitter "
        "traces, which the frozen test suite plays)",
    )
    t.add_argument(
        "--include-test-traces",
        action="store_true",
        help="train on the test suite's twitter traces too (then never use the model in a "
        "controller evaluated on the test suite)",
    )
    t.add_argument("--seed", type=seed, default=0, help="seed (default: %(default)s)")
    t.add_argument("--out", type=Path, help="also copy the trained model to this path")
    t.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    t.set_defaults(handler=_train)

    e = sub.add_parser(
        "eval",
        help="compare forecasters on a trace",
        description=(
            "Replay a trace second by second and print, per horizon, each forecaster's MAPE of the "
            "mean forecast, the share of peak seconds (top 10% of actual future means) where the "
            "upper forecast fell short, and the pinball loss of the upper forecast (relative to "
            "the mean rate). Writes a PNG of forecast vs actual."
        ),
    )
    e.add_argument(
        "--trace", required=True, help="trace file (any documented format) or bundled name"
    )
    add_trace_format_options(e)
    e.add_argument(
        "--window", dest="time_window", metavar="A:B", help="keep seconds A..B of the trace"
    )
    e.add_argument("--speedup", type=float, default=1.0, help="compress time by this factor")
    e.add_argument(
        "--rescale", metavar="LO:HI", help="map the trace's min..max rate onto LO..HI req/s"
    )
    e.add_argument(
        "--forecasters", default=DEFAULT_SET, help="comma-separated names (default: %(default)s)"
    )
    e.add_argument(
        "--horizons", default="1,5,10,30,60", help="horizons in seconds (default: %(default)s)"
    )
    e.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="seconds not scored at the start (default: %(default)s)",
    )
    e.add_argument("--plot", type=Path, help="PNG path (default: in the run folder)")
    e.add_argument("--json", action="store_true", help="print metrics as JSON instead of a table")
    e.set_defaults(handler=_eval)

    h = sub.add_parser(
        "heldout",
        help="held-out evaluation on the bundled twitter traces",
        description=(
            "Train once per fold without one bundled twitter scenario (medium_normal_load and "
            "zipf_exponential together: they are one series) and evaluate on it. "
            "Prints a markdown table."
        ),
    )
    h.add_argument(
        "--epochs", type=int, default=12, help="training epochs per fold (default: %(default)s)"
    )
    h.add_argument("--seed", type=seed, default=0, help="seed (default: %(default)s)")
    h.add_argument("--json", action="store_true", help="print all metrics as JSON")
    h.set_defaults(handler=_heldout)


def _check_train_args(args: argparse.Namespace) -> None:
    """Refuse options that would fail (or train nothing) after the data are built."""
    from lokirl.errors import ConfigError
    from lokirl.traces import list_bundled

    bounds = {
        "--window": (args.window, 2, 3600, "64"),
        "--hidden": (args.hidden, 1, 4096, "96"),
        "--epochs": (args.epochs, 1, 10_000, "12"),
        "--n-synthetic": (args.n_synthetic, 0, 100_000, "120"),
    }
    for opt, (value, lo, hi, example) in bounds.items():
        if not lo <= value <= hi:
            raise ConfigError(
                opt, str(value), f"must be in {lo}..{hi}", f"pass e.g. {opt} {example}"
            )
    bundled = list_bundled()
    for name in args.holdout:
        if name not in bundled:
            raise ConfigError(
                "--holdout", name, "not a bundled trace", f"use one of {', '.join(bundled)}"
            )


def _holdout(args: argparse.Namespace) -> tuple[str, ...]:
    """The bundled traces left out of training: ``--holdout``, plus the test suite's."""
    from lokirl.forecast.train import TEST_TRACES

    extra = () if args.include_test_traces else TEST_TRACES
    return tuple(dict.fromkeys([*args.holdout, *extra]))


def _train(args: argparse.Namespace) -> int:
    import shutil

    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from lokirl.forecast.model import ModelConfig, save_artifact
    from lokirl.forecast.train import TrainConfig, train
    from lokirl.tracking import log_scalars, mlflow_run, run_dir, tb_writer, to_plain, write_config
    from lokirl.tracking.progress import ProgressLines, live_bar

    _check_train_args(args)
    if args.out is not None and args.out.is_dir():  # a folder: the model goes into it
        args.out = args.out / "model.pt"  # (copying onto the folder failed after training)
    cfg = TrainConfig(
        model=ModelConfig(arch=args.arch, window=args.window, hidden=args.hidden),
        seed=args.seed,
        n_synthetic=args.n_synthetic,
        holdout=_holdout(args),
        epochs=args.epochs,
    )
    folder = run_dir("forecast-train", args.name)
    write_config(folder, cfg)
    writer = tb_writer(folder)
    ml = None
    if not args.no_mlflow:
        ml = mlflow_run(
            "forecast", folder.name, params=to_plain(cfg), tags={"kind": "forecast-train"}
        )
    logger = ml.__enter__() if ml is not None else None
    try:
        with live_bar(
            TextColumn("training"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("train", total=None, info="")
            # off a terminal the bar draws nothing: plain lines, made at the first
            # step (which knows the total)
            lines: list[ProgressLines] = []

            def on_step(step: int, total: int) -> None:
                bar.update(task, completed=step, total=total)
                if not lines:
                    lines.append(ProgressLines(total, "forecast train: steps"))
                lines[0].update(step)

            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                log_scalars(writer, metrics, epoch)
                if logger is not None:
                    logger.log_metrics(metrics, step=epoch)
                bar.update(
                    task,
                    info=f"epoch {epoch + 1}/{cfg.epochs} val {metrics.get('val/loss', 0):.4f}",
                )

            result = train(cfg, on_epoch=on_epoch, on_step=on_step)
        model_path = save_artifact(result.artifact, folder / "model.pt")
        summary = {
            "final": result.history[-1],
            "n_train": result.n_train,
            "n_val": result.n_val,
            "seconds": result.seconds,
        }
        (folder / "metrics.json").write_text(strict_json(summary, indent=2))
        if logger is not None:
            logger.log_artifact(model_path)
            logger.log_artifact(folder / "config.yaml")
    except BaseException as exc:
        if ml is not None:
            ml.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        writer.close()
    if ml is not None:
        ml.__exit__(None, None, None)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, args.out)
    val = result.history[-1].get("val/loss", float("nan"))
    print(f"model: {model_path}  ({result.seconds:.1f} s, val loss {val:.4f})")
    return 0


def _load_series(args: argparse.Namespace):
    from lokirl.traces import as_rates, resample, rescale, resolve_trace_noted, speedup, window

    read, note = resolve_trace_noted(args.trace, fmt=args.trace_format, column=args.column)
    if note:  # how a file was read: a unit guessed wrong shows in its span and count
        print(f"forecast eval: {note}", file=sys.stderr)
    series = as_rates(read, 1.0)
    if args.time_window:
        a, b = _range(args.time_window, "--window")
        series = window(series, a, b)
    if args.speedup != 1.0:
        if args.speedup <= 0:
            raise ForecastUsageError(f"--speedup {args.speedup} must be > 0. Fix: e.g. 2")
        series = speedup(series, args.speedup)
    series = resample(series, 1.0)
    if series.rates.size == 0 or float(series.rates.sum()) <= 0:
        raise ForecastUsageError(
            f"{args.trace}: the trace has no requests (every rate is 0): there is nothing to "
            "forecast. Fix: give a trace with requests, or widen --window"
        )
    if args.rescale:
        lo, hi = _range(args.rescale, "--rescale")
        series = rescale(series, lo, hi)
    return series


def _eval(args: argparse.Namespace) -> int:
    from lokirl.forecast import evaluate, make_forecaster
    from lokirl.tracking import run_dir

    horizons = _ints(args.horizons, "--horizons")
    if args.warmup < 0:
        raise ForecastUsageError(
            f"--warmup {args.warmup}: must be >= 0 (seconds not scored at the start). "
            "Fix: e.g. --warmup 10"
        )
    series = _load_series(args)
    if len(series) <= args.warmup + max(horizons):
        raise ForecastUsageError(
            f"trace {args.trace} has {len(series)} s, too short for warm-up {args.warmup} s and "
            f"horizon {max(horizons)} s. Fix: a longer trace, a smaller --warmup or smaller "
            "--horizons"
        )
    names = [n.strip() for n in args.forecasters.split(",") if n.strip()]
    forecasters = [make_forecaster(n) for n in names]
    for n, f in zip(names, forecasters, strict=True):
        if n.startswith("learned:"):
            f.name = n
    result = evaluate(forecasters, series.rates, horizons, warmup_s=args.warmup)
    metrics = result["metrics"]
    plot = args.plot or run_dir("forecast-eval", series.name) / "forecast.png"
    if plot.is_dir():  # a folder: the PNG goes into it (it was written beside it)
        plot = plot / "forecast.png"
    elif not plot.suffix:  # the PNG is written (and said to be) at PATH.png
        plot = plot.with_name(plot.name + ".png")
    _plot(series, result["forecasts"], horizons, plot)
    if args.json:
        print(
            strict_json(
                {
                    "trace": args.trace,
                    "seconds": len(series),
                    "plot": str(plot),
                    "metrics": {
                        f: {str(h): m for h, m in per.items()} for f, per in metrics.items()
                    },
                },
                indent=2,
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{series.name}: {len(series)} s, mean {series.rates.mean():.0f} req/s")
    for col in (
        "horizon",
        "forecaster",
        "MAPE %",
        "peak under %",
        "coverage %",
        "pinball % of mean",
    ):
        table.add_column(col, justify="left" if col == "forecaster" else "right")
    for h in horizons:
        for i, (f, per) in enumerate(metrics.items()):
            m = per[h]
            table.add_row(
                f"{h} s" if i == 0 else "",
                f,
                f"{m['mape']:.1f}",
                f"{m['peak_under']:.0f}",
                f"{m['coverage']:.0f}",
                f"{m['pinball']:.1f}",
                end_section=i == len(metrics) - 1,
            )
    console = Console()
    console.print(table)
    console.print(f"plot: {plot}")
    return 0


def _plot(series, forecasts: dict, horizons: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from lokirl.forecast.evaluate import future_means

    shown = [h for h in (5, 30) if h in horizons] or list(horizons[:2])
    actual = future_means(series.rates, horizons)
    fig, axes = plt.subplots(
        len(shown), 1, figsize=(11, 3.2 * len(shown)), sharex=True, squeeze=False
    )
    t = np.arange(len(series))
    for ax, h in zip(axes[:, 0], shown, strict=True):
        j = horizons.index(h)
        ax.plot(t, series.rates, color="0.8", lw=0.8, label="rate (per s)")
        ax.plot(t, actual[:, j], color="k", lw=1.5, label=f"actual mean next {h}s")
        for name, (mean, upper) in forecasts.items():
            (line,) = ax.plot(t, mean[:, j], lw=1, label=name)
            if name.startswith("learned"):
                ax.plot(
                    t, upper[:, j], lw=0.8, ls="--", color=line.get_color(), label=f"{name} upper"
                )
        ax.set_ylabel("req/s")
        ax.set_title(f"horizon {h} s (forecast made at t for t+1..t+{h})")
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper left")
    axes[-1, 0].set_xlabel("decision time t (s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _heldout(args: argparse.Namespace) -> int:
    from lokirl.forecast.heldout import heldout, markdown_table
    from lokirl.forecast.train import TrainConfig

    if not 1 <= args.epochs <= 10_000:
        from lokirl.errors import ConfigError

        raise ConfigError(
            "--epochs", str(args.epochs), "must be in 1..10000", "pass e.g. --epochs 12"
        )
    results = heldout(
        TrainConfig(epochs=args.epochs, seed=args.seed),
        on_fold=lambda fold: print(f"fold: holding out {', '.join(fold)}", file=sys.stderr),
    )
    if args.json:
        print(strict_json(results, indent=2))
    else:
        print(markdown_table(results))
    return 0
