"""A residual controller binds a model-based fallback and builds its plans with it."""

import pickle
from dataclasses import replace

import numpy as np
import pytest

import lokirl.agents  # noqa: F401
from lokirl.agents.actors import actor_factory
from lokirl.agents.fluid_chooser import FluidChooser
from lokirl.agents.rollout import rollout
from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import ControlContext, Decision
from lokirl.core.controllers import make_controller
from lokirl.envs import LokiServingEnv
from lokirl.sim.engine import simulate
from lokirl.traces import RateSeries
from tests.agents.conftest import ENV, tiny_config

FLUID = "fluid(horizon=2)"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import os

    from lokirl.agents.train import train

    os.environ["LOKIRL_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    cfg = tiny_config("residual_fluid", 32)
    cfg = replace(cfg, env=replace(cfg.env, fallback=FLUID))
    return str(train(cfg, progress=False) / "model.zip")


def test_the_policy_binds_its_fallback_and_plans_with_it(model):
    env = LokiServingEnv(replace(ENV, fallback=FLUID))
    ctl = make_controller(f"ppo:{model}")
    assert not callable(getattr(ctl, "plan", None))  # nothing to plan with before bind
    ctl.bind(env.pipeline, env.cluster, env.swap)
    fallback = ctl._fallback
    assert isinstance(fallback, FluidChooser) and fallback.library
    # the fallback's first decision names a library plan; the hook installs that plan
    first = fallback.decide(ControlContext(now_s=0.0, demand_history=(20.0,)))
    opts = AllocatorOptions()
    plan = ctl.plan(env.pipeline, env.cluster, first, opts, None)
    assert any(plan is p for p in fallback.library)
    # the policy's own re-solve is the allocator's, as without a hook
    own = Decision(True, 33.3, True, 1.0, "policy: warm re-solve x1.3")
    want = solve(env.pipeline, env.cluster, 33.3, opts, plan)
    assert ctl.plan(env.pipeline, env.cluster, own, opts, plan).groups == want.groups
    # the hook travels to a solving process without the policy
    hook = pickle.loads(pickle.dumps(ctl.plan))
    assert hook(env.pipeline, env.cluster, first, opts, None).groups == plan.groups
    assert len(pickle.dumps(ctl.plan)) < len(pickle.dumps(ctl._model.policy))


def test_the_policy_plays_in_the_simulator_and_in_an_evaluation(model):
    env = LokiServingEnv(replace(ENV, fallback=FLUID))
    rates = np.concatenate([np.full(5, 20.0), np.full(5, 60.0)])
    res = simulate(
        env.pipeline, env.cluster, RateSeries(rates, 1.0), make_controller(f"ppo:{model}")
    )
    f = res.frames
    assert f.arrived > 0 and f.conserved and res.solves >= 1
    ep = rollout(env, actor_factory(f"ppo:{model}", RateSeries(rates, 1.0)), 3)
    assert ep.steps >= 9
