import math

import numpy as np
import pytest

from lokirl.experiments import stats


def _correlated(n_cases=8, n_seeds=10, effect=0.5, case_sd=1.0, seed_sd=0.05, rng=0):
    """Per-case effects vary a lot; seeds within a case barely differ."""
    g = np.random.default_rng(rng)
    return {
        "fam": [
            effect + g.normal(0, case_sd) + g.normal(0, seed_sd, n_seeds) for _ in range(n_cases)
        ]
    }


def test_hierarchical_interval_is_wider_than_seeds_as_samples():
    data = _correlated()
    h = stats.hierarchical_interval(data, "mean", 2000, seed=1)
    n = stats.naive_interval(data, 2000, seed=1)
    assert h.estimate == pytest.approx(n.estimate)  # equal seeds per case: same mean
    assert (h.hi - h.lo) > 2 * (n.hi - n.lo)
    assert h.cases == 8 and h.pairs == 80


def test_known_effect_is_inside_the_interval():
    hits = 0
    for r in range(20):
        data = _correlated(n_cases=12, effect=2.0, case_sd=0.5, seed_sd=0.5, rng=100 + r)
        iv = stats.hierarchical_interval(data, "mean", 1000, seed=r)
        hits += iv.lo <= 2.0 <= iv.hi
        assert iv.lo < iv.estimate < iv.hi
    assert hits >= 16  # ~95% coverage; bootstrap percentile intervals run a bit narrow


def test_clear_effect_excludes_zero_and_poi_is_one():
    rows = []
    for case in range(4):
        for seed in range(3):
            base = 10.0 * case + seed
            for c, bonus in (("a", 1.0), ("ref", 0.0)):
                rows.append(
                    {
                        "family": "f",
                        "case": f"c{case}",
                        "seed": seed,
                        "controller": c,
                        "reward": base + bonus,
                        "error": None,
                    }
                )
    out = stats.compare(rows, "reward", "ref", ["a", "ref"], 500, seed=0)
    mean = out["a"]["overall"]["mean"]
    assert mean.estimate == pytest.approx(1.0) and mean.lo == pytest.approx(1.0)
    assert mean.excludes_zero
    assert out["a"]["overall"]["poi"].estimate == 1.0
    assert "ref" not in out


def test_determinism_given_seed():
    data = {"a": _correlated(rng=3)["fam"], "b": _correlated(n_cases=3, rng=4)["fam"]}
    one = stats.hierarchical_interval(data, "iqm", 500, seed=7)
    two = stats.hierarchical_interval(data, "iqm", 500, seed=7)
    other = stats.hierarchical_interval(data, "iqm", 500, seed=8)
    assert one == two
    assert (one.lo, one.hi) != (other.lo, other.hi)


def test_iqm_matches_trimmed_mean():
    x = np.array([100.0, 1, 2, 3, 4, 5, 6, -50])
    # floor(8/4) = 2 cut from each end: 2, 3, 4, 5 remain
    assert stats.iqm(x) == pytest.approx(3.5)
    assert stats.iqm(np.array([1.0, 2.0, 9.0])) == pytest.approx(4.0)  # n < 4: the mean
    m = np.array([[1.0, 2, 3, 4], [4.0, 3, 2, 100]])
    assert np.allclose(stats.iqm(m, axis=-1), [2.5, 3.5])  # 2,3,4,100 -> 3,4


def test_resampling_is_stratified_and_handles_unequal_seeds():
    rng = np.random.default_rng(0)
    cases = [np.array([1.0]), np.array([5.0, 5.0, 5.0])]
    means = stats.resample_case_means(cases, 200, rng)
    assert means.shape == (200, 2)
    assert set(np.unique(means)) <= {1.0, 5.0}
    # A family of one case would always contribute that case, leaving seed noise only:
    # with fewer than MIN_STRATUM cases in a family, cases are resampled together.
    iv = stats.hierarchical_interval({"a": [np.array([1.0, 1.0])], "b": [np.array([3.0])]})
    assert iv.estimate == 2.0 and iv.lo == 1.0 and iv.hi == 3.0


def test_one_case_families_do_not_shrink_the_interval_to_seed_noise():
    rng = np.random.default_rng(1)
    # two cases far apart (case effects -1 and +1), many seeds of small noise each
    data = {
        "x": [-1.0 + 0.05 * rng.standard_normal(20)],
        "y": [1.0 + 0.05 * rng.standard_normal(20)],
    }
    iv = stats.hierarchical_interval(data)
    assert iv.lo < -0.5 and iv.hi > 0.5  # the case-to-case spread, not the seeds' 0.05
    # families with enough cases are still stratified: every resample keeps both families
    big = {f: [np.full(3, v + d) for d in (-0.1, 0.0, 0.1)] for f, v in (("x", -1.0), ("y", 1.0))}
    strat = stats.hierarchical_interval(big)
    assert -0.2 < strat.lo <= strat.estimate <= strat.hi < 0.2


def test_aggregate_covers_only_the_pairs_every_controller_played():
    rows = []
    for case, fam, base in (("easy", "f", 100.0), ("hard", "g", 10.0)):
        for seed in (0, 1):
            rows.append(
                {"family": fam, "case": case, "seed": seed, "controller": "ref", "reward": base}
            )
            rows.append(
                {"family": fam, "case": case, "seed": seed, "controller": "a", "reward": base - 1}
            )
    # "a" fails the hard case on seed 1: that pair leaves every controller's figure
    rows[-1] = {**rows[-1], "reward": None, "error": "solver failed"}
    agg = stats.aggregate(rows, "reward", ["a", "ref"])
    assert agg["ref"]["overall"].pairs == agg["a"]["overall"].pairs == 3
    assert agg["a"]["overall"].estimate == pytest.approx(agg["ref"]["overall"].estimate - 1)


def test_poi_direction_ties_and_failed_rows():
    rows = [
        {"family": "f", "case": "c", "seed": 0, "controller": "a", "frame_violation_ratio": 0.1},
        {"family": "f", "case": "c", "seed": 0, "controller": "r", "frame_violation_ratio": 0.2},
        {"family": "f", "case": "c", "seed": 1, "controller": "a", "frame_violation_ratio": 0.2},
        {"family": "f", "case": "c", "seed": 1, "controller": "r", "frame_violation_ratio": 0.2},
        {
            "family": "f",
            "case": "c",
            "seed": 2,
            "controller": "a",
            "frame_violation_ratio": math.nan,
            "error": "ConservationError: lost",
        },
        {"family": "f", "case": "c", "seed": 2, "controller": "r", "frame_violation_ratio": 0.9},
    ]
    imp = stats.paired(rows, "frame_violation_ratio", "a", "r", "improvement")
    # lower violations are better; a tie counts half; the failed pair is left out
    assert np.array_equal(imp["f"][0], [1.0, 0.5])
    diff = stats.paired(rows, "frame_violation_ratio", "a", "r")
    assert np.allclose(diff["f"][0], [-0.1, 0.0])


def test_aggregate_per_family_and_overall():
    rows = [
        {
            "family": fam,
            "case": f"{fam}{k}",
            "seed": s,
            "controller": "x",
            "reward": v + s,
            "error": None,
        }
        for fam, v in (("f1", 1.0), ("f2", 5.0))
        for k in range(2)
        for s in range(2)
    ]
    agg = stats.aggregate(rows, "reward", ["x"], 300, seed=0)["x"]
    assert agg["f1"].estimate == pytest.approx(1.5)
    assert agg["f2"].estimate == pytest.approx(5.5)
    assert agg["overall"].estimate == pytest.approx(3.5)
    assert agg["overall"].cases == 4 and agg["overall"].pairs == 8


def test_empty_data_gives_nan():
    iv = stats.hierarchical_interval({})
    assert math.isnan(iv.estimate) and iv.cases == 0


def test_additive_metrics_count_each_case_once_whatever_its_length():
    rows = [
        {"family": "f", "case": "short", "seed": 0, "controller": "a", "reward": 100.0,
         "solves": 12.0, "frame_violation_ratio": 0.1, "steps": 120},
        {"family": "f", "case": "long", "seed": 0, "controller": "a", "reward": 200.0,
         "solves": 24.0, "frame_violation_ratio": 0.3, "steps": 240},
    ]  # fmt: skip
    by = stats.values_by_case(rows, "a", "reward")
    assert by["f"]["short"][0] == by["f"]["long"][0] == 100.0  # per 120 epochs
    assert stats.values_by_case(rows, "a", "solves")["f"]["long"][0] == 12.0
    assert stats.values_by_case(rows, "a", "frame_violation_ratio")["f"]["long"][0] == 0.3
    assert stats.row_value({"reward": 5.0}, "reward") == 5.0  # no steps: as it is


def test_expanded_percentile_interval_covers_with_few_cases():
    # the plain percentile bootstrap covered a true mean of 0 in ~85% of draws with 5 cases
    assert stats.expanded_tail(0.95, 1) == pytest.approx(0.025)
    assert stats.expanded_tail(0.95, 5) < stats.expanded_tail(0.95, 50) < 0.025
    rng = np.random.default_rng(0)
    hits = 0
    for k in range(120):
        data = {"f": [e + 0.1 * rng.standard_normal(3) for e in rng.standard_normal(5)]}
        iv = stats.hierarchical_interval(data, n_boot=500, seed=k)
        hits += iv.lo <= 0.0 <= iv.hi
    assert hits >= 0.88 * 120


def test_pooled_training_seeds_are_one_controller_averaged_per_episode():
    """Five policies of one method count as one controller: traces stay the unit."""

    def row(ctrl, case, seed, reward, steps=120, error=None):
        return {
            "controller": ctrl,
            "case": case,
            "family": "f",
            "seed": seed,
            "reward": reward,
            "frame_violation_ratio": reward / 1000,
            "steps": steps,
            "frames": {"arrived": 1},
            "error": error,
        }

    rows = [
        row("p0", "a", 0, 10.0),
        row("p1", "a", 0, 20.0),
        row("p0", "a", 1, 12.0),
        row("p1", "a", 1, 30.0, steps=240),  # a 240-epoch episode: 15 per 120 epochs
        row("p1", "b", 0, 5.0, error="boom"),
        row("p0", "b", 0, 7.0),
        row("ref", "a", 0, 14.0),
        row("ref", "a", 1, 13.5),
        row("ref", "b", 0, 7.0),
    ]
    pooled = stats.pool_controllers(rows, ["p0", "p1"], "pool")
    got = {(r["case"], r["seed"]): (r["reward"], r["members"]) for r in pooled}
    assert got == {("a", 0): (15.0, 2), ("a", 1): (13.5, 2), ("b", 0): (7.0, 1)}
    assert all(r["controller"] == "pool" and "frames" not in r for r in pooled)
    assert pooled[0]["frame_violation_ratio"] == pytest.approx(0.015)
    diff = stats.paired(pooled + rows, "reward", "pool", "ref")
    assert sorted(np.concatenate(diff["f"]).tolist()) == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="p9"):
        stats.pool_controllers(rows, ["p0", "p9"], "pool")
