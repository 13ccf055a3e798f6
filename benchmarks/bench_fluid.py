"""Fidelity and speed of the fluid surrogate against the simpy engine.

Run: ``python benchmarks/bench_fluid.py [--families diurnal,bursts,step] [--seconds 90]``.
Plays each generated family at three load ranges (x the cluster's capacity at full
accuracy) with a few controllers on both engines (traffic_analysis, 20 workers,
same seed, plans shared through a cache so that only the simulation differs) and
prints frame and sub-request SLO violation ratios, system accuracy and
reconfigurations side by side, then the mean absolute and relative error.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from lokirl.core.controllers import CONTROLLERS, load_plugins
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.envs.serving import cluster_capacities
from lokirl.sim import SimConfig, Simulation
from lokirl.sim.fluid import FluidSimulation
from lokirl.traces import generate, rescale

LOADS = ((0.3, 0.8), (0.5, 1.5), (0.8, 2.2))


def play(cls, pipeline, cluster, trace, name, seed, cache):
    """One run of controller ``name``; returns (result, seconds spent simulating)."""
    ctrl = CONTROLLERS.create(name)
    planner = ctrl if callable(getattr(ctrl, "plan", None)) else None
    kw = {"plan_cache": cache} if cls is Simulation else {}
    sim = cls(pipeline, cluster, trace, SimConfig(), np.random.default_rng(seed), name=name, **kw)
    ctx = sim.reset()
    t0 = time.perf_counter()
    sim.apply(ctrl.decide(ctx), planner=planner)
    while not sim.done:
        ctx = sim.step_epoch()
        if not sim.done:
            sim.apply(ctrl.decide(ctx), planner=planner)
    res = sim.finish()
    return res, time.perf_counter() - t0 - res.solver_wall_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--families", default="diurnal,bursts,step")
    ap.add_argument("--controllers", default="loki-5s-churn,trigger")
    ap.add_argument("--seconds", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    load_plugins()
    pipeline = load_pipeline("traffic_analysis")
    cluster = Cluster.homogeneous(pipeline, 20)
    hw, _ = cluster_capacities(pipeline, cluster)
    cache: dict = {}
    head = f"{'family':<10} {'load':<8} {'controller':<15}"
    cols = f"{'frame':>6} {'sub':>6} {'acc':>5} {'rc':>3}"
    print(f"{head} simpy: {cols} | fluid: {cols}")
    errs = {"frame": [], "sub": [], "acc": []}
    sim_s = {"simpy": 0.0, "fluid": 0.0}
    for fam in args.families.split(","):
        for lo, hi in LOADS:
            trace = rescale(
                generate(fam, args.seconds, np.random.default_rng(args.seed + 1)), lo * hw, hi * hw
            )
            for name in args.controllers.split(","):
                out = {}
                for label, cls in (("simpy", Simulation), ("fluid", FluidSimulation)):
                    res, secs = play(cls, pipeline, cluster, trace, name, args.seed, cache)
                    sim_s[label] += secs
                    out[label] = res
                s, f = out["simpy"], out["fluid"]
                errs["frame"].append((f.frame_violation_ratio, s.frame_violation_ratio))
                errs["sub"].append((f.sub_violation_ratio, s.sub_violation_ratio))
                errs["acc"].append((f.accuracy, s.accuracy))

                def row(r):
                    return (
                        f"{r.frame_violation_ratio:>6.3f} {r.sub_violation_ratio:>6.3f} "
                        f"{r.accuracy:>5.1f} {r.reconfigurations:>3d}"
                    )

                print(f"{fam:<10} {lo:.1f}-{hi:.1f}  {name:<15} simpy: {row(s)} | fluid: {row(f)}")
    print()
    for key, pairs in errs.items():
        a = np.array(pairs)
        mae = float(np.abs(a[:, 0] - a[:, 1]).mean())
        rel = float(np.median(np.abs(a[:, 0] - a[:, 1]) / np.maximum(np.abs(a[:, 1]), 1e-3)))
        corr = float(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) if len(a) > 2 else float("nan")
        print(
            f"{key:<6} mean abs error {mae:.4f}  median relative error {rel:.1%}  corr {corr:.3f}"
        )
    print(
        f"simulation time (solver excluded): simpy {sim_s['simpy']:.1f} s, "
        f"fluid {sim_s['fluid']:.1f} s ({sim_s['simpy'] / max(sim_s['fluid'], 1e-9):.1f}x faster)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
