"""Metric definitions shared by the simulator, the runtime and the reports.

One definition everywhere (see the design notes):

* **SLO violation ratio** = (dropped + finished after the deadline) / arrived,
  reported per frame and per sub-request.
* **System accuracy** = mean path accuracy (0-100) of the requests that finished
  within the SLO (never counting a pass-through sink as 100).
* **Effective accuracy** = the same sum over *all* arrived requests, a dropped or
  late request counting 0: accuracy x on time / arrived. A controller that drops
  half its frames cannot look accurate on it.
* Conservation: arrived = served within SLO + late + dropped + in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lokirl.core.frozen import FrozenMap


@dataclass(frozen=True)
class Tally:
    """Counts of requests of one kind (frames or sub-requests).

    Attributes:
        arrived: Requests that entered.
        on_time: Finished within their deadline.
        late: Finished after their deadline.
        dropped: Dropped, by reason (``over_capacity``, ``deadline``, ``no_worker``...).
        in_flight: Neither finished nor dropped yet.
        accuracy_sum: Sum of path accuracy over on-time requests.

    """

    arrived: int = 0
    on_time: int = 0
    late: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    in_flight: int = 0
    accuracy_sum: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dropped", FrozenMap(dict(self.dropped)))

    @property
    def dropped_total(self) -> int:
        """All dropped requests."""
        return sum(self.dropped.values())

    def counts(self) -> dict[str, int]:
        """The four outcomes and arrivals: arrived = on time + late + dropped + in flight."""
        return {
            "arrived": self.arrived,
            "on_time": self.on_time,
            "late": self.late,
            "dropped": self.dropped_total,
            "in_flight": self.in_flight,
        }

    @property
    def conserved(self) -> bool:
        """Whether arrived = on time + late + dropped + in flight."""
        return self.arrived == self.on_time + self.late + self.dropped_total + self.in_flight

    @property
    def slo_violation_ratio(self) -> float:
        """(dropped + late) / arrived; 0 when nothing arrived."""
        if self.arrived == 0:
            return 0.0
        return (self.dropped_total + self.late) / self.arrived

    @property
    def accuracy(self) -> float:
        """Mean path accuracy of on-time requests (0-100); 0 when none."""
        return self.accuracy_sum / self.on_time if self.on_time else 0.0

    @property
    def effective_accuracy(self) -> float:
        """Path accuracy summed over on-time requests, divided by all arrived (0-100).

        A dropped, late or still unfinished request counts 0, so this equals
        ``accuracy * on_time / arrived``; 0 when nothing arrived.
        """
        return effective_accuracy(self.accuracy_sum, self.arrived)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts, the violation ratio, the accuracy and the effective accuracy."""
        return {
            "arrived": self.arrived,
            "on_time": self.on_time,
            "late": self.late,
            "dropped": dict(sorted(self.dropped.items())),
            "in_flight": self.in_flight,
            "slo_violation_ratio": self.slo_violation_ratio,
            "accuracy": self.accuracy,
            "effective_accuracy": self.effective_accuracy,
        }


def slo_violation_ratio(arrived: int, late: int, dropped: int) -> float:
    """(dropped + late) / arrived, 0 when nothing arrived."""
    return (dropped + late) / arrived if arrived else 0.0


def effective_accuracy(accuracy_sum: float, arrived: int) -> float:
    """Effective accuracy: on-time path accuracy summed, over all arrived; 0 when none arrived.

    Args:
        accuracy_sum: Sum of path accuracy (0-100) over the requests finished on time.
        arrived: Requests that arrived (dropped, late and unfinished ones count 0).

    """
    return accuracy_sum / arrived if arrived else 0.0
