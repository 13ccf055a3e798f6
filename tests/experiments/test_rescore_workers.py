"""``scripts/rescore_workers.py``: a recorded run scored under another worker weight."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

import lokirl.experiments.runner as runner
from lokirl.experiments.suites import parse_suite

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "rescore_workers.py"
_SPEC = importlib.util.spec_from_file_location("rescore_workers", _PATH)
rw = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rw)

SUITE = {
    "name": "tiny",
    "seeds": [0],
    "controllers": ["loki"],
    "cases": [
        {
            "id": "ta12-step",
            "family": "f",
            "pipeline": "traffic_analysis",
            "cluster": {"workers": 12},
            "traffic": {"generator": "step", "seed": 1},
            "load": [0.3, 1.5],
            "duration_s": 10,
        }
    ],
}


def test_rescoring_equals_playing_under_the_heavier_weight(monkeypatch):
    """For a controller that ignores the weights, only the worker term changes."""
    case = parse_suite(SUITE).spec.cases[0]
    spec = "periodic(period_s=2.0,headroom=1.3)"
    (light,) = runner.play_case_seed(case, 0, [spec])
    make_env = runner.make_env

    def heavy_env(*args, **kwargs):
        env = make_env(*args, **kwargs)
        env.config = replace(env.config, weights=replace(env.config.weights, workers=0.5))
        return env

    monkeypatch.setattr(runner, "make_env", heavy_env)
    (heavy,) = runner.play_case_seed(case, 0, [spec])
    assert light["error"] is None and heavy["error"] is None
    assert heavy["frames"] == light["frames"]  # the same behaviour
    assert heavy["mean_active_workers"] == light["mean_active_workers"] > 0
    assert heavy["reward"] < light["reward"]
    assert rw.rescored_reward({**light, "workers": 12}, 0.5) == pytest.approx(heavy["reward"])
    assert rw.rescored_reward({**light, "workers": 12}, 0.05) == light["reward"]


def test_a_rescored_folder_drops_pooled_rows_and_refuses_to_overwrite(tmp_path, capsys):
    src = tmp_path / "run"
    src.mkdir()
    row = {"controller": "loki", "case": "c", "seed": 0, "reward": 100.0, "steps": 120,
           "mean_active_workers": 10.0, "workers": 20, "error": None}  # fmt: skip
    pooled = {**row, "controller": "pool", "members": 5}
    meta = {"controllers": ["loki", "pool"]}
    (src / "per_episode.json").write_text(json.dumps({"meta": meta, "rows": [row, pooled]}))
    assert rw.main([str(src), "--weight", "0.25", "--out", str(tmp_path / "out")]) == 0
    out = json.loads((tmp_path / "out" / "per_episode.json").read_text())
    assert [r["controller"] for r in out["rows"]] == ["loki"]
    # 120 one-second epochs at half the cluster active, 0.2 more per unit of share
    assert out["rows"][0]["reward"] == pytest.approx(100.0 - 0.2 * 120 * 0.5)
    assert out["meta"]["controllers"] == ["loki"]
    assert out["meta"]["rescored_worker_weight"] == {"from": 0.05, "to": 0.25}
    # rescored again: from the weight the folder records, not the recorded 0.05
    assert (
        rw.main([str(tmp_path / "out"), "--weight", "0.05", "--out", str(tmp_path / "back")]) == 0
    )
    back = json.loads((tmp_path / "back" / "per_episode.json").read_text())
    assert back["rows"][0]["reward"] == pytest.approx(100.0)
    assert back["meta"]["rescored_worker_weight"] == {"from": 0.25, "to": 0.05}
    assert rw.main([str(src), "--weight", "0.25", "--out", str(tmp_path / "out")]) == 2
    assert rw.main([str(src), "--weight", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "exists" in capsys.readouterr().err


def test_a_record_folder_with_a_gzipped_table_is_rescored(tmp_path, capsys):
    import gzip

    src = tmp_path / "record"
    src.mkdir()
    row = {"controller": "loki", "case": "c", "seed": 0, "reward": 100.0, "steps": 120,
           "mean_active_workers": 20.0, "workers": 20, "error": None}  # fmt: skip
    table = json.dumps({"meta": {"controllers": ["loki"]}, "rows": [row]}).encode()
    (src / "per_episode.json.gz").write_bytes(gzip.compress(table))
    assert rw.main([str(src), "--weight", "0.15", "--out", str(tmp_path / "out")]) == 0
    out = json.loads((tmp_path / "out" / "per_episode.json").read_text())
    assert out["rows"][0]["reward"] == pytest.approx(100.0 - 0.1 * 120)
    # a folder with no table: refused, saying so, and nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    assert rw.main([str(empty), "--weight", "0.15", "--out", str(tmp_path / "none")]) == 2
    assert "no per_episode.json" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
