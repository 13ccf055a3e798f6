"""Result assembly: effective accuracy beside accuracy, in totals and per second."""

import numpy as np
import pytest

from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.sim import SimConfig, simulate
from lokirl.traces import RateSeries


@pytest.fixture(scope="module")
def overloaded():
    # 6 workers cannot carry 300 frames/s: frames are dropped.
    p = load_pipeline("traffic_analysis")
    trace = RateSeries(np.array([60.0, 300.0, 300.0, 60.0]), 1.0, "burst")
    ctl = make_controller("static")
    return simulate(p, Cluster({"gpu": 6}), trace, ctl, SimConfig(), np.random.default_rng(3))


def test_effective_accuracy_totals(overloaded):
    r = overloaded
    f = r.frames
    assert f.dropped_total > 0
    assert r.effective_accuracy == pytest.approx(f.accuracy_sum / f.arrived)
    assert r.effective_accuracy < f.accuracy
    totals = r.totals()
    assert totals["effective_accuracy"] == pytest.approx(r.effective_accuracy)
    assert totals["frames"]["effective_accuracy"] == pytest.approx(r.effective_accuracy)


def test_effective_accuracy_series(overloaded):
    s = overloaded.series
    eff, acc = s["effective_accuracy"], s["accuracy"]
    assert eff.shape == acc.shape == s["t"].shape
    done = s["frames_done"].astype(float)
    on_time = done - s["frame_violations"]
    seen = done > 0
    assert np.isnan(eff[~seen]).all()
    want = np.nan_to_num(acc[seen]) * on_time[seen] / done[seen]
    np.testing.assert_allclose(eff[seen], want)
    # Some second lost frames: there the effective accuracy is below the accuracy.
    lossy = seen & (on_time < done) & ~np.isnan(acc)
    assert lossy.any() and (eff[lossy] < acc[lossy]).all()
