"""Paired rollouts from a fallback: what each deviation gains over following it."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from lokirl.agents.deviations import deviation_actions, study_deviations
from lokirl.envs.features import FOLLOW
from lokirl.envs.serving import LokiServingEnv

from .conftest import ENV

CFG = replace(
    ENV, fallback="periodic(period_s=1.0,headroom=1.3)", headrooms=(1.0, 1.5), engine="fluid"
)


def test_gains_are_window_differences_against_following():
    study = study_deviations(CFG, episodes=1, states_per_episode=2, horizon=3, seed=7)
    assert study.gains.shape == (2, 5) and study.labels[0] == "keep"
    assert study.labels[1:] == ("warm@1", "warm@1.5", "cold@1", "cold@1.5")
    # replay one branch by hand: the same seed, follow up to the state, the deviation,
    # follow again; its window reward minus following's is the recorded gain
    t, j = int(study.step[0]), 3
    env = LokiServingEnv(CFG)
    follow = np.array([FOLLOW, 0])
    rewards = {}
    for name, first in (("follow", follow), ("dev", deviation_actions(2)[j])):
        env.reset(seed=7)
        rs = [env.step(a)[1] for a in [follow] * t + [first] + [follow] * 2]
        rewards[name] = sum(rs[t:])
    assert study.gains[0, j] == pytest.approx(rewards["dev"] - rewards["follow"], abs=1e-9)
    assert study.base_window[0] == pytest.approx(rewards["follow"], abs=1e-9)
    s = study.summary(margin=0.0)
    assert s["states"] == 2 and s["best_gain_mean"] == pytest.approx(study.gains.max(1).mean())
    # the sub-second arrivals kept per state are those the host counted before it
    from lokirl.agents.deviations import RECENT_EPOCHS

    env.reset(seed=7)
    seen = [np.asarray(env.context.arrival_bins, dtype=float)]  # the reset's epoch
    for _ in range(t):
        env.step(follow)
        seen.append(np.asarray(env.context.arrival_bins, dtype=float))
    row = study.recent_bins[0]
    per = len(seen[-1])
    assert row.shape == (RECENT_EPOCHS * per,) and per > 0
    kept = seen[-RECENT_EPOCHS:]
    assert np.array_equal(row[len(row) - per * len(kept) :], np.concatenate(kept))
    assert np.isnan(row[: len(row) - per * len(kept)]).all()


def test_following_at_another_setting_is_a_deviation_from_the_fallbacks_own():
    # the fallback's own setting is the second choice: following means index 1
    settings = ((1, 0.01, 0.7), (2, 0.05, 1.0), (4, 0.02, 0.8))
    cfg = replace(
        ENV,
        fallback="fluid(horizon=2)",
        follow_settings=settings,
        feature_version=2,
        headrooms=(1.0, 1.5),
        engine="fluid",
    )
    study = study_deviations(cfg, episodes=1, states_per_episode=1, horizon=3, seed=7)
    assert study.labels[-2:] == ("follow@h1,b0.01,d0.7", "follow@h4,b0.02,d0.8")
    assert study.actions[-2:].tolist() == [[FOLLOW, 0], [FOLLOW, 2]]
    t, j = int(study.step[0]), len(study.labels) - 1
    env = LokiServingEnv(cfg)
    follow = np.array([FOLLOW, 1])
    rewards = {}
    for name, first in (("follow", follow), ("dev", study.actions[j])):
        env.reset(seed=7)
        rs = [env.step(a)[1] for a in [follow] * t + [first] + [follow] * 2]
        rewards[name] = sum(rs[t:])
    assert study.gains[0, j] == pytest.approx(rewards["dev"] - rewards["follow"], abs=1e-9)
    with pytest.raises(ValueError, match="own setting"):
        study_deviations(
            replace(cfg, follow_settings=settings[:1]), episodes=1, states_per_episode=1
        )


@pytest.mark.parametrize("branch", ["fork", "replay"])
def test_a_study_needs_a_fallback_and_a_replayable_environment(monkeypatch, branch):
    with pytest.raises(ValueError, match="fallback"):
        study_deviations(ENV, episodes=1, states_per_episode=1)
    calls = {"n": 0}
    step = LokiServingEnv.step

    def noisy(self, action):  # a reward that differs from one replay to the next
        calls["n"] += 1
        obs, r, term, trunc, info = step(self, action)
        return obs, r + 1e-3 * calls["n"], term, trunc, info

    monkeypatch.setattr(LokiServingEnv, "step", noisy)
    with pytest.raises(ValueError, match="deterministic replay"):
        study_deviations(CFG, episodes=1, states_per_episode=1, horizon=2, branch=branch)


def test_a_persistent_deviation_is_played_for_its_epochs():
    study = study_deviations(CFG, episodes=1, states_per_episode=1, horizon=3, persist=3, seed=7)
    t, j = int(study.step[0]), 1
    env = LokiServingEnv(CFG)
    follow, dev = np.array([FOLLOW, 0]), deviation_actions(2)[j]
    sums = []
    for acts in ([follow] * (t + 3), [follow] * t + [dev] * 3):
        env.reset(seed=7)
        sums.append(sum([env.step(a)[1] for a in acts][t:]))
    assert study.gains[0, j] == pytest.approx(sums[1] - sums[0], abs=1e-9)
    assert study.summary()["persist"] == 3
    with pytest.raises(ValueError, match="persist"):
        study_deviations(CFG, episodes=1, states_per_episode=1, horizon=3, persist=4)


def test_forked_branches_give_the_replayed_figures():
    kw = dict(episodes=1, states_per_episode=2, horizon=3, persist=2, seed=11)
    replayed = study_deviations(CFG, branch="replay", **kw)
    forked = study_deviations(CFG, branch="fork", jobs=2, **kw)
    assert np.array_equal(forked.step, replayed.step)
    assert np.array_equal(forked.gains, replayed.gains)
    assert np.array_equal(forked.base_window, replayed.base_window)
    with pytest.raises(ValueError, match="branch"):
        study_deviations(CFG, branch="clone", **kw)


def test_a_failing_forked_branch_fails_the_study(monkeypatch):
    step = LokiServingEnv.step
    parent = os.getpid()

    def broken_in_child(self, action):
        if os.getpid() != parent:
            raise RuntimeError("solver exploded")
        return step(self, action)

    monkeypatch.setattr(LokiServingEnv, "step", broken_in_child)
    with pytest.raises(RuntimeError, match="solver exploded"):
        study_deviations(CFG, episodes=1, states_per_episode=1, horizon=2, branch="fork")
