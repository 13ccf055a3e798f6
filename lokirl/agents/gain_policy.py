"""A controller learned from paired rollouts: predict each deviation's gain, act on it.

:mod:`lokirl.agents.deviations` measures, at states of episodes played by a fallback
controller, what each deviation (keep the plan, or re-solve warm or cold at one of
the policy's headrooms, held for ``hold_epochs`` epochs) gains over following the
fallback for the same epochs, with common random numbers. A :class:`GainModel` fits
those gains from the observation (one ridge regression per deviation on
standardised features): one step of approximate policy iteration on the fallback.
:class:`GainController` plays it: every ``hold_epochs`` epochs it predicts every
deviation's gain, holds the best one for the next ``hold_epochs`` epochs when its
predicted gain is positive, and follows the fallback otherwise.

The artifact is one JSON file (``gain:PATH``): the feature spec (what the policy
fits, as for a PPO policy), the standardisation, the weights and the actions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lokirl.agents.adapter import bind_scale, check_bound
from lokirl.agents.fallback import bind_fallback
from lokirl.core.controller import ControlContext, Decision
from lokirl.core.controllers import make_controller
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.envs.features import (
    FOLLOW,
    ClusterScale,
    FeatureSpec,
    ForecastTracker,
    observe,
    to_decision,
)
from lokirl.errors import ConfigError
from lokirl.forecast import make_forecaster

#: Format tag of the artifact.
FORMAT = "lokirl-gain-policy"


@dataclass(frozen=True)
class GainModel:
    """Ridge regressions of each deviation's gain over following, on the observation.

    Attributes:
        spec: The feature spec of the observations (must name a fallback).
        mean: Feature means of the fitting states.
        scale: Feature standard deviations of the fitting states (floored).
        weights: ``(features + 1, deviations)``: one column per deviation, the last
            row the intercept.
        actions: ``[kind, headroom index]`` per deviation.
        labels: A name per deviation.
        hold_epochs: Epochs a chosen deviation is held (the study's ``persist``).
        meta: How it was fitted (states, ridge, source).

    """

    spec: FeatureSpec
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    actions: np.ndarray
    labels: tuple[str, ...]
    hold_epochs: int
    meta: dict[str, Any] = field(default_factory=dict)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """Predicted gain of every deviation at each row of ``obs``."""
        return predict_gains(obs, self.mean, self.scale, self.weights)

    def behaviour(self) -> Callable[[np.ndarray, int], np.ndarray]:
        """The model as a player of the environment, as :class:`GainController` plays it.

        Returns ``(observation, step) -> action``: at step 0 and every
        ``hold_epochs`` steps after, the deviation with the best predicted gain when
        it is positive, else ``FOLLOW``; held in between. For a deviation study of
        the states this policy visits (:func:`lokirl.agents.deviations.study_deviations`).
        """
        held = {"action": np.array([FOLLOW, 0], dtype=np.int64)}

        def act(obs: np.ndarray, step: int) -> np.ndarray:
            if step % self.hold_epochs == 0:
                held["action"] = self.choose(obs)
            return held["action"]

        return act

    def choose(self, obs: np.ndarray) -> np.ndarray:
        """The deviation with the best predicted gain at ``obs`` if positive, else ``FOLLOW``."""
        pred = self.predict(np.asarray(obs, dtype=float))[0]
        best = int(np.argmax(pred))
        if pred[best] > 0:
            return self.actions[best]
        return np.array([FOLLOW, 0], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "format": FORMAT,
            "version": 1,
            "spec": self.spec.to_dict(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "actions": self.actions.tolist(),
            "labels": list(self.labels),
            "hold_epochs": self.hold_epochs,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GainModel:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != FORMAT:
            raise ValueError(f"format: expected {FORMAT!r}, got {d.get('format')!r}")
        model = cls(
            spec=FeatureSpec.from_dict(d["spec"]),
            mean=np.asarray(d["mean"], dtype=float),
            scale=np.asarray(d["scale"], dtype=float),
            weights=np.asarray(d["weights"], dtype=float),
            actions=np.asarray(d["actions"], dtype=np.int64),
            labels=tuple(d["labels"]),
            hold_epochs=int(d["hold_epochs"]),
            meta=dict(d.get("meta", {})),
        )
        n = model.spec.size
        if model.mean.shape != (n,) or model.weights.shape != (n + 1, len(model.actions)):
            raise ValueError(
                f"weights: shapes {model.mean.shape} / {model.weights.shape} do not fit "
                f"{n} features and {len(model.actions)} deviations"
            )
        return model

    def save(self, path: str | Path) -> Path:
        """Write the artifact as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()))
        return path


def ridge_fit(
    obs: np.ndarray, gains: np.ndarray, ridge: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regressions of ``gains`` (one column per deviation) on standardised ``obs``.

    Returns:
        ``(mean, scale, weights)``: the standardisation and ``(features + 1,
        deviations)`` weights, the intercept last and not penalised.

    """
    mean = obs.mean(axis=0)
    scale = np.maximum(obs.std(axis=0), 1e-6)
    x = np.c_[(obs - mean) / scale, np.ones(len(obs))]
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0
    return mean, scale, np.linalg.solve(x.T @ x + penalty, x.T @ gains)


def predict_gains(
    obs: np.ndarray, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Predicted gain of every deviation at each row of ``obs`` (see :func:`ridge_fit`)."""
    x = (np.atleast_2d(obs) - mean) / scale
    return np.c_[x, np.ones(len(x))] @ weights


def held_out_gain(
    obs: np.ndarray,
    gains: np.ndarray,
    episode: np.ndarray,
    ridge: float,
    folds: int = 5,
    n_boot: int = 2000,
) -> dict[str, float]:
    """What the gain policy's rule earns on episodes it was not fitted on.

    Ridge fits (as :func:`~lokirl.agents.gain_policy.fit_gain_model`) on all but one
    fold of episodes pick, at each state of the held-out fold, the deviation with the
    highest predicted gain when it is positive (else follow); the figure is the mean
    measured gain of those picks per state (following earns 0), with a 95% bootstrap
    interval over episodes.
    """
    picked = np.zeros(len(obs))
    for fold in range(folds):
        te = episode % folds == fold
        tr = ~te
        if not tr.any() or not te.any():
            continue
        pred = predict_gains(obs[te], *ridge_fit(obs[tr], gains[tr], ridge))
        best = pred.argmax(1)
        picked[te] = np.where(pred.max(1) > 0, gains[te][np.arange(te.sum()), best], 0.0)
    eps = np.unique(episode)
    rng = np.random.default_rng(0)
    by_ep = {e: picked[episode == e] for e in eps}
    boot = [
        np.concatenate([by_ep[e] for e in rng.choice(eps, len(eps))]).mean() for _ in range(n_boot)
    ]
    return {
        "ridge": ridge,
        "gain_per_state": float(picked.mean()),
        "lo": float(np.quantile(boot, 0.025)),
        "hi": float(np.quantile(boot, 0.975)),
        "share_deviating": float((picked != 0).mean()),
        "oracle_gain_per_state": float(np.maximum(gains.max(1), 0).mean()),
    }


def fit_gain_model(
    obs: np.ndarray,
    gains: np.ndarray,
    actions: np.ndarray,
    labels: tuple[str, ...],
    spec: FeatureSpec,
    hold_epochs: int,
    ridge: float = 10.0,
    meta: dict[str, Any] | None = None,
) -> GainModel:
    """Fit one ridge regression per deviation (the intercept not penalised).

    Args:
        obs: Observations of the branch states, ``(states, features)``.
        gains: Gain of each deviation at each state, ``(states, deviations)``.
        actions: The deviations, ``(deviations, 2)``.
        labels: Their names.
        spec: The observations' feature spec (with a fallback).
        hold_epochs: How long a deviation was held when its gain was measured.
        ridge: L2 penalty on the standardised weights.
        meta: Recorded in the artifact.

    Raises:
        ValueError: shapes that do not agree, no fallback, or fewer than two states.

    """
    obs = np.asarray(obs, dtype=float)
    gains = np.asarray(gains, dtype=float)
    if not spec.fallback:
        raise ValueError("spec: a gain policy deviates from a fallback; the spec names none")
    if obs.ndim != 2 or obs.shape[1] != spec.size or len(obs) < 2:
        raise ValueError(f"obs: need (states >= 2, {spec.size}), got {obs.shape}")
    if gains.shape != (len(obs), len(actions)):
        raise ValueError(f"gains: need {(len(obs), len(actions))}, got {gains.shape}")
    mean, scale, weights = ridge_fit(obs, gains, ridge)
    return GainModel(
        spec=spec,
        mean=mean,
        scale=scale,
        weights=weights,
        actions=np.asarray(actions, dtype=np.int64),
        labels=tuple(labels),
        hold_epochs=int(hold_epochs),
        meta={"states": len(obs), "ridge": ridge, **(meta or {})},
    )


def load_gain_model(path: str | Path) -> GainModel:
    """Read a ``gain:PATH`` artifact.

    Raises:
        ConfigError: the file is missing or is not a gain policy this lokirl reads.

    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            str(p), "gain", "no such file", "fit one with benchmarks/study_deviations.py --fit"
        )
    try:
        return GainModel.from_dict(json.loads(p.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            str(p), "gain", f"not a gain policy ({exc})", "re-fit it with this lokirl version"
        ) from None


@dataclass
class GainController:
    """Plays a :class:`GainModel`: deviate where the predicted gain is positive, else follow.

    Attributes:
        model_path: The artifact.
        name: Display name.

    """

    model_path: str
    name: str = "gain"
    model: GainModel = field(init=False, repr=False)
    _tracker: ForecastTracker = field(init=False, repr=False)
    _fallback: Any = field(init=False, repr=False)
    _scale: ClusterScale | None = field(init=False, repr=False, default=None)
    _scales: dict = field(init=False, repr=False, default_factory=dict)
    _action: np.ndarray = field(init=False, repr=False)
    _left: int = field(init=False, repr=False, default=0)
    #: Decision points, and those where a deviation was chosen.
    decisions: int = field(init=False, default=0)
    deviations: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.model = load_gain_model(self.model_path)
        spec = self.model.spec
        self._tracker = ForecastTracker(spec, make_forecaster(spec.forecaster))
        self._fallback = make_controller(spec.fallback)
        self._action = np.array([FOLLOW, 0], dtype=np.int64)

    def bind(self, pipeline: Pipeline, cluster: Cluster, swap: str = "overlap") -> None:
        """Refuse a pipeline or cluster the model was not fitted for; scale to the cluster."""
        self._scale = bind_scale(
            self.model.spec, self.model_path, pipeline, cluster, swap, self._scales
        )
        bind_fallback(self, self._fallback, pipeline, cluster, swap)

    def decide(self, context: ControlContext) -> Decision:
        """Follow, or hold the deviation chosen at the last decision point."""
        spec = self.model.spec
        check_bound(spec, self.model_path, self._scale)
        fc = self._tracker(context)
        hint = self._fallback.decide(context)
        if context.plan is None:  # the first plan is the fallback's, as in the study
            self._action = np.array([FOLLOW, 0], dtype=np.int64)
            self._left = 0
        elif self._left <= 0:  # a decision point (the host decides once per epoch)
            obs = observe(spec, context, fc, hint, self._scale).clip(0, 20)
            self._action = self.model.choose(obs)
            self.decisions += 1
            self.deviations += int(self._action[0] != FOLLOW)
            self._left = self.model.hold_epochs
        self._left -= 1
        return to_decision(spec, self._action, context, fc, hint)
