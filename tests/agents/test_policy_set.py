"""One policy per pipeline as one controller (``ppo:A.zip+B.zip``)."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

import lokirl.agents  # noqa: F401 - registers ppo
from lokirl.agents.adapter import PPOController, check_spec_fits
from lokirl.agents.policy_set import PolicySet, split_policy_paths
from lokirl.core.controller import ControlContext
from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster
from lokirl.core.pipeline_config import load_pipeline
from lokirl.envs.serving import EnvConfig, EpisodeRandomisation
from lokirl.errors import ConfigError
from lokirl.traces import RateSeries
from tests.agents.conftest import tiny_config


def _train(name: str, pipeline: str, workers: tuple[int, int], fallback: str = ""):
    from lokirl.agents.train import train

    env = EnvConfig(
        pipeline=pipeline,
        workers=workers[0],
        episode_s=8,
        traces=("gen:bursts",),
        feature_version=2,
        fallback=fallback,
        randomise=EpisodeRandomisation(workers=workers, swaps=("overlap",)),
    )
    return train(replace(tiny_config(name, 32), env=env), progress=False) / "model.zip"


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    """Two tiny version-2 policies: traffic_analysis and social_media, 10-40 workers each.

    The traffic_analysis one follows ``fluid``, whose plans come from its own library (a
    planner hook the host must use), as the shipped settings policies do.
    """
    import os

    os.environ["LOKIRL_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    return (
        _train("ta", "traffic_analysis", (10, 40), fallback="fluid(horizon=2)"),
        _train("sm", "social_media", (10, 40)),
    )


def _case(name: str, workers: int):
    pipe = load_pipeline(name)
    return pipe, Cluster.homogeneous(pipe, workers)


def test_paths_split_on_plus_unless_the_path_is_a_file(tmp_path):
    assert split_policy_paths("a/model.zip") == ["a/model.zip"]
    assert split_policy_paths("a/model.zip+b/model.zip") == ["a/model.zip", "b/model.zip"]
    odd = tmp_path / "x+y.zip"
    odd.write_bytes(b"")
    assert split_policy_paths(str(odd)) == [str(odd)]
    with pytest.raises(ConfigError, match="empty model path"):
        split_policy_paths("a.zip++b.zip")
    with pytest.raises(ConfigError, match="same model file twice"):
        split_policy_paths("a.zip+./a.zip")


def test_the_set_is_checked_from_feature_files_one_member_must_fit(policies, tmp_path):
    ta, sm = policies
    spec = f"ppo:{ta}+{sm}"
    check_spec_fits(spec, *_case("traffic_analysis", 20), "overlap")
    check_spec_fits(spec, *_case("social_media", 40), "overlap")
    with pytest.raises(ConfigError) as err:
        check_spec_fits(spec, *_case("social_media", 80), "overlap")
    # each member's reason is named: the one for the other pipeline, the one for the size
    assert "no policy of the set fits social_media on 80 workers" in err.value.problem
    assert "trained on" in err.value.problem and "10..40" in err.value.problem
    with pytest.raises(ConfigError) as err:
        check_spec_fits(spec, *_case("traffic_analysis", 20), "stop")
    assert "swap modes" in err.value.problem
    # two policies for the same pipeline and size: which serves would be ambiguous
    twin = tmp_path / "twin"
    shutil.copytree(ta.parent, twin)
    with pytest.raises(ConfigError, match="ambiguous"):
        check_spec_fits(f"ppo:{ta}+{twin / 'model.zip'}", *_case("traffic_analysis", 20))


def _with_swaps(model, folder, swaps):
    """A copy of ``model``'s policy whose saved scope names other swap modes."""
    import json

    shutil.copytree(model.parent, folder)
    features = folder / "model.features.json"
    doc = json.loads(features.read_text())
    doc["scope"]["swaps"] = swaps
    features.write_text(json.dumps(doc))
    return folder / "model.zip"


def test_a_member_trained_for_fewer_swap_modes_serves_where_several_fit(policies, tmp_path):
    from lokirl.agents.adapter import features_path, load_feature_spec
    from lokirl.agents.policy_set import check_one_fits, check_set_files

    ta, sm = policies  # ta: overlap only
    wide = _with_swaps(ta, tmp_path / "wide", ["overlap", "stop"])
    free = _with_swaps(ta, tmp_path / "free", ["overlap", "stop", "free"])
    paths = [str(p) for p in (free, ta, wide, sm)]
    members = [(load_feature_spec(p), str(features_path(p))) for p in paths]

    def serving(swap):
        return paths[check_one_fits("s", members, *_case("traffic_analysis", 20), swap)]

    assert serving("overlap") == str(ta)  # the narrowest of the three that fit
    assert serving("stop") == str(wide)  # {overlap, stop} within {overlap, stop, free}
    assert serving("free") == str(free)  # the only one
    check_set_files("s", paths, *_case("social_media", 20), "overlap")
    # scopes neither of which holds the other: which would serve stays ambiguous
    other = _with_swaps(ta, tmp_path / "other", ["overlap", "free"])
    with pytest.raises(ConfigError, match="none was trained for fewer swap modes"):
        check_set_files("s", [str(wide), str(other)], *_case("traffic_analysis", 20), "overlap")
    # the set built from them binds that member
    played = PolicySet.load(paths, name="s")
    played.bind(*_case("traffic_analysis", 20), "stop")
    assert played.active is not None and played.active.model_path == str(wide)


def test_the_set_serves_each_pipeline_with_its_own_policy(policies):
    from lokirl.sim import SimConfig, simulate

    ta, sm = policies
    both = make_controller(f"ppo:{ta}+{sm}")
    assert isinstance(both, PolicySet) and both.spec is None
    for name, path in (("traffic_analysis", ta), ("social_media", sm)):
        pipe, cluster = _case(name, 20)
        trace = RateSeries(np.linspace(0.3, 1.5, 8) * 60.0 * 20, 1.0, "ramp")
        alone = simulate(pipe, cluster, trace, PPOController(str(path)), SimConfig())
        served = simulate(pipe, cluster, trace, both, SimConfig())
        assert both.active is not None and both.active.model_path == str(path)
        assert both.spec.scope.pipeline == name
        # the set serves as its member alone: same solves, capacity each second, frames
        # and accuracy (on this short ramp also without the planner hook: the next test
        # checks that the hook is handed on)
        assert served.solves == alone.solves and served.solves >= 1
        assert np.array_equal(served.series["capacity"], alone.series["capacity"])
        assert served.reconfigurations == alone.reconfigurations
        assert served.frames == alone.frames and served.frames.conserved
        assert served.accuracy == alone.accuracy


def test_the_set_hands_its_members_planner_to_the_host(policies):
    """A member following ``fluid`` plans from fluid's library; the set must let it."""
    from lokirl.sim import SimConfig, simulate

    ta, sm = policies
    pipe, cluster = _case("traffic_analysis", 20)
    trace = RateSeries(np.linspace(0.3, 1.5, 8) * 60.0 * 20, 1.0, "ramp")
    calls = {"alone": 0, "set": 0}

    def counting(controller, key):
        bind = controller.bind

        def bind_and_count(*args, **kwargs):
            bind(*args, **kwargs)
            member = controller if key == "alone" else controller.active
            plan = member.plan

            def counted(*a, **k):
                calls[key] += 1
                return plan(*a, **k)

            member.plan = counted

        controller.bind = bind_and_count
        return controller

    alone = simulate(pipe, cluster, trace, counting(PPOController(str(ta)), "alone"), SimConfig())
    served = simulate(
        pipe, cluster, trace, counting(make_controller(f"ppo:{ta}+{sm}"), "set"), SimConfig()
    )
    assert calls["alone"] >= 1  # the episode's plans come from fluid's library
    assert calls["set"] == calls["alone"]
    assert np.array_equal(served.series["capacity"], alone.series["capacity"])
    both = make_controller(f"ppo:{ta}+{sm}")
    assert both.plan is None  # nothing to hand on before bind
    both.bind(*_case("social_media", 20))
    assert both.plan is None  # a member without a planner: the host solves


def test_an_unbound_set_refuses_to_decide(policies):
    ta, sm = policies
    both = make_controller(f"ppo:{ta}+{sm}")
    with pytest.raises(ConfigError) as err:
        both.decide(ControlContext(now_s=1.0, demand_history=(100.0,), queue_lengths={}))
    assert err.value.field == "bind"
