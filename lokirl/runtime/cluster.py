"""Connecting to Ray: a local instance on loopback by default, or an existing cluster."""

from __future__ import annotations

import logging
import os
from typing import Any

from lokirl.errors import LokiError


class RayError(LokiError):
    """Ray could not be started or reached."""


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Initialise Ray (once per process); returns the ``ray`` module.

    Args:
        address: ``None`` starts a local Ray bound to 127.0.0.1 (no dashboard);
            ``"auto"`` or ``"HOST:PORT"`` joins an existing cluster (with token
            auth, the cluster's token must be available to this process as Ray
            documents it).
        num_cpus: CPUs of a local Ray (default: all of the machine's).

    Raises:
        RayError: Ray cannot be started or reached.

    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
    except Exception as exc:  # noqa: BLE001 - report as one line
        where = address or "a local Ray"
        raise RayError(
            f"cannot start or join {where}: {exc}. Fix: check the address "
            "(ray status), or omit --address to start a local Ray"
        ) from None
    return ray
