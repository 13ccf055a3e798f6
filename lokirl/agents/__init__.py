"""Learned controllers: PPO training, callbacks, and the trained-policy adapter.

Importing this package registers the ``ppo:PATH`` controller spec and the
``trigger`` heuristic in the controller registry.
"""

from lokirl.agents.adapter import PPOController, save_policy
from lokirl.agents.heuristics import OracleController, TriggerController
from lokirl.core.controllers import CONTROLLERS

if "ppo" not in CONTROLLERS._prefixes:
    CONTROLLERS.register_prefix("ppo", lambda path: PPOController(path, name=f"ppo:{path}"))

__all__ = ["OracleController", "PPOController", "TriggerController", "save_policy"]
