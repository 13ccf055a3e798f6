import numpy as np
import pytest

from lokirl.core.forecasting import Forecaster
from lokirl.forecast import (
    EWMA,
    ForecastError,
    LastValue,
    LinearTrend,
    SeasonalNaive,
    make_forecaster,
)

H = (1, 5, 10, 30, 60)


def feed(f, values):
    s = f.init_state()
    for v in values:
        s = f.update(s, v)
    return s


@pytest.mark.parametrize("name", ["last", "ewma", "seasonal", "trend"])
def test_constant_series_forecasts_the_constant(name):
    f = make_forecaster(name)
    assert isinstance(f, Forecaster)
    out = f.predict(feed(f, [200.0] * 150), H)
    assert out.horizons_s == H
    np.testing.assert_allclose(out.mean, 200.0, rtol=1e-9)
    # no error seen: the upper quantile collapses onto the mean
    np.testing.assert_allclose(out.upper, 200.0, rtol=1e-9)


def test_trend_extrapolates_a_ramp_exactly():
    f = LinearTrend(window_s=20)
    ramp = 100 + 2.0 * np.arange(100)  # last value 298 at t=99
    out = f.predict(feed(f, ramp), (1, 10))
    # mean over t+1..t+h of 100 + 2t is 298 + (h + 1)
    assert out.mean == pytest.approx((300.0, 309.0))


def test_last_and_ewma_lag_a_ramp():
    ramp = 100 + 2.0 * np.arange(100)
    last = LastValue()
    assert last.predict(feed(last, ramp), (5,)).mean[0] == 298.0
    ewma = EWMA(com=1.6)
    # steady-state lag of an EWMA on a ramp of slope b is b * com
    assert ewma.predict(feed(ewma, ramp), (5,)).mean[0] == pytest.approx(298 - 2 * 1.6, abs=1e-6)


def test_ewma_matches_pandas_formula():
    x = np.random.default_rng(0).uniform(0, 100, 30)
    a = 1 / 2.6
    w = (1 - a) ** np.arange(len(x))[::-1]
    expected = (w * x).sum() / w.sum()
    f = EWMA()
    assert f.predict(feed(f, x), (1,)).mean[0] == pytest.approx(expected)


def test_seasonal_naive_repeats_a_periodic_series():
    period = np.array([100.0, 200.0, 300.0, 400.0])
    f = SeasonalNaive(period_s=4)
    s = feed(f, np.tile(period, 10))  # last value 400, next ones 100, 200, 300, 400
    out = f.predict(s, (1, 2, 4, 8))
    assert out.mean == pytest.approx((100.0, 150.0, 250.0, 250.0))


def test_upper_quantile_covers_noise():
    rng = np.random.default_rng(0)
    f = EWMA()
    s = feed(f, rng.poisson(500, 300).astype(float))
    out = f.predict(s, (5,))
    assert out.upper[0] > out.mean[0] * 1.005
    assert out.upper[0] < out.mean[0] * 1.3


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
@pytest.mark.parametrize("name", ["last", "ewma", "seasonal", "trend"])
def test_bad_rates_raise(name, bad):
    f = make_forecaster(name)
    with pytest.raises(ForecastError, match="invalid"):
        f.update(f.init_state(), bad)


@pytest.mark.parametrize("name", ["last", "ewma", "seasonal", "trend", "learned"])
def test_no_history_raises(name):
    f = make_forecaster(name)
    with pytest.raises(ForecastError, match="no history"):
        f.predict(f.init_state(), H)


def test_bad_horizons_and_params():
    f = LastValue()
    s = feed(f, [1.0])
    with pytest.raises(ForecastError, match="horizons"):
        f.predict(s, (5, 1))
    with pytest.raises(ForecastError):
        EWMA(com=-1)
    with pytest.raises(ForecastError):
        SeasonalNaive(period_s=0)


def test_registry_names_and_module_attr():
    f = make_forecaster("lokirl.forecast.baselines:EWMA", com=3.0)
    assert f.alpha == pytest.approx(0.25)
    with pytest.raises(ForecastError, match="unknown forecaster"):
        make_forecaster("prophet")
    with pytest.raises(ForecastError, match="cannot load"):
        make_forecaster("nope.module:Thing")
