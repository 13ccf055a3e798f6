"""lokirl.envs."""
