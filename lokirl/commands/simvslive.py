"""``lokirl simvslive``: one trace and controller in the simulator and live, side by side.

The runs, their comparison and the report are :mod:`lokirl.experiments.simvslive`'s;
this command parses and checks the options, builds each seed's arrivals and prints.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from lokirl.commands.options import (
    add_trace_format_options,
    check_workers,
    resolve_rescale,
    seed,
)
from lokirl.commands.simvslive_options import check_options
from lokirl.commands.stdout import reserve_stdout_for_json, strict_json
from lokirl.errors import ConfigError

EPILOG = """\
examples:
  lokirl simvslive                                   # diurnal day in 60 s at 2..8 fps, 3 workers, loki
  lokirl simvslive --trace step_600s --speedup 10 --scale 2:12 --duration 60 --json
  lokirl simvslive --pipeline my_cpu.yaml --controller inferline --workers 2
  lokirl simvslive --seeds 0,1,2                     # three draws; per-seed and mean rows
  lokirl simvslive --pipeline traffic_analysis --emulate --dilation 2 --workers 20 \\
      --controller loki --speedup 5 --scale 25:125 --duration 120   # 20 emulated GPU workers

Both runs play the same arrival times (one Poisson draw of the trace) with the
same controller spec and the same number of workers. The simulator uses the
pipeline's profile (measure it on this machine first: lokirl profile); live
serving runs Runtime on a local Ray (or --address) and replays the arrivals
open-loop in-process. Metrics as lokirl simulate defines them; accuracy is the
profile's in both. rel = (live - sim) / sim; with --seeds, rel of the means
over the seeds (and each seed's rel); the last line says how far counting alone moves
the violation ratios' difference (few violated frames: a wide band). Solves: both hosts tick at whole epochs
and skip a solve requested while one is pending; with --solver-time measured
(default) the simulator charges each solve its own wall time.

--emulate: the live workers host no model and take the profile's batch latency
asleep (lokirl.runtime.emulated), so a GPU profile on 20-100 workers runs live
on a few cores through the real ingress path; the simulator then gives each
worker its own accelerator. --dilation K plays both sides K times slower
(latencies, load times, SLO and the controller period x K, arrival rates / K)
for when the ingress cannot keep up at real time; K = 1 by default.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simvslive`` subcommand."""
    p = subparsers.add_parser(
        "simvslive",
        help="run one trace and controller in the simulator and live on Ray; compare",
        description=(
            "Replay the same short trace with the same controller in the simulator and on "
            "the live runtime, and print SLO violations, accuracy, workers, solves and "
            "reconfigurations side by side."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pipeline", default="traffic_analysis_cpu", help="pipeline name or YAML")
    p.add_argument("--trace", default="diurnal_600s", help="trace file or bundled name")
    add_trace_format_options(p)
    p.add_argument("--speedup", type=float, default=10.0, help="compress trace time (default 10)")
    p.add_argument(
        "--rescale",
        "--scale",
        dest="scale",
        metavar="LO:HI|auto",
        default="2:8",
        help="rescale rates (default 2:8; auto: the suites' range on --workers workers)",
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds of trace (default 60)")
    p.add_argument("--controller", default="loki", help="controller spec (default: loki)")
    p.add_argument("--workers", type=int, default=3, help="workers (default: 3)")
    p.add_argument("--epoch", type=float, default=1.0, help="controller period in s (default: 1)")
    p.add_argument(
        "--seed", type=seed, default=None, help="seed of the arrivals and both runs (default: 0)"
    )
    p.add_argument(
        "--seeds", default=None, help="comma-separated seeds: one sim+live pair each (e.g. 0,1,2)"
    )
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (default: input)")
    p.add_argument(
        "--solver-time",
        default="measured",
        help="simulated solve delay: 'measured' (as live), 'model', or seconds",
    )
    p.add_argument(
        "--sim-cores",
        default="auto",
        help=(
            "CPU cores the simulated workers share (batches slow down when more run at once "
            "than there are cores): 'auto' = the local Ray's CPUs when it has no GPU, "
            "'none' = one accelerator per worker, or a number"
        ),
    )
    p.add_argument(
        "--sim-host-cores",
        type=float,
        default=0.0,
        help=(
            "with shared cores: cores the host's own work (ingress, data plane, Ray) keeps "
            "busy, as a live run reports it (host CPU cores); default 0"
        ),
    )
    p.add_argument(
        "--emulate",
        action="store_true",
        help="emulated accelerators live: workers sleep the profiled latency (no model)",
    )
    p.add_argument(
        "--dilation",
        type=float,
        default=1.0,
        help="time dilation K: latencies, load times, SLO and epoch x K, rates / K (default 1)",
    )
    p.add_argument(
        "--sim-overhead-ms",
        type=float,
        default=0.0,
        help=(
            "simulator: extra ms each batch occupies its worker beyond its profile (the "
            "live path's dispatch and actor hop, as the live run reports it: hop_ms); "
            "plans and early drops still read the profile, as live; default 0"
        ),
    )
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")
    p.add_argument("--max-in-flight", type=int, default=512, help="cap on awaiting requests")
    p.add_argument(
        "--no-hop-replay",
        dest="hop_replay",
        action="store_false",
        help=(
            "skip the four extra simulations of each live run (by default the simulator "
            "replays it with the run's mean hold (time over the profile, the hop, routing "
            "a batch's results on), with its holds drawn by the moment they were measured, "
            "and with those or the mean and each frame at the moment it was received: how "
            "much of the gap the holds and the arrival lag explain)"
        ),
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=run)


def arrivals_for(args: argparse.Namespace) -> Any:
    """The arrival trace both runs play (bounded to ``--duration``)."""
    from lokirl.commands.loadgen import arrivals_from_args
    from lokirl.runtime.loadgen import bounded_arrivals
    from lokirl.traces.types import ArrivalTrace

    arr, name = arrivals_from_args(args, "simvslive")
    arr = bounded_arrivals(arr, None, args.duration)
    if len(arr) == 0:
        raise ConfigError("--trace", args.trace, "no arrivals in --duration", "lengthen it")
    k = float(getattr(args, "dilation", 1.0))
    if k != 1.0:  # the same arrivals, k times slower
        arr = arr * k
        name = f"{name} dilated x{k:g}"
    return ArrivalTrace(arr, name=name, duration_s=float(args.duration) * k)


def options_of(args: argparse.Namespace) -> Any:
    """The runs' setup (:class:`lokirl.experiments.simvslive.SimVsLiveOptions`) from the options."""
    from lokirl.experiments.simvslive import SimVsLiveOptions

    return SimVsLiveOptions(**{f.name: getattr(args, f.name) for f in fields(SimVsLiveOptions)})


def _violations(rows: list[dict[str, Any]], replay: str) -> list[dict[str, Any]]:
    """The rows a replay moves: violation ratios and effective accuracy (and the solves)."""
    keep = ("frame_slo_violation_ratio", "sub_slo_violation_ratio", "effective_accuracy")
    keep += ("solves", "reconfigurations") if replay == "received" else ()
    return [r for r in rows if r["metric"] in keep]


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'metric':34s} {'sim':>10s} {'live':>10s} {'rel':>8s}")
    for r in rows:
        rel = "n/a" if r["rel"] is None else f"{100 * r['rel']:+.1f}%"
        extra = ""
        if "rel_per_seed" in r:
            extra = "  per seed: " + ", ".join(
                "n/a" if x is None else f"{100 * x:+.1f}%" for x in r["rel_per_seed"]
            )
        print(f"{r['label']:34s} {r['sim']:10.4g} {r['live']:10.4g} {rel:>8s}{extra}")


def run(args: argparse.Namespace) -> int:
    """Handle ``lokirl simvslive``."""
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.experiments import simvslive as svl

    seeds = check_options(args)  # every option before Ray starts
    pipeline = load_pipeline(args.pipeline)
    check_workers(pipeline, args.workers)
    args.scale = resolve_rescale(args.scale, pipeline, args.workers)  # auto: two solves
    # Every seed's arrivals first: a bad trace fails before Ray starts.
    traces = [(s, arrivals_for(argparse.Namespace(**{**vars(args), "seed": s}))) for s in seeds]
    json_out = reserve_stdout_for_json() if args.json else None  # Ray prints to stdout
    out = svl.run_seeds(options_of(args), pipeline, traces)
    runs = out.get("runs") or [out]  # one seed: the report holds its pair
    if json_out is not None:
        print(strict_json(out), file=json_out)
        return 0
    for r in runs:
        sim, live = r["sim"], r["live"]
        print(
            f"{pipeline.name} <- {r['trace']} ({r['frames']} frames in "
            f"{args.duration:g} s), controller {args.controller}, {args.workers} workers, "
            f"seed {r['seed']}"
        )
        _print_rows(r["comparison"])
        print(
            f"dropped by reason: sim {sim['dropped_by_reason']}, live {live['dropped_by_reason']}"
        )
        print(
            f"solver wall time: sim {sim['solver_wall_s']:.1f} s, live {live['solver_wall_s']:.1f} s "
            f"({live['solves_in_process']} of {live.get('solves_completed', live['solves'])} solves in a separate process)"
        )
        print(
            f"host CPU (this process + Ray daemons) while serving: "
            f"{live['host_cpu_cores']:.2f} cores (simulated: {sim['host_cores']:g}); this "
            f"process {live['ingress_cpu_cores']:.2f} cores = "
            f"{live['ingress_cpu_ms_per_frame']:.2f} ms a frame, "
            f"{live['ingress_cpu_ms_per_subrequest']:.3f} ms a sub-request"
        )
        print(
            f"live batches' hop (round trip - worker time): mean {live['hop_ms_mean']:.2f} ms, "
            f"p50 {live['hop_ms_p50']:.2f} ms, "
            f"p99 {live['hop_ms_p99']:.2f} ms; held beyond the profile {live['hold_ms_mean']:.2f}"
            f" ms (simulated extra per batch: {args.sim_overhead_ms:g} ms)"
        )
        if r.get("solves_compared") is not None:
            print(svl.describe_solves(r["solves_compared"]))
        if live["actor_cpu_cores"] is not None:
            print(
                f"emulated worker actors' CPU: {live['actor_cpu_cores']:.3f} cores in all, "
                f"busiest {live['actor_cpu_cores_max']:.4f}"
            )
        for key, label in svl.REPLAYS:
            if key in r.get("replays", {}):
                rp = r["replays"][key]
                print(f"{label} ({rp['overhead_ms_mean']:.2f} ms on average):")
                _print_rows(_violations(rp["comparison"], key))
                if "solves_compared" in rp:
                    print(svl.describe_received(rp))
        for v, x in live["service_vs_profile"].items():
            print(
                f"live {v}: {x['batches']} batches, worker time "
                f"{x['worker_over_profile_p50']:.2f}x and round trip "
                f"{x['roundtrip_over_profile_p50']:.2f}x the profile (median)"
            )
        print()
    if len(runs) > 1:
        print(f"mean over seeds {','.join(map(str, seeds))}:")
        _print_rows(out["summary"])
        for key, label in svl.REPLAYS:
            if key in out.get("replay_summary", {}):
                print(f"{label}, mean over seeds:")
                _print_rows(_violations(out["replay_summary"][key], key))
    c = out["counting"]
    band = "n/a" if c["rel_band_95"] is None else f"+-{100 * c['rel_band_95']:.0f}%"
    print(
        f"violated frames counted: sim {c['sim_violated_frames']:g}, live "
        f"{c['live_violated_frames']:g}; counting alone moves the frame violation ratio's "
        f"relative difference by about {band} (95%): a smaller difference is not measured"
    )
    return 0
