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


def _copy(k, values, solves=None, jitter=4.0):
    """A run of copy ``k``: ``values[(controller, case, seed)] = reward``."""
    from lokirl.experiments.runner import Results

    rows = [
        {
            "controller": c,
            "case": case,
            "family": "f",
            "seed": seed,
            "reward": v,
            "frame_violation_ratio": v / 1000,
            "solves": (solves or {}).get((c, case, seed), 5.0),
            "steps": 120,
            "error": None,
        }
        for (c, case, seed), v in values.items()
    ]
    meta = {
        "arrival_timing": {"jitter_ms": jitter, "copy": k},
        "controllers": ["a", "b"],
        "suite_hash": "h",
        "commit": "c",
    }
    return Results(rows, meta)


def test_copy_spread_separates_the_spread_over_copies_from_that_over_seeds():
    from lokirl.experiments.timing import copy_spread, pooled_copies

    # a: the copies agree, the seeds differ by 10; b: each copy moves every episode by k
    base = {(c, case, s): 100.0 + 10 * s for c in "ab" for case in ("x", "y") for s in (0, 1)}
    runs = []
    for k in range(3):
        vals = {key: v + (k if key[0] == "b" else 0) for key, v in base.items()}
        flips = {("b", "x", 0): 5.0 + k}  # one of b's episodes re-solves once more per copy
        runs.append(_copy(k, vals, flips))
    a, b = copy_spread(runs, "reward")
    assert (a.controller, a.episodes, a.within, a.flipped) == ("a", 4, 0.0, 0.0)
    assert a.between == pytest.approx(np.std([100, 110], ddof=1))
    assert b.within == pytest.approx(1.0) and b.flipped == pytest.approx(0.25)
    assert b.ratio == pytest.approx(1.0 / np.std([100, 110], ddof=1))
    pooled = {(r["controller"], r["case"], r["seed"]): r["reward"] for r in pooled_copies(runs)}
    assert pooled[("b", "y", 1)] == pytest.approx(111.0) and pooled[("a", "y", 1)] == 110.0


def test_copy_spread_refuses_runs_that_are_not_copies_of_one_command():
    from lokirl.experiments.timing import copy_spread

    vals = {("a", "x", 0): 1.0}
    with pytest.raises(ConfigError, match="distinct copies"):
        copy_spread([_copy(1, vals), _copy(1, vals)], "reward")
    with pytest.raises(ConfigError, match="distinct copies"):
        copy_spread([_copy(0, vals), _copy(1, vals, jitter=2.0)], "reward")
    plain = _copy(1, vals)
    plain.meta["arrival_timing"] = None
    with pytest.raises(ConfigError, match="--arrival-jitter"):
        copy_spread([_copy(0, vals), plain], "reward")
    other = _copy(1, vals)
    other.meta["commit"] = "d"
    with pytest.raises(ConfigError, match="differ in commit"):
        copy_spread([_copy(0, vals), other], "reward")


def test_the_script_prints_the_spreads_and_the_interval_per_copy(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "timing_spread.py"
    spec = importlib.util.spec_from_file_location("timing_spread", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folders = []
    for k in range(3):
        # a leads b by 2 in every case; one more in copy 2
        vals = {
            (c, case, s): 100.0 + s + (2.0 + (k == 2) if c == "a" else 0.0)
            for c in "ab"
            for case in ("x", "y", "z")
            for s in (0, 1)
        }
        run = _copy(k, vals)
        run.meta.update(suite="validation", cases=["x", "y", "z"])
        folder = tmp_path / f"c{k}"
        folder.mkdir()
        (folder / "per_episode.json").write_text(json.dumps(run.to_dict()))
        folders.append(str(folder))
    args = [*reversed(folders), "--controller", "a", "--reference", "b", "--bootstrap", "200"]
    assert script.main(args) == 0
    out = capsys.readouterr().out
    assert "3 copies (up to 4 ms later)" in out
    assert "- copy 0: +2.00 [+2.00, +2.00] (3 cases)" in out
    assert "- copy 2: +3.00" in out and "- mean over the copies: +2.33" in out
