"""Telling a controller what it serves before its first decision.

A controller may define ``bind(pipeline, cluster, swap)``: the host (the simulator,
the environment's rollouts, the live runtime) calls it once it knows the pipeline,
the cluster and the swap mode, before any decision. A controller that cannot serve
them (a trained policy built for another pipeline or cluster) raises
:class:`~lokirl.errors.ConfigError` there, so the run is refused at start-up;
one whose inputs depend on the cluster (a version-2 trained policy) computes them
there. Controllers without ``bind`` need nothing.
"""

from __future__ import annotations

from typing import Any

from lokirl.core.pipeline import Cluster, Pipeline


def bind_controller(
    controller: Any, pipeline: Pipeline, cluster: Cluster, swap: str = "overlap"
) -> None:
    """Call ``controller.bind(pipeline, cluster, swap)`` when it has one.

    Raises:
        ConfigError: the controller does not fit the pipeline or cluster.

    """
    bind = getattr(controller, "bind", None)
    if callable(bind):
        bind(pipeline, cluster, swap)
