"""The training file's schema (pydantic) and the checks of what it names.

``lokirl train --config FILE`` validates the whole file against :class:`TrainSection`
before anything starts: unknown fields, wrong types and out-of-range values give a
:class:`~lokirl.errors.ConfigError` naming the file, the field and the fix. Then
:func:`check_references` loads what the file names — the pipeline, the trace mix,
the forecaster, the baseline, fallback and teacher controllers — and checks that every
cluster the environments may draw places a worker on each of the pipeline's tasks, so
that a typo fails in a second rather than in a subprocess after the first rollout.

The validated mapping is then built into the frozen dataclasses the trainer uses
(:class:`lokirl.agents.config.TrainConfig`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from lokirl.agents.constraint import ConstraintSection
from lokirl.errors import ConfigError, LokiError, problem_and_fix

_Range = tuple[NonNegativeFloat, NonNegativeFloat]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PPOSection(_Section):
    """``ppo``: stable-baselines3 PPO hyper-parameters."""

    learning_rate: PositiveFloat = 3e-4
    n_steps: int = Field(256, ge=2, description="steps per environment per rollout")
    batch_size: PositiveInt = 128
    n_epochs: PositiveInt = 5
    gamma: float = Field(0.95, gt=0, le=1)
    gae_lambda: float = Field(0.9, ge=0, le=1)
    clip_range: PositiveFloat = 0.2
    ent_coef: NonNegativeFloat = 0.01
    net_arch: list[PositiveInt] = Field(default_factory=lambda: [64, 64], min_length=1)


class ImitationSection(_Section):
    """``imitation``: behaviour cloning of a teacher controller before PPO."""

    teacher: str = ""
    steps: PositiveInt = 20000
    epochs: PositiveInt = 100
    batch_size: PositiveInt = 256
    learning_rate: PositiveFloat = 3e-3
    smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    index_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


class WeightsSection(_Section):
    """``env.weights``: the reward's weights (each >= 0)."""

    violation: NonNegativeFloat = 1.0
    reconfiguration: NonNegativeFloat = 0.5
    solver: NonNegativeFloat = 0.1
    workers: NonNegativeFloat = 0.05


class FollowSetting(_Section):
    """One entry of ``env.follow_settings``: a setting of the ``fluid`` fallback's model."""

    horizon: PositiveInt = Field(description="epochs a switch must pay for itself over")
    burst_s: NonNegativeFloat = Field(description="seconds of capacity a queue absorbs")
    derate: float = Field(gt=0, le=2, description="share of each group's capacity served")


class RandomiseSection(_Section):
    """``env.randomise``: what each training episode draws (see ``EpisodeRandomisation``).

    Example::

        env:
          feature_version: 2
          randomise:
            workers_range: [10, 100]     # or workers: [10, 20, 40]
            swaps: [overlap, stop]
            load_scale: [0.5, 2.0]
    """

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
            raise ValueError("workers_range: give either workers or workers_range, not both")
        return self


class EnvSection(_Section):
    """``env``: the training environment (see :class:`lokirl.envs.EnvConfig`)."""

    pipeline: str = "traffic_analysis"
    workers: PositiveInt = 20
    episode_s: PositiveInt = 120
    epoch_s: PositiveFloat = 1.0
    traces: list[str] | None = Field(None, min_length=1)
    trace_format: Literal["auto", "arrivals", "rates", "timestamps"] = "auto"
    trace_column: str | None = None
    load_low: _Range = (0.1, 0.6)
    load_high: _Range = (0.8, 2.5)
    load_unit: Literal["full_accuracy", "max"] = Field(
        "full_accuracy",
        description="unit of load_low/load_high: the cluster's capacity at full accuracy, "
        "or its largest capacity at any accuracy (max; goes with feature_version 3)",
    )
    forecaster: str = "ewma"
    headrooms: list[PositiveFloat] = Field(
        default_factory=lambda: [1.0, 1.15, 1.3, 1.5, 1.75], min_length=1
    )
    base_horizon_s: NonNegativeInt = 5
    weights: WeightsSection = Field(default_factory=WeightsSection)
    solver_time: Literal["model", "measured"] | NonNegativeFloat = Field(
        "model",
        description="simulated duration of a solve: model, measured, or seconds for every "
        "solve (shorter than epoch_s)",
    )
    solver: Literal["highs", "cbc"] = "highs"
    time_limit_s: PositiveFloat = 1.0
    demand_quantum: NonNegativeFloat = 0.02
    cache_size: NonNegativeInt = 4096
    plan_library: str = ""
    engine: Literal["simpy", "fluid"] = "simpy"
    fluid_dt: PositiveFloat = 0.05
    fallback: str = ""
    follow_horizons: list[PositiveInt] = Field(
        default_factory=list,
        description="with a fluid fallback: horizons FOLLOW chooses among (feature_version 2 or 3)",
    )
    follow_settings: list[FollowSetting] = Field(
        default_factory=list,
        description="with a fluid fallback: (horizon, burst_s, derate) settings FOLLOW "
        "chooses among (feature_version 2 or 3; instead of follow_horizons)",
    )
    swap: Literal["overlap", "stop", "free"] = "overlap"
    feature_version: int = 1
    randomise: RandomiseSection | None = None
    batch_overhead_s: NonNegativeFloat = Field(
        0.0,
        description="seconds each batch occupies its worker beyond its profiled latency "
        "(simpy engine only): a per-batch cost no plan accounts for, as the live hop",
    )

    @field_validator("feature_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        from lokirl.envs.features import FEATURE_VERSIONS

        if v not in FEATURE_VERSIONS:
            raise ValueError(f"unknown observation version {v}, known: {list(FEATURE_VERSIONS)}")
        return v

    @field_validator("load_low", "load_high")
    @classmethod
    def _ordered(cls, v: tuple) -> tuple:
        if v[0] > v[1]:
            raise ValueError(f"lo must be <= hi, got [{v[0]}, {v[1]}]")
        return v

    @model_validator(mode="after")
    def _solve_within_epoch(self) -> EnvSection:
        if not isinstance(self.solver_time, str) and self.solver_time >= self.epoch_s:
            raise ValueError(
                f"solver_time: {self.solver_time:g} s is not shorter than epoch_s "
                f"({self.epoch_s:g} s): a solve would still run at the next decision"
            )
        if self.follow_horizons and (not self.fallback or self.feature_version < 2):
            raise ValueError(
                "follow_horizons: needs a fallback that plans over a horizon (e.g. "
                "fallback: fluid(...)) and feature_version: 2 or 3"
            )
        if self.follow_settings and (
            not self.fallback.startswith("fluid") or self.feature_version < 2
        ):
            raise ValueError(
                "follow_settings: needs a fluid fallback (fallback: fluid(...)) and "
                "feature_version: 2 or 3"
            )
        if (self.load_unit == "max") != (self.feature_version == 3):
            raise ValueError(
                f"load_unit: {self.load_unit} with feature_version: {self.feature_version}: "
                "a policy observes demand in the unit its training loads are drawn in; "
                "write load_unit: max with feature_version: 3, or load_unit: full_accuracy "
                "with feature_version 1 or 2"
            )
        if self.follow_settings and self.follow_horizons:
            raise ValueError(
                "follow_settings: give follow_horizons or follow_settings, not both "
                "(a setting names its horizon)"
            )
        if self.batch_overhead_s and self.engine == "fluid":
            raise ValueError(
                "batch_overhead_s: the fluid engine does not model a per-batch overhead; "
                "write engine: simpy or batch_overhead_s: 0"
            )
        if self.batch_overhead_s >= self.epoch_s:
            raise ValueError(
                f"batch_overhead_s: {self.batch_overhead_s:g} s is not shorter than epoch_s "
                f"({self.epoch_s:g} s)"
            )
        return self


class TrainSection(_Section):
    """A whole training file (``configs/agents/*.yaml``)."""

    name: str = Field("ppo", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    seed: NonNegativeInt = 0
    total_timesteps: PositiveInt = 20000
    n_envs: PositiveInt = 2
    vec_env: Literal["dummy", "subproc"] = "subproc"
    torch_threads: PositiveInt = 1
    env: EnvSection = Field(default_factory=EnvSection)
    ppo: PPOSection = Field(default_factory=PPOSection)
    eval_every: NonNegativeInt = 5000
    eval_episodes: NonNegativeInt = 2
    baseline: str = "loki"
    checkpoint_every: NonNegativeInt = 5000
    imitation: ImitationSection = Field(default_factory=ImitationSection)
    constraint: ConstraintSection | None = None


#: Loc entries pydantic adds for the member of a union that was tried.
_UNION_TAGS = frozenset({"float", "int", "str", "bool", "constrained-float", "constrained-int"})

#: What to write for a field whose value was refused (by the field's last name).
_FIXES = {
    "name": "use letters, digits, '.', '_' or '-' (it names the run folder)",
    "vec_env": "use dummy or subproc",
    "swap": "use overlap, stop or free",
    "swaps": "use overlap, stop or free",
    "engine": "use simpy or fluid",
    "solver": "use highs or cbc",
    "solver_time": "use model, measured, or seconds below epoch_s (e.g. 0.02)",
    "feature_version": "use 1 (one cluster), 2 (any cluster in the randomised range) or 3 "
    "(as 2, with load_unit: max)",
    "load_unit": "use full_accuracy or max",
    "gamma": "use a discount in (0, 1], e.g. 0.95",
    "gae_lambda": "use a value in [0, 1], e.g. 0.9",
    "n_steps": "use at least 2, e.g. 256",
    "workers_range": "write [lo, hi] with lo <= hi",
    "load_scale": "write [lo, hi] with 0 < lo <= hi",
    "load_low": "write [lo, hi] with 0 <= lo <= hi (multiples of env.load_unit)",
    "load_high": "write [lo, hi] with 0 <= lo <= hi (multiples of env.load_unit)",
    "violation_budget": "use a share in [0, 1), e.g. 0.05",
}


def validate_train_file(data: Any, source: str) -> dict[str, Any]:
    """Validate a training file's mapping against :class:`TrainSection`.

    Args:
        data: The parsed YAML (with command-line overrides applied).
        source: The file (named in errors).

    Returns:
        The fields the file sets (defaults left out), validated and converted.

    Raises:
        ConfigError: naming ``source``, the field, what is wrong and the fix.

    """
    if not isinstance(data, dict):
        raise ConfigError(
            source, "-", "expected a mapping of fields", "see configs/agents/ppo.yaml"
        )
    try:
        sec = TrainSection.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err["loc"]]
        msg = err["msg"]
        # A field of several accepted forms (e.g. "model" or seconds) tags its loc with
        # the form tried ("literal['model','measured']", "float"): name the field.
        named = [x for x in loc if "[" not in x and x not in _UNION_TAGS]
        if named != loc:
            loc, msg = named, "not one of the accepted values"
        field = ".".join(loc) or "-"
        last = next((x for x in reversed(loc) if not x.isdigit()), "")
        # A section-level check names its field first ("workers_range: ...").
        head, sep, rest = msg.removeprefix("Value error, ").partition(": ")
        if sep and head in _section_of(loc).model_fields:
            loc, last, msg = [*loc, head], head, rest
            field = ".".join(loc)
        if err["type"] == "extra_forbidden":
            parent = _section_of(loc[:-1])
            fix = f"use one of {', '.join(sorted(parent.model_fields))}"
            msg = "unknown field"
        else:
            fix = _FIXES.get(last, f"see {_section_of(loc[:-1]).__name__} in {__name__}")
            if "input" in err and err["type"] != "missing":
                msg = f"{msg} (got {err['input']!r})"
        raise ConfigError(source, field, msg, fix) from None
    return sec.model_dump(exclude_unset=True)


def _section_of(loc: list[str]) -> type[BaseModel]:
    """The section model at a field path (``["env", "randomise"]`` -> RandomiseSection)."""
    model: type[BaseModel] = TrainSection
    for part in loc:
        if part.isdigit():
            continue
        ann = model.model_fields.get(part)
        if ann is None:
            break
        inner = [a for a in getattr(ann.annotation, "__args__", (ann.annotation,))]
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            break
        model = sub
    return model


def check_full_accuracy_unit(pipeline: Any, workers: int, source: str) -> None:
    """Refuse a pipeline whose most accurate variants cannot meet its SLO.

    With ``env.load_unit: full_accuracy`` the training environment draws each
    episode's load range (``env.load_low``, ``env.load_high``) in multiples of the
    cluster's capacity at full accuracy, and a version-2 policy observes demand over
    that capacity (``load_unit: max`` with ``feature_version: 3`` uses the capacity at
    any accuracy instead, and is not checked here). A pipeline with no such
    capacity (``social_media``: its most accurate variants miss the SLO) would train on
    a unit that is a failed plan's sliver (27 frames/s on 20 workers, against 1,093 at
    any accuracy): loads far below what it serves, features clipped. The deterministic
    solves of :func:`lokirl.envs.features.solve_capacities` at ``workers`` (the
    suites' load unit solves the same).

    Raises:
        ConfigError: naming ``source``, ``env.pipeline`` and what to do instead.

    """
    from lokirl.core.pipeline import Cluster
    from lokirl.envs.features import solve_capacities

    if not solve_capacities(pipeline, Cluster.homogeneous(pipeline, workers)).full_accuracy_ok:
        raise ConfigError(
            source,
            "env.pipeline",
            f"pipeline {pipeline.name!r} has no capacity at full accuracy on {workers} workers "
            "(its most accurate variants cannot meet the SLO), and the training environment's "
            "load range and a policy's demand features are in that unit",
            "write env.load_unit: max and env.feature_version: 3 (loads and demand "
            "features in the largest capacity at any accuracy, as the suites' social_media "
            "cases use), with env.load_low/load_high in that unit",
        )


def check_references(cfg: Any, source: str) -> None:
    """Load what a training config names; refuse clusters that leave a task without workers.

    Args:
        cfg: The :class:`lokirl.agents.config.TrainConfig` built from the file.
        source: The file (named in errors).

    Raises:
        ConfigError: naming ``source``, the field and the fix.

    """
    from lokirl.core.controllers import make_controller
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.forecast.registry import make_forecaster
    from lokirl.traces import list_bundled, resolve_trace
    from lokirl.traces.generators import FAMILIES

    env = cfg.env
    try:
        pipeline = load_pipeline(env.pipeline)
    except ConfigError as exc:
        beside = Path(source).parent / env.pipeline
        if exc.field == "pipeline" and beside.is_file() and not Path(env.pipeline).is_absolute():
            exc = ConfigError(  # relative paths are read from the working folder
                exc.source,
                exc.field,
                f"no such file in {Path.cwd()} (a relative path is read from the folder "
                "lokirl runs in, not the training file's)",
                f"write {beside.resolve()}",
            )
        raise exc.within(source, "env.pipeline") from None
    tasks = len(pipeline.tasks)
    sizes: list[tuple[str, int]] = [("env.workers", env.workers)]
    rz = env.randomise
    if rz.workers:
        sizes += [(f"env.randomise.workers[{i}]", w) for i, w in enumerate(rz.workers)]
    if rz.workers_range is not None:
        sizes.append(("env.randomise.workers_range", rz.workers_range[0]))
    for where, n in sizes:
        if n < tasks:
            raise ConfigError(
                source,
                where,
                f"{n} workers for pipeline {pipeline.name!r}, which has {tasks} tasks that "
                "each need at least one worker (such a cluster serves nothing)",
                f"use {tasks} workers or more",
            )
    if env.load_unit == "full_accuracy":
        check_full_accuracy_unit(pipeline, env.workers, source)
    bundled = set(list_bundled())
    for i, spec in enumerate(env.traces):
        where = f"env.traces[{i}]"
        if spec.startswith("gen:"):
            if spec[4:] not in FAMILIES:
                raise ConfigError(
                    source,
                    where,
                    f"unknown generated family {spec[4:]!r}",
                    f"use gen: with one of {sorted(FAMILIES)}",
                )
        elif spec not in bundled and not Path(spec).is_file():
            raise ConfigError(
                source,
                where,
                f"{spec!r} is neither a bundled trace nor a file",
                f"use gen:FAMILY, a bundled trace ({', '.join(sorted(bundled)[:4])}, ...) "
                "or the path of a trace file",
            )
        else:  # read it now: a file lokirl cannot read fails before training starts
            try:
                resolve_trace(spec, fmt=env.trace_format, column=env.trace_column)
            except LokiError as exc:
                raise ConfigError(  # the reader's own fix names command-line options
                    source,
                    where,
                    problem_and_fix(exc, "")[0],
                    "set env.trace_format and env.trace_column to how the file is written",
                ) from None
    try:
        make_forecaster(env.forecaster)
    except (LokiError, ValueError, KeyError, OSError) as exc:
        raise ConfigError(
            source,
            "env.forecaster",
            *problem_and_fix(exc, "use ewma, a bundled forecaster or learned:PATH"),
        ) from None
    specs = [("baseline", cfg.baseline), ("env.fallback", env.fallback)]
    specs.append(("imitation.teacher", cfg.imitation.teacher))
    for where, spec in specs:
        if not spec:
            continue
        try:
            make_controller(spec)
        except (LokiError, ValueError, KeyError) as exc:
            raise ConfigError(
                source,
                where,
                *problem_and_fix(exc, "use a controller such as loki, trigger or periodic"),
            ) from None
    if (env.follow_horizons or env.follow_settings) and cfg.imitation.teacher == env.fallback:
        # imitation starts the policy at the fallback's own horizon or setting
        from lokirl.envs.features import own_follow_index

        try:
            own_follow_index(env, make_controller(env.fallback))
        except ValueError as exc:
            what = "follow_horizons" if env.follow_horizons else "follow_settings"
            raise ConfigError(
                source, f"env.{what}", str(exc), f"add the fallback's own to env.{what}"
            ) from None
    if not math.isfinite(env.episode_s / env.epoch_s) or env.episode_s < env.epoch_s:
        raise ConfigError(
            source,
            "env.episode_s",
            f"an episode of {env.episode_s} s is shorter than one epoch ({env.epoch_s} s)",
            "make episode_s at least epoch_s",
        )
