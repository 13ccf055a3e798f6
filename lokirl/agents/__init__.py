"""Learned controllers: PPO training, imitation, callbacks, and the trained-policy adapter.

Training may start by cloning a teacher controller (:mod:`lokirl.agents.imitation`).

Importing this package registers the shipped ``ppo`` and ``ppo-v1`` controllers
(:data:`~lokirl.agents.adapter.SHIPPED_POLICIES`), the ``ppo:PATH`` (``ppo:A.zip+B.zip``:
one policy per pipeline, :mod:`lokirl.agents.policy_set`) and ``gain:PATH`` controller
specs, the ``trigger`` heuristic and the ``ppo-guard(...)`` guard
(:mod:`lokirl.agents.guard`) in the controller registry.
"""

import functools

from lokirl.agents.adapter import (
    SHIPPED_POLICIES,
    PPOController,
    save_policy,
    shipped_policy_paths,
)
from lokirl.agents.fluid_chooser import FluidChooser  # registers fluid(...)
from lokirl.agents.gain_policy import GainController
from lokirl.agents.guard import GuardedPolicy
from lokirl.agents.heuristics import OracleController, TriggerController
from lokirl.agents.hindsight import HindsightController  # registers hindsight
from lokirl.agents.policy_set import PolicySet, make_policy
from lokirl.core.controllers import CONTROLLERS

if "ppo" not in CONTROLLERS._prefixes:
    CONTROLLERS.register_prefix("ppo", make_policy)
if "gain" not in CONTROLLERS._prefixes:
    CONTROLLERS.register_prefix("gain", lambda path: GainController(path, name=f"gain:{path}"))


def _shipped(name: str) -> PPOController | PolicySet:
    """The shipped controller ``name`` (one policy, or a set of them)."""
    paths = [str(p) for p in shipped_policy_paths(name) or []]
    if len(paths) == 1:
        return PPOController(paths[0], name=name)
    return PolicySet.load(paths, name=name)


_SHIPPED_HELP = {
    "ppo": "the learned controller shipped with lokirl: one policy per pipeline "
    "(traffic_analysis, social_media) over fluid's setting, 10-100 workers, every swap mode "
    "(see docs/results.md)",
    "ppo-v1": "the first round's policy (trigger clone + PPO; traffic_analysis on exactly "
    "20 workers), which records before the whole controller name 'ppo'",
}
if "ppo-guard" not in CONTROLLERS._keywords:
    CONTROLLERS.register_keywords(
        "ppo-guard",
        GuardedPolicy,
        "a learned controller (default: the shipped ppo) that re-solves when its plan keeps "
        "under-delivering, e.g. ppo-guard(violation=0.05,hits=2,window=5,headroom=1.3)",
    )
for _name in SHIPPED_POLICIES:
    if _name not in CONTROLLERS.names():
        CONTROLLERS.register(_name, functools.partial(_shipped, _name), _SHIPPED_HELP[_name])

__all__ = [
    "FluidChooser",
    "GainController",
    "GuardedPolicy",
    "HindsightController",
    "OracleController",
    "PPOController",
    "PolicySet",
    "TriggerController",
    "shipped_policy_paths",
    "save_policy",
]
