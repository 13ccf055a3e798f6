"""The registry of controllers: ``make_controller("loki")``, ``"loki-5s"``, ``"module:attr"``."""

from __future__ import annotations

import re

from lokirl.core.controller import Controller, PeriodicMILPController
from lokirl.core.registry import Registry

#: Controllers by name; other layers register theirs (baselines, PPO) on import.
CONTROLLERS: Registry[Controller] = Registry("controller")

CONTROLLERS.register(
    "loki",
    lambda **kw: PeriodicMILPController(**{"period_s": 1.0, "name": "loki", **kw}),
    "Loki: re-solve the MILP every 1 s on an EWMA demand estimate",
)


def _periodic(m: re.Match[str]) -> Controller:
    period = float(m.group(1))
    return PeriodicMILPController(period_s=period, name=m.group(0))


CONTROLLERS.register_pattern(
    r"loki-(\d+(?:\.\d+)?)s", _periodic, "Loki re-solving every N seconds, e.g. loki-5s"
)


def make_controller(spec: str) -> Controller:
    """Build a controller from its name or spec (see :data:`CONTROLLERS`)."""
    return CONTROLLERS.create(spec)
