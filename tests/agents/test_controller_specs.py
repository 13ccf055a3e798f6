"""The agents' controller specs: fluid(...), trigger(...) and the oracle's name."""

from __future__ import annotations

import numpy as np
import pytest

from lokirl.agents.actors import actor_factory
from lokirl.agents.fluid_chooser import FluidChooser
from lokirl.agents.heuristics import OracleController, TriggerController
from lokirl.core.controllers import CONTROLLERS, make_controller
from lokirl.errors import ConfigError
from lokirl.traces import RateSeries


def _error(spec: str) -> str:
    with pytest.raises(ConfigError) as err:
        make_controller(spec)
    return str(err.value)


def test_a_nan_horizon_is_named_with_its_minimum():
    assert _error("fluid(horizon=nan)") == (
        "fluid(horizon=nan): fluid: horizon must be a finite whole number >= 1, got nan. "
        "Fix: correct that value, e.g. fluid(horizon=5,derate=0.9,burst_s=0.1)"
    )
    assert "horizon must be a finite whole number >= 1, got inf" in _error("fluid(horizon=inf)")
    with pytest.raises(ValueError, match="finite whole number >= 1"):
        FluidChooser(horizon=float("nan"))
    assert FluidChooser(horizon=np.int64(3)).horizon == 3  # numpy whole numbers still do


def test_a_refused_value_names_the_controller_once():
    text = _error("fluid(horizon=-1)")
    assert "fluid: fluid:" not in text
    assert text.startswith("fluid(horizon=-1): fluid: horizon must be a finite whole number >= 1")


def test_bare_fluid_is_fluid_with_its_defaults():
    bare, empty = make_controller("fluid"), make_controller("fluid()")
    assert isinstance(bare, FluidChooser) and bare.name == "fluid"
    assert repr(bare) == repr(empty) == repr(FluidChooser())


def test_trigger_with_an_open_parenthesis_says_so_with_the_expected_form():
    assert _error("trigger(") == (
        "trigger(: controller: unbalanced parenthesis in 'trigger('. Fix: write "
        "trigger(key=value,...), e.g. trigger(low=0.6,high=1.0,headroom=1.3)"
    )


def test_trigger_refuses_a_nan_horizon_and_interval():
    assert "horizon_s must be a finite whole number >= 1, got nan" in _error(
        "trigger(horizon_s=nan)"
    )
    assert "min_interval_s must be >= 0, got nan" in _error("trigger(min_interval_s=nan)")
    with pytest.raises(ValueError, match="horizon_s"):
        TriggerController(horizon_s=float("nan"))
    assert make_controller("trigger(horizon_s=2)").horizon_s == 2


def test_the_trigger_pattern_is_listed_by_its_parts():
    assert "trigger-<LOW>-<HIGH>-x<HEADROOM>[-churn]" in _error("nosuch")
    assert "trigger(key=value,...)" in CONTROLLERS.forms()


def test_oracle_by_name_says_which_commands_build_it():
    text = _error("oracle")
    assert "future rates of the trace" in text
    assert "lokirl simulate, evaluate, bench" in text and "unknown" not in text
    assert "\n" not in text


def test_evaluation_still_builds_the_oracle_from_the_trace():
    trace = RateSeries(np.array([10.0, 20.0, 30.0]), 1.0, "ramp")
    actor = actor_factory("oracle", trace)(None)
    assert isinstance(actor, OracleController) and list(actor.rates) == [10.0, 20.0, 30.0]
