"""The Forecaster protocol: online demand forecasts with explicit state.

A forecaster turns a history of per-second request rates into a forecast of the
mean rate and an upper quantile over the next ``h`` seconds, for several horizons
``h``. Its state is an explicit value so that the simulator, the gymnasium
environment and the live runtime can each hold their own copy and advance it one
observation at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Forecast:
    """A demand forecast at one instant.

    Attributes:
        horizons_s: Horizons in seconds, ascending.
        mean: Forecast mean request rate (req/s) over the next ``h`` seconds, per horizon.
        upper: Forecast upper quantile (e.g. p90) of the rate over the next ``h`` seconds.
        quantile: Which quantile ``upper`` is (0.9 means p90).

    """

    horizons_s: tuple[int, ...]
    mean: tuple[float, ...]
    upper: tuple[float, ...]
    quantile: float = 0.9

    def at(self, horizon_s: int) -> tuple[float, float]:
        """Return ``(mean, upper)`` at the horizon closest to ``horizon_s``."""
        best = min(range(len(self.horizons_s)), key=lambda i: abs(self.horizons_s[i] - horizon_s))
        return self.mean[best], self.upper[best]


@runtime_checkable
class Forecaster(Protocol):
    """Online demand forecaster with explicit state.

    ``init_state`` builds a fresh state; ``update`` folds one per-second rate
    observation into it and returns the new state (it may mutate and return the
    same object for speed, but callers always use the returned value);
    ``predict`` reads a forecast from the state without changing it.
    """

    name: str

    def init_state(self) -> Any:
        """Return a fresh state with no observations."""
        ...

    def update(self, state: Any, rate: float) -> Any:
        """Fold one per-second rate (req/s, finite and >= 0) into ``state``."""
        ...

    def predict(self, state: Any, horizons_s: tuple[int, ...]) -> Forecast:
        """Forecast mean and upper quantile for each horizon in seconds."""
        ...
