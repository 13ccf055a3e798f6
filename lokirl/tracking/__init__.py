"""Run folders, resolved configs, MLflow and TensorBoard helpers shared by the commands."""

from lokirl.tracking.mlflow_helper import (
    RESULT_METRICS,
    RunLogger,
    default_tracking_uri,
    mlflow_run,
    result_metrics,
)
from lokirl.tracking.runs import RUNS_ENV, run_dir, runs_root, to_plain, write_config
from lokirl.tracking.tensorboard import NullWriter, log_scalars, tb_writer

__all__ = [
    "RESULT_METRICS",
    "RUNS_ENV",
    "NullWriter",
    "RunLogger",
    "default_tracking_uri",
    "log_scalars",
    "mlflow_run",
    "result_metrics",
    "run_dir",
    "runs_root",
    "tb_writer",
    "to_plain",
    "write_config",
]
