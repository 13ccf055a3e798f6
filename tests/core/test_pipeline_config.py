import copy
from pathlib import Path

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


def test_zero_latency_rejected_and_exponent_strings_read_as_numbers():
    e = _bad(lambda d: d["tasks"][1]["variants"][0].update(latency_ms={"gpu": {1: 0}}))
    assert e.field == "tasks[1].variants[0].latency_ms.gpu.1" and "0 ms" in e.problem
    d = copy.deepcopy(TINY)
    d["tasks"][1]["variants"][0]["load_time_s"] = "1e1"  # YAML 1.1 reads 1e1 as a string
    p = pipeline_from_dict(d)
    assert p.task(d["tasks"][1]["name"]).variants[0].load_time_s == 10.0


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


def _with_memory(d, det=(None, None), cls=(None, None), gpu=None):
    """TINY with memory_mb on d_big/d_small, c_big/c_small and the gpu's memory."""
    for (i, j), mb in zip(((0, 0), (0, 1), (1, 0), (1, 1)), det + cls, strict=True):
        if mb is not None:
            d["tasks"][i]["variants"][j]["memory_mb"] = mb
    if gpu is not None:
        d["accelerator_memory_mb"] = {"gpu": gpu}
    return d


def test_memory_load_times_and_source_parsed_and_fits():
    data = _with_memory(copy.deepcopy(TINY), det=(600, 200), cls=(300.0, 100), gpu=1000)
    big = data["tasks"][0]["variants"][0]
    big.update(load_time_s=2.5, load_time_host_s=0.7, load_source="measured: cpu, 2026-12-03")
    p = pipeline_from_dict(data, source="mem.yaml")
    v = p.variant("d_big")
    assert (v.memory_mb, v.load_time_s, v.load_time_host_s) == (600.0, 2.5, 0.7)
    assert v.load_source == "measured: cpu, 2026-12-03"
    assert p.variant("c_small").load_time_host_s is None and p.variant("c_small").load_source == ""
    assert p.accelerator_memory_mb == {"gpu": 1000.0}
    assert p.fits("gpu", ["d_big", "c_big"]) is True  # 900 <= 1000
    assert p.fits("gpu", ["d_big", "c_big", "c_small"]) is True  # exactly 1000
    assert p.fits("gpu", ["d_big", "d_big"]) is False  # a name twice counts twice
    assert p.fits("gpu", []) is True
    assert p.fits("tpu", ["d_big"]) is None  # memory of that worker type unknown
    with pytest.raises(KeyError):
        p.fits("gpu", ["ghost"])


def test_fits_unknown_when_any_variant_memory_unknown():
    p = pipeline_from_dict(_with_memory(copy.deepcopy(TINY), det=(600, None), gpu=1000))
    assert p.fits("gpu", ["d_big"]) is True
    assert p.fits("gpu", ["d_big", "d_small"]) is None
    p = pipeline_from_dict(_with_memory(copy.deepcopy(TINY), det=(600, 200)))
    assert p.accelerator_memory_mb == {} and p.fits("gpu", ["d_big"]) is None


def test_pipeline_with_memory_pickles_and_compares_equal():
    import pickle

    data = _with_memory(copy.deepcopy(TINY), det=(600, 200), cls=(300, 100), gpu=1000)
    data["tasks"][1]["variants"][0].update(load_time_host_s=0.2, load_source="estimate: x")
    p = pipeline_from_dict(data)
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q.accelerator_memory_mb == {"gpu": 1000.0}
    assert q.variant("c_big").load_source == "estimate: x" and q.fits("gpu", ["d_big"]) is True
    data["accelerator_memory_mb"] = {"gpu": 2000}
    assert pipeline_from_dict(data) != p
    with pytest.raises(TypeError):
        p.accelerator_memory_mb["gpu"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value", "where", "words"),
    [
        ("memory_mb", -5, "tasks[0].variants[0].memory_mb", "out of range"),
        ("memory_mb", "big", "tasks[0].variants[0].memory_mb", "expected a number"),
        ("load_time_host_s", -1, "tasks[0].variants[0].load_time_host_s", "out of range"),
        ("load_time_host_s", "1s", "tasks[0].variants[0].load_time_host_s", "expected a"),
        ("load_source", 3, "tasks[0].variants[0].load_source", "expected text"),
    ],
)
def test_bad_variant_memory_fields_rejected(field, value, where, words):
    e = _bad(lambda d: d["tasks"][0]["variants"][0].update({field: value, "load_time_s": 2.0}))
    assert e.field == where and words in e.problem


def test_bad_accelerator_memory_rejected():
    e = _bad(lambda d: d.update(accelerator_memory_mb=[11264]))
    assert e.field == "accelerator_memory_mb" and "gpu: 11264" in e.fix
    e = _bad(lambda d: d.update(accelerator_memory_mb={"gpu": 0}))
    assert e.field == "accelerator_memory_mb.gpu" and "out of range" in e.problem
    e = _bad(lambda d: d.update(accelerator_memory_mb={"tpu": 16000}))
    assert e.field == "accelerator_memory_mb.tpu" and "gpu" in e.fix
    # 11 (GB, not MiB) is smaller than a variant: the units hint names the mistake
    e = _bad(lambda d: _with_memory(d, det=(600, None), gpu=11))
    assert e.field == "accelerator_memory_mb.gpu" and "d_big" in e.problem and "MiB" in e.fix


def test_builtins_say_where_load_times_and_memory_come_from():
    for name in builtin_pipelines():
        p = load_pipeline(name)
        for v in p.variants():
            assert v.load_source.startswith(("measured:", "estimate:")), (name, v.name)
            assert v.memory_mb and v.memory_mb > 0 and v.load_time_host_s is not None
            assert v.load_time_host_s <= v.load_time_s or v.load_source.startswith("measured")
    ta = load_pipeline("traffic_analysis")
    assert ta.accelerator_memory_mb == {"gpu": 11264.0}
    x = ta.variant("yolov5x")  # 86.7 M fp32 params = 346.8 MB
    assert x.load_time_s == pytest.approx(0.2 + 346.8 / 2000 + 346.8 / 10000, abs=1e-3)
    assert x.load_time_host_s == pytest.approx(0.2 + 346.8 / 10000, abs=1e-3)
    assert "not measured on a GPU" in x.load_source
    assert ta.fits("gpu", ["yolov5x", "yolov5l"]) is True
    het = load_pipeline("detect_classify_hetero")
    assert het.accelerator_memory_mb == {"pascal": 11264.0, "ampere": 16384.0}
    assert het.fits("cpu", ["yolov5n"]) is None  # the Proteus CPU host's memory is unknown
    cpu = load_pipeline("traffic_analysis_cpu")
    assert all(v.load_source.startswith("measured: cpu") for v in cpu.variants())
    assert cpu.fits("cpu", ["yolov5s", "yolov5n"]) is None


def test_build_script_reproduces_the_shipped_gpu_pipelines():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "build_builtin_pipelines", root / "scripts" / "build_builtin_pipelines.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for make in (script.traffic_analysis, script.social_media, script.hetero):
        spec_dict = make()
        shipped = (script.OUT / f"{spec_dict['name']}.yaml").read_text()
        assert shipped.endswith(script.dump(spec_dict)), spec_dict["name"]


EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "pipelines" / "example.yaml"


@pytest.mark.parametrize(
    ("old", "new", "field", "hint"),
    [
        ("branching: {classify: 3.0}", "branchng: {classify: 3.0}", "branchng", "'branching'"),
        ("load_time_s: 2.0 ", "load_time: 2.0 ", "load_time", "'load_time_s'"),
    ],
)
def test_misspelt_variant_key_in_example_refused(tmp_path, old, new, field, hint):
    text = EXAMPLE.read_text()
    assert old in text
    bad = tmp_path / "example.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_pipeline(bad)
    e = err.value
    assert e.source == str(bad) and e.field == f"tasks[0].variants[0].{field}"
    assert e.problem == "unknown key" and hint in e.fix


def test_unknown_keys_refused_at_every_level():
    e = _bad(lambda d: d["tasks"][1]["variants"][0].update(latncy_ms={"gpu": {1: 1.0}}))
    assert e.field == "tasks[1].variants[0].latncy_ms" and "'latency_ms' is already set" in e.fix
    e = _bad(lambda d: d["tasks"][0].update(childs=d["tasks"][0].pop("children")))
    assert e.field == "tasks[0].childs" and "rename it to 'children'" in e.fix
    e = _bad(lambda d: d.update(e2e_accuracy=[{"path": ["d_big", "c_big"], "accurracy": 90}]))
    assert e.field == "e2e_accuracy[0].accurracy" and "rename it to 'accuracy'" in e.fix
    e = _bad(lambda d: d.update(owner="me"))  # nothing close: the valid keys are listed
    assert e.field == "owner" and "name, slo_ms, tasks" in e.fix and "runtime" in e.fix


def test_missing_required_field_names_its_misspelling():
    def m(d):
        d["slo_m"] = d.pop("slo_ms")

    e = _bad(m)
    assert e.field == "slo_m" and "'slo_ms' is missing" in e.problem
    assert "rename it to 'slo_ms'" in e.fix
    e = _bad(
        lambda d: d["tasks"][1]["variants"][1].update(
            acuracy=d["tasks"][1]["variants"][1].pop("accuracy")
        )
    )
    assert e.field == "tasks[1].variants[1].acuracy" and "'accuracy' is missing" in e.problem


def test_documented_optional_keys_still_accepted():
    d = copy.deepcopy(TINY)
    d.update(description="x", runtime={"input_size": 16}, e2e_accuracy=[])
    tail = {"gpu": {1: 12.0}}
    d["tasks"][1]["variants"][0].update(latency_p95_ms=tail, latency_p99_ms=tail)
    d["tasks"][1]["children"] = []
    assert pipeline_from_dict(d).variant("c_big").latency("gpu", 1) == 10.0


@pytest.mark.parametrize("text", ["", "\n# only a comment\n"])
def test_empty_file_says_so(tmp_path, text):
    f = tmp_path / "empty.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_pipeline(f)
    assert err.value.source == str(f) and "the file is empty" in err.value.problem
    assert "NoneType" not in str(err.value) and "slo_ms and tasks" in err.value.fix


def test_folder_as_pipeline_path_says_so(tmp_path):
    for call in (load_pipeline, pipeline_from_file):
        with pytest.raises(ConfigError) as err:
            call(tmp_path)
        assert err.value.source == str(tmp_path) and "is a folder" in err.value.problem
    (tmp_path / "mine.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(tmp_path)
    assert str(tmp_path / "mine.yaml") in err.value.fix


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999"])
def test_non_finite_numbers_refused(tmp_path, value):
    text = EXAMPLE.read_text()
    f = tmp_path / "p.yaml"
    f.write_text(text.replace("gpu: {1: 20.0,", f"gpu: {{1: {value},", 1))
    with pytest.raises(ConfigError) as err:
        load_pipeline(f)
    assert err.value.field == "tasks[0].variants[0].latency_ms.gpu.1"
    assert "not a finite number" in err.value.problem
    f.write_text(text.replace("slo_ms: 200", f"slo_ms: {value}", 1))
    with pytest.raises(ConfigError) as err:
        load_pipeline(f)
    assert err.value.field == "slo_ms" and "not a finite number" in err.value.problem


def test_infinite_memory_and_batch_size_refused():
    e = _bad(lambda d: d.update(accelerator_memory_mb={"gpu": float("inf")}))
    assert e.field == "accelerator_memory_mb.gpu" and "not a finite number" in e.problem
    e = _bad(lambda d: d["tasks"][1]["variants"][0].update(latency_ms={"gpu": {float("inf"): 1.0}}))
    assert "not a positive integer" in e.problem
