"""Shared small settings for the agent tests: a 6-worker env and tiny training runs."""

from lokirl.agents.config import PPOParams, TrainConfig
from lokirl.envs.serving import EnvConfig

ENV = EnvConfig(
    pipeline="configs/pipelines/example.yaml", workers=6, episode_s=10, traces=("gen:bursts",)
)


def tiny_config(name: str, steps: int, env: EnvConfig = ENV, n_steps: int = 32) -> TrainConfig:
    """A tiny training run (on the small env by default): one env, no evaluation, no checkpoints."""
    return TrainConfig(
        name=name,
        total_timesteps=steps,
        n_envs=1,
        vec_env="dummy",
        env=env,
        ppo=PPOParams(n_steps=n_steps, batch_size=n_steps, n_epochs=1, net_arch=(16,)),
        eval_every=0,
        checkpoint_every=0,
    )
