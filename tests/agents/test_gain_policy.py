"""A gain policy: ridge fits of deviation gains, played as a controller that holds its choice."""

from __future__ import annotations

import numpy as np
import pytest

import lokirl.agents  # noqa: F401 - registers gain:
from lokirl.agents.deviations import study_deviations
from lokirl.agents.gain_policy import GainModel, fit_gain_model, held_out_gain, load_gain_model
from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.envs.features import FOLLOW, KEEP_PLAN
from lokirl.envs.serving import EnvConfig, EpisodeRandomisation
from lokirl.errors import ConfigError
from lokirl.traces import RateSeries

ENV = EnvConfig(
    pipeline="traffic_analysis",
    workers=20,
    episode_s=12,
    traces=("gen:bursts",),
    engine="fluid",
    time_limit_s=0.2,
    demand_quantum=0.05,
    feature_version=2,
    headrooms=(1.3, 1.6),
    fallback="periodic(period_s=1.0,headroom=1.6,com=0.5)",
    randomise=EpisodeRandomisation(workers=(10, 40)),
)


@pytest.fixture(scope="module")
def study():
    return study_deviations(ENV, episodes=2, states_per_episode=3, horizon=4, persist=4, seed=3)


def _model(study, keep_bias: float) -> GainModel:
    """A model whose only signal is a constant gain of ``keep_bias`` for keeping."""
    gains = np.full_like(study.gains, -1.0)
    gains[:, 0] = keep_bias
    return fit_gain_model(study.obs, gains, study.actions, study.labels, study.spec, 4, ridge=1.0)


def test_fit_recovers_a_linear_gain_and_round_trips(study, tmp_path):
    rng = np.random.default_rng(0)
    obs = study.obs
    true_w = rng.normal(size=(obs.shape[1], len(study.actions)))
    x = (obs - obs.mean(0)) / np.maximum(obs.std(0), 1e-6)
    gains = x @ true_w + 0.5
    m = fit_gain_model(obs, gains, study.actions, study.labels, study.spec, 4, ridge=1e-6)
    np.testing.assert_allclose(m.predict(obs), gains, atol=1e-4)
    back = load_gain_model(m.save(tmp_path / "gain.json"))
    np.testing.assert_allclose(back.predict(obs), m.predict(obs))
    assert back.labels == study.labels and back.hold_epochs == 4 and back.meta["ridge"] == 1e-6
    with pytest.raises(ValueError, match="gains"):
        fit_gain_model(obs, gains[:, :2], study.actions, study.labels, study.spec, 4)


def test_controller_holds_a_winning_deviation_and_follows_otherwise(study, tmp_path):
    from lokirl.sim import SimConfig, simulate

    pipe = load_pipeline("traffic_analysis")
    trace = RateSeries(np.full(12, 900.0), 1.0, "flat")
    runs = {}
    for name, bias in (("keep", 5.0), ("follow", -5.0)):
        path = _model(study, bias).save(tmp_path / f"{name}.json")
        ctl = make_controller(f"gain:{path}")
        res = simulate(pipe, Cluster.homogeneous(pipe, 20), trace, ctl, SimConfig())
        assert res.frames.conserved
        runs[name] = (res.solves, ctl.decisions, ctl.deviations, ctl._action[0])
    # keeping: the first plan, then every decision point holds it (no more solves)
    assert runs["keep"][0] == 1 and runs["keep"][2] == runs["keep"][1] >= 2
    assert runs["keep"][3] == KEEP_PLAN
    # following the periodic fallback: a solve every epoch, no deviation
    assert runs["follow"][0] >= 10 and runs["follow"][2] == 0 and runs["follow"][3] == FOLLOW


def test_a_gain_policy_is_refused_where_it_was_not_fitted(study, tmp_path):
    path = _model(study, 1.0).save(tmp_path / "g.json")
    ctl = make_controller(f"gain:{path}")
    social = load_pipeline("social_media")
    with pytest.raises(ConfigError) as err:
        ctl.bind(social, Cluster.homogeneous(social, 20), "overlap")
    assert err.value.field == "tasks"
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError, match="not a gain policy"):
        make_controller(f"gain:{bad}")
    with pytest.raises(ConfigError, match="no such file"):
        make_controller(f"gain:{tmp_path / 'missing.json'}")
    assert study.spec.fallback  # the spec it was fitted with names the fallback


def test_a_gain_policy_plays_the_environment_and_its_own_states_can_be_studied(study):
    keep = _model(study, 5.0).behaviour()
    follow = _model(study, -5.0).behaviour()
    obs = study.obs[0]
    # decides at step 0 and every hold_epochs (4) steps, holds in between
    assert [int(keep(obs, t)[0]) for t in range(6)] == [KEEP_PLAN] * 6
    assert [int(follow(obs, t)[0]) for t in range(6)] == [FOLLOW] * 6
    # the states a keeping policy visits: gains against following from each state
    kw = dict(episodes=1, states_per_episode=2, horizon=3, persist=3, seed=5, behaviour=keep)
    forked = study_deviations(ENV, branch="fork", **kw)
    replayed = study_deviations(ENV, branch="replay", **kw)
    assert np.array_equal(forked.gains, replayed.gains)
    assert np.array_equal(forked.base_window, replayed.base_window)
    # the player's episode is not the fallback's (it keeps its first plan)
    by_fallback = study_deviations(
        ENV, episodes=1, states_per_episode=2, horizon=3, persist=3, seed=5
    )
    assert not np.allclose(forked.episode_rewards, by_fallback.episode_rewards)
    assert not np.allclose(forked.obs, by_fallback.obs)
    # one gain by hand: the player up to the state, then the deviation or following
    from lokirl.agents.deviations import deviation_actions
    from lokirl.envs.serving import LokiServingEnv

    t, j = int(forked.step[0]), 2
    env, sums = LokiServingEnv(ENV), {}
    for name, first in (("follow", np.array([FOLLOW, 0])), ("dev", deviation_actions(2)[j])):
        obs, _ = env.reset(seed=5)
        player = _model(study, 5.0).behaviour()
        for i in range(t):
            obs = env.step(player(obs, i))[0]
        sums[name] = sum(env.step(first)[1] for _ in range(3))
    assert forked.gains[0, j] == pytest.approx(sums["dev"] - sums["follow"], abs=1e-9)
    assert forked.base_window[0] == pytest.approx(sums["follow"], abs=1e-9)


def test_the_held_out_rule_finds_a_gain_a_feature_predicts_and_none_in_noise():
    rng = np.random.default_rng(0)
    n = 200
    episode = np.repeat(np.arange(40), 5)
    x = rng.normal(size=(n, 3))
    # deviation 0 gains when x0 > 0 and loses otherwise; deviation 1 always loses
    gains = np.c_[np.where(x[:, 0] > 0, 1.0, -1.0), np.full(n, -0.5)]
    found = held_out_gain(x, gains, episode, 1.0)
    assert found["lo"] > 0.3 and 0.3 < found["share_deviating"] < 0.7
    assert found["oracle_gain_per_state"] == pytest.approx((x[:, 0] > 0).mean())
    # the same gains against features that do not predict them: nothing held out
    blind = held_out_gain(rng.normal(size=(n, 3)), gains, episode, 100.0)
    assert blind["gain_per_state"] < found["gain_per_state"] - 0.3 and blind["lo"] < 0
