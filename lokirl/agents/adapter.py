"""Turn a trained PPO policy into a :class:`~lokirl.core.controller.Controller`.

A trained policy is saved as ``model.zip`` (stable-baselines3) with
``model.features.json`` beside it (the :class:`~lokirl.envs.features.FeatureSpec`
it was trained with). ``make_controller("ppo:path/to/model.zip")`` loads both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lokirl.core.controller import ControlContext, Decision
from lokirl.core.controllers import make_controller
from lokirl.core.forecasting import Forecaster
from lokirl.envs.features import FeatureSpec, ForecastTracker, observe, to_decision
from lokirl.errors import ConfigError
from lokirl.forecast import make_forecaster


def default_policy_path() -> Path:
    """The trained policy shipped with lokirl (``make_controller("ppo")``)."""
    from importlib import resources

    return Path(
        str(resources.files("lokirl") / "data" / "policies" / "ppo_traffic_analysis" / "model.zip")
    )


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
        fpath = features_path(path)
        if not fpath.is_file():
            raise ConfigError(
                str(fpath),
                "features",
                "the feature spec saved with the model is missing",
                "keep model.features.json next to model.zip",
            )
        self.spec = FeatureSpec.from_dict(json.loads(fpath.read_text()))
        self._model = PPO.load(str(path), device="cpu")
        self._forecaster = make_forecaster(self.spec.forecaster)
        self._tracker = ForecastTracker(self.spec, self._forecaster)
        self._fallback = make_controller(self.spec.fallback) if self.spec.fallback else None

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
        fc = self._tracker(context)
        hint = self._fallback.decide(context) if self._fallback is not None else None
        obs = observe(self.spec, context, fc, hint).clip(0, 20)
        action, _ = self._model.predict(obs, deterministic=True)
        return to_decision(self.spec, action, context, fc, hint)
