"""``lokirl profile``: measure variant latency and load time here; write a pipeline profile."""

from __future__ import annotations

import argparse

from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl profile --pipeline traffic_analysis --variants yolov5n,yolov5s,efficientnet-b0 \\
      --batch-sizes 1,2,4 --input-size 64 --out my_cpu_profile.yaml
  lokirl profile --pipeline traffic_analysis --batch-sizes 1,2,4,8,16 --accelerator gpu \\
      --out traffic_gpu.yaml                                    # on a GPU machine

Only latency and load time are measured; accuracy and branching are copied from
the base profile. Latencies are timed through a worker actor on a local Ray (as
served: the actor call's overhead included) unless --in-process is given. The output is a pipeline file the allocator and lokirl serve use.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``profile`` subcommand."""
    p = subparsers.add_parser(
        "profile",
        help="measure variant latency per batch size and load time; write a pipeline YAML",
        description="Profile each variant's networks on this machine's device.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pipeline", default="traffic_analysis", help="base pipeline")
    p.add_argument("--batch-sizes", default="1,2,4,8", help="comma-separated (default 1,2,4,8)")
    p.add_argument("--variants", default=None, help="comma-separated subset (default: all)")
    p.add_argument("--input-size", type=int, default=None, help="square input resolution")
    p.add_argument("--accelerator", default=None, help="name of the device type (cpu or gpu)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    p.add_argument("--repeats", type=int, default=5, help="timed batches per size (default 5)")
    p.add_argument("--slo-ms", type=float, default=None, help="SLO of the written pipeline")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="time the networks in this process instead of through a worker actor (no Ray)",
    )
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")
    p.add_argument("--address", default=None, help="Ray cluster address to join")
    p.add_argument("--out", required=True, help="output pipeline YAML")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl profile``."""
    from lokirl.core.pipeline_config import load_pipeline, pipeline_from_file
    from lokirl.runtime.models import model_sources
    from lokirl.runtime.profiler import profile_pipeline, write_profile
    from lokirl.runtime.runtime import pipeline_file

    try:
        sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ConfigError("--batch-sizes", args.batch_sizes, "expected positive integers", "1,2,4")
    pipeline = load_pipeline(args.pipeline)
    names = [v.name for v in pipeline.variants()]
    chosen = [x.strip() for x in args.variants.split(",")] if args.variants else names
    unknown = [x for x in chosen if x not in names]
    if unknown:
        raise ConfigError("--variants", ",".join(unknown), "not in the pipeline", ", ".join(names))
    for t in pipeline.tasks:
        if not any(v.name in chosen for v in t.variants):
            raise ConfigError("--variants", args.variants, f"task {t.name} has none", "add one")
    sources = model_sources(pipeline_file(args.pipeline), chosen, args.input_size)
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    accel = args.accelerator or ("gpu" if device == "cuda" else "cpu")
    mode = "process" if args.in_process else "actor"
    ray = None
    if mode == "actor":
        from lokirl.runtime.cluster import connect

        ray = connect(args.address, args.num_cpus)
    try:
        measured = profile_pipeline(
            pipeline,
            sources,
            sizes,
            chosen,
            device=device,
            threads=args.threads,
            repeats=args.repeats,
            progress=lambda line: print(line, flush=True),
            mode=mode,
        )
    finally:
        if ray is not None:
            ray.shutdown()
    how = "through a worker actor" if mode == "actor" else "in-process"
    size = args.input_size or next(iter(sources.values())).input_size
    path = write_profile(
        pipeline,
        measured,
        args.out,
        accelerator=accel,
        slo_ms=args.slo_ms,
        input_size=size,
        sources=sources,
        note=f"Input {size}x{size}, {args.threads} thread(s), median of {args.repeats}, "
        f"timed {how}.",
    )
    try:
        pipeline_from_file(path)
    except ConfigError as exc:
        print(f"lokirl profile: wrote {path}, but it does not validate: {exc}")
        return 2
    print(f"lokirl profile: wrote {path}")
    return 0
