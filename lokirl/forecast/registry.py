"""Forecasters by name: last, ewma, seasonal, trend, learned[:PATH] or module:attr."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from lokirl.core.forecasting import Forecaster
from lokirl.forecast.base import ForecastError
from lokirl.forecast.baselines import EWMA, LastValue, LinearTrend, SeasonalNaive
from lokirl.forecast.learned import LearnedForecaster

FORECASTERS: dict[str, Callable[..., Forecaster]] = {
    "last": LastValue,
    "ewma": EWMA,
    "seasonal": SeasonalNaive,
    "trend": LinearTrend,
}
NAMES: tuple[str, ...] = ("last", "ewma", "seasonal", "trend", "learned")


def default_model_path() -> Path:
    """Path of the trained default model shipped with lokirl."""
    return Path(str(resources.files("lokirl") / "data" / "forecasters" / "default.pt"))


def make_forecaster(name: str, **kwargs: Any) -> Forecaster:
    """Build a forecaster from its name.

    Args:
        name: ``last``, ``ewma``, ``seasonal``, ``trend``, ``learned`` (the bundled
            default model), ``learned:PATH`` (a trained artifact), or
            ``package.module:attr`` (a class or factory called with ``kwargs``).
        **kwargs: Constructor options (e.g. ``com=1.6`` for ``ewma``).

    Raises:
        ForecastError: unknown name, or a model file that cannot be loaded.

    """
    if name in FORECASTERS:
        return FORECASTERS[name](**kwargs)
    if name == "learned" or name.startswith("learned:"):
        path = name.partition(":")[2] or default_model_path()
        return LearnedForecaster(path, name="learned", **kwargs)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ForecastError(
                f"cannot load forecaster {name!r}: {exc}. Fix: check module:attr"
            ) from None
        forecaster = factory(**kwargs)
        if not isinstance(forecaster, Forecaster):
            raise ForecastError(f"{name!r} did not build a Forecaster (init_state/update/predict)")
        return forecaster
    raise ForecastError(
        f"unknown forecaster {name!r}. Fix: use one of {list(NAMES)} or module:attr"
    )
