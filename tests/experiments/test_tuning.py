import pytest
import yaml

import lokirl.experiments.tuning as tuning
from lokirl.core.controllers import make_controller
from lokirl.errors import ConfigError
from lokirl.experiments.suites import load_suite


def _stub_play(case, seed, specs, base_dir=None):
    """A reward peaked at headroom 1.3 and period 5 s, independent of the simulator."""
    c = make_controller(specs[0])
    reward = 100.0 - 50 * abs(c.headroom - 1.3) - abs(c.period_s - 5.0) + 0.1 * seed
    return [{"case": case.id, "seed": seed, "controller": specs[0], "reward": reward}]


def test_tuning_finds_the_peak_within_budget_and_is_deterministic():
    suite = load_suite("dev")
    per = tuning.episodes_per_trial(suite)
    runs = [tuning.tune("periodic", suite, per * 40, seed=0, play=_stub_play) for _ in range(2)]
    assert runs[0].best_spec == runs[1].best_spec
    # the whole budget is played: a setting the sampler repeats costs no episodes and
    # does not count as a trial
    assert runs[0].episodes == per * 40 and len({t["spec"] for t in runs[0].trials}) == 40
    best = make_controller(runs[0].best_spec)
    assert best.headroom == 1.3 and best.period_s == 5.0
    assert [t["spec"] for t in runs[0].trials] == [t["spec"] for t in runs[1].trials]


def test_tuning_refuses_the_frozen_suite_and_tiny_budgets():
    with pytest.raises(ConfigError, match="frozen"):
        tuning.tune("trigger", load_suite("test"), 10_000, play=_stub_play)
    with pytest.raises(ConfigError, match="budget"):
        tuning.tune("trigger", load_suite("dev"), 1, play=_stub_play)
    with pytest.raises(ConfigError, match="search space"):
        tuning.tune("oracle", load_suite("dev"), 100, play=_stub_play)


def test_written_setting_becomes_the_tuned_controller(tmp_path, monkeypatch):
    suite = load_suite("dev")
    res = tuning.tune("periodic", suite, tuning.episodes_per_trial(suite) * 3, play=_stub_play)
    monkeypatch.setattr(tuning, "TUNED_DIR", tmp_path)
    path = tuning.write_tuned(res)
    assert path.parent == tmp_path and "lokirl tune" in path.read_text()
    c = make_controller("periodic-tuned")
    assert c.name == "periodic-tuned"
    assert make_controller(res.best_spec).headroom == c.headroom


def test_a_grid_smaller_than_the_budget_is_played_once_whole(monkeypatch):
    suite = load_suite("dev")
    per = tuning.episodes_per_trial(suite)
    small = {
        "period_s": (1.0, 5.0),
        "headroom": (1.3,),
        "churn_weight": (0.0,),
        "warm_start": (True,),
    }
    monkeypatch.setitem(tuning.SPACES, "periodic", small)
    res = tuning.tune("periodic", suite, per * 10, play=_stub_play)
    assert len(res.trials) == 2 and res.episodes == per * 2


def test_untuned_baseline_says_how_to_tune_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "TUNED_DIR", tmp_path)
    with pytest.raises(ConfigError, match="lokirl tune"):
        make_controller("trigger-tuned")


def test_one_real_trial_on_dev():
    suite = load_suite("dev")
    res = tuning.tune("trigger", suite, tuning.episodes_per_trial(suite))
    assert len(res.trials) == 1 and res.episodes == tuning.episodes_per_trial(suite)
    assert make_controller(res.best_spec).name == res.best_spec
    assert res.best_score > -1e8  # every episode played


def test_retune_from_the_committed_setting_plays_it_first(tmp_path, monkeypatch):
    suite = load_suite("dev")
    per = tuning.episodes_per_trial(suite)
    start = {"period_s": 30.0, "headroom": 2.0, "churn_weight": 4.0, "warm_start": True}
    res = tuning.tune("periodic", suite, per * 3, play=_stub_play, start_from=start)
    # a knob that joined the grid later (com) plays at the value it had before
    assert res.trials[0]["params"] == start | {"com": 1.6}
    assert len(res.trials) == 3  # the start counts in the budget
    with pytest.raises(ConfigError, match="grid"):
        tuning.tune("periodic", suite, per, play=_stub_play, start_from=start | {"headroom": 9.9})
    monkeypatch.setattr(tuning, "TUNED_DIR", tmp_path)
    tuning.write_tuned(res)
    assert tuning.committed_params("periodic") == res.best_params
    # a setting written before com joined the grid is read as com = 1.6 (its default)
    old = yaml.safe_load((tmp_path / "periodic.yaml").read_text())
    old["params"].pop("com")
    (tmp_path / "periodic.yaml").write_text(yaml.safe_dump(old))
    assert tuning.committed_params("periodic")["com"] == 1.6


def test_a_sensitivity_search_plays_with_the_fixed_solve_time(capsys):
    from lokirl.cli import main

    seen = []

    def play(case, seed, specs, base_dir=None, solver="highs", max_nodes=None, st="model"):
        seen.append(st)
        return _stub_play(case, seed, specs, base_dir)

    suite = load_suite("dev")
    per = tuning.episodes_per_trial(suite)
    tuning.tune("periodic", suite, per, play=play, solver_time=0.02)
    assert seen == [0.02] * per
    with pytest.raises(ConfigError, match="epoch"):
        tuning.tune("periodic", suite, per, play=play, solver_time=1.0)
    # Never committed: the committed settings are tuned under the modelled solve time.
    args = ["tune", "--controller", "periodic", "--suite", "dev", "--budget-episodes", "1"]
    assert main([*args, "--solver-time", "0.02", "--write"]) == 2
    assert "--solver-time" in capsys.readouterr().err
    assert (
        main(["tune", "--controller", "hindsight", "--budget-episodes", "1", "--solver-time", "0"])
        == 2
    )


def test_a_first_search_can_start_from_the_controllers_defaults(capsys):
    from lokirl.cli import main

    start = tuning.default_params("fluid")
    assert start == {"horizon": 5, "burst_s": 0.05, "derate": 1.0, "headroom": 1.3}
    tuning.check_in_space("fluid", start, "--from-defaults")
    # the periodic MILP's default churn weight (the allocator's) is not a grid point
    with pytest.raises(ConfigError, match="--from-defaults.*churn_weight"):
        tuning.check_in_space("periodic", tuning.default_params("periodic"), "--from-defaults")
    base = ["tune", "--suite", "dev", "--budget-episodes", "1", "--from-defaults"]
    assert main([*base, "--controller", "hindsight"]) == 2
    assert main([*base, "--controller", "fluid", "--from-committed"]) == 2
    err = capsys.readouterr().err
    assert "whole grid" in err and "only one setting" in err
    assert make_controller("fluid(horizon=2,headroom=1.6)").headroom == 1.6
