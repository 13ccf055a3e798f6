"""``lokirl serve``: serve a pipeline on Ray workers behind an HTTP ingress."""

from __future__ import annotations

import argparse

from lokirl.core.reconfig import SWAP_MODES
from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl serve --pipeline traffic_analysis_cpu --controller loki --workers 2
  lokirl serve --pipeline traffic_analysis --workers 8 --address auto      # join a Ray cluster
  curl -s -X POST -H 'Content-Type: image/jpeg' --data-binary @frame.jpg \\
       http://127.0.0.1:8000/v1/pipelines/traffic_analysis_cpu/infer
  curl -s http://127.0.0.1:8000/v1/status

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
    p.add_argument("--workers", type=int, default=2, help="worker actors (default: 2)")
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
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl serve``."""
    if not 0 < args.port < 65536:
        raise ConfigError("--port", str(args.port), "not a TCP port", "pass e.g. --port 8000")
    if args.workers < 1:
        raise ConfigError("--workers", str(args.workers), "must be at least 1", "pass --workers 2")
    if args.max_body_mb <= 0:
        raise ConfigError("--max-body-mb", str(args.max_body_mb), "must be positive", "pass 8")
    import uvicorn

    from lokirl.runtime.app import create_app
    from lokirl.runtime.cluster import connect
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    config = RuntimeConfig(
        pipeline=args.pipeline,
        workers=args.workers,
        controller=args.controller,
        accelerator=args.accelerator,
        epoch_s=args.epoch,
        initial_demand=args.initial_demand,
        input_size=args.input_size,
        early_drop=not args.no_early_drop,
        swap=args.swap,
    )
    runtime = Runtime(config)  # validates the pipeline and controller before Ray starts
    ray = connect(args.address, args.num_cpus)
    try:
        app = create_app(runtime, int(args.max_body_mb * 1024 * 1024), manage=True)
        print(
            f"lokirl serve: {runtime.pipeline.name} on http://{args.host}:{args.port} "
            f"({args.workers} workers, controller {args.controller}, swaps: {args.swap})",
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        ray.shutdown()
    return 0
