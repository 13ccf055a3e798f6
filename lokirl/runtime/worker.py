"""The worker: one Ray actor per accelerator (or share of one), serving one variant at a time.

The class is plain Python (testable without Ray); :func:`make_worker` wraps it as a
Ray actor with a share of a GPU where the cluster has GPUs (``num_gpus`` from
:func:`gpu_share`: 1 when there are GPUs enough, else 1/k so that k workers share
each GPU), else a fractional ``num_cpus`` so that several fit on a small machine.
An actor runs up to two calls at once, so that a batch can run while a new variant
loads: a make-before-break swap (``overlap``, see :mod:`lokirl.core.reconfig`) is
``load(..., keep_old=True)`` (the new variant loads beside the old one, which keeps
serving) then ``switch(variant)`` (the new one becomes current, the old one is
freed). A plain ``load`` (``stop``) frees the old variant first. ``infer`` names the variant a batch
is for, so a batch never runs on the wrong model around a switch.

The data path (:func:`~lokirl.runtime.models.prepare_batch`): frames travel to the
worker's device as uint8 (through pinned host memory on CUDA) and are converted,
scaled and resized there; with ``fp16`` the network and its inputs are in half
precision (CUDA only). A load warms the variant up at every batch size the plan
may give it, so that no first batch of a new size pays for kernel selection.

Sub-request counts are drawn from the variant's branching profile (Poisson around
the profile mean), not from real detections: the networks run for their cost, and
accuracy comes from the profile.

``make_worker(..., emulate=True)`` starts an
:class:`~lokirl.runtime.emulated.EmulatedWorker` instead: the same interface, no
model, the profiled batch latency and load time taken asleep (DESIGN, "Emulated
accelerators").
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lokirl.errors import ConfigError

if TYPE_CHECKING:
    from lokirl.core.pipeline import Pipeline


class WorkerSlot:
    """What every worker kind shares: the current variant, those loaded beside it, liveness.

    A subclass sets ``worker_id``, ``variant``, ``pending`` (variant -> what
    :meth:`_make_current` installs) and ``_lock``, and defines ``_make_current``
    (and ``_free`` when dropped variants hold device memory).
    """

    worker_id: int
    variant: str | None
    pending: dict[str, Any]
    _lock: threading.Lock

    def _make_current(self, variant: str, entry: Any) -> None:
        raise NotImplementedError

    def _free(self) -> None:
        """Release what dropped variants held (device memory); nothing by default."""

    def switch(self, variant: str) -> dict[str, Any]:
        """Make ``variant`` (loaded with ``keep_old=True``) current; free the others.

        A batch already running on the old variant completes on it.

        Raises:
            RuntimeError: ``variant`` is neither current nor loaded beside it.

        """
        with self._lock:
            entry = self.pending.pop(variant, None)
            if entry is None and self.variant != variant:
                raise RuntimeError(f"worker {self.worker_id} has not loaded {variant}")
            if entry is not None:
                self._make_current(variant, entry)
            self.pending.clear()
        self._free()
        return {"variant": self.variant}

    def pid(self) -> int:
        """The actor process id (tests kill it)."""
        return os.getpid()

    def ping(self) -> str | None:
        """Cheap liveness check (the controller loop calls it on idle workers)."""
        return self.variant


class Worker(WorkerSlot):
    """Hosts one variant; loads, unloads, swaps and runs batches on its device.

    Args:
        worker_id: Index of the worker in the runtime.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
        threads: Torch intra-op threads on CPU.
        seed: Seed of the branching draws.

    """

    def __init__(
        self, worker_id: int, device: str = "auto", threads: int = 1, seed: int = 0
    ) -> None:
        import torch

        self.worker_id = worker_id
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if device == "cpu":
            torch.set_num_threads(max(1, threads))
        self.rng = np.random.default_rng(seed + 7919 * worker_id)
        self.variant: str | None = None
        self.runner: Any = None
        self.input_size = 224
        self.branching: dict[str, float] = {}
        # Variants loaded beside the current one (overlap swaps): name -> (runner,
        # input size, branching).
        self.pending: dict[str, tuple[Any, int, dict[str, float]]] = {}
        self._lock = threading.Lock()
        self.batches = 0
        self.last_load_s = 0.0

    def load(
        self,
        variant: str,
        source: Mapping[str, Any],
        branching: Mapping[str, float] | None = None,
        warmup: bool | Sequence[int] = True,
        keep_old: bool = False,
    ) -> dict[str, Any]:
        """Load ``variant``; returns the measured load time and where it runs.

        Args:
            variant: Variant name.
            source: A :class:`~lokirl.runtime.models.ModelSource` as a dict.
            branching: Mean sub-requests per request for each child task.
            warmup: Batch sizes to run one batch of each (uint8 frames through the
                serving data path) before the variant serves, so that no first
                batch of a size is slow: the sizes the plan may give the worker
                (the runtime passes the variant's profiled sizes). ``True``: batch
                1 only; ``False`` or empty: none.
            keep_old: Load beside the current variant, which keeps serving until
                :meth:`switch` (make-before-break); otherwise the current variant
                is freed first and the new one is current once loaded.

        Returns:
            ``{"variant", "load_s", "device", "provider", "fp16", "warmed",
            "kept_old"}``: ``device`` is where the network really runs (``cpu``
            for an ONNX model whose CUDA provider did not start), ``provider``
            the ONNX Runtime provider (``None`` for torch), ``warmed`` the batch
            sizes warmed up.

        """
        from lokirl.runtime.models import ModelSource, Runner

        start = time.perf_counter()
        keep = keep_old and self.runner is not None
        if not keep:
            self.unload()
        src = ModelSource(**dict(source))
        runner = Runner(src, self.device)
        sizes = warmup_sizes(warmup)
        for b in sizes:
            self._warm(runner, src.input_size, b)
        entry = (runner, src.input_size, dict(branching or {}))
        with self._lock:
            if keep:
                self.pending[variant] = entry
            else:
                self._make_current(variant, entry)
        self.last_load_s = time.perf_counter() - start
        return {
            "variant": variant,
            "load_s": self.last_load_s,
            "device": runner.device_used,
            "provider": runner.provider,
            "fp16": src.fp16 and runner.provider is None,
            "warmed": list(sizes),
            "kept_old": keep,
        }

    @staticmethod
    def _warm(runner: Any, size: int, batch_size: int) -> None:
        """Run one batch of ``batch_size`` zero uint8 frames the way :meth:`infer` does."""
        from lokirl.runtime.models import prepare_batch

        frame = np.zeros((3, size, size), dtype=np.uint8)
        x = prepare_batch([frame] * batch_size, size, runner.input_device, runner.input_dtype)
        runner.run(x)

    def _make_current(self, variant: str, entry: tuple[Any, int, dict[str, float]]) -> None:
        self.runner, self.input_size, self.branching = entry
        self.variant = variant

    def unload(self) -> None:
        """Drop every loaded variant and free their memory."""
        with self._lock:
            had = self.runner is not None or bool(self.pending)
            self.runner = None
            self.variant = None
            self.pending.clear()
        if had:
            self._free()

    def _free(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def infer(self, frames: list[Any], variant: str | None = None) -> dict[str, Any]:
        """Run one batch of frames (arrays, or ObjectRefs to them) through a variant.

        Args:
            frames: The batch.
            variant: The variant it is for: the current one or one loaded beside it
                (``None``: the current one).

        Returns:
            ``{"variant", "service_ms", "counts": {child: [count per request]}}``.

        Raises:
            RuntimeError: that variant is not loaded.

        """
        from lokirl.runtime.models import prepare_batch

        with self._lock:
            if variant is None or variant == self.variant:
                runner, size, branching, name = (
                    self.runner,
                    self.input_size,
                    self.branching,
                    self.variant,
                )
            elif variant in self.pending:
                runner, size, branching = self.pending[variant]
                name = variant
            else:
                runner = None
        if runner is None:
            raise RuntimeError(f"worker {self.worker_id} has no variant {variant or ''} loaded")
        start = time.perf_counter()
        refs = [i for i, f in enumerate(frames) if _is_ref(f)]
        if refs:  # large frames travel through the object store, small ones inline
            import ray

            frames = list(frames)
            for i, x in zip(refs, ray.get([frames[i] for i in refs]), strict=True):
                frames[i] = x
        runner.run(prepare_batch(frames, size, runner.input_device, runner.input_dtype))
        service_ms = (time.perf_counter() - start) * 1000.0
        n = len(frames)
        with self._lock:
            counts = {c: self.rng.poisson(m, n).tolist() for c, m in branching.items()}
            self.batches += 1
        return {"variant": name, "service_ms": service_ms, "counts": counts}

    def time_batch(self, batch_size: int, repeats: int = 5) -> list[float]:
        """Latencies in ms of ``repeats`` batches of ``batch_size`` random inputs (profiler)."""
        from lokirl.runtime.models import prepare_batch

        if self.runner is None:
            raise RuntimeError(f"worker {self.worker_id} has no variant loaded")
        frames = [
            np.random.default_rng(i)
            .integers(0, 255, (3, self.input_size, self.input_size))
            .astype(np.uint8)
            for i in range(batch_size)
        ]
        runner = self.runner
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            runner.run(
                prepare_batch(frames, self.input_size, runner.input_device, runner.input_dtype)
            )
            out.append((time.perf_counter() - start) * 1000.0)
        return out

    def info(self) -> dict[str, Any]:
        """What the worker holds, for status pages."""
        return {
            "worker_id": self.worker_id,
            "variant": self.variant,
            "loaded_beside": sorted(self.pending),
            "device": self.device if self.runner is None else self.runner.device_used,
            "provider": None if self.runner is None else self.runner.provider,
            "batches": self.batches,
            "last_load_s": self.last_load_s,
            "pid": os.getpid(),
        }


def _is_ref(x: Any) -> bool:
    return type(x).__name__ == "ObjectRef"


def warmup_sizes(warmup: bool | Sequence[int]) -> tuple[int, ...]:
    """The batch sizes a load warms up: ``True`` -> (1,), ``False`` -> (), else sorted, unique.

    Raises:
        ValueError: a batch size below 1.

    """
    if isinstance(warmup, bool):
        return (1,) if warmup else ()
    sizes = tuple(sorted({int(b) for b in warmup}))
    if sizes and sizes[0] < 1:
        raise ValueError(f"warm-up batch sizes must be >= 1, not {sizes[0]}")
    return sizes


#: Ray counts resources in steps of 1/10,000: a share is rounded down to one.
_RAY_STEP = 1e-4


def gpu_share(workers: int, gpus: float, requested: float | None = None) -> float:
    """The share of a GPU each worker actor claims (Ray's ``num_gpus``); 0: CPU workers.

    Without ``requested``: 1 when the cluster has a GPU per worker, else 1/k with
    k = ceil(workers / GPUs), so that k workers share each GPU instead of the
    extra actors waiting for a GPU forever. A share must fit on one GPU (Ray
    places a fractional actor on a single device), so ``workers`` fit when
    ``floor(GPUs) * floor(1 / share) >= workers``. Shares are rounded down to
    Ray's resolution (1/10,000).

    Args:
        workers: Worker actors to start.
        gpus: GPUs of the Ray cluster (``ray.cluster_resources()["GPU"]``).
        requested: ``--gpus-per-worker``: 0 < F <= 1, or ``None`` for the default.

    Returns:
        The share, in (0, 1]; 0.0 when the cluster has no GPU and none was requested.

    Raises:
        ConfigError: ``requested`` outside (0, 1]; a share requested on a cluster
            without GPUs; more workers than the GPUs hold at the requested share.

    """
    flag = "--gpus-per-worker"
    if workers < 1:
        raise ConfigError("--workers", str(workers), "must be at least 1", "pass --workers 2")
    whole = int(math.floor(gpus + 1e-9)) if math.isfinite(gpus) else 0
    if requested is not None:
        f = float(requested)
        if not (math.isfinite(f) and _RAY_STEP <= f <= 1.0):
            raise ConfigError(
                flag,
                f"{requested:g}" if isinstance(requested, float | int) else str(requested),
                "a worker's share of a GPU must be in (0, 1] (at least 0.0001, Ray's step)",
                "pass e.g. --gpus-per-worker 0.5 (two workers per GPU), or leave it out",
            )
        if whole < 1:
            raise ConfigError(
                flag,
                f"{f:g}",
                "the Ray cluster has no GPU, so the workers run on the CPU",
                f"drop {flag}, or join a cluster with GPU nodes (--address)",
            )
    if whole < 1:
        return 0.0
    if requested is None:
        share = 1.0 / math.ceil(workers / whole)
    else:
        share = float(requested)
    share = math.floor(share / _RAY_STEP + 1e-6) * _RAY_STEP
    per_gpu = int(math.floor(1.0 / share + 1e-6))
    fit = whole * per_gpu
    if workers > fit:
        k = math.ceil(workers / whole)
        need = workers * share
        over = (
            f"{workers} GPU workers need {need:g} GPUs but the Ray cluster has {gpus:g}"
            if need > gpus + 1e-9
            else f"{workers} GPU workers do not fit: {per_gpu} share(s) of {share:g} fit on each "
            f"of the {whole} GPUs (a share must fit on one GPU), {fit} in all"
        )
        raise ConfigError(
            flag,
            f"{share:g}",
            over,
            f"pass --gpus-per-worker {math.floor(1e4 / k) / 1e4:g} ({k} workers per GPU), "
            f"or --workers {fit} or fewer, or add GPU nodes",
        )
    return round(share, 4)


def share_worker_memory(pipeline: Pipeline, accelerator: str, share: float) -> Pipeline:
    """The pipeline with one worker's memory on ``accelerator`` cut to ``share`` of it.

    A profile records the memory of a worker that has its GPU to itself (the device's
    memory, or ``--worker-memory-mb``). Workers that share a GPU (``--gpus-per-worker``
    below 1) each hold only their share, so whether a make-before-break swap fits
    (:meth:`~lokirl.core.pipeline.Pipeline.fits`, read by
    :func:`~lokirl.core.reconfig.plan_swap`) must be judged against that share.

    Args:
        pipeline: The pipeline as profiled.
        accelerator: The workers' accelerator type.
        share: Each worker's share of a GPU, in (0, 1].

    Returns:
        ``pipeline`` itself when the share is 1 or the worker's memory is unknown,
        else a copy whose ``accelerator_memory_mb[accelerator]`` is ``share`` times it.

    """
    memory = pipeline.accelerator_memory_mb.get(accelerator)
    if memory is None or not 0.0 < share < 1.0:
        return pipeline
    mapping = dict(pipeline.accelerator_memory_mb)
    mapping[accelerator] = memory * share
    return dataclasses.replace(pipeline, accelerator_memory_mb=mapping)


def cluster_gpus() -> float:
    """GPUs the connected Ray cluster has (0 when none)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def make_worker(
    worker_id: int,
    use_gpu: bool | None = None,
    num_cpus: float = 0.25,
    threads: int = 1,
    seed: int = 0,
    emulate: bool = False,
    pipeline: Any = None,
    accelerator: str | None = None,
    dilation: float = 1.0,
    gpus_per_worker: float = 1.0,
    batch_calls: int = 1,
) -> Any:
    """Start a :class:`Worker` as a Ray actor (``ray.init`` must have run).

    Args:
        worker_id: Index of the worker.
        use_gpu: Claim a GPU (``gpus_per_worker`` of one) per actor; ``None``: when
            the cluster has GPUs.
        num_cpus: CPUs a CPU actor claims (fractional so several fit on a small box).
        threads: Torch threads of a CPU actor.
        seed: Seed of the branching draws.
        emulate: Start an :class:`~lokirl.runtime.emulated.EmulatedWorker` instead:
            no model, batches and loads take ``pipeline``'s profiled time asleep, and
            the actor claims no CPU or GPU (``use_gpu``, ``num_cpus`` and ``threads``
            are ignored).
        pipeline: The pipeline whose profile an emulated worker takes (required with
            ``emulate``).
        accelerator: The profile an emulated worker takes (default: the pipeline's first).
        dilation: Multiply an emulated worker's times by this (1: as ``pipeline`` says;
            a runtime that dilates passes the dilated pipeline and 1).
        gpus_per_worker: Share of a GPU a GPU actor claims (see :func:`gpu_share`);
            it claims the same share of a CPU, so the workers of one GPU claim
            one CPU together.
        batch_calls: Batch calls the actor accepts at once besides a load (or ping):
            one per ingress replica that sends it batches.

    Raises:
        ValueError: ``emulate`` without a ``pipeline``.

    """
    import ray

    if emulate:
        from lokirl.runtime.emulated import make_emulated_worker

        if pipeline is None:
            raise ValueError("make_worker(emulate=True) needs the pipeline whose profile it takes")
        return make_emulated_worker(
            worker_id, pipeline, accelerator, seed=seed, dilation=dilation, batch_calls=batch_calls
        )
    if use_gpu is None:
        use_gpu = cluster_gpus() >= 1
    # Two calls at once: a batch runs while a new variant loads (overlap swaps).
    options: dict[str, Any] = {"max_concurrency": 1 + max(1, batch_calls), "max_restarts": 0}
    if use_gpu:
        share = float(gpus_per_worker)
        if not 0.0 < share <= 1.0:
            raise ValueError(f"gpus_per_worker must be in (0, 1], not {share:g}")
        options.update(num_gpus=share, num_cpus=share)
    else:
        options.update(num_cpus=num_cpus)
    actor_cls = ray.remote(Worker)
    return actor_cls.options(**options).remote(
        worker_id, "cuda" if use_gpu else "cpu", threads, seed
    )
