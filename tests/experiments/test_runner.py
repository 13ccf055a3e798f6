import math

import pytest

from lokirl.errors import ConfigError
from lokirl.experiments.runner import ROW_FIELDS, make_env, play_case_seed, run_suite
from lokirl.experiments.suites import parse_suite

MIXED = {
    "name": "mixed",
    "seeds": [3],
    "controllers": ["trigger"],
    "cases": [
        {
            "id": "hetero",
            "family": "f",
            "pipeline": "detect_classify_hetero",
            "cluster": {"pascal": 2, "ampere": 1, "cpu": 1},
            "traffic": {"generator": "step", "seed": 1},
            "duration_s": 8,
        }
    ],
}


def test_mixed_cluster_env_and_deterministic_solves():
    case = parse_suite(MIXED).spec.cases[0]
    env = make_env(case)
    assert dict(env.cluster.workers) == {"ampere": 1, "cpu": 1, "pascal": 2}
    assert env.features.workers == 4
    assert env.alloc.deterministic and env.alloc.threads == 1
    assert env.config.solver_time == "model"


def test_run_suite_rows_and_meta():
    suite = parse_suite(MIXED)
    seen = []
    res = run_suite(suite, on_episode=seen.append, commit="abc")
    (row,) = res.rows
    assert seen == res.rows
    assert set(row) == set(ROW_FIELDS)
    assert row["error"] is None, row["error"]
    assert row["commit"] == "abc" and row["suite_hash"] == suite.hash
    assert row["workers"] == 4 and row["family"] == "f" and row["seed"] == 3
    assert row["steps"] == 8 and 0 <= row["frame_violation_ratio"] <= 1
    f = row["frames"]  # every frame accounted for, in the row itself
    assert (
        f["arrived"] > 0
        and f["arrived"] == f["on_time"] + f["late"] + f["dropped"] + f["in_flight"]
    )
    assert res.meta["reference"] == "trigger" and res.meta["deterministic"]


def test_a_failed_episode_is_recorded_not_fatal(monkeypatch):
    import lokirl.agents.rollout as rollout_module

    def boom(*args, **kwargs):
        raise RuntimeError("lost a request")

    monkeypatch.setattr(rollout_module, "rollout", boom)
    case = parse_suite(MIXED).spec.cases[0]
    (row,) = play_case_seed(case, 0, ["trigger"])
    assert row["error"] == "RuntimeError: lost a request"
    assert math.isnan(row["reward"])


def test_unknown_controller_and_reference_fail_before_work():
    suite = parse_suite(MIXED)
    with pytest.raises(Exception, match="nope"):
        run_suite(suite, controllers=["trigger", "nope"])
    with pytest.raises(ConfigError):
        run_suite(suite, controllers=["trigger"], reference="loki")
    with pytest.raises(ConfigError):
        run_suite(suite, controllers=["trigger", "trigger"])


def test_a_policy_that_does_not_fit_a_case_is_refused_before_work(monkeypatch):
    import lokirl.experiments.runner as runner
    from lokirl.experiments.suites import load_suite, select_cases

    played = []
    monkeypatch.setattr(runner, "_task", lambda t: played.append(t) or [])
    # The first round's policy is built for traffic_analysis on exactly 20 workers.
    with pytest.raises(ConfigError, match="--cases ta20-bursts,ta20-mmpp,ta20-walk"):
        run_suite(load_suite("validation"), controllers=["trigger", "ppo-v1"])
    with pytest.raises(ConfigError, match="fits no case"):
        run_suite(load_suite("dev"), controllers=["ppo-v1"])
    assert not played
    # On the cases it fits it is accepted (nothing played here: _task is stubbed).
    run_suite(select_cases(load_suite("validation"), ["ta20-*"]), controllers=["ppo-v1"])
    assert len(played) == 3 * 3
    # The shipped controller (one policy per pipeline, 10-100 workers) fits every case.
    run_suite(load_suite("validation"), controllers=["ppo"])
    assert len(played) == 3 * 3 + 16 * 3


def test_a_load_unit_the_cluster_cannot_give_is_refused_before_work(monkeypatch):
    import lokirl.experiments.runner as runner

    played = []
    monkeypatch.setattr(runner, "_task", lambda t: played.append(t) or [])
    case = {
        "id": "sm15",
        "family": "f",
        "pipeline": "social_media",
        "cluster": {"workers": 15},
        "traffic": {"generator": "step", "seed": 1},
        "duration_s": 8,
    }
    raw = {"name": "sm", "seeds": [0], "controllers": ["trigger"], "cases": [case]}
    # social_media's most accurate variants cannot meet its SLO: no full-accuracy unit
    with pytest.raises(ConfigError) as err:
        run_suite(parse_suite(raw, source="sm.yaml"), controllers=["trigger"])
    assert err.value.field == "load_unit" and "sm.yaml: case sm15" in err.value.source
    assert "load_unit: max" in err.value.fix and not played
    run_suite(parse_suite({**raw, "defaults": {"load_unit": "max"}}), controllers=["trigger"])
    assert len(played) == 1


def test_a_config_error_raised_in_a_worker_process_reaches_the_parent_whole():
    import pickle

    exc = ConfigError("suite.yaml", "cases[0].load_unit", "no capacity", "set load_unit: max")
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, ConfigError) and str(back) == str(exc)
    assert (back.source, back.field, back.problem, back.fix) == (
        "suite.yaml",
        "cases[0].load_unit",
        "no capacity",
        "set load_unit: max",
    )
