"""Actors by controller spec: how an episode's controller is built from its name."""

from __future__ import annotations

from collections.abc import Callable

from lokirl.agents.adapter import is_policy_spec
from lokirl.agents.heuristics import OracleController
from lokirl.agents.hindsight import actor_for_spec as hindsight_actor
from lokirl.core.controllers import make_controller
from lokirl.envs.serving import LokiServingEnv
from lokirl.traces.types import RateSeries


def actor_factory(
    spec: str, trace: RateSeries, cache: dict | None = None
) -> Callable[[LokiServingEnv], object]:
    """How to build the actor named ``spec`` for an episode on ``trace``.

    Trained policies are loaded once (kept in ``cache``); other controllers are
    built fresh for every episode; ``oracle`` is given the trace's future.
    """
    if spec == "oracle":
        return lambda env: OracleController.for_trace(trace)
    if (hindsight := hindsight_actor(spec, trace, cache)) is not None:
        return hindsight
    if is_policy_spec(spec):
        cache = cache if cache is not None else {}
        if spec not in cache:
            cache[spec] = make_controller(spec)
        policy = cache[spec]
        return lambda env: policy
    make_controller(spec)  # fail early on unknown names
    return lambda env: make_controller(spec)
