"""Registers the tuned baselines (``periodic-tuned``, ``trigger-tuned``) as controllers.

Loaded through the ``lokirl.controllers`` entry-point group. Each name builds the
setting that ``lokirl tune --write`` committed in ``lokirl/data/tuned/NAME.yaml``
(see :mod:`lokirl.experiments.tuning`), displayed under the short name.
"""

from __future__ import annotations

from dataclasses import replace

from lokirl.core.controllers import CONTROLLERS, make_controller
from lokirl.experiments.tuning import SPACES, tuned_spec


def _factory(baseline: str):
    def build(**_: object):
        controller = make_controller(tuned_spec(baseline))
        return replace(controller, name=f"{baseline}-tuned")

    return build


for _baseline in SPACES:
    CONTROLLERS.register(
        f"{_baseline}-tuned",
        _factory(_baseline),
        f"the {_baseline} baseline with the settings `lokirl tune` chose on validation",
    )
