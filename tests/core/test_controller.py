import math

import pytest

from lokirl.core.allocator import solve
from lokirl.core.controller import (
    KEEP,
    ControlContext,
    Controller,
    PeriodicMILPController,
    ewma_demand,
)
from lokirl.core.controllers import CONTROLLERS, make_controller
from lokirl.core.pipeline import Cluster
from lokirl.errors import ConfigError


def pandas_ewm_adjusted(xs, com):
    # reference: pandas ewm(com).mean() with adjust=True, last value, written out
    alpha = 1 / (1 + com)
    weights = [(1 - alpha) ** i for i in range(len(xs))][::-1]
    return sum(w * x for w, x in zip(weights, xs, strict=True)) / sum(weights)


def test_ewma_matches_pandas_definition():
    hist = [10.0, 20.0]
    assert ewma_demand(hist, com=1.6) == pytest.approx((20 + 0.6153846 * 10) / 1.6153846, rel=1e-6)
    hist = [float(x) for x in range(1, 40)]
    assert ewma_demand(hist) == pytest.approx(pandas_ewm_adjusted(hist[-20:], 1.6))
    assert ewma_demand([]) == 0.0
    assert ewma_demand([5.0] * 30) == pytest.approx(5.0)


def test_periodic_controller_resolves_on_schedule(tiny):
    ctl = PeriodicMILPController(period_s=5.0, headroom=1.2)
    assert isinstance(ctl, Controller)
    first = ctl.decide(ControlContext(now_s=0.0, demand_history=(100.0,)))
    assert first.resolve and first.demand == pytest.approx(120.0)
    plan = solve(tiny, Cluster({"gpu": 4}), 100.0)
    ctx = ControlContext(now_s=3.0, demand_history=(100.0,) * 3, plan=plan, time_since_solve_s=3.0)
    assert ctl.decide(ctx) == KEEP
    due = ControlContext(now_s=5.0, demand_history=(100.0,) * 5, plan=plan, time_since_solve_s=5.0)
    assert ctl.decide(due).resolve
    busy = ControlContext(
        now_s=5.0, demand_history=(100.0,), plan=plan, time_since_solve_s=9.0, solving=True
    )
    assert ctl.decide(busy) == KEEP


def test_context_is_frozen_snapshot():
    ctx = ControlContext(now_s=1.0, demand_history=[1, 2], queue_lengths={"a": 3})
    assert ctx.demand_history == (1.0, 2.0)
    with pytest.raises(AttributeError):
        ctx.now_s = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.queue_lengths["a"] = 4  # type: ignore[index]
    assert ctx.time_since_solve_s == math.inf


def test_registry_names_patterns_and_imports():
    assert make_controller("loki").period_s == 1.0
    assert make_controller("loki").name == "loki"
    assert make_controller("loki-1s").name == "loki-1s"
    c = make_controller("loki-5s")
    assert c.period_s == 5.0 and c.name == "loki-5s"
    assert make_controller("loki-0.5s").period_s == 0.5
    imported = make_controller("lokirl.core.controller:PeriodicMILPController")
    assert isinstance(imported, PeriodicMILPController)
    with pytest.raises(ConfigError) as err:
        make_controller("nonsense")
    assert "loki" in err.value.fix
    with pytest.raises(ConfigError):
        make_controller("no.such.module:thing")
    assert "loki" in CONTROLLERS.names()
    with pytest.raises(ValueError):
        PeriodicMILPController(period_s=0)


def test_arrival_bins_of_an_epoch_are_its_whole_bins_whatever_the_float_noise():
    from lokirl.core.controller import ARRIVAL_BIN_S, arrival_bin, arrival_bin_range

    per_s = round(1 / ARRIVAL_BIN_S)
    assert arrival_bin_range(3.0, 1.0) == range(2 * per_s, 3 * per_s)
    # a clock a hair off the epoch's edge names the same bins
    assert arrival_bin_range(3.0 - 1e-9, 1.0) == arrival_bin_range(3.0 + 1e-9, 1.0)
    # the first epoch starts at bin 0; a span longer than the run is cut there
    assert arrival_bin_range(0.5, 2.0) == range(0, per_s // 2)
    assert len(arrival_bin_range(7.0, 0.0)) == 0
    # an arrival belongs to the bin whose range holds it
    assert arrival_bin(2.0) in arrival_bin_range(3.0, 1.0)
    assert arrival_bin(3.0) not in arrival_bin_range(3.0, 1.0)
