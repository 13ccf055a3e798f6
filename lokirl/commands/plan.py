"""``lokirl plan``: solve the allocation for a demand and show the plan."""

from __future__ import annotations

import argparse
import math

from lokirl.commands.options import check_workers
from lokirl.commands.stdout import strict_json
from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl plan --pipeline traffic_analysis --demand 300 --workers 20
  lokirl plan --demand 300 --workers 20 --json
  lokirl plan --sweep 50:1000:50 --workers 20        # hardware, then accuracy scaling
  lokirl plan --pipeline detect_classify_hetero --cluster pascal=4,ampere=4,cpu=8 --demand 40
  lokirl plan --pipeline configs/pipelines/example.yaml --demand 20 --workers 4

phases: hardware = demand fits on the most accurate variants (workers minimised);
        accuracy = cheaper variants mixed in to carry the demand at the best accuracy;
        partial  = the cluster cannot carry the demand; the plan serves the largest share.
status: optimal = proven optimal (within the MIP gap); feasible = best found in the
        time limit or within a warm-start neighbourhood; failed = no solution.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plan`` subcommand."""
    p = subparsers.add_parser(
        "plan",
        help="solve the MILP allocation for a demand and print the plan",
        description=(
            "Solve Loki's MILP (hardware scaling, then accuracy scaling, then the best "
            "partial plan) for a pipeline, a demand and a cluster, and print the plan: "
            "variants, replicas, batch sizes, routing shares, expected accuracy, capacity, "
            "active workers, solve time and status."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--pipeline",
        default="traffic_analysis",
        help="built-in pipeline name or pipeline YAML file (default: traffic_analysis)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--demand", type=float, default=300.0, help="root demand in frames/s (default: 300)"
    )
    g.add_argument(
        "--sweep", metavar="LO:HI:STEP", help="solve for every demand in a range, one row each"
    )
    c = p.add_mutually_exclusive_group()
    c.add_argument(
        "--workers",
        type=int,
        default=20,
        help="workers of the pipeline's accelerator type (default: 20)",
    )
    c.add_argument(
        "--cluster", metavar="TYPE=N,...", help="heterogeneous cluster, e.g. pascal=4,ampere=4"
    )
    p.add_argument(
        "--solver",
        choices=("highs", "cbc"),
        default="highs",
        help="MILP solver: highs (default, in process, the faster) or cbc (through PuLP)",
    )
    p.add_argument(
        "--time-limit", type=float, default=10.0, help="solver time limit in seconds (default: 10)"
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="bound each solve by work (a node limit, one thread) instead of --time-limit: "
        "the same plan on every run, however busy the machine",
    )
    p.add_argument(
        "--accuracy-model",
        choices=("multiplicative", "e2e"),
        default="multiplicative",
        help="path accuracy: product of variant accuracies, or the pipeline's measured table",
    )
    p.add_argument(
        "--latency-budget",
        type=float,
        default=0.5,
        help="fraction of the SLO the batch latencies of a path must fit (Loki: 0.5)",
    )
    p.add_argument("--json", action="store_true", help="print the plan (or sweep) as JSON")
    p.set_defaults(handler=run)


def parse_cluster(text: str) -> dict[str, int]:
    """Parse ``pascal=4,ampere=4`` into ``{"pascal": 4, "ampere": 4}``."""
    out: dict[str, int] = {}
    for part in text.split(","):
        name, sep, n = part.partition("=")
        if not sep or not name.strip() or not n.strip().isdigit():
            raise ConfigError(
                "--cluster",
                part or text,
                "expected TYPE=N",
                "write e.g. --cluster pascal=4,ampere=4",
            )
        if name.strip() in out:  # the last count silently won
            raise ConfigError(
                "--cluster", text, f"type {name.strip()!r} given twice", "give each type once"
            )
        out[name.strip()] = int(n)
    return out


#: Demands one ``--sweep`` may solve.
MAX_SWEEP = 1000


def _parse_sweep(text: str) -> list[float]:
    try:
        lo, hi, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(
            "--sweep", text, "expected LO:HI:STEP", "write e.g. --sweep 50:1000:50"
        ) from None
    if step <= 0 or hi < lo or lo < 0:
        raise ConfigError(
            "--sweep", text, "need 0 <= LO <= HI and STEP > 0", "write e.g. --sweep 50:1000:50"
        )
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(step)):
        raise ConfigError(
            "--sweep", text, "LO, HI and STEP must be finite", "write e.g. --sweep 50:1000:50"
        )
    n = int(math.floor((hi - lo) / step + 1e-9)) + 1
    if n > MAX_SWEEP:
        raise ConfigError(
            "--sweep",
            text,
            f"{n:,} demands to solve (at most {MAX_SWEEP:,}: each is one solve of up to a second)",
            f"widen STEP, e.g. --sweep {lo:g}:{hi:g}:{(hi - lo) / 50:g}",
        )
    return [lo + k * step for k in range(n)]


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl plan``."""
    from lokirl.core.allocator import AllocatorOptions, solve
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline

    pipeline = load_pipeline(args.pipeline)
    if args.cluster:
        cluster = Cluster(parse_cluster(args.cluster))
        unknown = set(cluster.workers) - set(pipeline.accelerators)
        if unknown:
            raise ConfigError(
                "--cluster",
                ",".join(sorted(unknown)),
                f"pipeline {pipeline.name} has no profile for these accelerator types",
                f"use {', '.join(pipeline.accelerators)}",
            )
        usable = sum(n for a, n in cluster.workers.items() if a in pipeline.accelerators)
        kind = next(iter(cluster.workers), "TYPE")  # e.g. gpu=3, not 3
        check_workers(pipeline, usable, "--cluster", f"--cluster {kind}={{n}} (in all)")
    else:
        check_workers(pipeline, args.workers)
        cluster = Cluster.homogeneous(pipeline, args.workers)
    if args.demand is not None and (args.demand < 0 or not math.isfinite(args.demand)):
        raise ConfigError(
            "--demand", str(args.demand), "must be a finite number >= 0", "pass e.g. --demand 300"
        )
    if args.time_limit <= 0:
        raise ConfigError(
            "--time-limit", str(args.time_limit), "must be positive", "pass e.g. --time-limit 10"
        )
    if not 0 < args.latency_budget <= 1:
        raise ConfigError(
            "--latency-budget", str(args.latency_budget), "must be in (0, 1]", "pass 0.5"
        )
    options = AllocatorOptions(
        solver=args.solver,
        time_limit_s=args.time_limit,
        deterministic=args.deterministic,
        accuracy_model=args.accuracy_model,
        latency_budget=args.latency_budget,
    )
    if args.sweep:
        plans = [solve(pipeline, cluster, d, options) for d in _parse_sweep(args.sweep)]
        if args.json:
            print(strict_json([_sweep_row(p) for p in plans], indent=2))
        else:
            _print_sweep(pipeline.name, cluster, plans)
        return 0
    plan = solve(pipeline, cluster, args.demand, options)
    if args.json:
        print(strict_json(plan.to_dict(), indent=2))
    else:
        print_plan(plan)
    return 0


def _mix(plan) -> str:
    return " ".join(f"{v}:{n}" for v, n in plan.replicas().items())


def make_console():
    """A rich console; wide when the output is not a terminal (pipes, files, CI logs)."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=160)


def _sweep_row(plan) -> dict:
    return {
        "demand": plan.demand,
        "phase": plan.phase,
        "status": plan.status,
        "active_workers": plan.active_workers,
        "expected_accuracy": plan.expected_accuracy,
        "served_share": plan.served_share,
        "max_demand": plan.max_demand,
        "solve_time_s": plan.solve_time_s,
        "replicas": plan.replicas(),
    }


def _print_sweep(name: str, cluster, plans) -> None:
    from rich.table import Table

    table = Table(title=f"{name} on {dict(cluster.workers)}: demand sweep")
    for col in (
        "demand",
        "phase",
        "status",
        "workers",
        "accuracy",
        "served",
        "solve ms",
        "replicas",
    ):
        table.add_column(
            col, justify="right" if col not in ("phase", "status", "replicas") else "left"
        )
    for p in plans:
        style = {"hardware": "green", "accuracy": "yellow", "partial": "red"}.get(p.phase, "")
        table.add_row(
            f"{p.demand:g}",
            f"[{style}]{p.phase}[/]",
            p.status,
            str(p.active_workers),
            f"{p.expected_accuracy:.2f}",
            f"{p.served_share:.1%}",
            f"{p.solve_time_s * 1000:.0f}",
            _mix(p),
        )
    make_console().print(table)


def print_plan(plan) -> None:
    """Print a plan as readable tables."""
    from rich.table import Table

    console = make_console()
    style = {"hardware": "green", "accuracy": "yellow", "partial": "red", "fallback": "red"}[
        plan.phase
    ]
    console.print(
        f"[bold]{plan.pipeline}[/] at [bold]{plan.demand:g}[/] frames/s on {dict(plan.workers)}: "
        f"phase [{style}]{plan.phase}[/], status [bold]{plan.status}[/] ({plan.solver}, "
        f"{plan.solve_time_s * 1000:.0f} ms)"
    )
    console.print(
        f"expected accuracy [bold]{plan.expected_accuracy:.2f}[/]  active workers "
        f"[bold]{plan.active_workers}[/]/{sum(plan.workers.values())}  served "
        f"{plan.served_share:.1%}  capacity {plan.max_demand:.1f} frames/s"
    )
    if plan.message:
        console.print(f"[dim]{plan.message}[/]")
    groups = Table(title="worker groups")
    for col in (
        "task",
        "variant",
        "accel",
        "batch",
        "replicas",
        "accuracy",
        "batch ms",
        "capacity/s",
        "load/s",
        "util",
    ):
        groups.add_column(col, justify="left" if col in ("task", "variant", "accel") else "right")
    for g in plan.groups:
        util = g.load / g.capacity if g.capacity > 0 else 0.0
        groups.add_row(
            g.task,
            g.variant,
            g.accelerator,
            str(g.batch_size),
            str(g.replicas),
            f"{g.accuracy:.1f}",
            f"{g.latency_ms:.1f}",
            f"{g.capacity:.0f}",
            f"{g.load:.0f}",
            f"{util:.0%}",
        )
    console.print(groups)
    shares = Table(title="routing shares per task")
    shares.add_column("task")
    shares.add_column("variant")
    shares.add_column("share", justify="right")
    shares.add_column("capacity/s", justify="right")
    cap = plan.capacity()
    for task, per in plan.task_shares().items():
        for k, (v, s) in enumerate(sorted(per.items(), key=lambda kv: -kv[1])):
            shares.add_row(
                task if k == 0 else "", v, f"{s:.1%}", f"{cap[task]:.0f}" if k == 0 else ""
            )
    console.print(shares)
    paths = Table(title="paths (solver's routing shares of frames)")
    for col in ("path", "share", "accuracy", "batch ms"):
        paths.add_column(col, justify="left" if col == "path" else "right")
    for p in plan.paths[:12]:
        paths.add_row(
            " -> ".join(p.variants), f"{p.share:.1%}", f"{p.accuracy:.2f}", f"{p.latency_ms:.1f}"
        )
    if len(plan.paths) > 12:
        paths.add_row(f"... {len(plan.paths) - 12} more", "", "", "")
    console.print(paths)
