import time

import numpy as np
import pytest
import torch

from lokirl.forecast import (
    ForecastError,
    LearnedForecaster,
    ModelConfig,
    default_model_path,
    evaluate,
    load_artifact,
    make_forecaster,
    save_artifact,
)
from lokirl.forecast.train import TrainConfig, build_dataset, make_windows, train

TINY = TrainConfig(
    model=ModelConfig(window=16, ref_s=4, hidden=32, horizons_s=(1, 5)),
    n_synthetic=8,
    synthetic_s=200,
    traces=("step_600s",),
    trace_repeats=2,
    epochs=3,
    batch_size=256,
)


@pytest.fixture(scope="module")
def tiny():
    return train(TINY)


def test_make_windows_targets():
    rates = np.arange(10, dtype=float)
    cfg = ModelConfig(window=3, ref_s=1, horizons_s=(1, 2))
    x, y, mask = make_windows(rates, cfg, np.array([0, 2, 8]))
    assert x[0].tolist() == [0, 0, 0] and x[1].tolist() == [0, 1, 2]
    np.testing.assert_allclose(np.expm1(y[1]), [3.0, 3.5])
    assert mask[2].tolist() == [True, False]


def test_time_split_keeps_validation_after_training():
    data = build_dataset(TINY, np.random.default_rng(0))
    assert len(data["xt"]) > 1000 and len(data["xv"]) > 100
    assert data["mt"].any() and data["mv"].any()


def test_smoke_training_reaches_small_loss(tiny):
    first, last = tiny.history[0], tiny.history[-1]
    assert last["train/loss"] < first["train/loss"]
    assert last["val/mean_loss"] < 0.2
    assert tiny.seconds < 60


def test_learned_forecaster_on_constant(tiny):
    f = LearnedForecaster(tiny.artifact)
    s = f.init_state()
    for _ in range(40):
        s = f.update(s, 300.0)
    out = f.predict(s, (1, 3, 5))
    assert out.mean[0] == pytest.approx(300, rel=0.15)
    assert all(u >= m for m, u in zip(out.mean, out.upper, strict=True))


def test_save_load_round_trip_identical(tiny, tmp_path):
    path = save_artifact(tiny.artifact, tmp_path / "m.pt")
    a, b = LearnedForecaster(tiny.artifact), make_forecaster(f"learned:{path}")
    rates = np.random.default_rng(1).poisson(200, 50).astype(float)
    sa, sb = a.init_state(), b.init_state()
    for r in rates:
        sa, sb = a.update(sa, r), b.update(sb, r)
        assert a.predict(sa, (1, 5)) == b.predict(sb, (1, 5))
    art = load_artifact(path)
    assert art.config == TINY.model and art.meta["n_train"] == tiny.n_train


def test_numpy_forward_matches_torch(tiny):
    f = LearnedForecaster(tiny.artifact)
    x = np.random.default_rng(0).normal(size=(5, TINY.model.n_inputs)).astype(np.float32)
    with torch.inference_mode():
        ref = f._net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(f._raw(x), ref, rtol=1e-4, atol=1e-5)


def test_short_history_pads_and_bad_input(tiny):
    f = LearnedForecaster(tiny.artifact)
    s = f.update(f.init_state(), 100.0)
    assert f.predict(s, (1,)).mean[0] > 0
    with pytest.raises(ForecastError, match="invalid"):
        f.update(s, float("nan"))
    with pytest.raises(ForecastError, match="invalid"):
        f.update(s, -3)


def test_bad_artifacts(tmp_path):
    with pytest.raises(ForecastError, match="no such forecaster model"):
        make_forecaster(f"learned:{tmp_path / 'none.pt'}")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ForecastError, match="not a readable model"):
        load_artifact(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ForecastError, match="not a lokirl forecaster"):
        load_artifact(other)


def test_bundled_default_model_is_small_fast_and_sane():
    assert default_model_path().stat().st_size < 400_000
    f = make_forecaster("learned")
    s = f.init_state()
    for r in np.full(100, 250.0):
        s = f.update(s, r)
    t0 = time.perf_counter()
    for _ in range(200):
        s = f.update(s, 250.0)
        out = f.predict(s, (1, 5, 10, 30, 60))
    per_step = (time.perf_counter() - t0) / 200
    assert per_step < 1e-3
    np.testing.assert_allclose(out.mean, 250, rtol=0.15)


def test_evaluate_reports_every_forecaster():
    rates = 100 + 3.0 * np.arange(200)
    res = evaluate([make_forecaster("last"), make_forecaster("trend")], rates, (1, 5))
    m = res["metrics"]
    assert set(m) == {"last", "trend"}
    assert m["trend"][5]["mape"] < 1e-6 < m["last"][5]["mape"]
    assert m["last"][5]["peak_under_mean"] == 100  # last value always lags a rising ramp
    assert 0 <= m["last"][5]["peak_under"] <= 100


def _zero_model(cfg=None, **over):
    """An artifact whose network outputs zero everywhere (mean = upper = EWMA)."""
    import dataclasses

    from lokirl.forecast.model import Artifact, Norm, build_net

    cfg = dataclasses.replace(cfg or ModelConfig(), **over)
    net = build_net(cfg)
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    return Artifact(cfg, Norm(), {k: v.clone() for k, v in net.state_dict().items()})


def test_residual_formulation_is_ewma_when_the_model_outputs_zero():
    f = LearnedForecaster(_zero_model(calib_step=0.0))
    e = make_forecaster("ewma")
    rates = np.random.default_rng(3).poisson(300, 200).astype(float)
    sf, se = f.init_state(), e.init_state()
    for t, r in enumerate(rates):
        sf, se = f.update(sf, r), e.update(se, r)
        if t >= 63:  # a full window: the EWMA weights left out are below 1e-13
            np.testing.assert_allclose(
                f.predict(sf, (1, 5, 30)).mean, e.predict(se, (1, 5, 30)).mean, rtol=1e-9
            )


@pytest.mark.parametrize("blend", [0.0, 0.05])
def test_online_calibration_tends_to_the_target_coverage(blend):
    # zero model: the raw upper bound is the EWMA itself, far below p90 of noisy traffic
    f = LearnedForecaster(_zero_model(calib_step=0.05, blend_rate=blend))
    rng = np.random.default_rng(0)
    rates = rng.poisson(400 * rng.lognormal(0, 0.2, 3000)).astype(float)
    mean, upper = evaluate_rollout(f, rates)
    from lokirl.forecast.evaluate import future_means

    actual = future_means(rates, (1, 5, 30))
    for j in range(3):
        a, u = actual[500:, j], upper[500:, j]
        ok = np.isfinite(a)
        assert abs(np.mean(a[ok] <= u[ok]) - 0.9) < 0.03
    s = f.init_state()
    for r in rates:
        s = f.update(s, r)
    assert np.all(np.abs(f.coverage(s) - 0.9) < 0.03)
    assert np.all(s.margin > 0)  # it had to widen the bound


def test_calibration_off_keeps_raw_upper_head():
    f = LearnedForecaster(_zero_model(calib_step=0.0))
    rates = np.random.default_rng(1).poisson(400, 300).astype(float)
    mean, upper = evaluate_rollout(f, rates)
    np.testing.assert_allclose(mean, upper)


def evaluate_rollout(f, rates):
    from lokirl.forecast.evaluate import rollout

    return rollout(f, rates, (1, 5, 30))


def test_legacy_v1_artifact_still_loads(tmp_path):
    import dataclasses

    art = _zero_model(ref="mean", multiscale=False)
    path = save_artifact(art, tmp_path / "v1.pt")
    blob = torch.load(path, weights_only=True)
    blob["version"] = 1
    for k in ("ref", "ref_com", "multiscale", "calib_step", "blend_rate"):
        blob["config"].pop(k)
    torch.save(blob, path)
    loaded = load_artifact(path)
    assert loaded.config == dataclasses.replace(art.config, calib_step=0.0, blend_rate=0.0)
    f = LearnedForecaster(loaded)
    s = f.update(f.init_state(), 100.0)
    assert f.predict(s, (1,)).mean[0] == pytest.approx(100.0)


def test_bundled_forecaster_never_saw_a_test_suite_trace():
    """``default.pt`` may feed a controller played on the frozen test suite: it was not
    trained on any bundled trace that suite plays (the trainer leaves them out by default)."""
    from lokirl.experiments.suites import load_suite
    from lokirl.forecast.train import TEST_TRACES, training_series

    meta = load_artifact(default_model_path()).meta["train_config"]
    trained_on = set(meta["traces"]) - set(meta["holdout"])
    played = {c.traffic.trace for c in load_suite("test").spec.cases if c.traffic.trace}
    played = {"twitter_zipf_exponential" if "gpt2" in t else t for t in played}
    assert played <= set(TEST_TRACES) and not trained_on & played, trained_on & played
    assert TrainConfig().holdout == TEST_TRACES
    # and the trainer's series hold none of them
    cfg = TrainConfig(n_synthetic=0, traces=("step_600s", *TEST_TRACES), trace_repeats=1)
    assert len(training_series(cfg, np.random.default_rng(0))) == 1
