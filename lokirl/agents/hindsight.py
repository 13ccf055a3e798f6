"""A hindsight controller: knows the episode's whole arrival series and plans with it.

The reference every other controller is measured against from above. It is not a
forecaster with a perfect view of the next seconds (that is
:class:`~lokirl.agents.heuristics.OracleController`): it sees the *realised*
arrivals of the whole episode before the first epoch and picks, by dynamic
programming, which plan is in force in each epoch so as to maximise the
evaluation's reward.

Method:

1. **Arrivals.** The simpy engine draws arrivals lazily from its own generator
   (``Simulation.arrival_rng``, independent of everything a controller does:
   common random numbers). :func:`realised_arrivals` replays a copy of that
   generator the way the engine draws from it and returns the exact arrival times
   of the episode; without a simulator it falls back to the trace's expected
   counts.
2. **Plan library.** The allocator, in its deterministic (work-bounded) mode,
   solves a geometric grid of root demands (:attr:`HindsightKnobs.grid_step`
   apart, from the trace's lowest rate to its peak times
   :attr:`HindsightKnobs.headroom`); the grid points lie on one global lattice, so
   that episodes on the same pipeline and cluster share their solves through a
   cache (:func:`plan_library`); plans with identical worker groups are kept once.
3. **Epoch values.** For every library plan and every epoch, a per-group fluid
   model of the simulator. The router is the simulator's
   (:func:`~lokirl.core.router.build_routing_table`), rebuilt every epoch for the
   EWMA demand estimate, which the realised arrivals fix whatever the controller
   does (:func:`router_estimates`): it drops at admission what the plan cannot
   carry at the estimate and gives each group a fixed share, so that when the
   actual rate exceeds a stale estimate the most accurate groups overflow while
   others idle. Each group's queue, fed in bins of :attr:`HindsightKnobs.dt_s`
   seconds and drained at its capacity (x :attr:`HindsightKnobs.derate`), loses
   what exceeds :attr:`HindsightKnobs.burst_s` seconds of it (the short-timescale
   burst allowance: a longer queue misses the SLO). The epoch's value mirrors the
   reward of :class:`~lokirl.envs.serving.LokiServingEnv`: on-time share x accuracy
   / 100 (each task's served-weighted variant accuracy, multiplied along
   root-to-leaf paths) minus ``weights.violation`` x violated share minus
   ``weights.workers`` x active share.
4. **Switch costs.** Switching from plan ``p`` to ``q`` at an epoch costs
   ``weights.reconfiguration`` x the share of the cluster's workers that change
   variant (per (variant, accelerator), the replicas ``q`` adds) plus
   ``weights.solver`` x the modelled solve time of ``q``; for the solve time the
   epoch is served by ``p``, then for the longest load time of a changed variant
   by a transition capacity per swap mode (``overlap`` with both variants fitting
   in memory: the smaller of the two plans' values; ``stop``: ``q`` less the
   workers loading; ``free``: no load time), then by ``q``.
5. **Dynamic programming** over (epoch, plan in force) maximises the sum; the
   first plan is installed at time 0 for free, as the simulator does.
6. **Play.** :class:`HindsightController` re-solves at the epochs where the
   schedule changes plan and, as the simulator's planner hook, returns that library
   plan (no solve at play time): the plan is in force after its modelled solve
   time, as the DP assumed.
7. **Replay.** The DP is optimal for the model, not for the simulator. ``hindsight``
   therefore plans with each of a few knob sets (:data:`DEFAULT_CANDIDATES`),
   replays each schedule on a replica of the episode (same generators as the
   episode's at reset: the same arrivals, routing and service draws; the reward
   mirrored epoch by epoch, :func:`replay_reward`) and plays the best.
   ``hindsight-model`` plays the default knobs' schedule without replay;
   ``hindsight-rates`` plans on the trace's noiseless rates instead of the realised
   arrivals (a reference that knows the future rates but not the noise).

It is a bound in the sense of a strong reference, not a proof: the schedule is the
best of a few DP schedules on the realised episode, and a controller outside the
plan library or beyond the model could still score higher (docs/results.md,
"Hindsight upper bound", says where it stands against the others).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lokirl.agents.fluid_values import plan_values
from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import KEEP, ControlContext, Decision, ewma_demand
from lokirl.core.controllers import CONTROLLERS
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.sim.config import solve_delay
from lokirl.traces.types import RateSeries, Trace

#: Reward weights used when no environment is given (those of ``RewardWeights()``).
_DEFAULT_WEIGHTS = {"violation": 1.0, "reconfiguration": 0.5, "solver": 0.1, "workers": 0.05}


@dataclass(frozen=True)
class HindsightKnobs:
    """The tunable knobs of the hindsight controller.

    Attributes:
        grid_step: Relative step of the geometric demand grid of the plan library.
        headroom: The library covers demands up to the trace's peak rate times this.
        burst_s: Burst allowance: seconds of its capacity a plan's queue absorbs
            before frames are lost (short-timescale bursts within an epoch).
        derate: Share of each group's capacity the fluid model serves (0.9 was
            the best on validation, ``lokirl tune --controller hindsight``).
        dt_s: Bin width of the fluid model, seconds.

    """

    grid_step: float = 0.03
    headroom: float = 1.3
    burst_s: float = 0.1
    derate: float = 0.9
    dt_s: float = 0.05

    def __post_init__(self) -> None:
        if not self.grid_step > 0:
            raise ValueError("grid_step must be positive")
        if not self.headroom >= 1:
            raise ValueError("headroom must be >= 1")
        if not self.burst_s >= 0:
            raise ValueError("burst_s must be >= 0")
        if not 0 < self.derate <= 2:
            raise ValueError("derate must be in (0, 2]")
        if not self.dt_s > 0:
            raise ValueError("dt_s must be positive")


# --------------------------------------------------------------------------- arrivals
def _is_simpy(sim: Any) -> bool:
    """Whether ``sim`` is the simpy engine (whose generators we know how to replay)."""
    from lokirl.sim.engine import Simulation

    return isinstance(sim, Simulation)


def realised_arrivals(trace: Trace, sim: Any | None = None) -> np.ndarray:
    """The arrival times (seconds) of the episode, sorted.

    Args:
        trace: The trace played.
        sim: The freshly reset simulator (:class:`~lokirl.sim.engine.Simulation`)
            before its first epoch; its arrival generator is copied and replayed
            as the engine draws from it (per bin: a Poisson count, the times, one
            uniform per root task). ``None`` or another engine (the fluid one draws
            differently): the expected arrivals of a rate series, evenly spaced in
            each bin.

    """
    if not isinstance(trace, RateSeries):
        arr = np.asarray(trace.arrivals_s, dtype=float)
        end = getattr(sim, "trace_end", trace.duration_s)
        return np.sort(arr[arr <= end])
    end = float(getattr(sim, "trace_end", trace.duration_s))
    bin_s = float(trace.bin_s)
    rng0 = getattr(sim, "arrival_rng", None)
    out: list[np.ndarray] = []
    if rng0 is None or not _is_simpy(sim):
        for k, rate in enumerate(np.asarray(trace.rates, dtype=float)):
            t0 = k * bin_s
            if t0 >= end:
                break
            n = int(round(rate * bin_s))
            out.append(t0 + (np.arange(n) + 0.5) * bin_s / max(n, 1))
    else:
        rng = copy.deepcopy(rng0)
        n_roots = len(sim.roots)
        for k, rate in enumerate(trace.rates):
            t0 = k * bin_s
            if t0 >= end:
                break
            count = int(rng.poisson(rate * bin_s))
            times = np.sort(t0 + rng.random(count) * bin_s)
            rng.random((count, n_roots))
            out.append(times)
    arr = np.concatenate(out) if out else np.zeros(0)
    return arr[arr < end]


# --------------------------------------------------------------------------- library
def spread_within_seconds(arrivals_s: np.ndarray) -> np.ndarray:
    """The same number of arrivals in each second, evenly spaced within it (sorted).

    Args:
        arrivals_s: Arrival times in seconds.

    Returns:
        For a second holding ``c`` arrivals, the times ``s + (i + 0.5) / c``.

    """
    if len(arrivals_s) == 0:
        return np.asarray(arrivals_s, dtype=float)
    counts = np.bincount(np.floor(np.asarray(arrivals_s, dtype=float)).astype(np.int64))
    sec = np.repeat(np.arange(len(counts)), counts)
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(sec)) - np.repeat(start, counts)
    return sec + (rank + 0.5) / np.repeat(counts, counts)


def expected_arrivals(trace: RateSeries, end_s: float) -> np.ndarray:
    """Arrival times at the trace's rates without noise.

    Each second holds its rounded expected count (the rate at its middle), evenly
    spread over it.

    Args:
        trace: The rate trace.
        end_s: Seconds to cover.

    Returns:
        Sorted arrival times.

    """
    n = int(math.ceil(end_s))
    rates = np.asarray(trace.rates, dtype=float)
    idx = np.minimum(((np.arange(n) + 0.5) / trace.bin_s).astype(np.int64), len(rates) - 1)
    counts = np.round(np.maximum(rates[idx], 0.0)).astype(np.int64)
    sec = np.repeat(np.arange(n), counts)
    return spread_within_seconds(sec.astype(float))


def _lattice(demand: float, step: float) -> float:
    """``demand`` snapped to the global geometric lattice of relative ``step``."""
    s = math.log1p(step)
    return float(math.exp(round(math.log(demand) / s) * s))


def demand_grid(low: float, high: float, step: float) -> list[float]:
    """Geometric grid from ``low`` to ``high`` (both covered) on the global lattice."""
    low = max(low, 1e-3)
    high = max(high, low)
    s = math.log1p(step)
    k0 = math.floor(math.log(low) / s)
    k1 = math.ceil(math.log(high) / s)
    return [float(math.exp(k * s)) for k in range(k0, k1 + 1)]


def plan_library(
    pipeline: Pipeline,
    cluster: Cluster,
    demands: Sequence[float],
    options: AllocatorOptions,
    cache: dict | None = None,
    store: Any = None,
) -> list[Plan]:
    """Plans for ``demands`` (cold, deterministic solves), identical plans kept once.

    Args:
        pipeline: The pipeline.
        cluster: The cluster.
        demands: Root demands to solve for.
        options: Allocator options; forced to ``deterministic``, cold, no churn term.
        cache: Solves memoised by (pipeline, cluster, options, demand), shared by
            the caller across episodes.
        store: A :class:`~lokirl.sim.plan_library.PlanLibrary` (plans on disk shared
            by processes and runs, filed by :func:`~lokirl.sim.plan_library.plan_key`):
            a plan found there is not solved again, a plan solved is filed there.

    Returns:
        The distinct plans, by increasing capacity; failed solves left out.

    """
    from lokirl.sim.plan_library import plan_key

    opts = replace(options, deterministic=True, warm_start=False, churn_weight=0.0)
    wk = tuple(sorted(cluster.workers.items()))
    out: dict[tuple, Plan] = {}
    for d in demands:
        key = ("hindsight-plan", pipeline.name, wk, opts, round(float(d), 9))
        plan = cache.get(key) if cache is not None else None
        if plan is None:
            skey = plan_key(pipeline, cluster, float(d), opts, None) if store is not None else ""
            plan = store.get(skey) if skey else None
            if plan is None:
                plan = solve(pipeline, cluster, float(d), opts)
                if skey:
                    store.put(skey, plan)
            if cache is not None:
                cache[key] = plan
        if plan.status == "failed" or not plan.groups:
            continue
        sig = tuple(sorted((g.key, g.replicas) for g in plan.groups))
        out.setdefault(sig, plan)
    return sorted(out.values(), key=lambda p: (p.max_demand, p.demand))


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class EpochModel:
    """What the DP needs per (epoch, plan), from the fluid model.

    Attributes:
        value: Modelled reward of holding the plan for the epoch (epochs x plans).
        served: On-time frames (epochs x plans).
        arrivals: Frames arriving per epoch.
        rate: Peak rate over the epoch's fluid bins, frames/s (epochs).

    """

    value: np.ndarray
    served: np.ndarray
    arrivals: np.ndarray
    rate: np.ndarray


def router_estimates(arrivals_s: np.ndarray, n_epochs: int, epoch_s: float) -> np.ndarray:
    """The simulator's demand estimate at each epoch start (0 before any second).

    The router's table is rebuilt every epoch for Loki's EWMA of the per-second
    arrivals so far (:func:`~lokirl.core.controller.ewma_demand`): with the realised
    arrivals known, the estimate is known too, whatever the controller does.
    """
    n_sec = int(math.ceil(n_epochs * epoch_s)) + 1
    idx = arrivals_s.astype(np.int64)
    counts = np.bincount(idx[idx < n_sec], minlength=n_sec).astype(float)
    out = np.zeros(n_epochs)
    for k in range(1, n_epochs):
        s = int(math.floor(k * epoch_s + 1e-9))
        out[k] = ewma_demand(counts[max(0, s - 120) : s].tolist())
    return out


def epoch_model(
    arrivals_s: np.ndarray,
    n_epochs: int,
    epoch_s: float,
    library: Sequence[Plan],
    workers: int,
    knobs: HindsightKnobs,
    weights: dict[str, float],
    pipeline: Pipeline,
) -> EpochModel:
    """Fluid-model reward of holding each library plan in each epoch.

    Each plan is played alone over the whole episode, group by group. The router
    is the simulator's (:func:`~lokirl.core.router.build_routing_table`), rebuilt
    every epoch for the EWMA demand estimate ``D`` (:func:`router_estimates`): it
    drops at admission what the plan cannot carry at ``D`` and gives each group a
    fixed share, so that at the actual arrival rate ``A`` a group receives its load
    at ``D`` times ``A / D``. Per bin of ``knobs.dt_s`` each group's queue grows by
    what it receives, shrinks by its capacity (x ``knobs.derate``), and loses what
    exceeds ``knobs.burst_s`` seconds of it. A frame is lost when any of its
    requests is: per task, a share ``f`` of requests lost loses ``1 - (1 - f)^b`` of
    the frames, ``b`` the task's requests per frame.
    """
    per_epoch = max(1, int(round(epoch_s / knobs.dt_s)))
    dt = epoch_s / per_epoch
    n_bins = n_epochs * per_epoch
    idx = np.minimum((arrivals_s / dt).astype(np.int64), n_bins - 1)
    a_bin = np.bincount(idx, minlength=n_bins).astype(float)[:n_bins]
    est = router_estimates(arrivals_s, n_epochs, epoch_s)
    owner: list[int] = []
    cap: list[float] = []
    tasks: list[str] = []
    accs: list[float] = []
    for j, plan in enumerate(library):
        for g in plan.groups:
            owner.append(j)
            cap.append(g.capacity)
            tasks.append(g.task)
            accs.append(g.accuracy)
    n_g = len(owner)
    own = np.asarray(owner)
    capg = np.asarray(cap) * knobs.derate
    unit = np.zeros((n_epochs, n_g))  # requests per arriving frame, per group
    admit = np.zeros((n_epochs, len(library)))
    memo: dict[tuple[int, float], tuple[np.ndarray, float]] = {}
    for k in range(n_epochs):
        for j, plan in enumerate(library):
            load, drop = routing_row(memo, j, plan, pipeline, est[k])
            unit[k, own == j] = load
            admit[k, j] = 1.0 - drop
    q = np.zeros(n_g)
    qmax = capg * knobs.burst_s
    per_bin = capg * dt
    lost = np.zeros((n_epochs, n_g))
    fed = np.zeros((n_epochs, n_g))
    for b in range(n_bins):
        k = b // per_epoch
        x = unit[k] * a_bin[b]
        q = q + x
        over = np.maximum(0.0, q - per_bin - qmax)
        q = np.maximum(0.0, q - per_bin - over)
        lost[k] += over
        fed[k] += x
    a_ep = a_bin.reshape(n_epochs, per_epoch).sum(axis=1)
    rate = a_bin.reshape(n_epochs, per_epoch).max(axis=1) / dt
    value, served = plan_values(
        library,
        own,
        np.asarray(tasks),
        np.asarray(accs),
        fed,
        lost,
        admit,
        a_ep,
        workers,
        weights,
        pipeline,
    )
    return EpochModel(value, served, a_ep, rate)


def estimate_level(estimate: float) -> int:
    """The point of the 1% lattice of demand estimates the routing is built for."""
    return round(math.log(max(estimate, 1e-6)) / math.log1p(0.01))


def routing_row(
    memo: dict, j: int, plan: Plan, pipeline: Pipeline, estimate: float
) -> tuple[np.ndarray, float]:
    """Library plan ``j``'s requests per frame per group, and its root drop share.

    The simulator's routing table (:func:`~lokirl.core.router.build_routing_table`)
    for the demand estimate, on a 1% lattice of estimates.

    Args:
        memo: Tables already built, by (library index, lattice point); filled here.
        j: The plan's library index.
        plan: The plan.
        pipeline: The pipeline.
        estimate: The router's demand estimate (0: the plan's own demand).

    Returns:
        (expected requests per arriving frame for each of the plan's groups, the
        share of frames dropped at admission).

    """
    from lokirl.core.router import build_routing_table

    d = estimate if estimate > 0 else plan.demand
    key = (j, estimate_level(d))
    if key not in memo:
        dq = math.exp(key[1] * math.log1p(0.01))
        table = build_routing_table(plan, pipeline, dq)
        drop = max(table.drop_share.get(r, 0.0) for r in pipeline.roots)
        memo[key] = (np.asarray(table.expected_load) / max(dq, 1e-9), drop)
    return memo[key]


def switch_terms(
    pipeline: Pipeline, library: Sequence[Plan], swap: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (from, to) pair of library plans: workers changing variant, load seconds, down share.

    Returns:
        ``changed`` (workers that change variant), ``load_s`` (longest load time of
        a changed variant; 0 under ``free``), ``down`` (share of ``to``'s workers
        that cannot serve while loading: 0 under ``overlap`` when old and new fit
        together), all plans x plans.

    """
    n = len(library)
    reps = [p.replicas_by_accelerator() for p in library]
    changed = np.zeros((n, n))
    load_s = np.zeros((n, n))
    down = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            adds = {k: r - reps[i].get(k, 0) for k, r in reps[j].items() if r > reps[i].get(k, 0)}
            c = sum(adds.values())
            changed[i, j] = c
            if c == 0 or swap == "free":
                continue
            load_s[i, j] = max(pipeline.variant(v).load_time_s for v, _ in adds)
            if swap == "stop":
                down[i, j] = c / max(1, library[j].active_workers)
                continue
            # overlap: a worker whose old and new variants do not fit together stops.
            olds = [k for k, r in reps[i].items() if r > reps[j].get(k, 0)]
            stops = 0
            for v, acc in adds:
                fits = all(pipeline.fits(acc, [ov, v]) is not False for ov, oa in olds if oa == acc)
                stops += 0 if fits else adds[(v, acc)]
            down[i, j] = stops / max(1, library[j].active_workers)
    return changed, load_s, down


@dataclass(frozen=True, eq=False)
class SwitchModel:
    """What a switch between library plans costs within its epoch (the DP's terms).

    Attributes:
        f_delay: Share of the epoch the old plan serves while the target's solve runs
            (per target plan).
        f_load: Share of the epoch in transition while new variants load (from x to).
        down: Share of the target's workers that cannot serve while loading (from x to).
        fixed: Reconfiguration and solver terms of the reward (from x to).
        violation: The reward's violation weight.

    """

    f_delay: np.ndarray
    f_load: np.ndarray
    down: np.ndarray
    fixed: np.ndarray
    violation: float

    @classmethod
    def build(
        cls,
        library: Sequence[Plan],
        pipeline: Pipeline,
        workers: int,
        epoch_s: float,
        swap: str,
        weights: dict[str, float],
        solver_time: str | float = "model",
        terms: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> SwitchModel:
        """The terms for ``library`` (see :func:`switch_terms` and :func:`plan_schedule`).

        Args:
            library: The plans.
            pipeline: The pipeline (its variants' load times and co-location).
            workers: Workers in the cluster.
            epoch_s: Epoch length (s).
            swap: The swap mode.
            weights: Reward weights.
            solver_time: The modelled solve time (``"model"`` or s).
            terms: :func:`switch_terms` of the same library, pipeline and swap mode,
                computed before (a caller binding one library many times keeps them);
                computed here if absent.

        """
        changed, load_s, down = terms or switch_terms(pipeline, library, swap)
        delay = np.array([solve_delay(p, solver_time) for p in library])
        f_delay = np.minimum(1.0, delay / epoch_s)  # per target plan
        f_load = np.minimum(1.0 - f_delay[None, :], load_s / epoch_s)  # from x to
        fixed = (
            -weights["reconfiguration"] * changed / max(1, workers)
            - weights["solver"] * delay[None, :]
        )
        return cls(f_delay, f_load, down, fixed, float(weights["violation"]))

    def epoch_values(self, vk: np.ndarray, served: np.ndarray, arrivals: float) -> np.ndarray:
        """Modelled reward of an epoch that starts in plan x and switches to y (x, y).

        The diagonal is not a stay (it charges a solve): callers put the stay's
        value, ``vk``, there.
        """
        a = max(float(arrivals), 1.0)
        # The transition's value: overlap (fitting) serves the worse of the two
        # plans; workers that cannot serve while loading lose their share of q's
        # on-time frames, each counting as a violation too.
        lossy = self.down * (served[None, :] / a) * (1.0 + self.violation)
        trans = np.minimum(vk[:, None], vk[None, :]) - lossy
        return (
            self.f_delay[None, :] * vk[:, None]
            + self.f_load * trans
            + (1.0 - self.f_delay[None, :] - self.f_load) * vk[None, :]
            + self.fixed
        )

    def row_values(self, vk: np.ndarray, served: np.ndarray, arrivals: float, x: int) -> np.ndarray:
        """Row ``x`` of :meth:`epoch_values` (an epoch starting in plan ``x``), alone.

        The same arithmetic, element by element, in O(plans) instead of O(plans²):
        what a chooser that knows the plan in force needs.
        """
        a = max(float(arrivals), 1.0)
        lossy = self.down[x] * (served / a) * (1.0 + self.violation)
        trans = np.minimum(vk[x], vk) - lossy
        return (
            self.f_delay * vk[x]
            + self.f_load[x] * trans
            + (1.0 - self.f_delay - self.f_load[x]) * vk
            + self.fixed[x]
        )


@dataclass(frozen=True, eq=False)
class PastChooser:
    """Hindsight's plan evaluation without the future (a diagnostic, ``hindsight-pastH``).

    At each epoch it scores every library plan by the modelled reward the plan would
    have had in the epoch just ended (the fluid model on arrivals already seen), held
    for ``horizon`` epochs, less what switching to it costs (:class:`SwitchModel`),
    and moves to the best when that beats staying. No future arrival enters a
    decision (the first epoch aside: its plan is the best for that epoch, as any
    controller starts from a plan for its first demand).

    Attributes:
        value: The epoch model's values (epochs x plans).
        served: Its on-time frames (epochs x plans).
        arrivals: Its frames per epoch.
        switch: Switch costs.
        horizon: Epochs a chosen plan is expected to be held.
        foresight: Epochs of perfect foresight (0: none; 1: it scores the plans on the
            epoch it decides, as a perfect one-epoch forecast would): a diagnostic
            of what a forecast is worth to this chooser.
        ahead: The model the foresight reads (``None``: this one, on the realised
            arrivals; :func:`expected_arrivals` gives one on the trace's rates only,
            what a perfect rate forecast would know).

    """

    value: np.ndarray = field(repr=False)
    served: np.ndarray = field(repr=False)
    arrivals: np.ndarray = field(repr=False)
    switch: SwitchModel = field(repr=False)
    horizon: int = 5
    foresight: int = 0
    ahead: EpochModel | None = field(default=None, repr=False)

    def choose(self, epoch: int, current: int | None) -> int:
        """The library index to hold from ``epoch`` on, given the plan in force."""
        if epoch <= 0:
            return int(np.argmax(self.value[0]))
        # the epoch just ended, or (foresight) one still to come
        k = min(epoch - 1 + self.foresight, len(self.value) - 1)
        src = self.ahead if self.foresight and self.ahead is not None else None
        vk = src.value[k] if src is not None else self.value[k]
        served = src.served[k] if src is not None else self.served[k]
        arrived = src.arrivals[k] if src is not None else self.arrivals[k]
        if current is None:
            return int(np.argmax(vk))
        return hold_or_switch(self.switch, vk, served, arrived, current, self.horizon)


def hold_or_switch(
    switch: SwitchModel,
    vk: np.ndarray,
    served: np.ndarray,
    arrived: float,
    current: int,
    horizon: int,
) -> int:
    """The plan to hold: ``current`` unless another pays for the switch over ``horizon``.

    Each plan is scored by its modelled value ``vk`` held ``horizon`` epochs, the
    first of them with the switch's costs (:meth:`SwitchModel.epoch_values`).

    Returns:
        The library index with the best score (``current`` on ties).

    """
    first = switch.row_values(vk, served, arrived, current)
    score = first + (horizon - 1) * vk
    score[current] = horizon * vk[current]
    best = int(np.argmax(score))
    return best if score[best] > score[current] else current


@dataclass(frozen=True)
class Schedule:
    """The DP's answer: the library index in force per epoch and its modelled value."""

    plans: tuple[int, ...]
    value: float


def plan_schedule(
    model: EpochModel,
    library: Sequence[Plan],
    pipeline: Pipeline,
    workers: int,
    epoch_s: float,
    swap: str,
    weights: dict[str, float],
    solver_time: str | float = "model",
) -> Schedule:
    """Dynamic programming over (epoch, plan in force) on the modelled reward.

    The first plan is in force from time 0 at no cost. A switch to ``q`` issued at
    the start of an epoch costs the reconfiguration and solver terms of the reward;
    within that epoch ``p`` serves for ``q``'s solve time (the simulator's
    ``solver_time``: modelled per phase, or a fixed number of seconds), a transition
    capacity for the load time (see :func:`switch_terms`), ``q`` the rest.
    """
    v = model.value
    n_ep, n = v.shape
    switch = SwitchModel.build(library, pipeline, workers, epoch_s, swap, weights, solver_time)
    back = np.zeros((n_ep, n), dtype=np.int64)
    val = v[0].copy()
    back[0] = np.arange(n)
    for k in range(1, n_ep):
        vk = v[k]
        sw = switch.epoch_values(vk, model.served[k], model.arrivals[k])
        total = val[:, None] + sw
        np.fill_diagonal(total, val + vk)
        best = np.argmax(total, axis=0)
        back[k] = best
        val = total[best, np.arange(n)]
    j = int(np.argmax(val))
    out = [j]
    for k in range(n_ep - 1, 0, -1):
        j = int(back[k, j])
        out.append(j)
    return Schedule(tuple(reversed(out)), float(val.max()))


# --------------------------------------------------------------------------- controller
_REASON = re.compile(r"hindsight plan (\d+)")


@dataclass
class HindsightController:
    """Plays a DP schedule over a plan library (see the module docstring).

    Build it with :meth:`for_episode` (or :func:`hindsight_actor`); a controller made
    by the registry (``make_controller("hindsight")``) has no schedule and refuses
    to decide until one is given.

    Attributes:
        library: The plan library.
        schedule: Library index in force per epoch.
        epoch_s: Epoch length the schedule was planned for.
        knobs: The knobs it was planned with.
        modelled_value: The DP's modelled episode reward.
        name: Display name.
        replayed_reward: The episode reward its schedule got on a replica of the
            episode, when it was picked by replay (``None``: not replayed).
        lag_epochs: Play the schedule this many epochs late (a diagnostic, spec
            ``hindsight-lagN``): each plan change comes N epochs after the epoch the
            DP chose it for, the first plan stays until then. It measures how much of
            the bound is knowing the future rather than choosing plans well.

    """

    library: tuple[Plan, ...] = field(default=(), repr=False)
    schedule: tuple[int, ...] = field(default=(), repr=False)
    epoch_s: float = 1.0
    knobs: HindsightKnobs = field(default_factory=HindsightKnobs)
    modelled_value: float = 0.0
    name: str = "hindsight"
    replayed_reward: float | None = None
    lag_epochs: int = 0
    past: PastChooser | None = field(default=None, repr=False)

    def decide(self, context: ControlContext) -> Decision:
        """Re-solve (to the scheduled library plan) where the schedule changes plan."""
        if self.past is not None:
            return self._decide_from_past(context)
        if not self.schedule:
            raise RuntimeError(
                "hindsight needs the episode's future: build it with "
                "HindsightController.for_episode (lokirl.agents.actors does)"
            )
        now = int(round(context.now_s / self.epoch_s)) - self.lag_epochs
        k = min(len(self.schedule) - 1, max(0, now))
        j = self.schedule[k]
        target = self.library[j]
        if context.plan is target or (context.plan is not None and context.solving):
            return KEEP
        return Decision(True, target.demand, False, 0.0, f"hindsight plan {j}")

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """The library plan the decision names (planner hook: nothing is solved)."""
        m = _REASON.fullmatch(decision.reason)
        if m is not None and int(m.group(1)) < len(self.library):
            return self.library[int(m.group(1))]
        return min(self.library, key=lambda p: abs(p.demand - decision.demand))

    def _decide_from_past(self, context: ControlContext) -> Decision:
        assert self.past is not None
        if context.plan is not None and context.solving:
            return KEEP
        epoch = int(round(context.now_s / self.epoch_s))
        current = next((i for i, p in enumerate(self.library) if p is context.plan), None)
        j = self.past.choose(epoch, current)
        if j == current:
            return KEEP
        return Decision(True, self.library[j].demand, False, 0.0, f"hindsight plan {j}")

    @property
    def switches(self) -> int:
        """Plan changes in the schedule (the first plan not counted)."""
        return sum(1 for a, b in zip(self.schedule, self.schedule[1:], strict=False) if a != b)

    @classmethod
    def for_episode(
        cls,
        trace: Trace,
        pipeline: Pipeline,
        cluster: Cluster,
        *,
        epoch_s: float = 1.0,
        swap: str = "overlap",
        options: AllocatorOptions | None = None,
        weights: dict[str, float] | None = None,
        knobs: HindsightKnobs | None = None,
        sim: Any | None = None,
        duration_s: float | None = None,
        cache: dict | None = None,
        name: str = "hindsight",
        solver_time: str | float = "model",
        past_horizon: int = 0,
        demand_range: tuple[float, float] | None = None,
        per_second: bool = False,
        rate_ahead: bool = False,
        on_rates: bool = False,
    ) -> HindsightController:
        """Plan an episode in hindsight.

        Args:
            trace: The trace the episode plays.
            pipeline: The pipeline.
            cluster: The cluster.
            epoch_s: Decision epoch, seconds.
            swap: Swap mode of the simulator.
            options: Allocator options (deterministic mode is forced).
            weights: Reward weights (``violation``, ``reconfiguration``, ``solver``,
                ``workers``); default: the env's defaults.
            knobs: See :class:`HindsightKnobs`.
            sim: The freshly reset simulator, whose arrival generator is replayed
                (:func:`realised_arrivals`); ``None``: expected arrivals.
            duration_s: Seconds played (default: the simulator's, else the trace's).
            cache: Plan-library solves shared across episodes.
            name: Display name.
            solver_time: The simulator's ``solver_time`` (``"model"`` or seconds):
                how long each switch's solve keeps the old plan in force.
            past_horizon: If > 0, decide from the past only (:class:`PastChooser`
                with this horizon) instead of playing the DP's schedule (no schedule
                is planned: ``schedule`` is empty, ``modelled_value`` NaN).
            demand_range: The plan library's demand range (times the knobs'
                headroom) instead of the trace's minimum and peak.
            per_second: Model each second's arrivals as evenly spread over it
                (:func:`spread_within_seconds`): what a controller that sees only
                per-second counts can compute.
            rate_ahead: With ``past_horizon``, also model the trace's noiseless rates
                (:func:`expected_arrivals`) for :attr:`PastChooser.ahead`.
            on_rates: Plan on the trace's noiseless rates (:func:`expected_arrivals`)
                instead of the realised arrivals: a bound that knows the traffic's
                future rates but not its noise.

        """
        knobs = knobs or HindsightKnobs()
        w = dict(_DEFAULT_WEIGHTS if weights is None else weights)
        end = float(
            duration_s
            if duration_s is not None
            else getattr(sim, "trace_end", None) or trace.duration_s
        )
        n_ep = max(1, int(math.ceil(end / epoch_s - 1e-9)))
        if on_rates and isinstance(trace, RateSeries) and len(trace.rates):
            arr = expected_arrivals(trace, end)
        else:
            arr = realised_arrivals(trace, sim)
        if isinstance(trace, RateSeries) and len(trace.rates):
            rates = np.asarray(trace.rates, dtype=float)[
                : max(1, int(math.ceil(end / trace.bin_s)))
            ]
            lo, hi = float(rates.min()), float(rates.max())
        else:
            lo = hi = len(arr) / max(end, 1e-9)
        # The realised per-second counts may exceed the rates (Poisson noise).
        counts = np.bincount(arr.astype(np.int64), minlength=1) if len(arr) else np.zeros(1)
        hi = max(hi, float(counts.max()))
        lo = max(min(lo, hi), 1.0)
        if demand_range is not None:  # a grid fixed by the caller, nothing read from the trace
            lo, hi = max(1.0, demand_range[0]), max(1.0, demand_range[0], demand_range[1])
        grid = demand_grid(lo, hi * knobs.headroom, knobs.grid_step)
        library = plan_library(pipeline, cluster, grid, options or AllocatorOptions(), cache)
        if not library:
            raise RuntimeError("hindsight: the allocator found no plan on the demand grid")
        seen = spread_within_seconds(arr) if per_second else arr
        model = epoch_model(seen, n_ep, epoch_s, library, cluster.total, knobs, w, pipeline)
        if past_horizon > 0:  # no schedule: it decides as it goes (PastChooser)
            switch = SwitchModel.build(
                library, pipeline, cluster.total, epoch_s, swap, w, solver_time
            )
            ahead = None
            if rate_ahead and isinstance(trace, RateSeries) and len(trace.rates):
                exp = expected_arrivals(trace, n_ep * epoch_s)
                ahead = epoch_model(exp, n_ep, epoch_s, library, cluster.total, knobs, w, pipeline)
            past = PastChooser(
                model.value, model.served, model.arrivals, switch, past_horizon, ahead=ahead
            )
            return cls(tuple(library), (), epoch_s, knobs, math.nan, name, past=past)
        sched = plan_schedule(
            model, library, pipeline, cluster.total, epoch_s, swap, w, solver_time
        )
        return cls(tuple(library), sched.plans, epoch_s, knobs, sched.value, name)


#: Knob sets ``hindsight`` replays when nothing was tuned: the four best of an
#: earlier search on four ``validation`` cases (see docs/results.md, "Hindsight upper
#: bound"), best first. ``lokirl tune --controller hindsight --write`` replaces them.
FALLBACK_CANDIDATES: tuple[HindsightKnobs, ...] = (
    HindsightKnobs(burst_s=0.1, derate=0.9),
    HindsightKnobs(burst_s=0.2, derate=0.9),
    HindsightKnobs(burst_s=0.1, derate=1.0),
    HindsightKnobs(burst_s=0.2, derate=0.8),
)

#: Where ``lokirl tune --controller hindsight --write`` commits its choice.
TUNED_FILE = Path(__file__).resolve().parent.parent / "data" / "tuned" / "hindsight.yaml"


def tuned_candidates(path: Path | None = None) -> tuple[HindsightKnobs, ...]:
    """The knob sets ``hindsight`` replays: the committed tuning's, else the fallback.

    Raises:
        ConfigError: the file exists but its ``params.candidates`` is not a non-empty
            list of knob mappings (with the command that rewrites it).

    """
    import yaml

    from lokirl.errors import ConfigError

    path = path or TUNED_FILE
    if not path.exists():
        return FALLBACK_CANDIDATES
    data = yaml.safe_load(path.read_text()) or {}
    raw = (data.get("params") or {}).get("candidates") if isinstance(data, dict) else None
    try:
        if not isinstance(raw, list) or not raw:
            raise TypeError("not a non-empty list")
        return tuple(HindsightKnobs(**dict(k)) for k in raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            str(path),
            "params.candidates",
            f"not a list of hindsight knob sets ({exc})",
            "re-run lokirl tune --controller hindsight --suite validation --write",
        ) from exc


#: Knob sets a verified ``hindsight`` replays (:func:`tuned_candidates`), best first.
DEFAULT_CANDIDATES: tuple[HindsightKnobs, ...] = tuned_candidates()


#: Replays of the local search of ``hindsight-search``.
SEARCH_BUDGET = 24


def _weights_of(env: Any) -> dict[str, float]:
    w = env.config.weights
    return {
        "violation": w.violation,
        "reconfiguration": w.reconfiguration,
        "solver": w.solver,
        "workers": w.workers,
    }


def replay_reward(
    sim0: Any, rng_states: tuple[Any, Any], controller: Any, weights: dict[str, float]
) -> float:
    """The episode reward ``controller`` gets on a replica of a freshly reset simulator.

    The replica has the same pipeline, cluster, trace and config, and copies of the
    original's two generators as they were at reset (arrivals; routing, branching
    and service): it replays the very episode the original will play under the same
    decisions. The reward mirrors :meth:`LokiServingEnv.advance
    <lokirl.envs.serving.LokiServingEnv.advance>` epoch by epoch, as
    :func:`~lokirl.agents.rollout.rollout` sums it.
    """
    from lokirl.envs.serving import RewardWeights, step_reward, step_terms
    from lokirl.sim.engine import Simulation

    sim = Simulation(sim0.pipeline, sim0.cluster, sim0.trace, sim0.config, name="replay")
    ctx = sim.reset()
    sim.arrival_rng, sim.rng = copy.deepcopy(rng_states[0]), copy.deepcopy(rng_states[1])
    sim.branch_seed = sim0.branch_seed
    w = RewardWeights(**weights)
    limit = int(np.ceil(sim.trace_end / sim.config.epoch_s))
    total = 0.0
    for _ in range(limit):
        s0, solver0 = sim.sec_done, sim.solver_time
        sim.apply(controller.decide(ctx), planner=controller)
        ctx = sim.step_epoch()
        terms = step_terms(sim, s0, sim.sec_done, sim.solver_time - solver0, sim.cluster.total)
        total += step_reward(terms, w)
        if sim.done:
            break
    return total


def local_search(
    controller: HindsightController,
    reward: float,
    evaluate: Callable[[HindsightController], float],
    budget: int,
) -> tuple[HindsightController, float]:
    """Improve a schedule by replay: swap each plan segment for its library neighbours.

    Segment by segment (maximal runs of one plan, in time order), the plan is
    replaced by the library plans one and two places away in capacity; a change is
    kept when the replayed reward rises. At most ``budget`` replays.

    Args:
        controller: The controller whose schedule is searched.
        reward: Its replayed reward.
        evaluate: Replayed reward of a controller (:func:`replay_reward`).
        budget: Replays allowed.

    Returns:
        The best controller found and its replayed reward.

    """
    best, best_r = controller, reward
    n = len(controller.library)
    used = 0
    k = 0
    while k < len(best.schedule) and used < budget:
        sched = list(best.schedule)
        j = sched[k]
        end = k
        while end < len(sched) and sched[end] == j:
            end += 1
        for delta in (-1, 1, -2, 2):
            if used >= budget:
                break
            alt = j + delta
            if not 0 <= alt < n:
                continue
            cand = replace(best, schedule=tuple(sched[:k] + [alt] * (end - k) + sched[end:]))
            used += 1
            r = evaluate(cand)
            if r > best_r:
                best, best_r = cand, r
                sched = list(best.schedule)
        k = end
    return replace(best, replayed_reward=best_r), best_r


def _plan_on_env(
    env: Any, trace: RateSeries, knobs: HindsightKnobs, cache: dict, name: str, **extra: Any
) -> HindsightController:
    """:meth:`HindsightController.for_episode` with everything the reset env gives.

    ``extra``: the remaining keyword arguments of ``for_episode``.
    """
    cfg = env.config
    return HindsightController.for_episode(
        trace,
        env.pipeline,
        env.cluster,
        epoch_s=cfg.epoch_s,
        swap=cfg.swap,
        options=env.alloc,
        weights=_weights_of(env),
        knobs=knobs,
        sim=env.sim,
        cache=cache,
        name=name,
        solver_time=cfg.solver_time,
        **extra,
    )


def hindsight_actor(
    trace: RateSeries,
    cache: dict | None = None,
    knobs: HindsightKnobs | Sequence[HindsightKnobs] | None = None,
    name: str = "hindsight",
    search_budget: int = 0,
) -> Callable[[Any], HindsightController]:
    """An actor factory for :func:`lokirl.agents.rollout.rollout`: plans on the reset env.

    The env's simulator (freshly reset) gives the realised arrivals; its config the
    epoch, swap mode and reward weights; its allocator options the solves.

    Args:
        trace: The trace the episode plays.
        cache: Plan-library solves shared across episodes.
        knobs: One knob set (the DP's schedule is played as is), or several: each
            one's schedule is replayed on a replica of the episode
            (:func:`replay_reward`) and the best is played (ties: the first).
            ``None``: :data:`DEFAULT_CANDIDATES`.
        name: Display name.
        search_budget: Replays of a :func:`local_search` around the best schedule
            (0: none; needs the simpy engine).

    """
    cache = cache if cache is not None else {}
    if knobs is None:
        cands: tuple[HindsightKnobs, ...] = DEFAULT_CANDIDATES
    elif isinstance(knobs, HindsightKnobs):
        cands = (knobs,)
    else:
        cands = tuple(knobs)

    def make(env: Any) -> HindsightController:
        weights = _weights_of(env)
        sim = env.sim
        states = None
        if (len(cands) > 1 or search_budget > 0) and _is_simpy(sim):
            states = (copy.deepcopy(sim.arrival_rng), copy.deepcopy(sim.rng))
        best: HindsightController | None = None
        best_reward = -math.inf
        for kn in cands:
            ctl = _plan_on_env(env, trace, kn, cache, name)
            if states is None:
                return ctl
            r = replay_reward(sim, states, ctl, weights)
            if r > best_reward:
                best, best_reward = replace(ctl, replayed_reward=r), r
        assert best is not None and states is not None
        if search_budget > 0:
            st = states
            best, best_reward = local_search(
                best,
                best_reward,
                lambda c: replay_reward(sim, st, c, weights),
                search_budget,
            )
        return best

    return make


#: ``hindsight-pastH-cap``'s plan library: from this share of the cluster's largest
#: capacity (any variants) up to all of it (times the knobs' headroom).
CAP_FLOOR = 0.01


def past_actor(
    trace: RateSeries,
    cache: dict | None,
    horizon: int,
    name: str = "hindsight-past",
    cluster_range: bool = False,
    per_second: bool = False,
    foresight: int = 0,
    rate_ahead: bool = False,
) -> Callable[[Any], HindsightController]:
    """An actor factory of the past-only chooser (:class:`PastChooser`) on the reset env.

    ``cluster_range``: the plan library spans :data:`CAP_FLOOR` to 1 times the
    cluster's largest capacity (``env.max_capacity``) instead of the trace's range.
    ``per_second``: the model sees per-second counts only (``for_episode``).
    ``foresight``: epochs of perfect foresight (:attr:`PastChooser.foresight`), of the
    realised arrivals, or with ``rate_ahead`` of the trace's rates only.
    """
    cache = cache if cache is not None else {}

    def make(env: Any) -> HindsightController:
        span = None
        if cluster_range:
            most = float(env.max_capacity)
            span = (CAP_FLOOR * most, most)
        ctl = _plan_on_env(
            env,
            trace,
            DEFAULT_CANDIDATES[0],
            cache,
            name,
            past_horizon=horizon,
            demand_range=span,
            per_second=per_second,
            rate_ahead=rate_ahead,
        )
        if foresight and ctl.past is not None:
            return replace(ctl, past=replace(ctl.past, foresight=foresight))
        return ctl

    return make


def rates_actor(
    trace: RateSeries, cache: dict | None, name: str = "hindsight-rates"
) -> Callable[[Any], HindsightController]:
    """An actor factory of the DP planned on the trace's noiseless rates (no replay)."""
    cache = cache if cache is not None else {}
    return lambda env: _plan_on_env(env, trace, DEFAULT_CANDIDATES[0], cache, name, on_rates=True)


def actor_for_spec(spec: str, trace: RateSeries, cache: dict | None = None):
    """The actor factory of a ``hindsight`` spec, or ``None`` for other specs.

    ``hindsight`` replays the schedules of :data:`DEFAULT_CANDIDATES` and plays the
    best; ``hindsight-search`` then improves it by :func:`local_search` (at most
    :data:`SEARCH_BUDGET` more replays); ``hindsight-model`` plays the DP's schedule
    of the default knobs without replay; ``hindsight-g0.02-h1.5-b0.2-d0.95`` sets the grid step, headroom, burst
    allowance and derating (any subset, in order) of one DP schedule, not replayed;
    ``hindsight-lagN`` plays ``hindsight``'s schedule (picked as ``hindsight`` picks
    it) N epochs late (:attr:`HindsightController.lag_epochs`); ``hindsight-pastH``
    decides from the past only (:class:`PastChooser`, horizon H epochs, the first
    tuned knob set, no replay), ``hindsight-pastH-cap`` the same on a plan library
    fixed by the cluster (:data:`CAP_FLOOR` to its largest capacity), not the trace;
    a ``-sec`` suffix models per-second counts only (:func:`spread_within_seconds`), a
    ``-fN`` suffix gives it N epochs of perfect foresight (:attr:`PastChooser.foresight`)
    of the realised arrivals, ``-rN`` of the trace's rates only (:func:`expected_arrivals`);
    ``hindsight-rates`` plays the DP's schedule planned on the trace's noiseless rates
    (the first tuned knob set, no replay): the future rates, not the noise.
    """
    past = _PAST.fullmatch(spec)
    if past is not None:
        return past_actor(
            trace,
            cache,
            int(past.group(1)),
            spec,
            cluster_range=past.group(2) is not None,
            per_second=past.group(3) is not None,
            foresight=int(past.group(5) or 0),
            rate_ahead=past.group(4) == "r",
        )
    lag = _LAG.fullmatch(spec)
    if lag is not None:
        make = hindsight_actor(trace, cache, None, name=spec)
        n = int(lag.group(1))
        return lambda env: replace(make(env), lag_epochs=n, replayed_reward=None)
    if spec == "hindsight":
        return hindsight_actor(trace, cache, None, name=spec)
    if spec == "hindsight-search":
        return hindsight_actor(trace, cache, None, name=spec, search_budget=SEARCH_BUDGET)
    if spec == "hindsight-model":
        return hindsight_actor(trace, cache, HindsightKnobs(), name=spec)
    if spec == "hindsight-rates":
        return rates_actor(trace, cache, name=spec)
    knobs = parse_spec(spec)
    if knobs is None:
        return None
    return hindsight_actor(trace, cache, knobs, name=spec)


_LAG = re.compile(r"hindsight-lag([1-9]\d*)")
_PAST = re.compile(r"hindsight-past([1-9]\d*)(-cap)?(-sec)?(?:-(f|r)([1-9]\d*))?")
_SPEC = re.compile(
    r"hindsight(?:-g(?P<g>[\d.]+))?(?:-h(?P<h>[\d.]+))?(?:-b(?P<b>[\d.]+))?(?:-d(?P<d>[\d.]+))?"
)


def parse_spec(spec: str) -> HindsightKnobs | None:
    """Knobs of a ``hindsight[-gG][-hH][-bB][-dD]`` spec (``None``: not such a spec)."""
    m = _SPEC.fullmatch(spec)
    if m is None:
        return None
    base = HindsightKnobs()
    return HindsightKnobs(
        grid_step=float(m["g"]) if m["g"] else base.grid_step,
        headroom=float(m["h"]) if m["h"] else base.headroom,
        burst_s=float(m["b"]) if m["b"] else base.burst_s,
        derate=float(m["d"]) if m["d"] else base.derate,
        dt_s=base.dt_s,
    )


def _from_pattern(m: re.Match[str]) -> HindsightController:
    return HindsightController(knobs=parse_spec(m.group(0)) or HindsightKnobs(), name=m.group(0))


def _register() -> None:
    CONTROLLERS.register_pattern(
        _SPEC.pattern,
        _from_pattern,
        "hindsight with its knobs, e.g. hindsight-g0.02-h1.5-b0.2-d0.95 (grid step, "
        "headroom, burst allowance, derating; needs the trace: built by evaluation)",
    )
    CONTROLLERS.register_pattern(
        _LAG.pattern,
        lambda m: HindsightController(name=m.group(0), lag_epochs=int(m.group(1))),
        "hindsight's schedule played N epochs late, e.g. hindsight-lag2 (a diagnostic: how "
        "much of the bound is knowing the future; needs the trace: built by evaluation)",
    )
    CONTROLLERS.register_pattern(
        _PAST.pattern,
        lambda m: HindsightController(name=m.group(0)),
        "hindsight's plan evaluation on the past only, each plan held H epochs, e.g. "
        "hindsight-past5 (-cap: a plan library fixed by the cluster, not the trace; -sec: "
        "per-second counts only; -fN/-rN: N epochs of foresight of the arrivals/rates; a "
        "diagnostic; needs the trace: built by evaluation)",
    )
    if "hindsight" not in CONTROLLERS.names():
        CONTROLLERS.register(
            "hindsight",
            lambda **kw: HindsightController(**kw),
            "hindsight reference from above (not a proven bound): DP over a plan library with the episode's realised "
            "arrivals, the best of a few knob sets on a replica of the episode (needs the "
            "trace: built by lokirl.agents.actors)",
        )
    if "hindsight-rates" not in CONTROLLERS.names():
        CONTROLLERS.register(
            "hindsight-rates",
            lambda **kw: HindsightController(name="hindsight-rates", **kw),
            "hindsight's DP planned on the trace's noiseless rates, not the realised "
            "arrivals (knows the future rates, not the noise; the first tuned knob set, "
            "no replay)",
        )
    if "hindsight-model" not in CONTROLLERS.names():
        CONTROLLERS.register(
            "hindsight-model",
            lambda **kw: HindsightController(name="hindsight-model", **kw),
            "hindsight's DP schedule with the default knobs, not replayed",
        )


_register()
