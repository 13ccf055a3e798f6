import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import lokirl.tracking.mlflow_helper as mr
from lokirl.tracking import log_scalars, mlflow_run, run_dir, tb_writer, write_config


def test_run_dir_name_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path / "r"))
    d = run_dir("forecast-train", "my trace/1")
    assert d.is_dir() and d.parent == tmp_path / "r"
    assert re.fullmatch(r"forecast-train__my-trace-1__\d{8}-\d{6}", d.name)
    d2 = run_dir("forecast-train", "my trace/1")
    assert d2 != d and d2.is_dir()


@dataclass(frozen=True)
class Cfg:
    lr: float = 0.01
    horizons: tuple[int, ...] = (1, 5)
    out: Path = Path("x")


def test_write_config_dataclass(tmp_path):
    p = write_config(tmp_path, {"model": Cfg(), "seed": 3})
    assert yaml.safe_load(p.read_text()) == {
        "model": {"lr": 0.01, "horizons": [1, 5], "out": "x"},
        "seed": 3,
    }


def test_mlflow_run_sqlite(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    art = tmp_path / "model.txt"
    art.write_text("weights")
    with mlflow_run(
        "test-exp",
        "r1",
        tracking_uri=uri,
        params={"a": 1, "nested": {"b": 2}},
        tags={"kind": "test"},
        artifact_root=tmp_path / "mlartifacts",
    ) as run:
        assert run.active
        run.log_metrics({"loss": 0.5, "bad": float("nan")}, step=1)
        run.log_metrics({"loss": 0.25}, step=2)
        run.log_artifact(art)
    client = MlflowClient(tracking_uri=uri)
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"a": "1", "nested.b": "2"}
    assert got.data.tags["kind"] == "test"
    assert got.data.metrics == {"loss": 0.25}
    assert [m.value for m in client.get_metric_history(run.run_id, "loss")] == [0.5, 0.25]
    assert (tmp_path / "mlartifacts" / "test-exp").exists()
    assert [f.path for f in client.list_artifacts(run.run_id)] == ["model.txt"]


def test_mlflow_failure_marks_failed(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ZeroDivisionError):
        with mlflow_run("e", "r", tracking_uri=uri, artifact_root=tmp_path / "a") as run:
            raise ZeroDivisionError
    assert MlflowClient(tracking_uri=uri).get_run(run.run_id).info.status == "FAILED"


def test_mlflow_unreachable_warns_once_and_carries_on(tmp_path, monkeypatch):
    monkeypatch.setattr(mr, "_warned", False)
    bad = "http://127.0.0.1:9/nothing"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with pytest.warns(RuntimeWarning, match="MLflow unavailable"):
        with mlflow_run("e", "r", tracking_uri=bad) as run:
            assert not run.active
            run.log_metrics({"x": 1.0})  # no error
    assert mr._warned


def test_tensorboard_writer(tmp_path):
    w = tb_writer(tmp_path)
    log_scalars(w, {"train/loss": 1.0}, 0)
    w.close()
    assert any((tmp_path / "tb").iterdir())


def test_result_metrics_log_effective_accuracy_beside_accuracy():
    from lokirl.core.metrics import Tally
    from lokirl.sim.config import SimResult
    from lokirl.tracking import RESULT_METRICS, result_metrics

    frames = Tally(arrived=10, on_time=5, dropped={"deadline": 5}, accuracy_sum=450.0)
    r = SimResult("loki", "t", frames, Tally(), 90.0, 4.0, 3, 0.1, 0.2, 1, 10.0, 0.5)
    m = result_metrics(r, "loki/")
    assert set(m) == {f"loki/{k}" for k in RESULT_METRICS}
    assert m["loki/accuracy"] == 90.0
    assert m["loki/effective_accuracy"] == pytest.approx(45.0)
    assert m["loki/frame_violation_ratio"] == pytest.approx(0.5)


def test_mlflow_keys_from_controller_specs_are_logged_not_refused(tmp_path):
    """A grid's per-controller metrics carry specs MLflow refuses as they are."""
    from mlflow.tracking import MlflowClient

    from lokirl.tracking.mlflow_helper import MAX_KEY, mlflow_key

    spec = "periodic(churn_weight=0.5,com=1.0,headroom=1.45,period_s=1.0,warm_start=true)"
    long = "ppo:" + "x" * 300
    assert mlflow_key(f"{spec}/reward") == (
        "periodic_churn_weight_0.5_com_1.0_headroom_1.45_period_s_1.0_warm_start_true_/reward"
    )
    assert len(mlflow_key(long)) == MAX_KEY and mlflow_key(long) != mlflow_key(long + "y")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_run("keys", "r", tracking_uri=uri, artifact_root=tmp_path / "art") as run:
        run.log_metrics({f"{spec}/reward": 1.5, f"{long}/reward": 2.5, "after": 3.0})
        run.log_params({spec: "x"})
    got = MlflowClient(tracking_uri=uri).get_run(run.run_id).data
    assert got.metrics[mlflow_key(f"{spec}/reward")] == 1.5
    assert got.metrics[mlflow_key(f"{long}/reward")] == 2.5
    assert got.metrics["after"] == 3.0  # the logger carried on (a refused key used to stop it)
    assert got.params == {mlflow_key(spec): "x"}
