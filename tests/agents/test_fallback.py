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


def test_a_policy_can_choose_the_fallbacks_horizon_each_epoch(tmp_path):
    from lokirl.agents.imitation import collect
    from lokirl.envs.features import FOLLOW

    cfg = replace(ENV, fallback=FLUID, follow_horizons=(1, 2, 16), feature_version=2)
    env = LokiServingEnv(cfg)
    assert env.features.size == LokiServingEnv(replace(cfg, follow_horizons=())).features.size + 3
    obs, _ = env.reset(seed=2)
    fb = env._fallback
    assert len(env.hints) == 3 and obs.shape == (env.features.size,)
    # the model advanced once per epoch whatever the number of horizons decided on
    frames = []
    for k in range(8):
        obs, *_ = env.step((FOLLOW, k % 3))
        frames.append(fb.frames_modelled)
        assert list(obs[-3:]) == [1.0 if h.resolve else 0.0 for h in env.hints]
    # (the same arrivals through a fallback deciding at one horizon: the same frames fed)
    one = LokiServingEnv(replace(cfg, follow_horizons=()))
    one.reset(seed=2)
    for _ in range(8):
        one.step((FOLLOW, 0))
    assert frames[-1] == one._fallback.frames_modelled > 0
    # imitation of the fallback picks its own horizon's index, and fits it
    demos = collect(replace(cfg, follow_horizons=(1, 2, 16)), FLUID, 12, seed=5, gamma=0.9)
    assert (demos.actions[:, 0] == FOLLOW).all() and (demos.actions[:, 1] == 1).all()
    assert demos.resolved.all()
    # cloned with index smoothing, the other horizons keep some probability
    import torch as th
    from stable_baselines3 import PPO

    from lokirl.agents.imitation import ImitationParams, clone

    model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu")
    p = ImitationParams(teacher="x", epochs=300, batch_size=32, smoothing=0.1, index_smoothing=0.2)
    assert clone(model, demos, p)["agreement_headroom"] == 1.0
    with th.no_grad():
        probs = model.policy.get_distribution(th.as_tensor(demos.obs)).distribution[1].probs
    n = env.action_space.nvec[1]
    assert abs(float(probs[:, 1].mean()) - (1 - 0.2 + 0.2 / n)) < 0.03
    with pytest.raises(ValueError, match="own horizon"):
        collect(replace(cfg, follow_horizons=(1, 16)), FLUID, 4, seed=5, gamma=0.9)


def test_the_fallbacks_decisions_at_several_horizons_advance_its_model_once():
    env = LokiServingEnv(replace(ENV, fallback=FLUID))
    env.reset(seed=4)
    a, b = make_controller("fluid(horizon=2)"), make_controller("fluid(horizon=2)")
    for c in (a, b):
        c.bind(env.pipeline, env.cluster, env.swap)
    ctx = env.context
    for _ in range(6):
        one = a.decide(ctx)
        many = b.decide_horizons(ctx, (1, 2, 50))
        assert many[1] == one and a.frames_modelled == b.frames_modelled
        env.advance(one, planner=a)
        ctx = env.context


def test_the_fallbacks_decisions_at_several_settings_are_those_of_each_setting():
    # one model per (burst_s, derate): each decision is what fluid at that setting decides
    env = LokiServingEnv(replace(ENV, fallback=FLUID))
    env.reset(seed=4)
    settings = ((2, 0.05, 1.0), (4, 0.02, 0.8), (1, 0.2, 0.9))
    alone = [make_controller(f"fluid(horizon={h},burst_s={b},derate={d})") for h, b, d in settings]
    many = make_controller("fluid(horizon=2)")
    for c in (*alone, many):
        c.bind(env.pipeline, env.cluster, env.swap)
    ctx = env.context
    differ = 0
    for k in range(10):
        got = many.decide_settings(ctx, settings)
        want = tuple(c.decide(ctx) for c in alone)
        assert got == want
        differ += len(set(got)) > 1
        assert many.frames_modelled == alone[0].frames_modelled
        env.advance(got[k % 3], planner=many)
        ctx = env.context
    assert differ > 0  # the settings do not all agree (the test can tell them apart)
    with pytest.raises(ValueError, match="derate"):
        many.decide_settings(ctx, ((2, 0.05, 0.0),))


def test_a_policy_can_choose_the_fallbacks_setting_each_epoch():
    from lokirl.agents.imitation import collect
    from lokirl.envs.features import FOLLOW, FeatureSpec

    settings = ((2, 0.05, 1.0), (4, 0.02, 0.8), (1, 0.2, 0.9))
    cfg = replace(ENV, fallback=FLUID, follow_settings=settings, feature_version=2)
    env = LokiServingEnv(cfg)
    plain = LokiServingEnv(replace(cfg, follow_settings=()))
    assert env.features.size == plain.features.size + 3
    spec = FeatureSpec.from_dict(env.features.to_dict())
    assert spec == env.features and spec.follow_settings == settings
    assert "follow_settings" not in plain.features.to_dict()  # old files stay as they were
    obs, _ = env.reset(seed=2)
    for k in range(6):
        obs, *_ = env.step((FOLLOW, k % 3))
        assert list(obs[-3:]) == [1.0 if h.resolve else 0.0 for h in env.hints]
    demos = collect(cfg, FLUID, 8, seed=5, gamma=0.9)
    assert (demos.actions[:, 0] == FOLLOW).all() and (demos.actions[:, 1] == 0).all()
    with pytest.raises(ValueError, match="own setting"):
        collect(replace(cfg, follow_settings=settings[1:]), FLUID, 4, seed=5, gamma=0.9)
    with pytest.raises(ValueError, match="not both"):
        replace(env.features, follow_horizons=(2,))


def test_follow_takes_the_decision_at_the_chosen_horizon():
    from lokirl.core.controller import KEEP
    from lokirl.envs.features import FOLLOW, to_decision

    cfg = replace(ENV, fallback=FLUID, follow_horizons=(1, 2, 16), feature_version=2)
    env = LokiServingEnv(cfg)
    env.reset(seed=2)
    spec, ctx, fc = env.features, env.context, env.forecast
    hints = (KEEP, Decision(True, 10.0, False, 0.0, "fluid plan 1"), Decision(True, 20.0))
    assert ctx.plan is not None
    for i, want in enumerate(hints):
        assert to_decision(spec, (FOLLOW, i), ctx, fc, KEEP, hints) is want
        assert to_decision(spec, (FOLLOW, i + 3), ctx, fc, KEEP, hints) is want  # modulo
    # without horizons FOLLOW takes the fallback's own decision
    plain = replace(spec, follow_horizons=())
    assert to_decision(plain, (FOLLOW, 2), ctx, fc, hints[1], hints) is hints[1]


@pytest.mark.parametrize(
    "choices",
    [
        {"follow_horizons": (1, 2, 16)},
        {"follow_settings": ((2, 0.05, 1.0), (1, 0.01, 0.7))},
    ],
)
def test_a_policy_over_horizons_or_settings_is_trained_and_played(tmp_path, monkeypatch, choices):
    from lokirl.agents.train import train

    monkeypatch.setenv("LOKIRL_RUNS_DIR", str(tmp_path))
    cfg = tiny_config("horizons", 32)
    cfg = replace(cfg, env=replace(cfg.env, fallback=FLUID, feature_version=2, **choices))
    path = str(train(cfg, progress=False) / "model.zip")
    ctl = make_controller(f"ppo:{path}")
    for k, v in choices.items():
        assert getattr(ctl.spec, k) == v  # saved with the policy and read back
    env = LokiServingEnv(replace(ENV, fallback=FLUID))
    rates = np.concatenate([np.full(5, 20.0), np.full(5, 60.0)])
    res = simulate(env.pipeline, env.cluster, RateSeries(rates, 1.0), ctl)
    assert res.frames.arrived > 0 and res.frames.conserved
