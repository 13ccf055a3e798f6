"""A model-based controller: hindsight's plan evaluation on what has been seen.

``fluid(...)`` (:class:`FluidChooser`) is the deployable form of the
``hindsight-pastH-cap`` diagnostic (docs/results.md, "How much of the bound is knowing
the future"). It holds a plan library fixed by the cluster: the allocator's cold,
deterministic plans for a geometric grid of demands from :attr:`FluidChooser.cap_floor`
of the cluster's largest capacity to that capacity times the headroom. At every epoch
it plays each library plan, in the fluid model of
:func:`~lokirl.agents.hindsight.epoch_model`, through the sub-second arrivals of the
epoch just ended (:attr:`~lokirl.core.controller.ControlContext.arrival_bins`), scores
each plan's modelled reward held for :attr:`~FluidChooser.horizon` epochs less what
switching to it costs (:class:`~lokirl.agents.hindsight.SwitchModel`), and moves to the
best plan when that beats staying. Nothing but the context enters a decision: it runs
in both simulators and on the live runtime, on any trace and cluster size (the library
is built for the cluster it is bound to).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lokirl.agents.fluid_values import PlanLayout, plan_values
from lokirl.agents.hindsight import (
    _DEFAULT_WEIGHTS,
    CAP_FLOOR,
    HindsightKnobs,
    SwitchModel,
    demand_grid,
    estimate_level,
    hold_or_switch,
    plan_library,
    routing_row,
    switch_terms,
)
from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import ARRIVAL_BIN_S, KEEP, ControlContext, Decision, ewma_demand
from lokirl.core.controllers import CONTROLLERS
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.errors import ConfigError
from lokirl.sim.plan_library import planning_fingerprint

#: Plan libraries by (pipeline, cluster, floor, headroom, grid step): an evaluation
#: builds a controller per episode, the library once per cluster.
_LIBRARIES: dict[tuple, list[Plan]] = {}
_LIBRARIES_KEPT = 16
#: Routing memos (:meth:`FluidState._routing`) by the key of their library.
_ROUTINGS: dict[tuple, dict] = {}
#: :func:`~lokirl.agents.hindsight.switch_terms` by (library key, pipeline, swap mode):
#: a training environment binds a new fallback each episode, and the terms (quadratic
#: in the library's plans, ~0.5 s on 70 workers) do not change between them.
_SWITCH_TERMS: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_SWITCH_TERMS_KEPT = 32


@dataclass
class FluidState:
    """The fluid model of every library plan, advanced epoch by epoch.

    The same model as :func:`~lokirl.agents.hindsight.epoch_model` (which computes a
    whole episode at once), one epoch at a time: each plan's groups keep their queues
    between epochs.

    Attributes:
        library: The plans.
        pipeline: The pipeline.
        workers: Workers in the cluster.
        knobs: Burst allowance and derating of the model.
        weights: Reward weights.

    """

    library: tuple[Plan, ...]
    pipeline: Pipeline
    workers: int
    knobs: HindsightKnobs
    weights: dict[str, float]
    owner: np.ndarray = field(init=False, repr=False)
    capg: np.ndarray = field(init=False, repr=False)
    tasks: np.ndarray = field(init=False, repr=False)
    accs: np.ndarray = field(init=False, repr=False)
    q: np.ndarray = field(init=False, repr=False)
    layout: PlanLayout = field(init=False, repr=False)
    memo: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        owner, cap, tasks, accs = [], [], [], []
        for j, plan in enumerate(self.library):
            for g in plan.groups:
                owner.append(j)
                cap.append(g.capacity)
                tasks.append(g.task)
                accs.append(g.accuracy)
        self.owner = np.asarray(owner)
        self.capg = np.asarray(cap) * self.knobs.derate
        self.tasks = np.asarray(tasks)
        self.accs = np.asarray(accs)
        self.layout = PlanLayout.build(
            self.library, self.owner, self.tasks, self.accs, self.pipeline
        )
        self.reset()

    def reset(self) -> None:
        """Empty every queue (a new run)."""
        self.q = np.zeros(len(self.owner))

    def __getstate__(self) -> dict:
        # the routing memo is a cache (rebuilt on demand, same values): a pickled copy
        # (the live runtime's solving process) goes without it
        state = dict(self.__dict__)
        state["memo"] = {}
        return state

    def _routing(self, estimate: float) -> tuple[np.ndarray, np.ndarray]:
        """Requests per arriving frame per group, and the admitted share per plan.

        Kept per point of :func:`~lokirl.agents.hindsight.routing_row`'s lattice of
        estimates, for the whole library at once.
        """
        key = None if estimate <= 0 else estimate_level(estimate)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        unit = np.zeros(len(self.owner))
        admit = np.zeros(len(self.library))
        rows: dict = {}
        for j, plan in enumerate(self.library):
            load, drop = routing_row(rows, j, plan, self.pipeline, estimate)
            unit[self.owner == j] = load
            admit[j] = 1.0 - drop
        self.memo[key] = (unit, admit)
        return unit, admit

    def epoch(
        self, bins: np.ndarray, dt: float, estimate: float, commit: bool = True
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Play one epoch's arrival bins through every plan.

        Args:
            bins: Root arrivals per bin of ``dt`` seconds.
            dt: Bin width (s).
            estimate: The router's demand estimate at the epoch's start (0: each
                plan's own demand).
            commit: Keep the queues it leaves (``False``: a look, state unchanged).

        Returns:
            (modelled reward per plan, on-time frames per plan, frames arrived).

        """
        return play_epoch((self,), bins, dt, estimate, commit)[0]


def _same_model_base(a: FluidState, b: FluidState) -> bool:
    """Whether two models share what :func:`play_epoch` reads from the first only.

    Identity first (how :meth:`FluidChooser._model` builds them: free), equality only
    where a copy made them distinct objects.
    """
    return (
        a.workers == b.workers
        and (a.library is b.library or a.library == b.library)
        and (a.pipeline is b.pipeline or a.pipeline == b.pipeline)
        and (a.weights is b.weights or a.weights == b.weights)
    )


def play_epoch(
    states: tuple[FluidState, ...],
    bins: np.ndarray,
    dt: float,
    estimate: float,
    commit: bool = True,
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """:meth:`FluidState.epoch` for models of one library at several knobs, at once.

    The models' queues are stacked (models x groups) and go through the bins
    together, and the plans' values of all models are one :func:`plan_values` call
    (a model per row): the same arithmetic, element by element, as one model at a
    time.

    Args:
        states: Fluid models over the same library, routing memo and reward weights
            (any knobs; :meth:`FluidChooser._model` builds them so).
        bins: Root arrivals per bin of ``dt`` seconds.
        dt: Bin width (s).
        estimate: The router's demand estimate at the epoch's start.
        commit: Keep the queues they leave.

    Returns:
        Per model, as :meth:`FluidState.epoch`.

    """
    first = states[0]
    for st in states[1:]:
        if not _same_model_base(st, first):
            raise ValueError(
                "play_epoch: every fluid model must share the first one's library, "
                "pipeline, workers and reward weights (FluidChooser._model builds them so); "
                "advance models of different libraries one call each"
            )
    unit, admit = first._routing(estimate)
    q = np.stack([st.q for st in states])
    capg = np.stack([st.capg for st in states])
    qmax = capg * np.asarray([st.knobs.burst_s for st in states])[:, None]
    per_bin = capg * dt
    lost = np.zeros_like(q)
    fed = np.zeros(len(first.owner))
    x = np.empty_like(fed)
    left = np.empty_like(q)
    over = np.empty_like(q)
    for a in np.asarray(bins, dtype=float):
        np.multiply(unit, a, out=x)
        np.add(q, x, out=q)
        np.subtract(q, per_bin, out=left)  # the queue after this bin's service
        np.subtract(left, qmax, out=over)
        np.maximum(0.0, over, out=over)  # beyond the burst allowance: lost
        np.subtract(left, over, out=q)
        np.maximum(0.0, q, out=q)
        lost += over
        fed += x
    if commit:
        for st, row in zip(states, q, strict=True):
            st.q = row
    k = len(states)
    arrived = float(np.sum(bins))
    value, served = plan_values(
        first.library,
        first.owner,
        first.tasks,
        first.accs,
        np.broadcast_to(fed, q.shape),
        lost,
        np.broadcast_to(admit, (k, len(admit))),
        np.full(k, arrived),
        first.workers,
        first.weights,
        first.pipeline,
        first.layout,
    )
    return [(value[i], served[i], arrived) for i in range(k)]


@dataclass
class FluidChooser:
    """Hindsight's plan evaluation on the epoch just ended (see the module docstring).

    Attributes:
        horizon: Epochs a chosen plan is expected to be held (a switch must pay for
            itself over them).
        grid_step: Relative step of the library's demand grid.
        headroom: The library reaches the cluster's largest capacity times this.
        cap_floor: The library starts at this share of the largest capacity.
        burst_s: Seconds of its capacity a group's queue absorbs before losing frames.
        derate: Share of each group's capacity the model serves. The defaults of
            both are hindsight's first tuned knob set, those of the diagnostic.
        solver_time: The modelled solve time a switch waits for (``"model"`` or s).
        violation: Reward weight of a violated frame.
        reconfiguration: Reward weight of the share of workers changing variant.
        solver: Reward weight per second of solve.
        worker_cost: Reward weight of the active share of workers.
        name: Display name.

    """

    horizon: int = 5
    grid_step: float = 0.03
    headroom: float = 1.3
    cap_floor: float = CAP_FLOOR
    burst_s: float = 0.05
    derate: float = 1.0
    solver_time: str | float = "model"
    violation: float = _DEFAULT_WEIGHTS["violation"]
    reconfiguration: float = _DEFAULT_WEIGHTS["reconfiguration"]
    solver: float = _DEFAULT_WEIGHTS["solver"]
    worker_cost: float = _DEFAULT_WEIGHTS["workers"]
    name: str = "fluid"
    library: tuple[Plan, ...] = field(default=(), init=False, repr=False)
    _state: FluidState | None = field(default=None, init=False, repr=False)
    #: Fluid models at other (burst_s, derate) pairs (:meth:`decide_settings`).
    _models: dict = field(default_factory=dict, init=False, repr=False)
    _switch: SwitchModel | None = field(default=None, init=False, repr=False)
    _bound: tuple | None = field(default=None, init=False, repr=False)
    _terms_key: tuple | None = field(default=None, init=False, repr=False)
    _estimate: float = field(default=0.0, init=False, repr=False)
    _epoch_s: float = field(default=1.0, init=False, repr=False)
    _signatures: dict = field(default_factory=dict, init=False, repr=False)
    knobs: HindsightKnobs = field(init=False, repr=False)
    _pipeline: Pipeline | None = field(default=None, init=False, repr=False)
    _cluster: Cluster | None = field(default=None, init=False, repr=False)
    _swap: str = field(default="overlap", init=False, repr=False)
    _bins_per_epoch: int | None = field(default=None, init=False, repr=False)
    #: Frames the model has been fed since the run started (from the context's bins).
    frames_modelled: float = field(default=0.0, init=False, repr=False)
    #: Where the library's solves are kept across processes and runs: a
    #: :class:`~lokirl.sim.plan_library.PlanLibrary` a host may set before ``bind``
    #: (the training environment sets its own); ``None``: solved in this process.
    plan_store: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        h = self.horizon
        if (
            isinstance(h, bool)
            or not isinstance(h, numbers.Real)
            or not math.isfinite(h)
            or int(h) != h
            or h < 1
        ):
            raise ValueError(f"fluid: horizon must be a finite whole number >= 1, got {h}")
        self.horizon = int(self.horizon)
        if not 0 < self.cap_floor <= 1:
            raise ValueError(f"fluid: cap_floor must be in (0, 1], got {self.cap_floor}")
        # the knobs' own checks (grid step, headroom, burst, derating)
        self.knobs = HindsightKnobs(
            grid_step=self.grid_step,
            headroom=self.headroom,
            burst_s=self.burst_s,
            derate=self.derate,
        )

    @property
    def weights(self) -> dict[str, float]:
        """The reward weights it maximises, by the environment's names."""
        return {
            "violation": self.violation,
            "reconfiguration": self.reconfiguration,
            "solver": self.solver,
            "workers": self.worker_cost,
        }

    def bind(self, pipeline: Pipeline, cluster: Cluster, swap: str = "overlap") -> None:
        """Build the plan library for this pipeline and cluster (cold solves, once).

        Args:
            pipeline: The pipeline served.
            cluster: The cluster it is served on.
            swap: The swap mode (the switch costs depend on it).

        Raises:
            ConfigError: the allocator finds no plan for the cluster.

        """
        from lokirl.envs.features import cluster_capacities_exact

        # pipelines hold mappings (not hashable): their repr identifies them
        key = ((pipeline.name, repr(pipeline)), tuple(sorted(cluster.workers.items())), swap)
        if self._bound == key:
            return
        # the plans and their routing do not read load times (a drawn load-time scale
        # reuses the library); the switch model, built per bind, does
        lib_key = (
            planning_fingerprint(pipeline),
            key[1],
            self.cap_floor,
            self.headroom,
            self.grid_step,
        )
        library = _LIBRARIES.get(lib_key)
        if library is None:
            _, most = cluster_capacities_exact(pipeline, cluster)
            lo = max(1.0, self.cap_floor * most)
            grid = demand_grid(lo, max(lo, most) * self.headroom, self.grid_step)
            library = plan_library(
                pipeline, cluster, grid, AllocatorOptions(), None, self.plan_store
            )
            while len(_LIBRARIES) >= _LIBRARIES_KEPT:
                old = next(iter(_LIBRARIES))
                _LIBRARIES.pop(old)
                _ROUTINGS.pop(old, None)
                # a library solved again may differ (time-limited solves): its terms go too
                for k in [k for k in _SWITCH_TERMS if k[0] == old]:
                    _SWITCH_TERMS.pop(k)
            _LIBRARIES[lib_key] = library
        if not library:
            raise ConfigError(
                f"fluid: the allocator found no plan for {pipeline.name} on "
                f"{cluster.total} workers; give the pipeline more workers"
            )
        self.library = tuple(library)
        self._signatures = {_signature(p): i for i, p in enumerate(self.library)}
        self._state = FluidState(self.library, pipeline, cluster.total, self.knobs, self.weights)
        # the routing of a library plan depends on the plan and the estimate alone:
        # controllers bound to one library (an evaluation's episodes) share it
        self._state.memo = _ROUTINGS.setdefault(lib_key, {})
        self._models = {}
        self._pipeline, self._cluster, self._swap = pipeline, cluster, swap
        self._switch = None  # built at the first decision, when the epoch is known
        self._terms_key = (lib_key, key[0], swap)
        self._bound = key

    def _switch_model(self, epoch_s: float) -> SwitchModel:
        if self._switch is None or self._epoch_s != epoch_s:
            terms = _SWITCH_TERMS.get(self._terms_key)
            if terms is None:
                terms = switch_terms(self._pipeline, self.library, self._swap)
                for a in terms:
                    a.setflags(write=False)  # shared by every controller bound alike
                while len(_SWITCH_TERMS) >= _SWITCH_TERMS_KEPT:
                    _SWITCH_TERMS.pop(next(iter(_SWITCH_TERMS)))
                _SWITCH_TERMS[self._terms_key] = terms
            self._switch = SwitchModel.build(
                self.library,
                self._pipeline,
                self._cluster.total,
                epoch_s,
                self._swap,
                self.weights,
                self.solver_time,
                terms,
            )
            self._epoch_s = epoch_s
        return self._switch

    def decide(self, context: ControlContext) -> Decision:
        """Keep the running plan or move to the library plan the model prefers.

        Args:
            context: The host's snapshot; after the first plan it must carry the
                sub-second arrivals since the last decision (``arrival_bins``).

        Returns:
            ``KEEP``, or a re-solve whose reason names the library plan.

        Raises:
            RuntimeError: not bound, or a context without arrival bins.

        """
        return self.decide_horizons(context, (self.horizon,))[0]

    def decide_horizons(
        self, context: ControlContext, horizons: tuple[int, ...]
    ) -> tuple[Decision, ...]:
        """:meth:`decide` with each of ``horizons`` in turn, the model advanced once.

        What a policy choosing the horizon per epoch is offered (``follow_horizons``
        of :class:`~lokirl.envs.features.FeatureSpec`).

        Args:
            context: As for :meth:`decide`.
            horizons: Epochs a switch must pay for itself over, one decision each.

        Returns:
            One decision per horizon, in order.

        Raises:
            RuntimeError: not bound, or a context without arrival bins.

        """
        own = (self.burst_s, self.derate)
        return self._decide(context, tuple((int(h), own) for h in horizons))

    def decide_settings(
        self, context: ControlContext, settings: tuple[tuple[int, float, float], ...]
    ) -> tuple[Decision, ...]:
        """:meth:`decide` with each (horizon, burst allowance, derating) in turn.

        What a policy choosing fluid's setting per epoch is offered (``follow_settings``
        of :class:`~lokirl.envs.features.FeatureSpec`): one fluid model per (burst
        allowance, derating) pair over the bound library, each advanced once per epoch
        through the same arrivals (a pair first asked for mid-run starts with empty
        queues). The library (its headroom and grid) is this controller's own.

        Args:
            context: As for :meth:`decide`.
            settings: ``(horizon, burst_s, derate)`` per decision.

        Returns:
            One decision per setting, in order.

        Raises:
            RuntimeError: not bound, or a context without arrival bins.
            ValueError: a setting out of range (as for the constructor).

        """
        return self._decide(context, tuple((int(h), (float(b), float(d))) for h, b, d in settings))

    def _model(self, knobs: tuple[float, float]) -> FluidState:
        """The fluid model with burst allowance and derating ``knobs`` (own or another)."""
        assert self._state is not None
        if knobs == (self.burst_s, self.derate):
            return self._state
        st = self._models.get(knobs)
        if st is None:
            k = replace(self.knobs, burst_s=knobs[0], derate=knobs[1])
            st = FluidState(
                self.library, self._state.pipeline, self._state.workers, k, self.weights
            )
            st.memo = self._state.memo  # routing does not read the knobs
            self._models[knobs] = st
        return st

    def _decide(
        self, context: ControlContext, variants: tuple[tuple[int, tuple[float, float]], ...]
    ) -> tuple[Decision, ...]:
        """One decision per (horizon, (burst_s, derate)), every model advanced once."""
        if self._state is None:
            raise RuntimeError(
                "fluid needs its pipeline and cluster before deciding: the host calls "
                "bind(pipeline, cluster, swap) (lokirl.core.binding.bind_controller)"
            )
        st = self._state
        own = (self.burst_s, self.derate)
        models = {own: st}
        for _, knobs in variants:
            models.setdefault(knobs, self._model(knobs))
        if context.plan is None:  # a new run: the first plan, for the initial demand
            for m in (st, *self._models.values()):
                m.reset()
            self._estimate = 0.0
            self.frames_modelled = 0.0
            self._bins_per_epoch = None
            d0 = context.demand_history[-1] if context.demand_history else 0.0
            dt = ARRIVAL_BIN_S
            bins = np.full(int(round(1.0 / dt)), d0 * dt)
            value, _, _ = st.epoch(bins, dt, 0.0, commit=False)
            j = int(np.argmax(value))
            first = Decision(True, self.library[j].demand, False, 0.0, f"fluid plan {j}")
            return tuple(first for _ in variants)
        estimate, self._estimate = self._estimate, ewma_demand(context.demand_history)
        if not context.arrival_bins:
            raise RuntimeError(
                "fluid needs the sub-second arrivals of the epoch just ended "
                "(ControlContext.arrival_bins): this host does not count them, or its "
                f"epoch is shorter than one bin ({ARRIVAL_BIN_S:g} s); use an epoch of "
                f"whole {ARRIVAL_BIN_S:g} s bins (the default, 1 s, is)"
            )
        dt = context.arrival_bin_s
        bins = np.asarray(context.arrival_bins)
        if self._bins_per_epoch is None:
            self._bins_per_epoch = len(bins)
        per = self._bins_per_epoch
        # the live runtime hands over every bin since its last tick: epochs it skipped
        # (a held-up loop) are played through the model one by one
        chunks = [bins]
        if len(bins) > per and len(bins) % per == 0:
            chunks = np.split(bins, len(bins) // per)
        states = tuple(models.values())
        for chunk in chunks:
            played = play_epoch(states, chunk, dt, estimate)
            self.frames_modelled += played[0][2]  # the own model's (all see the same)
        results = dict(zip(models, played, strict=True))
        if context.solving:
            return tuple(KEEP for _ in variants)
        epoch_s = dt * len(chunks[-1])
        current = self._index_of(context.plan)
        if current is None:
            # a plan from outside the library (the live runtime re-planned on fewer
            # workers): scored as the library plan nearest in capacity, so that a
            # degraded cluster is not re-planned every epoch
            current = self._nearest(context.plan)
        switch = self._switch_model(epoch_s)
        out = []
        for h, knobs in variants:
            value, served, arrived = results[knobs]
            j = hold_or_switch(switch, value, served, arrived, current, int(h))
            out.append(
                KEEP
                if j == current
                else Decision(True, self.library[j].demand, False, 0.0, f"fluid plan {j}")
            )
        return tuple(out)

    def _index_of(self, plan: Plan) -> int | None:
        """The library index of ``plan``, else ``None``.

        A plan counts by its worker groups (a copy too), and so does a library plan solved again on
        fewer workers (:meth:`plan`: same demand).
        """
        i = self._signatures.get(_signature(plan))
        if i is not None:
            return i
        return next((i for i, p in enumerate(self.library) if p.demand == plan.demand), None)

    def _nearest(self, plan: Plan) -> int:
        """The library index whose capacity is nearest ``plan``'s."""
        caps = np.array([p.max_demand for p in self.library])
        return int(np.argmin(np.abs(caps - plan.max_demand)))

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        """The library plan the decision names (planner hook: nothing is solved).

        On a cluster other than the one bound (the live runtime plans on the workers
        still alive), a library plan that does not fit it is solved again on it, for
        the same demand (cold).

        Args:
            pipeline: The pipeline.
            cluster: The workers available now.
            decision: The decision (its reason names the library plan).
            options: The host's allocator options (used only to solve again).
            current: The running plan (unused).

        Returns:
            The plan to install.

        """
        head, _, idx = decision.reason.rpartition(" ")
        if head == "fluid plan" and idx.isdigit() and int(idx) < len(self.library):
            chosen = self.library[int(idx)]
        else:
            chosen = min(self.library, key=lambda p: abs(p.demand - decision.demand))
        bound = self._bound[1] if self._bound is not None else None
        if bound is None or tuple(sorted(cluster.workers.items())) == bound:
            return chosen
        need: dict[str, int] = {}
        for g in chosen.groups:
            need[g.accelerator] = need.get(g.accelerator, 0) + g.replicas
        if all(n <= cluster.workers.get(a, 0) for a, n in need.items()):
            return chosen
        return solve(pipeline, cluster, chosen.demand, replace(options, warm_start=False))

    def __repr__(self) -> str:  # the hosts' plan caches key on the planner's repr
        fields = (
            f"horizon={self.horizon}, grid_step={self.grid_step}, headroom={self.headroom}, "
            f"cap_floor={self.cap_floor}, burst_s={self.burst_s}, derate={self.derate}"
        )
        where = ""
        if self._bound is not None:
            (name, text), workers, swap = self._bound
            digest = hashlib.sha1(text.encode()).hexdigest()[:12]
            where = f", bound={name}#{digest}/{workers}/{swap}"
        return f"FluidChooser({fields}{where})"


def _signature(plan: Plan) -> tuple:
    return tuple(sorted((g.key, g.replicas) for g in plan.groups))


def _register() -> None:
    if "fluid" not in CONTROLLERS.names():
        CONTROLLERS.register_keywords(
            "fluid",
            FluidChooser,
            "model-based: hindsight's fluid model scores a plan library fixed by the cluster "
            "on the epoch just ended (sub-second arrivals), each plan held `horizon` epochs, "
            "e.g. fluid(horizon=5,derate=0.9,burst_s=0.1); no learning, no future",
        )


_register()
