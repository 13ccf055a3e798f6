"""The model-based controller ``fluid(...)``: hindsight's model on the past, deployable."""

import numpy as np
import pytest

import lokirl.agents  # noqa: F401
from lokirl.agents.fluid_chooser import FluidChooser, FluidState, play_epoch
from lokirl.agents.hindsight import (
    HindsightKnobs,
    demand_grid,
    epoch_model,
    plan_library,
    router_estimates,
)
from lokirl.core.allocator import AllocatorOptions
from lokirl.core.controller import ControlContext
from lokirl.core.controllers import make_controller
from lokirl.envs import LokiServingEnv
from lokirl.sim.config import SimConfig
from lokirl.sim.engine import simulate
from lokirl.traces import RateSeries
from tests.agents.conftest import ENV
from tests.agents.test_hindsight import _play, _trace

W = {"violation": 1.0, "reconfiguration": 0.5, "solver": 0.1, "workers": 0.05}


@pytest.fixture(scope="module")
def env():
    e = LokiServingEnv(ENV)
    yield e
    e.close()


def test_the_model_one_epoch_at_a_time_equals_the_whole_episode_model(env):
    lib = plan_library(
        env.pipeline, env.cluster, demand_grid(5, env.max_capacity, 0.2), AllocatorOptions()
    )
    assert len(lib) >= 3
    rng = np.random.default_rng(4)
    n = 12
    rate = np.repeat(rng.uniform(0.2, 1.6, n // 3), 3) * env.max_capacity
    arr = np.sort(np.concatenate([s + rng.random(rng.poisson(r)) for s, r in enumerate(rate)]))
    knobs = HindsightKnobs(burst_s=0.1, derate=0.9)
    whole = epoch_model(arr, n, 1.0, lib, env.cluster.total, knobs, W, env.pipeline)
    state = FluidState(tuple(lib), env.pipeline, env.cluster.total, knobs, W)
    bins = np.bincount(np.minimum((arr / 0.05).astype(int), n * 20 - 1), minlength=n * 20)
    est = router_estimates(arr, n, 1.0)
    for k in range(n):
        value, served, arrived = state.epoch(bins[k * 20 : (k + 1) * 20], 0.05, est[k])
        assert np.array_equal(value, whole.value[k])
        assert np.array_equal(served, whole.served[k])
        assert arrived == whole.arrivals[k]
    # a look leaves the queues as they were
    q = state.q.copy()
    state.epoch(np.full(20, 50.0), 0.05, 0.0, commit=False)
    assert np.array_equal(state.q, q)


def test_models_at_several_knobs_played_together_equal_each_played_alone(env):
    lib = tuple(
        plan_library(
            env.pipeline, env.cluster, demand_grid(5, env.max_capacity, 0.2), AllocatorOptions()
        )
    )
    knobs = [HindsightKnobs(burst_s=b, derate=d) for b, d in ((0.05, 1.0), (0.1, 0.9), (0.01, 0.7))]
    alone = [FluidState(lib, env.pipeline, env.cluster.total, k, W) for k in knobs]
    together = tuple(FluidState(lib, env.pipeline, env.cluster.total, k, W) for k in knobs)
    rng = np.random.default_rng(7)
    for k in range(6):
        bins = rng.poisson(env.max_capacity * rng.uniform(0.3, 1.8) * 0.05, 20).astype(float)
        est = 0.0 if k == 0 else float(bins.sum())
        got = play_epoch(together, bins, 0.05, est)
        for st, (value, served, arrived) in zip(alone, got, strict=True):
            want = st.epoch(bins, 0.05, est)
            assert np.array_equal(value, want[0]) and np.array_equal(served, want[1])
            assert arrived == want[2]
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a.q, b.q)
    # and equal to the one-model loop as it was written before models were stacked
    ref = [FluidState(lib, env.pipeline, env.cluster.total, k, W) for k in knobs]
    for r, t in zip(ref, together, strict=True):
        r.q = t.q.copy()  # from the queues the stacked models left
    for _ in range(4):
        bins = rng.poisson(env.max_capacity * rng.uniform(0.3, 1.8) * 0.05, 20).astype(float)
        got = play_epoch(together, bins, 0.05, float(bins.sum()))
        for st, (value, served, _) in zip(ref, got, strict=True):
            want = _epoch_one_model(st, bins, 0.05, float(bins.sum()))
            assert np.array_equal(value, want[0]) and np.array_equal(served, want[1])
        assert all(np.array_equal(a.q, b.q) for a, b in zip(ref, together, strict=True))
    # the knobs matter: the models' queues differ
    assert not np.array_equal(together[0].q, together[2].q)


def test_models_of_different_libraries_are_not_played_together(env):
    lib = tuple(
        plan_library(
            env.pipeline, env.cluster, demand_grid(5, env.max_capacity, 0.2), AllocatorOptions()
        )
    )
    k = HindsightKnobs(burst_s=0.05, derate=1.0)
    a = FluidState(lib, env.pipeline, env.cluster.total, k, W)
    bins = np.full(20, 5.0)
    copy = FluidState(tuple(list(lib)), env.pipeline, env.cluster.total, k, dict(W))
    assert copy.library is not a.library and copy.weights is not a.weights
    assert len(play_epoch((a, copy), bins, 0.05, 0.0)) == 2  # equal, not the same objects
    for other in (
        FluidState(lib[:-1], env.pipeline, env.cluster.total, k, W),
        FluidState(lib, env.pipeline, env.cluster.total + 1, k, W),
        FluidState(lib, env.pipeline, env.cluster.total, k, {**W, "workers": 1.0}),
    ):
        with pytest.raises(ValueError, match="share the first one's library"):
            play_epoch((a, other), bins, 0.05, 0.0)


def _epoch_one_model(st, bins, dt, estimate):
    """``FluidState.epoch`` as written for one model (the reference of the stacked one)."""
    from lokirl.agents.fluid_values import plan_values

    unit, admit = st._routing(estimate)
    q = st.q.copy()
    qmax = st.capg * st.knobs.burst_s
    per_bin = st.capg * dt
    lost = np.zeros(len(st.owner))
    fed = np.zeros(len(st.owner))
    for a in np.asarray(bins, dtype=float):
        x = unit * a
        q = q + x
        over = np.maximum(0.0, q - per_bin - qmax)
        q = np.maximum(0.0, q - per_bin - over)
        lost += over
        fed += x
    st.q = q
    a_ep = np.asarray([float(np.sum(bins))])
    value, served = plan_values(
        st.library,
        st.owner,
        st.tasks,
        st.accs,
        fed[None, :],
        lost[None, :],
        admit[None, :],
        a_ep,
        st.workers,
        st.weights,
        st.pipeline,
        st.layout,
    )
    return value[0], served[0]


def test_controllers_bound_alike_share_the_switch_terms_and_decide_alike(env):
    import lokirl.agents.fluid_chooser as fc
    from lokirl.agents.hindsight import SwitchModel

    a, b = FluidChooser(), FluidChooser()
    a.bind(env.pipeline, env.cluster, "stop")
    a._switch_model(1.0)
    kept = dict(fc._SWITCH_TERMS)
    b.bind(env.pipeline, env.cluster, "stop")
    sb = b._switch_model(1.0)
    # the second controller computed nothing: it found the first's terms (read-only)
    assert fc._SWITCH_TERMS == kept and b._terms_key in kept
    assert not kept[b._terms_key][0].flags.writeable
    fresh = SwitchModel.build(a.library, env.pipeline, env.cluster.total, 1.0, "stop", a.weights)
    for name in ("f_delay", "f_load", "down", "fixed"):  # as if built afresh
        assert np.array_equal(getattr(sb, name), getattr(fresh, name))
    # another swap mode gets its own terms
    c = FluidChooser()
    c.bind(env.pipeline, env.cluster, "overlap")
    assert not np.array_equal(c._switch_model(1.0).down, fresh.down)


def test_a_library_dropped_from_the_cache_takes_its_switch_terms_along(monkeypatch):
    import lokirl.agents.fluid_chooser as fc
    from lokirl.core.pipeline import Cluster
    from tests.sim.conftest import tiny_pipeline

    monkeypatch.setattr(fc, "_LIBRARIES", {})
    monkeypatch.setattr(fc, "_ROUTINGS", {})
    monkeypatch.setattr(fc, "_SWITCH_TERMS", {})
    monkeypatch.setattr(fc, "_LIBRARIES_KEPT", 1)
    a = FluidChooser()
    a.bind(tiny_pipeline(), Cluster({"gpu": 4}))
    a._switch_model(1.0)
    assert [k[0] for k in fc._SWITCH_TERMS] == list(fc._LIBRARIES)
    b = FluidChooser()
    b.bind(tiny_pipeline(), Cluster({"gpu": 6}))  # a second library: the first goes
    assert len(fc._LIBRARIES) == 1 and fc._SWITCH_TERMS == {}
    b._switch_model(1.0)
    assert [k[0] for k in fc._SWITCH_TERMS] == list(fc._LIBRARIES)


def test_it_decides_as_the_past_only_diagnostic_after_the_first_epoch(env):
    """Fed by the context alone, it picks what ``hindsight-past5-cap`` picks from the env."""
    trace = _trace(env, "bursts", 7)
    fluid = FluidChooser(horizon=5)
    compared = []

    def spy(ctl):
        fluid.bind(env.pipeline, env.cluster, env.swap)
        assert [p.demand for p in fluid.library] == [p.demand for p in ctl.library]
        inner = ctl.decide

        def decide(ctx):
            mine = fluid.decide(ctx)
            theirs = inner(ctx)
            if ctx.plan is not None:
                compared.append((theirs.resolve, mine.resolve))
                if theirs.resolve:
                    assert mine.demand == pytest.approx(theirs.demand)
            return theirs

        object.__setattr__(ctl, "decide", decide)

    _play(env, "hindsight-past5-cap", trace, spy=spy)
    assert len(compared) >= 8
    assert all(a == b for a, b in compared)


def test_it_follows_a_step_in_the_simulator():
    from lokirl.core.pipeline import Cluster
    from tests.sim.conftest import tiny_pipeline

    rates = np.concatenate([np.full(6, 10.0), np.full(10, 300.0)])
    trace = RateSeries(rates=rates, bin_s=1.0, name="step")
    ctl = make_controller("fluid(horizon=3)")
    res = simulate(
        tiny_pipeline(),
        Cluster({"gpu": 6}),
        trace,
        ctl,
        SimConfig(duration_s=16.0),
        np.random.default_rng(1),
    )
    t = res.frames
    assert t.arrived == t.on_time + t.late + sum(t.dropped.values()) + t.in_flight
    cap = np.asarray(res.series["capacity"])
    assert cap[:7].max() == cap[0] < cap[7] == cap[-1]  # moved up 1 s after the step, stayed
    assert res.solves == 2


def test_refusals_and_spec():
    ctl = make_controller("fluid(horizon=3,derate=0.8)")
    assert isinstance(ctl, FluidChooser) and ctl.horizon == 3 and ctl.derate == 0.8
    with pytest.raises(RuntimeError, match="bind"):
        ctl.decide(ControlContext(now_s=0.0, demand_history=(5.0,)))
    with pytest.raises(ValueError, match="horizon"):
        FluidChooser(horizon=0)
    from lokirl.core.pipeline import Cluster
    from tests.sim.conftest import tiny_pipeline

    ctl.bind(tiny_pipeline(), Cluster({"gpu": 4}))
    first = ctl.decide(ControlContext(now_s=0.0, demand_history=(5.0,)))
    plan = ctl.plan(tiny_pipeline(), Cluster({"gpu": 4}), first, AllocatorOptions(), None)
    with pytest.raises(RuntimeError, match="epoch is shorter than one bin"):
        ctl.decide(ControlContext(now_s=0.02, demand_history=(5.0,), plan=plan))
    with pytest.raises(ValueError, match="cap_floor"):
        FluidChooser(cap_floor=0.0)


def test_other_load_times_reuse_the_library_but_not_the_switch_costs(env):
    import lokirl.agents.fluid_chooser as fc
    from lokirl.envs.serving import scale_load_times

    a, b = FluidChooser(), FluidChooser()
    a.bind(env.pipeline, env.cluster)
    kept = len(fc._LIBRARIES)
    slow = scale_load_times(env.pipeline, 3.0)
    b.bind(slow, env.cluster)
    # the plans do not read load times: no new library, the same plans
    assert len(fc._LIBRARIES) == kept and b.library == a.library
    # the switch model does: switches that load a variant spend longer in transition
    load_a = a._switch_model(1.0).f_load
    load_b = b._switch_model(1.0).f_load
    assert load_a.max() > 0 and (load_b >= load_a).all() and (load_b > load_a).any()


def test_on_fewer_workers_it_solves_again_and_does_not_replan_every_epoch():
    from lokirl.core.controller import Decision
    from lokirl.core.pipeline import Cluster
    from tests.sim.conftest import tiny_pipeline

    pipe, full = tiny_pipeline(), Cluster({"gpu": 6})
    ctl = FluidChooser(horizon=3)
    ctl.bind(pipe, full)
    big = max(range(len(ctl.library)), key=lambda i: ctl.library[i].active_workers)
    assert ctl.library[big].active_workers > 3
    d = Decision(True, ctl.library[big].demand, False, 0.0, f"fluid plan {big}")
    assert ctl.plan(pipe, full, d, AllocatorOptions(), None) is ctl.library[big]
    # a worker died: the live runtime plans on the 3 left
    small = ctl.plan(pipe, Cluster({"gpu": 3}), d, AllocatorOptions(), None)
    assert small.active_workers <= 3 and small not in ctl.library
    first = ctl.decide(ControlContext(now_s=0.0, demand_history=(50.0,)))
    assert first.resolve
    # holding the re-solved plan under a steady load: it moves at most once, then holds
    # (each plan it asks for is what the runtime installs, planned on the 3 workers)
    in_force, moves = small, 0
    assert ctl._index_of(small) == big  # it stands for the plan it was solved for
    for t in range(1, 6):
        ctx = ControlContext(
            now_s=float(t),
            demand_history=(50.0,) * t,
            plan=in_force,
            arrival_bins=(2.5,) * 20,
            arrival_bin_s=0.05,
        )
        d = ctl.decide(ctx)
        if d.resolve:
            moves += 1
            in_force = ctl.plan(pipe, Cluster({"gpu": 3}), d, AllocatorOptions(), in_force)
            assert in_force.active_workers <= 3
    assert moves <= 1


def test_skipped_epochs_are_played_one_by_one_and_a_pickled_copy_drops_its_cache(env):
    import pickle

    def fresh():
        ctl = FluidChooser(horizon=5)
        ctl.bind(env.pipeline, env.cluster, env.swap)
        first = ctl.decide(ControlContext(now_s=0.0, demand_history=(100.0,)))
        return ctl, ctl.plan(env.pipeline, env.cluster, first, AllocatorOptions(), None)

    rng = np.random.default_rng(2)
    epochs = [tuple(rng.poisson(8.0, 20).astype(float)) for _ in range(3)]

    def ctx(t, bins, plan, hist):
        return ControlContext(
            now_s=t, demand_history=hist, plan=plan, arrival_bins=bins, arrival_bin_s=0.05
        )

    # the estimate a tick sees is the router's for the epoch that follows it; a
    # skipped tick has none, so the reference here keeps one estimate throughout
    hist = (160.0,)
    one, plan1 = fresh()
    for t, b in enumerate(epochs, start=1):
        one.decide(ctx(float(t), b, plan1, hist))
    two, plan2 = fresh()
    two.decide(ctx(1.0, epochs[0], plan2, hist))
    # the second tick was skipped: the third sees two epochs' bins at once
    two.decide(ctx(3.0, epochs[1] + epochs[2], plan2, hist))
    assert two.frames_modelled == one.frames_modelled == sum(map(sum, epochs))
    assert np.allclose(two._state.q, one._state.q)
    assert two._epoch_s == one._epoch_s == 1.0  # switches priced for 1-s epochs still
    assert one._state.memo
    copy = pickle.loads(pickle.dumps(one))
    assert copy._state.memo == {} and copy.library[0].demand == one.library[0].demand
    assert np.array_equal(copy._state.q, one._state.q)


def test_skipped_epochs_advance_every_setting_and_a_pickled_copy_keeps_them(env):
    import pickle

    other = (2, 0.2, 0.8)

    def fresh(spec):
        ctl = make_controller(spec)
        ctl.bind(env.pipeline, env.cluster, env.swap)
        first = ctl.decide(ControlContext(now_s=0.0, demand_history=(100.0,)))
        return ctl, ctl.plan(env.pipeline, env.cluster, first, AllocatorOptions(), None)

    rng = np.random.default_rng(3)
    epochs = [tuple(rng.poisson(8.0, 20).astype(float)) for _ in range(3)]

    def ctx(t, bins, plan):
        return ControlContext(
            now_s=t, demand_history=(160.0,), plan=plan, arrival_bins=bins, arrival_bin_s=0.05
        )

    # a lone fluid at the other setting, ticked every epoch
    alone, plan1 = fresh("fluid(horizon=2,burst_s=0.2,derate=0.8)")
    for t, b in enumerate(epochs, start=1):
        want = alone.decide(ctx(float(t), b, plan1))
    # the same setting among a controller's settings, the second tick skipped
    many, plan2 = fresh("fluid(horizon=5)")
    assert plan2.groups == plan1.groups  # both start from the same first plan
    many.decide_settings(ctx(1.0, epochs[0], plan2), (other,))
    got = many.decide_settings(ctx(3.0, epochs[1] + epochs[2], plan2), (other,))
    model = many._models[(0.2, 0.8)]
    assert np.allclose(model.q, alone._state.q) and got[0] == want
    copy = pickle.loads(pickle.dumps(many))
    assert np.array_equal(copy._models[(0.2, 0.8)].q, model.q)


def test_its_library_is_filed_in_the_envs_plan_store_and_found_there(tmp_path, monkeypatch):
    import lokirl.agents.fluid_chooser as fc
    import lokirl.agents.hindsight as hs
    from lokirl.sim.plan_library import PlanLibrary

    monkeypatch.setattr(fc, "_LIBRARIES", {})
    path = tmp_path / "plans.sqlite"
    e = LokiServingEnv(ENV, fallback="fluid(horizon=2)", plan_library=str(path))
    e.reset(seed=1)
    built = e._fallback.library
    assert e._fallback.plan_store is e.planner.library and len(built) >= 2
    assert PlanLibrary(path).count() >= len(built)
    # another process (an empty in-memory cache) finds every plan on disk: no solve
    monkeypatch.setattr(fc, "_LIBRARIES", {})
    solved = []
    real = hs.solve
    monkeypatch.setattr(hs, "solve", lambda *a, **k: solved.append(a) or real(*a, **k))
    again = FluidChooser(horizon=2)
    again.plan_store = PlanLibrary(path)
    again.bind(e.pipeline, e.cluster, e.swap)
    assert not solved and again.library == built
    e.close()
