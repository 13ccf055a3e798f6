"""simvslive's comparison rows (no Ray)."""

from __future__ import annotations

import pytest

from lokirl.experiments.simvslive import (
    METRICS,
    arrival_lag_ms,
    compare,
    describe_received,
    describe_solves,
    per_second,
    received_trace,
    solve_divergence,
    summarise,
    violation_gaps,
    wake_windows,
)


def _metrics(x: float) -> dict[str, float]:
    return {key: x for key, _ in METRICS}


def test_compare_and_summarise_over_seeds():
    runs = []
    for sim, live in ((0.1, 0.11), (0.2, 0.18)):
        s, li = _metrics(sim), _metrics(live)
        runs.append({"sim": s, "live": li, "comparison": compare(s, li)})
    rows = {r["metric"]: r for r in summarise(runs)}
    r = rows["frame_slo_violation_ratio"]
    assert r["sim"] == pytest.approx(0.15) and r["live"] == pytest.approx(0.145)
    assert r["rel"] == pytest.approx(-0.005 / 0.15)
    assert r["rel_per_seed"] == pytest.approx([0.1, -0.1])


def test_compare_zero_sim():
    s, li = _metrics(0.0), _metrics(0.0)
    li["solves"] = 3.0
    rows = {r["metric"]: r for r in compare(s, li)}
    assert rows["frames"]["rel"] == 0.0
    assert rows["solves"]["rel"] is None


def test_sim_cores_option():
    import argparse

    from lokirl.errors import ConfigError
    from lokirl.experiments.simvslive import sim_cores

    def ns(v, address=None, num_cpus=2):
        return argparse.Namespace(sim_cores=v, address=address, num_cpus=num_cpus)

    assert sim_cores(ns("none")) is None
    assert sim_cores(ns("3")) == 3.0
    assert sim_cores(ns("auto", address="ray://head:10001")) is None  # a cluster: its own devices
    import torch

    assert sim_cores(ns("auto")) == (None if torch.cuda.is_available() else 2.0)
    with pytest.raises(ConfigError, match="sim-cores"):
        sim_cores(ns("lots"))


def test_host_cpu_counts_this_process(monkeypatch):
    import time

    from lokirl.experiments import simvslive
    from lokirl.experiments.simvslive import host_cpu_s

    # Ray daemons left by other tests may exit meanwhile and take their seconds with them
    monkeypatch.setattr(simvslive, "RAY_DAEMONS", ())

    before = host_cpu_s()
    end = time.process_time() + 0.05
    while time.process_time() < end:  # burn 50 ms of CPU in this process
        pass
    assert host_cpu_s() - before >= 0.045  # at clock resolution: ticks could lose 10 ms


def test_bad_host_cores_is_a_config_error(capsys):
    from lokirl.cli import main

    assert main(["simvslive", "--sim-host-cores", "-1"]) != 0
    assert "--sim-host-cores" in capsys.readouterr().err


def test_counting_noise_shrinks_with_more_violations():
    from lokirl.experiments.simvslive import counting_noise

    def runs(a, b):
        m = {"frames_dropped": a, "frames_late": 0}
        return [{"sim": m, "live": {"frames_dropped": b - 1, "frames_late": 1}}]

    few, many = counting_noise(runs(10, 10)), counting_noise(runs(1000, 1000))
    assert few["sim_violated_frames"] == 10 and few["live_violated_frames"] == 10
    assert few["rel_band_95"] > 1.0  # ten against ten: more than a factor of two either way
    assert 0.05 < many["rel_band_95"] < 0.1
    assert counting_noise(runs(0, 5))["rel_band_95"] is None


def test_solve_divergence_finds_the_first_solve_on_one_side_only():
    sim = [[0.0, "first plan"], [10.0, "forecast above band"], [30.0, "forecast below band"]]
    same = solve_divergence(sim, [[0.0, "initial"], [10.4, "forecast above band"], [30.0, "x"]])
    assert same["matched"] == 3 and same["diverged_at_s"] is None
    live = [[0.0, "initial"], [10.0, "forecast above band"], [14.0, "forecast above band"]]
    d = solve_divergence(sim, live + [[30.0, "forecast below band"]])
    assert d["matched"] == 2 and d["diverged_at_s"] == 14.0
    assert d["sim_next"] == [30.0, "forecast below band"]
    assert d["live_next"] == [14.0, "forecast above band"]
    assert d["live_reasons"] == {"forecast above band": 2, "forecast below band": 1, "initial": 1}
    assert "2 started together, first apart at 14 s" in describe_solves(d)
    assert "the same solves throughout" in describe_solves(same)
    ended = solve_divergence(sim, sim[:2])  # live stopped solving
    assert ended["diverged_at_s"] == 30.0 and ended["live_next"] is None


def test_received_trace_replays_the_times_received():
    import numpy as np

    from lokirl.traces.types import ArrivalTrace

    sent = ArrivalTrace(np.array([0.0, 0.5, 0.999, 1.5]), name="t", duration_s=2.0)
    # Received a few ms later, one of them after the second's boundary, out of order.
    got = received_trace(sent, [0.003, 1.004, 0.502, 1.503])
    assert got is not None and got.name == "t"
    assert got.arrivals_s.tolist() == [0.003, 0.502, 1.004, 1.503]
    assert got.duration_s == 2.0
    # The simulator would count the third frame in second 1, as the live run did.
    assert np.bincount(got.arrivals_s.astype(int)).tolist() == [2, 2]
    lag = arrival_lag_ms(sent, got)
    assert lag["mean"] == pytest.approx(3.25, abs=1e-6)  # 3, 2, 5 and 3 ms
    assert lag["max"] == pytest.approx(5.0, abs=1e-6)
    assert lag["max_by_10s"] == [pytest.approx(5.0)]  # one 10 s window of sent time
    later = ArrivalTrace(np.array([0.0, 25.0]), name="u", duration_s=30.0)
    assert arrival_lag_ms(later, received_trace(later, [0.001, 25.2]))["max_by_10s"] == [
        pytest.approx(1.0),
        0.0,
        pytest.approx(200.0),
    ]
    # A received time past the trace's end extends its duration.
    late = received_trace(sent, [0.0, 0.5, 1.0, 2.2])
    assert late is not None and late.duration_s == pytest.approx(2.2)
    # Frames the client never sent: no replay.
    assert received_trace(sent, [0.0, 0.5, 1.0]) is None


def test_violations_per_second_and_the_worst_windows():
    assert per_second([0.2, 0.9, 2.5, -0.01]) == [3, 0, 1]
    assert per_second([]) == []
    sim = [1] * 30
    live = [1] * 10 + [5] * 10 + [1] * 5 + [0] * 5 + [9]  # one second longer
    gaps = violation_gaps(sim, live, window_s=10, top=3)
    assert gaps == [
        {"from_s": 10, "to_s": 20, "sim": 10, "live": 50},
        {"from_s": 30, "to_s": 40, "sim": 0, "live": 9},
    ]  # 0-10 equal and 20-30 fewer live: not listed
    rp = {
        "arrival_lag_ms": {"mean": 1.0, "p50": 0.9, "p99": 5.0, "max": 9.0},
        "solves_compared": solve_divergence([[0.0, "a"]], [[0.0, "a"]]),
        "violation_gaps": gaps,
    }
    text = describe_received(rp)
    assert "10-20 s sim 10 live 50" in text and "p99 5.0 ms" in text
    assert "none" in describe_received({**rp, "violation_gaps": []})
    # the other replays of the received arrivals carry only their solves (a KeyError
    # ended the command after all its work)
    other = describe_received({"solves_compared": rp["solves_compared"]})
    assert other == "  " + describe_solves(rp["solves_compared"])


def test_wake_windows_sum_the_waits_per_window():
    wakes = [(100.5, 1.0), (101.0, 3.0), (112.0, 0.5), (135.0, 120.0)]
    got = wake_windows(wakes, 100.0, 10.0)
    assert got == [(2, 4.0, 3.0), (1, 0.5, 0.5), (0, 0.0, 0.0), (1, 120.0, 120.0)]
    assert wake_windows([], 0.0, 10.0) == []


def test_the_command_maps_a_trace_onto_the_suites_range_before_ray(monkeypatch):
    """``lokirl simvslive --rescale auto``: the range is the cluster's, resolved before Ray."""
    import lokirl.experiments.simvslive as svl
    from lokirl.cli import main
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.experiments.suites import auto_load_range, capacities

    seen = {}

    def no_ray(options, pipeline, traces):
        seen["traces"] = traces
        return {}

    monkeypatch.setattr(svl, "run_seeds", no_ray)
    argv = ["simvslive", "--pipeline", "traffic_analysis", "--workers", "12", "--trace"]
    argv += ["step_600s", "--speedup", "20", "--duration", "20", "--rescale", "auto", "--json"]
    from lokirl.commands import stdout

    try:
        assert main(argv) == 0  # (the JSON goes to the real stdout, kept from Ray)
    finally:  # the reservation ends with the test: fd 1 is pytest's capture again
        if stdout._RESERVED is not None:
            stdout._RESERVED.close()
    pipe = load_pipeline("traffic_analysis")
    lo, hi, unit = auto_load_range(capacities(pipe, Cluster.homogeneous(pipe, 12)))
    assert unit == "full_accuracy"
    ((seed, trace),) = seen["traces"]
    rate = len(trace.arrivals_s) / 20.0  # 20 s of the trace mapped into lo..hi
    assert seed == 0 and 0.8 * lo <= rate <= 1.05 * hi


def test_seed_lists_are_parsed_or_refused_with_the_option_named():
    from lokirl.commands.options import parse_seeds
    from lokirl.errors import ConfigError

    assert parse_seeds("0, 1,2,") == [0, 1, 2]
    for bad, why in (("0,x", "not a list of integers"), (",", "no seeds")):
        with pytest.raises(ConfigError) as err:
            parse_seeds(bad)
        assert err.value.source == "--seeds" and why in err.value.problem
