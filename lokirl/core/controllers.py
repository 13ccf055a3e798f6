"""The registry of controllers: ``make_controller("loki")``, ``"loki-5s"``, ``"module:attr"``.

The core registers lokirl's own periodic MILP (``loki-Ns``, ``loki-Ns-churn``:
:class:`~lokirl.core.controller.PeriodicMILPController`). Every other controller
(``loki`` itself, the authors' controller, the baselines, the trigger, the oracle, the
learned policies) is registered by a package that declares itself in the
``lokirl.controllers`` entry-point group (``pyproject.toml``); :func:`make_controller`
loads that group before looking a name up. The core names none of those packages,
so it depends on nothing above it, even at run time, and a third-party package can
add controllers the same way.
"""

from __future__ import annotations

import re

from lokirl.core.controller import Controller, PeriodicMILPController
from lokirl.core.registry import Registry

#: Controllers by name; other layers register theirs (baselines, PPO) on import.
CONTROLLERS: Registry[Controller] = Registry("controller", required=("decide",))


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

CONTROLLERS.register_keywords(
    "periodic",
    PeriodicMILPController,
    "lokirl's periodic MILP with explicit settings, e.g. "
    "periodic(period_s=5,headroom=1.3,churn_weight=1,warm_start=true)",
)

#: Entry-point group whose members register controllers when loaded.
ENTRY_POINT_GROUP = "lokirl.controllers"


def load_plugins() -> None:
    """Load every member of the ``lokirl.controllers`` entry-point group (once each)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _LOADED:
            continue
        try:
            ep.load()
        except ImportError:  # pragma: no cover - a plugin whose dependencies are missing
            continue
        _LOADED.add(ep.name)


_LOADED: set[str] = set()


def make_controller(spec: str) -> Controller:
    """Build a controller from its name or spec (see :data:`CONTROLLERS`).

    Known specs: ``loki`` (the authors' controller), ``loki-bB`` (the same with
    over-provisioning B on the branching factors), ``loki-Ns``, ``loki-Ns-churn``,
    ``loki-hH`` (lokirl's periodic MILP), ``inferline``, ``proteus``, ``static``,
    ``trigger``, ``ppo:PATH``, or ``package.module:attr``. A keyword spec's bare name
    (``fluid``, ``periodic``) is its defaults, as ``fluid()`` is. ``oracle`` is refused
    here: it needs the trace in advance, so the commands that have it build it
    (:func:`lokirl.agents.actors.actor_factory`).

    Args:
        spec: The controller's name or spec.

    Returns:
        The controller, not yet bound to a pipeline.

    Raises:
        ConfigError: an unknown name (with the closest known one), an unbalanced
            parenthesis, a setting the controller refuses, or ``oracle``.

    """
    load_plugins()
    return CONTROLLERS.create(spec)
