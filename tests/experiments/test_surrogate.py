"""The fluid surrogate against simpy on a controller's own short trajectories."""

import numpy as np
import pytest

from lokirl.core.controllers import make_controller
from lokirl.envs.serving import LokiServingEnv
from lokirl.experiments.surrogate import ks_distance, play, surrogate_check
from tests.agents.conftest import ENV


def _trigger(env):
    return make_controller("trigger")


def test_ks_distance():
    a = np.arange(100.0)
    assert ks_distance(a, a) == 0.0
    assert ks_distance(a, a + 1000.0) == 1.0
    assert ks_distance(a, a + 50.0) == pytest.approx(0.5)


def test_replaying_decisions_on_the_same_engine_reproduces_the_episode():
    env = LokiServingEnv(ENV)
    first = play(env, _trigger, seed=3, max_steps=10)
    again = play(env, _trigger, seed=3, decisions=first.decisions)
    assert len(first.rewards) == 10
    assert np.array_equal(first.rewards, again.rewards)
    assert np.array_equal(first.observations, again.observations)


def test_surrogate_report_on_a_short_trajectory():
    rep = surrogate_check(ENV, _trigger, seeds=[0, 1], max_steps=10)
    assert rep.steps == 20
    assert len(rep.obs_ks) == len(rep.obs_mae) == LokiServingEnv(ENV).features.size
    assert rep.reward_mae >= abs(rep.reward_bias) >= 0.0
    assert -1.0 <= rep.reward_corr <= 1.0
    assert all(0.0 <= k <= 1.0 for k in rep.obs_ks)
    # The open-loop replay follows the simpy decisions, so the two episodes differ only
    # by the engines: their totals are the sums of the per-step rewards compared.
    assert len(rep.episode_simpy) == len(rep.episode_fluid_replay) == 2
    assert rep.lines()[0].startswith("episodes (seeds 0, 1), 20 steps")
