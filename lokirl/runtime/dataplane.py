"""The data path of the ingress process: MAF routing, group queues, batching, outcomes.

One asyncio event loop holds everything: a frame is admitted by sampling the
Most-Accurate-First :class:`~lokirl.core.router.RoutingTable` for each root task,
queued at its worker group, batched by a ready worker of the group and sent to
that worker's Ray actor; a served request spawns its sub-requests (counts drawn
by the worker from the variant's branching profile) to the child tasks. A small
frame (at most ``inline_bytes``) travels inline in each actor call; a larger one
is put into the object store once, when first dispatched (a frame dropped at
admission never is), and every stage passes the same ObjectRef on.

Plans change as :mod:`lokirl.core.reconfig` says (``swap`` mode): the routing
table is built from the *serving view*, so a worker takes traffic for a group only
once it can serve it; under ``overlap`` a worker that loads a new variant keeps
serving its old one (beside it on the actor) until the load completes, and
requests queued for a variant nobody serves any more are re-routed.

Every request ends in exactly one way: served on time, served late, or dropped
with a reason: ``over_capacity`` (admission), ``deadline`` (early drop at the
queue head, or stuck past its deadline), ``no_worker`` (its group has no live
worker), ``worker_failed`` (the actor died or was found hung with the batch, and
no other worker could take it before its deadline), ``timeout`` (an actor call did
not answer in time), ``worker_error`` (the call raised), ``no_plan``, ``shutdown``.
Frames follow the simulator's definitions (:mod:`lokirl.sim`): on time when all
their sub-requests are, dropped when any was dropped, else late.

A worker whose batches time out ``max_timeouts`` times in a row is failed
(:meth:`DataPlane.fail_worker`): its in-flight batch is cancelled and its requests
re-routed to the workers left (or dropped, ``worker_failed``), its queue
re-routed, and ``on_worker_lost`` tells the runtime, which kills and re-creates
the actor. The runtime's pings fail a worker that stops answering the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lokirl.core.controller import ARRIVAL_BIN_S, arrival_bin, arrival_bin_range
from lokirl.core.handover import (
    WorkerHolding,
    assign_workers,
    hand_over_queues,
    old_queue_moves,
)
from lokirl.core.metrics import Tally
from lokirl.core.pipeline import Pipeline
from lokirl.core.plan import Plan, WorkerGroup
from lokirl.core.reconfig import (
    Swap,
    SwapMode,
    WorkerServing,
    drains_on_removal,
    plan_swap,
    serving_table,
    serving_view,
)
from lokirl.core.router import DROP, BranchingEstimator, RoutingTable
from lokirl.runtime.metrics import Histogram, Histograms, RepeatedFailure, Window, one_line

log = logging.getLogger(__name__)

_OK, _LATE, _DROPPED = "on_time", "late", "dropped"
#: Numbers that name a group for as long as it lives (ingress replicas key theirs by it).
_GROUP_UIDS = itertools.count()


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

    __slots__ = ("frame", "task", "parent", "epoch", "acc", "t_enq")

    def __init__(self, frame: Frame, task: str, parent: int | None, epoch: int, acc: float) -> None:
        self.frame = frame
        self.task = task
        self.parent = parent
        self.epoch = epoch
        self.acc = acc
        self.t_enq = 0.0  # when it joined its group's queue (plane seconds)


class GroupState:
    """A worker group of the running plan: its queue, profile and workers.

    ``uid`` names the group for as long as it lives (an old group that stays as an
    interim or drained group keeps it); ``gid`` is its row in the routing table now.
    """

    def __init__(
        self, gid: int, epoch: int, group: WorkerGroup, pipeline: Pipeline, down_ms: float
    ):
        v = pipeline.variant(group.variant)
        self.uid = next(_GROUP_UIDS)
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
        self.workers: list[WorkerState] = []  # the workers serving it now

    def service_ms(self, n: int) -> float:
        """Profiled latency of a batch of ``n`` (next profiled size up)."""
        for s in self.sizes:
            if s >= n:
                return self.lat[s]
        return self.lat[self.sizes[-1]] * n / self.sizes[-1]

    def live(self) -> bool:
        """Whether some live worker serves the group now."""
        return any(w.status != "dead" for w in self.workers)


class WorkerState:
    """The ingress's view of one worker actor.

    ``variant`` is the variant it holds or loads for its plan ``group``; ``held``
    the one its actor serves now (``None`` while it loads under ``stop``);
    ``serving`` the group whose queue it takes batches from now (its plan group
    once ready; its old variant's group while it loads under ``overlap``; the
    group it drains after leaving the plan).
    """

    def __init__(self, wid: int, actor: Any) -> None:
        self.wid = wid
        self.actor = actor
        self.variant: str | None = None
        self.held: str | None = None
        self.status = "idle"  # idle | loading | ready | dead
        self.group: GroupState | None = None
        self.serving: GroupState | None = None
        self.old: WorkerGroup | None = None  # the old variant's group while loading (overlap)
        self.drain: GroupState | None = None
        self.swap: Swap | None = None  # the swap in progress
        self.wake = asyncio.Event()
        #: ``time.perf_counter`` when routing woke it while idle (consumed at dispatch).
        self.woken_at: float | None = None
        self.token = 0
        self.load_s = 0.0
        self.loop_task: asyncio.Task | None = None
        self.busy = False
        self.batch_variant: str | None = None  # variant of the batch in flight
        self.inflight: list[Req] | None = None  # the batch in flight
        self.inflight_ref: Any = None  # its ObjectRef (cancelled when the worker fails)
        self.timeouts = 0  # consecutive batch timeouts
        self.last_ok = time.monotonic()  # last answer (batch or ping) from the actor
        self.failure: str | None = None  # why it was failed (dead only)
        self.failed_at: float | None = None  # monotonic time it was failed
        self.restarts = 0  # times this slot's actor was re-created
        #: Whether this ingress sends it batches: with several ingress replicas, a group
        #: with at least one worker per replica gives each worker to one replica.
        self.mine = True

    def to_dict(self) -> dict[str, Any]:
        """For the status page."""
        return {
            "worker": self.wid,
            "variant": self.variant,
            "serving_variant": None if self.serving is None else self.serving.variant,
            "status": self.status,
            "group": None if self.group is None else list(self.group.group.key),
            "last_load_s": round(self.load_s, 4),
            "busy": self.busy,
            "failure": self.failure,
            "restarts": self.restarts,
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
        on_worker_lost: Called with the worker and the reason when a worker fails
            (its actor died, or it stopped answering).
        accelerator: Accelerator type of the workers (default: the pipeline's first).
        history_s: Seconds of per-second arrival counts kept (the longest window
            any controller sees); older seconds are forgotten.
        max_timeouts: Consecutive batch timeouts that fail a worker.
        bin_seconds: Seconds of sub-second arrival counts kept (at least
            :data:`BIN_SECONDS_KEPT`; the runtime keeps a few epochs').

    """

    def __init__(
        self,
        pipeline: Pipeline,
        early_drop: bool = True,
        branching_window: int = 50,
        grace_s: float = 2.0,
        seed: int = 0,
        on_worker_lost: Callable[[WorkerState, str], None] | None = None,
        inline_bytes: int = 64 * 1024,
        accelerator: str | None = None,
        history_s: int = 600,
        max_timeouts: int = 2,
        bin_seconds: float = 0.0,
    ) -> None:
        self.pipeline = pipeline
        self.accelerator = accelerator or pipeline.accelerators[0]
        self.demand: float | None = None  # demand estimate the table is built for
        self.inline_bytes = inline_bytes
        self.slo_s = pipeline.slo_ms / 1000.0
        self.early_drop = early_drop
        self.grace_s = grace_s
        self.rng = np.random.default_rng(seed)
        self.random = self.rng.random
        self.estimator = BranchingEstimator(pipeline, branching_window)
        self.on_worker_lost = on_worker_lost
        #: Called after every table rebuild (the runtime publishes it to its ingress replicas).
        self.on_rebuild: Callable[[], None] | None = None
        self.plan: Plan | None = None
        self.table: RoutingTable | None = None
        self.groups: list[GroupState] = []  # the serving view's: the plan's, then interim
        self.plan_groups: list[GroupState] = []
        self.interim: dict[tuple[str, str], GroupState] = {}
        self.draining: list[GroupState] = []
        self.epoch = 0
        self.workers: list[WorkerState] = []
        self.frames = Counters()
        self.subs = Counters()
        self.leaf_on_time = 0
        self.leaf_acc_sum = 0.0
        #: The counters at the last :meth:`recent_window`: frames finished, frames
        #: violating, on-time leaf sub-requests, their accuracy summed.
        self._window_mark: tuple[int, int, int, float] = (0, 0, 0, 0.0)
        self.frames_in_flight = 0
        self.subs_in_flight = 0
        self.next_id = 0
        self.closed = False
        self.t0 = time.monotonic()
        self.max_timeouts = max(1, max_timeouts)
        #: Batches that raised (not a dead actor): one log line, then a count a minute.
        self.batch_failures = RepeatedFailure(log, "a batch")
        #: Arrivals per second: a ring of the last ``history_s`` seconds (bounded, so a
        #: tick costs the same after a month as after a minute).
        self.per_second = CountRing(max(1, history_s) + 1)
        #: Arrivals per bin of ``ARRIVAL_BIN_S`` over the last seconds (the controller's
        #: ``arrival_bins``; also what an ingress replica reports).
        self.bin_seconds = max(float(BIN_SECONDS_KEPT), float(bin_seconds))
        self.arrival_bins = CountRing(int(math.ceil(self.bin_seconds / ARRIVAL_BIN_S)))
        #: Frames finished per second: (frames, accuracy summed over on-time ones, on time).
        self.window = Window(60, 3)
        #: Latency histograms (seconds): end to end, per stage, queue wait, batch.
        self.hist: dict[str, Any] = {
            "frame": Histogram(),
            "stage": Histograms(),
            "queue": Histograms(),
            "batch": Histograms(),
        }
        self.latencies_ms: deque[float] = deque(maxlen=20000)
        self.batches = 0
        #: Per variant: batches dispatched by size (the whole run).
        self.batch_tally: dict[str, dict[int, int]] = {}
        #: Sub-requests dropped, per task that dropped them.
        self.dropped_by_task: dict[str, int] = {}
        self.dispatch_overhead_ms: deque[float] = deque(maxlen=20000)
        self.admit_ms: deque[float] = deque(maxlen=20000)
        self.complete_ms: deque[tuple[float, int]] = deque(maxlen=20000)
        #: Per batch dispatched by an idle worker that routing woke: (dispatch time on
        #: ``time.perf_counter``, ms from the wake to the dispatch): the event loop's
        #: latency; the simulator starts such a batch the moment the request arrives, and
        #: the hold does not count this wait.
        self.wake_ms: deque[tuple[float, float]] = deque(maxlen=20000)
        #: (variant, batch size, worker-side ms, round trip ms, profiled ms) per batch.
        self.service_obs: deque[tuple[str, int, float, float, float]] = deque(maxlen=20000)
        #: When a list: (dispatch time on ``time.perf_counter``, hold s) per batch, kept
        #: whole: the time the batch held its worker beyond its profiled latency (the
        #: worker's own time over the profile, the hop there and back, then routing its
        #: results on, before the worker's next batch can start); ``lokirl simvslive``
        #: replays them in the simulator, which charges the profile. Off by default.
        self.hop_log: list[tuple[float, float]] | None = None
        #: When a list: each frame's arrival on this plane's clock (s), as received;
        #: ``lokirl simvslive`` replays them in the simulator. Off by default.
        self.arrival_log: list[float] | None = None
        #: When a list: the moment (this plane's clock, s) each violated frame (late or
        #: dropped) was finalised, as the simulator's ``frame_violations`` series counts.
        self.violation_log: list[float] | None = None

    # ------------------------------------------------------------------ admission
    def now(self) -> float:
        """Seconds since the data plane started (or its clock was restarted)."""
        return time.monotonic() - self.t0

    def restart_clock(self) -> None:
        """Make now time 0 (before any frame arrived: the runtime does it once serving starts)."""
        if self.frames.arrived:
            raise RuntimeError("restart_clock after frames arrived")
        self.t0 = time.monotonic()
        self.per_second.clear()
        self.arrival_bins.clear()

    def new_frame(self, data: Any) -> Frame:
        """Admit a frame (an array or an ObjectRef to one): count it, route its root requests.

        The caller awaits ``frame.future``.
        """
        now = self.now()
        self.per_second.add(int(now), 1)
        self.arrival_bins.add(arrival_bin(now), 1)
        if self.arrival_log is not None:
            self.arrival_log.append(now)
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

    def add_arrivals(self, sec: int, n: int) -> None:
        """Count ``n`` more arrivals in second ``sec`` (another ingress replica's, reported late).

        Seconds older than the history kept are ignored; a second ahead of this
        plane's clock extends the history to it.
        """
        self.per_second.add(sec, n)

    @property
    def arrivals_per_s(self) -> deque[int]:
        """The kept seconds' arrival counts, oldest first (the newest is the latest second)."""
        return self.per_second.counts

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
        req.t_enq = self.now()
        g.queue.append(req)
        self._wake_idle(g)

    @staticmethod
    def _wake_idle(g: GroupState) -> None:
        """Wake the first idle worker of ``g`` that can take a batch (it may already be woken)."""
        for w in g.workers:
            if w.busy or not w.mine or w.status == "dead":
                continue
            if g is w.group and w.status != "ready":
                continue  # loads its plan variant: it takes batches once ready
            if not w.wake.is_set():
                w.woken_at = time.perf_counter()
            w.wake.set()
            break

    # ------------------------------------------------------------------ outcomes
    def _drop(self, req: Req, reason: str) -> None:
        d = self.subs.dropped
        d[reason] = d.get(reason, 0) + 1
        dt = self.dropped_by_task
        dt[req.task] = dt.get(req.task, 0) + 1
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
        now = self.now()
        latency_ms = (now - frame.arrival) * 1000.0
        accuracy = 0.0
        if frame.status != _OK and self.violation_log is not None:
            self.violation_log.append(now)
        if frame.status == _OK:
            self.frames.on_time += 1
            accuracy = 100.0 * frame.acc_sum / frame.acc_n if frame.acc_n else 0.0
            self.frames.accuracy_sum += accuracy
            self.latencies_ms.append(latency_ms)
            self.hist["frame"].observe(latency_ms / 1000.0)
            self.window.add(now, 1.0, accuracy, 1.0)
        elif frame.status == _LATE:
            self.frames.late += 1
            self.latencies_ms.append(latency_ms)
            self.hist["frame"].observe(latency_ms / 1000.0)
            self.window.add(now, 1.0, 0.0, 0.0)
        else:
            self.window.add(now, 1.0, 0.0, 0.0)
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
        stage = self.hist["stage"]
        for i, req in enumerate(batch):
            frame = req.frame
            stage.observe(g.task, now - req.t_enq)
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
            g = w.serving
            # A worker serves its plan group once ready (under ``free`` it is counted
            # at once, and requests wait for the load), an old or drained group now.
            if g is None or not g.queue or (g is w.group and w.status != "ready") or not w.mine:
                if g is not None and not g.queue and w.drain is g:
                    self._drained(w, g)
                w.wake.clear()
                w.woken_at = None
                await w.wake.wait()
                continue
            t_start = time.perf_counter()
            if w.woken_at is not None:
                self.wake_ms.append((t_start, (t_start - w.woken_at) * 1000.0))
                w.woken_at = None
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
            qwait = self.hist["queue"]
            for r in batch:
                qwait.observe(g.task, now - r.t_enq)
            timeout = max(r.frame.deadline for r in batch) - now + self.grace_s
            w.busy = True
            w.batch_variant = g.variant
            w.inflight = batch
            if q:
                # What it left queued goes to the next idle worker now, as in the
                # simulator (enough idle workers woken to cover the queue), rather
                # than waiting for the next arrival or completion to wake one.
                self._wake_idle(g)
            tally = self.batch_tally.get(g.variant)
            if tally is None:
                tally = self.batch_tally[g.variant] = {}
            tally[len(batch)] = tally.get(len(batch), 0) + 1
            try:
                inline = self.inline_bytes
                ref = w.actor.infer.remote([r.frame.payload(inline) for r in batch], g.variant)
                w.inflight_ref = ref
                self.dispatch_overhead_ms.append(
                    (time.perf_counter() - t_start) * 1000.0 / len(batch)
                )
                res = await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)
            except asyncio.CancelledError:
                # Failed by the runtime (its batch was dropped then) or shut down.
                for r in self._take_inflight(w):
                    self._drop(r, "shutdown")
                raise
            except TimeoutError:
                self._cancel_call(w)
                for r in self._take_inflight(w):
                    self._drop(r, "timeout")
                w.timeouts += 1
                log.warning(
                    "worker %d: batch of %d timed out (%d in a row)", w.wid, len(batch), w.timeouts
                )
                if w.timeouts >= self.max_timeouts:
                    self.fail_worker(w, f"hung: {w.timeouts} batch timeouts in a row", kind="hung")
                    return
                continue
            except Exception as exc:  # noqa: BLE001 - every failure ends the batch's requests
                if _is_actor_death(exc):
                    self.fail_worker(w, f"died: {type(exc).__name__}", kind="died")
                    return
                self.batch_failures.failed(RuntimeError(f"worker {w.wid}: {one_line(exc)}"))
                for r in self._take_inflight(w):
                    self._drop(r, "worker_error")
                continue
            finally:
                w.busy = False
                w.batch_variant = None
            batch = self._take_inflight(w)
            if not batch:  # failed meanwhile: its requests were dropped
                return
            w.timeouts = 0
            w.last_ok = time.monotonic()
            self.batches += 1
            t_done = time.perf_counter()
            self.hist["batch"].observe(g.variant, (t_done - t_start))
            prof_ms = g.service_ms(len(batch))
            self.service_obs.append(
                (
                    g.variant,
                    len(batch),
                    float(res.get("service_ms", math.nan)),
                    (t_done - t_start) * 1000.0,
                    prof_ms,
                )
            )
            self._complete(g, batch, res)
            t_free = time.perf_counter()
            self.complete_ms.append(((t_free - t_done) * 1000.0, len(batch)))
            if self.hop_log is not None:
                # The worker is free for its next batch only once its results are routed
                # on: what held it beyond the profiled latency the simulator charges is its
                # own time over the profile, the hop, and this completion.
                self.hop_log.append((t_start, t_free - t_start - prof_ms / 1000.0))

    @staticmethod
    def _take_inflight(w: WorkerState) -> list[Req]:
        batch = w.inflight or []
        w.inflight = None
        w.inflight_ref = None
        return batch

    @staticmethod
    def _cancel_call(w: WorkerState) -> None:
        """Ask Ray to cancel the worker's batch call (best effort: a hung actor never runs it)."""
        ref = w.inflight_ref
        if ref is None:
            return
        try:
            import ray

            ray.cancel(ref)
        except Exception:  # noqa: BLE001 - already done, or the actor is gone
            pass

    def fail_worker(self, w: WorkerState, reason: str, kind: str = "hung") -> None:
        """Take a failed worker (dead or hung) out of service at once.

        Its in-flight batch is cancelled and its requests re-routed to the workers
        left when their deadline allows (else, or when no group can take them,
        dropped: ``worker_failed``), its queue re-routed or dropped (``no_worker``),
        its batch loop stopped, and
        ``on_worker_lost(w, kind)`` tells the runtime (which kills and replaces the
        actor and re-plans).

        Args:
            w: The worker.
            reason: What was seen (logged, and kept in ``w.failure``).
            kind: ``"died"`` or ``"hung"``.

        """
        if w.status == "dead":
            return
        log.warning("worker %d failed (%s): taking it out of service", w.wid, reason)
        w.failure = reason
        w.failed_at = time.monotonic()
        self._cancel_call(w)
        batch = self._take_inflight(w)
        task = w.loop_task
        try:
            current = asyncio.current_task()
        except RuntimeError:
            current = None
        if task is not None and task is not current and not task.done():
            task.cancel()
        self.mark_dead(w, kind)  # out of every group first: nothing is routed back to it
        now = self.now()
        for r in batch:
            if now < r.frame.deadline and not self.closed:
                r.parent = None
                self._route(r, "worker_failed")
            else:
                self._drop(r, "worker_failed")

    def mark_dead(self, w: WorkerState, kind: str = "died") -> None:
        """Take a dead worker out of service; its requests are re-routed or dropped."""
        if w.status == "dead":
            return
        if w.failure is None:
            w.failure = kind
            w.failed_at = time.monotonic()
        w.status = "dead"
        w.wake.set()
        w.group = None
        w.old = None
        w.drain = None
        if self.plan is not None:
            self.rebuild()
        if self.on_worker_lost is not None:
            self.on_worker_lost(w, kind)

    # ------------------------------------------------------------------ plans
    def install(
        self, plan: Plan, swap: SwapMode = "overlap", demand: float | None = None
    ) -> list[WorkerState]:
        """Make ``plan`` the running plan; returns the workers that must load a new variant.

        Workers are mapped onto the plan's replicas as the simulator maps them
        (:func:`~lokirl.core.handover.assign_workers`): workers keeping their variant
        keep serving (a batch-size change is free); other needed workers are taken
        from the rest, those the running plan does not use first, and swap as
        :func:`~lokirl.core.reconfig.plan_swap` says (``w.swap``; the caller loads
        and then calls :meth:`worker_ready`). Queued requests move as
        :func:`~lokirl.core.handover.old_queue_moves` says: to the new plan's group
        of their variant, stay with the workers that still serve their variant
        (``overlap``, or draining), or are re-routed through the new table; batches
        in flight complete and route their sub-requests through the new table.

        Args:
            plan: The plan.
            swap: The :data:`~lokirl.core.reconfig.SwapMode`.
            demand: Demand estimate the routing table is built for (``None``: the
                plan's).

        Raises:
            ValueError: a plan group is on another accelerator type than the workers.

        """
        other = sorted({g.accelerator for g in plan.groups} - {self.accelerator})
        if other:
            raise ValueError(
                f"the plan has groups on {', '.join(other)}; this data plane's workers are "
                f"{self.accelerator}: solve the plan for a cluster of {self.accelerator} workers"
            )
        self.epoch += 1
        groups = [
            GroupState(i, self.epoch, g, self.pipeline, 0.0) for i, g in enumerate(plan.groups)
        ]
        alive = [w for w in self.workers if w.status != "dead"]
        holding = [
            WorkerHolding(self.accelerator, w.variant, w.group is not None, w.status == "loading")
            for w in alive
        ]
        free: list[WorkerState] = []
        to_load: list[WorkerState] = []
        for w, gi in zip(alive, assign_workers(plan, holding), strict=True):
            if gi is None:
                free.append(w)
                continue
            gs = groups[gi]
            w.group = gs
            w.drain = None
            if w.variant == gs.variant:
                continue  # keeps its variant (or keeps loading it)
            held = w.held if w.status != "loading" or w.old is not None else None
            if held == gs.variant:  # it still serves that variant: no load
                w.variant = held
                w.status = "ready"
                w.old = None
                w.swap = None
                w.token += 1
                continue
            sw = plan_swap(self.pipeline, self.accelerator, held, gs.variant, swap)
            serving = w.serving
            w.old = serving.group if sw.old_serves and serving is not None else None
            if not sw.old_serves:
                w.held = None  # the actor frees its variant before loading
            w.variant = gs.variant
            w.status = "loading"
            w.swap = sw
            w.token += 1
            to_load.append(w)
        drains = drains_on_removal(swap)
        drainers: set[int] = set()
        for w in free:  # left over: keep the variant loaded, take no new traffic
            w.group = None
            w.old = None
            w.drain = None
            if w.status == "loading":  # the load is no longer wanted
                w.token += 1
                w.variant = w.held
                w.status = "ready" if w.held is not None else "idle"
                w.swap = None
            if drains and w.serving is not None and w.serving.queue:
                w.drain = w.serving
                drainers.add(id(w.serving))
        # Where the queues of the old groups go.
        old_groups = self.groups + self.draining
        moves = old_queue_moves(
            [(og.variant, self.accelerator) for og in old_groups],
            [(gs.variant, self.accelerator) for gs in groups],
            {(w.old.variant, self.accelerator) for w in alive if w.old is not None},
            [id(og) in drainers for og in old_groups],
        )
        interim, self.draining, orphans = hand_over_queues(old_groups, groups, moves)
        self.interim = {(og.variant, self.accelerator): og for og in interim}
        # A worker left out keeps draining its old group if that group stays (drained,
        # or interim: overlap workers keep serving its variant), as in the simulator.
        live = {id(g) for g in self.draining} | {id(g) for g in self.interim.values()}
        for w in alive:
            if w.old is not None and (w.old.variant, self.accelerator) in self.interim:
                w.old = self.interim[(w.old.variant, self.accelerator)].group
            if w.drain is not None and id(w.drain) not in live:
                w.drain = None  # its queue moved to a group of the new plan
        self.plan_groups = groups
        self.plan = plan
        self.rebuild(demand if demand is not None else plan.demand)
        for og in orphans:
            self._reroute(og)
        for w in alive:
            w.wake.set()
        return to_load

    def worker_ready(self, w: WorkerState) -> None:
        """``w`` finished loading its variant: it serves its plan group from now on."""
        if w.status != "loading":
            return
        w.status = "ready"
        w.held = w.variant
        w.old = None
        w.swap = None
        self.rebuild()
        w.wake.set()

    def load_failed(self, w: WorkerState) -> None:
        """``w`` could not load its variant: it leaves the plan keeping what it holds."""
        if w.status != "loading":
            return
        w.variant = w.held if w.old is not None else None
        w.held = w.variant
        w.status = "ready" if w.held is not None else "idle"
        w.group = None
        w.old = None
        w.swap = None
        self.rebuild()

    def rebuild(self, demand: float | None = None) -> RoutingTable:
        """Rebuild the routing table from the serving view of the running plan.

        Called when a plan is installed, when a worker becomes ready or dies, and
        every controller tick (new demand and branching estimates). Only workers
        that can serve now count (:func:`~lokirl.core.reconfig.serving_view`);
        requests queued at an old variant nobody serves any more are re-routed.

        Args:
            demand: New demand estimate (``None``: keep the last one).

        """
        plan = self.plan
        assert plan is not None
        if demand is not None:
            self.demand = demand
        index = {id(g): i for i, g in enumerate(self.plan_groups)}
        states = []
        for w in self.workers:
            gid = index.get(id(w.group)) if w.group is not None else None
            ready = w.status == "ready" or (
                w.status == "loading" and w.swap is not None and w.swap.ready_s <= 0
            )
            old = w.old if w.status == "loading" else None
            states.append(WorkerServing(self.accelerator, gid, ready, old))
        view = serving_view(plan, states)
        groups = list(self.plan_groups)
        for ig in view.interim:
            g = self.interim[(ig.variant, ig.accelerator)]
            g.gid = len(groups)
            g.epoch = self.epoch
            groups.append(g)
        in_view = {(ig.variant, ig.accelerator) for ig in view.interim}
        gone = [g for k, g in self.interim.items() if k not in in_view]
        for g in gone:
            del self.interim[(g.variant, self.accelerator)]
            # A batch it still has in flight spawns through the (child, None) rows, not
            # through the row of whichever group takes its index next (as in the simulator).
            g.epoch = -1
        # No demand estimate yet (or nothing arrived): the plan's demand, as in the simulator.
        demand = self.demand if self.demand is not None and self.demand > 0 else plan.demand
        table = serving_table(view, self.pipeline, demand, self.estimator.snapshot())
        for g in groups:
            g.down = table.downstream_ms[g.gid]
            g.workers = []
        for g in self.draining:
            g.workers = []
        live = {id(g) for g in groups} | {id(g) for g in self.draining}
        for w, gid in zip(self.workers, view.serving, strict=True):
            if w.status == "dead":
                target = None
            elif gid is not None:
                target = groups[gid]
            else:
                target = w.drain if w.drain is not None and id(w.drain) in live else None
                w.drain = target
            if target is not w.serving:
                w.wake.set()
            w.serving = target
            if target is not None:
                target.workers.append(w)
        self.groups = groups
        self.table = table
        for g in gone + self._take_stranded():
            self._reroute(g)
        if self.on_rebuild is not None:
            self.on_rebuild()
        return table

    def _take_stranded(self) -> list[GroupState]:
        """Groups whose queues nobody serves now, the drains without drainer dropped.

        A dead worker's group or a drain without drainer; a plan group whose workers
        are loading keeps its queue for them (as in the simulator).
        """
        stranded = [g for g in self.draining if not g.workers]
        stranded += [g for g in self.groups if g.queue and not self._will_serve(g)]
        self.draining = [g for g in self.draining if g.workers]
        return stranded

    def _will_serve(self, g: GroupState) -> bool:
        """Whether a live worker serves ``g`` now, or loads its variant to serve it."""
        return g.live() or any(w.group is g and w.status == "loading" for w in self.workers)

    def _reroute(self, g: GroupState) -> None:
        """Route the queue of a group nobody serves any more through the current table."""
        while g.queue:
            req = g.queue.popleft()
            req.parent = None
            self._route(req, "no_worker")

    def _drained(self, w: WorkerState, g: GroupState) -> None:
        """A worker that left the plan emptied the queue it drained: it takes no more."""
        w.drain = None
        w.serving = None
        if w in g.workers:
            g.workers.remove(w)
        if g in self.draining and not g.workers:
            self.draining.remove(g)

    def reap(self) -> int:
        """Drop queued requests stuck well past their deadline; returns how many."""
        now = self.now()
        n = 0
        for g in self.groups + self.draining:
            q = g.queue
            if not q:
                continue
            if not self._will_serve(g):
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
        for g in self.groups + self.draining:
            while g.queue:
                self._drop(g.queue.popleft(), "shutdown")
        for w in self.workers:
            w.wake.set()

    # ------------------------------------------------------------------ views
    def queue_lengths(self) -> dict[str, int]:
        """Requests waiting per task."""
        out = {t.name: 0 for t in self.pipeline.tasks}
        for g in self.groups + self.draining:
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

    def recent_window(self) -> tuple[float, float]:
        """Frame-violation ratio and system accuracy since the last call.

        What a controller sees as recent, as in the simulator (there: over the last
        epoch's seconds): frames finished late or dropped over frames finished, and
        the mean path accuracy of the on-time leaf sub-requests finished; each 0 when
        none finished.

        Returns:
            ``(violation_ratio, accuracy)``.

        """
        done = self.frames.on_time + self.frames.late + sum(self.frames.dropped.values())
        viol = done - self.frames.on_time
        d0, v0, n0, a0 = self._window_mark
        self._window_mark = (done, viol, self.leaf_on_time, self.leaf_acc_sum)
        dn, ln = done - d0, self.leaf_on_time - n0
        return (
            (viol - v0) / dn if dn else 0.0,
            (self.leaf_acc_sum - a0) / ln if ln else 0.0,
        )

    def recent_bins(self, now_s: float, span_s: float) -> tuple[float, ...]:
        """Arrivals per ``ARRIVAL_BIN_S`` bin over the ``span_s`` seconds ending at ``now_s``.

        Oldest first; the span is cut to the seconds kept (``bin_seconds``, less one).
        """
        span_s = min(span_s, self.bin_seconds - 1.0)
        return tuple(float(self.arrival_bins.get(b)) for b in arrival_bin_range(now_s, span_s))

    def history(self, seconds: int) -> tuple[float, ...]:
        """Arrivals per complete second, oldest first, at most ``seconds`` of them."""
        done = int(self.now())
        ring = self.per_second
        return tuple(float(ring.get(sec)) for sec in range(max(0, done - seconds), done))


#: Seconds of sub-second arrival counts a data plane keeps.
BIN_SECONDS_KEPT = 12


class CountRing:
    """Counts per integer slot over the last ``size`` slots (older slots are forgotten).

    Args:
        size: Slots kept.

    """

    def __init__(self, size: int) -> None:
        self.counts: deque[int] = deque(maxlen=max(1, size))
        self.last = -1  # the slot of the newest element

    def clear(self) -> None:
        """Forget every count."""
        self.counts.clear()
        self.last = -1

    def add(self, slot: int, n: int) -> None:
        """Count ``n`` in ``slot`` (ignored when older than the slots kept)."""
        c = self.counts
        if slot > self.last:
            c.extend([0] * min(slot - self.last, c.maxlen or 1))
            self.last = slot
        back = self.last - slot
        if 0 <= back < len(c):
            c[len(c) - 1 - back] += n

    def get(self, slot: int) -> int:
        """The count of ``slot`` (0 when not kept)."""
        back = self.last - slot
        return self.counts[len(self.counts) - 1 - back] if 0 <= back < len(self.counts) else 0

    def recent(self, slots: int) -> dict[int, int]:
        """The non-zero counts of the newest ``slots`` slots."""
        first = self.last - len(self.counts) + 1
        lo = max(first, self.last - slots + 1)
        return {
            s: self.counts[s - first] for s in range(lo, self.last + 1) if self.counts[s - first]
        }


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
