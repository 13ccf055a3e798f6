"""Shared small settings for the agent tests: a 6-worker env and tiny training runs."""

from lokirl.agents.config import PPOParams, TrainConfig
from lokirl.envs.serving import EnvConfig

ENV = EnvConfig(
    pipeline="configs/pipelines/example.yaml", workers=6, episode_s=10, traces=("gen:bursts",)
)


def tiny_config(name: str, steps: int) -> TrainConfig:
    """A tiny training run on the small env: one env, no evaluation, no checkpoints."""
    return TrainConfig(
        name=name,
        total_timesteps=steps,
        n_envs=1,
        vec_env="dummy",
        env=ENV,
        ppo=PPOParams(n_steps=32, batch_size=32, n_epochs=1, net_arch=(16,)),
        eval_every=0,
        checkpoint_every=0,
    )
