import pytest

from lokirl.cli import join_negative_values, main


def test_a_negative_value_is_joined_to_its_option():
    argv = ["bench", "--load", "-1:2", "--seeds", "-1e3", "--json", "--window", "-inf:3"]
    assert join_negative_values(argv) == [
        "bench",
        "--load=-1:2",
        "--seeds=-1e3",
        "--json",
        "--window=-inf:3",
    ]
    # an option's own value, an option after an option, and everything after "--" stay
    same = ["simulate", "--trace", "a.csv", "--json", "--no-plots", "--", "--x", "-1:2"]
    assert join_negative_values(same) == same
    assert join_negative_values(["--x=-1:2", "-h"]) == ["--x=-1:2", "-h"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--trace", "step_600s", "--load", "-1:2"], "--load: -1:2: need 0 <= A <= B"),
        (["simulate", "--rescale", "-5:10", "--no-mlflow"], "--rescale: -5:10: need 0 <= A"),
    ],
)
def test_a_negative_range_reaches_the_options_own_check(capsys, argv, message):
    # argparse alone answers "expected one argument" for -1:2
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--suite", "dev", "--stats-seed", "-1"],
        ["tune", "--seed", "-1"],
        ["forecast", "train", "--seed", "-1"],
        ["loadgen", "--trace", "step_600s", "--seed", "-1"],
        ["simvslive", "--seed", "-1"],
    ],
)
def test_a_negative_seed_is_refused_before_any_work(capsys, argv):
    # numpy refuses negative seeds: bench crashed after playing every episode
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "-1 must be >= 0. Fix: pass e.g. 0" in capsys.readouterr().err


def test_a_list_of_seeds_refuses_a_negative_one():
    from lokirl.commands.options import parse_seeds
    from lokirl.errors import ConfigError

    assert parse_seeds("0,2") == [0, 2]
    with pytest.raises(ConfigError, match="seeds must be >= 0"):
        parse_seeds("0,-1")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2"], "--workers: 2: pipeline 'traffic_analysis' has 3 tasks"),
        (["--workers", "0"], "Fix: pass --workers 3 or more"),
        (["--out", "FILE"], "is a file. Fix: name a folder"),
    ],
)
def test_reproduce_checks_its_options_before_any_run(capsys, tmp_path, extra, message):
    if "FILE" in extra:
        (tmp_path / "f").write_text("")
        extra = [str(tmp_path / "f") if x == "FILE" else x for x in extra]
    assert main(["reproduce", "--quick", *extra]) == 2  # a traceback after work began
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epoch", "0"], "--epoch: 0.0: must be at least 0.01 s"),
        (["--solver-time", "-1"], "--solver-time: -1: not 'model', 'measured' nor a number"),
        (["--controller", "nope"], "unknown controller 'nope'"),
        (["--seed", "1", "--seeds", "0,1"], "--seed/--seeds: 1 / 0,1: give one of them"),
        (["--size", "0"], "--size: 0: must be 1..8192 pixels"),
        (["--max-in-flight", "0"], "--max-in-flight: 0: must be at least 1"),
    ],
)
def test_simvslive_checks_its_options_before_ray_starts(capsys, monkeypatch, extra, message):
    import lokirl.experiments.simvslive as svl

    def no_ray(*args, **kwargs):
        raise AssertionError("the runs started")

    monkeypatch.setattr(svl, "run_seeds", no_ray)  # an error after it was a traceback
    assert main(["simvslive", *extra]) == 2
    assert message in capsys.readouterr().err


def test_loadgen_names_the_bound_that_is_wrong(capsys):
    args = ["loadgen", "--trace", "step_600s", "--url", "http://127.0.0.1:9", "--no-mlflow"]
    assert main([*args, "--max-requests", "0"]) == 2
    assert "--max-requests: 0: must be at least 1" in capsys.readouterr().err
    assert main([*args, "--duration", "0"]) == 2
    assert "--duration: 0.0: must be a number of seconds > 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--initial-demand", "-5"], "--initial-demand: -5: must be a number"),
        (["serve", "--num-cpus", "0"], "--num-cpus: 0: must be at least 1"),
        (["simvslive", "--num-cpus", "0"], "--num-cpus: 0: must be at least 1"),
        (["plan", "--cluster", "gpu=4,gpu=5", "--demand", "10"], "type 'gpu' given twice"),
    ],
)
def test_values_that_were_silently_taken_are_refused(capsys, argv, message):
    # serve started Ray on a negative demand; 0 CPUs meant all of them; the last count won
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--controller", "loki", "--controller", "loki", "--no-mlflow"],
        ["evaluate", "--controllers", "loki,trigger,loki", "--no-mlflow"],
    ],
)
def test_a_controller_listed_twice_is_refused(capsys, argv):
    assert main(argv) == 2  # it was played twice: two identical rows
    assert "loki: listed more than once" in capsys.readouterr().err


def test_a_cluster_too_small_for_the_pipeline_names_its_type(capsys):
    assert main(["plan", "--cluster", "gpu=2", "--demand", "10"]) == 2
    assert "Fix: pass --cluster gpu=3 (in all) or more" in capsys.readouterr().err


def test_an_error_from_the_command_itself_names_it_once(capsys):
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lokirl bench: error: --suite/--trace/--from: give exactly one")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--ingress-replicas", "0"], "--ingress-replicas: 0: must be at least 1"),
        (["train", "--jobs", "0"], "--jobs: 0: must be at least 1"),
    ],
)
def test_counts_below_one_are_refused(capsys, argv, message):
    assert main(argv) == 2  # "ports 8000..7999 must exist"; --jobs 0 was taken as 1
    assert message in capsys.readouterr().err
