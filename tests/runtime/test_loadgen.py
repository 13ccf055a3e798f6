"""Open-loop replay (no Ray, no HTTP): outcomes counted as the simulator counts frames."""

from __future__ import annotations

import asyncio

import numpy as np

from lokirl.runtime.loadgen import bounded_arrivals, replay


def test_replay_counts_every_request():
    outcomes = ["on_time", "late", "dropped"]

    async def send(i: int) -> dict:
        await asyncio.sleep(0.001)
        if i == 5:
            raise ConnectionError("boom")
        return {"outcome": outcomes[i % 3], "reason": "deadline", "accuracy": 80.0}

    arrivals = bounded_arrivals(np.linspace(0, 0.2, 30), max_requests=20, max_duration_s=1.0)
    res = asyncio.run(replay(arrivals, send))
    f = res.frames
    assert res.sent == 20 and f.conserved and f.in_flight == 0
    assert f.arrived == f.on_time + f.late + f.dropped_total
    assert f.dropped["error:ConnectionError"] == 1
    assert f.accuracy == 80.0
    d = res.to_dict()
    assert d["sent"] == 20 and d["accuracy_source"] == "profile"


def test_replay_caps_in_flight():
    async def send(i: int) -> dict:
        await asyncio.sleep(0.05)
        return {"outcome": "on_time", "accuracy": 100.0}

    res = asyncio.run(replay(np.zeros(10), send, max_in_flight=4))
    assert res.frames.dropped["client_overload"] == 6
    assert res.frames.on_time == 4
