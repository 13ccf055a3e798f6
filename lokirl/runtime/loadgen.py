"""Open-loop replay of a trace against a sender (HTTP, or a runtime in-process).

Arrivals are sent at their trace times whether or not earlier requests have
answered (open loop); the number in flight is capped so that a dead server cannot
exhaust the client: a request that finds the cap full is not sent and counts as
dropped (reason ``client_overload``). Outcomes are counted as the simulator
counts frames: on time, late, dropped (by reason). A request the server refuses as
malformed (HTTP 4xx other than 429) never entered the pipeline: it is counted as
*rejected*, with the server's message, not as a drop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lokirl.core.metrics import Tally
from lokirl.runtime.dataplane import percentile


@dataclass
class ReplayResult:
    """What a replay observed from the client side.

    Attributes:
        sent: Requests sent (plus those refused by the in-flight cap).
        frames: Frame tally (``accuracy_sum`` over on-time frames, profile values).
        latencies_ms: Client-side latency of every answered request.
        wall_s: Wall time of the replay.
        offered_rate: Mean rate of the replayed arrivals (req/s).
        rejected: Requests the server refused as malformed, by message (not frames).

    """

    sent: int = 0
    frames: Tally = field(default_factory=Tally)
    rejected: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    offered_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the same frame metrics the simulator reports)."""
        f = self.frames
        return {
            "sent": self.sent,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "on_time": f.on_time,
            "late": f.late,
            "dropped": f.dropped_total,
            "dropped_by_reason": dict(sorted(f.dropped.items())),
            "slo_violation_ratio": f.slo_violation_ratio,
            "accuracy": f.accuracy,
            "accuracy_source": "profile",
            "latency_ms_p50": percentile(self.latencies_ms, 50),
            "latency_ms_p99": percentile(self.latencies_ms, 99),
            "offered_rate": self.offered_rate,
            "wall_s": self.wall_s,
        }


def bounded_arrivals(
    arrivals_s: np.ndarray, max_requests: int | None = None, max_duration_s: float | None = None
) -> np.ndarray:
    """Arrival times cut to at most ``max_requests`` and ``max_duration_s``."""
    arr = np.asarray(arrivals_s, dtype=float)
    if max_duration_s is not None:
        arr = arr[arr < max_duration_s]
    if max_requests is not None:
        arr = arr[:max_requests]
    return arr


async def replay(
    arrivals_s: np.ndarray,
    send: Callable[[int], Awaitable[dict[str, Any]]],
    max_in_flight: int = 512,
) -> ReplayResult:
    """Send request ``i`` at ``arrivals_s[i]`` (seconds from now) through ``send``.

    Args:
        arrivals_s: Sorted arrival times in seconds.
        send: Coroutine function sending request ``i`` and returning the outcome
            dict (``outcome``: ``on_time`` | ``late`` | ``dropped``, ``reason``,
            ``accuracy``); an exception counts as dropped (reason ``error``).
        max_in_flight: Cap on requests awaiting an answer.

    """
    counts = {"on_time": 0, "late": 0}
    dropped: dict[str, int] = {}
    rejected: dict[str, int] = {}
    acc_sum = 0.0
    latencies: list[float] = []
    in_flight = 0
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()

    async def one(i: int) -> None:
        nonlocal in_flight, acc_sum
        start = loop.time()
        try:
            res = await send(i)
        except Exception as exc:  # noqa: BLE001 - a failed request is a dropped one
            res = {"outcome": "dropped", "reason": f"error:{type(exc).__name__}"}
        finally:
            in_flight -= 1
        outcome = res.get("outcome")
        if outcome in counts:
            counts[outcome] += 1
            latencies.append((loop.time() - start) * 1000.0)
            if outcome == "on_time":
                acc_sum += float(res.get("accuracy") or 0.0)
        elif outcome == "rejected":
            reason = str(res.get("reason") or "rejected")
            rejected[reason] = rejected.get(reason, 0) + 1
        else:
            reason = str(res.get("reason") or "unknown")
            dropped[reason] = dropped.get(reason, 0) + 1

    t0 = loop.time()
    wall0 = time.perf_counter()
    for i, t in enumerate(np.asarray(arrivals_s, dtype=float)):
        delay = t0 + float(t) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:
            dropped["client_overload"] = dropped.get("client_overload", 0) + 1
            continue
        in_flight += 1
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*list(tasks))
    n = len(arrivals_s)
    span = float(arrivals_s[-1]) if n else 0.0
    arrived = n - sum(rejected.values())
    tally = Tally(arrived, counts["on_time"], counts["late"], dropped, 0, acc_sum)
    return ReplayResult(
        sent=n,
        frames=tally,
        rejected=rejected,
        latencies_ms=latencies,
        wall_s=time.perf_counter() - wall0,
        offered_rate=n / span if span > 0 else float(n),
    )


def http_sender(
    client: Any, url: str, frame: np.ndarray, timeout_s: float = 30.0
) -> Callable[[int], Awaitable[dict[str, Any]]]:
    """A ``send`` for :func:`replay` posting ``frame`` as a raw tensor to ``url``."""
    body = np.ascontiguousarray(frame).tobytes()
    headers = {
        "content-type": "application/octet-stream",
        "x-tensor-shape": ",".join(str(x) for x in frame.shape),
        "x-tensor-dtype": str(frame.dtype),
    }

    async def send(i: int) -> dict[str, Any]:
        r = await client.post(url, content=body, headers=headers, timeout=timeout_s)
        if r.status_code in (200, 503):
            try:
                return r.json()
            except ValueError:
                pass
        if 400 <= r.status_code < 500 and r.status_code != 429:
            try:
                detail = r.json().get("detail", "")
            except (ValueError, AttributeError):
                detail = r.text[:200]
            return {"outcome": "rejected", "reason": f"http_{r.status_code}: {detail}"}
        return {"outcome": "dropped", "reason": f"http_{r.status_code}"}

    return send


def round_robin(
    senders: list[Callable[[int], Awaitable[dict[str, Any]]]],
) -> Callable[[int], Awaitable[dict[str, Any]]]:
    """A ``send`` that hands request ``i`` to ``senders[i % len(senders)]`` (several ingresses)."""
    if len(senders) == 1:
        return senders[0]

    def send(i: int) -> Awaitable[dict[str, Any]]:
        return senders[i % len(senders)](i)

    return send
