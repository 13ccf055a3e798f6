"""Shared fixtures of the runtime tests: one small local Ray per module, always shut down."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY = str(Path(__file__).with_name("tiny_pipeline.yaml"))


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray on loopback with 2 CPUs, started once per module and always shut down."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray")
    from lokirl.runtime.cluster import connect

    connect(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def tiny_pipeline() -> str:
    """Path of the two-stage tiny pipeline."""
    return TINY
