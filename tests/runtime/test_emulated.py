"""Emulated accelerators: profiled latency without CPU, dilation, and a live serve at scale."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace

import numpy as np
import pytest

from lokirl.core.pipeline_config import load_pipeline
from lokirl.errors import ConfigError
from lokirl.runtime.emulated import (
    EmulatedWorker,
    check_dilation,
    dilate_pipeline,
    emulated_profiles,
)

PROFILE = {"det": {"latency_ms": {1: 40.0, 4: 80.0, 8: 120.0}, "load_time_s": 0.1}}


def test_dilate_pipeline_scales_times_and_slo():
    p = load_pipeline("traffic_analysis")
    d = dilate_pipeline(p, 3.0)
    assert d.slo_ms == pytest.approx(3 * p.slo_ms)
    v, dv = p.variant("yolov5m"), d.variant("yolov5m")
    assert dv.latency("gpu", 8) == pytest.approx(3 * v.latency("gpu", 8))
    assert dv.load_time_s == pytest.approx(3 * v.load_time_s)
    assert dict(dv.branching) == dict(v.branching) and dv.accuracy == v.accuracy
    assert dilate_pipeline(p, 1.0) is p
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dilation"):
            check_dilation(bad)


def test_emulated_profiles_need_the_accelerator():
    p = load_pipeline("traffic_analysis")
    prof = emulated_profiles(p, "gpu")
    assert prof["yolov5m"]["latency_ms"][8] == pytest.approx(p.variant("yolov5m").latency("gpu", 8))
    with pytest.raises(ValueError, match="no 'tpu' profile"):
        emulated_profiles(p, "tpu")


def test_worker_takes_the_profiled_latency_asleep():
    w = EmulatedWorker(0, PROFILE, jitter=0.0)
    t0 = time.perf_counter()
    res = w.load("det", None, {"cls": 2.0})
    assert time.perf_counter() - t0 == pytest.approx(0.1, abs=0.03)
    assert res["kept_old"] is False and w.variant == "det"
    cpu0, t0 = time.thread_time(), time.perf_counter()
    out = w.infer([None] * 3, "det")  # batch of 3 takes the profile at 4
    wall = time.perf_counter() - t0
    assert wall == pytest.approx(0.080, abs=0.02)
    assert out["service_ms"] == pytest.approx(80.0, abs=20.0)
    assert time.thread_time() - cpu0 < 0.01  # asleep, not spinning
    assert out["variant"] == "det" and len(out["counts"]["cls"]) == 3
    with pytest.raises(RuntimeError, match="no variant other"):
        w.infer([None], "other")
    with pytest.raises(RuntimeError, match="no profile"):
        w.load("other")


def test_jitter_is_seeded_and_median_preserving():
    a = EmulatedWorker(1, {"v": {"latency_ms": {1: 2.0}, "load_time_s": 0}}, jitter=0.1, seed=3)
    b = EmulatedWorker(1, {"v": {"latency_ms": {1: 2.0}, "load_time_s": 0}}, jitter=0.1, seed=3)
    a.load("v")
    b.load("v")
    za = [a.lat_rng.standard_normal() for _ in range(5)]
    zb = [b.lat_rng.standard_normal() for _ in range(5)]
    assert za == zb
    tail = EmulatedWorker(0, {"v": {"latency_ms": {1: 10.0}, "tail_ms": {1: 20.0}}})
    assert tail.profiles["v"].sigma[0] == pytest.approx(np.log(2) / 2.3263, rel=1e-3)


def test_overlap_swap_serves_the_old_variant_until_switch():
    prof = {**PROFILE, "cls": {"latency_ms": {1: 5.0}, "load_time_s": 0.05}}
    w = EmulatedWorker(0, prof, jitter=0.0)
    w.load("det")
    assert w.load("cls", None, {}, True, keep_old=True)["kept_old"] is True
    assert w.infer([None], "det")["variant"] == "det"  # old still serves
    assert w.infer([None], "cls")["variant"] == "cls"  # new one loaded beside it
    w.switch("cls")
    assert w.variant == "cls" and w.pending == {}
    with pytest.raises(RuntimeError, match="has not loaded"):
        w.switch("det")


@pytest.mark.ray
def test_emulated_actor_latency_and_cpu(ray_local):
    from lokirl.runtime.worker import make_worker

    p = load_pipeline("traffic_analysis")
    actor = make_worker(0, emulate=True, pipeline=p)
    ray = ray_local
    ray.get(actor.load.remote("yolov5m", None, dict(p.variant("yolov5m").branching)))
    ray.get(actor.infer.remote([None], "yolov5m"))  # first call: Ray's own warm-up
    prof = p.variant("yolov5m").latency("gpu", 8)
    cpu0 = ray.get(actor.cpu_s.remote())
    t0 = time.perf_counter()
    # Sent at once: they run one after the other, as on one accelerator.
    outs = ray.get([actor.infer.remote([None] * 8, "yolov5m") for _ in range(8)])
    wall = time.perf_counter() - t0
    cpu = ray.get(actor.cpu_s.remote()) - cpu0
    ms = [o["service_ms"] for o in outs]
    assert np.median(ms) == pytest.approx(prof, rel=0.1)
    assert wall >= 0.9 * 8 * prof / 1000.0
    # A model computing for that long would use about the whole wall time; the actor's
    # Ray call handling alone measured 3-6% of it on a busy 2-core box.
    assert cpu < 0.15 * wall, f"emulated actor used {cpu:.3f} s CPU in {wall:.2f} s busy"
    assert all(len(o["counts"]["car_classification"]) == 8 for o in outs)
    ray.kill(actor)


@pytest.mark.ray
def test_live_emulated_traffic_analysis_accounts_for_every_request(ray_local):
    from lokirl.runtime.loadgen import replay
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    # dilation 3: every latency and the SLO x 3, rates / 3, so that scheduling jitter
    # on a 2-core box shared with other work is small against a batch's latency
    k = 3.0
    rate, n = 40.0 / k, 160
    cfg = RuntimeConfig(
        pipeline="traffic_analysis",
        workers=10,
        controller="loki-1s",
        emulate=True,
        dilation=k,
        initial_demand=rate,
        solve_in_subprocess=False,
        ping_timeout_s=30.0,  # ten actors starting on a busy 2-core box are not hung
    )

    async def main() -> tuple[dict, dict, float, float, list]:
        rt = Runtime(cfg)
        await rt.start()
        assert rt._auto_load is not None  # /v1/status's load range, solved before serving
        try:
            arrivals = np.cumsum(np.random.default_rng(0).exponential(1 / rate, n))
            frame = np.zeros((3, 8, 8), np.uint8)
            await asyncio.sleep(0.3)  # set-up after start: the clock runs ahead of the replay
            lag = rt.restart_clock()  # time 0 and the ticks at the first send
            now = rt.plane.now()
            client = await replay(arrivals, lambda i: rt.submit(frame), 10000)
            with pytest.raises(RuntimeError, match="after frames arrived"):
                rt.restart_clock()
            return rt.status(), client.to_dict(), lag, now, list(rt.decisions)
        finally:
            await rt.stop()

    status, client, lag, now, decisions = asyncio.run(main())
    assert lag >= 0.3 and now < 0.1
    # Ticks went on from the new time 0, on whole periods of it.
    assert len(decisions) >= 3 and decisions[0]["t"] == 1.0
    assert all(d["t"] == round(d["t"]) for d in decisions)
    f = status["frames"]
    dropped = sum(f["dropped"].values())
    assert f["arrived"] == n == client["sent"]
    assert f["arrived"] == f["on_time"] + f["late"] + dropped + f["in_flight"]
    s = status["subrequests"]
    assert s["arrived"] == s["on_time"] + s["late"] + sum(s["dropped"].values()) + s["in_flight"]
    assert s["arrived"] > 3 * f["arrived"]  # the detector's branching fans out
    assert f["on_time"] >= 0.8 * f["arrived"], f
    assert {w["status"] for w in status["workers"]} <= {"ready", "idle", "loading"}
    auto = status["auto_load"]  # the suites' range on 10 workers, served 3x slower
    assert auto["unit"] == "full_accuracy" and auto["lo"] < rate < auto["hi"]


def _serve_args(**kw) -> argparse.Namespace:
    base = dict(
        pipeline="traffic_analysis_cpu",
        controller="loki-1s",
        workers=None,
        address=None,
        num_cpus=2,
        host="127.0.0.1",
        port=8000,
        initial_demand=None,
        epoch=1.0,
        accelerator=None,
        input_size=None,
        max_body_mb=8.0,
        no_early_drop=False,
        swap="overlap",
        emulate=False,
        dilation=1.0,
    )
    base.update(kw)
    return argparse.Namespace(**base)


def test_serve_default_workers_place_every_task():
    from lokirl.commands.serve import default_workers

    assert default_workers(3, _serve_args(num_cpus=2)) == 3
    assert default_workers(3, _serve_args(num_cpus=8)) == 8
    assert default_workers(3, _serve_args(emulate=True)) == 20


def test_serve_refuses_fewer_workers_than_tasks_before_ray():
    from lokirl.commands.serve import run

    with pytest.raises(ConfigError, match="3 tasks.*--workers 3"):
        run(_serve_args(workers=2))
    with pytest.raises(ConfigError, match="--emulate"):
        run(_serve_args(dilation=4.0))
    # A controller period of 0 (or 1 us) made the loop spin; refused before Ray starts.
    for epoch in (0.0, 1e-6, float("nan")):
        with pytest.raises(ConfigError, match="--epoch.*at least 0.01 s"):
            run(_serve_args(epoch=epoch, emulate=True))


def test_sim_overhead_slows_service_but_not_the_plans():
    from lokirl.experiments.simvslive import SimVsLiveOptions, run_sim
    from lokirl.traces import RateSeries

    p = load_pipeline("traffic_analysis")
    trace = RateSeries(np.full(6, 300.0), name="flat")
    opts = SimVsLiveOptions(
        pipeline="traffic_analysis", controller="loki-1s", workers=20, duration=6.0,
        solver_time="model", sim_cores="none",
    )  # fmt: skip
    base = run_sim(p, trace, opts, 300.0)
    slow = run_sim(p, trace, replace(opts, sim_overhead_ms=20.0), 300.0)
    # The same plans (the controller reads the profile), more violations.
    assert slow["solves"] == base["solves"]
    assert slow["mean_active_workers"] == pytest.approx(base["mean_active_workers"])
    assert slow["frame_slo_violation_ratio"] > base["frame_slo_violation_ratio"] + 0.05


def test_simvslive_dilation_needs_emulate():
    from lokirl.commands import simvslive

    args = argparse.Namespace(
        workers=20, duration=10.0, seed=0, seeds=None, sim_cores="none", sim_host_cores=0.0,
        dilation=2.0, emulate=False, sim_overhead_ms=0.0, address=None, num_cpus=2,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="--emulate"):
        simvslive.run(args)
    with pytest.raises(ConfigError, match="sim-overhead-ms"):
        simvslive.run(argparse.Namespace(**{**vars(args), "emulate": True, "sim_overhead_ms": -1}))


@pytest.mark.parametrize("controller", ["loki", "trigger", "static", "ppo"])
def test_first_plan_is_decided_as_the_simulator_decides_it(controller):
    """Live and simulated runs start from the same plan (loki raises the demand to its floor)."""
    from lokirl.core.binding import bind_controller
    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline import Cluster
    from lokirl.runtime.runtime import Runtime, RuntimeConfig
    from lokirl.sim import SimConfig, Simulation
    from lokirl.traces import RateSeries

    p = load_pipeline("traffic_analysis")
    cfg = RuntimeConfig(
        pipeline="traffic_analysis", workers=20, controller=controller, emulate=True,
        initial_demand=12.5,
    )  # fmt: skip
    live = Runtime(cfg, pipeline=p).initial_decision(12.5)
    sim = Simulation(
        p, Cluster({"gpu": 20}), RateSeries(np.full(5, 12.5), name="flat"),
        SimConfig(initial_demand=12.5),
    )  # fmt: skip
    ctl = make_controller(controller)
    bind_controller(ctl, p, Cluster({"gpu": 20}), "overlap")
    want = ctl.decide(sim.reset())
    assert live.resolve
    if want.resolve:
        assert live.demand == pytest.approx(want.demand)
        # The same reason: a planner reads it (ppo's first plan is its own solve; named
        # "initial" it was its fluid fallback's library plan, another plan).
        assert live.reason == want.reason
    else:
        assert live.demand == pytest.approx(12.5)
    if controller == "loki":
        assert live.demand > 12.5  # its floor: the plan a plain solve for 12.5 would miss


ALL_REPLAYS = {
    "mean_hop", "traced_hop", "received", "received_mean", "received_wake", "received_fine",
}  # fmt: skip


@pytest.mark.ray
def test_simvslive_replays_the_live_hops_in_the_simulator(ray_local):
    from lokirl.experiments.simvslive import SimVsLiveOptions, replay_summaries, run_pair
    from lokirl.traces.types import ArrivalTrace

    p = load_pipeline("traffic_analysis")
    rng = np.random.default_rng(0)
    arrivals = np.sort(rng.random(120) * 4.0)  # 30 frames/s for 4 s
    trace = ArrivalTrace(arrivals, name="poisson30", duration_s=4.0)
    opts = SimVsLiveOptions(
        pipeline="traffic_analysis", controller="loki-1s", workers=6, duration=4.0,
        solver_time="model", emulate=True,
    )  # fmt: skip
    r = run_pair(opts, p, trace)
    assert "_hop_samples" not in r["live"] and "_arrivals_s" not in r["live"]
    reps = r["replays"]
    assert set(reps) == ALL_REPLAYS
    # Every frame was received after it was sent, within the run.
    lag = reps["received"]["arrival_lag_ms"]
    assert 0.0 <= lag["p50"] <= lag["max"] < 2000.0
    assert reps["received"]["solves_compared"]["matched"] >= 1
    # Violated frames per second, live and simulated, add up to each side's total.
    live = r["live"]
    assert sum(live["violations_per_s"]) == live["frames_dropped"] + live["frames_late"]
    sim = reps["received"]["sim"]
    assert sum(sim["violations_per_s"]) == sim["frames_dropped"] + sim["frames_late"]
    assert isinstance(reps["received"]["violation_gaps"], list)
    # The replays charge what held each worker beyond its profiled latency (the hold):
    # its time over the profile, the hop, then routing the results on; about their sum.
    live = r["live"]
    assert reps["mean_hop"]["overhead_ms_mean"] == pytest.approx(live["hold_ms_mean"], rel=1e-6)
    parts = live["worker_over_profile_ms_mean"] + live["hop_ms_mean"] + live["complete_ms_mean"]
    assert live["hold_ms_mean"] == pytest.approx(parts, rel=0.1, abs=0.2)
    assert 0.0 < live["complete_ms_mean"] < live["hold_ms_mean"]
    # Idle workers woken by routing: the wait to their dispatch, per 10 s of the run.
    assert live["wakes"] == sum(n for n, _ms, _top in live["wake_ms_by_10s"]) > 0
    assert 0.0 <= live["wake_ms_mean"] <= live["wake_ms_max"]
    # ... which the received replay with wakes charges, drawn from those very waits.
    assert reps["received_wake"]["wake_ms_mean"] == pytest.approx(live["wake_ms_mean"], rel=1e-6)
    assert reps["received_fine"]["bin_s"] == 0.05
    for rep in reps.values():
        assert rep["sim"]["frames"] == r["live"]["frames"] == 120
        rows = {c["metric"]: c for c in rep["comparison"]}
        assert rows["frames"]["rel"] == 0.0
    summary = replay_summaries([r, r])
    assert set(summary) == ALL_REPLAYS
    assert replay_summaries([r, {**r, "replays": {}}]) == {}  # only when every run has it


def test_the_runtime_reports_the_suites_load_range_of_the_cluster_it_serves():
    """``/v1/status`` carries ``auto_load`` (``loadgen --rescale auto``): the suites' range."""
    from lokirl.core.load_range import auto_load_range
    from lokirl.experiments.suites import capacities
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    p = load_pipeline("traffic_analysis")
    got = {}
    for dilation in (1.0, 2.0):
        cfg = RuntimeConfig(
            pipeline="traffic_analysis", workers=12, controller="static", emulate=True,
            dilation=dilation,
        )  # fmt: skip
        rt = Runtime(cfg, pipeline=p)
        got[dilation] = rt.status()["auto_load"]
        lo, hi, unit = auto_load_range(capacities(rt.pipeline, rt.cluster))
        assert (got[dilation]["lo"], got[dilation]["hi"], got[dilation]["unit"]) == (lo, hi, unit)
        assert rt.auto_load() is got[dilation]  # solved once
    assert got[1.0]["unit"] == "full_accuracy" and got[1.0]["hi"] == pytest.approx(
        2.0 * got[1.0]["full_accuracy"]
    )
    # served twice as slowly (dilation 2), the cluster takes half the load
    assert got[2.0]["hi"] == pytest.approx(got[1.0]["hi"] / 2, rel=1e-6)
