import json
import math

import pytest

from lokirl.experiments.report import (
    budget_table,
    markdown,
    pareto_front,
    pareto_plot,
    summarize,
    tuning_front_plot,
    tuning_table,
    within_budget,
)
from lokirl.experiments.runner import METRICS, ROW_FIELDS, Results


def _results() -> Results:
    rows = []
    quality = {"good": (0.02, 90.0), "ref": (0.05, 85.0), "bad": (0.30, 60.0)}
    for k, (case, fam) in enumerate((("c1", "f1"), ("c2", "f1"), ("c3", "f2"))):
        for seed in (0, 1):
            for c, (viol, eff) in quality.items():
                row = dict.fromkeys(ROW_FIELDS)
                row.update(
                    {
                        "suite": "syn",
                        "suite_hash": "h" * 64,
                        "commit": "abc",
                        "case": case,
                        "family": fam,
                        "seed": seed,
                        "controller": c,
                        "error": None,
                    }
                )
                for m in METRICS:
                    row[m] = 1.0 + k + 0.1 * seed
                row["frame_violation_ratio"] = viol + 0.01 * seed
                row["effective_accuracy"] = eff + k
                row["reward"] = eff - 100 * viol + seed
                rows.append(row)
    rows[-1] = {**rows[-1], "error": "ConservationError: x", "reward": math.nan}
    meta = {
        "suite": "syn",
        "suite_hash": "h" * 64,
        "suite_source": "<test>",
        "commit": "abc",
        "controllers": list(quality),
        "reference": "ref",
        "cases": ["c1", "c2", "c3"],
        "families": {"c1": "f1", "c2": "f1", "c3": "f2"},
        "seeds": {"c1": [0, 1], "c2": [0, 1], "c3": [0, 1]},
        "solver": "highs",
    }
    return Results(rows=rows, meta=meta)


def test_pareto_front():
    pts = [
        {"effective_accuracy": 90.0, "frame_violation_ratio": 0.05},
        {"effective_accuracy": 80.0, "frame_violation_ratio": 0.01},
        {"effective_accuracy": 70.0, "frame_violation_ratio": 0.06},  # dominated by the first
        {"effective_accuracy": 90.0, "frame_violation_ratio": 0.05},  # tie: not dominated
        {"effective_accuracy": math.nan, "frame_violation_ratio": 0.0},
    ]
    assert pareto_front(pts) == [True, True, False, True, False]


def test_summary_markdown_and_plot(tmp_path):
    res = _results()
    s = summarize(res, n_boot=300, seed=0)
    json.dumps(s)  # JSON-ready
    assert s == summarize(res, n_boot=300, seed=0)
    assert s["runtime"]["episodes"] == 18
    assert [p["controller"] for p in s["pareto"] if p["on_front"]] == ["good"]
    good = s["paired"]["reward"]["good"]
    assert set(good) == {"overall", "f1", "f2"}
    assert good["overall"]["mean"]["estimate"] > 0 and good["overall"]["poi"]["estimate"] == 1.0
    assert good["f2"]["mean"]["cases"] == 1
    assert s["failures"] == [
        {"case": "c3", "seed": 1, "controller": "bad", "error": "ConservationError: x"}
    ]
    bad_c3 = next(e for e in s["per_case"] if e["case"] == "c3" and e["controller"] == "bad")
    assert bad_c3["seeds"] == 1 and bad_c3["failed"] == 1
    md = markdown(s)
    assert "## Paired differences vs `ref`" in md and "| good | f2 | 1 |" in md
    assert "Failed episodes" in md
    out = pareto_plot(s, tmp_path / "p.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_results_round_trip():
    res = _results()
    back = Results.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.meta == res.meta and len(back.rows) == len(res.rows)
    assert len(back.failed) == 1


@pytest.mark.parametrize("metric", ["frame_violation_ratio", "effective_accuracy"])
def test_aggregate_scopes(metric):
    s = summarize(_results(), n_boot=200, seed=1)
    for c in ("good", "ref", "bad"):
        assert set(s["aggregate"][c][metric]) == {"overall", "f1", "f2"}


def _tuned(baseline: str) -> dict:
    trials = []
    for i, (viol, eff) in enumerate(((0.01, 80.0), (0.05, 90.0), (0.03, 78.0), (0.20, 95.0))):
        trials.append(
            {
                "spec": f"{baseline}(x={i})",
                "score": eff - 100 * viol,
                "metrics": {
                    "effective_accuracy": eff,
                    "frame_violation_ratio": viol,
                    "solves": 10.0 + i,
                    "reconfigurations": 2.0,
                    "mean_active_workers": 9.5,
                },
            }
        )
    return {
        "baseline": baseline,
        "suite": "validation",
        "spec": f"{baseline}(x=1)",
        "trials": trials,
    }


def test_tuning_table_orders_by_score_and_marks_the_choice():
    table = tuning_table(_tuned("periodic"), top=3).splitlines()
    assert len(table) == 2 + 3
    # x=1 (score 85) before x=0 (79) before x=2 (75); x=3 (-5) cut by top=3.
    assert "`periodic(x=1)` (chosen)" in table[2]
    assert "periodic(x=0)" in table[3] and "periodic(x=2)" in table[4]
    assert "5.00%" in table[2] and "90.00" in table[2]


def test_tuning_front_plot_writes_a_png(tmp_path):
    out = tuning_front_plot(
        [_tuned("periodic"), _tuned("trigger")],
        tmp_path / "front.png",
        others=[{"controller": "loki", "effective_accuracy": 60.0, "frame_violation_ratio": 0.3}],
        budgets=(0.01, 0.05),
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_within_budget_takes_the_most_accurate_trial_at_or_under_the_budget():
    tuned = _tuned("fluid")
    # trials (viol, eff): x=0 (1%, 80), x=1 (5%, 90), x=2 (3%, 78), x=3 (20%, 95)
    assert within_budget(tuned, 0.05)["spec"] == "fluid(x=1)"  # at the budget counts
    assert within_budget(tuned, 0.04)["spec"] == "fluid(x=0)"  # 80 beats 78
    assert within_budget(tuned, 0.5)["spec"] == "fluid(x=3)"
    assert within_budget(tuned, 0.005) is None
    with pytest.raises(ValueError, match="budget"):
        within_budget(tuned, 5.0)


def test_budget_table_says_how_far_a_search_is_from_an_unmet_budget():
    table = budget_table([_tuned("fluid")], (0.005, 0.05)).splitlines()
    assert len(table) == 2 + 2
    assert "none (the search's lowest: 1.00%)" in table[2]
    assert "`fluid(x=1)`" in table[3] and "90.00" in table[3] and "5.00%" in table[3]
