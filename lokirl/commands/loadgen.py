"""``lokirl loadgen``: open-loop replay of a trace against a ``lokirl serve`` ingress."""

from __future__ import annotations

import argparse
import math
import sys
from urllib.parse import urlparse

from lokirl.commands.options import add_trace_format_options, seed
from lokirl.commands.stdout import finite, strict_json
from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl loadgen --trace step_600s --url http://127.0.0.1:8000 --max-requests 500
  lokirl loadgen --trace my_rates.csv --url http://127.0.0.1:8000 --duration 60 --json
  lokirl loadgen --trace arrivals.txt --url http://127.0.0.1:8000 --speedup 2 --scale 5:20
  lokirl loadgen --trace my_trace.csv --rescale auto   # onto the server's cluster

The trace is any format lokirl reads (arrival file, rate series, timestamp CSV,
or a bundled name). Outcomes: on_time, late, dropped (by reason) per frame, as the
simulator counts them; accuracy is the profile's, as the server reports it.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``loadgen`` subcommand."""
    p = subparsers.add_parser(
        "loadgen",
        help="replay a trace open-loop against a serving ingress and report SLO metrics",
        description="Replay a trace open-loop (bounded in count and time) against lokirl serve.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--trace", required=True, help="trace file or bundled trace name")
    add_trace_format_options(p)
    p.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="ingress base URL; several, comma-separated, are sent to in turn (the ingress "
        "replicas of `lokirl serve --ingress-replicas N`: put the controller's first, its "
        "/v1/status counts them all)",
    )
    p.add_argument("--pipeline", default=None, help="pipeline name (default: the server's)")
    p.add_argument("--max-requests", type=int, default=2000, help="send at most N (default 2000)")
    p.add_argument("--duration", type=float, default=60.0, help="replay at most S seconds")
    p.add_argument("--speedup", type=float, default=1.0, help="compress trace time by this factor")
    p.add_argument(
        "--rescale",
        "--scale",
        dest="scale",
        metavar="LO:HI|auto",
        default=None,
        help="rescale the rates to LO..HI frames/s (shape-preserving, as in simulate); auto: "
        "the range the server reports for its cluster (/v1/status auto_load: the suites' "
        "0.3..2.0 x its capacity at full accuracy, or 0.05..0.4 x its largest capacity)",
    )
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--max-in-flight", type=int, default=256, help="cap on awaiting requests")
    p.add_argument("--seed", type=seed, default=0, help="seed for Poisson arrivals")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.set_defaults(handler=run)


#: Frames a trace may ask for: their arrival times are drawn up front (8 bytes each).
MAX_DRAWN = 2e7


def load_arrivals(
    spec: str,
    speedup: float,
    scale: str | None,
    seed: int,
    fmt: str = "auto",
    column: str | None = None,
    command: str = "loadgen",
):
    """Arrival times (s) of a trace spec after speed-up and rescaling.

    ``fmt`` and ``column`` say how to read a trace file (``--format``, ``--column``);
    how a file was read is said on stderr, prefixed by ``command``.
    """
    import numpy as np

    from lokirl.traces import RateSeries, as_arrivals, as_rates, rescale, resolve_trace_noted
    from lokirl.traces import speedup as sp

    trace, note = resolve_trace_noted(spec, fmt=fmt, column=column)
    if note:  # how a file was read: a unit guessed wrong shows in its span and count
        print(f"{command}: {note}", file=sys.stderr)
    if speedup != 1.0:
        trace = sp(trace, speedup)
    if scale:
        try:
            lo, hi = (float(x) for x in scale.split(":"))
        except ValueError:
            raise ConfigError(
                "--scale", scale, "expected LO:HI", "write e.g. --scale 5:20"
            ) from None
        trace = rescale(as_rates(trace), lo, hi)
    if isinstance(trace, RateSeries):
        frames = float(trace.rates.sum() * trace.bin_s)
        if frames > MAX_DRAWN:
            raise ConfigError(
                "--trace",
                spec,
                f"the trace asks for about {frames:.3g} frames (a peak of "
                f"{float(trace.rates.max()):.3g}/s); their arrival times are drawn before the "
                f"first is sent, which needs more memory than a replay of at most "
                f"{MAX_DRAWN:.0e} frames",
                "map it onto what the server can take with --scale LO:HI (e.g. --scale 5:20)",
            )
    return as_arrivals(trace, np.random.default_rng(seed)).arrivals_s, trace.name


def arrivals_from_args(args: argparse.Namespace, command: str = "loadgen"):
    """:func:`load_arrivals` of the trace options loadgen and simvslive share."""
    return load_arrivals(
        args.trace, args.speedup, args.scale, args.seed, args.trace_format, args.column, command
    )


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl loadgen``."""
    import asyncio

    import httpx
    import numpy as np

    from lokirl.runtime.loadgen import bounded_arrivals, http_sender, replay, round_robin
    from lokirl.tracking import mlflow_helper

    urls = [x.strip().rstrip("/") for x in args.url.split(",") if x.strip()]
    for url in urls or [args.url]:
        u = urlparse(url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ConfigError("--url", url, "not an http URL", "pass http://127.0.0.1:8000")
    if args.max_requests < 1:
        raise ConfigError(
            "--max-requests", str(args.max_requests), "must be at least 1", "pass e.g. 2000"
        )
    if not (args.duration > 0 and math.isfinite(args.duration)):
        raise ConfigError(
            "--duration", str(args.duration), "must be a number of seconds > 0", "pass e.g. 60"
        )
    if args.speedup <= 0:
        raise ConfigError("--speedup", str(args.speedup), "must be positive", "pass 1")
    if not 1 <= args.size <= 8192:
        raise ConfigError("--size", str(args.size), "must be 1..8192 pixels", "pass e.g. --size 64")
    if args.max_in_flight < 1:
        raise ConfigError(
            "--max-in-flight",
            str(args.max_in_flight),
            "must be at least 1",
            "pass e.g. --max-in-flight 256",
        )
    base = urls[0]
    # The server's status is read once before the replay (its pipeline and, for
    # --rescale auto, its load range: then before the trace is drawn) and once after.
    status = server_status(base) if args.scale == "auto" else None
    if args.scale == "auto":
        args.scale = server_load_range(status, base, quiet=args.json)
    arrivals, trace_name = arrivals_from_args(args)
    arrivals = bounded_arrivals(arrivals, args.max_requests, args.duration)
    status = status or server_status(base)
    frame = np.random.default_rng(args.seed).integers(0, 255, (3, args.size, args.size))
    frame = frame.astype(np.uint8)

    async def main():
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=args.max_in_flight)) as c:
            name = args.pipeline or status["pipeline"]
            send = round_robin(
                [http_sender(c, f"{u}/v1/pipelines/{name}/infer", frame) for u in urls]
            )
            result = await replay(arrivals, send, args.max_in_flight)
            server = (await c.get(f"{base}/v1/status", timeout=10)).json()
            return name, result, server

    name, result, server = asyncio.run(main())
    summary = result.to_dict()
    summary.update(
        trace=trace_name,
        pipeline=name,
        server_subrequests=server.get("subrequests"),
        server_system_accuracy=server.get("accuracy"),
    )
    if not args.no_mlflow:
        with mlflow_helper.mlflow_run(
            "loadgen", f"{name}__{trace_name}", params=vars(args) | {"handler": None}
        ) as logger:
            logger.log_metrics(
                {
                    k: v
                    for k, v in summary.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
    summary = finite(summary)
    if args.json:
        print(strict_json(summary))
    else:
        print(
            f"{name} <- {trace_name}: sent {summary['sent']}, on time {summary['on_time']}, "
            f"late {summary['late']}, dropped {summary['dropped']} "
            f"{summary['dropped_by_reason']}; SLO violation ratio "
            f"{_fmt(summary['slo_violation_ratio'], '.3f')}; accuracy (profile) "
            f"{_fmt(summary['accuracy'], '.1f')}; p50/p99 {_fmt(summary['latency_ms_p50'], '.1f')}/"
            f"{_fmt(summary['latency_ms_p99'], '.1f')} ms"
            + (f"; rejected {summary['rejected_by_reason']}" if summary.get("rejected") else "")
        )
    if summary.get("rejected") and summary["rejected"] == summary["sent"]:
        raise ConfigError(
            "request",
            next(iter(summary["rejected_by_reason"])),
            "the server rejected every request",
            "check --size and --pipeline against the server",
        )
    return 0


def server_status(url: str) -> dict:
    """The ``/v1/status`` of the lokirl server at ``url``.

    Raises:
        ConfigError: no server answers, or what answers is not lokirl serve (no JSON
            status naming a pipeline).

    """
    import httpx

    try:
        status = httpx.get(f"{url}/v1/status", timeout=30).json()
    except httpx.HTTPError as exc:
        raise ConfigError(
            "--url", url, f"no lokirl server answers ({exc})", "start lokirl serve"
        ) from None
    except ValueError:
        status = None
    if not isinstance(status, dict) or "pipeline" not in status:
        raise ConfigError(
            "--url",
            url,
            "the server there is not lokirl serve (no JSON /v1/status with a pipeline)",
            "point --url at a lokirl serve ingress",
        )
    return status


def server_load_range(status: dict, url: str, quiet: bool = False) -> str:
    """``--rescale auto``: the ``LO:HI`` a lokirl server reports for its cluster.

    Args:
        status: Its ``/v1/status`` (:func:`server_status`).
        url: Where it answers (for the error).
        quiet: Do not print the range.

    Raises:
        ConfigError: it does not report a load range.

    """
    auto = status.get("auto_load")
    if not isinstance(auto, dict) or not {"lo", "hi", "unit"} <= set(auto):
        raise ConfigError(
            "--rescale",
            "auto",
            f"the server at {url} does not report its load range (auto_load in /v1/status)",
            "pass the range in frames/s, e.g. --rescale 5:20",
        )
    lo, hi = float(auto["lo"]), float(auto["hi"])
    if not quiet:
        print(
            f"rescale auto: {lo:.6g}..{hi:.6g} frames/s (the server's range in its "
            f"{auto['unit']} capacity)",
            flush=True,
        )
    return f"{lo:.6g}:{hi:.6g}"


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
