"""A flow-level surrogate of the simpy engine, for training controllers fast.

:class:`FluidSimulation` has the control surface of
:class:`~lokirl.sim.engine.Simulation` (``reset``, ``apply``, ``step_epoch``,
``finish``, the per-second series) but moves *amounts* of requests instead of
requests, in small time steps (``dt``, 50 ms by default):

* **Arrivals**: a Poisson number of frames per step, from the trace's rate (its
  own random stream, as in the simpy engine).
* **Routing**: the same Most-Accurate-First routing table, used as shares: a
  group receives its share of its task's inflow; the ``DROP`` share is dropped at
  admission.
* **Service**: a group of ``n`` loaded replicas serves up to ``n x b / lat(b)``
  sub-requests per second (``b`` its batch size). Its FIFO queue holds what it
  cannot serve yet; the part of the queue that could not be served before the
  deadline (the SLO less the time spent upstream, the batch latency and the
  least latency still needed below) is dropped, as the simpy engine's early drop
  would. Plans are installed after the solver time, with the same minimal-change
  mapping of groups onto workers and the same swap semantics
  (``SimConfig.swap``, :mod:`lokirl.core.reconfig`): a worker that changes
  variant serves its old variant meanwhile (``overlap``), nothing (``stop``) or
  switches at once (``free``); routes come from the serving view and are rebuilt
  when a load finishes; a worker the plan leaves out drains its old queue under
  ``overlap`` and ``free``.
* **Branching**: served requests of a non-leaf group send the profile's mean
  number of sub-requests to each child task.
* **Frames**: a frame is on time when all its sub-requests are. With a
  per-task failure share ``p`` and Poisson branching of mean ``m`` the share of
  frames on time is ``S(t) = (1 - p_t) * prod_c exp(-m_tc * (1 - S(c)))``, applied
  to the frames of each step (a binomial draw).

What it leaves out: the randomness of service inside a step (batches that form
late, queues that grow from bursts shorter than ``dt``), late completions (the
surrogate drops whatever would be late) and the branching estimator (profile
means are used). It is several times faster than the simpy engine at the same
load, and its error against the simpy engine is measured in
``benchmarks/bench_env.py``; use it to train, and evaluate on the simpy engine.
"""

from __future__ import annotations

import math
import time

import numpy as np

from lokirl.core.controller import ControlContext, Decision, arrival_bin
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
from lokirl.core.router import DROP
from lokirl.sim.config import SimConfig, SimResult, assemble_result
from lokirl.sim.host import ARRIVAL_BIN_S, EpochHost
from lokirl.sim.solving import solve_decision
from lokirl.traces.types import RateSeries, Trace


class _FlowGroup:
    """A worker group with a fluid queue."""

    __slots__ = (
        "gid",
        "task",
        "variant",
        "accel",
        "rate",
        "lat",
        "acc",
        "down",
        "leaf",
        "queue",
        "queue_acc",
        "queue_up",
        "inflow",
        "inflow_acc",
        "inflow_up",
        "children",
        "wg",
        "n",
    )

    def __init__(self, gid: int, g, pipeline: Pipeline) -> None:
        v = pipeline.variant(g.variant)
        self.wg = g  # the plan's WorkerGroup (what the serving view is built from)
        self.n = 0.0  # workers serving the group now
        b = max(1, int(g.batch_size))
        sizes = v.batch_sizes(g.accelerator)
        bb = next((s for s in sizes if s >= b), sizes[-1])
        self.gid = gid
        self.task = g.task
        self.variant = g.variant
        self.accel = g.accelerator
        self.lat = v.latency(g.accelerator, bb) / 1000.0
        self.rate = b / self.lat if self.lat > 0 else 1e9  # per replica, sub-requests/s
        self.acc = v.accuracy / 100.0
        self.down = 0.0
        self.leaf = not pipeline.task(g.task).children
        self.queue = 0.0  # sub-requests waiting
        self.queue_acc = 0.0  # their path accuracy, summed
        self.queue_up = 0.0  # their time spent upstream, summed
        self.inflow = self.inflow_acc = self.inflow_up = 0.0
        # (child task index, mean sub-requests, [(group, share)], drop share)
        self.children: list[tuple[int, float, list[tuple[_FlowGroup, float]], float]] = []


class FluidSimulation(EpochHost):
    """Flow-level model of a cluster serving a pipeline (see the module docstring).

    Args:
        pipeline: The pipeline served.
        cluster: Workers per accelerator type.
        trace: Rates or arrival times.
        config: See :class:`~lokirl.sim.config.SimConfig` (``early_drop`` and
            ``branching_window`` do not apply: the surrogate always drops what would
            be late and uses the profile's branching means; ``batch_overhead_s`` is
            refused: the live path's hop belongs to the simpy engine).
        rng: The only source of randomness.
        name: Controller name recorded in the result.
        dt: Time step in seconds (at most ``epoch_s``).

    """

    def __init__(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        trace: Trace,
        config: SimConfig | None = None,
        rng: np.random.Generator | None = None,
        name: str = "",
        dt: float = 0.05,
    ) -> None:
        self.pipeline = pipeline
        self.cluster = cluster
        self.trace = trace
        self.config = config or SimConfig()
        c = self.config
        if c.batch_overhead_s or c.batch_overhead is not None or c.wake_delay is not None:
            raise ValueError(
                "the fluid engine does not model batch_overhead_s, batch_overhead or "
                "wake_delay; use the simpy engine"
            )
        if not 0 < dt <= self.config.epoch_s:
            raise ValueError(f"dt must be in (0, epoch_s={self.config.epoch_s}], got {dt}")
        self.dt = float(dt)
        self.name = name
        self._rng0 = rng if rng is not None else np.random.default_rng(0)
        self.task_names = [t.name for t in pipeline.tasks]
        self._task_index = {t: i for i, t in enumerate(self.task_names)}
        self._children = [
            [self._task_index[c] for c in t.children] for t in pipeline.tasks
        ]  # topological order: parents first
        self.roots = pipeline.roots
        self.slo_s = pipeline.slo_ms / 1000.0

    # ------------------------------------------------------------------ setup
    def reset(
        self, trace: Trace | None = None, rng: np.random.Generator | None = None
    ) -> ControlContext:
        """Start a fresh run; returns the context at time 0 (no plan yet)."""
        if trace is not None:
            self.trace = trace
        if rng is not None:
            self._rng0 = rng
        cfg = self.config
        self.arrival_rng, self.rng = self._rng0.spawn(2)
        self.trace_end = float(
            cfg.duration_s if cfg.duration_s is not None else self.trace.duration_s
        )
        if not self.trace_end > 0:
            self.trace_end = 1.0
        self.end = self.trace_end + cfg.drain_s
        n = int(math.ceil(self.end)) + 1
        self.n_sec = n
        z = lambda: np.zeros(n)  # noqa: E731
        self.s_arrivals = np.zeros(n, dtype=np.int64)
        self._init_arrival_bins(n)
        self.s_demand = z()
        self.s_capacity = z()
        self.s_frames_done = z()
        self.s_frame_viol = z()
        self.s_sub_done = z()
        self.s_sub_viol = z()
        self.s_leaf_acc = z()
        self.s_leaf_n = z()
        self.s_active = np.zeros(n, dtype=np.int64)
        self.s_queue = z()
        self.s_reconf = np.zeros(n, dtype=np.int64)
        self.s_solves = np.zeros(n, dtype=np.int64)
        self.s_queue_task = {t: z() for t in self.task_names}
        self.f_arrived = 0
        self.f_viol = 0
        self.r_arrived = self.r_on_time = self.r_dropped = 0.0
        self.r_acc_sum = 0.0
        self.leaf_on_time = self.leaf_acc_sum = 0.0
        self.solves = 0
        self.solver_time = 0.0
        self.solver_wall = 0.0
        self.reconfigurations = 0
        self.last_solve_time = 0.0
        self.last_solve_at = -math.inf
        self.pending: Plan | None = None
        self.install_at = math.inf
        self.plan: Plan | None = None
        self.groups: list[_FlowGroup] = []
        self._order: list[_FlowGroup] = []
        self.root_shares: dict[str, tuple[list[tuple[_FlowGroup, float]], float]] = {}
        self.none_rows: dict[str, list[tuple[_FlowGroup, float]]] = {}
        self.demand_estimate = 0.0
        self.t = 0.0
        self.sec_done = 0
        self.next_epoch = 0.0
        # Per worker: accelerator, variant (held or loading), plan group index (or -1),
        # loading, ready-at time, the old group served while loading (overlap), the
        # group served now and the group drained after leaving the plan.
        self.w_accel: list[str] = []
        for accel, count in self.cluster.workers.items():
            self.w_accel.extend([accel] * count)
        nw = len(self.w_accel)
        self.w_variant: list[str | None] = [None] * nw
        self.w_group = [-1] * nw
        self.w_loading = [False] * nw
        self.w_ready = [0.0] * nw
        self.w_old: list[_FlowGroup | None] = [None] * nw
        self.w_serve: list[_FlowGroup | None] = [None] * nw
        self.w_drain: list[_FlowGroup | None] = [None] * nw
        self.plan_groups: list[_FlowGroup] = []
        self.interim: dict[tuple[str, str], _FlowGroup] = {}
        self.draining: list[_FlowGroup] = []
        self._next_ready = math.inf
        self._bin = 0
        self._arr_i = 0
        self.wall_start = time.perf_counter()
        self._finished: SimResult | None = None
        return self._context(initial=True)

    # ------------------------------------------------------------- stepping
    @property
    def now(self) -> float:
        """Current simulated time in seconds."""
        return self.t

    def run_until(self, t: float) -> None:
        """Advance the clock to ``t`` in steps of ``dt``, per-second bookkeeping included."""
        t = min(float(t), self.end)
        while self.t < t - 1e-9:
            step_end = min(t, self.t + self.dt, math.floor(self.t + 1e-9) + 1.0)
            if self.pending is not None and self.install_at <= step_end - 1e-12:
                if self.install_at > self.t + 1e-12:
                    self._flow(self.install_at - self.t)
                    self.t = self.install_at
                self._install(self.pending, instant=False)
                continue
            if self._next_ready <= step_end - 1e-12:
                if self._next_ready > self.t + 1e-12:
                    self._flow(self._next_ready - self.t)
                    self.t = self._next_ready
                self._loaded()
                continue
            self._flow(step_end - self.t)
            self.t = step_end
            if abs(self.t - round(self.t)) < 1e-9 and round(self.t) > self.sec_done:
                self._second(int(round(self.t)) - 1)
                self.sec_done = int(round(self.t))

    def apply(self, decision: Decision, planner: object | None = None) -> Plan | None:
        """Act on a decision as :meth:`lokirl.sim.engine.Simulation.apply` does."""
        if not decision.resolve or self.pending is not None:
            return None
        solved = solve_decision(
            self.pipeline, self.cluster, self.config, decision, self.plan, planner
        )
        plan = solved.plan
        self.solves += 1
        self.solver_wall += solved.wall_s
        self.last_solve_at = self.t
        self.s_solves[min(int(self.t), self.n_sec - 1)] += 1
        if self.plan is None:
            self.last_solve_time = 0.0
            self._install(plan, instant=True)
            return plan
        self.solver_time += solved.delay_s
        self.last_solve_time = solved.delay_s
        self.pending = plan
        self.install_at = self.t + max(0.0, solved.delay_s)
        if solved.delay_s <= 0:
            self._install(plan, instant=False)
        return plan

    # ------------------------------------------------------------- internals
    def _queue_lengths(self) -> dict[str, int]:
        out = {t: 0.0 for t in self.task_names}
        for g in self._order:
            out[g.task] += g.queue
        return {t: int(round(v)) for t, v in out.items()}

    def _active(self) -> int:
        return sum(1 for g in self.w_group if g >= 0)

    def _spread_arrivals(self, t0: float, h: float, frames: int) -> None:
        """Count a step's ``frames`` in the sub-second bins it covers, evenly over time."""
        b0 = arrival_bin(t0)
        b1 = max(b0, int(math.ceil((t0 + h) / ARRIVAL_BIN_S - 1e-9)) - 1)
        if b1 == b0:
            self._count_arrivals(t0, frames)
            return
        edges = np.clip(np.arange(b0, b1 + 2) * ARRIVAL_BIN_S, t0, t0 + h)
        cum = np.floor(frames * (edges - t0) / h + 0.5).astype(np.int64)
        for k, n in enumerate(np.diff(cum)):
            if n:
                self._count_arrivals((b0 + k + 0.5) * ARRIVAL_BIN_S, int(n))

    def _arrivals(self, t0: float, t1: float) -> int:
        """Frames arriving in [t0, t1) (none after the trace ends; one at its end counts)."""
        if t0 >= self.trace_end:
            return 0
        t1 = min(t1, self.trace_end)
        tr = self.trace
        if isinstance(tr, RateSeries):
            rates, bin_s = tr.rates, tr.bin_s
            mean = 0.0
            k = int(t0 / bin_s)
            t = t0
            while t < t1 - 1e-12 and k < len(rates):
                e = min(t1, (k + 1) * bin_s)
                mean += rates[k] * (e - t)
                t = e
                k += 1
            return int(self.arrival_rng.poisson(mean)) if mean > 0 else 0
        arr = tr.arrivals_s
        i = self._arr_i
        # [t0, t1), but a request exactly at the trace's end (an arrival trace's last
        # one) arrives in the last slice: the simpy engine plays it too.
        side = "left"
        if t1 >= self.trace_end - 1e-9:
            t1, side = self.trace_end, "right"
        j = int(np.searchsorted(arr, t1, side=side))
        self._arr_i = j
        return max(0, j - i)

    def _flow(self, h: float) -> None:
        """Move requests for ``h`` seconds under the running plan."""
        if h <= 0:
            return
        t0 = self.t
        sec = min(int(t0 + 1e-9), self.n_sec - 1)
        frames = self._arrivals(t0, t0 + h)
        self.s_arrivals[sec] += frames
        if frames:
            self._spread_arrivals(t0, h, frames)
        self.f_arrived += frames
        nt = len(self.task_names)
        arrived = [0.0] * nt
        failed = [0.0] * nt
        served_t = [0.0] * nt
        spawned = [[0.0] * nt for _ in range(nt)]
        ti = self._task_index
        route_drop = 0.0
        spawned_total = 0.0
        if frames:
            for r in self.roots:
                k = ti[r]
                arrived[k] += frames
                shares, drop = self.root_shares.get(r, ([], 1.0))
                failed[k] += frames * drop
                route_drop += frames * drop
                for g, s in shares:
                    g.inflow += frames * s
                    g.inflow_acc += frames * s
        slo = self.slo_s
        leaf_n = leaf_acc = 0.0
        for g in self._order:  # parents before children
            k = ti[g.task]
            if g.inflow:
                q = g.queue + g.inflow
                g.queue_acc += g.inflow_acc
                g.queue_up += g.inflow_up
                g.queue = q
                g.inflow = g.inflow_acc = g.inflow_up = 0.0
            q = g.queue
            if q <= 1e-12:
                g.queue = g.queue_acc = g.queue_up = 0.0
                continue
            n = g.n  # workers serving it now (a loading worker joins when ready)
            mu = n * g.rate
            up = g.queue_up / q
            # What could not be served before its deadline is dropped.
            budget = slo - up - g.down - g.lat
            if n > 0:
                qmax = max(0.0, budget) * mu
            else:  # no replica ready: the queue waits, up to its deadline
                qmax = q if budget > h else 0.0
            drop = q - qmax if q > qmax else 0.0
            served = min(q - drop, mu * h)
            if drop > 0 or served > 0:
                frac_acc = g.queue_acc / q
                failed[k] += drop
                served_t[k] += served
                left = q - drop - served
                acc_mass = served * frac_acc
                g.queue = left
                g.queue_acc = left * frac_acc
                wait = (left / mu) if mu > 0 else 0.0
                g.queue_up = left * (up + h)
                self.r_on_time += served
                self.r_dropped += drop
                self.r_acc_sum += 100.0 * acc_mass * g.acc
                self.s_sub_done[sec] += served + drop
                self.s_sub_viol[sec] += drop
                if g.leaf:
                    leaf_n += served
                    leaf_acc += 100.0 * acc_mass * g.acc
                elif served > 0:
                    path_acc = acc_mass * g.acc / served
                    elapsed = up + wait + g.lat
                    for c, mean, targets, dshare in g.children:
                        out = served * mean
                        if out <= 0:
                            continue
                        arrived[c] += out
                        spawned[k][c] += out
                        spawned_total += out
                        failed[c] += out * dshare
                        route_drop += out * dshare
                        for cg, s in targets:
                            amt = out * s
                            cg.inflow += amt
                            cg.inflow_acc += amt * path_acc
                            cg.inflow_up += amt * elapsed
        # Inflow into a task counts at the task (roots were counted above).
        self.r_arrived += frames * len(self.roots) + spawned_total
        if route_drop:
            self.r_dropped += route_drop
            self.s_sub_done[sec] += route_drop
            self.s_sub_viol[sec] += route_drop
        if leaf_n:
            self.s_leaf_n[sec] += leaf_n
            self.s_leaf_acc[sec] += leaf_acc
            self.leaf_on_time += leaf_n
            self.leaf_acc_sum += leaf_acc
        if frames:
            ok = self._frame_success(arrived, failed, served_t, spawned)
            viol = int(self.rng.binomial(frames, min(1.0, max(0.0, 1.0 - ok))))
            self.f_viol += viol
            self.s_frames_done[sec] += frames
            self.s_frame_viol[sec] += viol

    def _frame_success(self, arrived, failed, served, spawned) -> float:
        """Share of frames on time given each task's failure share in this step."""
        nt = len(self.task_names)
        ok = [1.0] * nt
        for k in range(nt - 1, -1, -1):
            p = failed[k] / arrived[k] if arrived[k] > 0 else 0.0
            s = 1.0 - min(1.0, p)
            for c in self._children[k]:
                m = spawned[k][c] / served[k] if served[k] > 0 else 0.0
                # A frame's sub-requests to one task arrive together and fail
                # together (tail drops hit whole frames): it fails there with the
                # task's failure share whenever it has at least one sub-request.
                s *= 1.0 - (1.0 - math.exp(-m)) * (1.0 - ok[c])
            ok[k] = s
        out = 1.0
        for r in self.roots:
            out *= ok[self._task_index[r]]
        return out

    # Plans ---------------------------------------------------------------
    def _install(self, plan: Plan, instant: bool) -> None:
        """Put ``plan`` in force as the simpy engine does: map groups, swap, move queues."""
        self.pending = None
        self.install_at = math.inf
        mode = self.config.swap
        old = self.groups + self.draining
        groups = [_FlowGroup(i, g, self.pipeline) for i, g in enumerate(plan.groups)]
        slots: dict[tuple[str, str], list[int]] = {}
        for g, pg in zip(groups, plan.groups, strict=True):
            slots.setdefault((g.variant, g.accel), []).extend([g.gid] * pg.replicas)
        nw = len(self.w_accel)
        assigned: dict[int, int] = {}
        leftover: list[int] = []
        for (variant, accel), want in slots.items():
            holders = [
                w for w in range(nw) if self.w_variant[w] == variant and self.w_accel[w] == accel
            ]
            holders.sort(key=lambda w: (self.w_group[w] < 0, self.w_loading[w], w))
            for w, gid in zip(holders, want, strict=False):
                assigned[w] = gid
            leftover.extend(want[len(holders) :])
        pool = [w for w in range(nw) if w not in assigned]
        pool.sort(key=lambda w: (self.w_group[w] >= 0, w))
        for gid in leftover:
            for i, w in enumerate(pool):
                if self.w_accel[w] == groups[gid].accel:
                    assigned[w] = gid
                    del pool[i]
                    break
        sec = min(int(self.t), self.n_sec - 1)
        drains = drains_on_removal(mode)
        drainers: set[int] = set()
        for w in range(nw):
            gid = assigned.get(w, -1)
            loading = self.w_loading[w]
            prev_old = self.w_old[w]
            held = (prev_old.variant if prev_old is not None else None) if loading else None
            if not loading:
                held = self.w_variant[w]
            serving = self.w_serve[w]
            self.w_group[w] = gid
            self.w_drain[w] = None
            if gid < 0:
                if loading:  # the load is no longer wanted: keep what it holds
                    self.w_loading[w] = False
                    self.w_variant[w] = held
                self.w_old[w] = None
                if drains and serving is not None and serving.queue > 1e-9:
                    self.w_drain[w] = serving
                    drainers.add(id(serving))
                continue
            g = groups[gid]
            if self.w_variant[w] == g.variant:
                continue
            self.w_variant[w] = g.variant
            if instant or held == g.variant:
                self.w_loading[w] = False
                self.w_old[w] = None
                continue
            self.reconfigurations += 1
            self.s_reconf[sec] += 1
            swap = plan_swap(self.pipeline, self.w_accel[w], held, g.variant, mode)
            self.w_old[w] = serving if swap.old_serves and serving is not None else None
            self.w_loading[w] = swap.ready_s > 0
            self.w_ready[w] = self.t + swap.ready_s
            if not self.w_loading[w]:
                self.w_old[w] = None
        same: dict[tuple[str, str], _FlowGroup] = {}
        for g in groups:
            same.setdefault((g.variant, g.accel), g)
        old_served = {
            (og.variant, self.w_accel[w]) for w, og in enumerate(self.w_old) if og is not None
        }
        self.interim = {}
        self.draining = []
        orphans: list[_FlowGroup] = []
        for og in old:
            key = (og.variant, og.accel)
            target = same.get(key)
            if target is not None:
                self._move(og, [(target, 1.0)])
            elif key in old_served:
                keep = self.interim.setdefault(key, og)
                if keep is not og:
                    self._move(og, [(keep, 1.0)])
            elif id(og) in drainers:
                self.draining.append(og)
            elif og.queue > 0:
                orphans.append(og)
        alive = {id(g) for g in self.draining}
        for w in range(nw):
            og = self.w_old[w]
            if og is not None:
                self.w_old[w] = self.interim.get((og.variant, self.w_accel[w]), og)
            if self.w_drain[w] is not None and id(self.w_drain[w]) not in alive:
                self.w_drain[w] = None
        self.plan_groups = groups
        self.plan = plan
        self._next_ready = min(
            (self.w_ready[w] for w in range(nw) if self.w_loading[w]), default=math.inf
        )
        self._rebuild_routes()
        for og in orphans:
            self._move(og, self.none_rows.get(og.task, []))

    def _loaded(self) -> None:
        """Workers whose load finished switch to their new variant; routes are rebuilt."""
        t = self.t + 1e-12
        nxt = math.inf
        for w, loading in enumerate(self.w_loading):
            if not loading:
                continue
            if self.w_ready[w] <= t:
                self.w_loading[w] = False
                self.w_old[w] = None
            else:
                nxt = min(nxt, self.w_ready[w])
        self._next_ready = nxt
        if self.plan is not None:
            self._rebuild_routes()

    def _move(self, og: _FlowGroup, moves: list[tuple[_FlowGroup, float]]) -> None:
        """Move ``og``'s queue by shares; what the shares leave is dropped (``no_worker``)."""
        if og.queue <= 0:
            return
        moved = 0.0
        for tg, share in moves:
            tg.queue += og.queue * share
            tg.queue_acc += og.queue_acc * share
            tg.queue_up += og.queue_up * share
            moved += share
        lost = og.queue * max(0.0, 1.0 - moved)
        if lost > 0:
            sec = min(int(self.t), self.n_sec - 1)
            self.r_dropped += lost
            self.s_sub_done[sec] += lost
            self.s_sub_viol[sec] += lost
        og.queue = og.queue_acc = og.queue_up = 0.0

    def _rebuild_routes(self) -> None:
        plan = self.plan
        assert plan is not None
        nw = len(self.w_accel)
        view = serving_view(
            plan,
            [
                WorkerServing(
                    self.w_accel[w],
                    None if self.w_group[w] < 0 else self.w_group[w],
                    not self.w_loading[w],
                    self.w_old[w].wg if self.w_loading[w] and self.w_old[w] is not None else None,
                )
                for w in range(nw)
            ],
        )
        groups = list(self.plan_groups)
        for ig in view.interim:
            g = self.interim[(ig.variant, ig.accelerator)]
            g.gid = len(groups)
            groups.append(g)
        in_view = {(ig.variant, ig.accelerator) for ig in view.interim}
        gone = [g for k, g in self.interim.items() if k not in in_view]
        for g in gone:
            del self.interim[(g.variant, g.accel)]
        for g in groups:
            g.n = 0.0
        for g in self.draining:
            g.n = 0.0
        self.draining = [g for g in self.draining if g.queue > 1e-9]  # the rest is drained
        alive = {id(g) for g in self.draining} | {id(g) for g in groups}
        for w, gid in enumerate(view.serving):
            g = groups[gid] if gid is not None else None
            if g is None:
                d = self.w_drain[w]
                g = d if d is not None and id(d) in alive else None
                self.w_drain[w] = g
            self.w_serve[w] = g
            if g is not None:
                g.n += 1.0
        orphans = [g for g in self.draining if g.n == 0]
        self.draining = [g for g in self.draining if g.n > 0]
        self.groups = groups
        self._order = sorted(
            groups + self.draining, key=lambda g: (self._task_index[g.task], g.gid)
        )
        demand = self.demand_estimate if self.demand_estimate > 0 else plan.demand
        table = serving_table(view, self.pipeline, demand)
        for g, down in zip(groups, table.downstream_ms, strict=True):
            g.down = down / 1000.0

        def shares(key) -> tuple[list[tuple[_FlowGroup, float]], float] | None:
            cum = table.cumulative.get(key)
            if cum is None:
                return None
            out: list[tuple[_FlowGroup, float]] = []
            drop = 0.0
            prev = 0.0
            for i, c in zip(table.targets[key], cum, strict=True):
                s = max(0.0, min(1.0, c) - prev)
                prev = max(prev, min(1.0, c))
                if i == DROP:
                    drop += s
                else:
                    out.append((groups[i], s))
            drop += max(0.0, 1.0 - prev)
            return out, drop

        self.root_shares = {r: shares((r, None)) or ([], 1.0) for r in self.roots}
        self.none_rows = {}
        for t in self.task_names:
            row = shares((t, None))
            self.none_rows[t] = row[0] if row is not None else []
        for g in groups:
            v = self.pipeline.variant(g.variant)
            kids = []
            for child in self.pipeline.task(g.task).children:
                row = shares((child, g.gid)) or shares((child, None)) or ([], 1.0)
                kids.append((self._task_index[child], v.branching.get(child, 1.0), row[0], row[1]))
            g.children = kids
        for g in self.draining:  # served after the plan changed: children routed as unknown
            v = self.pipeline.variant(g.variant)
            g.children = [
                (self._task_index[c], v.branching.get(c, 1.0), *(shares((c, None)) or ([], 1.0)))
                for c in self.pipeline.task(g.task).children
            ]
        for g in gone + orphans:
            self._move(g, self.none_rows.get(g.task, []))

    def _result(self) -> SimResult:
        in_flight = sum(g.queue for g in self._order)
        arrived = int(round(self.r_arrived))
        dropped = int(round(self.r_dropped))
        flight = int(round(in_flight))
        on_time = max(0, arrived - dropped - flight)
        subs = Tally(
            arrived=arrived,
            on_time=on_time,
            late=0,
            dropped={"deadline": dropped} if dropped else {},
            in_flight=flight,
            # the fluid mean accuracy over the rounded count (the fluid sum over it
            # could read above the most accurate path)
            accuracy_sum=on_time * (self.r_acc_sum / self.r_on_time if self.r_on_time else 0.0),
        )
        f_ok = self.f_arrived - self.f_viol
        frames = Tally(
            arrived=self.f_arrived,
            on_time=f_ok,
            late=0,
            dropped={"deadline": self.f_viol} if self.f_viol else {},
            in_flight=0,
            accuracy_sum=f_ok
            * (self.leaf_acc_sum / self.leaf_on_time if self.leaf_on_time else 0.0),
        )
        return assemble_result(self, frames, subs)


__all__ = ["FluidSimulation"]
