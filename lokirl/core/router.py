"""Most-Accurate-First (MAF) routing, early dropping and online branching estimates.

:func:`build_routing_table` is a pure function of a plan, its pipeline and the
current demand estimate. Root requests fill the most accurate worker groups of
each root task up to their capacity and overflow to the next; what no group can
take is dropped at admission (reason ``over_capacity``). Each parent group's
outgoing load (its load x the branching factor of its variant) is then routed to
the child task's groups, most accurate first, parents taken most accurate first,
preferring child groups whose latency still fits the path's latency budget. At
run time each request samples its next hop from the table.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from lokirl.core.frozen import FrozenMap
from lokirl.core.pipeline import Pipeline
from lokirl.core.plan import Plan, WorkerGroup

#: Next hop meaning "drop the request" (no capacity left for it).
DROP = -1

#: Key of a routing decision: (task, parent group id or None for root requests).
RouteKey = tuple[str, int | None]


@dataclass(frozen=True)
class RoutingTable:
    """Next-hop distributions per (task, parent group).

    Attributes:
        groups: Worker groups of the plan; a group id is an index into this tuple.
        targets: For each :data:`RouteKey`, the candidate group ids (``DROP`` allowed).
        cumulative: For each key, cumulative probabilities matching ``targets``.
        expected_load: Requests per second routed to each group at ``demand``.
        downstream_ms: Least latency after a group's own service to the end of the
            slowest branch below it (batch of one on each downstream variant).
        demand: Root demand the table was built for.
        drop_share: Share of root requests dropped at admission, per root task.

    """

    groups: tuple[WorkerGroup, ...]
    targets: Mapping[RouteKey, tuple[int, ...]]
    cumulative: Mapping[RouteKey, tuple[float, ...]]
    expected_load: tuple[float, ...]
    downstream_ms: tuple[float, ...]
    demand: float
    drop_share: Mapping[str, float] = field(default_factory=dict)

    def next_hop(self, task: str, parent: int | None, u: float) -> int:
        """Group id (or :data:`DROP`) for a request of ``task`` from group ``parent``.

        Args:
            task: Task the request is for.
            parent: Group id that emitted it, ``None`` for a root request.
            u: A uniform random number in [0, 1).

        """
        key = (task, parent)
        cum = self.cumulative.get(key)
        if cum is None:
            cum = self.cumulative.get((task, None))
            if cum is None:
                return DROP
            key = (task, None)
        i = bisect.bisect_right(cum, u)
        targets = self.targets[key]
        return targets[min(i, len(targets) - 1)]

    def probabilities(self, task: str, parent: int | None) -> dict[int, float]:
        """The next-hop distribution of a key as ``{group id: probability}``."""
        cum = self.cumulative[(task, parent)]
        out: dict[int, float] = {}
        prev = 0.0
        for gid, c in zip(self.targets[(task, parent)], cum, strict=True):
            out[gid] = out.get(gid, 0.0) + c - prev
            prev = c
        return out


def _maf_order(groups: tuple[WorkerGroup, ...], ids: list[int]) -> list[int]:
    # Most accurate first; among equals, the fastest (least latency) first.
    return sorted(ids, key=lambda i: (-groups[i].accuracy, groups[i].latency_ms, i))


def build_routing_table(
    plan: Plan,
    pipeline: Pipeline,
    demand: float | None = None,
    branching: Mapping[str, Mapping[str, float]] | None = None,
    latency_budget: float = 0.5,
    target_utilisation: float = 0.85,
) -> RoutingTable:
    """Build Most-Accurate-First routing tables from a plan.

    Args:
        plan: The running plan.
        pipeline: Its pipeline.
        demand: Current root demand estimate (frames/s); the plan's demand if None.
        branching: Estimated branching factors ``{variant: {child task: mean}}``;
            the profile's values where absent.
        latency_budget: Fraction of the SLO the sum of batch latencies on a path
            should fit (Loki: 0.5); child groups that keep a path inside it are
            preferred.
        target_utilisation: Groups are first filled to this share of their capacity
            (queues stay short), and only then to full capacity.

    Returns:
        The routing table. Demand beyond the plan's capacity is dropped at the
        roots; overflow inside the pipeline is spread over the child groups in
        proportion to their capacity (early dropping then sheds it).

    """
    if not 0 < target_utilisation <= 1:
        raise ValueError("target_utilisation must be in (0, 1]")
    demand = plan.demand if demand is None else max(0.0, float(demand))
    groups = plan.groups
    budget = latency_budget * pipeline.slo_ms
    by_task: dict[str, list[int]] = {t.name: [] for t in pipeline.tasks}
    for i, g in enumerate(groups):
        by_task.setdefault(g.task, []).append(i)

    def mult(g: WorkerGroup, child: str) -> float:
        if branching is not None and child in branching.get(g.variant, {}):
            return float(branching[g.variant][child])
        return pipeline.variant(g.variant).branching.get(child, 1.0)

    # Least latency from the end of a group's service to the end of its subtree.
    downstream = [0.0] * len(groups)
    best_below: dict[str, float] = {}
    for task in reversed(pipeline.tasks):
        branch = []
        for c in task.children:
            ids = by_task.get(c, [])
            # Only groups that serve now count (a serving view has groups of 0 replicas).
            ids = [i for i in ids if groups[i].replicas > 0] or ids
            lat = min(
                (
                    pipeline.variant(groups[i].variant).latency(groups[i].accelerator, 1)
                    for i in ids
                ),
                default=math.inf,
            )
            branch.append(lat + best_below.get(c, 0.0))
        best_below[task.name] = max(branch, default=0.0)
        for i in by_task.get(task.name, []):
            downstream[i] = best_below[task.name]

    load = [0.0] * len(groups)
    remaining = [g.capacity for g in groups]
    path_ms = [0.0] * len(groups)  # slowest batch-latency path into and through each group
    targets: dict[RouteKey, tuple[int, ...]] = {}
    cumulative: dict[RouteKey, tuple[float, ...]] = {}
    drop_share: dict[str, float] = {}

    def fill(
        key: RouteKey, ids: list[int], amount: float, before_ms: float, below: float
    ) -> dict[int, float]:
        """Assign ``amount`` req/s over ``ids`` MAF; returns {gid or DROP: amount}.

        Groups of one variant form a tier and share their tier's load in proportion
        to capacity. Tiers are filled most accurate first, preferring groups that
        keep the path inside the latency budget, first up to ``target_utilisation``
        of their capacity, then (if load is left) up to full capacity.
        """
        ordered = _maf_order(groups, ids)
        fits = [i for i in ordered if before_ms + groups[i].latency_ms + below <= budget + 1e-9]
        rest = [i for i in ordered if i not in fits]
        tiers: list[list[int]] = []
        for part in (fits, rest):
            by_variant: dict[str, list[int]] = {}
            for i in part:
                by_variant.setdefault(groups[i].variant, []).append(i)
            tiers.extend(by_variant.values())
        share: dict[int, float] = {}
        left = amount
        for level in (target_utilisation, 1.0):
            for tier in tiers:
                if left <= 1e-12:
                    break
                room = {
                    i: max(0.0, remaining[i] - (1.0 - level) * groups[i].capacity) for i in tier
                }
                total_room = sum(room.values())
                if total_room <= 1e-12:
                    continue
                take = min(left, total_room)
                for i in tier:
                    part = take * room[i] / total_room
                    if part > 0:
                        share[i] = share.get(i, 0.0) + part
                        remaining[i] -= part
                left -= take
        if left > 1e-12:
            if key[1] is None:
                share[DROP] = left
            else:
                total_cap = sum(groups[i].capacity for i in ordered) or 1.0
                for i in ordered:
                    share[i] = share.get(i, 0.0) + left * groups[i].capacity / total_cap
        return share

    def store(key: RouteKey, share: dict[int, float], ids: list[int]) -> None:
        total = sum(share.values())
        if total <= 1e-12:
            # No load expected: send any stray request by remaining capacity, MAF order.
            ordered = _maf_order(groups, ids)
            caps = {i: max(remaining[i], 0.0) for i in ordered}
            if sum(caps.values()) <= 1e-12:
                caps = {i: groups[i].capacity for i in ordered}
            share, total = caps, sum(caps.values())
            if total <= 1e-12:
                share, total = {DROP: 1.0}, 1.0
        ids_out = tuple(share)
        acc = 0.0
        cum = []
        for i in ids_out:
            acc += share[i] / total
            cum.append(acc)
        cum[-1] = 1.0
        targets[key] = ids_out
        cumulative[key] = tuple(cum)

    for task in pipeline.tasks:
        ids = by_task.get(task.name, [])
        parent = pipeline.parents[task.name]
        if parent is None:
            share = fill((task.name, None), ids, demand, 0.0, best_below[task.name])
            for i, a in share.items():
                if i != DROP:
                    load[i] += a
                    path_ms[i] = max(path_ms[i], groups[i].latency_ms)
            drop_share[task.name] = share.get(DROP, 0.0) / demand if demand > 0 else 0.0
            store((task.name, None), share, ids)
            continue
        for p in _maf_order(groups, by_task.get(parent, [])):
            out = load[p] * mult(groups[p], task.name)
            share = fill((task.name, p), ids, out, path_ms[p], best_below[task.name])
            for i, a in share.items():
                load[i] += a
                path_ms[i] = max(path_ms[i], path_ms[p] + groups[i].latency_ms)
            store((task.name, p), share, ids)
        # Requests whose parent group is unknown (e.g. plan just changed) use this row.
        store((task.name, None), {i: groups[i].capacity for i in ids}, ids)

    return RoutingTable(
        groups=groups,
        targets=FrozenMap(targets),
        cumulative=FrozenMap(cumulative),
        expected_load=tuple(load),
        downstream_ms=tuple(downstream),
        demand=demand,
        drop_share=FrozenMap(drop_share),
    )


def should_drop_early(
    now_ms: float, deadline_ms: float, service_ms: float, downstream_ms: float
) -> bool:
    """Early-drop rule: drop a request at the queue head if it cannot meet its deadline.

    Args:
        now_ms: Current time.
        deadline_ms: The request's absolute deadline (arrival + SLO).
        service_ms: Latency of the batch it would join, if served now.
        downstream_ms: Least latency still needed below this stage.

    Returns:
        True when even immediate service cannot finish before the deadline.

    """
    return now_ms + service_ms + downstream_ms > deadline_ms


class BranchingEstimator:
    """Online branching-factor estimate: mean of the last ``window`` observed counts.

    Loki re-estimates each variant's sub-request count per child task from the
    last 50 observations; until a (variant, child) has been observed, the
    profile's value is used.

    Args:
        pipeline: Pipeline whose profile values serve as the prior.
        window: Number of recent observations averaged (Loki: 50).

    """

    def __init__(self, pipeline: Pipeline, window: int = 50) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.pipeline = pipeline
        self.window = window
        self._obs: dict[tuple[str, str], deque[int]] = {}
        self._sum: dict[tuple[str, str], float] = {}

    def observe(self, variant: str, child: str, count: int) -> None:
        """Record that one request served by ``variant`` emitted ``count`` sub-requests."""
        key = (variant, child)
        q = self._obs.get(key)
        if q is None:
            q = self._obs[key] = deque()
            self._sum[key] = 0.0
        q.append(count)
        self._sum[key] += count
        if len(q) > self.window:
            self._sum[key] -= q.popleft()

    def mean(self, variant: str, child: str) -> float:
        """Current estimate for ``variant`` -> ``child``."""
        q = self._obs.get((variant, child))
        if not q:
            return self.pipeline.variant(variant).branching.get(child, 1.0)
        return self._sum[(variant, child)] / len(q)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """All estimates as ``{variant: {child: mean}}`` (profile values where unseen)."""
        out: dict[str, dict[str, float]] = {}
        for task in self.pipeline.tasks:
            for v in task.variants:
                out[v.name] = {c: self.mean(v.name, c) for c in task.children}
        return out
