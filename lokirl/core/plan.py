"""Allocation plans: which variants run where, at what batch size, with what routing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lokirl.core.frozen import FrozenMap

#: How the plan was obtained. ``hardware``: demand fits on the most accurate
#: variants, workers minimised. ``accuracy``: cheaper variants mixed in to carry
#: the demand at the highest accuracy. ``partial``: even that cannot carry the
#: demand; the plan serves the largest share it can. ``fallback``: a heuristic
#: plan built because the solver returned nothing.
Phase = Literal["hardware", "accuracy", "partial", "fallback"]

#: ``optimal``: proven optimal. ``feasible``: a solution, not proven optimal (time
#: limit). ``failed``: the solver returned no solution; the plan is the running
#: plan (or a heuristic one if there was none).
Status = Literal["optimal", "feasible", "failed"]


@dataclass(frozen=True)
class WorkerGroup:
    """Replicas of one variant on one accelerator type at one batch size.

    Attributes:
        task: Task the variant serves.
        variant: Variant name.
        accelerator: Accelerator type of the workers.
        batch_size: Largest batch a worker forms.
        replicas: Number of workers.
        latency_ms: Profiled latency of a full batch.
        throughput: Requests per second one replica serves with full batches.
        accuracy: The variant's normalised accuracy.
        load: Requests per second the solver routed to the group at the plan's demand.

    """

    task: str
    variant: str
    accelerator: str
    batch_size: int
    replicas: int
    latency_ms: float
    throughput: float
    accuracy: float
    load: float = 0.0

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity of the group: (variant, accelerator, batch size)."""
        return (self.variant, self.accelerator, self.batch_size)

    @property
    def capacity(self) -> float:
        """Requests per second the whole group serves."""
        return self.replicas * self.throughput


@dataclass(frozen=True)
class PathShare:
    """Share of root demand the solver sent along one root-to-leaf chain of groups.

    Attributes:
        groups: The group keys along the chain, root first.
        share: Fraction of frames (0-1).
        accuracy: Path accuracy (0-100).
        latency_ms: Sum of the groups' batch latencies.

    """

    groups: tuple[tuple[str, str, int], ...]
    share: float
    accuracy: float
    latency_ms: float

    @property
    def variants(self) -> tuple[str, ...]:
        """Variant names along the chain."""
        return tuple(g[0] for g in self.groups)


@dataclass(frozen=True)
class Plan:
    """An allocation of workers to variants for a demand.

    Attributes:
        pipeline: Pipeline name.
        demand: Root demand (frames/s) the plan was solved for.
        groups: Worker groups, task by task, most accurate first.
        paths: Solver's routing shares per root-to-leaf chain.
        expected_accuracy: Frame-weighted mean path accuracy (0-100) over served frames.
        served_share: Share of ``demand`` the plan carries (1.0 unless partial).
        max_demand: Largest root demand the plan's capacity carries with its mix.
        phase: See :data:`Phase`.
        status: See :data:`Status`.
        solver: Solver name (``CBC``, ``HiGHS``, ``heuristic``).
        solve_time_s: Wall time of the solve.
        objective: Objective value of the last phase solved.
        message: Human-readable note (why partial, why failed).
        workers: Workers per accelerator type available when solving.

    """

    pipeline: str
    demand: float
    groups: tuple[WorkerGroup, ...]
    paths: tuple[PathShare, ...] = ()
    expected_accuracy: float = 0.0
    served_share: float = 1.0
    max_demand: float = 0.0
    phase: Phase = "hardware"
    status: Status = "optimal"
    solver: str = ""
    solve_time_s: float = 0.0
    objective: float = 0.0
    message: str = ""
    workers: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "paths", tuple(self.paths))
        object.__setattr__(self, "workers", FrozenMap(dict(self.workers)))

    @property
    def active_workers(self) -> int:
        """Workers holding a variant and taking traffic."""
        return sum(g.replicas for g in self.groups)

    @property
    def is_partial(self) -> bool:
        """Whether the plan cannot carry its whole demand."""
        return self.phase == "partial"

    def replicas(self) -> dict[str, int]:
        """Replicas per variant (summed over accelerators and batch sizes)."""
        out: dict[str, int] = defaultdict(int)
        for g in self.groups:
            out[g.variant] += g.replicas
        return dict(out)

    def replicas_by_accelerator(self) -> dict[tuple[str, str], int]:
        """Replicas per (variant, accelerator)."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        for g in self.groups:
            out[(g.variant, g.accelerator)] += g.replicas
        return dict(out)

    def capacity(self) -> dict[str, float]:
        """Requests per second each task's workers serve (sub-requests for non-roots)."""
        out: dict[str, float] = defaultdict(float)
        for g in self.groups:
            out[g.task] += g.capacity
        return dict(out)

    def group(self, key: tuple[str, str, int]) -> WorkerGroup:
        """The group with identity ``key``."""
        for g in self.groups:
            if g.key == key:
                return g
        raise KeyError(key)

    def task_shares(self) -> dict[str, dict[str, float]]:
        """Share of each task's planned load routed to each variant (sums to 1 per task)."""
        load: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for g in self.groups:
            load[g.task][g.variant] += g.load
        shares: dict[str, dict[str, float]] = {}
        for task, per in load.items():
            total = sum(per.values())
            if total > 0:
                shares[task] = {v: x / total for v, x in per.items() if x > 0}
        return shares

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the plan."""
        return {
            "pipeline": self.pipeline,
            "demand": self.demand,
            "phase": self.phase,
            "status": self.status,
            "solver": self.solver,
            "solve_time_s": self.solve_time_s,
            "expected_accuracy": self.expected_accuracy,
            "served_share": self.served_share,
            "max_demand": self.max_demand,
            "active_workers": self.active_workers,
            "workers": dict(self.workers),
            "capacity": self.capacity(),
            "task_shares": self.task_shares(),
            "groups": [asdict(g) for g in self.groups],
            "paths": [
                {
                    "variants": list(p.variants),
                    "groups": [list(k) for k in p.groups],
                    "share": p.share,
                    "accuracy": p.accuracy,
                    "latency_ms": p.latency_ms,
                }
                for p in self.paths
            ],
            "message": self.message,
        }
