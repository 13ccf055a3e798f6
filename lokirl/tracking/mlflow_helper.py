"""A small MLflow helper that never stops a run.

``mlflow_run`` opens an MLflow run in a SQLite store (``sqlite:///runs/mlflow.db``
by default, artifacts under ``runs/mlartifacts``). If MLflow cannot be imported
or reached, it warns once and hands back a logger that does nothing, so the
run's own folder still holds everything.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lokirl.tracking.runs import runs_root, to_plain

log = logging.getLogger(__name__)
_warned = False


def default_tracking_uri(root: Path | None = None) -> str:
    """``sqlite:///{runs root}/mlflow.db`` (absolute path)."""
    base = (root or runs_root()).resolve()
    return f"sqlite:///{base / 'mlflow.db'}"


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        _warned = True
    log.debug(message)


#: Characters MLflow refuses in a metric, parameter or tag key (replaced by ``_``).
_REFUSED_IN_KEY = re.compile(r"[^0-9A-Za-z_\-. :/]")
#: MLflow's longest key.
MAX_KEY = 250


def mlflow_key(key: str) -> str:
    """``key`` as MLflow accepts it (a controller spec such as ``periodic(headroom=1.3)``).

    Characters MLflow refuses become ``_``; a key longer than :data:`MAX_KEY` keeps its
    head and a short hash of the whole, so that long keys stay distinct.
    """
    safe = _REFUSED_IN_KEY.sub("_", str(key))
    if len(safe) > MAX_KEY:
        digest = hashlib.sha1(str(key).encode()).hexdigest()[:10]
        safe = f"{safe[: MAX_KEY - 11]}-{digest}"
    return safe


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        v = to_plain(v)
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)[:6000]
    return out


#: Headline figures of a simulation result logged per controller, in table order.
RESULT_METRICS: tuple[str, ...] = (
    "frame_violation_ratio",
    "sub_violation_ratio",
    "accuracy",
    "effective_accuracy",
    "mean_active_workers",
    "solves",
    "reconfigurations",
    "solver_time_s",
)


def result_metrics(result: Any, prefix: str = "") -> dict[str, float]:
    """The MLflow metrics of one simulation result: accuracy and effective accuracy side by side.

    Args:
        result: A :class:`lokirl.sim.SimResult` (anything with the attributes named in
            :data:`RESULT_METRICS`).
        prefix: Namespace of the keys, e.g. ``"loki/"``.

    Returns:
        ``{prefix + name: value}`` for every name in :data:`RESULT_METRICS`.

    """
    return {f"{prefix}{name}": float(getattr(result, name)) for name in RESULT_METRICS}


class RunLogger:
    """Logs params, metrics and artifacts to one MLflow run, or nowhere when disabled.

    Attributes:
        run_id: The MLflow run id, or ``None`` when MLflow is not in use.

    """

    def __init__(self, client: Any = None, run_id: str | None = None) -> None:
        self._client = client
        self.run_id = run_id

    @property
    def active(self) -> bool:
        """Whether this logger writes to MLflow."""
        return self._client is not None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._client is None:
            return
        try:
            getattr(self._client, method)(self.run_id, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking must never stop a run
            _warn_once(f"MLflow {method} failed ({exc}); carrying on without it")
            self._client = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested, flattened with dots) parameters."""
        for key, value in _flatten(params).items():
            self._call("log_param", mlflow_key(key), value)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics at ``step``; non-finite values are skipped."""
        for key, value in metrics.items():
            value = float(value)
            if math.isfinite(value):
                self._call("log_metric", mlflow_key(key), value, step=step or 0)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or folder into the run's artifacts."""
        p = Path(path)
        if p.is_dir():
            self._call("log_artifacts", str(p), artifact_path)
        else:
            self._call("log_artifact", str(p), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        for key, value in tags.items():
            self._call("set_tag", mlflow_key(key), str(value))


@contextmanager
def mlflow_run(
    experiment: str,
    run_name: str,
    tracking_uri: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    artifact_root: str | Path | None = None,
) -> Iterator[RunLogger]:
    """Open an MLflow run and yield a :class:`RunLogger`.

    Args:
        experiment: Experiment name (created on first use).
        run_name: The run's name.
        tracking_uri: Store URI; defaults to :func:`default_tracking_uri`.
        params: Parameters to log at the start (nested dicts are flattened).
        tags: Tags to set at the start.
        artifact_root: Folder for the experiment's artifacts; defaults to
            ``{runs root}/mlartifacts``.

    The run ends ``FINISHED``, or ``FAILED`` if the body raises.

    """
    logger = RunLogger()
    try:
        import mlflow  # noqa: F401 - fail fast if missing
        from mlflow.tracking import MlflowClient

        uri = tracking_uri or default_tracking_uri()
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            root = Path(artifact_root) if artifact_root else runs_root() / "mlartifacts"
            location = (root.resolve() / experiment).as_uri()
            exp_id = client.create_experiment(experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        run = client.create_run(
            exp_id, run_name=run_name, tags={mlflow_key(k): str(v) for k, v in (tags or {}).items()}
        )
        logger = RunLogger(client, run.info.run_id)
    except Exception as exc:  # noqa: BLE001 - tracking must never stop a run
        _warn_once(
            f"MLflow unavailable ({type(exc).__name__}: {exc}); the run folder has everything"
        )
    if params:
        logger.log_params(params)
    status = "FINISHED"
    try:
        yield logger
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if logger.active:
            logger._call("set_terminated", status)
