"""The runtime section of a pipeline file: every mistake names the file, the field and a fix."""

import pytest

from lokirl.errors import ConfigError
from lokirl.runtime.models import model_sources

BASE = """\
name: p
slo_ms: 100
tasks: []
"""


def _sources(tmp_path, runtime: str, input_size=None):
    f = tmp_path / "p.yaml"
    f.write_text(BASE + runtime)
    return model_sources(f, ["det"], input_size)


@pytest.mark.parametrize(
    ("runtime", "field"),
    [
        ("runtime: [1, 2]\n", "runtime"),
        ("runtime: {input_size: sixteen}\n", "runtime.input_size"),
        ("runtime: {input_size: -3}\n", "runtime.input_size"),
        (
            "runtime: {models: {det: {source: 'lokirl.runtime.models:tiny_cnn', kwargs: [1, 2]}}}\n",
            "runtime.models.det.kwargs",
        ),
        ("runtime: {models: {det: 5}}\n", "runtime.models.det"),
        ("runtime: {modles: {}}\n", "runtime.modles"),
        ("runtime: {fp16: maybe}\n", "runtime.fp16"),
    ],
)
def test_bad_runtime_sections_are_config_errors(tmp_path, runtime, field):
    with pytest.raises(ConfigError) as exc:
        _sources(tmp_path, runtime)
    assert exc.value.field.startswith(field), exc.value.field
    assert "p.yaml" in exc.value.source and exc.value.fix


def test_good_runtime_section(tmp_path):
    src = _sources(
        tmp_path,
        "runtime:\n  input_size: 32\n  models:\n"
        "    det: {source: 'lokirl.runtime.models:tiny_cnn', kwargs: {depth: 2}}\n",
    )
    assert src["det"].kwargs == {"depth": 2} and src["det"].input_size == 32


def test_negative_input_size_override_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="input-size"):
        _sources(tmp_path, "runtime: {models: {det: 'lokirl.runtime.models:tiny_cnn'}}\n", -5)


def test_fp16_from_the_runtime_section_and_its_override(tmp_path):
    section = "runtime: {fp16: true, models: {det: 'lokirl.runtime.models:tiny_cnn'}}\n"
    assert _sources(tmp_path, section)["det"].fp16 is True
    f = tmp_path / "p.yaml"
    assert model_sources(f, ["det"], None, False)["det"].fp16 is False  # --fp16 off wins
    plain = "runtime: {models: {det: 'lokirl.runtime.models:tiny_cnn'}}\n"
    assert _sources(tmp_path, plain)["det"].fp16 is False
    assert model_sources(f, ["det"], None, True)["det"].fp16 is True
