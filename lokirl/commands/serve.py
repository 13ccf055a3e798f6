"""``lokirl serve``: serve a pipeline on Ray workers behind an HTTP ingress."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import replace
from typing import Any

from lokirl.commands.options import check_dilation
from lokirl.core.reconfig import SWAP_MODES
from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl serve --pipeline traffic_analysis_cpu --controller loki-1s --workers 3
  lokirl serve --pipeline traffic_analysis --emulate --workers 20   # GPU profile, emulated
  lokirl serve --pipeline traffic_analysis --emulate --workers 12 --controller ppo
                                                    # the shipped learned controller
  lokirl serve --pipeline traffic_analysis --workers 8 --address auto      # join a Ray cluster
  lokirl serve --pipeline traffic_gpu.yaml --workers 8 --gpus-per-worker 0.5 --fp16 \\
      --address auto                                # two fp16 workers per GPU
  curl -s -X POST -H 'Content-Type: image/jpeg' --data-binary @frame.jpg \\
       http://127.0.0.1:8000/v1/pipelines/traffic_analysis_cpu/infer
  curl -s http://127.0.0.1:8000/v1/status
  lokirl serve --pipeline traffic_analysis --emulate --ingress-replicas 2  # ports 8000, 8001
  lokirl loadgen --trace step_600s --url http://127.0.0.1:8000,http://127.0.0.1:8001

--workers defaults to one per GPU of the Ray cluster, else one per CPU of
the local Ray, and never fewer than the pipeline's tasks (a task without a
worker would drop every frame); with --emulate, to 20. --emulate starts
workers that host no model and take the profiled latency asleep (claiming no
CPU), so a GPU profile runs live on a laptop; --dilation K runs it K times
slower (latencies, load times, SLO and --epoch x K: send rates / K).
On GPUs each worker claims --gpus-per-worker of one (default: 1 when the cluster
has a GPU per worker, else 1/k with k = ceil(workers / GPUs), so that workers share
the GPUs instead of waiting for one); more workers than the GPUs hold at that
share are refused at start-up. --fp16 runs the networks in half precision (CUDA
workers only: refused on CPU workers).
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
    p.add_argument(
        "--controller",
        default="loki",
        help="controller spec (default: loki); ppo: the learned controller shipped with lokirl "
        "(traffic_analysis or social_media, 10-100 workers, any --swap), ppo:PATH[+PATH]: "
        "trained policies",
    )
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
    p.add_argument(
        "--max-pixels",
        type=int,
        default=4096 * 4096,
        help="largest image accepted, width x height, checked from its header before "
        "decoding (413 beyond; default 4096x4096)",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text (time, level, logger, message) or one JSON object a line",
    )
    p.add_argument("--log-level", default="INFO", help="log level (default: INFO)")
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
        "--gpus-per-worker",
        type=float,
        default=None,
        metavar="F",
        help="share of a GPU each worker claims, 0 < F <= 1 (default: 1 when the cluster has "
        "a GPU per worker, else 1/ceil(workers / GPUs))",
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        default=None,
        help="half-precision networks and inputs on CUDA workers (refused on CPU workers; "
        "default: the pipeline file's runtime.fp16)",
    )
    p.add_argument(
        "--dilation",
        type=float,
        default=1.0,
        help="with --emulate: run K times slower (latencies, load times, SLO and --epoch x K; "
        "send rates / K); default 1",
    )
    p.add_argument(
        "--ingress-replicas",
        type=int,
        default=1,
        metavar="N",
        help="HTTP ingresses (default 1): this process, which also runs the controller and "
        "answers /v1/status and /metrics for all, on --port, plus N-1 Ray actors on the "
        "next ports, each with its own queues and batching, the controller's routing table, "
        "and sending batches to the workers directly",
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
    check_dilation(args.dilation, args.emulate)
    share = getattr(args, "gpus_per_worker", None)
    if share is not None:
        if not (0 < share <= 1):
            raise ConfigError(
                "--gpus-per-worker",
                f"{share:g}",
                "a worker's share of a GPU must be in (0, 1]",
                "pass e.g. --gpus-per-worker 0.5 (two workers per GPU), or leave it out",
            )
        if args.emulate:
            raise ConfigError(
                "--gpus-per-worker",
                f"{share:g}",
                "emulated workers claim no GPU",
                "drop --gpus-per-worker, or drop --emulate",
            )
    if args.max_body_mb <= 0:
        raise ConfigError("--max-body-mb", str(args.max_body_mb), "must be positive", "pass 8")
    demand = args.initial_demand
    if demand is not None and not (demand >= 0 and demand < float("inf")):
        raise ConfigError(
            "--initial-demand", f"{demand:g}", "must be a number of frames/s >= 0", "pass e.g. 50"
        )
    if args.num_cpus is not None and args.num_cpus < 1:  # 0 meant "all of them"
        raise ConfigError(
            "--num-cpus", str(args.num_cpus), "must be at least 1", "pass e.g. 2, or leave it out"
        )
    max_pixels = getattr(args, "max_pixels", 4096 * 4096)
    if max_pixels < 64:
        raise ConfigError("--max-pixels", str(max_pixels), "must be at least 64", "pass 16777216")
    replicas = getattr(args, "ingress_replicas", 1)
    if replicas < 1:
        raise ConfigError("--ingress-replicas", str(replicas), "must be at least 1", "pass 1 or 2")
    if args.port + replicas - 1 > 65535:
        raise ConfigError(
            "--ingress-replicas",
            str(replicas),
            f"the replicas listen on ports {args.port}..{args.port + replicas - 1}, past 65535",
            "pass fewer replicas or a lower --port",
        )
    configure_logging(getattr(args, "log_format", "text"), getattr(args, "log_level", "INFO"))

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
        initial_demand=None if args.initial_demand is None else args.initial_demand / args.dilation,
        input_size=args.input_size,
        early_drop=not args.no_early_drop,
        swap=args.swap,
        emulate=args.emulate,
        dilation=args.dilation,
        gpus_per_worker=share,
        fp16=getattr(args, "fp16", None),
        ingress_replicas=replicas,
        replica_host=args.host,
        replica_port=args.port + 1,
        replica_http={
            "max_body_bytes": int(args.max_body_mb * 1024 * 1024),
            "max_pixels": max_pixels,
            "control_url": f"http://{args.host}:{args.port}",
        },
    )
    # Before anything slow (a policy, Ray, workers, models): a port in use fails at once.
    for extra in range(1, replicas):  # the replicas' ports (bound again by their actors)
        bind_port(args.host, args.port + extra).close()
    sock = bind_port(args.host, args.port)
    try:
        if args.address:
            probe_ray_address(args.address)
        if args.address and args.workers is None and not args.emulate:
            # The worker count is the cluster's: join it first, so that the controller
            # (a trained policy fits some cluster sizes only) is checked against it.
            ray = connect(args.address, args.num_cpus)
            try:
                config = replace(config, workers=default_workers(tasks, args, ray))
                runtime = Runtime(config, pipeline=pipeline)
            except BaseException:
                ray.shutdown()
                raise
        else:
            # Validates the pipeline and controller before Ray starts.
            runtime = Runtime(config, pipeline=pipeline)
            ray = connect(args.address, args.num_cpus)
    except BaseException:
        sock.close()
        raise
    try:
        app = create_app(runtime, int(args.max_body_mb * 1024 * 1024), max_pixels=max_pixels)
        banner = (
            f"lokirl serve: {runtime.pipeline.name} on http://{args.host}:{args.port} "
            f"({runtime.config.workers} {'emulated ' if args.emulate else ''}workers, "
            f"controller {args.controller}, swaps: {args.swap}"
            + (f", time dilated x{args.dilation:g}" if args.dilation != 1.0 else "")
            + (
                f"; {replicas - 1} more ingress replicas on ports "
                f"{args.port + 1}..{args.port + replicas - 1}"
                if replicas > 1
                else ""
            )
            + ")"
        )
        asyncio.run(_serve(app, runtime, sock, banner))
    finally:
        ray.shutdown()
    return 0


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "time": f"{t}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Log to stderr with time (UTC) and level, as text or JSON lines.

    Raises:
        ConfigError: an unknown level.

    """
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ConfigError("--log-level", level, "unknown level", "pass DEBUG, INFO or WARNING")
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        f = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        f.default_time_format = "%Y-%m-%dT%H:%M:%S"
        f.default_msec_format = "%s.%03dZ"
        f.converter = time.gmtime
        handler.setFormatter(f)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bind_port(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` now (before Ray starts); the server then uses it.

    Raises:
        ConfigError: the port is in use or the address cannot be bound.

    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            "--port",
            str(port),
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "stop what uses it (e.g. `ss -ltnp | grep :PORT`) or pass another --port",
        ) from None
    sock.setblocking(False)
    return sock


#: An HTTP/2 client preface and an empty SETTINGS frame (what a gRPC client sends first).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def probe_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when ``--address HOST:PORT`` has no Ray (GCS) listening there.

    ``auto`` is left to Ray (it finds the local cluster or fails at once).

    Raises:
        ConfigError: nothing answers at the address within ``timeout_s``.

    """
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            "--address", address, "not HOST:PORT", "pass e.g. --address 10.0.0.1:6379 or auto"
        )
    fix = (
        "start one (`ray start --head`), check the address with `ray status`, or omit "
        "--address to start a local Ray"
    )
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    except OSError as exc:
        raise ConfigError(
            "--address",
            address,
            f"no Ray cluster answers there ({exc.strerror or type(exc).__name__} "
            f"within {timeout_s:g} s)",
            fix,
        ) from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "0") in ("1", "true", "True"):
            return  # a TLS handshake is Ray's to do
        # Ray's GCS speaks gRPC: it answers an HTTP/2 preface with a SETTINGS frame at
        # once. Something else listening there would leave ray.init() hanging.
        try:
            conn.settimeout(3.0)
            conn.sendall(_H2_PREFACE)
            head = conn.recv(9)
        except OSError:
            head = b""
        if len(head) < 4 or head[3] != 0x04:
            raise ConfigError(
                "--address",
                address,
                "something listens there but it is not a Ray cluster's GCS (no gRPC answer "
                "within 3 s)",
                fix,
            )


async def _serve(app: Any, runtime: Any, sock: socket.socket, banner: str) -> None:
    """Start the runtime, then serve HTTP on the bound socket until interrupted."""
    import uvicorn

    log = logging.getLogger("lokirl.serve")
    try:
        await runtime.start()
    except BaseException:
        sock.close()
        raise
    try:
        config = uvicorn.Config(app, log_level="warning", log_config=None, lifespan="on")
        server = uvicorn.Server(config)
        print(banner, flush=True)
        log.info("serving: %s", banner)
        await server.serve(sockets=[sock])
    finally:
        await runtime.stop()
