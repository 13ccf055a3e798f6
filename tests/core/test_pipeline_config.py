import copy

import pytest

from lokirl.core.pipeline_config import (
    builtin_pipelines,
    load_pipeline,
    pipeline_from_dict,
    pipeline_from_file,
)
from lokirl.errors import ConfigError

from .conftest import TINY


def test_builtins_load_and_are_trees():
    assert {"traffic_analysis", "social_media", "detect_classify_hetero"} <= set(
        builtin_pipelines()
    )
    ta = load_pipeline("traffic_analysis")
    assert ta.roots == ("object_detection",)
    assert set(ta.leaves) == {"car_classification", "facial_recognition"}
    assert ta.slo_ms == 250
    # the swapped yolov5s/m accuracies are fixed: m is more accurate than s
    assert ta.variant("yolov5m").accuracy > ta.variant("yolov5s").accuracy
    assert ta.task("object_detection").best.name == "yolov5x"
    # efficientnet-b7 has no latency rows, so it is not servable and not listed
    assert "efficientnet-b7" not in [v.name for v in ta.task("car_classification").variants]
    # branching depends on the detector variant
    assert (
        ta.variant("yolov5x").branching["car_classification"]
        > ta.variant("yolov5n").branching["car_classification"]
    )
    sm = load_pipeline("social_media")
    assert set(sm.roots) == {"object_detection", "image_captioning"}
    het = load_pipeline("detect_classify_hetero")
    v = het.variant("yolov5x")
    assert set(v.accelerators) == {"pascal", "ampere", "cpu"}
    assert v.latency("cpu", 1) != v.latency("pascal", 1)


def _bad(mutate):
    data = copy.deepcopy(TINY)
    mutate(data)
    with pytest.raises(ConfigError) as err:
        pipeline_from_dict(data, source="bad.yaml")
    msg = str(err.value)
    assert msg.startswith("bad.yaml: ") and "Fix:" in msg
    return err.value


def test_cycle_rejected():
    def m(d):
        d["tasks"][1]["children"] = ["detect"]

    e = _bad(m)
    assert "cycle" in e.problem or "parent" in e.problem


def test_unknown_child_rejected():
    e = _bad(lambda d: d["tasks"][0].update(children=["nope"]))
    assert e.field == "tasks[0].children[0]" and "nope" in e.problem


def test_unknown_variant_in_e2e_table_rejected():
    e = _bad(lambda d: d.update(e2e_accuracy=[{"path": ["d_big", "ghost"], "accuracy": 90}]))
    assert e.field == "e2e_accuracy[0].path[1]"


def test_missing_batch_size_one_rejected():
    e = _bad(lambda d: d["tasks"][1]["variants"][0].update(latency_ms={"gpu": {2: 10.0}}))
    assert "batch size 1" in e.problem and e.field.endswith("latency_ms.gpu")


def test_negative_latency_rejected():
    e = _bad(lambda d: d["tasks"][1]["variants"][0].update(latency_ms={"gpu": {1: -3.0}}))
    assert e.field == "tasks[1].variants[0].latency_ms.gpu.1"


def test_slo_shorter_than_fastest_path_rejected():
    e = _bad(lambda d: d.update(slo_ms=15))
    assert e.field == "slo_ms" and "raise slo_ms to at least 20" in e.fix


def test_duplicate_variant_and_missing_accuracy_rejected():
    e = _bad(lambda d: d["tasks"][1]["variants"][0].update(name="d_big"))
    assert "duplicate" in e.problem
    e = _bad(lambda d: d["tasks"][1]["variants"][0].pop("accuracy"))
    assert e.field == "tasks[1].variants[0].accuracy"


def test_branching_to_non_child_rejected():
    e = _bad(lambda d: d["tasks"][0]["variants"][0].update(branching={"sink": 2.0}))
    assert "not a child" in e.problem


def test_yaml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nslo_ms: [1,\n")
    with pytest.raises(ConfigError) as err:
        pipeline_from_file(bad)
    assert str(bad) in str(err.value) and "YAML" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_pipeline(tmp_path / "missing.yaml")
    assert "traffic_analysis" in err.value.fix


def test_example_config_loads():
    p = load_pipeline("configs/pipelines/example.yaml")
    assert p.name == "example" and p.leaves
