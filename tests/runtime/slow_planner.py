"""A controller whose planner holds the GIL for a while (imported by name by a spawned solver)."""

from __future__ import annotations

import time
from typing import Any

from lokirl.core.allocator import solve
from lokirl.core.controller import KEEP, ControlContext, Decision


def hold_gil(seconds: float, chunk: int) -> None:
    """Hold the GIL in long C calls (``sum(range(chunk))`` never yields it) for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(chunk))


class SlowPlanner:
    """Keeps the plan unless ``want`` is set; its solves first hold the GIL ``hold_s`` seconds."""

    name = "slow"

    def __init__(self, hold_s: float = 0.0, chunk: int = 1_000_000) -> None:
        self.hold_s = hold_s
        self.chunk = chunk
        self.want = False

    def decide(self, context: ControlContext) -> Decision:
        if self.want and not context.solving:
            self.want = False
            return Decision(resolve=True, demand=5.0, reason="test")
        return KEEP

    def plan(self, pipeline: Any, cluster: Any, decision: Decision, opts: Any, current: Any) -> Any:
        hold_gil(self.hold_s, self.chunk)
        return solve(pipeline, cluster, decision.demand, opts, current)
