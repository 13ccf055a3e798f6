import pytest

import lokirl.experiments.hindsight_tuning as ht
from lokirl.agents.hindsight import (
    FALLBACK_CANDIDATES,
    HindsightKnobs,
    parse_spec,
    tuned_candidates,
)
from lokirl.errors import ConfigError
from lokirl.experiments.suites import load_suite
from lokirl.experiments.tuning import episodes_per_trial, write_tuned


def _stub_play(case, seed, specs, base_dir=None):
    """Knob set (0.1, 0.9) is best on average; (0.2, 1.0) wins only on seed 1."""
    rows = []
    for spec in specs:
        k = parse_spec(spec)
        r = 100.0 - 20 * abs(k.burst_s - 0.1) - 30 * abs(k.derate - 0.9)
        if (k.burst_s, k.derate) == (0.2, 1.0) and seed == 1:
            r = 105.0
        rows.append({"case": case.id, "seed": seed, "controller": spec, "reward": r})
    return rows


def test_grid_specs_parse_back_to_their_knobs():
    for k in ht.grid():
        assert parse_spec(ht.knob_spec(**k)) == HindsightKnobs(**k)
    assert len(ht.grid()) == 12


def test_greedy_pick_takes_the_best_then_what_adds_most_and_stops():
    per_pair = {
        "a": {("c", 0): 10.0, ("c", 1): 10.0},
        "b": {("c", 0): 9.0, ("c", 1): 9.0},
        "c": {("c", 0): 0.0, ("c", 1): 20.0},
    }
    chosen, score = ht.pick_candidates(per_pair, n=3)
    assert chosen == ["a", "c"]  # b adds nothing once a is in
    assert score == pytest.approx(15.0)


def test_tuning_plays_the_whole_grid_and_picks_complementary_knobs(tmp_path):
    suite = load_suite("dev")
    per = episodes_per_trial(suite)
    res = ht.tune_hindsight(suite, per * 12, play=_stub_play)
    assert res.episodes == per * 12 and len(res.trials) == 12
    cands = res.best_params["candidates"]
    assert cands[0] == {"burst_s": 0.1, "derate": 0.9}
    assert cands[1] == {"burst_s": 0.2, "derate": 1.0}  # the dev suite plays seeds 0 and 1
    assert res.best_score == pytest.approx(102.5)  # seed 0: 100, seed 1: 105
    path = write_tuned(res, tmp_path)
    got = tuned_candidates(path)
    assert got[0] == HindsightKnobs(burst_s=0.1, derate=0.9)
    assert len(got) == len(cands)


def test_tuning_refuses_test_suite_and_a_budget_below_the_grid():
    with pytest.raises(ConfigError, match="frozen"):
        ht.tune_hindsight(load_suite("test"), 10**6, play=_stub_play)
    suite = load_suite("dev")
    with pytest.raises(ConfigError, match="at least"):
        ht.tune_hindsight(suite, episodes_per_trial(suite) * 12 - 1, play=_stub_play)


def test_candidates_file_missing_or_malformed(tmp_path):
    assert tuned_candidates(tmp_path / "none.yaml") == FALLBACK_CANDIDATES
    bad = tmp_path / "hindsight.yaml"
    bad.write_text("params:\n  candidates: [{burst_s: -1}]\n")
    with pytest.raises(ConfigError, match="params.candidates"):
        tuned_candidates(bad)
    bad.write_text("params: {}\n")
    with pytest.raises(ConfigError, match="lokirl tune --controller hindsight"):
        tuned_candidates(bad)


def test_hindsight_file_is_not_a_tuned_baseline():
    from lokirl.core.controllers import make_controller
    from lokirl.experiments.tuning import tuned_names

    assert "hindsight" not in tuned_names()
    for name in tuned_names():
        assert make_controller(f"{name}-tuned").name == f"{name}-tuned"


def test_tune_hindsight_command_writes_progress_lines_off_a_terminal(monkeypatch, capsys):
    import functools

    from lokirl.cli import main

    monkeypatch.setattr(ht, "tune_hindsight", functools.partial(ht.tune_hindsight, play=_stub_play))
    per = episodes_per_trial(load_suite("dev"))
    args = ["tune", "--controller", "hindsight", "--suite", "dev"]
    assert main([*args, "--budget-episodes", str(12 * per)]) == 0
    out, err = capsys.readouterr()
    assert "best: candidates" in out
    assert f"tune hindsight: (case, seed) pairs {per}/{per} (100%)" in err
