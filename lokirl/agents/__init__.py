"""Learned controllers: PPO training, imitation, callbacks, and the trained-policy adapter.

Training may start by cloning a teacher controller (:mod:`lokirl.agents.imitation`).

Importing this package registers the ``ppo:PATH`` (``ppo:A.zip+B.zip``: one policy per
pipeline, :mod:`lokirl.agents.policy_set`) and ``gain:PATH`` controller specs and the
``trigger`` heuristic in the controller registry.
"""

from lokirl.agents.adapter import PPOController, default_policy_path, save_policy
from lokirl.agents.fluid_chooser import FluidChooser  # registers fluid(...)
from lokirl.agents.gain_policy import GainController
from lokirl.agents.heuristics import OracleController, TriggerController
from lokirl.agents.hindsight import HindsightController  # registers hindsight
from lokirl.agents.policy_set import PolicySet, make_policy
from lokirl.core.controllers import CONTROLLERS

if "ppo" not in CONTROLLERS._prefixes:
    CONTROLLERS.register_prefix("ppo", make_policy)
if "gain" not in CONTROLLERS._prefixes:
    CONTROLLERS.register_prefix("gain", lambda path: GainController(path, name=f"gain:{path}"))
if "ppo" not in CONTROLLERS.names():
    CONTROLLERS.register(
        "ppo",
        lambda **kw: PPOController(str(default_policy_path()), name="ppo", **kw),
        "the PPO policy shipped with lokirl (trigger clone + PPO; traffic_analysis, 20 workers; "
        "see docs/results.md)",
    )

__all__ = [
    "FluidChooser",
    "GainController",
    "HindsightController",
    "OracleController",
    "PPOController",
    "PolicySet",
    "TriggerController",
    "default_policy_path",
    "save_policy",
]
