import numpy as np
import pytest

from lokirl.traces import (
    ArrivalTrace,
    RateSeries,
    describe_trace,
    late_start_s,
    requests_before,
    resolve_trace_noted,
)


def test_describe_names_span_rates_and_requests():
    s = RateSeries(np.array([10.0, 20.0, 30.0]), bin_s=2.0)
    assert describe_trace(s) == (
        "3 bins of 2 s (6 s), mean 20 req/s, peak 30 req/s, about 120 requests"
    )
    a = ArrivalTrace(np.array([0.5, 1.0, 4.5]), duration_s=6.0)
    assert describe_trace(a) == (
        "3 requests in 4 s (from 0.5 s to 4.5 s), a mean of 0.5 req/s over 6 s"
    )
    assert describe_trace(ArrivalTrace(np.array([]))) == "no requests"


def test_late_start_is_called_out_only_when_it_stands_out():
    # a trace cut from a longer log: 1,000 s of silence before its first request
    assert late_start_s(ArrivalTrace(np.array([1000.0, 1100.0, 1200.0]))) == 1000.0
    assert late_start_s(ArrivalTrace(np.array([5.0, 100.0]))) == 0.0  # under 10 s
    assert late_start_s(ArrivalTrace(np.array([12.0, 600.0]))) == 0.0  # under a tenth
    rates = RateSeries(np.r_[np.zeros(50), np.ones(50)])
    assert late_start_s(rates) == 50.0
    assert late_start_s(RateSeries(np.zeros(5))) == 0.0


def test_requests_before_counts_arrivals_and_prorates_one_bin():
    a = ArrivalTrace(np.array([1000.0, 1000.5, 1010.0]))
    # counted, not a share of the whole: a pro-rata share of the first 20 s would be 0.05
    assert requests_before(a, 20.0) == 0
    assert requests_before(a, 1005.0) == 2
    s = RateSeries(np.array([10.0, 20.0, 30.0]), bin_s=2.0)
    assert requests_before(s, 3.0) == pytest.approx(20 + 20)
    assert requests_before(s, 100.0) == pytest.approx(120)
    assert requests_before(s, 0.0) == 0


def test_a_file_is_noted_with_its_format_a_bundled_name_is_not(tmp_path):
    p = tmp_path / "late.txt"
    p.write_text("".join(f"{1_000_000 + 1000 * i}\n" for i in range(30)))
    trace, note = resolve_trace_noted(str(p))
    assert len(trace) == 30
    assert note == (
        f"{p}: read as an arrival file (one arrival time in ms a line), auto-detected: 30 "
        "requests in 29 s (from 1,000 s to 1,029 s), a mean of 0.02915 req/s over 1,029 s; no request "
        "before 1,000 s, which play as silence (a file keeps its own time origin)"
    )
    r = tmp_path / "r.csv"
    r.write_text("time_s,qps\n0,1\n1,3\n")
    assert resolve_trace_noted(str(r), fmt="rates")[1] == (
        f"{r}: read as a rate file (time_s,qps rows): 2 bins of 1 s (2 s), mean 2 req/s, "
        "peak 3 req/s, about 4 requests"
    )
    t = tmp_path / "log.csv"
    t.write_text("user,ts\nu,0.5\nv,2.5\n")
    note = resolve_trace_noted(str(t), column="ts")[1]
    assert "a timestamp CSV (one request a row), auto-detected, column 'ts': 2 requests" in note
    trace, note = resolve_trace_noted("step_600s")
    assert note is None and len(trace) > 0
