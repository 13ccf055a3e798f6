"""The guard re-solves when the running plan keeps under-delivering, and only then."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import lokirl.agents  # noqa: F401 - registers ppo-guard
from lokirl.agents.guard import GUARD_REASON, GuardedPolicy
from lokirl.core.controller import KEEP, ControlContext, Decision
from lokirl.core.controllers import make_controller
from lokirl.errors import ConfigError


@dataclass
class _Keeper:
    """A policy that keeps its plan whatever happens (the failure the guard is for)."""

    name: str = "keeper"
    resolve_at: float = -1.0

    def decide(self, context: ControlContext) -> Decision:
        if context.now_s == self.resolve_at:
            return Decision(resolve=True, demand=50.0, reason="policy: warm re-solve x1")
        return KEEP


def _guard(**kw) -> GuardedPolicy:
    g = GuardedPolicy(policy="static", **kw)
    g._inner = _Keeper()
    return g


_PLAN = object()  # a running plan (the guard only asks whether there is one)


def _ctx(now, viol, since=30.0, demand=(80.0, 100.0, 90.0), plan=_PLAN):
    return ControlContext(
        now_s=now,
        demand_history=demand,
        plan=plan,
        time_since_solve_s=since,
        slo_violation_ratio=viol,
    )


def test_it_re_solves_for_the_windows_peak_after_enough_bad_epochs():
    g = _guard(violation=0.05, hits=2, window=5, headroom=1.3)
    assert g.decide(_ctx(1, 0.20)) == KEEP  # one bad epoch is not enough
    assert g.decide(_ctx(2, 0.01)) == KEEP
    d = g.decide(_ctx(3, 0.08))  # the second within five
    assert d.resolve and d.warm_start and d.reason == GUARD_REASON
    assert d.demand == pytest.approx(100.0 * 1.3)  # the window's highest demand
    assert g.fired == 1
    # the evidence is spent: it needs two new bad epochs
    assert g.decide(_ctx(4, 0.30, since=1.0)) == KEEP


def test_it_leaves_the_policy_alone_while_a_solve_is_recent_or_the_policy_acts():
    g = _guard(violation=0.05, hits=1, window=1, cooldown_s=10)
    assert g.decide(_ctx(1, 0.5, since=3.0)) == KEEP  # a solve 3 s ago
    assert g.decide(_ctx(2, 0.5, plan=None)) == KEEP  # nothing to guard yet
    g._inner.resolve_at = 3
    assert g.decide(_ctx(3, 0.5)).reason.startswith("policy: warm")  # the policy's own
    assert g.fired == 0
    assert g.decide(_ctx(4, 0.5)).reason == GUARD_REASON


def test_a_new_episode_starts_a_fresh_watch():
    g = _guard(violation=0.05, hits=2, window=5)
    g.decide(_ctx(50, 0.5))
    g.decide(_ctx(0, 0.5))  # time went back: a new episode, the old bad epoch forgotten
    assert g.fired == 0
    assert g.decide(_ctx(1, 0.5)).reason == GUARD_REASON


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("ppo-guard(hits=7)", "hits must be in 1..window"),
        ("ppo-guard(violation=1.5)", "violation must be in (0, 1)"),
        ("ppo-guard(headroom=0.5)", "headroom must be"),
        ("ppo-guard(hits=2.5)", "whole number"),
        ("ppo-guard(policy=nope)", "unknown controller 'nope'"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(spec, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        make_controller(spec)


def test_the_guarded_shipped_policy_plays_an_episode_as_the_policy_unless_it_fires():
    """On a light case the guard never fires and the episode is the policy's, frame for frame."""
    from lokirl.agents.actors import actor_factory
    from lokirl.agents.rollout import rollout
    from lokirl.envs.serving import LokiServingEnv
    from lokirl.traces import RateSeries

    trace = RateSeries(np.full(30, 120.0), 1.0, "flat")

    def play(spec, overhead=0.0):
        env = LokiServingEnv(
            pipeline="traffic_analysis", workers=20, episode_s=30, batch_overhead_s=overhead
        )
        ep = rollout(env, actor_factory(spec, trace, {}), 2, trace=trace)
        assert ep.result.frames.conserved
        return ep

    alone, guarded = play("ppo"), play("ppo-guard")
    assert guarded.result.frames.counts() == alone.result.frames.counts()
    assert guarded.result.solves == alone.result.solves


def test_the_guard_fires_when_batches_cost_more_than_the_plan_says():
    """With 20 ms more per batch than planned, the policy's plan fails and the guard re-solves."""
    from lokirl.agents.actors import actor_factory
    from lokirl.agents.rollout import rollout
    from lokirl.envs.serving import LokiServingEnv
    from lokirl.traces import RateSeries

    trace = RateSeries(np.concatenate([np.full(10, 66.0), np.full(30, 200.0)]), 1.0, "step")
    env = LokiServingEnv(
        pipeline="traffic_analysis", workers=20, episode_s=40, batch_overhead_s=0.02
    )
    alone = rollout(env, actor_factory("ppo", trace, {}), 2, trace=trace)
    guard = make_controller("ppo-guard(violation=0.05,hits=2,window=5,headroom=1.3)")
    guarded = rollout(env, lambda e: guard, 2, trace=trace)
    assert guard.fired >= 1
    assert guarded.result.solves > alone.result.solves
    f = guarded.result.frames
    assert f.conserved and f.arrived == alone.result.frames.arrived
