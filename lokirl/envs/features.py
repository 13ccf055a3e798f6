"""Observation and action encoding shared by the environment and the trained-policy adapter.

Both the gymnasium environment and the PPO controller build observations from the
same :class:`~lokirl.core.controller.ControlContext` with :func:`observe` and turn
actions into decisions with :func:`to_decision`, so a policy trained in the
simulator sees exactly the same inputs when it drives the live runtime.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lokirl.core.controller import KEEP, ControlContext, Decision, ewma_demand
from lokirl.core.forecasting import Forecast, Forecaster

#: Action kinds: index 0 of the MultiDiscrete action.
KEEP_PLAN, RESOLVE_WARM, RESOLVE_COLD, FOLLOW = 0, 1, 2, 3


@dataclass(frozen=True)
class FeatureSpec:
    """What the observation holds and what the actions mean.

    Attributes:
        tasks: Task names of the pipeline (queue lengths in this order).
        workers: Total workers of the cluster.
        demand_scale: Demand (frames/s) that normalises rates: the cluster's
            largest capacity at any accuracy.
        history_s: Seconds of per-second arrivals in the observation.
        horizons_s: Forecast horizons in the observation.
        headrooms: Demand multipliers the policy chooses from when it re-solves.
        forecaster: Forecaster name (``lokirl.forecast.make_forecaster``).
        base_horizon_s: Horizon of the forecast mean that a re-solve plans for
            (times the headroom); 0 plans for Loki's EWMA estimate instead.
        queue_scale: Queue lengths are divided by this (then clipped to 10).
        fallback: A controller spec (e.g. ``trigger``) whose decision the policy may
            follow with a fourth action kind (``FOLLOW``); its wish to re-solve is part
            of the observation. Empty: no fallback (three action kinds).
        warm_churn_weight: Churn weight of a warm re-solve (accuracy points per
            worker that changes variant): a warm re-solve starts from the running
            plan and stays close to it; a cold one starts afresh with no churn term.

    """

    tasks: tuple[str, ...]
    workers: int
    demand_scale: float
    history_s: int = 16
    horizons_s: tuple[int, ...] = (5, 30)
    headrooms: tuple[float, ...] = (1.0, 1.15, 1.3, 1.5, 1.75)
    warm_churn_weight: float = 1.0
    forecaster: str = "ewma"
    base_horizon_s: int = 5
    queue_scale: float = 100.0
    fallback: str = ""
    version: int = field(default=1)

    @property
    def size(self) -> int:
        """Length of the observation vector."""
        return self.history_s + 2 * len(self.horizons_s) + 9 + len(self.tasks) + bool(self.fallback)

    @property
    def forecast_horizons(self) -> tuple[int, ...]:
        """Horizons forecast each step: the observed ones and the base horizon."""
        return tuple(sorted(set(self.horizons_s) | {max(1, self.base_horizon_s)}))

    @property
    def kinds(self) -> int:
        """Number of action kinds: keep, warm, cold (and follow the fallback)."""
        return 4 if self.fallback else 3

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved next to a trained policy)."""
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["horizons_s"] = list(self.horizons_s)
        d["headrooms"] = list(self.headrooms)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["tasks"] = tuple(d["tasks"])
        d["horizons_s"] = tuple(int(h) for h in d["horizons_s"])
        d["headrooms"] = tuple(float(h) for h in d["headrooms"])
        return cls(**d)


def run_forecaster(
    forecaster: Forecaster, history: tuple[float, ...], horizons: tuple[int, ...]
) -> Forecast:
    """Fold a whole demand history into a fresh forecaster state and predict."""
    state = forecaster.init_state()
    for x in history:
        state = forecaster.update(state, max(0.0, float(x)))
    return forecaster.predict(state, horizons)


def forecast_for(spec: FeatureSpec, forecaster: Forecaster, context: ControlContext) -> Forecast:
    """The forecast at the spec's horizons (and the base horizon) for a context."""
    horizons = spec.forecast_horizons
    if not context.demand_history:
        zeros = tuple(0.0 for _ in horizons)
        return Forecast(horizons, zeros, zeros)
    try:
        return run_forecaster(forecaster, context.demand_history, horizons)
    except Exception:  # noqa: BLE001 - a forecaster that cannot answer falls back to EWMA
        e = ewma_demand(context.demand_history)
        vals = tuple(e for _ in horizons)
        return Forecast(horizons, vals, vals)


class ForecastTracker:
    """Keeps a forecaster's state across consecutive contexts (one update per new second).

    Contexts carry a sliding window of per-second arrivals. When a context's history
    is the previous one's moved on by the seconds elapsed between the two contexts
    (``now_s``), only the new seconds are folded
    into the kept state; otherwise the whole history is replayed into a fresh state
    (as :func:`forecast_for` does). Until the window first slides the two agree
    exactly; later the tracker's state also remembers seconds that left the window.
    The environment and the trained-policy adapter both use it, so a policy sees the
    same forecasts in training and in service.

    Args:
        spec: The feature spec (horizons, forecaster).
        forecaster: The forecaster.

    """

    def __init__(self, spec: FeatureSpec, forecaster: Forecaster) -> None:
        self.spec = spec
        self.forecaster = forecaster
        self.horizons = spec.forecast_horizons
        self._state: Any = None
        self._history: tuple[float, ...] = ()
        self._now = 0.0

    def __call__(self, context: ControlContext) -> Forecast:
        """The forecast at the spec's horizons (and the base horizon) for ``context``."""
        hist = tuple(context.demand_history)
        if not hist:
            self._state, self._history = None, ()
            return forecast_for(self.spec, self.forecaster, context)
        try:
            new = self._new_seconds(hist, float(context.now_s))
            if new is None:
                state = self.forecaster.init_state()
                new = hist
            else:
                state = self._state
            for x in new:
                state = self.forecaster.update(state, max(0.0, float(x)))
            self._state, self._history, self._now = state, hist, float(context.now_s)
            return self.forecaster.predict(state, self.horizons)
        except Exception:  # noqa: BLE001 - same fallback as forecast_for
            self._state, self._history = None, ()
            return forecast_for(self.spec, self.forecaster, context)

    def _new_seconds(self, hist: tuple[float, ...], now: float) -> tuple[float, ...] | None:
        """The seconds ``hist`` adds to the kept history, or None if it does not follow on."""
        old = self._history
        if self._state is None or not old or not math.isfinite(now):
            return None
        k = int(round(now - self._now))
        if k == 0:
            return () if hist == old else None
        if not 0 < k <= len(hist):
            return None
        kept = hist[:-k]
        if len(kept) <= len(old) and old[len(old) - len(kept) :] == kept:
            return hist[-k:]
        return None


def observe(
    spec: FeatureSpec,
    context: ControlContext,
    forecast: Forecast,
    hint: Decision | None = None,
) -> np.ndarray:
    """Encode a context and its forecast as a float32 vector of length ``spec.size``.

    ``hint`` is the fallback controller's decision for this context (when the spec
    has a fallback): whether it would re-solve is the last feature.
    """
    scale = max(spec.demand_scale, 1e-6)
    hist = list(context.demand_history)[-spec.history_s :]
    hist = [0.0] * (spec.history_s - len(hist)) + hist
    obs: list[float] = [x / scale for x in hist]
    for h in spec.horizons_s:
        mean, upper = forecast.at(h)
        obs += [mean / scale, upper / scale]
    plan = context.plan
    base_mean, _ = forecast.at(spec.base_horizon_s)
    if plan is not None:
        capacity = plan.max_demand
        ratio = capacity / max(base_mean, 1.0)
        obs += [
            capacity / scale,
            min(ratio, 5.0) / 5.0,
            plan.expected_accuracy / 100.0,
            1.0 if plan.phase in ("accuracy", "partial") else 0.0,
        ]
    else:
        obs += [0.0, 0.0, 0.0, 0.0]
    since = context.time_since_solve_s
    obs += [
        min(context.slo_violation_ratio, 1.0),
        context.accuracy / 100.0,
        context.active_workers / max(spec.workers, 1),
        min(since if math.isfinite(since) else 60.0, 60.0) / 60.0,
        min(context.last_solve_time_s, 5.0) / 5.0 + (0.5 if context.solving else 0.0),
    ]
    for task in spec.tasks:
        obs.append(min(context.queue_lengths.get(task, 0) / spec.queue_scale, 10.0))
    if spec.fallback:
        obs.append(1.0 if hint is not None and hint.resolve else 0.0)
    return np.asarray(obs, dtype=np.float32)


def base_demand(spec: FeatureSpec, context: ControlContext, forecast: Forecast) -> float:
    """The demand a re-solve plans for before its headroom.

    The forecast mean at ``spec.base_horizon_s``, or Loki's EWMA estimate when that is 0.
    """
    if spec.base_horizon_s > 0:
        return forecast.at(spec.base_horizon_s)[0]
    return ewma_demand(context.demand_history)


def to_decision(
    spec: FeatureSpec,
    action: Any,
    context: ControlContext,
    forecast: Forecast,
    hint: Decision | None = None,
) -> Decision:
    """Turn a MultiDiscrete action ``[kind, headroom index]`` into a decision.

    ``kind`` is keep (0), re-solve warm (1: seeded with the running plan, with a churn
    term) or re-solve cold (2: from scratch, no churn term); a re-solve plans for
    the forecast mean at ``base_horizon_s`` (or the EWMA estimate when it is 0)
    times the chosen headroom. Kind 3 (``FOLLOW``, with a fallback) does what the
    fallback controller decided (``hint``). Without a running plan the first plan
    is always solved.
    """
    a = np.asarray(action).reshape(-1)
    kind = int(a[0])
    if kind == FOLLOW and spec.fallback and context.plan is not None:
        return hint if hint is not None else KEEP
    headroom = spec.headrooms[int(a[1]) % len(spec.headrooms)]
    if context.plan is not None and (kind == KEEP_PLAN or context.solving):
        return KEEP
    base = base_demand(spec, context, forecast)
    warm = kind != RESOLVE_COLD
    return Decision(
        resolve=True,
        demand=max(0.0, base) * headroom,
        warm_start=warm,
        churn_weight=spec.warm_churn_weight if warm else 0.0,
        reason=f"policy: {'cold' if kind == RESOLVE_COLD else 'warm'} re-solve x{headroom:g}",
    )
