"""``lokirl serve``: serve a pipeline on Ray workers behind an HTTP ingress."""

from __future__ import annotations

import argparse
from dataclasses import replace

from lokirl.core.reconfig import SWAP_MODES
from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl serve --pipeline traffic_analysis_cpu --controller loki-1s --workers 3
  lokirl serve --pipeline traffic_analysis --emulate --workers 20   # GPU profile, emulated
  lokirl serve --pipeline traffic_analysis --workers 8 --address auto      # join a Ray cluster
  curl -s -X POST -H 'Content-Type: image/jpeg' --data-binary @frame.jpg \\
       http://127.0.0.1:8000/v1/pipelines/traffic_analysis_cpu/infer
  curl -s http://127.0.0.1:8000/v1/status

--workers defaults to one per GPU of the Ray cluster, else one per CPU of
the local Ray, and never fewer than the pipeline's tasks (a task without a
worker would drop every frame); with --emulate, to 20. --emulate starts
workers that host no model and take the profiled latency asleep (claiming no
CPU), so a GPU profile runs live on a laptop; --dilation K runs it K times
slower (latencies, load times, SLO and --epoch x K: send rates / K).
Binds to 127.0.0.1 unless --host says otherwise. Accuracy figures are the
profile's normalised accuracies of the variants served, not measured here.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="serve a pipeline live on Ray worker actors (HTTP ingress)",
        description=(
            "Start worker actors (one per GPU, or small CPU actors), solve the first plan, "
            "and serve frames over HTTP with Most-Accurate-First routing, early dropping "
            "and the controller loop re-planning every epoch."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--pipeline",
        default="traffic_analysis_cpu",
        help="built-in pipeline or YAML file (default: traffic_analysis_cpu)",
    )
    p.add_argument("--controller", default="loki", help="controller spec (default: loki)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker actors (default: one per GPU, else per local CPU, at least one per task; "
        "with --emulate 20)",
    )
    p.add_argument(
        "--address", default=None, help="Ray cluster address to join ('auto', HOST:PORT)"
    )
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--initial-demand", type=float, default=None, help="frames/s the first plan is solved for"
    )
    p.add_argument("--epoch", type=float, default=1.0, help="controller period in s (default: 1)")
    p.add_argument("--accelerator", default=None, help="profile accelerator type to plan with")
    p.add_argument("--input-size", type=int, default=None, help="square input resolution")
    p.add_argument(
        "--max-body-mb", type=float, default=8.0, help="request body limit in MiB (default: 8)"
    )
    p.add_argument("--no-early-drop", action="store_true", help="disable early dropping")
    p.add_argument(
        "--swap",
        default="overlap",
        choices=SWAP_MODES,
        help="how a worker changes variant (default: overlap). overlap: make-before-break, "
        "the actor loads the new variant beside the old one, which keeps serving until the "
        "load completes (when both fit in the worker's memory; else as 'stop'); stop: the "
        "old variant is freed first and no request is routed to the worker until the new "
        "one is loaded; free: the router counts the worker at once and its requests wait "
        "for the load (the Loki authors' simulator assumes swaps are free; for comparison "
        "only)",
    )
    p.add_argument(
        "--emulate",
        action="store_true",
        help="emulated accelerators: workers host no model and sleep the profiled batch "
        "latency and load time (no CPU claimed); everything else is the live path",
    )
    p.add_argument(
        "--dilation",
        type=float,
        default=1.0,
        help="with --emulate: run K times slower (latencies, load times, SLO and --epoch x K; "
        "send rates / K); default 1",
    )
    p.set_defaults(handler=run)


#: Default worker count with --emulate (the scale of Loki's evaluation).
EMULATED_WORKERS = 20


def default_workers(tasks: int, args: argparse.Namespace, ray: object | None = None) -> int:
    """Workers when ``--workers`` is not given: enough for every task, and the machine's share.

    Args:
        tasks: Tasks of the pipeline (each needs a worker, or every frame is dropped).
        args: The parsed options (``emulate``, ``num_cpus``).
        ray: The connected ``ray`` module when joining a cluster (its GPUs, else CPUs,
            count); ``None``: the local machine (``--num-cpus``, else its CPUs).

    """
    import os

    if args.emulate:
        return max(tasks, EMULATED_WORKERS)
    if ray is not None:
        res = ray.cluster_resources()  # type: ignore[attr-defined]
        return max(tasks, int(res.get("GPU", 0)) or int(res.get("CPU", 1)))
    return max(tasks, args.num_cpus or os.cpu_count() or 1)


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl serve``."""
    if not 0 < args.port < 65536:
        raise ConfigError("--port", str(args.port), "not a TCP port", "pass e.g. --port 8000")
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers", str(args.workers), "must be at least 1", "pass --workers 3")
    if not (args.dilation > 0 and args.dilation < float("inf")):
        raise ConfigError("--dilation", str(args.dilation), "must be a number > 0", "pass 1 or 4")
    if args.dilation != 1.0 and not args.emulate:
        raise ConfigError(
            "--dilation",
            str(args.dilation),
            "only emulated workers can be slowed down (real models take their own time)",
            "add --emulate, or drop --dilation",
        )
    if args.max_body_mb <= 0:
        raise ConfigError("--max-body-mb", str(args.max_body_mb), "must be positive", "pass 8")
    import uvicorn

    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.runtime.app import create_app
    from lokirl.runtime.cluster import connect
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    pipeline = load_pipeline(args.pipeline)
    tasks = len(pipeline.tasks)
    if args.workers is not None and args.workers < tasks:
        raise ConfigError(
            "--workers",
            str(args.workers),
            f"pipeline {pipeline.name} has {tasks} tasks and each needs a worker "
            "(a task without one drops every frame)",
            f"pass --workers {tasks} or more",
        )
    workers = args.workers or default_workers(tasks, args)
    config = RuntimeConfig(
        pipeline=args.pipeline,
        workers=workers,
        controller=args.controller,
        accelerator=args.accelerator,
        epoch_s=args.epoch * args.dilation,
        initial_demand=args.initial_demand,
        input_size=args.input_size,
        early_drop=not args.no_early_drop,
        swap=args.swap,
        emulate=args.emulate,
        dilation=args.dilation,
    )
    # Validates the pipeline and controller before Ray starts.
    runtime = Runtime(config, pipeline=pipeline)
    ray = connect(args.address, args.num_cpus)
    if args.address and args.workers is None and not args.emulate:
        runtime.config = replace(config, workers=default_workers(tasks, args, ray))
    try:
        app = create_app(runtime, int(args.max_body_mb * 1024 * 1024), manage=True)
        print(
            f"lokirl serve: {runtime.pipeline.name} on http://{args.host}:{args.port} "
            f"({runtime.config.workers} {'emulated ' if args.emulate else ''}workers, "
            f"controller {args.controller}, swaps: {args.swap}"
            + (f", time dilated x{args.dilation:g}" if args.dilation != 1.0 else "")
            + ")",
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        ray.shutdown()
    return 0
