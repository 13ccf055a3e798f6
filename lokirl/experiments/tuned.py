"""Registers the tuned baselines (``periodic-tuned``, ``trigger-tuned``) as controllers.

Loaded through the ``lokirl.controllers`` entry-point group. Each name builds the
setting that ``lokirl tune --write`` committed in ``lokirl/data/tuned/NAME.yaml``
(see :mod:`lokirl.experiments.tuning`), displayed under the short name; a search
under a frame-violation budget (``--violation-budget 5``) is ``NAME-b5-tuned``.
"""

from __future__ import annotations

import re
from dataclasses import replace

from lokirl.core.controllers import CONTROLLERS, make_controller
from lokirl.experiments.tuning import SPACES, check_budget, record_name, tuned_spec


def _factory(name: str):
    def build(**_: object):
        controller = make_controller(tuned_spec(name))
        return replace(controller, name=f"{name}-tuned")

    return build


for _baseline in SPACES:
    CONTROLLERS.register(
        f"{_baseline}-tuned",
        _factory(_baseline),
        f"the {_baseline} baseline with the settings `lokirl tune` chose on validation",
    )


def _budgeted(m: re.Match[str]):
    budget = float(m.group(2)) / 100
    check_budget(budget, m.group(0))
    name = record_name(m.group(1), budget)
    controller = make_controller(tuned_spec(name))
    return replace(controller, name=f"{name}-tuned")


CONTROLLERS.register_pattern(
    rf"({'|'.join(map(re.escape, SPACES))})-b([0-9]+(?:\.[0-9]+)?)-tuned",
    _budgeted,
    "NAME-bPCT-tuned, e.g. fluid-b5-tuned; the baseline with the settings "
    "`lokirl tune --violation-budget PCT` chose on validation (most accurate within it)",
)
