"""A training file is refused, naming the file, the field and the fix, before training starts."""

from __future__ import annotations

import pytest

from lokirl.agents.config import load_train_config
from lokirl.agents.train_schema import TrainSection
from lokirl.errors import ConfigError

CASES = {
    # types and ranges (the pydantic schema)
    "ppo: {learning_rate: fast}": "ppo.learning_rate",
    "ppo: {gamma: 1.5}": "ppo.gamma",
    "ppo: {net_arch: []}": "ppo.net_arch",
    "ppo: {lr: 0.1}": "ppo.lr",
    "total_timesteps: 0": "total_timesteps",
    "n_envs: -1": "n_envs",
    "name: ../escape": "name",
    "vec_env: threads": "vec_env",
    "torch_threads: 0": "torch_threads",
    "env: {engine: gpu}": "env.engine",
    "env: {load_low: [0.6, 0.1]}": "env.load_low",
    "env: {load_unit: peak}": "env.load_unit",
    "env: {load_unit: max, feature_version: 2}": "env.load_unit",
    "env: {feature_version: 3}": "env.load_unit",
    "env: {headrooms: [1.0, -1.3]}": "env.headrooms.1",
    "env: {weights: {violation: -1}}": "env.weights.violation",
    "env: {epoch_s: .nan}": "env.epoch_s",
    "env: {batch_overhead_s: -0.004}": "env.batch_overhead_s",
    "env: {batch_overhead_s: 0.004, engine: fluid}": "env.batch_overhead_s",
    "env: {batch_overhead_s: 2}": "env.batch_overhead_s",
    "imitation: {steps: 0}": "imitation.steps",
    "constraint: {violation_budget: 2}": "constraint.violation_budget",
    # what the file names (loaded before training)
    "env: {pipeline: no_such_pipeline}": "env.pipeline",
    "env: {workers: 2}": "env.workers",
    "env: {feature_version: 2, randomise: {workers: [10, 1]}}": "env.randomise.workers[1]",
    "env: {feature_version: 2, randomise: {workers_range: [2, 40]}}": "env.randomise.workers_range",
    "env: {traces: [gen:sawtooth]}": "env.traces[0]",
    "env: {traces: [gen:diurnal, no/such/trace.csv]}": "env.traces[1]",
    "env: {forecaster: crystal_ball}": "env.forecaster",
    "baseline: nope": "baseline",
    "imitation: {teacher: nope}": "imitation.teacher",
    "env: {episode_s: 1, epoch_s: 5}": "env.episode_s",
    "env: {follow_horizons: [0]}": "env.follow_horizons.0",
    "env: {follow_horizons: [2, 8]}": "env.follow_horizons",
    "env: {follow_settings: [{horizon: 2, burst_s: 0.1}]}": "env.follow_settings.0.derate",
    "env: {follow_settings: [{horizon: 2, burst_s: 0.1, derate: 3}]}": (
        "env.follow_settings.0.derate"
    ),
    "env: {follow_settings: [{horizon: 2, burst_s: 0.1, derate: 1}]}": "env.follow_settings",
    (
        "env: {fallback: 'fluid(horizon=2)', feature_version: 2,"
        " follow_settings: [{horizon: 2, burst_s: 0.1, derate: 1}]}\n"
        "imitation: {teacher: 'fluid(horizon=2)'}"
    ): "env.follow_settings",
    (
        "env: {fallback: 'fluid(horizon=2)', feature_version: 2, follow_horizons: [1, 4]}\n"
        "imitation: {teacher: 'fluid(horizon=2)'}"
    ): "env.follow_horizons",
    (
        "env: {fallback: fluid, feature_version: 2, follow_horizons: [2],"
        " follow_settings: [{horizon: 2, burst_s: 0.1, derate: 1}]}"
    ): "env.follow_settings",
}


@pytest.mark.parametrize(("text", "field"), list(CASES.items()))
def test_bad_training_file_names_file_field_and_fix(tmp_path, text, field):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(bad)
    assert err.value.field == field, str(err.value)
    assert str(bad) in str(err.value) and "Fix:" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_field_lists_the_section_fields(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: {worker: 20}\n")
    with pytest.raises(ConfigError, match="unknown field") as err:
        load_train_config(bad)
    assert "workers" in err.value.fix and "episode_s" in err.value.fix


def test_schema_defaults_match_the_dataclasses():
    """The schema's defaults are the dataclasses' (a file that sets nothing trains the same)."""
    from dataclasses import asdict

    from lokirl.agents.config import PPOParams, TrainConfig
    from lokirl.envs.serving import EnvConfig, RewardWeights

    sec = TrainSection()
    tc = TrainConfig()
    for name in ("name", "seed", "total_timesteps", "n_envs", "vec_env", "eval_every"):
        assert getattr(sec, name) == getattr(tc, name), name
    for k, v in asdict(PPOParams()).items():
        got = getattr(sec.ppo, k)
        assert (tuple(got) if isinstance(got, list) else got) == v, k
    env = EnvConfig()
    for k in type(sec.env).model_fields:
        if k in ("traces", "randomise", "weights"):
            continue
        got = getattr(sec.env, k)
        assert (tuple(got) if isinstance(got, list) else got) == getattr(env, k), k
    assert sec.env.weights.model_dump() == asdict(RewardWeights())


def _two_column_timestamps(path):
    path.write_text("user,ts\n" + "".join(f"u{i},{i * 0.05:.2f}\n" for i in range(400)))
    return path


def test_a_trace_file_lokirl_cannot_read_is_refused_before_training(tmp_path):
    """A timestamp CSV with two columns needs env.trace_column; the error says so up front."""
    trace = _two_column_timestamps(tmp_path / "requests.csv")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"env: {{traces: [gen:diurnal, '{trace}']}}\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(bad)
    assert err.value.field == "env.traces[1]", str(err.value)
    assert "trace_column" in err.value.fix
    good = tmp_path / "good.yaml"
    good.write_text(f"env: {{traces: ['{trace}'], trace_column: ts}}\n")
    cfg = load_train_config(good)
    assert cfg.env.trace_column == "ts" and cfg.env.traces == (str(trace),)


def test_env_reads_its_trace_files_once_with_the_column(tmp_path):
    from lokirl.envs.serving import EnvConfig, LokiServingEnv
    from lokirl.errors import LokiError

    trace = str(_two_column_timestamps(tmp_path / "requests.csv"))
    with pytest.raises(LokiError, match="column"):
        LokiServingEnv(EnvConfig(traces=(trace,), episode_s=10))
    env = LokiServingEnv(EnvConfig(traces=(trace,), trace_column="ts", episode_s=10))
    series = env._draw_trace()
    assert series.duration_s >= 10 and series.rates.max() > 0
    assert list(env._files) == [trace]


def test_a_pipeline_without_full_accuracy_capacity_is_refused_for_training(tmp_path):
    from lokirl.agents.config import load_train_config
    from lokirl.errors import ConfigError

    p = tmp_path / "sm.yaml"
    p.write_text("env: {pipeline: social_media, workers: 20, traces: ['gen:bursts']}\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(p)
    assert err.value.source == str(p) and err.value.field == "env.pipeline"
    assert "no capacity at full accuracy on 20 workers" in err.value.problem
    assert "load_unit: max" in err.value.fix
    p.write_text("env: {pipeline: traffic_analysis, workers: 20, traces: ['gen:bursts']}\n")
    assert load_train_config(p).env.pipeline == "traffic_analysis"
    p.write_text(
        "env: {pipeline: social_media, workers: 20, traces: ['gen:bursts'],"
        " load_unit: max, feature_version: 3}\n"
    )
    cfg = load_train_config(p)
    assert cfg.env.load_unit == "max" and cfg.env.feature_version == 3
