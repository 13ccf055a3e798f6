"""``lokirl profile``: measure variant latency, load time and memory; write a pipeline profile."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl profile --pipeline traffic_analysis --variants yolov5n,yolov5s,efficientnet-b0 \\
      --batch-sizes 1,2,4 --input-size 64 --out my_cpu_profile.yaml
  lokirl profile --pipeline traffic_analysis --batch-sizes 1,2,4,8,16 --accelerator gpu \\
      --runs 50 --fp16 --out traffic_gpu.yaml                   # on a GPU machine

Measured: latency per batch size, the median of --runs timed batches (after one
untimed; each variant is first warmed up at every batch size) as latency_ms, with
the 95th and 99th percentiles beside it (latency_p95_ms, latency_p99_ms); --fp16
profiles half-precision networks (CUDA only: refused on the CPU); load time from
disk (load_time_s: weights read from a file evicted from the page cache, network
built, moved to the device, a warm-up batch at each batch size) and from host
memory (load_time_host_s); the memory a variant takes
with a forward at the largest batch (memory_mb, MiB); and, on CUDA, the device's
memory (accelerator_memory_mb; on CPU give it with --worker-memory-mb). Accuracy
and branching are copied from the base profile. Latencies are timed through a
worker actor on a local Ray (as served: the actor call's overhead included) unless
--in-process is given; loads and memory are measured in this process. Options are
checked before anything is measured or written. The output is a pipeline file the
allocator and lokirl serve use.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``profile`` subcommand."""
    p = subparsers.add_parser(
        "profile",
        help="measure variant latency, load time and memory; write a pipeline YAML",
        description="Profile each variant's networks on this machine's device.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pipeline", default="traffic_analysis", help="base pipeline")
    p.add_argument("--batch-sizes", default="1,2,4,8", help="comma-separated (default 1,2,4,8)")
    p.add_argument("--variants", default=None, help="comma-separated subset (default: all)")
    p.add_argument("--input-size", type=int, default=None, help="square input resolution")
    p.add_argument(
        "--accelerator",
        default=None,
        help="the accelerator type the profile is written under, any name (e.g. a100); "
        "default: gpu on CUDA, else cpu",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where the models run: cuda, cpu, or auto (cuda where torch sees it; default)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    p.add_argument(
        "--runs",
        "--repeats",
        dest="repeats",
        type=int,
        default=5,
        metavar="N",
        help="timed batches per batch size: median, p95 and p99 recorded (default 5; the "
        "tail needs more, e.g. --runs 100 for a p99 that is not just the slowest run)",
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="half-precision networks and inputs (CUDA only; an ONNX model keeps the "
        "precision it was exported in)",
    )
    p.add_argument(
        "--load-repeats",
        type=int,
        default=3,
        help="timed loads per variant from disk and from host memory (default 3; 0: skip "
        "the load and memory measurement and keep the worker's own load time)",
    )
    p.add_argument(
        "--weights-dir",
        default=None,
        help="folder for the temporary weight files of the disk loads (default: system temp)",
    )
    p.add_argument(
        "--worker-memory-mb",
        type=float,
        default=None,
        help="memory in MiB of one worker of this type (default: the CUDA device's memory; "
        "unknown on CPU)",
    )
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


def check_options(args: argparse.Namespace) -> list[int]:
    """Check the options that need no measurement; returns the batch sizes.

    Raises:
        ConfigError: naming the option, the value and the fix.

    """
    try:
        sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ConfigError("--batch-sizes", args.batch_sizes, "expected positive integers", "1,2,4")
    if args.slo_ms is not None and not (math.isfinite(args.slo_ms) and args.slo_ms > 0):
        raise ConfigError(
            "--slo-ms",
            f"{args.slo_ms:g}",
            "the SLO must be a positive number of milliseconds",
            "give e.g. --slo-ms 500, or leave it out to keep the base pipeline's SLO",
        )
    minimum = {
        "--input-size": 1,
        "--threads": 1,
        "--runs": 1,
        "--load-repeats": 0,
        "--num-cpus": 1,
    }
    for option, lo in minimum.items():
        value = getattr(args, {"--runs": "repeats"}.get(option, option[2:].replace("-", "_")))
        if value is not None and value < lo:
            raise ConfigError(option, str(value), f"must be at least {lo}", f"use {option} {lo}")
    mem = args.worker_memory_mb
    if mem is not None and not (math.isfinite(mem) and mem > 0):
        raise ConfigError(
            "--worker-memory-mb",
            f"{mem:g}",
            "must be a positive number of MiB",
            "give the memory of one worker, e.g. --worker-memory-mb 8192",
        )
    if args.accelerator is not None and not args.accelerator.strip():
        raise ConfigError("--accelerator", "''", "empty", "use cpu or gpu")
    if args.weights_dir is not None and not Path(args.weights_dir).is_dir():
        raise ConfigError(
            "--weights-dir", args.weights_dir, "not an existing folder", "create it or drop it"
        )
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError("--out", args.out, "is a folder", "give a file name, e.g. profile.yaml")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(
            "--out", args.out, f"cannot write under {parent}", "choose a writable folder"
        )
    return sizes


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl profile``."""
    from lokirl.core.pipeline_config import load_pipeline, pipeline_from_file
    from lokirl.runtime.models import model_sources
    from lokirl.runtime.profiler import MIB, profile_pipeline, write_profile
    from lokirl.runtime.runtime import pipeline_file

    sizes = check_options(args)
    pipeline = load_pipeline(args.pipeline)
    names = [v.name for v in pipeline.variants()]
    chosen = [x.strip() for x in args.variants.split(",")] if args.variants else names
    unknown = [x for x in chosen if x not in names]
    if unknown:
        raise ConfigError("--variants", ",".join(unknown), "not in the pipeline", ", ".join(names))
    for t in pipeline.tasks:
        if not any(v.name in chosen for v in t.variants):
            raise ConfigError("--variants", args.variants, f"task {t.name} has none", "add one")
    fp16 = bool(getattr(args, "fp16", False))
    sources = model_sources(
        pipeline_file(args.pipeline), chosen, args.input_size, True if fp16 else None
    )
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device", "cuda", "torch sees no CUDA device here", "use --device cpu or auto"
        )
    if device == "cpu" and any(s.fp16 and s.kind != "onnx" for s in sources.values()):
        raise ConfigError(
            "--fp16" if fp16 else str(pipeline_file(args.pipeline)),
            "on" if fp16 else "runtime.fp16",
            "half precision is for CUDA devices and this profile runs on the CPU",
            "drop --fp16 (or set `runtime: {fp16: false}`), or profile with --device cuda",
        )
    accel = args.accelerator or ("gpu" if device == "cuda" else "cpu")
    worker_mb = args.worker_memory_mb
    if worker_mb is None and device == "cuda":
        worker_mb = torch.cuda.get_device_properties(0).total_memory / MIB
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
            load_repeats=args.load_repeats,
            weights_dir=args.weights_dir,
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
        note=f"Input {size}x{size}, {args.threads} thread(s), median, p95 and p99 of "
        f"{args.repeats} runs per batch size, timed {how}"
        + (", fp16" if any(m.get("fp16") for m in measured.values()) else "")
        + ".",
        accelerator_memory_mb=worker_mb,
    )
    try:
        pipeline_from_file(path)
    except ConfigError as exc:
        print(f"lokirl profile: wrote {path}, but it does not validate: {exc}")
        return 2
    print(f"lokirl profile: wrote {path}")
    return 0
