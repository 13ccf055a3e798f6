"""Training configuration: a frozen dataclass built from ``configs/agents/*.yaml``.

The ``env.randomise`` section (per-episode cluster size, swap mode and load-time
scale) is validated by a pydantic model, :class:`RandomiseSection`, whose errors
name the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from lokirl.agents.constraint import ConstraintParams, parse_constraint
from lokirl.agents.imitation import ImitationParams
from lokirl.envs.serving import EnvConfig
from lokirl.errors import ConfigError


class RandomiseSection(BaseModel):
    """``env.randomise``: what each training episode draws (see ``EpisodeRandomisation``).

    Example::

        env:
          feature_version: 2
          randomise:
            workers_range: [10, 100]     # or workers: [10, 20, 40]
            swaps: [overlap, stop]
            load_scale: [0.5, 2.0]
    """

    model_config = ConfigDict(extra="forbid")

    workers: list[PositiveInt] | None = Field(
        None, min_length=1, description="cluster sizes, one drawn uniformly per episode"
    )
    workers_range: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="[lo, hi]: a cluster size drawn uniformly from lo..hi (inclusive)"
    )
    swaps: list[Literal["overlap", "stop", "free"]] | None = Field(
        None, min_length=1, description="swap modes, one drawn uniformly per episode"
    )
    load_scale: tuple[PositiveFloat, PositiveFloat] | None = Field(
        None, description="[lo, hi]: a factor on every variant's load time, drawn uniformly"
    )

    @field_validator("workers_range", "load_scale")
    @classmethod
    def _ordered(cls, v: tuple | None) -> tuple | None:
        if v is not None and v[0] > v[1]:
            raise ValueError(f"lo must be <= hi, got [{v[0]}, {v[1]}]")
        return v

    @model_validator(mode="after")
    def _one_worker_field(self) -> RandomiseSection:
        if self.workers is not None and self.workers_range is not None:
            raise ValueError("give either workers or workers_range, not both")
        return self


def _randomise(value: Any, source: str, where: str) -> dict[str, Any] | None:
    """Validate an ``env.randomise`` mapping; a :class:`ConfigError` names the field."""
    if value is None:
        return None
    try:
        return RandomiseSection.model_validate(value).model_dump(exclude_none=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or (
            "workers_range" if "workers" in err["msg"] else "-"
        )
        raise ConfigError(
            source,
            f"{where}.{loc}" if loc != "-" else where,
            err["msg"],
            "see lokirl.agents.config.RandomiseSection: workers (list) or workers_range "
            "[lo, hi], swaps (overlap/stop/free), load_scale [lo, hi]",
        ) from None


@dataclass(frozen=True)
class PPOParams:
    """stable-baselines3 PPO hyper-parameters (see its documentation).

    Attributes:
        learning_rate: Adam step size.
        n_steps: Steps per environment per rollout.
        batch_size: Minibatch size.
        n_epochs: Passes over each rollout.
        gamma: Discount factor (per 1 s epoch).
        gae_lambda: GAE smoothing.
        clip_range: PPO clipping.
        ent_coef: Entropy bonus.
        net_arch: Hidden layer sizes of the policy and value networks.

    """

    learning_rate: float = 3e-4
    n_steps: int = 256
    batch_size: int = 128
    n_epochs: int = 5
    gamma: float = 0.95
    gae_lambda: float = 0.9
    clip_range: float = 0.2
    ent_coef: float = 0.01
    net_arch: tuple[int, ...] = (64, 64)


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        name: Run name (the run folder is ``runs/train__{name}__{time}``).
        seed: Seed of the environments and the policy.
        total_timesteps: Environment steps to train for.
        n_envs: Parallel environments.
        vec_env: ``"dummy"`` (one process) or ``"subproc"`` (one process per env).
        env: Environment configuration.
        ppo: PPO hyper-parameters.
        eval_every: Steps between evaluations against the baseline (0: never).
        eval_episodes: Episodes (fixed seeds) per evaluation.
        baseline: Controller the evaluation compares against.
        checkpoint_every: Steps between checkpoints (0: never).
        imitation: Behaviour cloning of a teacher controller before PPO (off by
            default; see :mod:`lokirl.agents.imitation`).
        constraint: A frame-violation budget, met by a Lagrange multiplier on the
            reward's violation weight (off by default; see
            :mod:`lokirl.agents.constraint`).

    """

    name: str = "ppo"
    seed: int = 0
    total_timesteps: int = 20000
    n_envs: int = 2
    vec_env: str = "subproc"
    env: EnvConfig = field(default_factory=EnvConfig)
    ppo: PPOParams = field(default_factory=PPOParams)
    eval_every: int = 5000
    eval_episodes: int = 2
    baseline: str = "loki"
    checkpoint_every: int = 5000
    imitation: ImitationParams = field(default_factory=ImitationParams)
    constraint: ConstraintParams = field(default_factory=ConstraintParams)


def _bad_value(exc: ValueError, source: str, where: str, fields_of: str) -> ConfigError:
    """A config error from a dataclass's ``ValueError("field: what is wrong")``."""
    field_name, _, why = str(exc).partition(": ")
    return ConfigError(
        source,
        f"{where}.{field_name}",
        why or str(exc),
        f"set {where}.{field_name} to an allowed value (see {fields_of})",
    )


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(
            source, prefix or "-", "expected a mapping", f"write `{prefix}:` as a mapping"
        )
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        if key not in known:
            raise ConfigError(
                source, where, "unknown field", f"use one of {', '.join(sorted(known))}"
            )
        if key == "env":
            value = dict(value or {}) if isinstance(value, dict) or value is None else value
            if isinstance(value, dict) and "randomise" in value:
                value["randomise"] = _randomise(value["randomise"], source, f"{where}.randomise")
            try:
                kwargs[key] = EnvConfig.from_dict(value or {})
            except TypeError as exc:
                raise ConfigError(
                    source, where, str(exc), "see lokirl.envs.EnvConfig for the fields"
                ) from None
            except ValueError as exc:
                raise _bad_value(exc, source, where, "lokirl.envs.EnvConfig") from None
            continue
        if key == "ppo":
            if isinstance(value, dict) and "net_arch" in value:
                value = {**value, "net_arch": tuple(value["net_arch"])}
            kwargs[key] = _build(PPOParams, value, source, where)
            continue
        if key == "constraint":
            kwargs[key] = parse_constraint(value, source, where)
            continue
        if key == "imitation":
            try:
                kwargs[key] = _build(ImitationParams, value, source, where)
            except ValueError as exc:
                raise _bad_value(
                    exc, source, where, "lokirl.agents.imitation.ImitationParams"
                ) from None
            continue
        kwargs[key] = value
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            source, prefix or "-", str(exc), "check the field names and types"
        ) from None
    return obj


def load_train_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Read a training YAML file (or the defaults) and apply top-level overrides.

    Raises:
        ConfigError: naming the file, the field and the fix.

    """
    data: dict[str, Any] = {}
    source = str(path) if path else "<defaults>"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                source, "-", "no such file", "pass an existing YAML, e.g. configs/agents/ppo.yaml"
            )
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError:
            raise ConfigError(source, "-", "not valid YAML", "fix the YAML syntax") from None
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    cfg = _build(TrainConfig, data, source, "")
    if cfg.vec_env not in ("dummy", "subproc"):
        raise ConfigError(source, "vec_env", f"unknown {cfg.vec_env!r}", "use dummy or subproc")
    if cfg.total_timesteps < 1 or cfg.n_envs < 1:
        raise ConfigError(source, "total_timesteps/n_envs", "must be >= 1", "use positive numbers")
    return cfg
