"""Effective capacity on a demand grid (``scripts/effective_capacity.py``'s experiment)."""

from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.experiments.capacity import best_demands, capacity_rows


def test_best_demand_is_the_largest_passing_one_per_level():
    rows = [
        {"controller": "a", "demand": 100.0, "sub": 0.0, "frame": 0.02},
        {"controller": "a", "demand": 200.0, "sub": 0.005, "frame": 0.0},
        {"controller": "a", "demand": 300.0, "sub": 0.5, "frame": 0.5},
    ]
    best = best_demands(rows, 0.01, ["b", "a"])
    assert list(best) == ["b", "a"]
    assert best["a"] == {"sub": 200.0, "frame": 200.0}
    assert best["b"] == {"sub": 0.0, "frame": 0.0}


def test_rows_take_the_worst_seed():
    p = load_pipeline("traffic_analysis")
    rows = list(capacity_rows(p, Cluster.homogeneous(p, 20), ["static"], [50.0], [0, 1], 2.0))
    (row,) = rows
    assert row["controller"] == "static" and row["demand"] == 50.0
    assert 0.0 <= row["sub"] <= 1.0 and 0.0 <= row["frame"] <= 1.0 and row["accuracy"] > 0
