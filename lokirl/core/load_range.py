"""The load range a trace is mapped onto when no range is given (``--rescale auto``).

Shared by the suites (``lokirl bench --trace ... --load auto``, ``evaluate``,
``simvslive``) and the live runtime, which reports it in ``/v1/status`` so that
``lokirl loadgen --rescale auto`` maps a trace onto the serving cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Per unit, the multiples of the capacity a trace's minimum..maximum maps onto: the
#: suites' ``traffic_analysis`` loads in the capacity at full accuracy, their
#: ``social_media`` loads in the largest capacity at any accuracy.
AUTO_LOAD: dict[str, tuple[float, float]] = {"full_accuracy": (0.3, 2.0), "max": (0.05, 0.4)}


def auto_load_range(caps: Mapping[str, Any]) -> tuple[float, float, str]:
    """The frames/s a trace's minimum..maximum maps onto when no range is given.

    :data:`AUTO_LOAD` of the capacity at full accuracy when the pipeline's most accurate
    variants meet the SLO on the cluster, else of its largest capacity at any accuracy
    (where the capacity at full accuracy is a failed plan's sliver).

    Args:
        caps: The cluster's capacities: ``full_accuracy`` and ``max`` (frames/s) and
            ``full_accuracy_ok`` (the most accurate variants meet the SLO).

    Returns:
        ``(lo, hi, unit)`` with ``unit`` ``"full_accuracy"`` or ``"max"``.

    """
    unit = "full_accuracy" if caps["full_accuracy_ok"] else "max"
    lo, hi = AUTO_LOAD[unit]
    return lo * float(caps[unit]), hi * float(caps[unit]), unit
