"""The discrete-event model of a cluster serving a pipeline (simpy).

Model, in short:

* **Workers**: one per worker slot of the cluster. A worker holds one variant and
  belongs to one worker group of the running plan (or none: idle). Whenever it is
  free and its group's queue is not empty it takes up to the group's batch size of
  requests at once (it never waits to fill a batch) and is busy for the variant's
  profiled latency of that batch size, rounded up to the next profiled size.
* **Queues**: one FIFO queue per worker group, shared by its replicas. At the
  queue head a request is dropped (reason ``deadline``) when, by the rule of
  :func:`~lokirl.core.router.should_drop_early` (inlined in the hot loop), it could
  not finish in time even if served now (the batch's latency plus the least
  latency still needed below).
* **Routing**: each frame sends one request to each root task; the Most-Accurate-
  First :class:`~lokirl.core.router.RoutingTable` picks the group (or drops it at
  admission, reason ``over_capacity``). The table is built from the *serving view*
  (:func:`~lokirl.core.reconfig.serving_view`): a worker counts only once it can
  serve. A request served on time spawns, per child task, a Poisson number of
  sub-requests with the serving variant's profiled mean; counts feed a
  :class:`~lokirl.core.router.BranchingEstimator`. The table is rebuilt when the
  plan changes, when a worker becomes ready and every epoch with the EWMA demand
  estimate and the estimator's snapshot. A request that finishes after its
  deadline spawns nothing (its frame is late already).
* **Control**: every epoch the host builds a :class:`ControlContext`; a decision to
  re-solve runs :func:`~lokirl.core.allocator.solve` and the plan is installed
  after the solver time (see :class:`~lokirl.sim.config.SimConfig`); the running
  plan serves meanwhile. Installing maps the new groups onto workers so as to
  change as few variants as possible: workers that keep their variant keep serving
  (batch-size changes are free), idle workers keep their last variant loaded, and
  a worker that changes variant swaps as ``SimConfig.swap`` says
  (:func:`~lokirl.core.reconfig.plan_swap`): under ``overlap`` it keeps serving
  its old variant (an *interim* group when the plan has no group of it) until the
  new one is loaded; under ``stop`` it serves nothing for the load time; under
  ``free`` it switches at once. A worker the plan leaves out drains the queue of
  its old group under ``overlap`` and ``free``. Requests queued at a group nobody
  serves any more are re-routed (dropped, reason ``no_worker``, when no group can
  take them). A batch in service always completes.
* **Metrics**: streamed per second (outcomes are counted in the second they become
  known), never kept per request; see :class:`~lokirl.sim.config.SimResult`.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import simpy

from lokirl.core.allocator import AllocatorOptions
from lokirl.core.binding import bind_controller
from lokirl.core.controller import ControlContext, Controller, Decision
from lokirl.core.handover import (
    WorkerHolding,
    assign_workers,
    hand_over_queues,
    old_queue_moves,
)
from lokirl.core.metrics import Tally
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.core.reconfig import (
    WorkerServing,
    drains_on_removal,
    plan_swap,
    serving_table,
    serving_view,
)
from lokirl.core.router import DROP, BranchingEstimator, RoutingTable
from lokirl.errors import TraceError
from lokirl.sim.config import ConservationError, SimConfig, SimResult, assemble_result
from lokirl.sim.draws import child_key, poisson_counts, root_key, uniform
from lokirl.sim.host import EpochHost
from lokirl.sim.overhead import OverheadSampler, OverheadTrace
from lokirl.sim.solving import solve_decision
from lokirl.traces.types import RateSeries, Trace

# Frame record (a list, for speed): [deadline_s, outstanding, status, acc_sum, acc_n, reason]
_DL, _OUT, _ST, _ACC, _ACCN, _WHY = range(6)
_OK, _LATE, _DROPPED = 0, 1, 2


@runtime_checkable
class Planner(Protocol):
    """Optional hook of a controller that builds its own plans (baselines).

    A controller with a ``plan`` method is asked for the plan instead of the
    allocator's :func:`~lokirl.core.allocator.solve`.
    """

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """Return the plan for ``decision``."""
        ...


class _Group:
    """A worker group of the running plan, with its queue and routing rows."""

    __slots__ = (
        "gid",
        "version",
        "task",
        "variant",
        "accel",
        "batch",
        "lat",
        "down",
        "acc",
        "queue",
        "idle",
        "children",
        "leaf",
        "wg",
        "drain",
    )

    def __init__(self, gid: int, version: int, g: Any, pipeline: Pipeline) -> None:
        v = pipeline.variant(g.variant)
        self.wg = g  # the plan's WorkerGroup (what the serving view is built from)
        self.drain = False  # left the plan: its workers serve its queue, it gets no traffic
        self.gid = gid
        self.version = version
        self.task = g.task
        self.variant = g.variant
        self.accel = g.accelerator
        self.batch = max(1, int(g.batch_size))
        sizes = v.batch_sizes(g.accelerator)
        # lat[n]: seconds to serve a batch of n (latency at the smallest profiled size >= n;
        # beyond the largest, scaled linearly, as the live plane and emulated workers do).
        lat = [0.0]
        top = sizes[-1]
        for n in range(1, self.batch + 1):
            b = next((s for s in sizes if s >= n), None)
            ms = (
                v.latency(g.accelerator, b)
                if b is not None
                else v.latency(g.accelerator, top) * n / top
            )
            lat.append(ms / 1000.0)
        self.lat = lat
        self.down = 0.0
        self.acc = v.accuracy / 100.0
        self.queue: deque = deque()
        self.idle: list[_Worker] = []
        # (child task, profile mean, cumulative probs, targets) per child task.
        self.children: list[tuple[str, float, np.ndarray, list[_Group | None]]] = []
        self.leaf = not pipeline.task(g.task).children


class _Worker:
    """One worker slot: the variant it holds or loads, and the group it serves now.

    ``group`` is its group in the running plan (``None``: not used by the plan);
    ``serve`` the group whose queue it takes batches from now: its plan group once
    ready, the group of its old variant while it loads under ``overlap``, a group
    it drains after leaving the plan, or ``None``.
    """

    __slots__ = (
        "index",
        "accel",
        "variant",
        "group",
        "serve",
        "old",
        "drain",
        "wake",
        "batch",
        "loading",
        "token",
        "ready_at",
        "proc",
    )

    def __init__(self, index: int, accel: str) -> None:
        self.index = index
        self.accel = accel
        self.variant: str | None = None  # held, or being loaded
        self.group: _Group | None = None
        self.serve: _Group | None = None
        self.old: Any = None  # WorkerGroup of the old variant served while loading (overlap)
        self.drain: _Group | None = None  # the queue it drains after leaving the plan
        self.wake: simpy.Event | None = None
        self.batch: list | None = None
        self.loading = False
        self.token = 0
        self.ready_at = 0.0
        self.proc: simpy.Process | None = None

    @property
    def holds(self) -> str | None:
        """The variant it can serve now (``None`` while it loads under ``stop``)."""
        if not self.loading:
            return self.variant
        return self.old.variant if self.old is not None else None


class Simulation(EpochHost):
    """A step-wise simulation: the host drives the clock, the caller the decisions.

    Typical use (what :func:`simulate` and an RL environment do)::

        sim = Simulation(pipeline, cluster, trace, config, rng)
        ctx = sim.reset()
        while not sim.done:
            sim.apply(controller.decide(ctx), planner=controller)
            ctx = sim.step_epoch()
        result = sim.finish()

    Args:
        pipeline: The pipeline served.
        cluster: Workers per accelerator type.
        trace: Rates (arrivals drawn as a Poisson process, bin by bin, lazily) or
            arrival times.
        config: See :class:`SimConfig`.
        rng: The only source of randomness.
        name: Controller name recorded in the result.
        plan_cache: A dict the caller owns (shared across runs if it likes) that
            memoises solves by (planner, pipeline, cluster, demand, options, running
            plan when the solve depends on it); ``None``: no memo. Solves are
            deterministic up to their time limit, so a memo changes only the wall time.

    """

    def __init__(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        trace: Trace,
        config: SimConfig | None = None,
        rng: np.random.Generator | None = None,
        name: str = "",
        plan_cache: dict | None = None,
    ) -> None:
        self.plan_cache = plan_cache
        self.pipeline = pipeline
        self.cluster = cluster
        self.trace = trace
        self.config = config or SimConfig()
        self.name = name
        self._rng0 = rng if rng is not None else np.random.default_rng(0)
        self._initialised = False

    # ------------------------------------------------------------------ setup
    def reset(
        self, trace: Trace | None = None, rng: np.random.Generator | None = None
    ) -> ControlContext:
        """Start a fresh run (optionally on another trace or generator).

        Returns:
            The context at time 0 (no plan yet): the caller's decision installs the
            first plan at once, without solver delay or load time.

        """
        if trace is not None:
            self.trace = trace
        if rng is not None:
            self._rng0 = rng
        cfg = self.config
        # Common random numbers: controllers that act differently see the same traffic.
        # Arrivals come from their own stream; branching (sub-requests per request) is
        # a function of the request (lokirl.sim.draws), keyed by a seed derived from the
        # routing stream's seed without consuming it; routing draws use ``self.rng``.
        self.arrival_rng, self.rng = self._rng0.spawn(2)
        ss = self.rng.bit_generator.seed_seq
        self.branch_seed = int(
            np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, 0xB7)).generate_state(
                1, np.uint64
            )[0]
        )
        # Measured delays draw from streams of their own: arrivals and routing stay put.
        self.overhead = _sampler(cfg.batch_overhead, ss, 0x40B)
        self.wake_delay = _sampler(cfg.wake_delay, ss, 0x3A4E)
        self.env = simpy.Environment()
        trace_len = (
            self.trace.duration_s if isinstance(self.trace, RateSeries) else self.trace.duration_s
        )
        self.trace_end = float(cfg.duration_s if cfg.duration_s is not None else trace_len)
        if not self.trace_end > 0:
            self.trace_end = 1.0
        if self.trace_end > cfg.max_span_s:
            raise TraceError(
                f"{self.trace.name}: the simulated span is {self.trace_end:.3g} s "
                f"({self.trace_end / 86400:.3g} days), more than the limit of "
                f"{cfg.max_span_s:.3g} s (the simulator steps every epoch of it). Fix: check "
                "the trace's time unit (arrival files are in ms) and --speedup, or keep the "
                "part that matters (--duration, --window A:B)"
            )
        _check_size(self.trace, self.trace_end, cfg.max_frames)
        self.end = self.trace_end + cfg.drain_s
        n = int(math.ceil(self.end)) + 1
        self.n_sec = n
        self.slo_s = self.pipeline.slo_ms / 1000.0
        self.roots = self.pipeline.roots
        self.task_names = [t.name for t in self.pipeline.tasks]
        self.task_index = {t: i for i, t in enumerate(self.task_names)}
        self.leaf_tasks = frozenset(t.name for t in self.pipeline.tasks if not t.children)
        self.estimator = BranchingEstimator(self.pipeline, cfg.branching_window)
        z = lambda: np.zeros(n)  # noqa: E731
        zi = lambda: np.zeros(n, dtype=np.int64)  # noqa: E731
        self.s_arrivals = zi()
        self._init_arrival_bins(n)
        self.s_demand = z()
        self.s_capacity = z()
        self.s_frames_done = zi()
        self.s_frame_viol = zi()
        self.s_sub_done = zi()
        self.s_sub_viol = zi()
        self.s_leaf_acc = z()
        self.s_leaf_n = zi()
        self.s_active = zi()
        self.s_queue = zi()
        self.s_reconf = zi()
        self.s_solves = zi()
        self.s_queue_task = {t: zi() for t in self.task_names}
        # Totals.
        self.f_arrived = self.f_on_time = self.f_late = 0
        self.f_dropped: dict[str, int] = {}
        self.f_acc_sum = 0.0
        self.r_arrived = self.r_on_time = self.r_late = 0
        self.r_dropped: dict[str, int] = {}
        self.r_dropped_task: dict[str, int] = {}
        self.r_acc_sum = 0.0
        self.leaf_on_time = 0
        self.leaf_late = 0
        #: Per variant: batches served by size.
        self.batch_tally: dict[str, dict[int, int]] = {}
        self.leaf_acc_sum = 0.0
        self.busy = 0  # batches in service (for shared_cores)
        self.solves = 0
        self.solve_log: list[tuple[float, str]] = []
        self.solver_time = 0.0
        self.solver_wall = 0.0
        self.reconfigurations = 0
        self.last_solve_time = 0.0
        self.last_solve_at = -math.inf
        self.pending: Plan | None = None
        self.plan: Plan | None = None
        self.table: RoutingTable | None = None
        self.version = 0
        self.groups: list[_Group] = []  # the serving view's: the plan's, then interim ones
        self.plan_groups: list[_Group] = []
        self.interim: dict[tuple[str, str], _Group] = {}
        self.draining: list[_Group] = []
        self._rebuild_due = False
        self.root_rows: dict[str, tuple[list[float], list[_Group | None]]] = {}
        self.none_rows: dict[str, tuple[np.ndarray, list[_Group | None]]] = {}
        self.demand_estimate = 0.0
        self.sec_done = 0  # seconds whose bookkeeping is done
        self.next_epoch = 0.0
        self.workers: list[_Worker] = []
        for accel, count in self.cluster.workers.items():
            for _ in range(count):
                w = _Worker(len(self.workers), accel)
                self.workers.append(w)
        for w in self.workers:
            w.proc = self.env.process(self._worker_proc(w))
        self.env.process(self._arrival_proc())
        self.wall_start = time.perf_counter()
        self._initialised = True
        self._finished: SimResult | None = None
        return self._context(initial=True)

    # ------------------------------------------------------------- stepping
    @property
    def now(self) -> float:
        """Current simulated time in seconds."""
        return float(self.env.now)

    def run_until(self, t: float) -> None:
        """Advance the clock to ``t``, doing the per-second bookkeeping on the way."""
        t = min(float(t), self.end)
        while self.sec_done + 1 <= t + 1e-9:
            s = self.sec_done + 1
            self.env.run(until=s)
            self._second(s - 1)
            self.sec_done = s
        if t > self.env.now:
            self.env.run(until=t)
        if t >= self.end and self.config.drain_s == 0:
            # With no drain the run ends at the trace's end, where simpy's stop comes
            # before the events due then: a request arriving exactly at the end (an
            # arrival trace's last one) would never arrive. Play what is due at the end.
            while self.env.peek() <= self.end:
                self.env.step()

    def apply(self, decision: Decision, planner: object | None = None) -> Plan | None:
        """Act on a controller decision: on ``resolve``, solve and schedule the plan.

        The first plan (no plan yet) is installed at once. Later plans are installed
        after the solver time; a decision to re-solve while a solve is pending is
        ignored.

        Args:
            decision: The decision.
            planner: An object with a ``plan`` method (see :class:`Planner`) used
                instead of the allocator, typically the controller itself.

        Returns:
            The plan solved, or ``None`` when nothing was solved.

        """
        if not decision.resolve:
            return None
        if self.pending is not None:
            return None
        solved = solve_decision(
            self.pipeline, self.cluster, self.config, decision, self.plan, planner, self.plan_cache
        )
        plan, wall, delay = solved.plan, solved.wall_s, solved.delay_s
        self.solves += 1
        self.solver_wall += wall
        self.last_solve_at = self.env.now
        self.s_solves[min(int(self.env.now), self.n_sec - 1)] += 1
        self.solve_log.append((float(self.env.now), decision.reason))
        if self.plan is None:
            self.last_solve_time = 0.0
            self._install(plan, instant=True)
            return plan
        self.solver_time += delay
        self.last_solve_time = delay
        self.pending = plan
        if delay <= 0:
            self._install(plan, instant=False)
        else:
            ev = self.env.timeout(delay)
            ev.callbacks.append(lambda _ev, p=plan: self._install(p, instant=False))
        return plan

    # ------------------------------------------------------------- internals
    def _queue_lengths(self) -> dict[str, int]:
        out = {t: 0 for t in self.task_names}
        for g in self.groups:
            out[g.task] += len(g.queue)
        for g in self.draining:
            out[g.task] += len(g.queue)
        return out

    def _active(self) -> int:
        return sum(1 for w in self.workers if w.group is not None)

    # Arrivals -----------------------------------------------------------
    def _arrival_proc(self):
        env = self.env
        rng = self.arrival_rng
        tr = self.trace
        end = self.trace_end
        admit = self._admit
        n_roots = len(self.roots)
        if isinstance(tr, RateSeries):
            bin_s = tr.bin_s
            for k, rate in enumerate(tr.rates):
                t0 = k * bin_s
                if t0 >= end:
                    break
                count = int(rng.poisson(rate * bin_s))
                times = np.sort(t0 + rng.random(count) * bin_s)
                us = rng.random((count, n_roots))
                for t, u in zip(times.tolist(), us.tolist(), strict=True):
                    if t >= end:
                        return
                    if t > env.now:
                        yield env.timeout(t - env.now)
                    admit(u)
        else:
            arr = tr.arrivals_s
            arr = arr[arr <= end]
            chunk = 4096
            for i in range(0, len(arr), chunk):
                times = arr[i : i + chunk]
                us = rng.random((len(times), n_roots))
                for t, u in zip(times.tolist(), us.tolist(), strict=True):
                    if t > env.now:
                        yield env.timeout(t - env.now)
                    admit(u)

    def _admit(self, us: list[float]) -> None:
        now = self.env.now
        sec = int(now)
        self.s_arrivals[sec] += 1
        self._count_arrivals(now)
        self.f_arrived += 1
        frame = [now + self.slo_s, len(self.roots), _OK, 0.0, 0, None]
        seed, no = self.branch_seed, self.f_arrived
        for r, (task, u) in enumerate(zip(self.roots, us, strict=True)):
            self.r_arrived += 1
            row = self.root_rows.get(task)
            g = None
            if row is not None:
                cum, targets = row
                g = targets[min(bisect_right(cum, u), len(targets) - 1)]
            if g is None:
                self._drop(frame, "over_capacity" if row is not None else "no_worker", task)
            else:
                g.queue.append((frame, 1.0, root_key(seed, no, r)))
                if g.idle:
                    self._wake(g.idle.pop())

    def _wake(self, w: _Worker) -> None:
        ev = w.wake
        w.wake = None
        if ev is not None and not ev.triggered:
            ev.succeed()

    # Outcomes -----------------------------------------------------------
    def _drop(self, frame: list, reason: str, task: str) -> None:
        d = self.r_dropped
        d[reason] = d.get(reason, 0) + 1
        dt = self.r_dropped_task
        dt[task] = dt.get(task, 0) + 1
        sec = int(self.env.now)
        self.s_sub_done[sec] += 1
        self.s_sub_viol[sec] += 1
        if frame[_ST] != _DROPPED:
            frame[_ST] = _DROPPED
            frame[_WHY] = reason
        frame[_OUT] -= 1
        if frame[_OUT] == 0:
            self._finalise(frame)

    def _finalise(self, frame: list) -> None:
        sec = int(self.env.now)
        self.s_frames_done[sec] += 1
        st = frame[_ST]
        if st == _OK:
            self.f_on_time += 1
            self.f_acc_sum += 100.0 * frame[_ACC] / frame[_ACCN]
        else:
            self.s_frame_viol[sec] += 1
            if st == _LATE:
                self.f_late += 1
            else:
                r = frame[_WHY]
                self.f_dropped[r] = self.f_dropped.get(r, 0) + 1

    # Workers -----------------------------------------------------------
    def _worker_proc(self, w: _Worker):
        env = self.env
        timeout = env.timeout
        early = self.config.early_drop
        cores = self.config.shared_cores
        host = self.config.host_cores
        extra = self.config.batch_overhead_s
        overhead = self.overhead
        wake_delay = self.wake_delay
        while True:
            g = w.serve
            if g is None or not g.queue:
                if g is not None and w.drain is g:
                    self._drained(w, g)
                    continue
                ev = env.event()
                w.wake = ev
                if g is not None:
                    g.idle.append(w)
                yield ev
                if wake_delay is not None:
                    # Woken by routing: the live loop forms the batch when it runs.
                    yield timeout(wake_delay.draw(env.now))
                continue
            # Form a batch, dropping at the head what cannot make its deadline.
            q = g.queue
            bmax = g.batch
            now = env.now
            limit = now + g.lat[min(len(q), bmax)] + g.down if early else -math.inf
            batch = []
            append = batch.append
            while q and len(batch) < bmax:
                item = q.popleft()
                if limit > item[0][_DL]:
                    self._drop(item[0], "deadline", g.task)
                else:
                    append(item)
            if not batch:
                continue
            w.batch = batch
            tally = self.batch_tally.get(g.variant)
            if tally is None:
                tally = self.batch_tally[g.variant] = {}
            n = len(batch)
            tally[n] = tally.get(n, 0) + 1
            lat = g.lat[n]
            if cores is not None:
                self.busy += 1
                lat *= max(1.0, (self.busy + host) / cores)
            yield timeout(lat + (extra if overhead is None else overhead.draw(now)))
            if cores is not None:
                self.busy -= 1
            w.batch = None
            self._finish(g, batch)

    def _finish(self, g: _Group, batch: list) -> None:
        now = self.env.now
        sec = int(now)
        gacc = g.acc
        n = len(batch)
        self.s_sub_done[sec] += n
        ok = []
        late = 0
        for item in batch:
            frame = item[0]
            if now <= frame[_DL]:
                ok.append(item)
            else:
                late += 1
                if frame[_ST] == _OK:
                    frame[_ST] = _LATE
                frame[_OUT] -= 1
                if frame[_OUT] == 0:
                    self._finalise(frame)
        if late:
            self.r_late += late
            self.s_sub_viol[sec] += late
            if g.leaf:
                self.leaf_late += late
        if not ok:
            return
        self.r_on_time += len(ok)
        accs = [it[1] * gacc for it in ok]
        self.r_acc_sum += 100.0 * sum(accs)
        if g.leaf:
            s = 100.0 * sum(accs)
            self.leaf_on_time += len(ok)
            self.leaf_acc_sum += s
            self.s_leaf_acc[sec] += s
            self.s_leaf_n[sec] += len(ok)
            for it, a in zip(ok, accs, strict=True):
                frame = it[0]
                frame[_ACC] += a
                frame[_ACCN] += 1
                frame[_OUT] -= 1
                if frame[_OUT] == 0:
                    self._finalise(frame)
            return
        # Spawn sub-requests to each child task.
        rng = self.rng
        children = g.children if g.version == self.version else self._stale_children(g)
        spawned = [0] * len(ok)
        observe = self.estimator.observe
        variant = g.variant
        index = self.task_index
        leaves = self.leaf_tasks
        for child, mean, cum, targets in children:
            j = index[child]
            leaf = child in leaves
            counts = poisson_counts(mean, [uniform(it[2], j) for it in ok])
            total = sum(counts)
            for c in counts:
                observe(variant, child, c)
            if total == 0:
                continue
            self.r_arrived += total
            if len(targets) == 1:
                idx = None
            else:
                idx = np.searchsorted(cum, rng.random(total), side="right").tolist()
            pos = 0
            touched = {}
            nt = len(targets) - 1
            for k, c in enumerate(counts):
                if not c:
                    continue
                spawned[k] += c
                frame = ok[k][0]
                key = ok[k][2]
                a = accs[k]
                frame[_OUT] += c
                for i in range(c):
                    t = targets[0] if idx is None else targets[min(idx[pos], nt)]
                    pos += 1
                    if t is None:
                        self._drop(frame, "no_worker", child)
                    else:
                        t.queue.append((frame, a, 0 if leaf else child_key(key, j, i)))
                        touched[t.gid] = t
            for t in touched.values():
                idle = t.idle
                if idle:
                    want = -(-len(t.queue) // t.batch)
                    while idle and want > 0:
                        self._wake(idle.pop())
                        want -= 1
        for k, it in enumerate(ok):
            frame = it[0]
            if spawned[k] == 0:
                frame[_ACC] += accs[k]
                frame[_ACCN] += 1
            frame[_OUT] -= 1
            if frame[_OUT] == 0:
                self._finalise(frame)

    def _stale_children(self, g: _Group) -> list:
        """Children rows for a batch whose group left the plan while it was served."""
        v = self.pipeline.variant(g.variant)
        out = []
        for child in self.pipeline.task(g.task).children:
            cum, targets = self.none_rows.get(child, (np.array([1.0]), [None]))
            out.append((child, v.branching.get(child, 1.0), cum, targets))
        return out

    # Plans ---------------------------------------------------------------
    def _install(self, plan: Plan, instant: bool) -> None:
        """Put ``plan`` in force: map groups to workers, start swaps, move queues, route.

        Groups are mapped onto workers so as to change as few variants as possible
        (:func:`~lokirl.core.handover.assign_workers`, as the live runtime maps them).
        A worker that changes variant swaps as :func:`~lokirl.core.reconfig.plan_swap`
        says for ``SimConfig.swap``; the routing table counts it only once it can
        serve (see :meth:`_rebuild_routes`). Requests queued at a group that leaves
        the plan move as :func:`~lokirl.core.handover.old_queue_moves` says: to the
        plan's group of the same variant, stay with the old variant's workers while
        they still serve it (``overlap``, or draining under ``overlap``/``free``), or
        are re-routed through the new table.
        """
        self.pending = None
        self.version += 1
        mode = self.config.swap
        now = self.env.now
        old_groups = self.groups + self.draining
        groups = [_Group(i, self.version, g, self.pipeline) for i, g in enumerate(plan.groups)]
        holding = [
            WorkerHolding(w.accel, w.variant, w.group is not None, w.loading) for w in self.workers
        ]
        assigned = {
            w.index: groups[gi]
            for w, gi in zip(self.workers, assign_workers(plan, holding), strict=True)
            if gi is not None
        }
        sec = min(int(now), self.n_sec - 1)
        drains = drains_on_removal(mode)
        drainers: dict[int, _Group] = {}  # id(old group) -> the group, for removed workers
        for w in self.workers:
            g = assigned.get(w.index)
            held = w.holds
            serving = w.serve  # what it served under the old plan
            if g is None:
                if w.loading:  # the load is no longer wanted: keep what it holds
                    w.token += 1
                    w.loading = False
                    w.variant = held
                    w.old = None
                w.group = None
                w.old = None
                w.drain = None
                if drains and serving is not None and serving.queue:
                    drainers[id(serving)] = serving
                    w.drain = serving
                continue
            w.group = g
            w.drain = None
            if w.variant == g.variant:
                continue  # keeps its variant (or keeps loading it)
            w.token += 1
            w.variant = g.variant
            if instant or held == g.variant:
                w.loading = False
                w.old = None
                continue
            self.reconfigurations += 1
            self.s_reconf[sec] += 1
            swap = plan_swap(self.pipeline, w.accel, held, g.variant, mode)
            w.old = serving.wg if swap.old_serves and serving is not None else None
            if swap.ready_s <= 0:
                w.loading = False
                w.old = None
                continue
            w.loading = True
            w.ready_at = now + swap.ready_s
            ev = self.env.timeout(swap.ready_s)
            ev.callbacks.append(lambda _ev, w=w, tok=w.token: self._ready(w, tok))
        # Where the queues of the old groups go.
        moves = old_queue_moves(
            [(og.variant, og.accel) for og in old_groups],
            [(g.variant, g.accel) for g in groups],
            {(w.old.variant, w.accel) for w in self.workers if w.old is not None},
            [id(og) in drainers for og in old_groups],
        )
        interim, self.draining, orphans = hand_over_queues(old_groups, groups, moves)
        self.interim = {(og.variant, og.accel): og for og in interim}
        for og in interim:
            og.drain = False
        for og in self.draining:
            og.drain = True
        alive = {id(g) for g in self.draining} | {id(g) for g in self.interim.values()}
        for w in self.workers:
            if w.old is not None:
                keep = self.interim.get((w.old.variant, w.accel))
                if keep is not None:
                    w.old = keep.wg
            if w.drain is not None and id(w.drain) not in alive:
                w.drain = None  # its queue moved to a group of the new plan
        self.plan = plan
        self.plan_groups = groups
        self.table = None
        self._rebuild_routes()
        for og in orphans:
            self._reroute(og)

    def _ready(self, w: _Worker, token: int) -> None:
        """A load finished: the worker switches to its new variant (if still wanted)."""
        if w.token != token or not w.loading:
            return
        w.loading = False
        w.old = None
        if not self._rebuild_due:
            # One rebuild for all the workers that become ready at this instant.
            self._rebuild_due = True
            ev = self.env.timeout(0)
            ev.callbacks.append(self._rebuild_now)

    def _rebuild_now(self, _ev: object = None) -> None:
        self._rebuild_due = False
        if self.plan is not None:
            self._rebuild_routes()

    def _set_serve(self, w: _Worker, g: _Group | None) -> _Group | None:
        """Make ``w`` take batches from ``g``, waking it if it waits; returns ``g``."""
        old = w.serve
        if old is g:
            return g
        w.serve = g
        if w.wake is not None:
            if old is not None and w in old.idle:
                old.idle.remove(w)
            self._wake(w)
        return g

    def _drained(self, w: _Worker, g: _Group) -> None:
        """A worker that left the plan emptied the queue it drained: it goes idle."""
        w.serve = None
        w.drain = None
        if g in self.draining and not any(x.drain is g for x in self.workers):
            self.draining.remove(g)

    def _reroute(self, og: _Group) -> None:
        """Send the queue of a group nobody serves any more through the current table."""
        if not og.queue:
            return
        cum, targets = self.none_rows.get(og.task, (np.array([1.0]), [None]))
        touched: dict[int, _Group] = {}
        for item in og.queue:
            i = int(np.searchsorted(cum, self.rng.random(), side="right"))
            t = targets[min(i, len(targets) - 1)]
            if t is None:
                self._drop(item[0], "no_worker", og.task)
            else:
                t.queue.append(item)
                touched[id(t)] = t
        og.queue.clear()
        for t in touched.values():
            while t.idle and t.queue:
                self._wake(t.idle.pop())

    def _rebuild_routes(self) -> None:
        """Rebuild the routing table from the serving view of the running plan.

        Called when a plan is installed, when a worker becomes ready and every
        epoch (new demand and branching estimates). Only workers that can serve
        now count (:func:`~lokirl.core.reconfig.serving_view`); an interim group
        (an old variant ``overlap`` workers still serve) that lost its last worker
        has its queue re-routed.
        """
        plan = self.plan
        assert plan is not None
        plan_groups = self.plan_groups
        view = serving_view(
            plan,
            [
                WorkerServing(
                    w.accel,
                    None if w.group is None else w.group.gid,
                    not w.loading,
                    w.old if w.loading else None,
                )
                for w in self.workers
            ],
        )
        groups = list(plan_groups)
        for ig in view.interim:
            g = self.interim[(ig.variant, ig.accelerator)]
            g.gid = len(groups)
            g.version = self.version
            groups.append(g)
        in_view = {(ig.variant, ig.accelerator) for ig in view.interim}
        gone = [g for k, g in self.interim.items() if k not in in_view]
        for g in gone:
            del self.interim[(g.variant, g.accel)]
            # A batch it still has in service spawns through the current rows
            # (_stale_children), not into groups this rebuild no longer serves.
            g.version = -1
        self.groups = groups
        demand = self.demand_estimate if self.demand_estimate > 0 else plan.demand
        table = serving_table(view, self.pipeline, demand, self.estimator.snapshot())
        self.table = table
        for g, down in zip(groups, table.downstream_ms, strict=True):
            g.down = down / 1000.0

        def row(key: tuple[str, int | None]) -> tuple[np.ndarray, list[_Group | None]] | None:
            cum = table.cumulative.get(key)
            if cum is None:
                return None
            targets = [None if i == DROP else groups[i] for i in table.targets[key]]
            return np.asarray(cum, dtype=float), targets

        self.root_rows = {}
        for r in self.roots:
            rr = row((r, None))
            self.root_rows[r] = (rr[0].tolist(), rr[1]) if rr is not None else ([1.0], [None])
        self.none_rows = {}
        for t in self.task_names:
            rr = row((t, None))
            self.none_rows[t] = rr if rr is not None else (np.array([1.0]), [None])
        for g in groups:
            v = self.pipeline.variant(g.variant)
            kids = []
            for child in self.pipeline.task(g.task).children:
                rr = row((child, g.gid)) or self.none_rows[child]
                kids.append((child, v.branching.get(child, 1.0), rr[0], rr[1]))
            g.children = kids
        draining = {id(g) for g in self.draining} | {id(g) for g in groups}
        for w, gid in zip(self.workers, view.serving, strict=True):
            if gid is not None:
                self._set_serve(w, groups[gid])
                continue
            if w.drain is not None and id(w.drain) not in draining:
                w.drain = None
            self._set_serve(w, w.drain)
        for g in gone:
            self._reroute(g)

    # Result ---------------------------------------------------------------
    def _result(self) -> SimResult:
        in_sub = 0
        frames_in: dict[int, list] = {}
        for g in self.groups + self.draining:
            in_sub += len(g.queue)
            for it in g.queue:
                frames_in[id(it[0])] = it[0]
        for w in self.workers:
            if w.batch:
                in_sub += len(w.batch)
                for it in w.batch:
                    frames_in[id(it[0])] = it[0]
        frames = Tally(
            arrived=self.f_arrived,
            on_time=self.f_on_time,
            late=self.f_late,
            dropped=self.f_dropped,
            in_flight=len(frames_in),
            accuracy_sum=self.f_acc_sum,
        )
        subs = Tally(
            arrived=self.r_arrived,
            on_time=self.r_on_time,
            late=self.r_late,
            dropped=self.r_dropped,
            in_flight=in_sub,
            accuracy_sum=self.r_acc_sum,
        )
        if self.config.check_conservation:
            for label, t in (("frames", frames), ("sub-requests", subs)):
                if not t.conserved:
                    raise ConservationError(
                        f"{label}: arrived {t.arrived} != on time {t.on_time} + late {t.late} "
                        f"+ dropped {t.dropped_total} + in flight {t.in_flight}"
                    )
        return assemble_result(self, frames, subs)


def _sampler(
    trace: OverheadTrace | None, ss: np.random.SeedSequence, key: int
) -> OverheadSampler | None:
    """A sampler of ``trace`` on the child stream ``key`` of ``ss`` (None without a trace)."""
    if trace is None:
        return None
    rng = np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, key)))
    return trace.sampler(rng)


def expected_frames(trace: Trace, until_s: float) -> float:
    """Frames ``trace`` asks for in its first ``until_s`` seconds (the mean, for rates)."""
    if isinstance(trace, RateSeries):
        edges = np.arange(len(trace.rates) + 1) * trace.bin_s
        covered = np.clip(np.minimum(edges[1:], until_s) - edges[:-1], 0.0, trace.bin_s)
        return float(np.dot(trace.rates, covered))
    return float(np.searchsorted(np.asarray(trace.arrivals_s), until_s, side="right"))


def _check_size(trace: Trace, until_s: float, limit: float) -> None:
    frames = expected_frames(trace, until_s)
    if frames > limit:
        raise TraceError(
            f"{trace.name}: the trace asks for about {frames:.3g} frames over {until_s:g} s "
            f"(a mean of {frames / max(until_s, 1e-9):.3g}/s), more than the simulator's limit "
            f"of {limit:.3g} (it plays every request one by one). Fix: rescale the trace onto "
            "the cluster (--rescale LO:HI, --load LO:HI, a suite's load), shorten it, or raise "
            "the limit (SimConfig.max_frames; lokirl simulate --max-frames)"
        )


def simulate(
    pipeline: Pipeline,
    cluster: Cluster,
    trace: Trace,
    controller: Controller,
    config: SimConfig | None = None,
    rng: np.random.Generator | None = None,
    progress: Callable[[float], None] | None = None,
    plan_cache: dict | None = None,
) -> SimResult:
    """Run ``controller`` on ``trace`` and return the result.

    Args:
        pipeline: The pipeline served.
        cluster: Workers per accelerator type.
        trace: Rates or arrivals.
        controller: Any object with ``name`` and ``decide(context) -> Decision``;
            if it also has ``plan(...)`` (see :class:`Planner`) that builds the plans;
            if it has ``bind(...)`` it is bound to the pipeline, cluster and swap
            mode first (:func:`~lokirl.core.binding.bind_controller`), and may refuse.
        config: See :class:`SimConfig`.
        rng: The only source of randomness (default: ``default_rng(0)``).
        progress: Called with the simulated time after each epoch.
        plan_cache: See :class:`Simulation`.

    """
    bind_controller(controller, pipeline, cluster, (config or SimConfig()).swap)
    name = getattr(controller, "name", "")
    sim = Simulation(pipeline, cluster, trace, config, rng, name=name, plan_cache=plan_cache)
    ctx = sim.reset()
    sim.apply(controller.decide(ctx), planner=controller)
    while not sim.done:
        ctx = sim.step_epoch()
        if progress is not None:
            progress(sim.now)
        if not sim.done:
            sim.apply(controller.decide(ctx), planner=controller)
    return sim.finish()


__all__ = ["Planner", "Simulation", "simulate"]
