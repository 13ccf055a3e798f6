"""Simulator speed: simulated requests per wall second, traffic_analysis, 20 workers, ~400 QPS.

Usage: python benchmarks/bench_sim.py [--seconds 30] [--qps 400] [--profile]

Two runs on a steady Poisson trace: ``loki-1000s`` (one solve at the start, then
pure simulation: the simulator's own speed) and ``loki`` (re-solves every second:
the speed including the MILP, which the sim spends outside its event loop).
"""

import argparse
import cProfile
import pstats
import time

import numpy as np

import lokirl.sim  # noqa: F401
from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.sim import SimConfig, simulate
from lokirl.traces import RateSeries


def bench(controller: str, seconds: int, qps: float) -> dict:
    make_controller(controller)  # imports plugin packages before timing
    p = load_pipeline("traffic_analysis")
    trace = RateSeries(np.full(seconds, qps), name="steady")
    t0 = time.perf_counter()
    r = simulate(
        p,
        Cluster({"gpu": 20}),
        trace,
        make_controller(controller),
        SimConfig(),
        np.random.default_rng(0),
    )
    wall = time.perf_counter() - t0
    sim_wall = max(wall - r.solver_wall_s, 1e-9)
    return {
        "controller": controller,
        "frames": r.frames.arrived,
        "subrequests": r.subrequests.arrived,
        "wall_s": wall,
        "solver_wall_s": r.solver_wall_s,
        "frames_per_s": r.frames.arrived / wall,
        "subrequests_per_s": r.subrequests.arrived / wall,
        "subrequests_per_s_excl_solver": r.subrequests.arrived / sim_wall,
        "frame_violation_ratio": r.frame_violation_ratio,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--qps", type=float, default=400.0)
    ap.add_argument("--profile", action="store_true", help="print the top functions (cProfile)")
    args = ap.parse_args()
    for ctl in ("loki-1000s", "loki"):
        if args.profile and ctl == "loki-1000s":
            prof = cProfile.Profile()
            prof.enable()
            row = bench(ctl, args.seconds, args.qps)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        else:
            row = bench(ctl, args.seconds, args.qps)
        print(
            f"{row['controller']:>11}: {row['frames']} frames, {row['subrequests']} sub-requests "
            f"in {row['wall_s']:.2f} s wall ({row['solver_wall_s']:.2f} s in the solver): "
            f"{row['frames_per_s']:,.0f} frames/s, {row['subrequests_per_s']:,.0f} sub-requests/s "
            f"({row['subrequests_per_s_excl_solver']:,.0f} excluding solver time); "
            f"frame violations {row['frame_violation_ratio']:.1%}"
        )


if __name__ == "__main__":
    main()
