"""``lokirl bench``: play a suite (cases x seeds) with every controller and report it."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lokirl.commands.options import (
    add_trace_format_options,
    parse_range,
    parse_solver_time,
    seed,
    split_specs,
)
from lokirl.commands.stdout import strict_json
from lokirl.core.reconfig import SWAP_MODES
from lokirl.errors import ConfigError

EPILOG = """\
suites (lokirl/data/suites/, or your own YAML file; format in lokirl/experiments/suites.py):
  dev          tiny (3 cases x 2 seeds, 30 s each): tests and smoke runs, never decisions
  validation   where every decision is made (tuning, model selection, design)
  test         frozen and hashed (test.sha256): run it to report, never to choose; needs
               --allow-test, and refuses to run if its content or traces changed

what it does: every controller plays every (case, seed) in the simulator with the same
randomness (common random numbers) and deterministic, work-bounded solves (the
allocator's deterministic mode, modelled solver time), so the same command prints the
same tables. Statistics treat the case (a trace on a cluster) as the unit: intervals
are 95% percentile intervals of a hierarchical bootstrap (cases resampled within their
family, then seeds within each case); paired differences are against --reference
(mean, interquartile mean, probability of improvement).

progress: a live bar on a terminal; elsewhere (a log file, CI) a line on stderr about
every 5% of the episodes with the time elapsed and an estimate of what is left (none
with --json).

outputs (a run folder under runs/, or under --out): per_episode.json (one row per
episode: suite, suite hash, commit, case, family, seed, controller, reward, violation
ratios, accuracy, effective accuracy, solves, reconfigurations, workers, wall time),
summary.json, report.md (tables for docs/results.md), pareto.png (effective accuracy vs
frame violations per controller, annotated with solves and workers), config.yaml.

examples:
  lokirl bench --suite dev
  lokirl bench --suite validation --controllers loki,loki-5s,trigger,ppo:runs/x/model.zip --jobs 2
  lokirl bench --trace my_trace.csv --workers 40 --load 0.3:2.0 --seeds 3
  lokirl bench --suite test --allow-test --json
  lokirl bench --suite validation --swap free --solver-time 0   # under Loki's own assumptions
  lokirl bench --suite validation --arrival-jitter 4 --jitter-copy 2   # the same frames, ms later
  lokirl bench --from runs/bench__a,runs/bench__b --reference trigger-tuned
  lokirl bench --from OLD,NEW --allow-commits   # NEW played a new controller and a bridge
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="play an evaluation suite (dev, validation, test) and report trace-level statistics",
        description=(
            "Play every controller on every (case, seed) of a suite in the simulator and "
            "report per-case tables, paired differences with hierarchical-bootstrap "
            "intervals, and the Pareto front."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("what to play (one of)")
    src.add_argument("--suite", metavar="NAME|FILE", help="dev, validation, test or a suite YAML")
    src.add_argument(
        "--from",
        dest="from_runs",
        metavar="DIRS",
        help="comma-separated run folders of earlier lokirl bench runs of the same suite "
        "and commit (see --allow-commits) that played different controllers (or record "
        "folders keeping per_episode.json.gz): merge and report them, playing nothing",
    )
    src.add_argument(
        "--trace",
        metavar="FILE",
        help="a one-case suite on this trace (bundled name or file in any format lokirl reads)",
    )
    adhoc = p.add_argument_group("the one case of --trace")
    add_trace_format_options(adhoc)
    adhoc.add_argument("--pipeline", help="default: traffic_analysis")
    adhoc.add_argument("--workers", type=int, help="default: 20")
    adhoc.add_argument(
        "--load",
        metavar="LO:HI|auto|none",
        help="trace min..max mapped onto LO..HI x --load-unit; auto (default): 0.3:2.0 x "
        "the capacity at full accuracy, or 0.05:0.4 x the largest capacity at any accuracy "
        "for a pipeline whose most accurate variants cannot meet the SLO (social_media), "
        "as the suites load their cases; none: as recorded",
    )
    adhoc.add_argument(
        "--load-unit",
        choices=("auto", "full_accuracy", "max"),
        help="what --load multiplies: the cluster's capacity at full accuracy, its largest "
        "capacity at any accuracy (max), or auto (default: full_accuracy where the "
        "pipeline has it, else max)",
    )
    adhoc.add_argument("--duration", type=float, help="seconds (default: 300)")
    adhoc.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: 3)")
    p.add_argument(
        "--controllers",
        help="comma-separated controller specs (default: the suite's, e.g. loki,loki-5s,"
        "trigger,oracle,inferline); ppo:PATH for a trained policy, "
        "ppo:A.zip+B.zip for one policy per pipeline (each case gets the one that fits)",
    )
    p.add_argument(
        "--reference",
        help="controller the others are compared with (default: the suite's, trigger), or "
        "the NAME of a --pool (e.g. a new policy's seeds against an older one's)",
    )
    p.add_argument(
        "--pool",
        metavar="NAME=PATTERN",
        action="append",
        help="report the controllers matching PATTERN (e.g. 'gain:*') also as one controller "
        "NAME averaging them per episode: one learned method trained with several seeds, "
        "compared with traces (not training seeds) as the unit (repeatable)",
    )
    p.add_argument(
        "--cases",
        metavar="PATTERNS",
        help="play only the cases whose id matches one of these comma-separated patterns "
        "(e.g. 'ta20-*' for a policy built for 20 workers); with --from, report only "
        "those cases of the recorded runs (which may then be runs of different case "
        "lists, e.g. a run of every case and one of --cases); default: every case",
    )
    p.add_argument(
        "--allow-commits",
        action="store_true",
        help="with --from: merge runs of different commits, if every commit is linked to the "
        "others by a controller played at both (e.g. the reference played again beside a new "
        "controller) whose episodes came out the same (the change did not alter them)",
    )
    p.add_argument(
        "--allow-test",
        action="store_true",
        help="allow the frozen test suite (report on it; never choose on it)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes playing (case, seed) pairs at once; results do not depend on it",
    )
    p.add_argument(
        "--solver-time",
        default="model",
        metavar="model|SECONDS",
        help="simulated duration of every solve: 'model' (default; a fixed cost per "
        "allocator phase, what every reported table uses) or seconds for every solve "
        "(a sensitivity check on that model, e.g. 0.02; shorter than the decision epoch)",
    )
    p.add_argument(
        "--swap",
        choices=SWAP_MODES,
        help="how a worker changes variant: with --trace, the case's mode (default: "
        "overlap); with --suite, every case is played under this mode instead of the "
        "suite's (a sensitivity check, e.g. free: the Loki authors' simulator, where a "
        "swap costs nothing), recorded in the run and its report; a policy refuses a "
        "mode it was not trained for",
    )
    p.add_argument(
        "--arrival-jitter",
        type=float,
        metavar="MS",
        help="a sensitivity check on timing: every controller plays each (case, seed)'s "
        "arrivals drawn beforehand, each delayed independently by a uniform amount in "
        "[0, MS) ms (e.g. 4, a network hop), instead of the simulator drawing them; "
        "recorded in the run and its report",
    )
    p.add_argument(
        "--jitter-copy",
        type=int,
        metavar="K",
        help="with --arrival-jitter: which draw of the delays (default 1; 0 plays the "
        "arrivals drawn beforehand undelayed); copies of one suite are separate runs",
    )
    p.add_argument(
        "--batch-overhead",
        type=float,
        metavar="MS",
        help="a sensitivity check on service time: every batch occupies its worker MS "
        "ms beyond its profiled latency (e.g. 4, the live path's hop), a cost no plan "
        "accounts for; recorded in the run and its report (default: 0)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap resamples (default: 2000)"
    )
    p.add_argument("--stats-seed", type=seed, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument("--out", metavar="DIR", help="base folder of the run folder (default: runs/)")
    p.add_argument("--json", action="store_true", help="print summary.json instead of tables")
    p.add_argument(
        "--print-hash", action="store_true", help="print the suite's content hash and exit"
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under runs/)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.set_defaults(handler=run)


#: The options of --trace's one case: (attribute, default).
_ADHOC: dict[str, tuple[str, object]] = {
    "--pipeline": ("pipeline", "traffic_analysis"),
    "--workers": ("workers", 20),
    "--load": ("load", "auto"),
    "--load-unit": ("load_unit", "auto"),
    "--duration": ("duration", 300.0),
    "--seeds": ("seeds", 3),
}


def _refuse_adhoc(args: argparse.Namespace, used: str) -> None:
    """Refuse --trace's options beside ``used`` (``--suite`` or ``--from``), which ignored them.

    Raises:
        ConfigError: naming the options given.

    """
    given = [o for o, (dest, _) in _ADHOC.items() if getattr(args, dest) is not None]
    if getattr(args, "column", None) is not None:
        given.append("--column")
    if given:
        raise ConfigError(
            "lokirl bench",
            ", ".join(given),
            f"these shape the one case of --trace and would be ignored with {used} "
            "(a suite's cases set their own)",
            "drop them, or write them into a suite file (duration_s, cluster, load, seeds)",
        )


def _load(args: argparse.Namespace):
    from lokirl.experiments.suites import adhoc_suite, load_suite

    if bool(args.suite) == bool(args.trace):
        raise ConfigError(
            "lokirl bench",
            "--suite/--trace/--from",
            "give exactly one of --suite, --trace and --from",
            "e.g. lokirl bench --suite dev, --trace my_trace.csv, or --from runs/bench__a,runs/bench__b",
        )
    if args.suite:
        _refuse_adhoc(args, "--suite")
    for dest, default in _ADHOC.values():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    if args.trace:
        if args.seeds < 1:
            raise ConfigError("--seeds", str(args.seeds), "must be >= 1", "pass e.g. --seeds 3")
        if args.workers < 1:
            raise ConfigError(
                "--workers", str(args.workers), "must be >= 1", "pass e.g. --workers 20"
            )
        load: tuple[float, float] | str | None = args.load
        if args.load == "none":
            load = None
        elif args.load != "auto":
            load = parse_range(args.load, "--load", "0.3:2.0", True)
        return adhoc_suite(
            args.trace,
            pipeline=args.pipeline,
            workers=args.workers,
            load=load,  # type: ignore[arg-type]
            load_unit=args.load_unit,
            duration_s=args.duration,
            swap=args.swap or "overlap",
            seeds=tuple(range(args.seeds)),
            trace_format=args.trace_format,
            column=args.column,
        )
    return load_suite(args.suite, check_frozen=not args.print_hash)


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl bench``."""
    from lokirl.experiments.runner import run_suite

    if args.bootstrap < 100:
        raise ConfigError(
            "--bootstrap", str(args.bootstrap), "too few resamples", "pass e.g. --bootstrap 2000"
        )
    if args.from_runs:
        _refuse_adhoc(args, "--from")
        if args.solver_time != "model":
            raise ConfigError(
                "lokirl bench",
                "--solver-time",
                "--from plays nothing: the merged runs keep the solve time they were "
                "played with (their reports say which)",
                "drop --solver-time",
            )
        if args.swap is not None:
            raise ConfigError(
                "lokirl bench",
                "--swap",
                "--from plays nothing: the merged runs keep the swap mode they were "
                "played with (their reports say which)",
                "drop --swap",
            )
        if args.arrival_jitter is not None or args.jitter_copy is not None:
            raise ConfigError(
                "lokirl bench",
                "--arrival-jitter",
                "--from plays nothing: the merged runs keep the arrivals they were "
                "played with (their reports say which)",
                "drop --arrival-jitter and --jitter-copy",
            )
        if args.batch_overhead is not None:
            raise ConfigError(
                "lokirl bench",
                "--batch-overhead",
                "--from plays nothing: the merged runs keep the overhead they were "
                "played with (their reports say which)",
                "drop --batch-overhead",
            )
        return _report(args, _merged(args, None if _pool_reference(args) else args.reference), None)
    if args.allow_commits:
        raise ConfigError(
            "lokirl bench",
            "--allow-commits",
            "it merges recorded runs and plays nothing",
            "use it with --from",
        )
    suite = _load(args)
    if args.print_hash:
        print(suite.hash)
        return 0
    if args.trace:
        from lokirl.experiments.suites import case_trace
        from lokirl.traces import resolve_trace_noted

        note = resolve_trace_noted(args.trace, args.trace_format, args.column)[1]
        if note:  # how the file was read: a unit guessed wrong shows in its span and count
            print(f"bench: {note}", file=sys.stderr)
        (case,) = suite.spec.cases
        played = case_trace(case, 1.0, suite.base_dir, min_requests=0).duration_s
        if played < case.duration_s - 1e-9:
            print(
                f"bench: {args.trace} lasts {played:g} s, less than --duration "
                f"{case.duration_s:g}: {played:g} s played (rewards and solves are reported "
                "per 120 s of trace)",
                file=sys.stderr,
            )
    if args.cases:
        from lokirl.experiments.suites import select_cases

        suite = select_cases(suite, [c.strip() for c in args.cases.split(",") if c.strip()])
    if suite.spec.frozen and not args.allow_test:
        raise ConfigError(
            suite.source,
            "--allow-test",
            f"suite {suite.name!r} is the frozen test suite: it is run to report final "
            "results, never to choose (tuning, model selection or design choices made on "
            "it would overfit the reported numbers)",
            "decide on --suite validation; pass --allow-test only to report a finished choice",
        )
    if not suite.spec.frozen:
        from lokirl.experiments.suites import check_not_held_out

        played = [c.traffic.trace for c in suite.spec.cases if c.traffic.trace is not None]
        check_not_held_out(played, args.allow_test, suite.source, suite.base_dir)
    if args.jobs < 1:
        raise ConfigError("--jobs", str(args.jobs), "must be >= 1", "pass e.g. --jobs 2")
    solver_time = parse_solver_time(args.solver_time)
    timing = _timing(args)
    overhead_s = (args.batch_overhead or 0.0) / 1000.0  # run_suite refuses a bad one
    controllers = split_specs(args.controllers) if args.controllers else None
    if args.controllers is not None and not controllers:
        raise ConfigError(
            "--controllers", args.controllers, "no controller given", "pass e.g. loki,trigger"
        )
    n_eps = sum(len(suite.spec.seeds_of(c)) for c in suite.spec.cases) * len(
        controllers or suite.spec.controllers
    )
    pools = _pool_members(args.pool or [], list(controllers or suite.spec.controllers))
    # a pool as the reference: played with a member as the reference, reported against the pool
    reference = next((m[0] for name, m in pools if name == args.reference), args.reference)

    from lokirl.tracking.progress import ProgressLines, live_bar

    lines = ProgressLines(n_eps, f"bench {suite.name}: episodes", enabled=not args.json)
    with live_bar(transient=True, disable=args.json) as progress:
        task = progress.add_task(f"suite {suite.name}", total=n_eps)

        def tick(row: dict) -> None:
            progress.update(
                task,
                advance=1,
                description=f"{row['controller']} on {row['case']} (seed {row['seed']})",
            )
            lines.advance()

        results = run_suite(
            suite,
            controllers,
            reference,
            jobs=args.jobs,
            on_episode=tick,
            solver_time=solver_time,
            swap=args.swap if args.suite else None,
            timing=timing,
            batch_overhead_s=overhead_s,
        )
    return _report(args, results, suite)


def _timing(args: argparse.Namespace):
    """The ``--arrival-jitter`` copy to play (None: the simulator draws the arrivals)."""
    from lokirl.experiments.timing import ArrivalTiming

    if args.arrival_jitter is None:
        if args.jitter_copy is not None:
            raise ConfigError(
                "lokirl bench",
                "--jitter-copy",
                "it picks a copy of --arrival-jitter's delays, and no --arrival-jitter was given",
                "add --arrival-jitter MS, or drop --jitter-copy",
            )
        return None
    copy = 1 if args.jitter_copy is None else args.jitter_copy
    return ArrivalTiming(args.arrival_jitter, copy)


def _pool_reference(args: argparse.Namespace) -> str | None:
    """The ``--pool`` NAME that ``--reference`` names (None: it names a controller)."""
    names = [t.partition("=")[0] for t in args.pool or [] if "=" in t]
    return args.reference if args.reference in names else None


def _merged(args: argparse.Namespace, reference: str | None):
    """The merged per-episode tables of ``--from``, compared with ``reference``."""
    from lokirl.experiments.runner import Results, merge_results

    if args.suite or args.trace:
        raise ConfigError(
            "lokirl bench", "--from", "give --from alone (it plays nothing)", "drop --suite/--trace"
        )
    parts = []
    dirs = [x.strip() for x in args.from_runs.split(",") if x.strip()]
    for d in dirs:
        parts.append(Results.read(d))
    patterns = [c.strip() for c in (args.cases or "").split(",") if c.strip()]
    if patterns:  # a run of every case merges with a run of a subset on the cases asked for
        parts = _select_cases(parts, dirs, patterns)
    return merge_results(parts, reference, across_commits=args.allow_commits)


def _select_cases(parts: list, dirs: list[str], patterns: list[str]) -> list:
    """Each of ``--from``'s runs restricted to the cases of ``--cases``.

    Raises:
        ConfigError: a pattern that matches no case of any run, or a run that played
            none of the cases asked for (with the cases every run played).

    """
    from lokirl.experiments.runner import result_cases, select_result_cases
    from lokirl.experiments.suites import matching_case_ids

    played = [result_cases(p) for p in parts]
    every = list(dict.fromkeys(c for cases in played for c in cases))
    matching_case_ids(every, patterns, "--from", "the merged runs")
    selected = [select_result_cases(p, patterns, strict=False) for p in parts]
    for d, part in zip(dirs, selected, strict=True):
        if not part.rows:
            common = [c for c in every if all(c in cases for cases in played)]
            raise ConfigError(
                "--cases",
                ",".join(patterns),
                f"{d} played none of these cases",
                "pick cases every run played: " + (", ".join(common) or "(none in common)"),
            )
    return selected


def _pool_members(pools: list[str], played: list[str]) -> list[tuple[str, list[str]]]:
    """``(NAME, members)`` of each ``NAME=PATTERN`` of ``--pool`` over ``played``.

    Raises:
        ConfigError: a pool without a new NAME or whose PATTERN matches no controller
            (checked before a suite is played, and again on merged runs).

    """
    from fnmatch import fnmatchcase

    ctrls, out = list(played), []
    for text in pools:
        name, sep, pattern = text.partition("=")
        members = [c for c in played if fnmatchcase(c, pattern)] if sep else []
        if not name or not members or name in ctrls:
            raise ConfigError(
                "--pool",
                text,
                "needs NAME=PATTERN with a new NAME and a PATTERN matching played controllers "
                f"({', '.join(ctrls)})",
                "pass e.g. --pool 'gain-5seeds=gain:*'",
            )
        out.append((name, members))
        ctrls.append(name)
    return out


def _pooled(results, pools: list[str], reference: str | None = None):
    """``results`` with a pooled controller added for each ``NAME=PATTERN`` of ``--pool``.

    With ``reference`` one of the pools' names, the results are compared with that pool.
    """
    from lokirl.experiments.runner import Results
    from lokirl.experiments.stats import pool_controllers

    if not pools:
        return results
    rows, ctrls = list(results.rows), list(results.meta["controllers"])
    for name, members in _pool_members(pools, ctrls):
        rows += pool_controllers(results.rows, members, name)
        ctrls.append(name)
    meta = {**results.meta, "controllers": ctrls}
    if reference in ctrls[len(results.meta["controllers"]) :]:
        meta["reference"] = reference
    return Results(rows=rows, meta=meta)


def _report(args: argparse.Namespace, results, suite) -> int:
    """Summarise, write the run folder (and MLflow run), print."""
    from lokirl.experiments.report import markdown, pareto_plot, summarize
    from lokirl.tracking import mlflow_run, run_dir, write_config

    results = _pooled(results, args.pool or [], args.reference)
    meta = results.meta
    summary = summarize(results, n_boot=args.bootstrap, seed=args.stats_seed)
    folder = run_dir("bench", meta["suite"], root=args.out)
    (folder / "per_episode.json").write_text(strict_json(results.to_dict(), indent=2))
    (folder / "summary.json").write_text(strict_json(summary, indent=2))
    (folder / "report.md").write_text(markdown(summary))
    pareto_plot(summary, folder / "pareto.png")
    write_config(
        folder,
        {
            "suite": suite.spec.model_dump(mode="json") if suite else meta["suite"],
            "suite_hash": meta["suite_hash"],
            "suite_source": meta.get("suite_source"),
            "options": {k: v for k, v in vars(args).items() if k != "handler"},
        },
    )
    if not args.no_mlflow:
        _log_mlflow(mlflow_run, args, summary, folder)
    if args.json:
        print(strict_json(summary, indent=2))
        return 0
    print_tables(summary)
    print(f"results: {folder}")
    return 0


def _log_mlflow(mlflow_run, args, summary: dict, folder: Path) -> None:
    """One MLflow run per suite: overall means per controller, the files as artifacts."""
    meta = summary["meta"]
    with mlflow_run(
        "lokirl-bench",
        folder.name,
        args.tracking_uri,
        params={
            "suite": meta["suite"],
            "suite_hash": meta["suite_hash"],
            "commit": meta["commit"],
            "controllers": ",".join(meta["controllers"]),
            "reference": meta["reference"],
            "solver_time": str(meta.get("solver_time", "model")),
            "swap": str(meta.get("swap") or "suite"),
            "arrival_timing": str(meta.get("arrival_timing") or "drawn by the simulator"),
            "batch_overhead_s": str(meta.get("batch_overhead_s") or 0.0),
        },
    ) as ml:
        for c, per in summary["aggregate"].items():
            ml.log_metrics(
                {
                    f"{c.replace(':', '_')}/{m}": scopes["overall"]["estimate"]
                    for m, scopes in per.items()
                    if scopes.get("overall", {}).get("cases")
                }
            )
        for name in ("summary.json", "per_episode.json", "report.md", "pareto.png"):
            ml.log_artifact(folder / name)
        parent = ml.run_id
    if parent is None:
        return
    # One child run per case: each controller's means over the case's seeds.
    by_case: dict[str, list[dict]] = {}
    for entry in summary.get("per_case", []):
        by_case.setdefault(entry["case"], []).append(entry)
    for case, entries in by_case.items():
        with mlflow_run(
            "lokirl-bench",
            f"{folder.name}/{case}",
            args.tracking_uri,
            params={"suite": meta["suite"], "case": case, "family": entries[0]["family"]},
            tags={"mlflow.parentRunId": parent},
        ) as child:
            child.log_metrics(
                {
                    f"{e['controller'].replace(':', '_')}/{m}": e[m]
                    for e in entries
                    for m in ("reward", "frame_violation_ratio", "effective_accuracy", "solves")
                    if isinstance(e.get(m), float) and math.isfinite(e[m])
                }
            )


def print_tables(summary: dict) -> None:
    """Print the overall, paired and per-case tables (deterministic given the summary)."""
    from rich.table import Table

    from lokirl.commands.plan import make_console
    from lokirl.experiments.report import (
        CASE_METRICS,
        LABELS,
        PAIRED_METRICS,
        fmt,
        fmt_interval,
        scopes,
    )

    meta = summary["meta"]
    console = make_console()
    n_cases = len(meta["cases"])
    title = (
        f"suite {meta['suite']} ({meta['suite_hash'][:12]}), {n_cases} cases: "
        "mean over cases [95% hierarchical bootstrap]"
    )
    if meta.get("solver_time", "model") != "model":
        title += f"; every solve {meta['solver_time']} s (not the modelled time)"
    if meta.get("swap"):
        title += f"; every case under --swap {meta['swap']} (not the suite's)"
    if meta.get("arrival_timing"):
        timing = meta["arrival_timing"]
        title += f"; arrivals drawn beforehand, up to {timing['jitter_ms']:g} ms later, copy {timing['copy']}"
    if meta.get("batch_overhead_s"):
        title += f"; every batch {meta['batch_overhead_s'] * 1000:g} ms beyond its profile"
    t = Table(title=title)
    t.add_column("controller")
    cols = ("reward", "frame_violation_ratio", "effective_accuracy", "accuracy", "solves")
    for m in cols:
        t.add_column(LABELS[m], justify="right")
    t.add_column("workers", justify="right")
    front = {p["controller"] for p in summary["pareto"] if p["on_front"]}
    for c, per in summary["aggregate"].items():
        cells = [fmt_interval(m, per[m]["overall"]) for m in cols]
        cells.append(fmt("mean_active_workers", per["mean_active_workers"]["overall"]["estimate"]))
        t.add_row(f"{c} *" if c in front else c, *cells)
    console.print(t)
    console.print("*: on the Pareto front (effective accuracy vs frame violations)")
    ref = meta["reference"]
    if len(meta["controllers"]) > 1:
        pt = Table(
            title=f"paired vs {ref} (same case and seed): mean difference [95%], P(better) [95%]"
        )
        pt.add_column("controller")
        pt.add_column("scope")
        pt.add_column("n", justify="right")
        for m in PAIRED_METRICS:
            pt.add_column(LABELS[m], justify="right")
        pt.add_column("P(better reward)", justify="right")
        for c in summary["paired"]["reward"]:
            for s in scopes(summary):
                d = {m: summary["paired"][m][c].get(s) for m in PAIRED_METRICS}
                if d["reward"] is None or not d["reward"]["mean"]["cases"]:
                    continue
                sig = d["reward"]["mean"]["lo"] > 0
                pt.add_row(
                    f"[bold]{c}[/]" if sig else c,
                    s,
                    str(d["reward"]["mean"]["cases"]),
                    *[
                        fmt_interval(m, d[m]["mean"], True) if d[m] else "n/a"
                        for m in PAIRED_METRICS
                    ],
                    fmt_interval("poi", d["reward"]["poi"]),
                )
        console.print(pt)
        console.print(
            "bold: reward higher than the reference's (interval above 0); n = cases "
            "(a family of few cases understates how much cases differ)"
        )
    ct = Table(title="per case, mean over seeds")
    ct.add_column("case")
    ct.add_column("controller")
    for m in CASE_METRICS:
        ct.add_column(LABELS[m], justify="right")
    for e in summary["per_case"]:
        ct.add_row(e["case"], e["controller"], *[fmt(m, e[m]) for m in CASE_METRICS])
    console.print(ct)
    if summary["failures"]:
        console.print(
            f"[red]{len(summary['failures'])} episode(s) failed and are left out:[/] "
            + "; ".join(
                f"{f['case']}/{f['seed']}/{f['controller']}: {f['error']}"
                for f in summary["failures"]
            )
        )
