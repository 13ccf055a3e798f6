import numpy as np
import pytest

from lokirl.errors import TraceError
from lokirl.traces import ArrivalTrace, RateSeries, bundled_trace, list_bundled, resolve_trace

TWITTER = [
    "twitter_medium_normal_load",
    "twitter_zipf_exponential",
    "twitter_zipf_exponential_bursty",
    "twitter_zipf_flat_bursty",
]


def test_bundled_names():
    names = list_bundled()
    for n in TWITTER + ["diurnal_600s", "step_600s", "twitter_zipf_exponential_gpt2"]:
        assert n in names


@pytest.mark.parametrize("name", TWITTER)
def test_twitter_rate_series(name):
    s = bundled_trace(name)
    assert isinstance(s, RateSeries)
    assert 280 <= len(s) <= 300
    assert 200 < s.rates.mean() < 700 and s.rates.max() > 500


def test_generated_and_raw_bundles():
    d = bundled_trace("diurnal_600s")
    assert (
        len(d) == 600 and d.rates.min() == pytest.approx(50) and d.rates.max() == pytest.approx(425)
    )
    st = bundled_trace("step_600s")
    assert sorted(np.unique(st.rates).tolist()) == [100, 400, 800]
    raw = bundled_trace("twitter_zipf_exponential_gpt2")
    assert isinstance(raw, ArrivalTrace) and len(raw) == 2878


def test_resolve_trace_path_and_unknown(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("0,1\n1,2\n")
    assert resolve_trace(p).rates.tolist() == [1, 2]
    assert resolve_trace("step_600s").name == "step_600s"
    with pytest.raises(TraceError, match="neither a trace file nor a bundled trace"):
        resolve_trace("no_such_trace")
