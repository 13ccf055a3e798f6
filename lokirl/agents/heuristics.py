"""Hand-written controllers the learned policy must beat: demand-triggered and oracle.

* :class:`TriggerController` re-solves only when the forecast leaves a band around
  the running plan's capacity (or the running plan is idle-heavy), planning for
  the forecast's upper quantile times a headroom.
* :class:`OracleController` knows the future demand of the trace it runs on and
  re-solves when the next seconds' peak leaves the plan's band: an upper bound on
  what a perfect forecaster could give a trigger rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lokirl.core.controller import KEEP, ControlContext, Decision, ewma_demand
from lokirl.core.controllers import CONTROLLERS
from lokirl.core.forecasting import Forecaster
from lokirl.envs.features import run_forecaster
from lokirl.errors import ConfigError
from lokirl.forecast import make_forecaster
from lokirl.traces import RateSeries


@dataclass
class TriggerController:
    """Re-solve when the forecast leaves ``[low, high] x`` the running plan's capacity.

    Attributes:
        low: Re-solve (to release workers or raise accuracy) when the forecast mean
            falls below ``low`` x capacity.
        high: Re-solve when the forecast upper quantile rises above ``high`` x capacity.
        headroom: Multiplier on the forecast upper quantile planned for.
        horizon_s: Forecast horizon used.
        forecaster: Forecaster name.
        min_interval_s: Least time between solves.
        churn_weight: Allocator churn weight of its (warm) re-solves; ``None`` keeps
            the allocator's default (no churn term).
        name: Display name.

    The defaults (band 0.6-1.0, headroom 1.3) were picked on generated training
    traces (bursts, diurnal, MMPP, random walk; 150 s each, 20 workers) from a grid
    of six bands and headrooms; never on the bundled traces used for evaluation.

    """

    low: float = 0.6
    high: float = 1.0
    headroom: float = 1.3
    horizon_s: int = 5
    forecaster: str = "ewma"
    min_interval_s: float = 2.0
    churn_weight: float | None = 1.0
    name: str = "trigger"
    _fc: Forecaster | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high:
            raise ValueError(
                f"the band needs 0 <= low < high, got low={self.low:g}, high={self.high:g}"
            )
        if not self.headroom > 0:
            raise ValueError(f"headroom must be positive, got {self.headroom:g}")
        h = self.horizon_s
        if not (h >= 1 and math.isfinite(h) and int(h) == h):  # NaN fails every comparison
            raise ValueError(f"horizon_s must be a finite whole number >= 1, got {h}")
        if not self.min_interval_s >= 0:
            raise ValueError(f"min_interval_s must be >= 0, got {self.min_interval_s}")

    def decide(self, context: ControlContext) -> Decision:
        """Keep the plan while the forecast stays inside the band."""
        if self._fc is None:
            self._fc = make_forecaster(self.forecaster)
        hist = context.demand_history
        if hist:
            fc = run_forecaster(self._fc, hist, (self.horizon_s,))
            mean, upper = fc.mean[0], fc.upper[0]
        else:
            mean = upper = 0.0
        target = max(upper, mean) * self.headroom
        if context.plan is None:
            return Decision(True, target, reason="first plan")
        if context.solving or context.time_since_solve_s < self.min_interval_s:
            return KEEP
        cap = context.plan.max_demand
        if upper > self.high * cap:
            return Decision(True, target, True, self.churn_weight, "forecast above band")
        if mean < self.low * cap and context.plan.demand > 0:
            return Decision(True, target, True, self.churn_weight, "forecast below band")
        return KEEP


@dataclass
class OracleController:
    """Knows the trace: plans for the true peak rate of the next ``lookahead_s`` seconds.

    Attributes:
        rates: Per-second rates of the trace being played (the future, known).
        lookahead_s: Seconds of future the plan must carry.
        low: Re-solve when the future peak falls below ``low`` x capacity.
        headroom: Multiplier on the future peak (Poisson noise around the rate).
        name: Display name.

    """

    rates: np.ndarray
    lookahead_s: int = 5
    low: float = 0.7
    headroom: float = 1.05
    name: str = "oracle"

    def decide(self, context: ControlContext) -> Decision:
        """Re-solve when the known future leaves the plan's band."""
        t = int(math.floor(context.now_s))
        future = self.rates[t : t + self.lookahead_s + 1]
        peak = float(future.max()) if future.size else ewma_demand(context.demand_history)
        target = peak * self.headroom
        if context.plan is None:
            return Decision(True, target, reason="first plan")
        if context.solving:
            return KEEP
        cap = context.plan.max_demand
        if target > cap or target < self.low * cap:
            return Decision(True, target, warm_start=True, reason="future leaves band")
        return KEEP

    @classmethod
    def for_trace(cls, trace: RateSeries, **kwargs) -> OracleController:
        """An oracle for a rate series (1 s bins)."""
        return cls(rates=np.asarray(trace.rates, dtype=float), **kwargs)


def _trigger(m) -> TriggerController:
    return TriggerController(
        low=float(m.group(1)),
        high=float(m.group(2)),
        headroom=float(m.group(3)),
        churn_weight=1.0 if m.group(4) else None,
        name=m.group(0),
    )


def _oracle_needs_the_trace(**_: object) -> OracleController:
    """Refuse to build the oracle by name: it needs the trace it will play, in advance.

    Raises:
        ConfigError: always, naming the commands that hand it the trace.

    """
    raise ConfigError(
        "oracle",
        "controller",
        "the oracle plans from the future rates of the trace it plays, so only commands "
        "that hold the whole trace before the run build it (lokirl simulate, evaluate, "
        "bench and suite runs); serve and training build controllers without it",
        "compare with it in lokirl simulate, evaluate or bench "
        "(e.g. lokirl evaluate --controllers loki,trigger,oracle), or use trigger here",
    )


def _register() -> None:
    CONTROLLERS.register_pattern(
        r"trigger-(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)-x(\d+(?:\.\d+)?)(-churn)?",
        _trigger,
        "trigger with its band and headroom (and churn term), e.g. trigger-0.6-1.0-x1.3-churn",
        form="trigger-<LOW>-<HIGH>-x<HEADROOM>[-churn]",
    )
    CONTROLLERS.register_keywords(
        "trigger",
        TriggerController,
        "the trigger with explicit settings, e.g. trigger(low=0.6,high=1.0,headroom=1.3)",
    )
    if "trigger" not in CONTROLLERS.names():
        CONTROLLERS.register(
            "trigger",
            lambda **kw: TriggerController(**kw),
            "demand-triggered: re-solve when the forecast leaves a band around capacity",
        )
    if "oracle" not in CONTROLLERS.names():  # named, so that its error says where it runs
        CONTROLLERS.register(
            "oracle",
            _oracle_needs_the_trace,
            "knows the trace's future demand (an upper bound for a trigger rule; needs the "
            "trace: built by lokirl evaluate, lokirl bench and suite runs)",
        )


_register()
