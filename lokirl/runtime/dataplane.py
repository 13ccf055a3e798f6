"""The data path of the ingress process: MAF routing, group queues, batching, outcomes.

One asyncio event loop holds everything: a frame is admitted by sampling the
Most-Accurate-First :class:`~lokirl.core.router.RoutingTable` for each root task,
queued at its worker group, batched by a ready worker of the group and sent to
that worker's Ray actor; a served request spawns its sub-requests (counts drawn
by the worker from the variant's branching profile) to the child tasks. A small
frame (at most ``inline_bytes``) travels inline in each actor call; a larger one
is put into the object store once, when first dispatched (a frame dropped at
admission never is), and every stage passes the same ObjectRef on.

Every request ends in exactly one way: served on time, served late, or dropped
with a reason: ``over_capacity`` (admission), ``deadline`` (early drop at the
queue head, or stuck past its deadline), ``no_worker`` (its group has no live
worker), ``worker_failed`` (the actor died with the batch), ``timeout`` (an actor
call did not answer in time), ``worker_error`` (the call raised), ``no_plan``,
``shutdown``. Frames follow the simulator's definitions (:mod:`lokirl.sim`): on
time when all their sub-requests are, dropped when any was dropped, else late.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lokirl.core.metrics import Tally
from lokirl.core.pipeline import Pipeline
from lokirl.core.plan import Plan, WorkerGroup
from lokirl.core.router import DROP, BranchingEstimator, RoutingTable

log = logging.getLogger(__name__)

_OK, _LATE, _DROPPED = "on_time", "late", "dropped"


class Frame:
    """One end-to-end request (a frame) and its outstanding sub-requests."""

    __slots__ = (
        "id",
        "arrival",
        "deadline",
        "outstanding",
        "status",
        "reason",
        "acc_sum",
        "acc_n",
        "future",
        "data",
        "ref",
        "final",
        "variants",
    )

    def __init__(self, fid: int, arrival: float, deadline: float, data: Any, future: Any) -> None:
        self.id = fid
        self.arrival = arrival
        self.deadline = deadline
        self.outstanding = 0
        self.status = _OK
        self.reason = ""
        self.acc_sum = 0.0
        self.acc_n = 0
        self.future = future
        self.data = data  # the array, or an ObjectRef to it
        self.ref: Any = None  # the ObjectRef once put
        self.final = False
        self.variants: list[str] = []

    def payload(self, inline_bytes: int) -> Any:
        """What an actor call carries: the array if small, else an ObjectRef (put once)."""
        if self.ref is not None:
            return self.ref
        data = self.data
        nbytes = getattr(data, "nbytes", None)
        if nbytes is None:  # already an ObjectRef
            self.ref = data
            return data
        if nbytes <= inline_bytes:
            return data
        import ray

        self.ref = ray.put(data)
        self.data = None
        return self.ref


class Req:
    """A request for one task: its frame, the group that emitted it and its path accuracy."""

    __slots__ = ("frame", "task", "parent", "epoch", "acc")

    def __init__(self, frame: Frame, task: str, parent: int | None, epoch: int, acc: float) -> None:
        self.frame = frame
        self.task = task
        self.parent = parent
        self.epoch = epoch
        self.acc = acc


class GroupState:
    """A worker group of the running plan: its queue, profile and workers."""

    def __init__(
        self, gid: int, epoch: int, group: WorkerGroup, pipeline: Pipeline, down_ms: float
    ):
        v = pipeline.variant(group.variant)
        self.gid = gid
        self.epoch = epoch
        self.group = group
        self.task = group.task
        self.variant = group.variant
        self.batch = max(1, group.batch_size)
        table = v.latency_ms[group.accelerator]
        self.sizes = sorted(table)
        self.lat = dict(table)
        self.down = down_ms
        self.acc = v.accuracy / 100.0
        self.children = pipeline.task(group.task).children
        self.leaf = not self.children
        self.queue: deque[Req] = deque()
        self.workers: list[WorkerState] = []

    def service_ms(self, n: int) -> float:
        """Profiled latency of a batch of ``n`` (next profiled size up)."""
        for s in self.sizes:
            if s >= n:
                return self.lat[s]
        return self.lat[self.sizes[-1]] * n / self.sizes[-1]

    def live(self) -> bool:
        """Whether some worker of the group is ready or loading."""
        return any(w.status in ("ready", "loading") for w in self.workers)


class WorkerState:
    """The ingress's view of one worker actor."""

    def __init__(self, wid: int, actor: Any) -> None:
        self.wid = wid
        self.actor = actor
        self.variant: str | None = None
        self.status = "idle"  # idle | loading | ready | dead
        self.group: GroupState | None = None
        self.wake = asyncio.Event()
        self.token = 0
        self.load_s = 0.0
        self.loop_task: asyncio.Task | None = None
        self.busy = False

    def to_dict(self) -> dict[str, Any]:
        """For the status page."""
        return {
            "worker": self.wid,
            "variant": self.variant,
            "status": self.status,
            "group": None if self.group is None else list(self.group.group.key),
            "last_load_s": round(self.load_s, 4),
        }


@dataclass
class Counters:
    """Mutable tallies (frames, sub-requests) updated on the hot path."""

    arrived: int = 0
    on_time: int = 0
    late: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    accuracy_sum: float = 0.0

    def tally(self, in_flight: int) -> Tally:
        """A frozen :class:`~lokirl.core.metrics.Tally`."""
        return Tally(
            self.arrived, self.on_time, self.late, dict(self.dropped), in_flight, self.accuracy_sum
        )


def _is_actor_death(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"RayActorError", "ActorDiedError", "ActorUnavailableError"})


class DataPlane:
    """Routing, queues, batching and outcome accounting of one pipeline.

    Args:
        pipeline: The pipeline served.
        early_drop: Drop at the queue head requests that cannot meet their deadline.
        branching_window: Observations the branching estimate averages (Loki: 50).
        grace_s: Extra seconds past a deadline an actor call may take before it is
            abandoned (reason ``timeout``).
        seed: Seed of the routing draws.
        inline_bytes: Frames up to this size travel inline in actor calls; larger
            ones go through the object store.
        on_worker_lost: Called with a worker id when its actor dies.

    """

    def __init__(
        self,
        pipeline: Pipeline,
        early_drop: bool = True,
        branching_window: int = 50,
        grace_s: float = 2.0,
        seed: int = 0,
        on_worker_lost: Callable[[int], None] | None = None,
        inline_bytes: int = 64 * 1024,
    ) -> None:
        self.pipeline = pipeline
        self.inline_bytes = inline_bytes
        self.slo_s = pipeline.slo_ms / 1000.0
        self.early_drop = early_drop
        self.grace_s = grace_s
        self.rng = np.random.default_rng(seed)
        self.random = self.rng.random
        self.estimator = BranchingEstimator(pipeline, branching_window)
        self.on_worker_lost = on_worker_lost
        self.plan: Plan | None = None
        self.table: RoutingTable | None = None
        self.groups: list[GroupState] = []
        self.epoch = 0
        self.workers: list[WorkerState] = []
        self.frames = Counters()
        self.subs = Counters()
        self.leaf_on_time = 0
        self.leaf_acc_sum = 0.0
        self.frames_in_flight = 0
        self.subs_in_flight = 0
        self.next_id = 0
        self.closed = False
        self.t0 = time.monotonic()
        self.arrivals_per_s: list[int] = []
        self.latencies_ms: deque[float] = deque(maxlen=20000)
        self.batches = 0
        self.dispatch_overhead_ms: deque[float] = deque(maxlen=20000)
        self.admit_ms: deque[float] = deque(maxlen=20000)
        self.complete_ms: deque[tuple[float, int]] = deque(maxlen=20000)
        #: (variant, batch size, worker-side ms, round trip ms, profiled ms) per batch.
        self.service_obs: deque[tuple[str, int, float, float, float]] = deque(maxlen=20000)

    # ------------------------------------------------------------------ admission
    def now(self) -> float:
        """Seconds since the data plane started (or its clock was restarted)."""
        return time.monotonic() - self.t0

    def restart_clock(self) -> None:
        """Make now time 0 (before any frame arrived: the runtime does it once serving starts)."""
        if self.frames.arrived:
            raise RuntimeError("restart_clock after frames arrived")
        self.t0 = time.monotonic()
        self.arrivals_per_s.clear()

    def new_frame(self, data: Any) -> Frame:
        """Admit a frame (an array or an ObjectRef to one): count it, route its root requests.

        The caller awaits ``frame.future``.
        """
        now = self.now()
        sec = int(now)
        aps = self.arrivals_per_s
        while len(aps) <= sec:
            aps.append(0)
        aps[sec] += 1
        fut = asyncio.get_running_loop().create_future()
        frame = Frame(self.next_id, now, now + self.slo_s, data, fut)
        self.next_id += 1
        self.frames.arrived += 1
        self.frames_in_flight += 1
        roots = self.pipeline.roots
        frame.outstanding = len(roots)
        for task in roots:
            req = Req(frame, task, None, self.epoch, 1.0)
            self.subs.arrived += 1
            self.subs_in_flight += 1
            self._route(req, "over_capacity")
        return frame

    def _route(self, req: Req, drop_reason: str) -> None:
        table = self.table
        if table is None:
            self._drop(req, "no_plan")
            return
        parent = req.parent if req.epoch == self.epoch else None
        gid = table.next_hop(req.task, parent, self.random())
        if gid == DROP:
            self._drop(req, drop_reason)
            return
        g = self.groups[gid]
        if not g.live():
            self._drop(req, "no_worker")
            return
        g.queue.append(req)
        for w in g.workers:
            if w.status == "ready" and not w.busy:
                w.wake.set()
                break

    # ------------------------------------------------------------------ outcomes
    def _drop(self, req: Req, reason: str) -> None:
        d = self.subs.dropped
        d[reason] = d.get(reason, 0) + 1
        self.subs_in_flight -= 1
        frame = req.frame
        if frame.status != _DROPPED:
            frame.status = _DROPPED
            frame.reason = reason
        frame.outstanding -= 1
        if frame.outstanding == 0:
            self._finalise(frame)

    def _finalise(self, frame: Frame) -> None:
        if frame.final:
            return
        frame.final = True
        self.frames_in_flight -= 1
        latency_ms = (self.now() - frame.arrival) * 1000.0
        accuracy = 0.0
        if frame.status == _OK:
            self.frames.on_time += 1
            accuracy = 100.0 * frame.acc_sum / frame.acc_n if frame.acc_n else 0.0
            self.frames.accuracy_sum += accuracy
            self.latencies_ms.append(latency_ms)
        elif frame.status == _LATE:
            self.frames.late += 1
            self.latencies_ms.append(latency_ms)
        else:
            d = self.frames.dropped
            d[frame.reason] = d.get(frame.reason, 0) + 1
        if not frame.future.done():
            frame.future.set_result(
                {
                    "id": frame.id,
                    "outcome": frame.status,
                    "reason": frame.reason or None,
                    "latency_ms": round(latency_ms, 3),
                    "accuracy": round(accuracy, 3) if frame.status == _OK else None,
                    "accuracy_source": "profile",
                    "variants": sorted(set(frame.variants)),
                }
            )

    def abandon(self, frame: Frame, reason: str = "timeout") -> None:
        """Give up on a frame whose caller stopped waiting (counted dropped once)."""
        if frame.final:
            return
        frame.status = _DROPPED
        frame.reason = reason
        self._finalise(frame)

    def _complete(self, g: GroupState, batch: list[Req], res: dict[str, Any]) -> None:
        now = self.now()
        counts = res.get("counts", {})
        subs = self.subs
        for i, req in enumerate(batch):
            frame = req.frame
            self.subs_in_flight -= 1
            frame.variants.append(g.variant)
            if now > frame.deadline:
                subs.late += 1
                if frame.status == _OK:
                    frame.status = _LATE
                frame.outstanding -= 1
                if frame.outstanding == 0:
                    self._finalise(frame)
                continue
            subs.on_time += 1
            acc = req.acc * g.acc
            subs.accuracy_sum += 100.0 * acc
            spawned = 0
            if g.leaf:
                self.leaf_on_time += 1
                self.leaf_acc_sum += 100.0 * acc
            else:
                epoch = self.epoch if g.epoch == self.epoch else -1
                for child in g.children:
                    c = counts.get(child)
                    n = int(c[i]) if c is not None and i < len(c) else 0
                    self.estimator.observe(g.variant, child, n)
                    for _ in range(n):
                        sub = Req(frame, child, g.gid, epoch, acc)
                        subs.arrived += 1
                        self.subs_in_flight += 1
                        frame.outstanding += 1
                        spawned += 1
                        self._route(sub, "no_worker")
            if spawned == 0:
                frame.acc_sum += acc
                frame.acc_n += 1
            frame.outstanding -= 1
            if frame.outstanding == 0:
                self._finalise(frame)

    # ------------------------------------------------------------------ workers
    async def worker_loop(self, w: WorkerState) -> None:
        """Form and dispatch batches for one worker until it dies or the plane closes."""
        while not self.closed and w.status != "dead":
            g = w.group
            if g is None or w.status != "ready" or not g.queue:
                w.wake.clear()
                await w.wake.wait()
                continue
            t_start = time.perf_counter()
            now = self.now()
            now_ms = now * 1000.0
            q = g.queue
            svc = g.service_ms(min(len(q), g.batch))
            batch: list[Req] = []
            while q and len(batch) < g.batch:
                req = q.popleft()
                if self.early_drop and now_ms + svc + g.down > req.frame.deadline * 1000.0:
                    self._drop(req, "deadline")
                    continue
                batch.append(req)
            if not batch:
                continue
            timeout = max(r.frame.deadline for r in batch) - now + self.grace_s
            w.busy = True
            try:
                inline = self.inline_bytes
                ref = w.actor.infer.remote([r.frame.payload(inline) for r in batch])
                self.dispatch_overhead_ms.append(
                    (time.perf_counter() - t_start) * 1000.0 / len(batch)
                )
                res = await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)
            except TimeoutError:
                log.warning("worker %d: batch of %d timed out", w.wid, len(batch))
                for r in batch:
                    self._drop(r, "timeout")
                continue
            except Exception as exc:  # noqa: BLE001 - every failure ends the batch's requests
                if _is_actor_death(exc):
                    log.warning("worker %d died: %s", w.wid, type(exc).__name__)
                    for r in batch:
                        self._drop(r, "worker_failed")
                    self.mark_dead(w)
                    return
                log.warning("worker %d: batch failed: %s", w.wid, exc)
                for r in batch:
                    self._drop(r, "worker_error")
                continue
            finally:
                w.busy = False
            self.batches += 1
            t_done = time.perf_counter()
            self.service_obs.append(
                (
                    g.variant,
                    len(batch),
                    float(res.get("service_ms", math.nan)),
                    (t_done - t_start) * 1000.0,
                    g.service_ms(len(batch)),
                )
            )
            self._complete(g, batch, res)
            self.complete_ms.append(((time.perf_counter() - t_done) * 1000.0, len(batch)))

    def mark_dead(self, w: WorkerState) -> None:
        """Take a dead worker out of service; requests stranded in its group are dropped."""
        if w.status == "dead":
            return
        w.status = "dead"
        w.wake.set()
        g = w.group
        w.group = None
        if g is not None:
            g.workers.remove(w)
            if not g.live():
                while g.queue:
                    self._drop(g.queue.popleft(), "no_worker")
        if self.on_worker_lost is not None:
            self.on_worker_lost(w.wid)

    # ------------------------------------------------------------------ plans
    def install(self, plan: Plan, table: RoutingTable) -> list[WorkerState]:
        """Make ``plan`` the running plan; returns the workers that must load a new variant.

        Workers keeping their variant keep serving (a batch-size change is free);
        other needed workers are taken from those the plan leaves over, preferring
        empty ones. Requests queued at the old groups are re-routed through the new
        table; batches in flight complete and route their sub-requests through the
        new table.
        """
        self.epoch += 1
        groups = [
            GroupState(i, self.epoch, g, self.pipeline, table.downstream_ms[i])
            for i, g in enumerate(plan.groups)
        ]
        alive = [w for w in self.workers if w.status != "dead"]
        free = list(alive)
        slots: list[GroupState] = []
        for gs in groups:
            for _ in range(gs.group.replicas):
                keep = next((w for w in free if w.variant == gs.variant), None)
                if keep is not None:
                    free.remove(keep)
                    keep.group = gs
                    gs.workers.append(keep)
                else:
                    slots.append(gs)
        to_load: list[WorkerState] = []
        free.sort(key=lambda w: w.variant is not None)
        for gs in slots:
            if not free:
                break
            w = free.pop(0)
            w.group = gs
            w.variant = gs.variant
            w.status = "loading"
            w.token += 1
            gs.workers.append(w)
            to_load.append(w)
        for w in free:  # left over: keep the last variant loaded, take no traffic
            w.group = None
        old = self.groups
        self.groups = groups
        self.plan = plan
        self.table = table
        for g in old:
            while g.queue:
                req = g.queue.popleft()
                req.parent = None
                self._route(req, "no_worker")
        for w in alive:
            w.wake.set()
        return to_load

    def set_table(self, table: RoutingTable) -> None:
        """Swap in a table rebuilt for the same plan (new demand or branching estimates)."""
        self.table = table
        for gs in self.groups:
            gs.down = table.downstream_ms[gs.gid]

    def reap(self) -> int:
        """Drop queued requests stuck well past their deadline; returns how many."""
        now = self.now()
        n = 0
        for g in self.groups:
            q = g.queue
            if not q:
                continue
            if not g.live():
                while q:
                    self._drop(q.popleft(), "no_worker")
                    n += 1
                continue
            keep: deque[Req] = deque()
            for req in q:
                if now > req.frame.deadline + self.grace_s:
                    self._drop(req, "deadline")
                    n += 1
                else:
                    keep.append(req)
            g.queue = keep
        return n

    def shutdown(self) -> None:
        """Close the plane: every queued request is dropped (reason ``shutdown``)."""
        self.closed = True
        for g in self.groups:
            while g.queue:
                self._drop(g.queue.popleft(), "shutdown")
        for w in self.workers:
            w.wake.set()

    # ------------------------------------------------------------------ views
    def queue_lengths(self) -> dict[str, int]:
        """Requests waiting per task."""
        out = {t.name: 0 for t in self.pipeline.tasks}
        for g in self.groups:
            out[g.task] += len(g.queue)
        return out

    def active_workers(self) -> int:
        """Workers holding a variant of the running plan and serving or loading."""
        return sum(1 for w in self.workers if w.group is not None and w.status != "dead")

    def frame_tally(self) -> Tally:
        """Frame-level tally."""
        return self.frames.tally(self.frames_in_flight)

    def sub_tally(self) -> Tally:
        """Sub-request-level tally."""
        return self.subs.tally(self.subs_in_flight)

    @property
    def accuracy(self) -> float:
        """System accuracy: mean path accuracy of on-time leaf sub-requests (profile values)."""
        return self.leaf_acc_sum / self.leaf_on_time if self.leaf_on_time else 0.0

    def history(self, seconds: int) -> tuple[float, ...]:
        """Arrivals per complete second, oldest first, at most ``seconds`` of them."""
        done = int(self.now())
        aps = self.arrivals_per_s + [0] * max(0, done - len(self.arrivals_per_s))
        return tuple(float(x) for x in aps[:done][-seconds:])


def service_report(obs: Any) -> dict[str, dict[str, float]]:
    """Per variant: batches, median worker-side and round-trip time as a share of the profile."""
    by: dict[str, list[tuple[float, float]]] = {}
    for variant, _n, worker_ms, rtt_ms, prof_ms in obs:
        if prof_ms > 0:
            by.setdefault(variant, []).append((worker_ms / prof_ms, rtt_ms / prof_ms))
    return {
        v: {
            "batches": len(xs),
            "worker_over_profile_p50": float(np.median([a for a, _ in xs])),
            "roundtrip_over_profile_p50": float(np.median([b for _, b in xs])),
        }
        for v, xs in sorted(by.items())
    }


def percentile(values: list[float] | deque[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))
