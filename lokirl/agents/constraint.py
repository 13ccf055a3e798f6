"""Constrained training: maximise effective accuracy under a frame-violation budget.

Users sign an objective like "as accurate as possible, with at most 1% of frames
late or dropped", not a weighted sum whose weight nobody can interpret. PPO here
solves the Lagrangian relaxation of that problem:

    maximise  E[goodput - costs] - lambda * (E[violation ratio] - budget)

The policy sees the environment's usual reward with the violation weight set to the
current multiplier ``lambda`` (goodput is the on-time share times accuracy: the
effective accuracy / 100; costs are the solver time, reconfigurations and active
workers as :class:`~lokirl.envs.serving.RewardWeights` prices them). After every
rollout, :class:`LagrangeMultiplier` takes a projected dual-ascent step,

    lambda <- clip(lambda + lr * (frame violation ratio of the rollout - budget), 0, max)

so the multiplier grows while the policy exceeds its budget and shrinks (down to 0)
while it stays under it, and pushes it into every training environment. The frame
violation ratio of a rollout weights each epoch by the frames it completed, as the
evaluation does. The final multiplier and its history are saved with the policy
(``constraint.json``) so a run shows whether the budget was met, and a run resumed from
that policy (or from a checkpoint of a finished run) continues from the multiplier it
had there (:func:`resumed_multiplier`) instead of starting again at ``lambda_init``.

The section of a training file (validated here, errors name the file and field)::

    constraint:
      violation_budget: 0.01   # at most 1% of frames late or dropped
      lambda_init: 2.0
      lambda_lr: 50.0
      lambda_max: 200.0
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from stable_baselines3.common.callbacks import BaseCallback

from lokirl.errors import ConfigError


def selection_key(summary: dict[str, float], budget: float | None) -> tuple[float, float]:
    """How evaluated policies rank when a run keeps its best one (larger is better).

    Without a budget: by the evaluation's reward. With one, as the user's objective
    reads: a policy within the frame-violation budget beats any policy beyond it;
    within it, higher effective accuracy wins; beyond it, fewer violations. (The
    evaluation's reward prices violations at a fixed weight, which is not what a
    constrained run optimises.)

    Args:
        summary: Mean evaluation figures (``reward``, ``frame_violation_ratio``,
            ``effective_accuracy``).
        budget: The run's frame-violation budget (``None``: unconstrained).

    """
    if budget is None:
        return (0.0, float(summary["reward"]))
    v = float(summary["frame_violation_ratio"])
    if v <= budget:
        return (1.0, float(summary["effective_accuracy"]))
    return (0.0, -v)


class ConstraintSection(BaseModel):
    """``constraint``: the frame-violation budget of a constrained training run."""

    model_config = ConfigDict(extra="forbid")

    violation_budget: float | None = Field(
        None, ge=0.0, lt=1.0, description="largest frame violation ratio allowed (0.01: 1%)"
    )
    lambda_init: float = Field(1.0, ge=0.0, description="initial violation multiplier")
    lambda_lr: float = Field(20.0, gt=0.0, description="dual step per unit of excess violation")
    lambda_max: float = Field(100.0, gt=0.0, description="upper clip of the multiplier")


@dataclass(frozen=True)
class ConstraintParams:
    """A validated ``constraint`` section (see :class:`ConstraintSection`).

    Attributes:
        violation_budget: Largest frame violation ratio allowed; ``None`` trains on the
            fixed reward weights (no constraint).
        lambda_init: Initial multiplier (the violation weight of the reward).
        lambda_lr: Dual step size per unit of violation above the budget.
        lambda_max: Upper clip of the multiplier.

    """

    violation_budget: float | None = None
    lambda_init: float = 1.0
    lambda_lr: float = 20.0
    lambda_max: float = 100.0

    @property
    def enabled(self) -> bool:
        """Whether training is constrained."""
        return self.violation_budget is not None


def parse_constraint(value: Any, source: str, where: str = "constraint") -> ConstraintParams:
    """Validate a ``constraint`` mapping.

    Raises:
        ConfigError: naming ``source``, the field and the fix.

    """
    if value is None:
        return ConstraintParams()
    try:
        sec = ConstraintSection.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(
            source,
            f"{where}.{loc}" if loc else where,
            err["msg"],
            "see lokirl.agents.constraint.ConstraintSection: violation_budget in [0, 1), "
            "lambda_init >= 0, lambda_lr > 0, lambda_max > 0",
        ) from None
    return ConstraintParams(**sec.model_dump())


@dataclass
class LagrangeState:
    """The multiplier and its history over rollouts."""

    value: float
    history: list[dict[str, float]] = field(default_factory=list)


class LagrangeMultiplier(BaseCallback):
    """Projected dual ascent on the violation multiplier after every rollout.

    Args:
        params: The constraint (its budget must be set).
        start: The multiplier to start from (default: ``params.lambda_init``; a resumed
            run passes the one its policy was saved with, see :func:`resumed_multiplier`).

    """

    def __init__(self, params: ConstraintParams, start: float | None = None) -> None:
        super().__init__()
        if params.violation_budget is None:
            raise ValueError("violation_budget: a constrained run needs a budget")
        if start is not None and not 0.0 <= start <= params.lambda_max:
            raise ValueError(f"start: {start} is outside [0, lambda_max={params.lambda_max}]")
        self.params = params
        self.start = params.lambda_init if start is None else float(start)
        self.state = LagrangeState(self.start)
        self._viol = 0.0
        self._done = 0.0

    def _on_training_start(self) -> None:
        self._push()

    def _push(self) -> None:
        self.training_env.env_method("set_violation_weight", self.state.value)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            done = float(info.get("frames_done", 0.0))
            self._viol += float(info.get("violation_ratio", 0.0)) * done
            self._done += done
        return True

    def _on_rollout_end(self) -> None:
        p = self.params
        budget = float(p.violation_budget or 0.0)
        ratio = self._viol / self._done if self._done else 0.0
        lam = min(max(self.state.value + p.lambda_lr * (ratio - budget), 0.0), p.lambda_max)
        self.state.value = lam
        self.state.history.append(
            {"step": float(self.num_timesteps), "violation": ratio, "lambda": lam}
        )
        self.logger.record("constraint/violation", ratio)
        self.logger.record("constraint/lambda", lam)
        self.logger.record("constraint/budget", budget)
        self._viol = self._done = 0.0
        self._push()

    def save(self, folder: Path) -> Path:
        """Write ``constraint.json`` (budget, parameters, final multiplier, history)."""
        out = folder / "constraint.json"
        out.write_text(
            json.dumps(
                {
                    **asdict(self.params),
                    "lambda_start": self.start,
                    "lambda_final": self.state.value,
                    "history": self.state.history,
                },
                indent=2,
            )
        )
        return out


def resumed_multiplier(resume: str | Path, params: ConstraintParams) -> tuple[float | None, str]:
    """The multiplier a run resumed from ``resume`` should start from, and why.

    A finished constrained run saves ``constraint.json`` beside its ``model.zip``: a run
    resumed from that model starts from its final multiplier, and one resumed from its
    ``imitation_model.zip`` (the clone, before any PPO update) from the multiplier the
    run started with. A checkpoint (``<run>/checkpoints/ppo_<N>_steps.zip``) starts from
    the multiplier in force when it was saved: the last history entry before step ``N``
    (a checkpoint on a rollout's last step is saved before that rollout's dual step),
    or the run's start if none is. That needs the run to have finished and written its
    history. The saved budget must be this run's: a multiplier priced for another
    budget is not carried over. Any other file (e.g. ``best_model.zip``, saved at a step
    not recorded) starts at ``lambda_init``.

    Args:
        resume: The model or checkpoint the run resumes from.
        params: This run's constraint (its budget must be set).

    Returns:
        ``(multiplier, reason)``; ``multiplier`` is ``None`` (start at ``lambda_init``)
        when nothing usable was saved, and ``reason`` says which case applied.

    """
    path = Path(resume)
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")
    folder = path.parent
    step: int | None = None
    if folder.name == "checkpoints":
        parts = path.stem.split("_")
        if not (len(parts) >= 3 and parts[-1] == "steps" and parts[-2].isdigit()):
            return None, f"{path.name} is not a checkpoint name (ppo_<N>_steps.zip)"
        step = int(parts[-2])
        folder = folder.parent
    elif path.name not in ("model.zip", "imitation_model.zip"):
        return None, f"{path.name}: the step it was saved at is not recorded"
    saved = folder / "constraint.json"
    if not saved.is_file():
        return None, f"no {saved} (the run did not finish or was unconstrained)"
    try:
        data = json.loads(saved.read_text())
        budget = data["violation_budget"]
        if budget is None or abs(float(budget) - float(params.violation_budget or 0.0)) > 1e-12:
            return (
                None,
                f"{saved} was trained for budget {budget}, this run's is {params.violation_budget}",
            )
        start = float(data.get("lambda_start", data["lambda_init"]))
        if step is not None:
            before = [h for h in data.get("history", []) if float(h["step"]) < step]
            value = float(before[-1]["lambda"]) if before else start
            where = f"step {step}"
        elif path.name == "imitation_model.zip":
            value, where = start, "the start of that run"
        else:
            value, where = float(data["lambda_final"]), "the end of that run"
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        return None, f"{saved} is unreadable ({exc!r})"
    value = min(max(value, 0.0), params.lambda_max)
    return value, f"the multiplier at {where} ({saved})"
