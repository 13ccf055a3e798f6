import math
from dataclasses import asdict

import numpy as np
import pytest

from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.sim import SimConfig, simulate
from lokirl.sim.overhead import OverheadTrace
from lokirl.traces.types import RateSeries


def test_samples_are_binned_by_start_time_and_drawn_from_their_bin():
    tr = OverheadTrace.from_samples([(0.2, 0.001), (0.9, 0.002), (2.5, 0.010), (-1.0, -0.5)])
    assert tr.bins == ((0.001, 0.002, 0.0), (), (0.010,))
    assert tr.mean_s == pytest.approx(0.013 / 4)
    s = tr.sampler(np.random.default_rng(0))
    assert {s.draw(0.5) for _ in range(200)} == {0.001, 0.002, 0.0}
    assert {s.draw(2.0) for _ in range(20)} == {0.010}
    # an empty bin, or a moment past the measured run, draws from every sample
    assert {s.draw(1.5) for _ in range(400)} == {0.001, 0.002, 0.0, 0.010}
    assert {s.draw(99.0) for _ in range(400)} == {0.001, 0.002, 0.0, 0.010}


def test_bad_overhead_traces_are_refused():
    with pytest.raises(ValueError, match="at least one sample"):
        OverheadTrace.from_samples([])
    with pytest.raises(ValueError, match="finite"):
        OverheadTrace(((0.001, math.inf),))
    with pytest.raises(ValueError, match="bin_s"):
        OverheadTrace(((0.001,),), bin_s=0.0)
    with pytest.raises(ValueError, match="not both"):
        SimConfig(batch_overhead_s=0.004, batch_overhead=OverheadTrace(((0.004,),)))


@pytest.fixture(scope="module")
def traffic():
    return load_pipeline("traffic_analysis"), Cluster({"gpu": 20})


def _run(traffic, rate=250.0, **cfg):
    p, c = traffic
    trace = RateSeries(np.full(12, rate), name="flat")
    r = simulate(p, c, trace, make_controller("loki"), SimConfig(**cfg), np.random.default_rng(3))
    assert r.frames.conserved and r.subrequests.conserved
    return r


def test_a_one_valued_trace_replays_the_constant_overhead_exactly(traffic):
    # The draws have their own stream: arrivals and routing stay those of the constant run.
    const = _run(traffic, batch_overhead_s=0.004)
    traced = _run(traffic, batch_overhead=OverheadTrace(((0.004,),)))
    assert asdict(traced.frames) == asdict(const.frames)
    assert asdict(traced.subrequests) == asdict(const.subrequests)


def test_a_tail_at_one_moment_costs_violations_there_that_its_mean_spreads(traffic):
    # 1 ms everywhere but for second 6, where 1 batch in 2 waits 30 ms (mean 3.2 ms).
    base = [(t + 0.5, 0.001) for t in range(12) if t != 6]
    traced = OverheadTrace.from_samples(base + [(6.1, 0.030), (6.2, 0.001)])
    flat = _run(traffic, batch_overhead_s=traced.mean_s)
    bursty = _run(traffic, batch_overhead=traced)
    assert bursty.frames.arrived == flat.frames.arrived
    fv, bv = flat.series["frame_violations"], bursty.series["frame_violations"]
    assert bv[6] > 1.5 * fv[6]  # the burst's second
    assert bv[:3].sum() < 0.5 * fv[:3].sum()  # the quiet seconds before it
    again = _run(traffic, batch_overhead=traced)
    assert asdict(again.frames) == asdict(bursty.frames)  # seeded: the same run twice


@pytest.mark.parametrize("field", ["batch_overhead", "wake_delay"])
def test_the_fluid_engine_refuses_measured_delays(traffic, field):
    from lokirl.sim.fluid import FluidSimulation

    p, c = traffic
    trace = RateSeries(np.full(3, 10.0), name="flat")
    with pytest.raises(ValueError, match=field):
        FluidSimulation(p, c, trace, SimConfig(**{field: OverheadTrace(((0.004,),))}))


def _sparse(traffic, **cfg):
    return _run(traffic, rate=20.0, **cfg)  # an idle worker wakes for most frames


def test_a_wake_delay_holds_back_batches_that_idle_workers_start(traffic):
    p, _ = traffic
    free = _sparse(traffic)
    short = _sparse(traffic, wake_delay=OverheadTrace(((0.0005,),)))
    # Its own stream: the same arrivals; a wait far below the SLO costs nothing here.
    assert short.frames.arrived == free.frames.arrived
    assert short.frames.on_time == free.frames.on_time > 0.9 * free.frames.arrived
    # A wait longer than the SLO at every wake: no frame that woke a worker is on time.
    slow = _sparse(traffic, wake_delay=OverheadTrace(((2.0 * p.slo_ms / 1000.0,),)))
    assert slow.frames.arrived == free.frames.arrived
    assert slow.frames.on_time < 0.1 * free.frames.on_time
    again = _sparse(traffic, wake_delay=OverheadTrace(((0.0005, 0.2 * p.slo_ms / 1000.0),)))
    twice = _sparse(traffic, wake_delay=OverheadTrace(((0.0005, 0.2 * p.slo_ms / 1000.0),)))
    assert asdict(again.frames) == asdict(twice.frames)  # seeded: the same run twice
