"""The profiler: a tiny model at two batch sizes, in-process and through a worker actor."""

from __future__ import annotations

import pytest

from lokirl.core.pipeline_config import load_pipeline, pipeline_from_file
from lokirl.runtime.models import model_sources
from lokirl.runtime.profiler import profile_pipeline, write_profile


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


def test_profile_in_process_writes_a_valid_pipeline(tiny_pipeline, tmp_path):
    pipeline, names, sources = _setup(tiny_pipeline)
    measured = profile_pipeline(pipeline, sources, [2], names, device="cpu", repeats=2)
    _check(measured, names)
    path = write_profile(pipeline, measured, tmp_path / "tiny_cpu.yaml", input_size=16)
    p = pipeline_from_file(path)
    assert [v.name for v in p.variants()] == ["det-small", "cls-small"]
    assert p.variant("det-small").latency_ms["cpu"][2] == measured["det-small"]["latency_ms"][2]
    assert p.variant("det-small").branching == pipeline.variant("det-small").branching


@pytest.mark.ray
def test_profile_through_actor(ray_local, tiny_pipeline):
    pipeline, names, sources = _setup(tiny_pipeline)
    lines = []
    measured = profile_pipeline(
        pipeline, sources, [2], names, device="cpu", repeats=2, mode="actor", progress=lines.append
    )
    _check(measured, names)
    assert len(lines) == 2 and "through the actor" in lines[0]
    with pytest.raises(ValueError):
        profile_pipeline(pipeline, sources, [2], names, device="cpu", mode="nope")
