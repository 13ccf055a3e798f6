from pathlib import Path

import numpy as np
import pytest
import yaml

from lokirl.errors import ConfigError
from lokirl.experiments.suites import (
    BUILTIN_SUITES,
    FrozenSuiteChanged,
    adhoc_suite,
    case_trace,
    load_suite,
    parse_suite,
    suite_path,
    with_swap,
)

GOOD = {
    "name": "mini",
    "seeds": [0, 1],
    "defaults": {"duration_s": 20, "cluster": {"workers": 4}},
    "cases": [
        {"id": "a", "family": "bursts", "traffic": {"generator": "bursts", "seed": 5}},
        {"id": "b", "family": "bursts", "traffic": "twitter_zipf_flat_bursty", "load": None},
    ],
}


def _write(tmp_path: Path, data: dict, name: str = "suite.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def _error(tmp_path: Path, data: dict) -> ConfigError:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    err = info.value
    assert err.source == str(path)  # names the file
    return err


@pytest.mark.parametrize("name", BUILTIN_SUITES)
def test_bundled_suites_load(name):
    s = load_suite(name)
    assert s.name == name and s.spec.cases
    assert len(s.hash) == 64
    ids = [c.id for c in s.spec.cases]
    assert len(ids) == len(set(ids))


def test_validation_and_test_cover_what_they_must():
    cases = [c for n in ("validation", "test") for c in load_suite(n).spec.cases]
    assert {c.pipeline for c in cases} >= {"traffic_analysis", "social_media"}
    assert {c.workers for c in cases} >= {10, 20, 40, 100}
    test = load_suite("test").spec
    assert test.frozen
    assert {c.traffic.trace for c in test.cases if c.traffic.trace} >= {
        "twitter_zipf_flat_bursty",
        "twitter_zipf_exponential_bursty",
        "twitter_medium_normal_load",
        "twitter_zipf_exponential",
    }
    # generator seeds of validation and test are disjoint from each other and from
    # the seeds training uses (env seeds 0..n_envs, imitation 7919.., eval 1_000_003..)
    val_seeds = {c.traffic.seed for c in load_suite("validation").spec.cases if c.traffic.seed}
    test_seeds = {c.traffic.seed for c in test.cases if c.traffic.seed}
    assert val_seeds and test_seeds and not val_seeds & test_seeds
    for s in val_seeds | test_seeds:
        assert 20000 <= s < 40000
    # no other bundled suite plays a trace file of the test suite (compared by bytes)
    from lokirl.experiments.suites import held_out_traces

    for name in ("dev", "validation"):
        played = [c.traffic.trace for c in load_suite(name).spec.cases if c.traffic.trace]
        assert held_out_traces(played) == []


@pytest.mark.parametrize(
    ("file", "pipeline", "low"),
    [
        ("validation_wide.yaml", "traffic_analysis", 20100),
        ("validation_wide_sm.yaml", "social_media", 20200),
        ("validation_wide_sm2.yaml", "social_media", 20300),
        ("validation_wide_sm3.yaml", "social_media", 20400),
        ("validation_wide_sm4.yaml", "social_media", 20500),
        ("validation_wide_sm5.yaml", "social_media", 20600),
        ("validation_wide_ta2.yaml", "traffic_analysis", 20700),
    ],
)
def test_the_wide_validation_samples_are_fresh_and_off_the_training_sizes(file, pipeline, low):
    root = Path(__file__).resolve().parents[2]
    wide = load_suite(root / "configs/suites" / file).spec
    assert len(wide.cases) == 28 and not wide.frozen
    assert {c.pipeline for c in wide.cases} == {pipeline}
    seeds = [c.traffic.seed for c in wide.cases]
    assert len(set(seeds)) == len(seeds) and all(low < s < low + 100 for s in seeds)
    others = [c.traffic.seed for n in BUILTIN_SUITES for c in load_suite(n).spec.cases]
    others += [
        c.traffic.seed
        for f in sorted((root / "configs/suites").glob("*.yaml"))
        if f.name != file
        for c in load_suite(f).spec.cases
    ]
    assert not set(seeds) & set(others)
    # every training file that draws cluster sizes (the version-2 policies) draws none of them
    drawn = [
        set(env["randomise"]["workers"])
        for f in sorted((root / "configs/agents").glob("*.yaml"))
        if "workers" in (env := yaml.safe_load(f.read_text())["env"]).get("randomise", {})
    ]
    assert len(drawn) >= 8 and all(d >= {10, 100} for d in drawn)
    assert not {c.workers for c in wide.cases} & set().union(*drawn)


def test_held_out_traces_are_found_by_content_and_refused(tmp_path):
    from lokirl.experiments.suites import check_not_held_out, held_out_traces
    from lokirl.traces import bundled_path

    copy = tmp_path / "renamed.csv"
    copy.write_bytes(bundled_path("twitter_zipf_exponential").read_bytes())
    other = tmp_path / "mine.csv"
    other.write_text("time_s,qps\n0,10\n1,20\n")
    traces = ["twitter_zipf_flat_bursty", str(copy), str(other), "diurnal_600s"]
    assert held_out_traces(traces) == ["twitter_zipf_flat_bursty", str(copy)]
    with pytest.raises(ConfigError, match="frozen test suite"):
        check_not_held_out(traces, False, "--traces")
    check_not_held_out(traces, True, "--traces")  # allowed to report


def test_unknown_generator_names_field_and_fix(tmp_path):
    data = {**GOOD, "cases": [{**GOOD["cases"][0], "traffic": {"generator": "nope", "seed": 1}}]}
    err = _error(tmp_path, data)
    assert err.field.startswith("cases[0].traffic") and "case 'a'" in err.field
    assert "nope" in err.problem
    assert "FAMILIES" in err.fix or "family" in err.fix


def test_generator_without_seed(tmp_path):
    data = {**GOOD, "cases": [{**GOOD["cases"][0], "traffic": {"generator": "bursts"}}]}
    err = _error(tmp_path, data)
    assert "seed" in err.problem


def test_unknown_field_is_reported(tmp_path):
    data = {**GOOD, "cases": [{**GOOD["cases"][0], "duraton_s": 5}]}
    err = _error(tmp_path, data)
    assert err.field.startswith("cases[0].duraton_s")
    assert err.problem == "unknown field" and "spelling" in err.fix


@pytest.mark.parametrize(
    ("change", "field", "fix_word"),
    [
        ({"load": [2.0, 1.0]}, "load", "[lo, hi]"),
        ({"swap": "sometimes"}, "swap", "overlap"),
        ({"cluster": {"workers": 0}}, "cluster", "workers"),
        ({"cluster": {"workers": 4, "gpu": 2}}, "cluster", "workers"),
        ({"duration_s": -1}, "duration_s", "seconds"),
        ({"id": "has space"}, "id", "unique id"),
    ],
)
def test_case_field_errors(tmp_path, change, field, fix_word):
    data = {**GOOD, "cases": [{**GOOD["cases"][0], **change}]}
    err = _error(tmp_path, data)
    assert err.field.startswith(f"cases[0].{field}")
    assert fix_word in err.fix


def test_suite_level_errors(tmp_path):
    assert _error(tmp_path, {**GOOD, "seeds": []}).field == "seeds"
    assert _error(tmp_path, {**GOOD, "seeds": [1, 1]}).field == "seeds"
    dup = {**GOOD, "cases": [GOOD["cases"][0], GOOD["cases"][0]]}
    assert "twice" in _error(tmp_path, dup).problem
    missing = {k: v for k, v in GOOD.items() if k != "name"}
    err = _error(tmp_path, missing)
    assert err.field == "name" and "missing" in err.problem


def test_references_are_checked_before_running(tmp_path):
    bad_pipe = {**GOOD, "cases": [{**GOOD["cases"][0], "pipeline": "no_such_pipeline"}]}
    err = _error(tmp_path, bad_pipe)
    assert err.field == "cases[0] (case 'a').pipeline"
    bad_trace = {**GOOD, "cases": [{**GOOD["cases"][1], "traffic": "missing.csv"}]}
    err = _error(tmp_path, bad_trace)
    assert err.field.endswith(".traffic.trace")
    bad_accel = {**GOOD, "cases": [{**GOOD["cases"][0], "cluster": {"tpu": 3}}]}
    err = _error(tmp_path, bad_accel)
    assert "tpu" in err.problem and err.field.endswith(".cluster")
    # a broken pipeline file: its own path and field, not only the suite's
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text("name: p\nslo_ms: -5\ntasks: []\n")
    err = _error(tmp_path, {**GOOD, "cases": [{**GOOD["cases"][0], "pipeline": str(pipe)}]})
    assert err.field == "cases[0] (case 'a').pipeline"
    assert err.problem.startswith(f"{pipe}: ") and "slo_ms" in err.problem


def test_a_reference_the_suite_names_is_among_its_controllers(tmp_path):
    named = {**GOOD, "controllers": ["loki", "trigger"], "reference": "inferline"}
    err = _error(tmp_path, named)  # it was silently replaced by loki
    assert err.field == "reference" and "'inferline' is not among" in err.problem
    # the default reference (trigger) may be missing: the first controller stands in
    assert load_suite(_write(tmp_path, {**GOOD, "controllers": ["loki"]})).spec.reference


def test_bad_yaml_names_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_suite(p)
    assert info.value.source == str(p) and "YAML" in info.value.problem


def test_unknown_suite_name():
    with pytest.raises(ConfigError) as info:
        suite_path("nonexistent-suite")
    assert "validation" in info.value.fix


def test_hash_ignores_layout_but_not_content(tmp_path):
    a = load_suite(_write(tmp_path, GOOD, "a.yaml"))
    p = tmp_path / "b.yaml"
    p.write_text("# a comment\n" + yaml.safe_dump(GOOD, default_flow_style=True))
    assert load_suite(p).hash == a.hash
    changed = {**GOOD, "seeds": [0, 2]}
    assert load_suite(_write(tmp_path, changed, "c.yaml")).hash != a.hash


def test_hash_covers_trace_file_bytes(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,qps\n0,10\n1,20\n2,30\n")
    data = {**GOOD, "cases": [{**GOOD["cases"][0], "traffic": "t.csv"}]}
    h1 = load_suite(_write(tmp_path, data)).hash
    trace.write_text("time_s,qps\n0,10\n1,20\n2,31\n")
    assert load_suite(_write(tmp_path, data)).hash != h1


def test_frozen_suite_checks_its_hash(tmp_path):
    src = suite_path("test")
    stored = src.with_suffix(".sha256").read_text().split()[0]
    assert stored == load_suite("test").hash
    copy = tmp_path / "test.yaml"
    copy.write_text(src.read_text())
    (tmp_path / "test.sha256").write_text(stored + "\n")
    assert load_suite(copy).hash == stored  # an unchanged copy loads
    copy.write_text(src.read_text().replace("seeds: [100, 101, 102]", "seeds: [100, 101]"))
    with pytest.raises(FrozenSuiteChanged) as info:
        load_suite(copy)
    assert "changed" in info.value.problem and "test.sha256" in info.value.fix
    load_suite(copy, check_frozen=False)  # --print-hash path
    (tmp_path / "test.sha256").unlink()
    with pytest.raises(FrozenSuiteChanged):
        load_suite(copy)


def test_a_generator_change_changes_a_frozen_suites_hash(monkeypatch):
    import lokirl.traces as traces

    load_suite("test")  # loads as stored
    real = traces.generate

    def drifted(family, duration_s, rng, **params):
        out = real(family, duration_s, rng, **params)
        return type(out)(out.rates * 1.01, out.bin_s, name=out.name)

    monkeypatch.setattr(traces, "generate", drifted)
    with pytest.raises(FrozenSuiteChanged):
        load_suite("test")
    assert load_suite("validation").hash  # not frozen: its hash covers the spec only


def test_case_trace_is_seeded_windowed_and_rescaled():
    s = parse_suite(GOOD)
    a = s.spec.cases[0]
    t1, t2 = case_trace(a, 100.0), case_trace(a, 100.0)
    assert np.array_equal(t1.rates, t2.rates)
    assert t1.duration_s == pytest.approx(20)
    assert t1.rates.min() == pytest.approx(30.0) and t1.rates.max() == pytest.approx(200.0)
    b = s.spec.cases[1]  # load: null plays the rates as they are
    tb = case_trace(b, 100.0)
    assert tb.duration_s == pytest.approx(20) and tb.rates.max() > 200


def test_adhoc_suite_from_a_trace_file(tmp_path):
    trace = tmp_path / "my trace.csv"
    trace.write_text("time_s,qps\n" + "".join(f"{i},{10 + i}\n" for i in range(30)))
    s = adhoc_suite(str(trace), workers=8, duration_s=20, seeds=(0,))
    (case,) = s.spec.cases
    assert case.id == "my-trace" and case.workers == 8 and s.spec.seeds == (0,)
    assert case_trace(case, 10.0).rates.max() == pytest.approx(20.0)


def test_a_per_minute_trace_plays_exactly_its_duration_and_an_empty_load_is_refused(tmp_path):
    from lokirl.experiments.runner import check_load_units

    trace = tmp_path / "per_minute.csv"
    trace.write_text("time_s,qps\n" + "".join(f"{60 * i},{10 + i}\n" for i in range(30)))
    (case,) = adhoc_suite(str(trace), workers=8, duration_s=20, seeds=(0,)).spec.cases
    series = case_trace(case, 10.0)
    assert series.duration_s == pytest.approx(20.0)  # not the whole first minute
    assert series.bin_s <= 1.0
    # a load range that leaves less than one request: refused before any episode
    empty = adhoc_suite(str(trace), workers=8, duration_s=20, seeds=(0,), load=(0.0, 1e-4))
    with pytest.raises(ConfigError, match=r"load.*requests expected") as err:
        check_load_units(empty)
    assert "raise the load range" in err.value.fix


def test_a_folder_given_as_a_trace_is_named_so(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a trace file"):
        adhoc_suite(str(tmp_path), workers=8, duration_s=20, seeds=(0,))


def test_adhoc_suite_loads_in_a_unit_the_pipeline_has(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,qps\n" + "".join(f"{i},{10 + i}\n" for i in range(30)))
    (ta,) = adhoc_suite(str(trace), workers=20, duration_s=20, seeds=(0,)).spec.cases
    assert ta.load_unit == "full_accuracy" and tuple(ta.load) == (0.3, 2.0)
    (sm,) = adhoc_suite(
        str(trace), pipeline="social_media", workers=20, duration_s=20, seeds=(0,)
    ).spec.cases
    assert sm.load_unit == "max" and tuple(sm.load) == (0.05, 0.4)
    (own,) = adhoc_suite(
        str(trace), pipeline="social_media", load=(0.1, 0.2), load_unit="max", seeds=(0,)
    ).spec.cases
    assert own.load_unit == "max" and tuple(own.load) == (0.1, 0.2)


def test_adhoc_suite_reads_the_file_before_playing_and_takes_a_column(tmp_path):
    """A timestamp CSV with several columns is refused at once, and played with its column."""
    trace = tmp_path / "log.csv"
    trace.write_text("user,ts\n" + "".join(f"u{i},{i * 0.1:.1f}\n" for i in range(300)))
    with pytest.raises(ConfigError) as err:
        adhoc_suite(str(trace), workers=8, duration_s=20, seeds=(0,))
    assert err.value.field.endswith(".traffic") and "--column" in err.value.fix
    s = adhoc_suite(str(trace), workers=8, duration_s=20, seeds=(0,), column="ts")
    (case,) = s.spec.cases
    assert case.traffic.column == "ts"
    played = case_trace(case, 10.0)  # a constant 10/s: mapped to the middle of 3..20
    assert played.duration_s >= 20 and played.rates.max() == pytest.approx(11.5)


def test_auto_load_range_uses_a_unit_the_pipeline_has():
    from lokirl.core.pipeline import Cluster
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.experiments.suites import auto_load_range, capacities

    ta = load_pipeline("traffic_analysis")
    caps = capacities(ta, Cluster.homogeneous(ta, 20))
    lo, hi, unit = auto_load_range(caps)
    assert unit == "full_accuracy" and caps["full_accuracy_ok"]
    assert (lo, hi) == pytest.approx((0.3 * caps["full_accuracy"], 2.0 * caps["full_accuracy"]))
    sm = load_pipeline("social_media")
    caps = capacities(sm, Cluster.homogeneous(sm, 20))
    lo, hi, unit = auto_load_range(caps)
    # its most accurate variants miss the SLO: the full-accuracy "capacity" is a sliver
    assert unit == "max" and not caps["full_accuracy_ok"]
    assert (lo, hi) == pytest.approx((0.05 * caps["max"], 0.4 * caps["max"]))
    assert hi > 5 * 2.0 * caps["full_accuracy"]  # far above the old default


def test_with_swap_sets_every_case_and_keeps_the_hash():
    suite = load_suite("dev")
    assert {c.swap for c in suite.spec.cases} == {"overlap", "stop"}
    free = with_swap(suite, "free")
    assert {c.swap for c in free.spec.cases} == {"free"}
    assert [c.id for c in free.spec.cases] == [c.id for c in suite.spec.cases]
    assert free.hash == suite.hash  # frozen check ran on the suite; the run records the mode
    with pytest.raises(ConfigError, match="overlap, stop, free"):
        with_swap(suite, "instant")


def test_generator_parameters_are_checked_when_the_suite_is_read(tmp_path):
    case = {**GOOD["cases"][0], "traffic": {"generator": "bursts", "seed": 5}}
    case["traffic"]["params"] = {"nosie": 0.1}  # was a TypeError naming bursts()
    err = _error(tmp_path, {**GOOD, "cases": [case]})
    assert err.field == "cases[0] (case 'a').traffic.params"
    assert "no parameter 'nosie'" in err.problem and "did you mean 'noise'" in err.fix
    case["traffic"]["params"] = {"noise": -5}  # was accepted
    err = _error(tmp_path, {**GOOD, "cases": [case]})
    assert "noise must be a finite number >= 0" in err.problem


def test_errors_name_defaults_and_the_yaml_line(tmp_path):
    err = _error(tmp_path, {**GOOD, "defaults": {**GOOD["defaults"], "swop": "stop"}})
    assert err.field == "defaults.swop" and err.problem == "unknown field"
    # the same key written in a case is named in the case
    cases = [{**GOOD["cases"][0], "swop": "stop"}, GOOD["cases"][1]]
    assert _error(tmp_path, {**GOOD, "cases": cases}).field.startswith("cases[0].swop")
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\ncases: [a\n")
    with pytest.raises(ConfigError) as info:
        load_suite(p)
    assert info.value.problem.startswith("not valid YAML at line 3, column 1 (expected")


def test_a_relative_pipeline_beside_the_suite_says_where_it_was_looked_for(tmp_path, monkeypatch):
    suites = tmp_path / "suites"
    suites.mkdir()
    example = Path(__file__).parents[2] / "configs" / "pipelines" / "example.yaml"
    (suites / "pipe.yaml").write_text(example.read_text())
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    path = _write(suites, {**GOOD, "cases": [{**GOOD["cases"][0], "pipeline": "pipe.yaml"}]})
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    err = info.value
    assert err.field == "cases[0] (case 'a').pipeline"
    assert f"no such file in {elsewhere}" in err.problem and "not the suite's" in err.problem
    assert err.fix == f"write {(suites / 'pipe.yaml').resolve()}"
