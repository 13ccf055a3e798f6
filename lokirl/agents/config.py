"""Training configuration: a frozen dataclass built from ``configs/agents/*.yaml``.

The file is validated first by the pydantic models of
:mod:`lokirl.agents.train_schema` (every section: unknown fields, types, ranges), then
what it names is loaded and checked (:func:`~lokirl.agents.train_schema.check_references`);
errors name the file, the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lokirl.agents.constraint import ConstraintParams, parse_constraint
from lokirl.agents.imitation import ImitationParams
from lokirl.agents.train_schema import RandomiseSection, check_references, validate_train_file
from lokirl.envs.serving import EnvConfig
from lokirl.errors import ConfigError, yaml_problem


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
        torch_threads: Torch threads of the learner (its policy forward passes and
            updates). The policy is a small MLP: more threads speed it up little
            and take cores from the environment processes (1: 144 -> 160 steps/s
            with two subprocess environments on two cores).
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
    torch_threads: int = 1
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
    """Read a training YAML file (or the defaults), apply top-level overrides, validate.

    Raises:
        ConfigError: naming the file, the field and the fix.

    """
    data: dict[str, Any] = {}
    source = str(path) if path else "<defaults>"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                source,
                "-",
                "is a folder" if p.is_dir() else "no such file",
                "pass an existing YAML, e.g. configs/agents/ppo.yaml",
            )
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(source, "-", yaml_problem(exc), "fix the YAML syntax there") from None
        if data is None:  # an empty file would train on every default, unnoticed
            raise ConfigError(
                source,
                "-",
                "the file is empty",
                "give the fields to change (start from configs/agents/ppo.yaml), or drop "
                "--config for the defaults",
            )
    if not isinstance(data, dict):
        raise ConfigError(
            source, "-", "expected a mapping of fields", "see configs/agents/ppo.yaml"
        )
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    cfg = _build(TrainConfig, validate_train_file(data, source), source, "")
    check_references(cfg, source)
    return cfg
