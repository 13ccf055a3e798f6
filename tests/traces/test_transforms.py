import numpy as np
import pytest

from lokirl.errors import TraceError
from lokirl.traces import (
    ArrivalTrace,
    RateSeries,
    concat,
    mix_segments,
    rebin,
    resample,
    rescale,
    speedup,
    window,
)


def series(values, bin_s=1.0):
    return RateSeries(np.asarray(values, dtype=float), bin_s=bin_s, name="s")


def test_window_rates_and_arrivals():
    s = series(range(10))
    assert window(s, 2, 5).rates.tolist() == [2, 3, 4]
    tr = ArrivalTrace(np.array([0.5, 2.5, 3.0, 7.0]), duration_s=10)
    w = window(tr, 2, 5)
    assert w.arrivals_s.tolist() == [0.5, 1.0]
    assert w.duration_s == 3
    with pytest.raises(TraceError, match="window"):
        window(s, 5, 2)
    # a window to (or past) the end keeps the last arrival, which is the trace's end
    ends = ArrivalTrace(np.array([1.0, 2.0, 4.0]))
    assert window(ends, 1, 10).arrivals_s.tolist() == [0.0, 1.0, 3.0]
    assert window(ends, 1).arrivals_s.tolist() == [0.0, 1.0, 3.0]
    assert window(ends, 1, 4).arrivals_s.tolist() == [0.0, 1.0, 3.0]
    assert window(
        ArrivalTrace(np.array([1.0, 2.0, 4.0]), duration_s=6), 1, 4
    ).arrivals_s.tolist() == [0.0, 1.0]


def test_speedup_keeps_requests_and_compresses_time():
    s = series([10, 20, 30])
    fast = speedup(s, 2.0)
    assert fast.duration_s == pytest.approx(1.5)
    assert fast.expected_requests == pytest.approx(s.expected_requests)
    tr = ArrivalTrace(np.array([1.0, 2.0]), duration_s=4)
    assert speedup(tr, 4).arrivals_s.tolist() == [0.25, 0.5]


def test_rescale_maps_min_max_and_keeps_shape():
    s = series([5, 10, 20, 15])
    out = rescale(s, 100, 400)
    assert out.rates.min() == 100 and out.rates.max() == 400
    # shape preserved: the normalised profile is identical
    norm = lambda r: (r - r.min()) / (r.max() - r.min())  # noqa: E731
    np.testing.assert_allclose(norm(out.rates), norm(s.rates))
    assert rescale(series([3, 3]), 10, 20).rates.tolist() == [15, 15]
    # a trace without requests has no shape: refused, not turned into a flat load of 15
    with pytest.raises(TraceError, match="no requests, so there is no shape"):
        rescale(series([0, 0]), 10, 20)


def test_rescale_arrivals_redraws_with_rng():
    tr = ArrivalTrace(np.sort(np.random.default_rng(0).uniform(0, 50, 2000)), duration_s=50)
    out = rescale(tr, 10, 20, rng=np.random.default_rng(1))
    assert isinstance(out, ArrivalTrace)
    assert 400 < len(out) < 1100
    with pytest.raises(TraceError, match="rng"):
        rescale(tr, 10, 20)


def test_rebin_keeps_counts():
    s = series([1, 3, 5, 7])
    assert rebin(s, 2.0).rates.tolist() == [2, 6]
    fine = rebin(s, 0.5)
    assert len(fine) == 8 and fine.expected_requests == s.expected_requests


def test_concat():
    c = concat([series([1, 2]), series([3])])
    assert c.rates.tolist() == [1, 2, 3]
    a = concat(
        [ArrivalTrace(np.array([0.5]), duration_s=1), ArrivalTrace(np.array([0.5]), duration_s=2)]
    )
    assert a.arrivals_s.tolist() == [0.5, 1.5] and a.duration_s == 3
    with pytest.raises(TraceError, match="bin widths differ"):
        concat([series([1]), series([1], bin_s=2)])


def test_mix_segments_length_and_determinism():
    srcs = [series(np.arange(100)), series(1000 + np.arange(50))]
    a = mix_segments(srcs, 300, np.random.default_rng(3), min_segment_s=10, max_segment_s=40)
    b = mix_segments(srcs, 300, np.random.default_rng(3), min_segment_s=10, max_segment_s=40)
    assert len(a) == 300
    np.testing.assert_array_equal(a.rates, b.rates)
    values = set(a.rates.tolist())
    assert values <= set(srcs[0].rates.tolist()) | set(srcs[1].rates.tolist())


def test_resample_any_ratio_keeps_counts():
    fast = speedup(series([30, 60, 90, 0, 30, 60]), 1.5)  # bins of 2/3 s
    per_s = resample(fast, 1.0)
    assert per_s.bin_s == 1.0 and len(per_s) == 4
    assert per_s.expected_requests == pytest.approx(fast.expected_requests)
    assert resample(series([1, 2]), 1.0).rates.tolist() == [1, 2]
