"""Measure each variant's batch latency and load time on this machine; write a pipeline profile.

The profile keeps the base pipeline's tasks, accuracies and branching factors (the
profiler measures speed, never accuracy) and replaces the latency table with one
measured on this machine's device, under the accelerator name given (``cpu`` or
``gpu``).

Two ways to measure: ``mode="actor"`` (what ``lokirl profile`` does) starts one
worker actor with the options the runtime gives it and times back-to-back
``infer`` calls from this process, frames passed as the ingress passes them, so a
latency includes the actor call (serialisation, scheduling, the hop back) and the
actor's share of the machine, as when serving; ``mode="process"`` runs the same
:class:`~lokirl.runtime.worker.Worker` code in this process (no Ray; the network's
own time only, which on a small CPU box under-states what serving sustains).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lokirl.core.pipeline import Pipeline


def profile_pipeline(
    pipeline: Pipeline,
    sources: dict[str, Any],
    batch_sizes: Sequence[int],
    variants: Sequence[str] | None = None,
    device: str = "auto",
    threads: int = 1,
    repeats: int = 5,
    progress: Callable[[str], None] | None = None,
    mode: str = "process",
    num_cpus: float = 0.25,
) -> dict[str, dict[str, Any]]:
    """Measure variants: ``{variant: {"load_s", "latency_ms": {b: ms}, "device"}}``.

    Args:
        pipeline: The base pipeline.
        sources: :class:`~lokirl.runtime.models.ModelSource` per variant.
        batch_sizes: Batch sizes to time (1 is always included).
        variants: Variants to measure (default: all).
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: Torch threads on CPU (a worker actor's setting).
        repeats: Timed batches per size; the median is kept (after one warm-up).
        progress: Called with a line per measurement.
        mode: ``"actor"`` (through a worker actor, as served; Ray must be
            initialised) or ``"process"`` (in this process).
        num_cpus: CPUs the worker actor claims (``mode="actor"`` on CPU).

    """
    from lokirl.runtime.worker import Worker

    sizes = sorted({1, *(int(b) for b in batch_sizes)})
    names = list(variants) if variants else [v.name for v in pipeline.variants()]
    if mode == "actor":
        return _profile_actor(names, sources, sizes, device, threads, repeats, progress, num_cpus)
    if mode != "process":
        raise ValueError(f"mode must be 'actor' or 'process', not {mode!r}")
    out: dict[str, dict[str, Any]] = {}
    w = Worker(0, device=device, threads=threads)
    for name in names:
        src = sources[name]
        res = w.load(name, src.to_dict(), warmup=True)  # as a worker loads
        load_s = res["load_s"]
        lat: dict[int, float] = {}
        for b in sizes:
            times = w.time_batch(b, repeats + 1)[1:]
            lat[b] = round(statistics.median(times), 3)
        w.unload()
        out[name] = {"load_s": round(load_s, 4), "latency_ms": lat, "device": w.device}
        if progress is not None:
            progress(f"{name}: load {load_s:.3f} s, latency {lat}")
    return out


def _profile_actor(
    names: list[str],
    sources: dict[str, Any],
    sizes: list[int],
    device: str,
    threads: int,
    repeats: int,
    progress: Callable[[str], None] | None,
    num_cpus: float,
) -> dict[str, dict[str, Any]]:
    import numpy as np
    import ray

    from lokirl.runtime.worker import make_worker

    use_gpu = None if device == "auto" else device.startswith("cuda")
    actor = make_worker(0, use_gpu, num_cpus, threads)
    out: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            src = sources[name]
            res = ray.get(actor.load.remote(name, src.to_dict(), None, True))
            size = src.input_size
            rng = np.random.default_rng(0)
            frames = [
                rng.integers(0, 255, (3, size, size)).astype(np.uint8) for _ in range(max(sizes))
            ]
            lat: dict[int, float] = {}
            for b in sizes:
                batch = frames[:b]
                times = []
                for _ in range(repeats + 1):
                    start = time.perf_counter()
                    ray.get(actor.infer.remote(batch))
                    times.append((time.perf_counter() - start) * 1000.0)
                lat[b] = round(statistics.median(times[1:]), 3)
            out[name] = {
                "load_s": round(res["load_s"], 4),
                "latency_ms": lat,
                "device": res["device"],
            }
            if progress is not None:
                progress(f"{name}: load {res['load_s']:.3f} s, latency {lat} (through the actor)")
    finally:
        ray.kill(actor)
    return out


def write_profile(
    pipeline: Pipeline,
    measured: dict[str, dict[str, Any]],
    path: str | Path,
    accelerator: str = "cpu",
    slo_ms: float | None = None,
    input_size: int | None = None,
    sources: dict[str, Any] | None = None,
    note: str = "",
) -> Path:
    """Write a pipeline YAML with the measured latencies (only the measured variants).

    Args:
        pipeline: The base pipeline (tasks, accuracies, branching, e2e table).
        measured: Output of :func:`profile_pipeline`.
        path: Output file.
        accelerator: Accelerator name of the latency tables.
        slo_ms: SLO of the new pipeline (default: the base's).
        input_size: Resolution recorded in the ``runtime`` section.
        sources: Model sources recorded in the ``runtime`` section.
        note: Appended to the description.

    """
    tasks = []
    kept: set[str] = set()
    for t in pipeline.tasks:
        variants = []
        for v in t.variants:
            m = measured.get(v.name)
            if m is None:
                continue
            kept.add(v.name)
            variants.append(
                {
                    "name": v.name,
                    "accuracy": v.accuracy,
                    "load_time_s": m["load_s"],
                    **({"branching": dict(v.branching)} if t.children else {}),
                    "latency_ms": {accelerator: {int(b): ms for b, ms in m["latency_ms"].items()}},
                }
            )
        tasks.append({"name": t.name, "children": list(t.children), "variants": variants})
    doc: dict[str, Any] = {
        "name": Path(path).stem,
        "description": (
            f"{pipeline.name} re-profiled by `lokirl profile` on this machine's "
            f"{next(iter(measured.values()))['device'] if measured else 'device'}: latency and "
            "load time measured; accuracy and branching copied from the base profile. " + note
        ).strip(),
        "slo_ms": float(slo_ms or pipeline.slo_ms),
        "tasks": tasks,
    }
    e2e = [
        {"path": list(p), "accuracy": a}
        for p, a in pipeline.e2e_accuracy.items()
        if all(x in kept for x in p)
    ]
    if e2e:
        doc["e2e_accuracy"] = e2e
    runtime: dict[str, Any] = {}
    if input_size:
        runtime["input_size"] = int(input_size)
    if sources:
        runtime["models"] = {
            n: s.source if not s.kwargs else {"source": s.source, "kwargs": dict(s.kwargs)}
            for n, s in sources.items()
            if n in kept and s.source != n
        } or None
        if runtime["models"] is None:
            del runtime["models"]
    if runtime:
        doc["runtime"] = runtime
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `lokirl profile`; latencies in ms per batch size, load times in s.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path
