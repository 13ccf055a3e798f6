"""Demand forecasters: baselines (last, EWMA, seasonal naive, linear trend) and a learned model.

All implement :class:`lokirl.core.forecasting.Forecaster`; build them by name with
:func:`make_forecaster`.
"""

from lokirl.forecast.base import DEFAULT_HORIZONS, ForecastError, ResidualForecaster
from lokirl.forecast.baselines import EWMA, LastValue, LinearTrend, SeasonalNaive
from lokirl.forecast.evaluate import evaluate, rollout, score
from lokirl.forecast.learned import LearnedForecaster
from lokirl.forecast.model import Artifact, ModelConfig, load_artifact, save_artifact
from lokirl.forecast.registry import NAMES, default_model_path, make_forecaster

__all__ = [
    "DEFAULT_HORIZONS",
    "EWMA",
    "NAMES",
    "Artifact",
    "ForecastError",
    "LastValue",
    "LearnedForecaster",
    "LinearTrend",
    "ModelConfig",
    "ResidualForecaster",
    "SeasonalNaive",
    "default_model_path",
    "evaluate",
    "load_artifact",
    "make_forecaster",
    "rollout",
    "save_artifact",
    "score",
]
