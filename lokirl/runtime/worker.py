"""The worker: one Ray actor per accelerator, hosting one variant at a time.

The class is plain Python (testable without Ray); :func:`make_worker` wraps it as a
Ray actor with ``num_gpus=1`` where the node has GPUs, else a fractional
``num_cpus`` so that several fit on a small machine. An actor runs one call at a
time: a batch already sent completes before a later ``load`` swaps the variant.

Sub-request counts are drawn from the variant's branching profile (Poisson around
the profile mean), not from real detections: the networks run for their cost, and
accuracy comes from the profile.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np


class Worker:
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
        self.batches = 0
        self.last_load_s = 0.0

    def load(
        self,
        variant: str,
        source: Mapping[str, Any],
        branching: Mapping[str, float] | None = None,
        warmup: bool = True,
    ) -> dict[str, Any]:
        """Load ``variant`` (replacing any other); returns the measured load time.

        Args:
            variant: Variant name.
            source: A :class:`~lokirl.runtime.models.ModelSource` as a dict.
            branching: Mean sub-requests per request for each child task.
            warmup: Run one batch of one so the first real batch is not slow.

        """
        from lokirl.runtime.models import ModelSource, Runner

        start = time.perf_counter()
        self.unload()
        src = ModelSource(**dict(source))
        runner = Runner(src, self.device)
        if warmup:
            x = np.zeros((1, 3, src.input_size, src.input_size), dtype=np.float32)
            runner.run(x)
        self.runner = runner
        self.variant = variant
        self.input_size = src.input_size
        self.branching = dict(branching or {})
        self.last_load_s = time.perf_counter() - start
        return {"variant": variant, "load_s": self.last_load_s, "device": self.device}

    def unload(self) -> None:
        """Drop the loaded variant and free its memory."""
        if self.runner is None:
            return
        self.runner = None
        self.variant = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def infer(self, frames: list[Any]) -> dict[str, Any]:
        """Run one batch of frames (arrays, or ObjectRefs to them) through the variant.

        Returns:
            ``{"variant", "service_ms", "counts": {child: [count per request]}}``.

        Raises:
            RuntimeError: no variant is loaded.

        """
        from lokirl.runtime.models import prepare_batch

        if self.runner is None:
            raise RuntimeError(f"worker {self.worker_id} has no variant loaded")
        start = time.perf_counter()
        refs = [i for i, f in enumerate(frames) if _is_ref(f)]
        if refs:  # large frames travel through the object store, small ones inline
            import ray

            frames = list(frames)
            for i, x in zip(refs, ray.get([frames[i] for i in refs]), strict=True):
                frames[i] = x
        self.runner.run(prepare_batch(frames, self.input_size))
        service_ms = (time.perf_counter() - start) * 1000.0
        n = len(frames)
        counts = {c: self.rng.poisson(m, n).tolist() for c, m in self.branching.items()}
        self.batches += 1
        return {"variant": self.variant, "service_ms": service_ms, "counts": counts}

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
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.runner.run(prepare_batch(frames, self.input_size))
            out.append((time.perf_counter() - start) * 1000.0)
        return out

    def info(self) -> dict[str, Any]:
        """What the worker holds, for status pages."""
        return {
            "worker_id": self.worker_id,
            "variant": self.variant,
            "device": self.device,
            "batches": self.batches,
            "last_load_s": self.last_load_s,
            "pid": os.getpid(),
        }

    def pid(self) -> int:
        """The actor process id (tests kill it)."""
        return os.getpid()

    def ping(self) -> str | None:
        """Cheap liveness check (the controller loop calls it on idle workers)."""
        return self.variant


def _is_ref(x: Any) -> bool:
    return type(x).__name__ == "ObjectRef"


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
) -> Any:
    """Start a :class:`Worker` as a Ray actor (``ray.init`` must have run).

    Args:
        worker_id: Index of the worker.
        use_gpu: Claim one GPU per actor; ``None``: when the cluster has GPUs.
        num_cpus: CPUs a CPU actor claims (fractional so several fit on a small box).
        threads: Torch threads of a CPU actor.
        seed: Seed of the branching draws.

    """
    import ray

    if use_gpu is None:
        use_gpu = cluster_gpus() >= 1
    options: dict[str, Any] = {"max_concurrency": 1, "max_restarts": 0}
    if use_gpu:
        options.update(num_gpus=1, num_cpus=1)
    else:
        options.update(num_cpus=num_cpus)
    actor_cls = ray.remote(Worker)
    return actor_cls.options(**options).remote(
        worker_id, "cuda" if use_gpu else "cpu", threads, seed
    )
