"""Gymnasium environments over the simulator.

Importing this package registers ``lokirl/LokiServing-v0``::

    import gymnasium as gym
    import lokirl.envs  # noqa: F401
    env = gym.make("lokirl/LokiServing-v0", episode_s=120)
"""

import gymnasium as gym

from lokirl.envs.features import FeatureSpec, observe, to_decision
from lokirl.envs.serving import EnvConfig, LokiServingEnv, RewardWeights, cluster_capacities

ENV_ID = "lokirl/LokiServing-v0"


if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="lokirl.envs.serving:LokiServingEnv",
        max_episode_steps=int(EnvConfig().episode_s / EnvConfig().epoch_s),
    )

__all__ = [
    "ENV_ID",
    "EnvConfig",
    "FeatureSpec",
    "LokiServingEnv",
    "RewardWeights",
    "cluster_capacities",
    "observe",
    "to_decision",
]
