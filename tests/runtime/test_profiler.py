"""The profiler: a tiny model at two batch sizes, in-process and through a worker actor;
load times from disk and from host memory, memory per variant; the command's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lokirl.cli import main
from lokirl.core.pipeline_config import load_pipeline, pipeline_from_file
from lokirl.runtime.models import ModelSource, Runner, model_sources, tiny_cnn
from lokirl.runtime.profiler import (
    MIB,
    latency_stats,
    measure_load,
    profile_pipeline,
    tail_latencies,
    write_profile,
)


def _setup(tiny_pipeline):
    pipeline = load_pipeline(tiny_pipeline)
    names = ["det-small", "cls-small"]
    return pipeline, names, model_sources(tiny_pipeline, names, None)


def _check(measured, names):
    assert set(measured) == set(names)
    for m in measured.values():
        assert set(m["latency_ms"]) == {1, 2}
        assert all(ms > 0 for ms in m["latency_ms"].values())
        assert m["load_s"] > 0 and m["device"] == "cpu"
        for b, ms in m["latency_ms"].items():  # the tail beside the median
            assert ms <= m["latency_p95_ms"][b] <= m["latency_p99_ms"][b]


def test_profile_in_process_writes_a_valid_pipeline(tiny_pipeline, tmp_path):
    pipeline, names, sources = _setup(tiny_pipeline)
    measured = profile_pipeline(
        pipeline, sources, [2], names, device="cpu", repeats=7, load_repeats=1
    )
    _check(measured, names)
    m = measured["det-small"]
    assert m["runs"] == 7
    assert m["load_disk_s"] > 0 and m["load_host_s"] > 0
    assert m["memory_mb"] > m["weights_mb"] > 0
    assert m["load_source"].startswith("measured: cpu") and "batch-2" in m["load_source"]
    assert "warm-up batches of 1, 2" in m["load_source"]
    path = write_profile(
        pipeline, measured, tmp_path / "tiny_cpu.yaml", input_size=16, accelerator_memory_mb=512
    )
    p = pipeline_from_file(path)
    assert [v.name for v in p.variants()] == ["det-small", "cls-small"]
    v = p.variant("det-small")
    assert v.latency_ms["cpu"][2] == m["latency_ms"][2]
    assert v.branching == pipeline.variant("det-small").branching
    assert (v.load_time_s, v.load_time_host_s, v.memory_mb) == (
        m["load_disk_s"],
        m["load_host_s"],
        m["memory_mb"],
    )
    assert v.load_source == m["load_source"]
    assert p.accelerator_memory_mb == {"cpu": 512.0}
    assert p.fits("cpu", ["det-small", "cls-small"]) is True
    # the tail is in the file beside the median, and reads back
    text = path.read_text()
    assert "latency_p95_ms:" in text and "latency_p99_ms:" in text
    tail = tail_latencies(path)
    assert set(tail) == {"det-small", "cls-small"}
    assert tail["det-small"]["cpu"][2] == {
        "p50": m["latency_ms"][2],
        "p95": m["latency_p95_ms"][2],
        "p99": m["latency_p99_ms"][2],
    }


def test_latency_stats_are_interpolated_percentiles():
    assert latency_stats([5.0]) == {"p50": 5.0, "p95": 5.0, "p99": 5.0}
    s = latency_stats([float(x) for x in range(1, 101)])
    assert (s["p50"], s["p95"], s["p99"]) == (50.5, 95.05, 99.01)
    s = latency_stats([1.0, 1.0, 1.0, 1.0, 9.0])  # with 5 runs the p99 is near the slowest
    assert s["p50"] == 1.0 and s["p95"] == 7.4 and s["p99"] == 8.68
    with pytest.raises(ValueError):
        latency_stats([])


def test_profiles_without_a_tail_still_load(tiny_pipeline, tmp_path):
    assert tail_latencies(tiny_pipeline) == {}  # written before the tail keys
    measured = {  # what profile_pipeline returned before the tail
        n: {"load_s": 0.1, "latency_ms": {1: 2.0}, "device": "cpu"}
        for n in ("det-small", "cls-small")
    }
    old = write_profile(load_pipeline(tiny_pipeline), measured, tmp_path / "old.yaml")
    assert "latency_p95_ms:" not in old.read_text() and tail_latencies(old) == {}
    assert pipeline_from_file(old).variant("det-small").latency("cpu", 1) == 2.0


def test_a_bad_tail_entry_names_the_field(tiny_pipeline, tmp_path):
    from lokirl.errors import ConfigError

    f = tmp_path / "bad.yaml"
    text = Path(tiny_pipeline).read_text()
    f.write_text(
        text.replace(
            "      cpu: {1: 2.0, 2: 3.0, 4: 5.0}\n- name: classify",
            "      cpu: {1: 2.0, 2: 3.0, 4: 5.0}\n    latency_p99_ms: {cpu: {1: fast}}\n"
            "- name: classify",
        )
    )
    pipeline_from_file(f)  # the pipeline readers ignore the tail keys
    with pytest.raises(ConfigError) as exc:
        tail_latencies(f)
    assert exc.value.field == "tasks[0].variants[1].latency_p99_ms.cpu.1"


def test_profile_without_load_measurement_keeps_the_worker_load_time(tiny_pipeline, tmp_path):
    pipeline, names, sources = _setup(tiny_pipeline)
    measured = profile_pipeline(pipeline, sources, [1], names, device="cpu", load_repeats=0)
    assert "load_disk_s" not in measured["det-small"]
    p = pipeline_from_file(write_profile(pipeline, measured, tmp_path / "p.yaml"))
    v = p.variant("det-small")
    assert v.load_time_s == measured["det-small"]["load_s"] and v.memory_mb is None
    assert "without a weight file" in v.load_source and p.accelerator_memory_mb == {}


def test_measure_load_counts_weights_input_and_activations():
    src = ModelSource("lokirl.runtime.models:tiny_cnn", {"depth": 2, "width": 8}, None, 32)
    m = measure_load(src, "cpu", batch_size=4, repeats=2)
    module = tiny_cnn(depth=2, width=8)
    weights = sum(p.numel() * 4 for p in module.parameters())
    batch_in = 4 * 3 * 32 * 32 * 4
    first_conv_out = 4 * 8 * 32 * 32 * 4  # float32 activations of the first layer
    assert m["memory_mb"] * MIB >= 0.999 * (weights + batch_in + first_conv_out)
    assert m["weights_mb"] * MIB >= weights  # the state-dict file: weights and a header
    assert m["page_cache_evicted"] is True  # Linux: posix_fadvise drops the file's pages
    # a bigger batch needs more memory, the weights do not change
    assert measure_load(src, "cpu", batch_size=16, repeats=1)["memory_mb"] > m["memory_mb"]
    with pytest.raises(ValueError):
        measure_load(src, "cpu", repeats=0)


def test_page_cache_eviction_is_not_claimed_for_files_in_ram(tmp_path, monkeypatch):
    from lokirl.runtime import profiler

    f = tmp_path / "w.pt"
    f.write_bytes(b"0" * 4096)
    assert profiler._filesystem(Path("/")) != ""  # Linux: /proc/mounts names the root's type
    monkeypatch.setattr(profiler, "_filesystem", lambda path: "tmpfs")
    assert profiler._evict(f) is False


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_runner_loads_preloaded_weights_and_torchscript_bytes(tmp_path):
    src = ModelSource("lokirl.runtime.models:tiny_cnn", {"depth": 2}, None, 16)
    ref = Runner(src)
    x = torch.rand(2, 3, 16, 16)
    state = ref.state_dict()
    assert torch.equal(Runner(src, preloaded=state).run(x), ref.run(x))  # not a fresh init
    assert ref.weight_bytes == sum(t.numel() * 4 for t in state.values())
    path = tmp_path / "tiny.pt"
    module = tiny_cnn(depth=2).eval()
    module.load_state_dict(state)
    torch.jit.save(torch.jit.script(module), path)
    scripted = ModelSource(str(path), input_size=16)
    assert torch.equal(Runner(scripted, preloaded=path.read_bytes()).run(x), ref.run(x))
    m = measure_load(scripted, "cpu", batch_size=2, repeats=1)
    assert m["load_disk_s"] > 0 and m["memory_mb"] > 0


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--slo-ms", "-5"], "--slo-ms: -5: the SLO must be a positive"),
        (["--runs", "0"], "--runs: 0: must be at least 1"),
        (["--repeats", "0"], "--runs: 0: must be at least 1"),  # the older name
        (["--fp16", "--device", "cpu"], "--fp16: on: half precision is for CUDA devices"),
        (["--worker-memory-mb", "0"], "--worker-memory-mb"),
        (["--batch-sizes", "2,x"], "--batch-sizes"),
        (["--variants", "ghost"], "--variants: ghost: not in the pipeline"),
    ],
)
def test_bad_options_fail_before_profiling_or_writing(
    option, words, tiny_pipeline, tmp_path, monkeypatch, capsys
):
    def boom(*args, **kwargs):
        raise AssertionError("profiled despite a bad option")

    monkeypatch.setattr("lokirl.runtime.profiler.profile_pipeline", boom)
    out = tmp_path / "new" / "p.yaml"
    argv = ["profile", "--pipeline", tiny_pipeline, "--in-process", "--out", str(out), *option]
    assert main(argv) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_profile_command_writes_load_times_and_worker_memory(tiny_pipeline, tmp_path, capsys):
    out = tmp_path / "p.yaml"
    argv = ["profile", "--pipeline", tiny_pipeline, "--in-process", "--out", str(out)]
    argv += ["--variants", "det-small,cls-small", "--batch-sizes", "2", "--runs", "6"]
    assert main([*argv, "--load-repeats", "1", "--worker-memory-mb", "2048"]) == 0
    printed = capsys.readouterr().out
    assert "from host memory" in printed and "median (p95 / p99) of 6 runs" in printed
    p = pipeline_from_file(out)
    assert p.accelerator_memory_mb == {"cpu": 2048.0}
    assert all(v.memory_mb and v.load_time_host_s for v in p.variants())
    assert set(tail_latencies(out)) == {"det-small", "cls-small"}
    assert "p95 and p99 of 6 runs" in p.description


@pytest.mark.ray
def test_profile_through_actor(ray_local, tiny_pipeline):
    pipeline, names, sources = _setup(tiny_pipeline)
    lines = []
    measured = profile_pipeline(
        pipeline,
        sources,
        [2],
        names,
        device="cpu",
        repeats=2,
        mode="actor",
        progress=lines.append,
        load_repeats=1,
    )
    _check(measured, names)
    assert len(lines) == 4 and "through the actor" in lines[0] and "from disk" in lines[2]
    assert measured["cls-small"]["memory_mb"] > 0
    with pytest.raises(ValueError):
        profile_pipeline(pipeline, sources, [2], names, device="cpu", mode="nope")
