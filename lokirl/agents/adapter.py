"""Turn a trained PPO policy into a :class:`~lokirl.core.controller.Controller`.

A trained policy is saved as ``model.zip`` (stable-baselines3) with
``model.features.json`` beside it (the :class:`~lokirl.envs.features.FeatureSpec`
it was trained with). ``make_controller("ppo:path/to/model.zip")`` loads both.

The feature spec also says what the policy fits: a version-1 policy one pipeline's
tasks on exactly ``workers`` workers; a version-2 policy the pipeline, accelerator
types, worker range and swap modes of its :class:`~lokirl.envs.features.PolicyScope`.
Hosts bind the controller to what they serve before the first decision
(:func:`lokirl.core.binding.bind_controller` calls :meth:`PPOController.bind`),
which refuses a policy that does not fit with a :class:`~lokirl.errors.ConfigError`
naming the policy's feature file, the field and the fix;
:func:`check_policy_file` does the same from the feature file alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lokirl.agents.fallback import bind_fallback
from lokirl.core.controller import ControlContext, Decision
from lokirl.core.controllers import make_controller
from lokirl.core.forecasting import Forecaster
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.envs.features import (
    ClusterScale,
    FeatureSpec,
    ForecastTracker,
    cluster_scale,
    fallback_decisions,
    observe,
    to_decision,
)
from lokirl.errors import ConfigError
from lokirl.forecast import make_forecaster

#: Trained controllers shipped in the package (``lokirl/data/policies``): name -> model
#: files. ``ppo`` is the whole learned controller, one policy per pipeline served as a set
#: (:mod:`lokirl.agents.policy_set`; which files and why: ``policies/ppo/PROVENANCE.md``);
#: ``ppo-v1`` the first round's policy (``traffic_analysis`` on exactly 20 workers), which
#: earlier records name ``ppo``.
SHIPPED_POLICIES: dict[str, tuple[str, ...]] = {
    "ppo": (
        "ppo/traffic_analysis/model.zip",
        "ppo/social_media/model.zip",
        "ppo/traffic_analysis_free/model.zip",
        "ppo/social_media_free/model.zip",
    ),
    "ppo-v1": ("ppo_traffic_analysis/model.zip",),
}


def shipped_policy_paths(name: str) -> list[Path] | None:
    """The model files of a shipped controller (``ppo``, ``ppo-v1``); None for other names."""
    if name not in SHIPPED_POLICIES:
        return None
    from importlib import resources

    root = Path(str(resources.files("lokirl") / "data" / "policies"))
    return [root / f for f in SHIPPED_POLICIES[name]]


def is_policy_spec(spec: str) -> bool:
    """Whether ``spec`` names trained policies (a shipped name or ``ppo:PATH[+PATH]``)."""
    return spec in SHIPPED_POLICIES or spec.startswith("ppo:")


def features_path(model_path: str | Path) -> Path:
    """Where the feature spec of ``model_path`` lives."""
    p = Path(model_path)
    return p.with_name(p.stem + ".features.json")


def save_policy(model: Any, path: str | Path, spec: FeatureSpec) -> Path:
    """Save an SB3 model and its feature spec; returns the model path.

    The TensorBoard folder of the run that trained it is left out (it names a path
    on the training machine; ``--resume`` passes its own).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path), exclude=["tensorboard_log"])
    features_path(path).write_text(json.dumps(spec.to_dict(), indent=2))
    return path


def load_feature_spec(model_path: str | Path) -> FeatureSpec:
    """The feature spec saved beside ``model_path`` (without loading the model).

    Raises:
        ConfigError: the file is missing or not a feature spec this lokirl reads.

    """
    fpath = features_path(model_path)
    if not fpath.is_file():
        raise ConfigError(
            str(fpath),
            "features",
            "the feature spec saved with the model is missing",
            "keep model.features.json next to model.zip",
        )
    try:
        return FeatureSpec.from_dict(json.loads(fpath.read_text()))
    except ValueError as exc:  # JSON errors and the spec's own checks
        field_name, _, why = str(exc).partition(": ")
        known = field_name.isidentifier()
        raise ConfigError(
            str(fpath),
            field_name if known else "-",
            why if known else str(exc),
            "re-save the policy with this lokirl version (`lokirl train`)",
        ) from None
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            str(fpath),
            "-",
            f"not a feature spec ({type(exc).__name__}: {exc})",
            "keep the model.features.json written with the model",
        ) from None


def check_policy_fits(
    spec: FeatureSpec,
    source: str,
    pipeline: Pipeline,
    cluster: Cluster,
    swap: str | None = None,
) -> None:
    """Refuse a policy whose pipeline or cluster differs from what it was built for.

    Version 1: the pipeline's tasks must be the policy's and the cluster must have
    exactly ``spec.workers`` workers. Versions 2 and 3: the pipeline's name and tasks, the
    cluster's accelerator types and size, and the swap mode (when given) must lie
    in ``spec.scope``.

    Args:
        spec: The policy's feature spec.
        source: The policy's feature file (named in the error).
        pipeline: The pipeline to serve.
        cluster: The cluster to serve it on.
        swap: The swap mode it will run under (``None``: not checked).

    Raises:
        ConfigError: naming ``source``, the field that does not fit, and the fix.

    """
    scope = spec.scope
    trained_on = f"pipeline {scope.pipeline}, " if scope is not None else "a pipeline "
    have = [t.name for t in pipeline.tasks]
    if set(spec.tasks) != set(have):
        raise ConfigError(
            source,
            "tasks",
            f"the policy was trained on {trained_on}with tasks {list(spec.tasks)}; "
            f"{pipeline.name} has tasks {have}",
            f"use it with the pipeline it was trained on, or train a policy for "
            f"{pipeline.name} (`lokirl train` with env.pipeline: {pipeline.name})",
        )
    n = cluster.total
    if scope is None:
        if spec.workers is not None and n != int(spec.workers):
            raise ConfigError(
                source,
                "workers",
                f"the policy (feature version {spec.version}) was trained for a cluster of "
                f"exactly {spec.workers} workers, not {n}",
                f"serve it on {spec.workers} workers, or train a version-2 policy whose "
                f"worker range covers {n} (env.feature_version: 2, or 3 with env.load_unit: max; "
                "env.randomise.workers_range)",
            )
        return
    if scope.pipeline != pipeline.name:
        raise ConfigError(
            source,
            "scope.pipeline",
            f"the policy was trained on pipeline {scope.pipeline}, not {pipeline.name}",
            f"serve {scope.pipeline}, or train a policy with env.pipeline: {pipeline.name}",
        )
    extra = sorted(set(cluster.workers) - set(scope.accelerators))
    if extra:
        raise ConfigError(
            source,
            "scope.accelerators",
            f"the policy was trained on accelerator types {list(scope.accelerators)}; "
            f"the cluster also has {extra}",
            f"serve it on {list(scope.accelerators)} workers, or train a policy on {extra}",
        )
    lo, hi = scope.workers
    if not lo <= n <= hi:
        raise ConfigError(
            source,
            "scope.workers",
            f"the policy was trained on clusters of {lo}..{hi} workers, not {n}",
            f"serve it on {lo}..{hi} workers, or train one whose env.randomise.workers_range "
            f"covers {n}",
        )
    if swap is not None and swap not in scope.swaps:
        raise ConfigError(
            source,
            "scope.swaps",
            f"the policy was trained with swap modes {list(scope.swaps)}, not {swap!r}",
            f"run with swap {scope.swaps[0]}, or train with {swap!r} in env.randomise.swaps",
        )


def check_policy_file(
    model_path: str | Path, pipeline: Pipeline, cluster: Cluster, swap: str | None = None
) -> None:
    """:func:`check_policy_fits` from the feature file beside ``model_path`` alone.

    Reads ``model.features.json`` without loading the model (which takes seconds),
    so a host can refuse a policy at once.

    Raises:
        ConfigError: the feature file is missing or unreadable, or the policy does
            not fit.

    """
    spec = load_feature_spec(model_path)
    check_policy_fits(spec, str(features_path(model_path)), pipeline, cluster, swap)


def policy_paths_of(spec: str) -> list[str] | None:
    """The model files a controller spec names (a shipped name's, or ``ppo:A[+B]``), or None."""
    shipped = shipped_policy_paths(spec)
    if shipped is not None:
        return [str(p) for p in shipped]
    if spec.startswith("ppo:"):
        from lokirl.agents.policy_set import split_policy_paths

        return split_policy_paths(spec[4:])
    return None


def check_spec_fits(
    spec: str, pipeline: Pipeline, cluster: Cluster, swap: str | None = None
) -> None:
    """Refuse a trained-policy spec (``ppo``, ``ppo:PATH``) that does not fit, before loading it.

    For hosts that check every controller at start-up (a suite's cases, the live
    runtime): reads only the feature files. A policy set (``ppo:A.zip+B.zip``,
    :mod:`lokirl.agents.policy_set`) fits when the set has one member to serve
    (:func:`~lokirl.agents.policy_set.check_one_fits`). Other specs pass.

    Raises:
        ConfigError: as :func:`check_policy_fits` (or the feature file is missing);
            for a set, no member fits or several do and none is narrower.

    """
    paths = policy_paths_of(spec)
    if paths is None:
        return
    if len(paths) > 1:
        from lokirl.agents.policy_set import check_set_files

        check_set_files(spec, paths, pipeline, cluster, swap)
    else:
        check_policy_file(paths[0], pipeline, cluster, swap)


def bind_scale(
    spec: FeatureSpec,
    source: str,
    pipeline: Pipeline,
    cluster: Cluster,
    swap: str,
    cache: dict,
) -> ClusterScale | None:
    """Refuse a misfit (:func:`check_policy_fits`), then the cluster's scale (versions 2, 3).

    How a learned controller binds: ``cache`` keeps the scales it computed (two solves
    each) by pipeline, cluster, swap mode and load times. Version 1: ``None``.
    """
    check_policy_fits(spec, source, pipeline, cluster, swap)
    if spec.version < 2:
        return None
    key = (
        pipeline.name,
        tuple(sorted(cluster.workers.items())),
        swap,
        max((v.load_time_s for v in pipeline.variants()), default=0.0),
    )
    if key not in cache:
        cache[key] = cluster_scale(pipeline, cluster, swap)
    return cache[key]


def check_bound(spec: FeatureSpec, source: str, scale: ClusterScale | None) -> None:
    """Refuse to decide with a version-2 or 3 policy that was never bound to a cluster."""
    if spec.version >= 2 and scale is None:
        raise ConfigError(
            source,
            "bind",
            f"a version-{spec.version} policy observes relative to the cluster it serves and "
            "was not told which",
            "bind it first: lokirl.core.binding.bind_controller(controller, pipeline, "
            "cluster, swap)",
        )


@dataclass
class PPOController:
    """A trained PPO policy acting as a controller (deterministic actions).

    Attributes:
        model_path: Path of the saved ``model.zip``.
        name: Display name.

    """

    model_path: str
    name: str = "ppo"
    spec: FeatureSpec = field(init=False)
    _model: Any = field(init=False, repr=False)
    _forecaster: Forecaster = field(init=False, repr=False)
    _tracker: ForecastTracker = field(init=False, repr=False)
    _fallback: Any = field(init=False, repr=False)
    _scale: ClusterScale | None = field(init=False, repr=False, default=None)
    _scales: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        from stable_baselines3 import PPO

        path = Path(self.model_path)
        if not path.is_file():
            raise ConfigError(
                self.model_path,
                "ppo",
                "no such model file",
                "train one with `lokirl train` or fix the path",
            )
        self.spec = load_feature_spec(path)
        self._model = PPO.load(str(path), device="cpu")
        self._forecaster = make_forecaster(self.spec.forecaster)
        self._tracker = ForecastTracker(self.spec, self._forecaster)
        self._fallback = make_controller(self.spec.fallback) if self.spec.fallback else None

    @property
    def features_file(self) -> str:
        """The feature file that records what the policy fits."""
        return str(features_path(self.model_path))

    def bind(self, pipeline: Pipeline, cluster: Cluster, swap: str = "overlap") -> None:
        """Check that the policy fits and (version 2) scale its observations to the cluster.

        Called by the host before the first decision
        (:func:`lokirl.core.binding.bind_controller`); again for each new episode
        or cluster (the scales are cached).

        Raises:
            ConfigError: the policy was not built for this pipeline, cluster or swap mode.

        """
        self._scale = bind_scale(
            self.spec, self.features_file, pipeline, cluster, swap, self._scales
        )
        bind_fallback(self, self._fallback, pipeline, cluster, swap)

    def decide(self, context: ControlContext) -> Decision:
        """Observe the context as in training and act deterministically."""
        if context.queue_lengths and set(context.queue_lengths) != set(self.spec.tasks):
            raise ConfigError(
                self.model_path,
                "ppo",
                f"the policy was trained on tasks {list(self.spec.tasks)}, "
                f"not {sorted(context.queue_lengths)}",
                "use it with the pipeline it was trained on, or train one with `lokirl train`",
            )
        check_bound(self.spec, self.model_path, self._scale)
        fc = self._tracker(context)
        hint, hints = fallback_decisions(self._fallback, self.spec, context)
        obs = observe(self.spec, context, fc, hint, self._scale, hints).clip(0, 20)
        action, _ = self._model.predict(obs, deterministic=True)
        return to_decision(self.spec, action, context, fc, hint, hints)
