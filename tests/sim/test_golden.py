"""A seeded short run's totals must equal the stored file.

Regenerate after an intended change of the model with::

    LOKIRL_REGEN_GOLDEN=1 pytest tests/sim/test_golden.py
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.sim import SimConfig, simulate
from lokirl.traces import resolve_trace, window

GOLDEN = Path(__file__).parent / "golden"
CASES = {"loki": "loki-2s", "inferline": "inferline", "static": "static"}


def _totals(controller: str) -> dict:
    p = load_pipeline("traffic_analysis")
    trace = window(resolve_trace("diurnal_600s"), 250, 258)
    rng = np.random.default_rng(42)
    r = simulate(p, Cluster({"gpu": 20}), trace, make_controller(controller), SimConfig(), rng)
    return json.loads(json.dumps(r.totals()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_totals(case):
    path = GOLDEN / f"traffic_diurnal_{case}.json"
    got = _totals(CASES[case])
    if os.environ.get("LOKIRL_REGEN_GOLDEN"):
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"regenerated {path.name}")
    want = json.loads(path.read_text())
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert got[key] == value, key
