import numpy as np
import pytest

from lokirl.errors import TraceError
from lokirl.traces import ArrivalTrace, RateSeries, arrivals_to_rates, rates_to_arrivals


def test_rate_series_rejects_nan_and_negative():
    with pytest.raises(TraceError, match="bin 1 is not finite"):
        RateSeries(np.array([1.0, np.nan]))
    with pytest.raises(TraceError, match="bin 2 is negative"):
        RateSeries(np.array([1.0, 2.0, -1.0]))


def test_rate_series_is_read_only():
    s = RateSeries(np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        s.rates[0] = 5


def test_arrival_trace_sorts_and_keeps_duration():
    tr = ArrivalTrace(np.array([3.0, 1.0, 2.0]))
    assert tr.arrivals_s.tolist() == [1.0, 2.0, 3.0]
    assert tr.duration_s == 3.0
    with pytest.raises(TraceError, match="before the last arrival"):
        ArrivalTrace(np.array([5.0]), duration_s=4.0)


def test_binning_counts_every_arrival():
    tr = ArrivalTrace(np.array([0.1, 0.2, 1.5, 2.99, 3.0]), duration_s=4.0)
    s = arrivals_to_rates(tr, 1.0)
    assert s.rates.tolist() == [2, 1, 1, 1]
    half = arrivals_to_rates(tr, 0.5)
    assert half.rates.sum() * 0.5 == 5


def test_poisson_draw_is_seeded_and_matches_rates():
    s = RateSeries(np.array([100.0, 0.0, 300.0] * 20))
    a = rates_to_arrivals(s, np.random.default_rng(1))
    b = rates_to_arrivals(s, np.random.default_rng(1))
    np.testing.assert_array_equal(a.arrivals_s, b.arrivals_s)
    assert a.duration_s == 60.0
    back = arrivals_to_rates(a, 1.0)
    assert back.rates[1::3].sum() == 0  # nothing arrives in an empty bin
    assert abs(len(a) - s.expected_requests) < 4 * np.sqrt(s.expected_requests)
