"""More ingress replicas in front of one controller.

The process that runs :class:`~lokirl.runtime.runtime.Runtime` is the controller and
ingress replica 0: it owns the worker actors (starts, health-checks, replaces them),
runs the controller loop, installs plans and keeps the global accounting, and serves
HTTP as before. ``RuntimeConfig.ingress_replicas = N`` adds ``N - 1``
:class:`IngressReplica` Ray actors, each serving the same HTTP API on its own port
(``replica_port + i - 1``) with its own :class:`ReplicaPlane`: admission, the group
queues, batching and stage-to-stage routing as in
:class:`~lokirl.runtime.dataplane.DataPlane`, submitting batches to the worker actors
directly.

What is shared, and how:

* **The routing table and the serving view** go from the controller to every
  replica: each time the controller's plane rebuilds its table (a plan installed,
  a load completed, a worker failed, every tick) it publishes a
  :func:`routing_snapshot` (the table, the groups in table order and the groups still
  drained, each named for as long as it lives, and per worker its actor, status, the
  group it takes batches from and its plan group), put in the object store once and
  applied by each replica in order. A replica's own queues follow the controller's
  hand-over (:mod:`lokirl.core.handover`): a group the controller keeps (interim,
  drained) keeps its queue, the queue of one it no longer has goes where the
  controller's went (the new plan's group of its variant, else the interim one) or is
  re-routed through the new table, and a queue waits for workers loading its group.
* **Counts** go back: every ``replica_report_s`` (and right before each controller
  tick) the controller pulls each replica's :meth:`IngressReplica.report` (totals:
  frames and sub-requests arrived / on time / late / dropped by reason / in flight,
  arrivals per second, the accuracy window, histograms; and the samples, branching
  observations and worker failures seen since the last report) and adds the
  differences to its own plane. So the demand history the controller sees, the
  branching estimate, ``/v1/status`` and ``/metrics`` on the controller's port cover
  every replica, and ``arrived = on time + late + dropped + in flight`` holds over all
  of them (each replica's report is one consistent snapshot).
* **Worker health** stays with the controller: a replica that sees a worker's actor
  die (or time out twice in a row) takes it out of its own view at once and reports
  it; the controller fails, replaces and re-plans it as for its own batches.

* **Workers** are split (:func:`owners`): a group served by at least one worker per
  ingress gives each worker to one ingress, so each batches its share of the
  requests on its share of the workers as a single ingress would. In a smaller
  group every ingress may send each worker a batch: its actor accepts
  ``ingress_replicas`` batch calls (an emulated one runs them one after the other,
  like a device; a real one in its actor's threads at once, sharing its device),
  and an ingress's early-drop rule does not see the other ingresses' batches
  there: the one place where the semantics differ from
  a single ingress (frames can finish late there instead of being dropped early).
  A worker the new plan leaves out drains its old group's queue at every ingress.

Why one port per replica (``P``, ``P+1``, ...) and not one port shared with
``SO_REUSEPORT``: with ``SO_REUSEPORT`` Linux spreads *connections* by a hash of
their addresses, so a client holding a few keep-alive connections may load one
replica only, and ``/v1/status`` and ``/metrics`` (the controller's, global) would
land on a random replica. Separate ports make the split explicit (a load balancer,
or ``lokirl loadgen --url`` with several URLs, spreads requests over them); a
replica's ``/metrics`` answers 404 naming the controller's port, so nothing is
scraped twice.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from typing import Any

from lokirl.core.controller import ARRIVAL_BIN_S
from lokirl.core.pipeline import Pipeline
from lokirl.runtime.dataplane import DataPlane, GroupState, WorkerState, percentile
from lokirl.runtime.metrics import Histogram, one_line

log = logging.getLogger(__name__)

#: Seconds of per-second arrivals (and accuracy-window seconds) a report carries.
REPORT_SECONDS = 10
#: Samples (latencies, overheads) a replica keeps between two reports.
MAX_SAMPLES = 20000


def owners(plane: DataPlane, ingresses: int) -> dict[int, int | None]:
    """Which ingress sends batches to each worker (``None``: every ingress).

    A group served by at least one worker per ingress gives each of its workers to
    one ingress (in worker order, round robin): each ingress then batches its share
    of the group's requests on its share of the workers, as one ingress would, and no
    batch waits at an actor behind another ingress's. A smaller group is shared: each
    ingress may send each of its workers a batch, and the actor runs them one after
    the other (an ingress's early-drop rule does not see the others' batches there).
    """
    out: dict[int, int | None] = {w.wid: None for w in plane.workers}
    if ingresses < 2:
        return out
    for g in plane.groups:
        ws = sorted((w for w in g.workers if w.status != "dead"), key=lambda w: w.wid)
        if len(ws) >= ingresses:
            for j, w in enumerate(ws):
                out[w.wid] = j % ingresses
    return out


def routing_snapshot(plane: DataPlane, version: int, ingresses: int = 1) -> dict[str, Any]:
    """What a replica needs of the controller's plane to route and dispatch as it does.

    Groups are named by their ``uid`` (a group that stays across plans, as an interim
    or a drained one, keeps it), so a replica keeps its own queue of a group for as
    long as the controller keeps the group, and moves the queue of a group the
    controller no longer has as the controller moved its own
    (:func:`~lokirl.core.handover.old_queue_moves`). Per worker: the group it takes
    batches from now, the plan group it serves or loads for, the old group it drains
    after leaving the plan, and its status, so a
    replica's batch loop and its "will this group be served" test are the
    controller's. Also marks which of the controller's own workers it sends batches
    to (``w.mine``).

    Args:
        plane: The controller's data plane (after a rebuild).
        version: Increasing number; a replica ignores a snapshot older than its own.
        ingresses: Ingresses in all (the controller's and the replicas).

    """
    owner = owners(plane, ingresses)
    workers = []
    for w in plane.workers:
        o = owner.get(w.wid)
        mine = o is None or o == 0
        if mine != w.mine:
            w.mine = mine
            w.wake.set()
        serving = w.serving.uid if w.serving is not None else None
        group = w.group.uid if w.group is not None else None
        drain = w.drain.uid if w.drain is not None else None
        workers.append((w.wid, w.actor, w.restarts, w.status, serving, group, drain, o))
    return {
        "version": version,
        "epoch": plane.epoch,
        "demand": plane.demand,
        "table": plane.table,
        "groups": [_group_row(g) for g in plane.groups],
        "draining": [_group_row(g) for g in plane.draining],
        "workers": workers,
    }


def _group_row(g: GroupState) -> tuple[int, int, int, Any, float]:
    return (g.uid, g.gid, g.epoch, g.group, g.down)


class _Observations:
    """Stands in for the branching estimator on a replica: records what it observes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def observe(self, variant: str, child: str, n: int) -> None:
        if len(self.seen) < 50000:
            self.seen.append((variant, child, n))


class ReplicaPlane(DataPlane):
    """A replica's data plane: the table and who serves what come from the controller.

    Admission, queues, batching, completion and outcomes are
    :class:`~lokirl.runtime.dataplane.DataPlane`'s; :meth:`apply` replaces
    :meth:`~lokirl.runtime.dataplane.DataPlane.install` and ``rebuild``.
    """

    def __init__(self, pipeline: Pipeline, rid: int = 1, **kwargs: Any) -> None:
        super().__init__(pipeline, on_worker_lost=self._worker_lost, **kwargs)
        self.rid = rid
        self.version = -1
        self.estimator = _Observations()  # type: ignore[assignment]
        #: Worker failures seen here, for the controller: (wid, restarts, kind, reason).
        self.lost: list[tuple[int, int, str, str]] = []
        self._told = False  # failing a worker the controller reported dead: not reported back

    def _worker_lost(self, w: WorkerState, kind: str) -> None:
        if not self._told:
            self.lost.append((w.wid, w.restarts, kind, w.failure or kind))

    def rebuild(self, demand: float | None = None) -> Any:  # noqa: D102 - the controller's job
        return self.table

    def mark_dead(self, w: WorkerState, kind: str = "died") -> None:
        """Take a failed worker out of this replica's view; re-route what only it served."""
        super().mark_dead(w, kind)
        for g in self.groups + self.draining:
            if w in g.workers:
                g.workers.remove(w)
                if g.queue and not self._will_serve(g):
                    self._reroute(g)
        w.serving = None
        w.drain = None

    def apply(self, snap: dict[str, Any]) -> list[WorkerState]:
        """Install a :func:`routing_snapshot`; returns workers whose batch loop must start.

        This replica's queues follow the controller's hand-over: a group the
        controller keeps (by ``uid``) keeps its queue here; the queue of one it no
        longer has goes to the snapshot's group of the same variant (the new plan's,
        else the interim one), as the controller's moved, or is re-routed through
        the new table; a group nobody serves or loads for is re-routed.
        """
        if snap["version"] <= self.version or self.closed:
            return []
        self.version = snap["version"]
        self.epoch = snap["epoch"]
        self.demand = snap["demand"]
        old = {g.uid: g for g in self.groups + self.draining}

        def take(row: tuple[int, int, int, Any, float]) -> GroupState:
            uid, gid, epoch, wg, down = row
            g = old.pop(uid, None)
            if g is None:
                g = GroupState(gid, epoch, wg, self.pipeline, down)
                g.uid = uid
            else:
                g.gid, g.epoch, g.down = gid, epoch, down
            g.workers = []
            return g

        groups = [take(row) for row in snap["groups"]]
        draining = [take(row) for row in snap.get("draining", ())]
        by_uid = {g.uid: g for g in groups + draining}
        by_variant: dict[str, GroupState] = {}
        for g in groups:
            by_variant.setdefault(g.variant, g)
        orphans = []
        for og in old.values():  # groups the controller no longer has
            og.epoch = -1  # its batches in flight spawn through the (child, None) rows
            target = by_variant.get(og.variant)
            if target is not None:
                target.queue.extend(og.queue)
                og.queue.clear()
            elif og.queue:
                orphans.append(og)
        have = {w.wid: w for w in self.workers}
        workers, started = [], []
        failed: list[tuple[WorkerState, str]] = []  # failed once the new table is in place
        for wid, actor, restarts, status, serving, plan_group, drain, owner in snap["workers"]:
            w = have.get(wid)
            if w is not None and w.restarts != restarts:  # the controller replaced its actor
                if w.status != "dead":
                    failed.append((w, "replaced by the controller"))
                w = None
            if w is None:
                w = WorkerState(wid, actor)
                w.restarts = restarts
                started.append(w)
            workers.append(w)
            if w.status == "dead":
                continue
            if status == "dead":
                failed.append((w, "failed at the controller"))
                continue
            target = by_uid.get(serving) if serving is not None else None
            group = by_uid.get(plan_group) if plan_group is not None else None
            mine = owner is None or owner == self.rid
            if target is not w.serving or group is not w.group or status != w.status:
                w.wake.set()
            if mine != w.mine:
                w.wake.set()
            w.mine = mine
            w.serving = target
            w.group = group  # the loop waits on its plan group while that loads
            w.status = status
            w.drain = by_uid.get(drain) if drain is not None else None
            if target is not None:
                target.workers.append(w)
        self.workers = workers
        self.groups = groups
        self.plan_groups = groups
        self.draining = draining
        self.table = snap["table"]
        for w, why in failed:  # its batch in flight is re-routed through the new table
            self._fail_told(w, why)
        for og in orphans:
            self._reroute(og)
        for g in self._take_stranded():
            self._reroute(g)
        return started

    def _fail_told(self, w: WorkerState, why: str) -> None:
        self._told = True
        try:
            self.fail_worker(w, why, kind="died")
        finally:
            self._told = False

    def totals(self) -> dict[str, Any]:
        """One consistent snapshot of this replica's tallies (totals since it started)."""
        f, s = self.frames, self.subs
        now_sec = int(self.now())
        arrivals = self.per_second.recent(REPORT_SECONDS)
        window = {
            stamp: list(row)
            for stamp, row in zip(self.window.stamp, self.window.sums, strict=True)
            if stamp >= 0 and now_sec - stamp < REPORT_SECONDS
        }
        return {
            "frames": (f.arrived, f.on_time, f.late, dict(f.dropped), f.accuracy_sum),
            "subs": (s.arrived, s.on_time, s.late, dict(s.dropped), s.accuracy_sum),
            "in_flight": (self.frames_in_flight, self.subs_in_flight),
            "leaf": (self.leaf_on_time, self.leaf_acc_sum),
            "batches": self.batches,
            "arrivals": arrivals,
            "bins": self.arrival_bins.recent(int(round(REPORT_SECONDS / ARRIVAL_BIN_S))),
            "window": window,
            "hist": _hist_totals(self.hist),
        }


def _hist_totals(hist: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, h in hist.items():
        if hasattr(h, "by"):
            out[name] = {k: (list(x.counts), x.sum, x.count) for k, x in h.by.items()}
        else:
            out[name] = (list(h.counts), h.sum, h.count)
    return out


def _drain(d: deque) -> list:
    out = list(d)
    d.clear()
    return out


class IngressReplica:
    """One more HTTP ingress (a Ray actor): its own data plane, the controller's table.

    Args:
        rid: Replica number (1, 2, ...; 0 is the controller's own ingress).
        pipeline: The pipeline as served (dilated already).
        plane_options: Keyword arguments of :class:`ReplicaPlane` (early drop, grace,
            seed, inline bytes, accelerator, history, max timeouts).
        frame_timeout_s: A frame with no outcome this long after arrival is dropped
            (``timeout``), as :meth:`Runtime.submit <lokirl.runtime.runtime.Runtime.submit>`.
        http: ``host``, ``port`` (0: any free one), ``max_body_bytes``, ``max_pixels``,
            ``control_url`` (where the controller's ingress answers), ``auto_load``
            (the controller's load range for the cluster, reported in ``/v1/status``
            so that ``lokirl loadgen --rescale auto`` works against any ingress).

    """

    def __init__(
        self,
        rid: int,
        pipeline: Pipeline,
        plane_options: dict[str, Any],
        frame_timeout_s: float,
        http: dict[str, Any],
    ) -> None:
        self.rid = rid
        self.pipeline = pipeline
        self.plane = ReplicaPlane(pipeline, rid=rid, **plane_options)
        self.frame_timeout_s = frame_timeout_s
        self.http = dict(http)
        self.started = False
        self.port = 0
        self._server: Any = None
        self._tasks: list[asyncio.Task] = []
        self._seq = 0  # reports sent

    # ------------------------------------------------------------------ lifecycle
    async def start(self, t0_wall: float, snapshot: dict[str, Any]) -> int:
        """Align the clock with the controller's, install its table, serve HTTP; returns the port.

        Args:
            t0_wall: ``time.time()`` at the controller plane's time 0 (seconds of
                demand history must line up across replicas).
            snapshot: The controller's current :func:`routing_snapshot`.

        """
        import uvicorn

        from lokirl.runtime.app import create_app

        p = self.plane
        p.t0 = time.monotonic() - (time.time() - t0_wall)
        await self.apply(snapshot)
        host = self.http.get("host", "127.0.0.1")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(self.http.get("port", 0))))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise RuntimeError(
                f"ingress replica {self.rid} cannot listen on {host}:{self.http.get('port')}: "
                f"{exc.strerror or exc}"
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        app = create_app(
            self,
            int(self.http.get("max_body_bytes", 8 * 1024 * 1024)),
            max_pixels=int(self.http.get("max_pixels", 4096 * 4096)),
            control_url=self.http.get("control_url") or "the controller's ingress",
        )
        config = uvicorn.Config(app, log_level="warning", log_config=None, lifespan="on")
        self._server = uvicorn.Server(config)
        self._tasks.append(asyncio.create_task(self._server.serve(sockets=[sock])))
        self._tasks.append(asyncio.create_task(self._reap_loop()))
        deadline = time.monotonic() + 30.0
        while not self._server.started and time.monotonic() < deadline:
            if self._tasks[0].done():
                self._tasks[0].result()  # raises what stopped it
            await asyncio.sleep(0.01)
        self.started = True
        return self.port

    async def apply(self, snapshot: dict[str, Any]) -> int:
        """Install a routing snapshot (called by the controller, in order); returns its version."""
        for w in self.plane.apply(snapshot):
            w.loop_task = asyncio.get_running_loop().create_task(self.plane.worker_loop(w))
        return self.plane.version

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.plane.reap()
                self.plane.batch_failures.flush()
            except Exception as exc:  # noqa: BLE001 - the loop never dies
                log.error("replica %d: reaping failed: %s", self.rid, one_line(exc))

    async def stop(self, grace_s: float = 5.0) -> dict[str, Any]:
        """Stop serving: end every queued request (``shutdown``); returns the final report."""
        p = self.plane
        if self._server is not None:
            self._server.should_exit = True
        p.shutdown()
        loops = [w.loop_task for w in p.workers if w.loop_task is not None]
        if loops:
            _, pending = await asyncio.wait(loops, timeout=grace_s)
            for t in pending:
                t.cancel()
            await asyncio.sleep(0)
        for t in self._tasks[1:]:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks[:1], timeout=grace_s)
        self.started = False
        return await self.report()

    # ------------------------------------------------------------------ serving
    async def submit(self, frame: Any, timeout_s: float | None = None) -> dict[str, Any]:
        """Serve one frame; as :meth:`Runtime.submit <lokirl.runtime.runtime.Runtime.submit>`."""
        t0 = time.perf_counter()
        p = self.plane
        f = p.new_frame(frame)
        p.admit_ms.append((time.perf_counter() - t0) * 1000.0)
        timer = asyncio.get_running_loop().call_later(
            timeout_s or self.frame_timeout_s, p.abandon, f, "timeout"
        )
        try:
            return await asyncio.shield(f.future)
        finally:
            timer.cancel()

    def liveness(self) -> tuple[bool, str]:
        """``/healthz`` of a replica: alive once serving."""
        return (True, "ok") if self.started else (False, "starting")

    def readiness(self) -> tuple[bool, str]:
        """``/readyz`` of a replica: a table from the controller and a worker for every task."""
        if not self.started:
            return False, "starting"
        p = self.plane
        if p.table is None:
            return False, "no routing table from the controller yet"
        serving = {
            w.serving.task for w in p.workers if w.serving is not None and w.status == "ready"
        }
        idle = [t.name for t in self.pipeline.tasks if t.name not in serving]
        if idle:
            return False, f"no worker ready for task(s) {', '.join(idle)} (loading)"
        return True, "ok"

    def status(self) -> dict[str, Any]:
        """The replica's own view (the global status is the controller's ``/v1/status``)."""
        p = self.plane
        return {
            "pipeline": self.pipeline.name,
            "ingress_replica": self.rid,
            "global_status": self.http.get("control_url"),
            "auto_load": self.http.get("auto_load"),
            "table_version": p.version,
            "epoch": p.epoch,
            "frames": p.frame_tally().to_dict(),
            "subrequests": p.sub_tally().to_dict(),
            "workers": [w.to_dict() for w in p.workers],
            "accuracy": p.accuracy,
            "latency_ms": {
                "p50": percentile(list(p.latencies_ms), 50),
                "p99": percentile(list(p.latencies_ms), 99),
            },
        }

    # ------------------------------------------------------------------ reporting
    async def report(self) -> dict[str, Any]:
        """Totals, and what was seen since the last report (see the module docstring)."""
        p = self.plane
        out = p.totals()
        lost, p.lost = p.lost, []
        self._seq += 1
        out.update(
            seq=self._seq,
            version=p.version,
            queues=p.queue_lengths(),
            lost=lost,
            branching=p.estimator.seen,
            samples={
                "latencies_ms": _drain(p.latencies_ms),
                "admit_ms": _drain(p.admit_ms),
                "dispatch_overhead_ms": _drain(p.dispatch_overhead_ms),
                "complete_ms": _drain(p.complete_ms),
                "service_obs": _drain(p.service_obs),
            },
        )
        p.estimator.seen = []
        return out

    def pid(self) -> int:
        """The replica's process id (tests, CPU accounting)."""
        import os

        return os.getpid()


# ---------------------------------------------------------------------------- controller side
class ReplicaSet:
    """The controller's side of its ingress replicas: start, publish, collect, stop.

    Args:
        runtime: The :class:`~lokirl.runtime.runtime.Runtime` (the controller).
        count: Replicas to start besides the controller's own ingress.

    """

    def __init__(self, runtime: Any, count: int) -> None:
        self.rt = runtime
        self.count = count
        self.actors: list[Any] = []
        self.ports: list[int] = []
        self.version = 0
        self.last: list[dict[str, Any] | None] = []
        self.queues: list[dict[str, int]] = []
        self.alive: list[bool] = []
        self.reports = 0
        self.report_errors = 0
        self.applied: list[int] = []
        self._task: asyncio.Task | None = None
        self._collecting: asyncio.Future | None = None
        self._published: list[Any] = []
        self.stopped = False

    @property
    def plane(self) -> DataPlane:
        """The controller's data plane."""
        return self.rt.plane

    def snapshot(self) -> dict[str, Any]:
        """A fresh routing snapshot of the controller's plane."""
        self.version += 1
        return routing_snapshot(self.plane, self.version, self.count + 1)

    async def start(self) -> None:
        """Start the replica actors (after the first plan is installed) and the report loop.

        Raises:
            RuntimeError: a replica could not start (e.g. its port is in use).

        """
        import ray

        cfg = self.rt.config
        p = self.plane
        plane_options = {
            "early_drop": cfg.early_drop,
            "grace_s": cfg.grace_s,
            "inline_bytes": cfg.inline_bytes,
            "accelerator": self.rt.accelerator,
            "history_s": cfg.history_s,
            "max_timeouts": cfg.max_batch_timeouts,
        }
        timeout_s = p.slo_s + cfg.grace_s + cfg.epoch_s + 1.0
        actor_cls = ray.remote(IngressReplica).options(num_cpus=0, max_restarts=0)
        for i in range(1, self.count + 1):
            http = dict(cfg.replica_http)
            http.setdefault("host", cfg.replica_host)
            http["port"] = cfg.replica_port + i - 1 if cfg.replica_port else 0
            http["auto_load"] = self.rt.auto_load()  # computed at start: no solve here
            opts = {**plane_options, "seed": cfg.seed + 1000 * i}
            self.actors.append(actor_cls.remote(i, self.rt.pipeline, opts, timeout_s, http))
        t0_wall = time.time() - p.now()
        snap = ray.put(self.snapshot())
        refs = [a.start.remote(t0_wall, snap) for a in self.actors]
        self.ports = [
            int(x) for x in await asyncio.gather(*[asyncio.wrap_future(r.future()) for r in refs])
        ]
        self.last = [None] * self.count
        self.queues = [{} for _ in range(self.count)]
        self.alive = [True] * self.count
        self.applied = [self.version] * self.count
        p.on_rebuild = self.publish
        self._task = asyncio.get_running_loop().create_task(self._report_loop())

    def publish(self) -> None:
        """Send the controller's current table and serving view to every live replica."""
        import ray

        if not self.actors:
            return
        snap = ray.put(self.snapshot())
        refs = [a.apply.remote(snap) for a, ok in zip(self.actors, self.alive, strict=True) if ok]
        self._published = refs[-64:]  # kept only so a failed apply can be seen in a debugger

    async def _report_loop(self) -> None:
        every = self.rt.config.replica_report_s
        while True:
            await asyncio.sleep(every)
            try:
                await self.collect()
            except Exception as exc:  # noqa: BLE001 - the loop never dies
                log.error("collecting the ingress replicas' reports failed: %s", one_line(exc))

    async def collect(self, timeout_s: float = 5.0) -> None:
        """Pull every live replica's report and add it to the controller's plane."""
        if self.stopped:
            return
        if self._collecting is not None:  # one pull at a time; a second caller waits for it
            await asyncio.shield(self._collecting)
            return
        fut = asyncio.get_running_loop().create_future()
        self._collecting = fut
        try:
            idx = [i for i, ok in enumerate(self.alive) if ok]
            refs = [self.actors[i].report.remote() for i in idx]
            outs = await asyncio.gather(
                *[asyncio.wait_for(asyncio.wrap_future(r.future()), timeout_s) for r in refs],
                return_exceptions=True,
            )
            for i, rep in zip(idx, outs, strict=True):
                if isinstance(rep, BaseException):
                    self._failed_report(i, rep)
                else:
                    self.absorb(i, rep)
        finally:
            self._collecting = None
            fut.set_result(None)

    def _failed_report(self, i: int, exc: BaseException) -> None:
        from lokirl.runtime.dataplane import _is_actor_death

        self.report_errors += 1
        if _is_actor_death(exc):
            self._replica_gone(i, "died")
        else:
            log.warning("ingress replica %d did not report: %s", i + 1, one_line(exc) or "timeout")

    def _replica_gone(self, i: int, why: str) -> None:
        """Replica ``i`` will never answer again: its frames in flight are dropped, once."""
        if not self.alive[i]:
            return
        self.alive[i] = False
        log.error("ingress replica %d %s; its frames in flight are dropped", i + 1, why)
        last = self.last[i]
        if last is not None:
            p = self.plane
            fi, si = last["in_flight"]
            p.frames_in_flight -= fi
            p.subs_in_flight -= si
            p.frames.dropped["replica_failed"] = p.frames.dropped.get("replica_failed", 0) + fi
            p.subs.dropped["replica_failed"] = p.subs.dropped.get("replica_failed", 0) + si
            last["in_flight"] = (0, 0)

    def absorb(self, i: int, rep: dict[str, Any]) -> None:
        """Add what replica ``i`` counted since its last report to the controller's plane.

        A report older than the last one added (a pull that was overtaken by the
        final one at stop) is ignored, samples and all.
        """
        p = self.plane
        if self.last[i] is not None and rep.get("seq", 0) <= self.last[i].get("seq", 0):
            return
        last = self.last[i] or {
            "frames": (0, 0, 0, {}, 0.0),
            "subs": (0, 0, 0, {}, 0.0),
            "in_flight": (0, 0),
            "leaf": (0, 0.0),
            "batches": 0,
            "arrivals": {},
            "bins": {},
            "window": {},
            "hist": {},
        }
        for key, counters in (("frames", p.frames), ("subs", p.subs)):
            new, old = rep[key], last[key]
            counters.arrived += new[0] - old[0]
            counters.on_time += new[1] - old[1]
            counters.late += new[2] - old[2]
            for reason, n in new[3].items():
                d = n - old[3].get(reason, 0)
                if d:
                    counters.dropped[reason] = counters.dropped.get(reason, 0) + d
            counters.accuracy_sum += new[4] - old[4]
        p.frames_in_flight += rep["in_flight"][0] - last["in_flight"][0]
        p.subs_in_flight += rep["in_flight"][1] - last["in_flight"][1]
        p.leaf_on_time += rep["leaf"][0] - last["leaf"][0]
        p.leaf_acc_sum += rep["leaf"][1] - last["leaf"][1]
        p.batches += rep["batches"] - last["batches"]
        for sec, n in rep["arrivals"].items():
            d = n - last["arrivals"].get(sec, 0)
            if d:
                p.add_arrivals(int(sec), d)
        for b, n in rep.get("bins", {}).items():
            d = n - last["bins"].get(b, 0)
            if d:
                p.arrival_bins.add(int(b), d)
        for stamp, row in rep["window"].items():
            prev = last["window"].get(stamp)
            delta = [a - (prev[k] if prev else 0.0) for k, a in enumerate(row)]
            if any(delta):
                p.window.add(float(stamp), *delta)
        _add_hists(p.hist, rep["hist"], last["hist"])
        for variant, child, n in rep["branching"]:
            p.estimator.observe(variant, child, n)
        s = rep["samples"]
        p.latencies_ms.extend(s["latencies_ms"])
        p.admit_ms.extend(s["admit_ms"])
        p.dispatch_overhead_ms.extend(s["dispatch_overhead_ms"])
        p.complete_ms.extend(s["complete_ms"])
        p.service_obs.extend(s["service_obs"])
        self.queues[i] = dict(rep["queues"])
        self.applied[i] = int(rep["version"])
        for wid, restarts, kind, reason in rep["lost"]:
            for w in p.workers:
                if w.wid == wid and w.restarts == restarts and w.status != "dead":
                    p.fail_worker(w, f"{reason} (seen by ingress replica {i + 1})", kind=kind)
        keep = {k: rep[k] for k in ("frames", "subs", "in_flight", "leaf", "batches", "hist")}
        keep["seq"] = rep.get("seq", 0)
        keep["arrivals"] = dict(rep["arrivals"])
        keep["bins"] = dict(rep.get("bins", {}))
        keep["window"] = dict(rep["window"])
        self.last[i] = keep
        self.reports += 1

    def queue_lengths(self) -> dict[str, int]:
        """Requests waiting per task at the replicas (as last reported)."""
        out: dict[str, int] = {}
        for q in self.queues:
            for task, n in q.items():
                out[task] = out.get(task, 0) + n
        return out

    def status(self) -> list[dict[str, Any]]:
        """Per replica: port, liveness, table version applied, frames as last reported."""
        rows = []
        for i in range(self.count):
            last = self.last[i]
            frames = None
            if last is not None:
                a, ot, late, dropped, _ = last["frames"]
                frames = {
                    "arrived": a,
                    "on_time": ot,
                    "late": late,
                    "dropped": dict(dropped),
                    "in_flight": last["in_flight"][0],
                }
            rows.append(
                {
                    "replica": i + 1,
                    "port": self.ports[i] if i < len(self.ports) else None,
                    "alive": self.alive[i],
                    "table_version": self.applied[i],
                    "frames": frames,
                }
            )
        return rows

    async def stop(self) -> None:
        """Stop the report loop and the replicas; their final reports are absorbed."""
        import ray

        self.stopped = True
        self.plane.on_rebuild = None
        if self._collecting is not None:  # a pull under way is added before the final one
            await asyncio.shield(self._collecting)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        grace = self.rt.config.grace_s + 5.0
        for i, actor in enumerate(self.actors):
            if not self.alive[i]:
                continue
            try:
                rep = await asyncio.wait_for(
                    asyncio.wrap_future(actor.stop.remote(grace).future()), grace + 10.0
                )
            except Exception as exc:  # noqa: BLE001 - count its in-flight frames dropped
                self._replica_gone(i, f"did not stop cleanly ({one_line(exc) or 'timeout'})")
            else:
                self.absorb(i, rep)
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.alive = [False] * self.count


def _add_hists(hist: dict[str, Any], new: dict[str, Any], old: dict[str, Any]) -> None:
    for name, value in new.items():
        target = hist.get(name)
        if target is None:
            continue
        if isinstance(value, dict):
            prev_by = old.get(name, {})
            for key, (counts, total, n) in value.items():
                prev = prev_by.get(key)
                h = target.by.get(key)
                if h is None:
                    h = target.by[key] = Histogram(target.buckets)
                _add_hist(h, counts, total, n, prev)
        else:
            _add_hist(target, *value, old.get(name))


def _add_hist(h: Any, counts: list[int], total: float, n: int, prev: Any) -> None:
    pc, ps, pn = prev if prev is not None else ([0] * len(counts), 0.0, 0)
    for k, c in enumerate(counts):
        h.counts[k] += c - pc[k]
    h.sum += total - ps
    h.count += n - pn
