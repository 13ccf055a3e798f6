import json

import pytest

from lokirl.cli import main


def test_forecast_eval_json_and_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path / "runs"))
    plot = tmp_path / "f.png"
    argv = [
        "forecast",
        "eval",
        "--trace",
        "step_600s",
        "--window",
        "100:300",
        "--rescale",
        "50:400",
    ]
    argv += ["--forecasters", "last,ewma", "--horizons", "1,5", "--json", "--plot", str(plot)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seconds"] == 200
    assert set(out["metrics"]) == {"last", "ewma"}
    assert out["metrics"]["last"]["5"]["mape"] >= 0
    assert plot.stat().st_size > 1000
    # a folder as --plot: the PNG goes into it (it was written beside it as NAME.png)
    folder = tmp_path / "plots"
    folder.mkdir()
    argv[argv.index(str(plot))] = str(folder)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["plot"] == str(folder / "forecast.png")
    assert (folder / "forecast.png").is_file() and not (tmp_path / "plots.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--rescale", "9:1"], "needs A < B"),
        (["--horizons", "5,1"], "ascending"),
        (["--forecasters", "nope"], "unknown forecaster"),
        (["--warmup", "-5"], "must be >= 0"),
    ],
)
def test_forecast_eval_user_errors(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["forecast", "eval", "--trace", "step_600s", *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--window", "0"], "--window"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--hidden", "0"], "--hidden"),
        (["train", "--n-synthetic", "-1"], "--n-synthetic"),
        (["train", "--holdout", "nope"], "not a bundled trace"),
        (["heldout", "--epochs", "0"], "--epochs"),
    ],
)
def test_forecast_training_options_are_checked_before_training(
    tmp_path, capsys, monkeypatch, argv, message
):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["forecast", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Fix:" in err
    assert not (tmp_path / "runs").exists()  # no run folder: nothing was trained


def test_forecast_eval_refuses_a_trace_without_requests(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path / "runs"))
    zero = tmp_path / "zero.csv"
    zero.write_text("time_s,qps\n" + "".join(f"{i},0\n" for i in range(200)))
    assert main(["forecast", "eval", "--trace", str(zero), "--json"]) == 2
    err = capsys.readouterr().err
    assert "no requests" in err and "Fix:" in err
    # how the file was read comes first, on stderr (stdout is kept for --json)
    assert f"forecast eval: {zero}: read as a rate file" in err and "about 0 requests" in err


def test_forecast_train_writes_progress_lines_off_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    argv = ["forecast", "train", "--epochs", "1", "--n-synthetic", "2", "--hidden", "8"]
    dest = tmp_path / "models"
    dest.mkdir()  # --out a folder: the model goes into it (copying onto it failed)
    assert main([*argv, "--window", "16", "--no-mlflow", "--out", str(dest)]) == 0
    out, err = capsys.readouterr()
    (folder,) = tmp_path.glob("forecast-train__*")
    assert (folder / "model.pt").is_file() and str(folder) in out
    assert (dest / "model.pt").read_bytes() == (folder / "model.pt").read_bytes()
    lines = [ln for ln in err.splitlines() if ln.startswith("forecast train: steps")]
    total = lines[-1].split()[3].split("/")[1]
    assert lines[-1].startswith(f"forecast train: steps {total}/{total} (100%)")
