"""The registry of controllers: ``make_controller("loki")``, ``"loki-5s"``, ``"module:attr"``.

The core registers lokirl's own periodic MILP (``loki-Ns``, ``loki-Ns-churn``:
:class:`~lokirl.core.controller.PeriodicMILPController`). ``loki`` itself, the
authors' controller, is a baseline registered by :mod:`lokirl.sim.baselines`, which
:func:`make_controller` imports before looking a name up.
"""

from __future__ import annotations

import re

from lokirl.core.controller import Controller, PeriodicMILPController
from lokirl.core.registry import Registry

#: Controllers by name; other layers register theirs (baselines, PPO) on import.
CONTROLLERS: Registry[Controller] = Registry("controller")


def _periodic(m: re.Match[str]) -> Controller:
    period = float(m.group(1))
    return PeriodicMILPController(period_s=period, name=m.group(0))


CONTROLLERS.register_pattern(
    r"loki-(\d+(?:\.\d+)?)s",
    _periodic,
    "lokirl's periodic MILP re-solving every N seconds on the EWMA estimate (no demand floor, "
    "no over-provisioning), e.g. loki-5s; loki-1s is Loki's loop without its shortcuts",
)


def _periodic_churn(m: re.Match[str]) -> Controller:
    return PeriodicMILPController(period_s=float(m.group(1)), churn_weight=1.0, name=m.group(0))


CONTROLLERS.register_pattern(
    r"loki-(\d+(?:\.\d+)?)s-churn",
    _periodic_churn,
    "lokirl's periodic MILP every N seconds with the allocator's churn term (1 accuracy point "
    "per changed worker)",
)

#: Packages that register more controllers when imported (baselines, learned
#: policies). Named as strings so that the core imports none of them; they are
#: imported on the first look-up that needs them.
PLUGIN_PACKAGES: tuple[str, ...] = ("lokirl.sim", "lokirl.agents")


def load_plugins() -> None:
    """Import the packages that register further controllers."""
    import importlib

    for name in PLUGIN_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - a layer not installed
            continue


def make_controller(spec: str) -> Controller:
    """Build a controller from its name or spec (see :data:`CONTROLLERS`).

    Known specs: ``loki`` (the authors' controller), ``loki-bB`` (the same with
    over-provisioning B on the branching factors), ``loki-Ns``, ``loki-Ns-churn``,
    ``loki-hH`` (lokirl's periodic MILP), ``inferline``, ``proteus``, ``static``,
    ``trigger``, ``ppo:PATH``, or ``package.module:attr``.
    """
    load_plugins()
    return CONTROLLERS.create(spec)
