"""Pipelines, tasks, model variants and clusters: the data model everything uses.

A pipeline is a forest of tasks (each task has at most one parent); every frame
that arrives sends one request to each root task. A request served by a variant
of task ``T`` emits, on average, ``branching[child]`` sub-requests to each child
task of ``T``; the branching factor depends on the variant (a weaker detector
finds fewer objects). Each task has several variants that trade accuracy for
latency; a variant's latency is profiled per accelerator type and batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from lokirl.core.frozen import FrozenMap

#: Batch sizes the Loki profiles were measured at.
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


def _freeze(mapping: Mapping) -> Mapping:
    return FrozenMap(dict(mapping))


@dataclass(frozen=True)
class Variant:
    """One model variant of a task.

    Attributes:
        name: Unique variant name within the pipeline (``yolov5x``).
        task: Name of the task the variant serves.
        accuracy: Normalised accuracy, 0-100 (the task's best variant is 100).
        latency_ms: Latency in milliseconds of one batch, per accelerator type and
            batch size: ``latency_ms[accelerator][batch_size]``.
        load_time_s: Seconds a worker needs to load this variant from disk (a cold
            load: read the weights, build the model, move it to the accelerator and
            run one warm-up batch); what a swap costs.
        branching: Mean sub-requests emitted per request to each child task.
        memory_mb: Accelerator memory in MiB the loaded variant takes (weights plus
            activations and workspace at its largest profiled batch); ``None`` when
            unknown.
        load_time_host_s: Seconds to load the variant when its weights are already
            in host memory (no disk read); ``None`` when unknown.
        load_source: Where ``load_time_s`` and ``memory_mb`` come from, e.g.
            ``"measured: cpu, 2026-12-03"`` or ``"estimate: ... (not measured on a
            GPU)"``; empty when not stated.

    """

    name: str
    task: str
    accuracy: float
    latency_ms: Mapping[str, Mapping[int, float]]
    load_time_s: float = 1.0
    branching: Mapping[str, float] = field(default_factory=dict)
    memory_mb: float | None = None
    load_time_host_s: float | None = None
    load_source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "latency_ms", _freeze({a: _freeze(t) for a, t in self.latency_ms.items()})
        )
        object.__setattr__(self, "branching", _freeze(self.branching))

    @property
    def accelerators(self) -> tuple[str, ...]:
        """Accelerator types this variant has a profile for."""
        return tuple(self.latency_ms)

    def batch_sizes(self, accelerator: str) -> tuple[int, ...]:
        """Profiled batch sizes on ``accelerator``, ascending."""
        return tuple(sorted(self.latency_ms.get(accelerator, {})))

    def latency(self, accelerator: str, batch_size: int) -> float:
        """Latency in ms of one batch of ``batch_size`` on ``accelerator``."""
        return float(self.latency_ms[accelerator][batch_size])

    def throughput(self, accelerator: str, batch_size: int) -> float:
        """Requests per second one replica serves with full batches."""
        lat = self.latency(accelerator, batch_size)
        return float("inf") if lat <= 0 else batch_size * 1000.0 / lat

    def min_latency(self) -> float:
        """Smallest latency in ms over accelerators and batch sizes."""
        return min(min(t.values()) for t in self.latency_ms.values())


@dataclass(frozen=True)
class Task:
    """A stage of the pipeline served by one of several variants.

    Attributes:
        name: Task name (``object_detection``).
        variants: The task's variants, most accurate first.
        children: Names of the child tasks that receive this task's sub-requests.

    """

    name: str
    variants: tuple[Variant, ...]
    children: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.variants, key=lambda v: (-v.accuracy, v.name)))
        object.__setattr__(self, "variants", ordered)
        object.__setattr__(self, "children", tuple(self.children))

    @property
    def best(self) -> Variant:
        """The most accurate variant."""
        return self.variants[0]

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; raises ``KeyError`` if absent."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"task {self.name!r} has no variant {name!r}")


@dataclass(frozen=True)
class Pipeline:
    """A forest of tasks with a latency SLO.

    Attributes:
        name: Pipeline name.
        tasks: The tasks, in topological order (parents before children).
        slo_ms: End-to-end latency SLO of a frame in milliseconds.
        e2e_accuracy: Optional measured end-to-end accuracy (0-100) per root-to-leaf
            path, keyed by the tuple of variant names along the path; paths absent
            from the table use the multiplicative model.
        description: Free text shown by the tools.
        accelerator_memory_mb: Accelerator memory in MiB of one worker of each
            accelerator type (``{"gpu": 11264}``); a type absent from the mapping
            has unknown memory.

    """

    name: str
    tasks: tuple[Task, ...]
    slo_ms: float
    e2e_accuracy: Mapping[tuple[str, ...], float] = field(default_factory=dict)
    description: str = ""
    accelerator_memory_mb: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "e2e_accuracy", _freeze(self.e2e_accuracy))
        object.__setattr__(self, "accelerator_memory_mb", _freeze(self.accelerator_memory_mb))

    @cached_property
    def _by_name(self) -> Mapping[str, Task]:
        return {t.name: t for t in self.tasks}

    @cached_property
    def _variants(self) -> Mapping[str, Variant]:
        return {v.name: v for t in self.tasks for v in t.variants}

    @cached_property
    def parents(self) -> Mapping[str, str | None]:
        """Parent task of each task (``None`` for roots)."""
        parent: dict[str, str | None] = {t.name: None for t in self.tasks}
        for t in self.tasks:
            for c in t.children:
                parent[c] = t.name
        return parent

    @property
    def roots(self) -> tuple[str, ...]:
        """Root tasks: every frame sends one request to each."""
        return tuple(t.name for t in self.tasks if self.parents[t.name] is None)

    @property
    def leaves(self) -> tuple[str, ...]:
        """Leaf tasks (no children)."""
        return tuple(t.name for t in self.tasks if not t.children)

    @property
    def accelerators(self) -> tuple[str, ...]:
        """Accelerator types any variant is profiled on, in first-seen order."""
        seen: dict[str, None] = {}
        for t in self.tasks:
            for v in t.variants:
                for a in v.accelerators:
                    seen.setdefault(a, None)
        return tuple(seen)

    def task(self, name: str) -> Task:
        """The task called ``name``; raises ``KeyError`` if absent."""
        return self._by_name[name]

    def variant(self, name: str) -> Variant:
        """The variant called ``name`` (variant names are unique in a pipeline)."""
        return self._variants[name]

    def emits(self, name: str) -> dict[str, float]:
        """Mean sub-requests a request served by variant ``name`` emits to each child task.

        Every child task of the variant's task is named: where the variant's
        ``branching`` profile is silent the factor is 1.0 (the rule the simulator, the
        router and the live workers share).
        """
        v = self.variant(name)
        return {c: float(v.branching.get(c, 1.0)) for c in self.task(v.task).children}

    def variants(self) -> Iterator[Variant]:
        """All variants, task by task."""
        for t in self.tasks:
            yield from t.variants

    def fits(self, accelerator: str, variants: Iterable[str]) -> bool | None:
        """Whether ``variants`` fit together in one worker's accelerator memory.

        Used for make-before-break swaps: the old and the new variant must both be
        resident while the new one loads.

        Args:
            accelerator: Accelerator type of the worker (``"gpu"``).
            variants: Names of the variants loaded at the same time (a name given
                twice counts twice).

        Returns:
            ``True`` if their ``memory_mb`` sum to at most the worker's memory,
            ``False`` if not, ``None`` when the worker's memory or any variant's
            memory is unknown.

        Raises:
            KeyError: a name is not a variant of the pipeline.

        """
        names = list(variants)
        need = [self.variant(n).memory_mb for n in names]
        capacity = self.accelerator_memory_mb.get(accelerator)
        if capacity is None or any(m is None for m in need):
            return None
        return sum(m for m in need if m is not None) <= capacity

    def root_to_leaf_tasks(self) -> list[tuple[str, ...]]:
        """Every chain of task names from a root to a leaf."""
        chains: list[tuple[str, ...]] = []

        def walk(prefix: tuple[str, ...]) -> None:
            task = self.task(prefix[-1])
            if not task.children:
                chains.append(prefix)
            for c in task.children:
                walk(prefix + (c,))

        for r in self.roots:
            walk((r,))
        return chains

    def path_accuracy(self, variants: tuple[str, ...], model: str = "multiplicative") -> float:
        """Accuracy (0-100) of a root-to-leaf path of variant names.

        Args:
            variants: Variant names from a root to a leaf.
            model: ``"multiplicative"`` (product of normalised accuracies) or
                ``"e2e"`` (the measured end-to-end table where it has the path,
                the product elsewhere).

        """
        if model == "e2e" and variants in self.e2e_accuracy:
            return float(self.e2e_accuracy[variants])
        acc = 1.0
        for name in variants:
            acc *= self.variant(name).accuracy / 100.0
        return 100.0 * acc

    def min_path_latency_ms(self) -> float:
        """Latency of the fastest root-to-leaf chain at any batch size (one batch each)."""
        best = 0.0
        for chain in self.root_to_leaf_tasks():
            lat = sum(min(v.min_latency() for v in self.task(t).variants) for t in chain)
            best = max(best, lat)
        return best


@dataclass(frozen=True)
class Cluster:
    """Workers available to the allocator, per accelerator type.

    Attributes:
        workers: Number of workers per accelerator type, e.g. ``{"gpu": 20}``.

    """

    workers: Mapping[str, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "workers", _freeze(self.workers))

    @property
    def total(self) -> int:
        """Total number of workers."""
        return sum(self.workers.values())

    @classmethod
    def homogeneous(cls, pipeline: Pipeline, workers: int) -> Cluster:
        """A cluster of ``workers`` of the pipeline's first accelerator type."""
        return cls({pipeline.accelerators[0]: workers})
