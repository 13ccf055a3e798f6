"""Observation and action encoding shared by the environment and the trained-policy adapter.

Both the gymnasium environment and the PPO controller build observations from the
same :class:`~lokirl.core.controller.ControlContext` with :func:`observe` and turn
actions into decisions with :func:`to_decision`, so a policy trained in the
simulator sees exactly the same inputs when it drives the live runtime.

Three feature versions exist. Version 1 divides rates by one cluster's largest
capacity and the active workers by its size: a version-1 policy fits only the
cluster it was trained on. Version 2 (:func:`observe` with a :class:`ClusterScale`)
expresses every rate, queue and count relative to the cluster being served, so
that one policy can serve clusters of any size; its :class:`PolicyScope` records
the pipeline, accelerators, worker range, swap modes and load-time scales it was
trained on. Version 3 is version 2 with the cluster's largest capacity at any
accuracy, not its capacity at full accuracy, as the demand unit: for pipelines whose
most accurate variants cannot meet the SLO (``social_media``), where the latter is a
failed plan's sliver.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lokirl.core.controller import KEEP, ControlContext, Decision, ewma_demand
from lokirl.core.forecasting import Forecast, Forecaster
from lokirl.core.reconfig import SWAP_MODES
from lokirl.errors import ConfigError

if TYPE_CHECKING:
    from lokirl.core.pipeline import Cluster, Pipeline

#: How the reason of a re-solve the policy chose itself (not its fallback's) begins.
POLICY_REASON = "policy:"

#: Action kinds: index 0 of the MultiDiscrete action.
KEEP_PLAN, RESOLVE_WARM, RESOLVE_COLD, FOLLOW = 0, 1, 2, 3

#: Feature versions :func:`observe` knows.
FEATURE_VERSIONS: tuple[int, ...] = (1, 2, 3)

#: Cluster size the version-2 size feature is centred on (``log2(workers / 20)``).
REFERENCE_WORKERS = 20

#: Largest value of a version-2 ratio feature (rates, queues over capacity).
RATIO_CLIP = 10.0


@dataclass(frozen=True)
class PolicyScope:
    """What a version-2 (or 3) policy was trained on (saved with it; checked when it is bound).

    Attributes:
        pipeline: Pipeline name.
        accelerators: Accelerator types of the training clusters.
        workers: Smallest and largest cluster size (total workers) trained on.
        swaps: Swap modes trained on (:data:`~lokirl.core.reconfig.SwapMode`).
        load_scale: Smallest and largest factor on the variants' load times.

    """

    pipeline: str
    accelerators: tuple[str, ...]
    workers: tuple[int, int]
    swaps: tuple[str, ...]
    load_scale: tuple[float, float] = (1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "pipeline": self.pipeline,
            "accelerators": list(self.accelerators),
            "workers": list(self.workers),
            "swaps": list(self.swaps),
            "load_scale": list(self.load_scale),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyScope:
        """Inverse of :meth:`to_dict`."""
        lo, hi = (int(w) for w in d["workers"])
        ls = tuple(float(x) for x in d.get("load_scale", (1.0, 1.0)))
        return cls(
            pipeline=str(d["pipeline"]),
            accelerators=tuple(str(a) for a in d["accelerators"]),
            workers=(lo, hi),
            swaps=tuple(str(m) for m in d["swaps"]),
            load_scale=(ls[0], ls[1]),
        )


@dataclass(frozen=True)
class ClusterScale:
    """The serving cluster as version-2 features see it (built by :func:`cluster_scale`).

    Attributes:
        workers: Total workers.
        full_capacity: Frames/s the whole cluster carries with the most accurate
            variants only (hardware scaling alone).
        max_capacity: Largest frames/s the cluster carries with any variants.
        slo_s: The pipeline's end-to-end latency SLO in seconds.
        swap: Swap mode (:data:`~lokirl.core.reconfig.SwapMode`).
        max_load_time_s: Longest load time of any variant, seconds.

    """

    workers: int
    full_capacity: float
    max_capacity: float
    slo_s: float
    swap: str = "overlap"
    max_load_time_s: float = 0.0


@dataclass(frozen=True)
class Capacities:
    """A cluster's capacities in frames/s, solved deterministically (work-bounded).

    Attributes:
        full_accuracy: The demand hardware scaling alone carries on the whole cluster
            (the largest share of a huge demand the most accurate variants serve);
            at least 1e-3.
        full_accuracy_ok: False when the most accurate variants cannot meet the SLO
            (that plan failed: ``full_accuracy`` is then a failed plan's sliver).
        max: The largest share the allocator serves with any variants (at least
            ``full_accuracy``).

    """

    full_accuracy: float
    full_accuracy_ok: bool
    max: float


def solve_capacities(pipeline: Pipeline, cluster: Cluster) -> Capacities:
    """The :class:`Capacities` of ``pipeline`` on ``cluster`` (two deterministic solves).

    As :func:`lokirl.envs.serving.cluster_capacities` (the largest share of a huge
    demand served), with deterministic, work-bounded solves so that the environment,
    the trained-policy adapter, the training file's checks and the suites' load units
    compute exactly the same figures on every run.
    """
    from lokirl.core.allocator import AllocatorOptions, solve
    from lokirl.sim.baselines import best_only

    opts = AllocatorOptions(deterministic=True)
    huge = 1e6
    hw = solve(best_only(pipeline), cluster, huge, opts)
    any_acc = solve(pipeline, cluster, huge, opts)
    full = max(hw.served_share * huge, 1e-3)
    return Capacities(
        full_accuracy=full,
        full_accuracy_ok=hw.status != "failed",
        max=max(any_acc.served_share * huge, full),
    )


def cluster_capacities_exact(pipeline: Pipeline, cluster: Cluster) -> tuple[float, float]:
    """(capacity at full accuracy, largest capacity at any accuracy) in frames/s.

    The two figures of :func:`solve_capacities`.
    """
    caps = solve_capacities(pipeline, cluster)
    return caps.full_accuracy, caps.max


def cluster_scale(pipeline: Pipeline, cluster: Cluster, swap: str = "overlap") -> ClusterScale:
    """The :class:`ClusterScale` of ``pipeline`` served on ``cluster`` (two solves, ~0.1 s)."""
    full, most = cluster_capacities_exact(pipeline, cluster)
    return ClusterScale(
        workers=cluster.total,
        full_capacity=full,
        max_capacity=most,
        slo_s=pipeline.slo_ms / 1000.0,
        swap=swap,
        max_load_time_s=max((v.load_time_s for v in pipeline.variants()), default=0.0),
    )


@dataclass(frozen=True)
class FeatureSpec:
    """What the observation holds and what the actions mean.

    Attributes:
        tasks: Task names of the pipeline (queue lengths in this order).
        workers: Version 1: total workers of the cluster (the policy fits only
            it). Versions 2 and 3: ``None`` (see ``scope``).
        demand_scale: Version 1: demand (frames/s) that normalises rates, the
            cluster's largest capacity at any accuracy. Versions 2 and 3: ``None`` (rates
            are divided by the served cluster's capacities, :class:`ClusterScale`).
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
        follow_horizons: Versions 2 and 3, with a fallback that weighs a switch over a number
            of epochs (``fluid``): FOLLOW's second index picks which of these horizons
            the fallback decides with this epoch (modulo their number), and the
            observation ends with, per horizon, whether the fallback would switch with
            it. Empty: FOLLOW takes the fallback's own decision.
        follow_settings: As ``follow_horizons`` (and instead of it), with a ``fluid``
            fallback: FOLLOW's second index picks one of these ``(horizon, burst_s,
            derate)`` settings of the fallback's model (its plan library stays its
            own), and the observation ends with, per setting, whether the fallback
            would switch with it.
        warm_churn_weight: Churn weight of a warm re-solve (accuracy points per
            worker that changes variant): a warm re-solve starts from the running
            plan and stays close to it; a cold one starts afresh with no churn term.
        version: Feature version: 1 (scaled to one cluster), 2 (relative to the
            served cluster) or 3 (as 2, demand over the capacity at any accuracy); see
            :func:`observe`.
        scope: Versions 2 and 3: what the policy was trained on (``None`` in version 1).

    """

    tasks: tuple[str, ...]
    workers: int | None = None
    demand_scale: float | None = None
    history_s: int = 16
    horizons_s: tuple[int, ...] = (5, 30)
    headrooms: tuple[float, ...] = (1.0, 1.15, 1.3, 1.5, 1.75)
    warm_churn_weight: float = 1.0
    forecaster: str = "ewma"
    base_horizon_s: int = 5
    queue_scale: float = 100.0
    fallback: str = ""
    follow_horizons: tuple[int, ...] = ()
    follow_settings: tuple[tuple[int, float, float], ...] = ()
    version: int = field(default=1)
    scope: PolicyScope | None = None

    def __post_init__(self) -> None:
        if self.version not in FEATURE_VERSIONS:
            raise ValueError(
                f"version: unknown feature version {self.version!r} "
                f"(this lokirl knows {', '.join(map(str, FEATURE_VERSIONS))})"
            )
        if self.version == 1 and (self.workers is None or self.demand_scale is None):
            raise ValueError("workers: a version-1 feature spec needs workers and demand_scale")
        if self.follow_horizons:
            if not self.fallback or self.version < 2:
                raise ValueError(
                    "follow_horizons: needs a fallback (e.g. fluid-tuned) and feature_version 2 "
                    "or 3"
                )
            if any(int(h) != h or h < 1 for h in self.follow_horizons):
                raise ValueError(
                    f"follow_horizons: whole numbers of epochs >= 1, got {self.follow_horizons}"
                )
        if self.follow_settings:
            if self.follow_horizons:
                raise ValueError(
                    "follow_settings: FOLLOW chooses among horizons or among settings, not "
                    "both; list the horizons in the settings instead"
                )
            if not self.fallback or self.version < 2:
                raise ValueError(
                    "follow_settings: needs a fallback (e.g. fluid-tuned) and feature_version 2 "
                    "or 3"
                )
            for s in self.follow_settings:
                if len(s) != 3 or int(s[0]) != s[0] or s[0] < 1 or s[1] < 0 or not 0 < s[2] <= 2:
                    raise ValueError(
                        "follow_settings: each is (horizon >= 1 epochs, burst_s >= 0, "
                        f"0 < derate <= 2), got {tuple(s)}"
                    )

    @property
    def follow_choices(self) -> int:
        """How many ways FOLLOW's second index chooses among (0: the fallback's own)."""
        return len(self.follow_horizons) or len(self.follow_settings)

    @property
    def size(self) -> int:
        """Length of the observation vector (never depends on the cluster size)."""
        if self.version == 1:
            return (
                self.history_s
                + 2 * len(self.horizons_s)
                + 9
                + len(self.tasks)
                + bool(self.fallback)
            )
        return (
            self.history_s
            + 3 * len(self.horizons_s)
            + _V2_FIXED
            + len(self.tasks)
            + bool(self.fallback)
            + self.follow_choices
        )

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
        if self.follow_horizons:
            d["follow_horizons"] = list(self.follow_horizons)
        else:  # files of policies without it stay as they were
            del d["follow_horizons"]
        if self.follow_settings:
            d["follow_settings"] = [list(x) for x in self.follow_settings]
        else:
            del d["follow_settings"]
        if self.scope is None:
            del d["scope"]
        else:
            d["scope"] = self.scope.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["tasks"] = tuple(d["tasks"])
        d["horizons_s"] = tuple(int(h) for h in d["horizons_s"])
        d["headrooms"] = tuple(float(h) for h in d["headrooms"])
        d["follow_horizons"] = tuple(int(h) for h in d.get("follow_horizons", ()))
        d["follow_settings"] = tuple(
            (int(h), float(b), float(r)) for h, b, r in d.get("follow_settings", ())
        )
        if d.get("scope") is not None:
            d["scope"] = PolicyScope.from_dict(d["scope"])
        return cls(**d)


#: Version-2 features that do not depend on the horizons or the tasks: the plan
#: (4), the status (5), the cluster (2 + 3 swap modes + 1 load time).
_V2_FIXED = 4 + 5 + 2 + len(SWAP_MODES) + 1


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
    scale: ClusterScale | None = None,
    hints: Sequence[Decision] = (),
) -> np.ndarray:
    """Encode a context and its forecast as a float32 vector of length ``spec.size``.

    ``hint`` is the fallback controller's decision for this context (when the spec
    has a fallback): whether it would re-solve is the last feature (before the
    horizons'). ``scale`` is the served cluster (version 2 only; required there).
    ``hints`` are the fallback's decisions at each of ``spec.follow_horizons`` (or
    ``spec.follow_settings``).

    Version 1, in order: the last ``history_s`` per-second arrivals and the forecast
    (mean, upper) at each horizon over ``spec.demand_scale``; the running plan's
    capacity over it, its ratio to the base-horizon forecast (/5), expected
    accuracy and accuracy-scaled flag; the status (below) with active workers over
    ``spec.workers``; queue lengths over ``spec.queue_scale`` (clipped to 10).

    Version 2, in order (ratios clipped to 10), with ``C`` the running plan's
    capacity (``plan.max_demand``; ``F`` while there is no plan) and ``F`` the
    cluster's full-accuracy capacity (version 3: its largest capacity at any accuracy;
    the cluster's ``log2(max capacity / full-accuracy capacity)`` feature is the same in
    both versions):

    * the last ``history_s`` per-second arrivals over ``C``;
    * the forecast mean and upper quantile at each horizon over ``C``;
    * the forecast mean at each horizon over ``F``;
    * the plan: whether there is one, ``C / F``, expected accuracy / 100,
      accuracy-scaled flag;
    * the status: recent frame SLO violation ratio, system accuracy / 100, share of
      the cluster's workers active, time since the last solve (/60 s, clipped), its
      wall time (/5 s, clipped) + 0.5 while a solve is pending;
    * per task, queue length over ``C x SLO seconds`` (the frames the plan serves
      in one SLO; a queue of 1 is one SLO's worth of work at full plan rate);
    * the cluster: ``(clip(log2(workers / 20), -4, 4) + 4) / 8`` (so 20 workers
      is 0.5, 10 is 0.375, 40 is 0.625), ``log2(max capacity / F) / 8`` (how much
      accuracy scaling can add, clipped to 1), the swap mode one-hot (overlap,
      stop, free), the longest variant load time (/10 s, clipped to 1);
    * with a fallback, whether it would re-solve;
    * with ``follow_horizons``, per horizon whether the fallback would switch with it
      (with ``follow_settings``, per setting).

    Raises:
        ValueError: a version-2 spec without ``scale``; ``hints`` that do not match
            ``spec.follow_horizons``.

    """
    if spec.version >= 2:
        if scale is None:
            raise ValueError(
                f"scale: version-{spec.version} features need the served cluster's ClusterScale"
            )
        obs = _observe_v2(spec, context, forecast, hint, scale)
        if not spec.follow_choices:
            return obs
        if len(hints) != spec.follow_choices:
            raise ValueError(
                f"hints: the fallback's decisions at each of {spec.follow_choices} "
                f"horizons or settings are needed, got {len(hints)}"
            )
        wish = np.asarray([1.0 if h.resolve else 0.0 for h in hints], dtype=obs.dtype)
        return np.concatenate([obs, wish])
    return _observe_v1(spec, context, forecast, hint)


def _observe_v1(
    spec: FeatureSpec, context: ControlContext, forecast: Forecast, hint: Decision | None
) -> np.ndarray:
    """Version 1 (byte for byte what the shipped policy was trained on)."""
    assert spec.workers is not None and spec.demand_scale is not None
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


def _ratio(x: float, unit: float) -> float:
    return min(max(x, 0.0) / unit, RATIO_CLIP)


def _observe_v2(
    spec: FeatureSpec,
    context: ControlContext,
    forecast: Forecast,
    hint: Decision | None,
    scale: ClusterScale,
) -> np.ndarray:
    """Versions 2 and 3: every feature relative to the served cluster (see :func:`observe`)."""
    full = max(scale.full_capacity, 1e-6)
    unit = full if spec.version == 2 else max(scale.max_capacity, 1e-6)
    plan = context.plan
    ref = plan.max_demand if plan is not None and plan.max_demand > 0 else unit
    hist = list(context.demand_history)[-spec.history_s :]
    hist = [0.0] * (spec.history_s - len(hist)) + hist
    obs: list[float] = [_ratio(x, ref) for x in hist]
    means = []
    for h in spec.horizons_s:
        mean, upper = forecast.at(h)
        obs += [_ratio(mean, ref), _ratio(upper, ref)]
        means.append(mean)
    obs += [_ratio(m, unit) for m in means]
    if plan is not None:
        obs += [
            1.0,
            _ratio(plan.max_demand, unit),
            plan.expected_accuracy / 100.0,
            1.0 if plan.phase in ("accuracy", "partial") else 0.0,
        ]
    else:
        obs += [0.0, 0.0, 0.0, 0.0]
    since = context.time_since_solve_s
    obs += [
        min(context.slo_violation_ratio, 1.0),
        context.accuracy / 100.0,
        min(context.active_workers / max(scale.workers, 1), 1.0),
        min(since if math.isfinite(since) else 60.0, 60.0) / 60.0,
        min(context.last_solve_time_s, 5.0) / 5.0 + (0.5 if context.solving else 0.0),
    ]
    per_slo = ref * max(scale.slo_s, 1e-3)
    for task in spec.tasks:
        obs.append(_ratio(context.queue_lengths.get(task, 0), per_slo))
    size = math.log2(max(scale.workers, 1) / REFERENCE_WORKERS)
    obs.append((min(max(size, -4.0), 4.0) + 4.0) / 8.0)
    obs.append(min(math.log2(max(scale.max_capacity / full, 1.0)) / 8.0, 1.0))
    obs += [1.0 if scale.swap == m else 0.0 for m in SWAP_MODES]
    obs.append(min(max(scale.max_load_time_s, 0.0), 10.0) / 10.0)
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
    hints: Sequence[Decision] = (),
) -> Decision:
    """Turn a MultiDiscrete action ``[kind, headroom index]`` into a decision.

    ``kind`` is keep (0), re-solve warm (1: seeded with the running plan, with a churn
    term) or re-solve cold (2: from scratch, no churn term); a re-solve plans for
    the forecast mean at ``base_horizon_s`` (or the EWMA estimate when it is 0)
    times the chosen headroom. Kind 3 (``FOLLOW``, with a fallback) does what the
    fallback controller decided (``hint``), the first plan included when the fallback
    solves it. Without a running plan the first plan is always solved (by the policy's
    own headroom when the fallback would not solve it). With ``spec.follow_horizons``
    FOLLOW's second index picks the fallback's decision at that horizon (``hints``;
    likewise with ``spec.follow_settings``).
    """
    a = np.asarray(action).reshape(-1)
    kind = int(a[0])
    if kind == FOLLOW and spec.follow_choices and hints:
        hint = hints[int(a[1]) % len(hints)]
    if kind == FOLLOW and spec.fallback:
        if context.plan is not None:
            return hint if hint is not None else KEEP
        if hint is not None and hint.resolve:
            return hint
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
        reason=f"{POLICY_REASON} {'cold' if kind == RESOLVE_COLD else 'warm'} re-solve x{headroom:g}",
    )


def fallback_decisions(
    fallback: Any, spec: FeatureSpec, context: ControlContext
) -> tuple[Decision | None, tuple[Decision, ...]]:
    """The fallback's decision now and, with ``spec.follow_horizons``, those at each.

    The fallback decides once per epoch (a model-based one advances its model then):
    with horizons (or settings, ``spec.follow_settings``) to choose from, one call gives
    every choice's decision and its own.

    Returns:
        (its own decision or ``None`` without a fallback, the decisions per choice).

    Raises:
        ConfigError: ``spec.follow_horizons`` (``follow_settings``) with a fallback that
            has no horizon (no settings).

    """
    if fallback is None:
        return None, ()
    if not spec.follow_choices:
        return fallback.decide(context), ()
    what, choices, own = _follow_choices(spec, fallback)
    decide = getattr(fallback, f"decide_{what}s", None)
    if decide is None or own is None:
        raise ConfigError(
            spec.fallback,
            "fallback",
            f"the policy chooses among the fallback's {what}s (follow_{what}s) but this "
            "fallback has none",
            f"use a fluid(...) fallback, or no follow_{what}s",
        )
    both = decide(context, choices + (own,))
    return both[-1], tuple(both[:-1])


def _follow_choices(spec: Any, fallback: Any) -> tuple[str, tuple, Any]:
    """``("horizon" | "setting", FOLLOW's choices, the fallback's own)``.

    The fallback's own is ``None`` when it has no such knob (not a ``fluid``).
    """
    if spec.follow_horizons:
        return "horizon", tuple(spec.follow_horizons), getattr(fallback, "horizon", None)
    try:
        own = (fallback.horizon, float(fallback.burst_s), float(fallback.derate))
    except AttributeError:
        own = None
    return "setting", tuple(spec.follow_settings), own


def own_follow_index(spec: Any, fallback: Any) -> int:
    """Where the fallback's own horizon (or setting) sits among FOLLOW's choices.

    Following at this index is following the fallback as it is (0 without
    ``follow_horizons`` / ``follow_settings``).

    Args:
        spec: A :class:`FeatureSpec`, or anything with its ``follow_horizons`` and
            ``follow_settings`` (an environment's or training file's configuration).
        fallback: The fallback controller.

    Raises:
        ValueError: the choices leave out the fallback's own.

    """
    if not (spec.follow_horizons or spec.follow_settings):
        return 0
    what, choices, own = _follow_choices(spec, fallback)
    if own not in choices:
        raise ValueError(
            f"follow_{what}s {list(choices)} leave out the fallback's own {what} {own}: "
            "add it (following the fallback as it is must be one of the choices)"
        )
    return choices.index(own)
