"""A trace the simulator cannot play in reasonable time is refused before the run."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lokirl.cli import main
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.errors import TraceError
from lokirl.sim import SimConfig, simulate
from lokirl.sim.baselines import StaticController
from lokirl.sim.engine import expected_frames
from lokirl.traces.types import ArrivalTrace, RateSeries


def test_expected_frames_counts_the_played_span():
    rates = RateSeries(np.array([10.0, 20.0, 30.0]), 1.0, "r")
    assert expected_frames(rates, 3.0) == pytest.approx(60.0)
    assert expected_frames(rates, 1.5) == pytest.approx(20.0)  # half of the second bin
    arr = ArrivalTrace(np.array([0.1, 0.5, 1.2, 2.9]), "a")
    assert expected_frames(arr, 1.0) == 2 and expected_frames(arr, 5.0) == 4


def test_simulator_refuses_a_trace_over_its_limit_at_once():
    pipe = load_pipeline("traffic_analysis")
    huge = RateSeries(np.full(3, 1e9), 1.0, "huge")
    t0 = time.perf_counter()
    with pytest.raises(TraceError, match=r"huge: .*3e\+09 frames.*Fix: rescale"):
        simulate(pipe, Cluster.homogeneous(pipe, 20), huge, StaticController(), SimConfig())
    assert time.perf_counter() - t0 < 10
    with pytest.raises(ValueError, match="max_frames"):
        SimConfig(max_frames=0)


def test_bench_refuses_an_unscaled_trace_over_the_limit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "huge.csv").write_text("time,rate\n0,1e9\n1,1e9\n")
    rc = main(["bench", "--trace", "huge.csv", "--load", "none", "--no-mlflow"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "load" in err and "Fix:" in err and "--load 0.3:2.0" in err
    assert not (tmp_path / "runs").exists()  # nothing was played


def test_a_span_of_months_is_refused_before_the_run():
    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.errors import TraceError
    from lokirl.sim import SimConfig, simulate
    from lokirl.traces.types import ArrivalTrace

    p, c = load_pipeline("traffic_analysis"), Cluster({"gpu": 20})
    trace = ArrivalTrace(np.array([0.0, 0.01, 40e6]), name="stretched")
    with pytest.raises(TraceError, match="days"):
        simulate(p, c, trace, make_controller("loki"), SimConfig(), np.random.default_rng(0))
