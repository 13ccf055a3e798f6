import numpy as np
import pytest

from lokirl.errors import TraceError
from lokirl.traces import FAMILIES, generate


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_is_deterministic_per_seed(family):
    a = generate(family, 400, np.random.default_rng(7))
    b = generate(family, 400, np.random.default_rng(7))
    assert len(a) == 400 and a.bin_s == 1.0
    np.testing.assert_array_equal(a.rates, b.rates)
    assert np.all(a.rates >= 0)


@pytest.mark.parametrize("family", ["bursts", "mmpp", "mixture", "random_walk"])
def test_random_families_differ_across_seeds(family):
    a = generate(family, 400, np.random.default_rng(1))
    b = generate(family, 400, np.random.default_rng(2))
    assert not np.array_equal(a.rates, b.rates)


def test_diurnal_shape():
    s = generate("diurnal", 600, np.random.default_rng(0), lo=50, hi=425)
    assert s.rates[0] == pytest.approx(50)
    assert s.rates[300] == pytest.approx(425)
    assert s.rates.max() == pytest.approx(425)


def test_step_levels():
    s = generate("step", 600, np.random.default_rng(0))
    assert s.rates[0] == 100 and s.rates[200] == 400 and s.rates[400] == 800 and s.rates[599] == 100


def test_ramp_and_mmpp_levels():
    r = generate("ramp", 11, np.random.default_rng(0), start=0, end=100)
    assert r.rates.tolist() == pytest.approx(list(range(0, 101, 10)))
    m = generate("mmpp", 500, np.random.default_rng(0), low=100, high=900, noise=0)
    assert set(np.unique(m.rates).tolist()) == {100.0, 900.0}


def test_unknown_family_and_param():
    with pytest.raises(TraceError, match="unknown trace family"):
        generate("sawtooth", 10, np.random.default_rng(0))
    with pytest.raises(TraceError, match="diurnal"):
        generate("diurnal", 10, np.random.default_rng(0), amplitude=3)
