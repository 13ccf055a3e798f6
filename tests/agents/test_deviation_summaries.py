"""The features ``scripts/deviation_summaries.py`` asks the held-out rule about."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "deviation_summaries.py"
_SPEC = importlib.util.spec_from_file_location("deviation_summaries", _PATH)
ds = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ds)


def test_history_summaries_of_a_steady_and_a_rising_history():
    steady = np.r_[np.full(16, 0.5), np.zeros(4)]  # the history, then other features
    rising = np.r_[np.linspace(0.1, 0.8, 16), np.zeros(4)]
    s = ds.history_summaries(np.stack([steady, rising]), 16)
    assert s.shape == (2, len(ds.SUMMARIES))
    assert s[0].tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0, 1.0, 0.0])
    assert s[1, 0] == pytest.approx(0.8) and s[1, 5] > 0.5 and s[1, 3] > 0.3


def test_subsecond_features_tell_bursts_from_a_steady_rate_and_skip_missing_epochs():
    per = 20
    steady = np.full(5 * per, 4.0)
    burst = np.full(5 * per, 2.0)
    burst[-5:] = 40.0  # one busy quarter second in the last epoch
    young = np.full(5 * per, np.nan)
    young[-per:] = 4.0  # one epoch seen so far
    f = ds.subsecond_features(np.stack([steady, burst, young]), per)
    assert f.shape == (3, len(ds.SUBSECOND))
    assert f[0].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert f[1, 0] > 10 and f[1, 1] > 1 and f[1, 2] > 5
    assert f[2].tolist() == pytest.approx([0.0, 0.0, 1.0])  # NaN epochs are left out
