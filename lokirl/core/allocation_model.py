"""The allocator's model: configs, latency-feasible chains, and the tight MILP over them.

A *config* is a variant on an accelerator type at a batch size; its replicas ``x_c``
are integers and each serves ``thr_c = b / L_c(b)`` requests per second. A *chain*
is a sequence of configs from a root task down the tree; ``f_q`` is the share of
root demand (frames) routed along chain ``q``. Only chains whose root-to-leaf batch
latency fits the budget (Loki: SLO/2) are generated, so the latency constraint
holds by construction. Rows:

* ``sum_{q at root} f_q = s`` (``s = 1`` unless the phase is ``partial``);
* flow conservation into every child task: ``f_q = sum_{k in child} f_k``;
* capacity: ``sum_{q ending at c} f_q * D * m(q) <= thr_c * x_c`` (``m``: product of
  the upstream variants' branching factors), and ``sum f_q <= x_c`` (no flow
  through a config without replicas, even at demand ~0);
* workers: ``sum_{c on a} x_c <= N_a``; at least ``min_replicas_per_task`` per task.

**Tightening** (what makes the hard instances easy, with the same optimum): the
model also carries integer *aggregate* columns, the replicas of each variant on
each accelerator (``y_{v,a} = sum_b x_{v,a,b}``) and of each task
(``n_{t,a} = sum_v y_{v,a}``). They add no constraint on ``x`` (their values are
implied), but branch and bound can branch on them: "this task gets at most 9
workers" splits the search far better than one batch size of one variant does.
On ``traffic_analysis`` at 20 workers this cuts the nodes of a saturated solve
from hundreds to a handful. Their branching tiers (``MilpModel.priority``: per
task, then per variant, then the configs) order lokirl's best-first search
(:mod:`lokirl.core.milp`): with the aggregates fixed at the optimum's values the
LP relaxation is within 0.09% of the optimum on the demands measured, so the
integrality gap lives in them. Bounds that depend only on the pipeline and the
cluster (the structure itself, and the largest demand the LP relaxation can carry,
``s*(D) = min(1, K / D)``: the relaxation scales linearly in ``D``) are computed once
per pipeline and cluster and cached.
"""

from __future__ import annotations

import math
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from lokirl.core.milp import MilpLimits, MilpModel, solve_milp
from lokirl.core.pipeline import Cluster, Pipeline, Variant
from lokirl.core.plan import Phase, Plan

if TYPE_CHECKING:
    from lokirl.core.allocator import AllocatorOptions

_EPS = 1e-9


@dataclass(frozen=True)
class Config:
    """A variant on an accelerator type at a batch size."""

    task: str
    variant: Variant
    accelerator: str
    batch_size: int
    latency_ms: float
    throughput: float

    @property
    def key(self) -> tuple[str, str, int]:
        """(variant, accelerator, batch size)."""
        return (self.variant.name, self.accelerator, self.batch_size)


@dataclass
class Chain:
    """A sequence of configs from a root task down the tree (see the module docstring)."""

    configs: tuple[int, ...]  # indices into the config list
    latency_ms: float
    mult: float  # load per unit of root demand at the last config
    children: dict[str, list[int]] = field(default_factory=dict)  # child task -> chain ids
    leaf: bool = False
    accuracy: float = 0.0  # path accuracy (0-1) for leaf chains


class Structure:
    """Configs and latency-feasible chains of a pipeline on a cluster."""

    def __init__(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        options: AllocatorOptions,
        best_only: bool,
        allowed: frozenset[str] | None = None,
        prune: bool = False,
    ) -> None:
        self.pipeline = pipeline
        budget = options.latency_budget * pipeline.slo_ms
        self.configs: list[Config] = []
        by_task: dict[str, list[int]] = defaultdict(list)
        for task in pipeline.tasks:
            variants = task.variants
            if best_only:
                # The most accurate variant that can be served within the budget at all.
                servable = [
                    v
                    for v in variants
                    if any(
                        cluster.workers.get(a, 0) > 0
                        and v.latency(a, v.batch_sizes(a)[0]) <= budget
                        for a in v.accelerators
                    )
                ]
                variants = tuple(servable[:1])
            if allowed is not None:
                variants = tuple(v for v in variants if v.name in allowed)
            for v in variants:
                for accel in v.accelerators:
                    if cluster.workers.get(accel, 0) <= 0:
                        continue
                    cands = [
                        (b, v.latency(accel, b), v.throughput(accel, b))
                        for b in v.batch_sizes(accel)
                        if v.latency(accel, b) <= budget
                        and (options.batch_sizes is None or b in options.batch_sizes)
                    ]
                    for b, lat, thr in cands:
                        # Drop batch sizes dominated by one with lower latency and higher throughput.
                        if any(
                            (l2 <= lat and t2 >= thr) and (l2 < lat or t2 > thr)
                            for _, l2, t2 in cands
                        ):
                            continue
                        by_task[task.name].append(len(self.configs))
                        self.configs.append(Config(task.name, v, accel, b, lat, thr))
        if prune:
            by_task = self._prune(by_task)
        self.by_task = dict(by_task)
        # Minimum latency needed below each task (the slowest of its child branches).
        need: dict[str, float] = {}
        for task in reversed(pipeline.tasks):
            below = [
                min((self.configs[i].latency_ms for i in by_task.get(c, [])), default=math.inf)
                + need[c]
                for c in task.children
            ]
            need[task.name] = max(below, default=0.0)
        self.chains: list[Chain] = []
        self.root_chains: dict[str, list[int]] = defaultdict(list)
        self.chains_at: dict[int, list[int]] = defaultdict(list)
        leaves = pipeline.leaves
        self.leaf_weight = 1.0 / len(leaves)
        for root in pipeline.roots:
            for ci in by_task.get(root, []):
                cid = self._grow((ci,), self.configs[ci].latency_ms, 1.0, budget, need, options)
                if cid is not None:
                    self.root_chains[root].append(cid)

    def _prune(self, by_task: dict[str, list[int]]) -> dict[str, list[int]]:
        """Drop configs another config of the same task and accelerator dominates.

        ``c'`` dominates ``c`` when it is at least as accurate, at least as fast
        (throughput) and no slower (batch latency), and sends no more sub-requests to
        any child: a plan using ``c`` stays feasible and no less accurate with ``c'``
        in its place (path accuracies are products of variant accuracies). Only for
        the multiplicative accuracy model and without a churn term (which cares
        which variant a worker holds).
        """
        kept: dict[str, list[int]] = {}
        for task, idx in by_task.items():
            children = self.pipeline.task(task).children

            def dominates(j: int, i: int, children: tuple[str, ...] = children) -> bool:
                a, b = self.configs[j], self.configs[i]
                if a.accelerator != b.accelerator:
                    return False
                if not (
                    a.variant.accuracy >= b.variant.accuracy
                    and a.throughput >= b.throughput
                    and a.latency_ms <= b.latency_ms
                ):
                    return False
                if any(
                    a.variant.branching.get(ch, 1.0) > b.variant.branching.get(ch, 1.0)
                    for ch in children
                ):
                    return False
                strict = (
                    a.variant.accuracy > b.variant.accuracy
                    or a.throughput > b.throughput
                    or a.latency_ms < b.latency_ms
                )
                return strict or j < i  # identical configs: keep the first

            kept[task] = [i for i in idx if not any(j != i and dominates(j, i) for j in idx)]
        return kept

    def _grow(
        self,
        configs: tuple[int, ...],
        latency: float,
        mult: float,
        budget: float,
        need: dict[str, float],
        options: AllocatorOptions,
    ) -> int | None:
        last = self.configs[configs[-1]]
        task = self.pipeline.task(last.task)
        if latency + need[task.name] > budget + _EPS:
            return None
        chain = Chain(configs, latency, mult)
        cid = len(self.chains)
        self.chains.append(chain)
        self.chains_at[configs[-1]].append(cid)
        if not task.children:
            chain.leaf = True
            names = tuple(self.configs[i].variant.name for i in configs)
            chain.accuracy = self.pipeline.path_accuracy(names, options.accuracy_model) / 100.0
            return cid
        for child in task.children:
            m = mult * last.variant.branching.get(child, 1.0)
            kids = []
            for ci in self.by_task.get(child, []):
                k = self._grow(
                    configs + (ci,), latency + self.configs[ci].latency_ms, m, budget, need, options
                )
                if k is not None:
                    kids.append(k)
            if not kids:
                # No feasible continuation: discard this chain (and what it registered).
                self._truncate(cid)
                return None
            chain.children[child] = kids
        return cid

    def _truncate(self, cid: int) -> None:
        # Chains are appended depth first: everything from ``cid`` on descends from it.
        for q in range(cid, len(self.chains)):
            self.chains_at[self.chains[q].configs[-1]].remove(q)
        del self.chains[cid:]

    def feasible(self) -> bool:
        """Whether every root task has at least one latency-feasible chain."""
        return all(self.root_chains.get(r) for r in self.pipeline.roots)

    @cached_property
    def max_mult(self) -> dict[int, float]:
        """Largest load per unit of root demand each config with chains can see."""
        out: dict[int, float] = defaultdict(float)
        for ch in self.chains:
            i = ch.configs[-1]
            out[i] = max(out[i], ch.mult)
        return dict(out)

    @cached_property
    def chain_index(self) -> dict[tuple[tuple[str, str, int], ...], int]:
        """Chain id by its configs' keys (to read a running plan's paths)."""
        return {
            tuple(self.configs[i].key for i in ch.configs): q for q, ch in enumerate(self.chains)
        }


# Structures and bounds depend only on the pipeline, the cluster and a few options:
# cached per pipeline object (weakly: a pipeline that goes away takes its entries).
_CACHE: dict[int, tuple[weakref.ref, dict]] = {}


def _cache_for(pipeline: Pipeline) -> dict:
    key = id(pipeline)
    entry = _CACHE.get(key)
    if entry is None or entry[0]() is not pipeline:
        for k in [k for k, (ref, _) in _CACHE.items() if ref() is None]:
            del _CACHE[k]
        entry = (weakref.ref(pipeline), {})
        _CACHE[key] = entry
    return entry[1]


def structure(
    pipeline: Pipeline,
    cluster: Cluster,
    options: AllocatorOptions,
    best_only: bool,
    allowed: frozenset[str] | None = None,
) -> Structure:
    """The (cached) configs and chains of ``pipeline`` on ``cluster``.

    Dominated configs are left out (see :meth:`Structure._prune`) when that cannot
    change the optimum: multiplicative accuracy and no churn term.
    """
    prune = options.accuracy_model == "multiplicative" and options.churn_weight <= 0
    cache = _cache_for(pipeline)
    key = (
        "structure",
        tuple(sorted(cluster.workers.items())),
        options.latency_budget,
        options.accuracy_model,
        options.batch_sizes,
        best_only,
        allowed,
        prune,
    )
    st = cache.get(key)
    if st is None:
        st = Structure(
            pipeline, cluster, options, best_only=best_only, allowed=allowed, prune=prune
        )
        cache[key] = st
    return st


def max_servable(st: Structure, cluster: Cluster) -> float:
    """Largest root demand (frames/s) the LP relaxation carries in full (cached).

    With continuous replicas every constraint scales linearly in the demand, so the
    relaxation serves ``s*(D) = min(1, K / D)`` of a demand ``D``; ``K`` is this value.
    """
    cached = getattr(st, "_max_servable", None)
    if cached is not None:
        return cached
    m = MilpModel(maximize=True)
    fcol = [m.add_col(0.0, math.inf) for _ in st.chains]
    s = m.add_col(0.0, math.inf, cost=1.0)
    for root in st.pipeline.roots:
        idx = [fcol[q] for q in st.root_chains[root]]
        m.add_row(0.0, 0.0, idx + [s], [1.0] * len(idx) + [-1.0])
    for q, ch in enumerate(st.chains):
        for kids in ch.children.values():
            m.add_row(0.0, 0.0, [fcol[k] for k in kids] + [fcol[q]], [1.0] * len(kids) + [-1.0])
    per_accel: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(st.configs):
        qs = st.chains_at.get(i)
        if not qs:
            continue
        w = m.add_col(0.0, math.inf)
        per_accel[c.accelerator].append(w)
        m.add_row(
            -math.inf,
            0.0,
            [fcol[q] for q in qs] + [w],
            [st.chains[q].mult for q in qs] + [-c.throughput],
        )
    for accel, cols in per_accel.items():
        m.add_row(-math.inf, float(cluster.workers.get(accel, 0)), cols, [1.0] * len(cols))
    res = solve_milp(m, "highs", MilpLimits(time_limit_s=None))
    value = float(res.objective) if res.status is not None else 0.0
    st._max_servable = value  # type: ignore[attr-defined]
    return value


def lp_max_share(st: Structure, cluster: Cluster, demand: float) -> float:
    """Upper bound on the share of ``demand`` any plan on ``st`` serves."""
    if demand <= 0:
        return 1.0
    return min(1.0, max_servable(st, cluster) / demand)


class _ChainFlows:
    """Flows as one column per chain (any tree depth)."""

    def __init__(self, m: MilpModel, st: Structure, scoring: bool) -> None:
        self.st = st
        scale = 100.0 * st.leaf_weight
        self.col = {
            q: m.add_col(0.0, 1.0, cost=scale * ch.accuracy if (scoring and ch.leaf) else 0.0)
            for q, ch in enumerate(st.chains)
        }

    def root_share(self, root: str) -> tuple[list[int], list[float]]:
        idx = [self.col[q] for q in self.st.root_chains[root]]
        return idx, [1.0] * len(idx)

    def add_rows(self, m: MilpModel) -> None:
        for q, ch in enumerate(self.st.chains):
            for kids in ch.children.values():
                m.add_row(
                    0.0,
                    0.0,
                    [self.col[k] for k in kids] + [self.col[q]],
                    [1.0] * len(kids) + [-1.0],
                )

    def load_at(self, i: int) -> tuple[list[int], list[float], list[int]]:
        """(columns, load per unit of root demand, columns for the link row) at config ``i``."""
        qs = self.st.chains_at[i]
        return (
            [self.col[q] for q in qs],
            [self.st.chains[q].mult for q in qs],
            [self.col[q] for q in qs],
        )

    def decode(self, values: np.ndarray) -> dict[int, float]:
        return {q: max(0.0, float(values[c])) for q, c in self.col.items()}

    def encode(self, values: np.ndarray, flows: dict[int, float]) -> None:
        for q, v in flows.items():
            values[self.col[q]] = v


class _CompactFlows:
    """Flows of a pipeline whose roots feed only leaves, without one column per chain.

    Root configs carry ``F_r`` (their share of frames); each leaf config ``c`` of a
    child task ``t`` receives ``g_{v,c}`` from root variant ``v`` (accuracy and
    branching depend only on ``v``, not on its batch size). Which root configs may
    feed ``c`` is a latency threshold, so the sets are nested: sorted by latency,
    root config ``r_j`` can feed every ``c`` that ``r_{j+1}`` can. A split of each
    ``F_r`` over compatible ``c`` exists iff (Hall's condition for nested sets) for
    every ``k``, the flow into configs only ``r_1..r_k`` can feed is at most
    ``F_1 + ... + F_k``, with equal totals. That replaces ``|roots| x |leaves|``
    chain columns by ``|root variants| x |leaves|`` and a few rows; :meth:`decode`
    recovers the chain flows (most constrained first).
    """

    def __init__(self, m: MilpModel, st: Structure, scoring: bool) -> None:
        self.st = st
        scale = 100.0 * st.leaf_weight
        self.root_col: dict[int, int] = {}  # root chain -> column
        # (root task, root variant, child task) -> root chains (latency ascending), leaf
        # configs with the deepest root index that can feed them, and their columns.
        self.blocks: list[tuple[list[int], list[tuple[int, int, int]], str]] = []
        # leaf config -> (column, load per unit of root demand) of each g feeding it.
        self.g_at: dict[int, list[tuple[int, float]]] = defaultdict(list)
        # (root chain, child task, leaf config) -> the leaf chain joining them.
        self.leaf_chain: dict[tuple[int, str, int], int] = {}
        for root in st.pipeline.roots:
            by_variant: dict[str, list[int]] = defaultdict(list)
            for q in st.root_chains[root]:
                ch = st.chains[q]
                acc = scale * ch.accuracy if (scoring and ch.leaf) else 0.0
                self.root_col[q] = m.add_col(0.0, 1.0, cost=acc)
                by_variant[st.configs[ch.configs[0]].variant.name].append(q)
            for qs in by_variant.values():
                qs.sort(key=lambda q: (st.chains[q].latency_ms, q))
                children = st.chains[qs[0]].children
                for child in children:
                    deepest: dict[int, int] = {}  # leaf config -> last root index feeding it
                    sample: dict[int, int] = {}  # leaf config -> one chain (for mult/accuracy)
                    feeds: list[set[int]] = []
                    for j, q in enumerate(qs):
                        leaf_cfgs = set()
                        for k in st.chains[q].children[child]:
                            c = st.chains[k].configs[-1]
                            self.leaf_chain[(q, child, c)] = k
                            leaf_cfgs.add(c)
                            deepest[c] = j
                            sample.setdefault(c, k)
                        feeds.append(leaf_cfgs)
                    if any(not feeds[j + 1] <= feeds[j] for j in range(len(feeds) - 1)):
                        raise _NotNested
                    cfgs = []
                    for c in sorted(deepest):
                        k = sample[c]
                        ch = st.chains[k]
                        if ch.children:
                            raise _NotNested
                        acc = scale * ch.accuracy if scoring else 0.0
                        col = m.add_col(0.0, 1.0, cost=acc)
                        self.g_at[c].append((col, ch.mult))
                        cfgs.append((c, deepest[c], col))
                    self.blocks.append((qs, cfgs, child))

    def root_share(self, root: str) -> tuple[list[int], list[float]]:
        idx = [self.root_col[q] for q in self.st.root_chains[root]]
        return idx, [1.0] * len(idx)

    def add_rows(self, m: MilpModel) -> None:
        for qs, cfgs, _ in self.blocks:
            fcols = [self.root_col[q] for q in qs]
            gcols = [col for _, _, col in cfgs]
            m.add_row(0.0, 0.0, gcols + fcols, [1.0] * len(gcols) + [-1.0] * len(fcols))
            for k in range(len(qs) - 1):
                only = [col for _, j, col in cfgs if j <= k]
                if only:
                    m.add_row(
                        -math.inf,
                        0.0,
                        only + fcols[: k + 1],
                        [1.0] * len(only) + [-1.0] * (k + 1),
                    )

    def load_at(self, i: int) -> tuple[list[int], list[float], list[int]]:
        """(columns, load per unit of root demand, columns for the link row) at config ``i``."""
        qs = [q for q in self.st.chains_at[i] if q in self.root_col]
        if qs:
            cols = [self.root_col[q] for q in qs]
            return cols, [1.0] * len(cols), cols
        entries = self.g_at.get(i, [])
        return [c for c, _ in entries], [mult for _, mult in entries], [c for c, _ in entries]

    def decode(self, values: np.ndarray) -> dict[int, float]:
        flows: dict[int, float] = {q: max(0.0, float(values[c])) for q, c in self.root_col.items()}
        for qs, cfgs, child in self.blocks:
            supply = [flows[q] for q in qs]
            # Most constrained first: configs only the first root configs can feed.
            for c, j, col in sorted(cfgs, key=lambda e: (e[1], e[0])):
                need = max(0.0, float(values[col]))
                for r in range(j + 1):
                    if need <= 1e-12:
                        break
                    take = min(need, supply[r])
                    if take <= 0:
                        continue
                    supply[r] -= take
                    need -= take
                    k = self.leaf_chain[(qs[r], child, c)]
                    flows[k] = flows.get(k, 0.0) + take
                if need > 1e-7:  # numerical slack: give the rest to the deepest feeder
                    k = self.leaf_chain[(qs[j], child, c)]
                    flows[k] = flows.get(k, 0.0) + need
        return flows

    def encode(self, values: np.ndarray, flows: dict[int, float]) -> None:
        for q, col in self.root_col.items():
            values[col] = flows.get(q, 0.0)
        for qs, cfgs, child in self.blocks:
            for c, _, col in cfgs:
                values[col] = sum(
                    flows.get(k, 0.0)
                    for q in qs
                    if (k := self.leaf_chain.get((q, child, c))) is not None
                )


class _NotNested(Exception):
    """The compact layout does not apply (deeper trees, or non-nested latency sets)."""


@dataclass
class Columns:
    """Where each quantity lives in a :class:`MilpModel` built by :func:`build_model`.

    Attributes:
        x: Config index -> replicas column.
        flows: The flow layout (chain columns, or the compact layout for pipelines
            whose roots feed only leaves); ``decode``/``encode`` map to chain flows.
        s: Served-share column (partial phase).
        agg: Aggregate integer columns with the replica columns they sum.
        churn: ``(d column, replica columns, running replicas)`` per (variant, accelerator).

    """

    x: dict[int, int]
    flows: _ChainFlows | _CompactFlows
    s: int | None
    agg: list[tuple[int, list[int]]] = field(default_factory=list)
    churn: list[tuple[int, list[int], int]] = field(default_factory=list)


def build_model(
    st: Structure,
    cluster: Cluster,
    demand: float,
    options: AllocatorOptions,
    phase: Phase,
    current: Plan | None,
    box: dict[tuple[str, str, int], int] | None = None,
    compact: bool = True,
) -> tuple[MilpModel, Columns]:
    """The tight MILP of ``phase`` at ``demand`` (see the module docstring).

    ``box`` maps config keys to the running plan's replicas; when given, every
    config's replicas stay within ``options.warm_radius`` of it. ``compact`` uses
    the compact flow layout where it applies (same optimum, fewer columns).
    """
    if compact:
        try:
            return _build(st, cluster, demand, options, phase, current, box, True)
        except _NotNested:
            pass
    return _build(st, cluster, demand, options, phase, current, box, False)


def _build(
    st: Structure,
    cluster: Cluster,
    demand: float,
    options: AllocatorOptions,
    phase: Phase,
    current: Plan | None,
    box: dict[tuple[str, str, int], int] | None,
    compact: bool,
) -> tuple[MilpModel, Columns]:
    m = MilpModel(maximize=phase != "hardware")
    configs = st.configs
    max_mult = st.max_mult
    x: dict[int, int] = {}
    for i, c in enumerate(configs):
        if i not in max_mult:
            continue
        need = math.ceil(demand * max_mult[i] / c.throughput - _EPS) if demand > 0 else 0
        ub = min(cluster.workers[c.accelerator], max(need, options.min_replicas_per_task))
        lb = 0
        if box is not None and options.warm_radius is not None:
            old = box.get(c.key, 0)
            lb = min(ub, max(0, old - options.warm_radius))
            ub = min(ub, old + options.warm_radius)
        x[i] = m.add_col(lb, ub, integer=True, priority=2)
    scoring = phase != "hardware"
    flows: _ChainFlows | _CompactFlows = (
        _CompactFlows(m, st, scoring) if compact else _ChainFlows(m, st, scoring)
    )
    s = m.add_col(0.0, 1.0, cost=1000.0) if phase == "partial" else None
    for root in st.pipeline.roots:
        idx, val = flows.root_share(root)
        if s is None:
            m.add_row(1.0, 1.0, idx, val)
        else:
            m.add_row(0.0, 0.0, idx + [s], val + [-1.0])
    flows.add_rows(m)
    for i, col in x.items():
        fcols, mults, link = flows.load_at(i)
        m.add_row(
            -math.inf,
            0.0,
            fcols + [col],
            [mult * demand for mult in mults] + [-configs[i].throughput],
        )
        # No flow through a config without replicas, even at demand ~0.
        m.add_row(-math.inf, 0.0, link + [col], [1.0] * len(link) + [-1.0])
    for accel, n in cluster.workers.items():
        on = [x[i] for i in x if configs[i].accelerator == accel]
        if on:
            m.add_row(-math.inf, float(n), on, [1.0] * len(on))
    if options.min_replicas_per_task > 0 and cluster.total >= options.min_replicas_per_task * len(
        st.pipeline.tasks
    ):
        for idx in st.by_task.values():
            on = [x[i] for i in idx if i in x]
            m.add_row(float(options.min_replicas_per_task), math.inf, on, [1.0] * len(on))
    cols = Columns(x=x, flows=flows, s=s)
    # Aggregate integer columns: replicas per (task, variant, accelerator), per (task, accelerator).
    per_variant: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    per_task: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, col in x.items():
        c = configs[i]
        per_variant[(c.task, c.variant.name, c.accelerator)].append(col)
        per_task[(c.task, c.accelerator)].append(col)
    # Branching tiers: replicas per task first, then per variant, then per config.
    tiered = [(1, g) for g in per_variant.values()] + [(0, g) for g in per_task.values()]
    for tier, group in tiered:
        if len(group) < 2:
            continue
        lo = sum(m.lower[k] for k in group)
        hi = min(sum(m.upper[k] for k in group), float(cluster.total))
        a = m.add_col(lo, hi, integer=True, priority=tier)
        m.add_row(0.0, 0.0, group + [a], [1.0] * len(group) + [-1.0])
        cols.agg.append((a, group))
    # Churn: workers whose variant (on an accelerator) differs from the running plan.
    churn_cols: list[int] = []
    if options.churn_weight > 0 and current is not None:
        old = current.replicas_by_accelerator()
        per_va: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, col in x.items():
            per_va[(configs[i].variant.name, configs[i].accelerator)].append(col)
        for key in sorted(set(per_va) | set(old)):
            d = m.add_col(0.0, math.inf)
            group = per_va.get(key, [])
            o = old.get(key, 0)
            m.add_row(-float(o), math.inf, [d] + group, [1.0] + [-1.0] * len(group))
            m.add_row(float(o), math.inf, [d] + group, [1.0] + [1.0] * len(group))
            churn_cols.append(d)
            cols.churn.append((d, group, o))
    sign = 1.0 if phase == "hardware" else -1.0
    for col in x.values():
        m.cost[col] += 1.0 if phase == "hardware" else -options.worker_weight
    for d in churn_cols:
        m.cost[d] += sign * 0.5 * options.churn_weight
    return m, cols


def start_from_plan(st: Structure, m: MilpModel, cols: Columns, current: Plan) -> np.ndarray | None:
    """The running plan as a column vector of ``m`` (for a MIP start), or None."""
    values = np.zeros(m.num_cols)
    index = {c.key: i for i, c in enumerate(st.configs)}
    for g in current.groups:
        i = index.get(g.key)
        if i is None or i not in cols.x:
            return None
        values[cols.x[i]] = g.replicas
    chain_index = st.chain_index
    per_branch: dict[tuple[int, str | None], float] = defaultdict(float)
    for p in current.paths:
        for depth in range(1, len(p.groups) + 1):
            q = chain_index.get(tuple(p.groups[:depth]))
            if q is None:
                return None
            nxt = p.groups[depth][0] if depth < len(p.groups) else None
            per_branch[(q, nxt)] += p.share
    flows: dict[int, float] = defaultdict(float)
    for (q, _), share in per_branch.items():
        flows[q] = max(flows[q], share)
    cols.flows.encode(values, dict(flows))
    if cols.s is not None:
        values[cols.s] = current.served_share
    for a, group in cols.agg:
        values[a] = sum(values[k] for k in group)
    for d, group, o in cols.churn:
        values[d] = abs(sum(values[k] for k in group) - o)
    return values if m.feasible(values) else None


def decode(cols: Columns, values: np.ndarray) -> tuple[dict[int, int], dict[int, float], float]:
    """Replicas per config, flow per chain and served share of a solution."""
    xs = {i: int(round(values[c])) for i, c in cols.x.items()}
    fs = cols.flows.decode(values)
    sv = float(values[cols.s]) if cols.s is not None else 1.0
    return xs, fs, sv
