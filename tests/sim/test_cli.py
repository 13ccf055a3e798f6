import json

import pytest

from lokirl.cli import main


@pytest.fixture(autouse=True)
def _runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)


def _quick(*extra):
    return [
        "simulate",
        "--trace",
        "step_600s",
        "--window",
        "150:154",
        "--no-mlflow",
        "--seed",
        "1",
        *extra,
    ]


def test_simulate_json_parses_and_covers_every_controller(capsys):
    rc = main(_quick("--controller", "loki", "--controller", "static", "--json", "--no-plots"))
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"loki", "static"}
    for totals in out.values():
        f = totals["frames"]
        assert (
            f["arrived"] == f["on_time"] + f["late"] + sum(f["dropped"].values()) + f["in_flight"]
        )
        assert 0 <= totals["frame_violation_ratio"] <= 1
        # Effective accuracy: frame accuracy with every violated frame counting 0.
        want = f["accuracy"] * f["on_time"] / f["arrived"]
        assert totals["effective_accuracy"] == pytest.approx(want)
        assert f["effective_accuracy"] == pytest.approx(want)
        assert totals["subrequests"]["effective_accuracy"] <= totals["subrequests"]["accuracy"]
    # step_600s at 150 s overloads 20 workers: frames are dropped, which only the
    # effective accuracy shows.
    assert any(t["frames"]["on_time"] < t["frames"]["arrived"] for t in out.values())
    assert any(t["effective_accuracy"] < t["frames"]["accuracy"] for t in out.values())


def test_simulate_table_writes_run_folder_and_plot(capsys, tmp_path):
    rc = main(_quick("--controller", "inferline"))
    assert rc == 0
    out, err = capsys.readouterr()
    assert "inferline" in out and "viol/frame" in out and "eff. acc." in out
    (folder,) = (tmp_path / "runs").glob("simulate__*")
    assert (folder / "config.yaml").is_file() and (folder / "comparison.png").stat().st_size > 0
    assert "inferline" in json.loads((folder / "totals.json").read_text())
    # Off a terminal the bar draws nothing: plain lines count the simulated seconds.
    lines = [ln for ln in err.splitlines() if ln.startswith("simulate:")]
    assert lines and lines[-1].startswith("simulate: simulated s 4/4 (100%)")


def test_simulate_accepts_an_arrival_file(capsys, tmp_path):
    path = tmp_path / "arr.txt"
    path.write_text("\n".join(f"{t},0,250" for t in range(0, 2000, 10)) + "\n")
    rc = main(["simulate", "--trace", str(path), "--controller", "static", "--json", "--no-mlflow"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["static"]["frames"]["arrived"] == 200


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--trace", "no/such/file.csv"], "neither a trace file nor a bundled trace"),
        (["--trace", "step_600s", "--controller", "nope"], "unknown controller"),
        (["--trace", "step_600s", "--window", "5:1"], "--window"),
        (["--trace", "step_600s", "--workers", "0"], "--workers"),
        (["--trace", "step_600s", "--solver-time", "soon"], "--solver-time"),
        # traffic_analysis has 3 tasks: 2 workers would serve nothing
        (["--trace", "step_600s", "--workers", "2"], "3 tasks"),
        # step_600s asks for ~300k frames: refused before simulating, with the fix
        (["--trace", "step_600s", "--max-frames", "1000"], "--rescale"),
        (["--trace", "step_600s", "--epoch", "1e-6"], "--epoch"),
        (["--trace", "step_600s", "--duration", "inf"], "--duration"),
        (["--trace", "step_600s", "--seed", "-1"], "--seed"),
        (["--trace", "step_600s", "--rescale", "lots"], "LO:HI"),
        (["--trace", "step_600s", "--max-frames", "nan"], "--max-frames"),
        (["--trace", "step_600s", "--controller", "hindsight"], "lokirl evaluate"),
        (["--trace", "step_600s", "--controller", "loki-0s"], "period_s must be positive"),
        (["--trace", "step_600s", "--controller", "loki-h0"], "headroom must be positive"),
        (["--trace", "step_600s", "--controller", "trigger-0.9-0.5-x1"], "low < high"),
        (["--trace", "step_600s", "--controller", "os:path"], "is not a controller"),
    ],
)
def test_bad_input_is_one_line_error(capsys, argv, needle):
    rc = main(["simulate", "--no-mlflow", *argv])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Fix" in err and "\n" not in err


def test_empty_trace_is_an_error(capsys, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("time_s,qps\n0,0\n1,0\n")
    rc = main(["simulate", "--trace", str(path), "--no-mlflow"])
    assert rc == 2
    assert "no requests" in capsys.readouterr().err


def test_simulate_swap_option_reaches_the_simulator(capsys, tmp_path):
    import yaml

    out = {}
    for swap in ("stop", "free"):
        argv = _quick("--controller", "loki", "--json", "--no-plots", "--swap", swap)
        assert main(argv) == 0
        out[swap] = json.loads(capsys.readouterr().out)["loki"]
    folders = sorted((tmp_path / "runs").glob("simulate__*"))
    swaps = {yaml.safe_load((f / "config.yaml").read_text())["sim"]["swap"] for f in folders}
    assert swaps == {"stop", "free"}
    # free swaps cost nothing: never more frames dropped than when workers stop to load
    assert out["free"]["reconfigurations"] > 0
    assert out["free"]["frame_violation_ratio"] <= out["stop"]["frame_violation_ratio"]
    with pytest.raises(SystemExit):
        main(_quick("--swap", "instant"))


@pytest.mark.parametrize("command", ["plan", "evaluate"])
def test_other_commands_refuse_a_cluster_smaller_than_the_pipeline(capsys, command):
    argv = [command, "--workers", "1"] + (["--demand", "100"] if command == "plan" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "3 tasks" in err and "--workers 3" in err and "\n" not in err


def test_bench_trace_refuses_a_cluster_smaller_than_the_pipeline(capsys):
    rc = main(["bench", "--trace", "step_600s", "--workers", "2", "--no-mlflow"])
    assert rc == 2
    assert "each need at least one worker" in capsys.readouterr().err


def test_duration_past_the_trace_plays_the_trace(capsys):
    """--duration longer than the trace plays the trace (it allocated per-second arrays: OOM)."""
    assert main(_quick("--controller", "static", "--json", "--no-plots")) == 0
    whole = json.loads(capsys.readouterr().out)["static"]["frames"]["arrived"]
    args = _quick("--controller", "static", "--json", "--no-plots", "--duration", "1e9")
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["static"]["frames"]["arrived"] == whole
    # ... and says so: 4 s (the --window 150:154) played, not 1e9
    assert "lasts 4 s after the transforms, less than --duration 1e+09: 4 s played" in err


def test_rescale_auto_maps_a_trace_onto_the_suites_range_for_the_cluster(capsys, tmp_path):
    """A trace nobody has seen, on a pipeline and size of the user's: --rescale auto."""
    import yaml

    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.experiments.suites import capacities

    argv = ["simulate", "--trace", "step_600s", "--pipeline", "social_media", "--workers", "33"]
    argv += ["--rescale", "auto", "--duration", "20", "--controller", "static"]
    assert main([*argv, "--json", "--no-plots", "--no-mlflow"]) == 0
    totals = json.loads(capsys.readouterr().out)["static"]
    (folder,) = (tmp_path / "runs").glob("simulate__*")
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    lo, hi = map(float, cfg["rescale"].split(":"))
    assert cfg["rescale_auto_unit"] == "max"
    pipe = load_pipeline("social_media")
    caps = capacities(pipe, Cluster.homogeneous(pipe, 33))
    # social_media's most accurate variants cannot meet the SLO: its unit is the capacity
    # at any accuracy, of which the suites play 0.05..0.4
    assert not caps["full_accuracy_ok"]
    assert (lo, hi) == pytest.approx((0.05 * caps["max"], 0.4 * caps["max"]), rel=1e-5)
    # 20 s of a trace mapped into lo..hi: between lo and hi frames a second arrived
    assert 20 * lo <= totals["frames"]["arrived"] <= 20 * hi


def test_a_trace_file_is_described_and_a_late_first_request_is_not_a_silent_run(capsys, tmp_path):
    """Arrivals cut from a longer log start late: 20 s played hold no request."""
    p = tmp_path / "late.txt"
    p.write_text("".join(f"{1_000_000 + 50 * i}\n" for i in range(400)))
    argv = ["simulate", "--trace", str(p), "--duration", "20", "--controller", "static"]
    argv += ["--json", "--no-plots", "--no-mlflow"]
    # before: a "successful" run of 0 frames (a pro-rata share of the file's requests)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"simulate: {p}: read as an arrival file" in err
    assert "400 requests in 19.95 s (from 1,000 s to 1,019.95 s)" in err
    assert "no request before 1,000 s, which play as silence" in err
    assert "(0 expected in the 20 s played)" in err
    assert "its first request arrives at 1,000 s: start there with --window 1000:1020" in err
    assert main([*argv, "--window", "1000:1020"]) == 0
    frames = json.loads(capsys.readouterr().out)["static"]["frames"]
    assert frames["arrived"] == 400


def test_a_trace_without_requests_is_not_rescaled_into_a_flat_load(capsys, tmp_path):
    p = tmp_path / "zero.csv"
    p.write_text("time_s,qps\n" + "".join(f"{i},0\n" for i in range(30)))
    argv = ["simulate", "--trace", str(p), "--rescale", "10:20", "--controller", "static"]
    assert main([*argv, "--no-plots", "--no-mlflow"]) == 2
    assert "no requests, so there is no shape to map onto 10..20" in capsys.readouterr().err


def test_evaluate_names_a_late_first_request_and_the_window_that_reaches_it(capsys, tmp_path):
    p = tmp_path / "late.txt"
    p.write_text("".join(f"{1_000_000 + 50 * i}\n" for i in range(400)))
    argv = ["evaluate", "--traces", str(p), "--controllers", "static", "--duration", "20"]
    assert main([*argv, "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert f"evaluate: {p}: read as an arrival file" in err
    assert "no requests in the seconds played" in err
    assert "start there with --window 1000:1020" in err


def test_a_trace_spanning_months_is_refused_before_stepping_through_it(  # the engine's limit
    capsys, tmp_path
):
    # 3,000 requests in the first 300 s and one 58 days later: 5e6 epochs, mostly silent
    p = tmp_path / "long.txt"
    p.write_text("".join(f"{100 * i}\n" for i in range(3000)) + "5000000000\n")
    argv = ["simulate", "--trace", str(p), "--controller", "static", "--no-mlflow"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the simulated span is 5e+06 s (57.9 days), more than the limit" in err
    assert "--window" in err
    assert main([*argv, "--duration", "300", "--json", "--no-plots"]) == 0
    assert json.loads(capsys.readouterr().out)["static"]["frames"]["arrived"] == 3000


@pytest.mark.parametrize("duration", ["0", "nan", "inf", "-5"])
def test_evaluate_refuses_a_duration_that_is_not_a_positive_number(capsys, duration):
    # 0, nan and inf played the whole trace (600 s here); -5 failed as an empty window
    assert main(["evaluate", "--traces", "step_600s", "--duration", duration]) == 2
    assert "--duration" in capsys.readouterr().err
