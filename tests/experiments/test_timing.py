import numpy as np
import pytest

from lokirl.errors import ConfigError
from lokirl.experiments.runner import play_case_seed
from lokirl.experiments.suites import parse_suite
from lokirl.experiments.timing import ArrivalTiming, drawn_arrivals, timed_arrivals
from lokirl.traces.types import RateSeries

SERIES = RateSeries(np.array([50.0, 200.0, 0.0, 120.0]), bin_s=1.0, name="s")


def test_copies_delay_the_same_arrivals_within_the_jitter():
    base = drawn_arrivals(SERIES, 7)
    assert len(base) > 300 and base.duration_s == SERIES.duration_s
    undelayed = timed_arrivals(SERIES, 7, ArrivalTiming(4.0, copy=0))
    np.testing.assert_array_equal(undelayed.arrivals_s, base.arrivals_s)
    one = timed_arrivals(SERIES, 7, ArrivalTiming(4.0, copy=1))
    two = timed_arrivals(SERIES, 7, ArrivalTiming(4.0, copy=2))
    again = timed_arrivals(SERIES, 7, ArrivalTiming(4.0, copy=1))
    np.testing.assert_array_equal(one.arrivals_s, again.arrivals_s)  # a copy is reproducible
    assert not np.array_equal(one.arrivals_s, two.arrivals_s)
    for copy in (one, two):
        assert len(copy) == len(base) and copy.duration_s == base.duration_s
        assert copy.arrivals_s.max() < copy.duration_s
        # sorted delays of at most 4 ms: the k-th arrival moves by less than 4 ms
        shift = copy.arrivals_s - base.arrivals_s
        assert np.all(shift > -0.004) and np.all(shift < 0.004) and shift.mean() > 0.001
    # the arrivals themselves are the seed's: another seed draws others
    assert not np.array_equal(drawn_arrivals(SERIES, 8).arrivals_s[:50], base.arrivals_s[:50])


@pytest.mark.parametrize(
    ("jitter", "copy", "named"),
    [
        (-1.0, 1, "--arrival-jitter"),
        (float("nan"), 1, "--arrival-jitter"),
        (4.0, -1, "--jitter-copy"),
    ],
)
def test_bad_timings_are_refused_naming_the_option(jitter, copy, named):
    with pytest.raises(ConfigError, match=named):
        ArrivalTiming(jitter, copy)


CASE = {
    "name": "timing",
    "seeds": [1],
    "controllers": ["trigger"],
    "cases": [
        {
            "id": "ta10",
            "family": "f",
            "pipeline": "traffic_analysis",
            "cluster": {"workers": 10},
            "traffic": {"generator": "bursts", "seed": 3},
            "duration_s": 10,
        }
    ],
}


def test_a_case_plays_the_same_frames_in_every_copy():
    case = parse_suite(CASE).spec.cases[0]

    def play(timing):
        (row,) = play_case_seed(case, 1, ["trigger"], timing=timing)
        assert row["error"] is None, row["error"]
        return row

    drawn = play(None)
    copies = [play(ArrivalTiming(4.0, k)) for k in (0, 1, 2)]
    arrived = {r["frames"]["arrived"] for r in copies}
    assert len(arrived) == 1  # the same frames, whatever their delays
    f = copies[1]["frames"]
    assert f["arrived"] == f["on_time"] + f["late"] + f["dropped"] + f["in_flight"]
    assert play(ArrivalTiming(4.0, 1))["frames"] == f  # deterministic per copy
    # the pre-drawn arrivals are another draw than the simulator's own
    assert drawn["frames"]["arrived"] != copies[0]["frames"]["arrived"]
