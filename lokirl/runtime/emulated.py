"""Emulated accelerators: a worker actor that hosts no model and takes the profiled time.

DESIGN ("Emulated accelerators"): to run the live system at the scale it exists for
(20-100 GPU workers) on a few CPU cores, a worker can *emulate* its accelerator.
:class:`EmulatedWorker` has :class:`~lokirl.runtime.worker.Worker`'s interface
(``load``/``switch``/``unload``/``infer``/``time_batch``/``info``/``pid``/``ping``,
``load(..., keep_old=True)`` then ``switch`` for make-before-break swaps) and
answers ``infer`` with what the data plane expects (``variant``, ``service_ms``,
``counts``: the branching draws), but a batch is a sleep of the variant's profiled
batch latency and a load a sleep of its profiled ``load_time_s``. Everything else --
ingress, router, controller loop, Ray actor calls -- is the real code path.

Latency of a batch of ``n``: the profile's entry at the smallest profiled batch size
``>= n`` (beyond the largest, scaled linearly), as the simulator and the data plane's
early-drop rule read it. It is the *median*; each batch draws a lognormal factor
around it (median-preserving), seeded per worker:

* when a tail is known (``tail_ms``: the profile's p99 per batch size), the spread
  that puts that p99 where the profile says: ``sigma = ln(p99 / p50) / 2.326``;
* otherwise a small jitter, ``sigma =`` :data:`DEFAULT_JITTER` (0.02: 95% of batches
  within about +-4% of the median, p99 +4.8%). The built-in profiles (Loki's) carry
  medians only. ``jitter=0`` takes the median exactly.

Draws are clipped at 3 sigma. The sleep is ``time.sleep`` in one of the actor's
threads (a threaded actor, like ``Worker``; batches sent at once run one after the
other, as on one accelerator), so a "busy" worker uses no CPU; what
the actor process does spend (Ray's call handling) is reported by :meth:`cpu_s`.

Time dilation by ``k`` (:func:`dilate_pipeline`): profiled latencies, load times and
the SLO are multiplied by ``k``; whoever replays a trace divides its rates by ``k``.
Use it when the ingress cannot keep up with the real rates on the host: the system
runs ``k`` times slower and each request costs the ingress ``k`` times less of a
second. The controller's own time constants (epoch, demand floors in frames/s) are
not dilated by the pipeline; callers scale the epoch (``lokirl serve --dilation``
and ``lokirl simvslive --dilation`` do).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lokirl.core.pipeline import Pipeline, Task
from lokirl.runtime.worker import WorkerSlot

#: Lognormal sigma of an emulated batch's latency when the profile has no tail.
DEFAULT_JITTER = 0.02
#: Standard normal quantile of p99 (for a profile's tail).
_Z99 = 2.3263
#: Ray CPUs an emulated worker actor claims (it sleeps: none).
EMULATED_NUM_CPUS = 0.0


def dilate_pipeline(pipeline: Pipeline, dilation: float) -> Pipeline:
    """The pipeline with latencies, load times and SLO multiplied by ``dilation``.

    Args:
        pipeline: The pipeline as profiled.
        dilation: ``k >= 1`` (1 returns ``pipeline`` itself); rates must be divided
            by ``k`` by whoever sends the traffic.

    Raises:
        ValueError: ``dilation`` is not a finite number > 0.

    """
    check_dilation(dilation)
    if dilation == 1.0:
        return pipeline
    k = float(dilation)
    tasks = []
    for t in pipeline.tasks:
        variants = []
        for v in t.variants:
            lat = {a: {b: ms * k for b, ms in table.items()} for a, table in v.latency_ms.items()}
            host = None if v.load_time_host_s is None else v.load_time_host_s * k
            variants.append(
                replace(v, latency_ms=lat, load_time_s=v.load_time_s * k, load_time_host_s=host)
            )
        tasks.append(Task(t.name, tuple(variants), t.children))
    desc = f"{pipeline.description} [time-dilated x{k:g}]".strip()
    return replace(pipeline, tasks=tuple(tasks), slo_ms=pipeline.slo_ms * k, description=desc)


def check_dilation(dilation: float) -> None:
    """Raise ``ValueError`` unless ``dilation`` is a finite number > 0."""
    if not (isinstance(dilation, int | float) and math.isfinite(dilation) and dilation > 0):
        raise ValueError(
            f"dilation {dilation!r} must be a finite number > 0 (1: real time; "
            "k > 1 runs k times slower)"
        )


def emulated_profiles(pipeline: Pipeline, accelerator: str) -> dict[str, dict[str, Any]]:
    """What an emulated worker needs of each variant: ``{name: {latency_ms, load_time_s}}``.

    Args:
        pipeline: The pipeline (already dilated, if it is to be).
        accelerator: The accelerator type whose profile the workers emulate.

    Raises:
        ValueError: no variant has a profile for ``accelerator``.

    """
    out = {}
    for v in pipeline.variants():
        table = v.latency_ms.get(accelerator)
        if table:
            out[v.name] = {
                "latency_ms": {int(b): float(ms) for b, ms in table.items()},
                "load_time_s": float(v.load_time_s),
            }
    if not out:
        raise ValueError(
            f"pipeline {pipeline.name} has no {accelerator!r} profile to emulate; "
            f"use one of {', '.join(pipeline.accelerators)}"
        )
    return out


class _Profile:
    """One variant's emulated latency: median per batch size and the lognormal spread."""

    def __init__(self, entry: Mapping[str, Any], jitter: float) -> None:
        table = {int(b): float(ms) for b, ms in dict(entry["latency_ms"]).items()}
        if not table:
            raise ValueError("an emulated variant needs a latency_ms table")
        self.sizes = sorted(table)
        self.median = [table[s] for s in self.sizes]
        tail = dict(entry.get("tail_ms") or {})
        self.sigma = []
        for s, med in zip(self.sizes, self.median, strict=True):
            p99 = tail.get(s)
            if p99 is not None and p99 > med > 0:
                self.sigma.append(math.log(float(p99) / med) / _Z99)
            else:
                self.sigma.append(jitter)
        self.load_time_s = float(entry.get("load_time_s", 0.0))

    def median_ms(self, n: int) -> tuple[float, float]:
        """``(median ms, sigma)`` of a batch of ``n``: next profiled size up, else linear."""
        for i, s in enumerate(self.sizes):
            if s >= n:
                return self.median[i], self.sigma[i]
        return self.median[-1] * n / self.sizes[-1], self.sigma[-1]


def _sleep_until(end: float) -> None:
    """Sleep (no CPU) until ``time.perf_counter()`` reaches ``end``."""
    while True:
        left = end - time.perf_counter()
        if left <= 0:
            return
        time.sleep(left)


class EmulatedWorker(WorkerSlot):
    """A worker that hosts no model: batches and loads take the profiled time asleep.

    Same interface as :class:`~lokirl.runtime.worker.Worker`; see the module docstring.

    Args:
        worker_id: Index of the worker in the runtime.
        profiles: Per variant ``{"latency_ms": {batch: ms}, "load_time_s": s,
            "tail_ms": {batch: p99 ms} (optional)}`` (:func:`emulated_profiles`),
            already dilated.
        jitter: Lognormal sigma of a batch's latency where no tail is known.
        seed: Seed of the branching and latency draws.

    """

    def __init__(
        self,
        worker_id: int,
        profiles: Mapping[str, Mapping[str, Any]],
        jitter: float = DEFAULT_JITTER,
        seed: int = 0,
    ) -> None:
        if not (math.isfinite(jitter) and 0 <= jitter < 1):
            raise ValueError(f"jitter {jitter!r} must be in [0, 1) (a lognormal sigma)")
        self.worker_id = worker_id
        self.device = "emulated"
        self.profiles = {name: _Profile(p, jitter) for name, p in profiles.items()}
        # The same branching stream as Worker's; latency draws from their own.
        self.rng = np.random.default_rng(seed + 7919 * worker_id)
        self.lat_rng = np.random.default_rng([seed, worker_id, 1])
        self.variant: str | None = None
        self.branching: dict[str, float] = {}
        self.pending: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._device = threading.Lock()
        self.batches = 0
        self.busy_s = 0.0
        self.last_load_s = 0.0

    def _profile(self, variant: str) -> _Profile:
        p = self.profiles.get(variant)
        if p is None:
            raise RuntimeError(
                f"worker {self.worker_id} has no profile of {variant!r} to emulate; "
                f"it knows {', '.join(sorted(self.profiles))}"
            )
        return p

    def load(
        self,
        variant: str,
        source: Mapping[str, Any] | None = None,
        branching: Mapping[str, float] | None = None,
        warmup: bool | Sequence[int] = True,
        keep_old: bool = False,
    ) -> dict[str, Any]:
        """Load ``variant`` (emulated): sleep its profiled load time; returns the time taken.

        Args:
            variant: Variant name.
            source: Ignored (nothing is loaded); accepted for ``Worker``'s interface.
            branching: Mean sub-requests per request for each child task.
            warmup: Ignored (the profiled load time includes the warm-up batches).
            keep_old: Load beside the current variant, which keeps serving until
                :meth:`switch`; otherwise the current one is dropped first.

        Raises:
            RuntimeError: ``variant`` has no profile.

        """
        start = time.perf_counter()
        prof = self._profile(variant)
        keep = keep_old and self.variant is not None
        if not keep:
            self.unload()
        _sleep_until(start + prof.load_time_s)
        with self._lock:
            if keep:
                self.pending[variant] = dict(branching or {})
            else:
                self.variant = variant
                self.branching = dict(branching or {})
        self.last_load_s = time.perf_counter() - start
        return {
            "variant": variant,
            "load_s": self.last_load_s,
            "device": self.device,
            "kept_old": keep,
        }

    def _make_current(self, variant: str, entry: dict[str, float]) -> None:
        self.variant, self.branching = variant, entry

    def unload(self) -> None:
        """Drop every loaded variant."""
        with self._lock:
            self.variant = None
            self.branching = {}
            self.pending.clear()

    def infer(self, frames: list[Any], variant: str | None = None) -> dict[str, Any]:
        """Take the profiled time of a batch of ``len(frames)`` (asleep); draw the branching.

        The frames are not read (an ObjectRef is not even fetched).

        Args:
            frames: The batch.
            variant: The variant it is for: the current one or one loaded beside it.

        Returns:
            ``{"variant", "service_ms", "counts": {child: [count per request]}}``, as
            :meth:`Worker.infer <lokirl.runtime.worker.Worker.infer>` returns.

        Raises:
            RuntimeError: that variant is not loaded.

        """
        with self._lock:
            if variant is None or variant == self.variant:
                name, branching = self.variant, self.branching
            elif variant in self.pending:
                name, branching = variant, self.pending[variant]
            else:
                name, branching = None, {}
            if name is not None:
                n = len(frames)
                med, sigma = self.profiles[name].median_ms(n)
                z = float(np.clip(self.lat_rng.standard_normal(), -3.0, 3.0)) if sigma else 0.0
                counts = {c: self.rng.poisson(m, n).tolist() for c, m in branching.items()}
        if name is None:
            raise RuntimeError(f"worker {self.worker_id} has no variant {variant or ''} loaded")
        with self._device:  # one batch at a time, as on an accelerator
            start = time.perf_counter()
            _sleep_until(start + med * math.exp(sigma * z) / 1000.0)
            service_s = time.perf_counter() - start
        with self._lock:
            self.batches += 1
            self.busy_s += service_s
        return {"variant": name, "service_ms": service_s * 1000.0, "counts": counts}

    def time_batch(self, batch_size: int, repeats: int = 5) -> list[float]:
        """Latencies in ms of ``repeats`` emulated batches of ``batch_size`` (profiler)."""
        if self.variant is None:
            raise RuntimeError(f"worker {self.worker_id} has no variant loaded")
        frames = [None] * batch_size
        return [self.infer(frames)["service_ms"] for _ in range(repeats)]

    def cpu_s(self) -> float:
        """CPU seconds this actor process has used (all its threads, Ray's included)."""
        return time.process_time()

    def info(self) -> dict[str, Any]:
        """What the worker holds, for status pages."""
        return {
            "worker_id": self.worker_id,
            "variant": self.variant,
            "loaded_beside": sorted(self.pending),
            "device": self.device,
            "batches": self.batches,
            "busy_s": self.busy_s,
            "cpu_s": self.cpu_s(),
            "last_load_s": self.last_load_s,
            "pid": os.getpid(),
        }


def make_emulated_worker(
    worker_id: int,
    pipeline: Pipeline,
    accelerator: str | None = None,
    seed: int = 0,
    jitter: float = DEFAULT_JITTER,
    dilation: float = 1.0,
    num_cpus: float = EMULATED_NUM_CPUS,
    batch_calls: int = 1,
) -> Any:
    """Start an :class:`EmulatedWorker` as a Ray actor (``ray.init`` must have run).

    Args:
        worker_id: Index of the worker.
        pipeline: The pipeline whose profile it emulates (as the runtime plans with
            it: already dilated when the runtime dilates).
        accelerator: Profile to emulate (default: the pipeline's first).
        seed: Seed of the branching and latency draws.
        jitter: Lognormal sigma of a batch's latency where the profile has no tail.
        dilation: Further dilation of ``pipeline``'s times (1: none).
        num_cpus: Ray CPUs the actor claims (0: it sleeps, so 20-100 fit on 2 cores).
        batch_calls: Batch calls it accepts at once (one per ingress replica); they
            run one after the other, as on one device.

    """
    import ray

    accel = accelerator or pipeline.accelerators[0]
    profiles = emulated_profiles(dilate_pipeline(pipeline, dilation), accel)
    # Calls at once: a batch per ingress replica, a load beside them, a switch, a ping.
    calls = 3 + max(1, batch_calls)
    options: dict[str, Any] = {"max_concurrency": calls, "max_restarts": 0, "num_cpus": num_cpus}
    return ray.remote(EmulatedWorker).options(**options).remote(worker_id, profiles, jitter, seed)


__all__ = [
    "DEFAULT_JITTER",
    "EmulatedWorker",
    "check_dilation",
    "dilate_pipeline",
    "emulated_profiles",
    "make_emulated_worker",
]
