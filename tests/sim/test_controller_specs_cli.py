"""``lokirl simulate --controller SPEC``: what a user sees for each kind of bad spec."""

from __future__ import annotations

import json

import pytest

from lokirl.cli import main


@pytest.fixture(autouse=True)
def _runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)


def _simulate(spec: str, *extra: str) -> list[str]:
    return [
        "simulate",
        "--trace",
        "step_600s",
        "--window",
        "150:154",
        "--no-mlflow",
        "--no-plots",
        "--seed",
        "1",
        "--controller",
        spec,
        *extra,
    ]


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("nosuch", ["unknown controller 'nosuch'", "loki-<N>s-churn"]),
        ("lokii", ["did you mean 'loki'?"]),
        ("trigger(", ["unbalanced parenthesis", "write trigger(key=value,...)"]),
        ("fluid(horizon=nan)", ["horizon must be a finite whole number >= 1, got nan"]),
        ("fluid(horizon=-1)", ["fluid(horizon=-1): fluid: horizon must be"]),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_problem_and_the_fix(capsys, spec, needles):
    assert main(_simulate(spec)) == 2
    err = capsys.readouterr().err.strip()
    assert all(n in err for n in needles), err
    assert "Fix: " in err and "\n" not in err
    assert "\\d" not in err and "fluid: fluid:" not in err and "check the values" not in err


def test_bare_fluid_simulates_with_its_defaults(capsys):
    assert main(_simulate("fluid", "--json")) == 0
    totals = json.loads(capsys.readouterr().out)
    assert list(totals) == ["fluid"] and totals["fluid"]["frames"]["arrived"] > 0


def test_the_oracle_is_built_from_the_trace_simulate_plays(capsys):
    # it was refused (an unknown name, then "only evaluate and bench"): simulate holds
    # the whole trace before the run, as they do
    assert main(_simulate("oracle", "--controller", "static", "--json")) == 0
    totals = json.loads(capsys.readouterr().out)
    assert set(totals) == {"oracle", "static"}
    assert totals["oracle"]["frames"]["arrived"] == totals["static"]["frames"]["arrived"] > 0
    assert totals["oracle"]["solves"] > 0
