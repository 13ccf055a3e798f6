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

Each batch size is timed ``repeats`` times (``lokirl profile --runs``) after one
untimed batch; the profile's ``latency_ms`` is the median (what the allocator plans
with), and ``latency_p95_ms`` / ``latency_p99_ms`` beside it give the tail (linear
interpolation between the timed runs, so with 5 runs the p99 is near the slowest).
Readers that predate the tail keys ignore them; :func:`tail_latencies` reads them
from a profile (an empty mapping for an older one).

Load times and memory are measured in this process by :func:`measure_load` (both
modes): a cold load from disk (the weights written to a file, evicted from the OS
page cache where the system allows, then read back as a worker reads them), a load
from host memory (the weights already in a state dict in RAM), and the memory the
loaded variant takes with a forward pass at the largest profiled batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
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
    load_repeats: int = 3,
    weights_dir: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Measure variants: ``{variant: {"load_s", "latency_ms": {b: ms}, "device", ...}}``.

    ``latency_ms`` is the median of the timed runs per batch size, with
    ``latency_p95_ms`` and ``latency_p99_ms`` beside it (same keys) and ``runs``.
    ``device`` is where the network really ran (``cpu`` for an ONNX model whose
    CUDA provider did not start), ``provider`` the ONNX Runtime provider (``None``
    for torch). ``load_s`` is the worker's own load (build the network, warm up at
    every batch size); with
    ``load_repeats > 0`` each entry also has the keys of :func:`measure_load`
    (``load_disk_s``, ``load_host_s``, ``memory_mb``, ``load_source``...), measured
    in this process at the largest batch size.

    Args:
        pipeline: The base pipeline.
        sources: :class:`~lokirl.runtime.models.ModelSource` per variant.
        batch_sizes: Batch sizes to time (1 is always included).
        variants: Variants to measure (default: all).
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: Torch threads on CPU (a worker actor's setting).
        repeats: Timed batches per size (after one untimed): median, p95 and p99 kept.
        progress: Called with a line per measurement.
        mode: ``"actor"`` (through a worker actor, as served; Ray must be
            initialised) or ``"process"`` (in this process).
        num_cpus: CPUs the worker actor claims (``mode="actor"`` on CPU).
        load_repeats: Loads timed per variant and kind (disk, host memory); the
            median is kept. 0 skips the load and memory measurement.
        weights_dir: Folder of the temporary weight files (default: the system's
            temporary folder); put it on the disk that would hold the weights.

    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, not {repeats}")
    sizes = sorted({1, *(int(b) for b in batch_sizes)})
    names = list(variants) if variants else [v.name for v in pipeline.variants()]
    if mode == "actor":
        out = _profile_actor(names, sources, sizes, device, threads, repeats, progress, num_cpus)
    elif mode == "process":
        out = _profile_process(names, sources, sizes, device, threads, repeats, progress)
    else:
        raise ValueError(f"mode must be 'actor' or 'process', not {mode!r}")
    if load_repeats > 0:
        dev = next(iter(out.values()))["device"] if out else "cpu"
        for name in names:
            m = measure_load(
                sources[name], dev, max(sizes), load_repeats, threads, weights_dir, sizes
            )
            out[name].update(m)
            if progress is not None:
                mem = "unknown" if m["memory_mb"] is None else f"{m['memory_mb']:.4g} MiB"
                progress(
                    f"{name}: load {m['load_disk_s']:.3f} s from disk, "
                    f"{m['load_host_s']:.3f} s from host memory, memory {mem}"
                )
    return out


def _profile_process(
    names: list[str],
    sources: dict[str, Any],
    sizes: list[int],
    device: str,
    threads: int,
    repeats: int,
    progress: Callable[[str], None] | None,
) -> dict[str, dict[str, Any]]:
    from lokirl.runtime.worker import Worker

    out: dict[str, dict[str, Any]] = {}
    w = Worker(0, device=device, threads=threads)
    for name in names:
        src = sources[name]
        res = w.load(name, src.to_dict(), warmup=sizes)  # as a worker loads
        load_s = res["load_s"]
        timings = {b: w.time_batch(b, repeats + 1)[1:] for b in sizes}
        w.unload()
        out[name] = {"load_s": round(load_s, 4), **_latency_entry(timings, res)}
        if progress is not None:
            progress(f"{name}: load {load_s:.3f} s, {_describe(out[name])}")
    return out


def latency_stats(times_ms: Sequence[float]) -> dict[str, float]:
    """Median, 95th and 99th percentiles of timed runs (linear interpolation), in ms.

    Raises:
        ValueError: no runs.

    """
    if not times_ms:
        raise ValueError("no timed runs")
    p50, p95, p99 = np.percentile(np.asarray(times_ms, dtype=float), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


def _latency_entry(
    timings: Mapping[int, Sequence[float]], load: Mapping[str, Any]
) -> dict[str, Any]:
    """The latency keys of a measured variant from its timed runs per batch size."""
    stats = {b: latency_stats(t) for b, t in timings.items()}
    return {
        "latency_ms": {b: s["p50"] for b, s in stats.items()},
        "latency_p95_ms": {b: s["p95"] for b, s in stats.items()},
        "latency_p99_ms": {b: s["p99"] for b, s in stats.items()},
        "runs": min(len(t) for t in timings.values()),
        "device": load["device"],
        "provider": load.get("provider"),
        "fp16": bool(load.get("fp16", False)),
    }


def _describe(m: Mapping[str, Any]) -> str:
    """One progress line's latency part: ``b: median (p95 / p99) ms`` per batch size."""
    parts = [
        f"{b}: {ms:g} ({m['latency_p95_ms'][b]:g} / {m['latency_p99_ms'][b]:g})"
        for b, ms in m["latency_ms"].items()
    ]
    where = m["device"] + (f", {m['provider']}" if m.get("provider") else "")
    return f"latency ms median (p95 / p99) of {m['runs']} runs {{{', '.join(parts)}}} on {where}"


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
    import ray

    from lokirl.runtime.worker import make_worker

    use_gpu = None if device == "auto" else device.startswith("cuda")
    actor = make_worker(0, use_gpu, num_cpus, threads)
    out: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            src = sources[name]
            res = ray.get(actor.load.remote(name, src.to_dict(), None, sizes))
            size = src.input_size
            rng = np.random.default_rng(0)
            frames = [
                rng.integers(0, 255, (3, size, size)).astype(np.uint8) for _ in range(max(sizes))
            ]
            timings: dict[int, list[float]] = {}
            for b in sizes:
                batch = frames[:b]
                times = []
                for _ in range(repeats + 1):
                    start = time.perf_counter()
                    ray.get(actor.infer.remote(batch))
                    times.append((time.perf_counter() - start) * 1000.0)
                timings[b] = times[1:]
            out[name] = {"load_s": round(res["load_s"], 4), **_latency_entry(timings, res)}
            if progress is not None:
                progress(
                    f"{name}: load {res['load_s']:.3f} s, {_describe(out[name])} "
                    "(through the actor)"
                )
    finally:
        ray.kill(actor)
    return out


MIB = 2.0**20


def measure_load(
    source: Any,
    device: str = "cpu",
    batch_size: int = 1,
    repeats: int = 3,
    threads: int = 1,
    weights_dir: str | Path | None = None,
    warmup_batches: Sequence[int] = (1,),
) -> dict[str, Any]:
    """Time loading one variant from disk and from host memory; measure its memory.

    * ``load_disk_s``: a cold load as a worker does it (build the network, read
      its weights from a file, move it to ``device``, run one warm-up batch at
      each of ``warmup_batches``, as a serving worker warms up at the sizes its
      plan may use). The weights are written once to a file in ``weights_dir`` and
      evicted from the OS page cache before each load where the system allows it
      (``page_cache_evicted`` says whether it did: not on tmpfs, not without
      ``posix_fadvise``). An untimed load comes first, as a serving worker's CUDA
      context, cuDNN handles and imports are already warm.
    * ``load_host_s``: the same with the weights already in a state dict in RAM
      (the file's bytes for TorchScript and ONNX sources).
    * ``memory_mb`` (MiB): on CUDA, the ``torch.cuda.max_memory_allocated``
      increase over a load plus one forward at ``batch_size`` (the CUDA context,
      a few hundred MiB per process, is not counted); on CPU, the parameter and
      buffer bytes, plus the input batch, plus the peak of the bytes the torch
      allocator holds during a forward at ``batch_size`` (torch profiler).
      ``None`` for ONNX sources (onnxruntime allocates outside torch).

    Args:
        source: The variant's :class:`~lokirl.runtime.models.ModelSource`.
        device: ``cpu`` or ``cuda``.
        batch_size: Largest batch the variant will serve.
        repeats: Loads per kind; the median is kept.
        threads: Torch threads on CPU during the measurement.
        weights_dir: Folder for the temporary weight file (default: system temp).
        warmup_batches: Batch sizes of the warm-up batches a timed load ends with.

    Returns:
        ``{"load_disk_s", "load_host_s", "memory_mb", "weights_mb",
        "page_cache_evicted", "load_source"}``.

    """
    import torch

    from lokirl.runtime.models import Runner
    from lokirl.runtime.worker import Worker, warmup_sizes

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, not {repeats}")
    warm = warmup_sizes(list(warmup_batches)) or (1,)
    cuda = device.startswith("cuda")
    old_threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(max(1, threads))
    size = source.input_size
    tmp = Path(tempfile.mkdtemp(prefix="lokirl-load-", dir=weights_dir))
    try:
        preloaded, disk_source, weights_bytes = _weights_file(source, tmp)
        host_source = replace(source, weights=None)

        def timed(build: Callable[[], Any], evict: bool) -> float:
            if evict:
                _evict(Path(disk_source.weights or disk_source.source))
            start = time.perf_counter()
            runner = build()
            for b in warm:  # as Worker.load warms up
                Worker._warm(runner, size, b)
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            del runner
            _release(cuda)
            return elapsed

        # One untimed load first: a worker that swaps already has its CUDA context,
        # cuDNN handles and Python modules; the profiler's process may not.
        timed(lambda: Runner(host_source, device, preloaded), False)
        evicted = _evict(Path(disk_source.weights or disk_source.source))
        disk = [timed(lambda: Runner(disk_source, device), True) for _ in range(repeats)]
        host = [
            timed(lambda: Runner(host_source, device, preloaded), False) for _ in range(repeats)
        ]
        memory, how = _memory(host_source, preloaded, device, batch_size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        torch.set_num_threads(old_threads)
    where = "evicted from the page cache" if evicted else "possibly in the page cache"
    name = torch.cuda.get_device_name(0) if cuda else f"cpu, {max(1, threads)} thread(s)"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return {
        "load_disk_s": round(statistics.median(disk), 4),
        "load_host_s": round(statistics.median(host), 4),
        "memory_mb": None if memory is None else _sig(memory),
        "weights_mb": _sig(weights_bytes / MIB),
        "page_cache_evicted": evicted,
        "load_source": (
            f"measured: {name}, {today} (lokirl profile): load_time_s from a "
            f"{weights_bytes / MIB:.3g} MiB weight file {where}, load_time_host_s from a "
            f"state dict in RAM, each the median of {repeats}, to warm-up batches of "
            f"{', '.join(map(str, warm))}{' in fp16' if source.fp16 else ''}; "
            f"memory_mb {how}"
        ),
    }


def _sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits (a tiny model keeps its size)."""
    return float(f"{x:.{digits}g}")


def _weights_file(source: Any, folder: Path) -> tuple[Any, Any, int]:
    """Write ``source``'s weights to ``folder``.

    Returns:
        (the weights kept in RAM: a state dict or the file's bytes, a source
        that reads the written file, the file's size in bytes).

    """
    import torch

    from lokirl.runtime.models import Runner

    if source.kind in ("onnx", "torchscript"):
        data = Path(source.source).read_bytes()
        path = folder / Path(source.source).name
        disk = replace(source, source=str(path), kwargs={}, weights=None)
        preloaded: Any = data
    else:
        preloaded = Runner(replace(source, fp16=False), "cpu").state_dict()
        buffer = io.BytesIO()
        torch.save(preloaded, buffer)
        data = buffer.getvalue()
        path = folder / "weights.pt"
        disk = replace(source, weights=str(path))
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return preloaded, disk, len(data)


def _evict(path: Path) -> bool:
    """Drop ``path`` from the OS page cache (Linux; written pages must be synced).

    Returns:
        Whether the pages were dropped: ``False`` without ``posix_fadvise``, on an
        error, or when the file lives in RAM (tmpfs, ramfs).

    """
    if not hasattr(os, "posix_fadvise") or _filesystem(path) in ("tmpfs", "ramfs"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def _filesystem(path: Path) -> str:
    """Type of the filesystem holding ``path`` (Linux ``/proc/mounts``; ``""`` if unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    target = str(path.resolve())
    best, kind = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, parts[2]
    return kind


def _release(cuda: bool) -> None:
    gc.collect()
    if cuda:
        import torch

        torch.cuda.empty_cache()


def _memory(source: Any, preloaded: Any, device: str, batch_size: int) -> tuple[float | None, str]:
    """Memory in MiB of ``source`` loaded on ``device`` after a forward at ``batch_size``."""
    import torch

    from lokirl.runtime.models import Runner

    size = source.input_size
    if source.kind == "onnx":
        return None, "unknown (onnxruntime allocates outside torch)"
    if device.startswith("cuda"):
        _release(True)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        runner = Runner(source, device, preloaded)
        runner.run(torch.zeros(batch_size, 3, size, size))
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del runner
        _release(True)
        return peak / MIB, (
            f"= torch.cuda.max_memory_allocated increase over load + a batch-{batch_size} "
            f"forward at {size}x{size} (CUDA context not counted)"
        )
    runner = Runner(source, device, preloaded)
    x = torch.zeros(batch_size, 3, size, size)
    runner.run(x)  # first call allocates one-off caches
    peak = _cpu_peak_bytes(lambda: runner.run(x))
    weights = runner.weight_bytes
    total = weights + x.numel() * x.element_size() + peak
    return total / MIB, (
        f"= weights and buffers {weights / MIB:.3g} MiB + input + peak allocations "
        f"{peak / MIB:.3g} MiB of a batch-{batch_size} forward at {size}x{size} (torch profiler)"
    )


def _cpu_peak_bytes(forward: Callable[[], Any]) -> int:
    """Peak bytes the torch CPU allocator holds during ``forward()`` (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = forward()
        del out
    changes = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in changes:
        live += nbytes
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ start/stop lines) for a moment."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def write_profile(
    pipeline: Pipeline,
    measured: dict[str, dict[str, Any]],
    path: str | Path,
    accelerator: str = "cpu",
    slo_ms: float | None = None,
    input_size: int | None = None,
    sources: dict[str, Any] | None = None,
    note: str = "",
    accelerator_memory_mb: float | None = None,
) -> Path:
    """Write a pipeline YAML with the measured latencies (only the measured variants).

    A variant's ``load_time_s`` is the measured load from disk when
    :func:`profile_pipeline` measured it (else the worker's own load time), with
    ``load_time_host_s``, ``memory_mb`` and ``load_source`` beside it. Its
    ``latency_ms`` is the median per batch size; ``latency_p95_ms`` and
    ``latency_p99_ms`` (same shape) hold the tail when measured.

    Args:
        pipeline: The base pipeline (tasks, accuracies, branching, e2e table).
        measured: Output of :func:`profile_pipeline`.
        path: Output file.
        accelerator: Accelerator name of the latency tables.
        slo_ms: SLO of the new pipeline (default: the base's).
        input_size: Resolution recorded in the ``runtime`` section.
        sources: Model sources recorded in the ``runtime`` section.
        note: Appended to the description.
        accelerator_memory_mb: Memory in MiB of one worker of ``accelerator``
            (written as ``accelerator_memory_mb``; ``None``: unknown, not written).

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
            row: dict[str, Any] = {
                "name": v.name,
                "accuracy": v.accuracy,
                "load_time_s": m.get("load_disk_s", m["load_s"]),
            }
            if "load_host_s" in m:
                row["load_time_host_s"] = m["load_host_s"]
            if m.get("memory_mb") is not None:
                row["memory_mb"] = m["memory_mb"]
            row["load_source"] = m.get(
                "load_source", f"measured: {m['device']}, worker load without a weight file"
            )
            if t.children:
                row["branching"] = dict(v.branching)
            row["latency_ms"] = {accelerator: {int(b): ms for b, ms in m["latency_ms"].items()}}
            for key in TAIL_KEYS:  # the tail beside the median (older readers ignore it)
                if m.get(key):
                    row[key] = {accelerator: {int(b): ms for b, ms in m[key].items()}}
            variants.append(row)
        tasks.append({"name": t.name, "children": list(t.children), "variants": variants})
    doc: dict[str, Any] = {
        "name": Path(path).stem,
        "description": (
            f"{pipeline.name} re-profiled by `lokirl profile` on this machine's "
            f"{next(iter(measured.values()))['device'] if measured else 'device'}: latency, "
            "load time and memory measured; accuracy and branching copied from the base "
            "profile. " + note
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
    if accelerator_memory_mb is not None:
        doc["accelerator_memory_mb"] = {accelerator: round(float(accelerator_memory_mb), 1)}
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
    header = (
        "# Written by `lokirl profile`; latencies in ms per batch size (latency_ms: the\n"
        "# median; latency_p95_ms / latency_p99_ms: the tail), load times in s, memory in MiB.\n"
    )
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path


#: The tail-latency keys a profile's variants may carry beside ``latency_ms``.
TAIL_KEYS = ("latency_p95_ms", "latency_p99_ms")


def tail_latencies(path: str | Path) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """The tail latencies of a profile file: ``{variant: {accelerator: {batch: {p50, p95, p99}}}}``.

    Only variants with a tail (written by a :func:`write_profile` that measured
    one) appear; a profile from before the tail keys gives ``{}``. ``p50`` is the
    variant's ``latency_ms`` entry. The file is validated as a pipeline first.

    Raises:
        ConfigError: the file is not a valid pipeline, or a tail entry is not a
            number of milliseconds.

    """
    from lokirl.core.pipeline_config import pipeline_from_file
    from lokirl.errors import ConfigError

    pipeline = pipeline_from_file(path)
    data = yaml.safe_load(Path(path).read_text()) or {}
    out: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    for i, task in enumerate(data.get("tasks") or []):
        for j, row in enumerate(task.get("variants") or []):
            if not any(k in row for k in TAIL_KEYS):
                continue
            v = pipeline.variant(row["name"])
            per: dict[str, dict[int, dict[str, float]]] = {}
            for key in TAIL_KEYS:
                for accel, table in (row.get(key) or {}).items():
                    for b, ms in (table or {}).items():
                        if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
                            raise ConfigError(
                                str(path),
                                f"tasks[{i}].variants[{j}].{key}.{accel}.{b}",
                                f"expected milliseconds, got {ms!r}",
                                "re-run `lokirl profile`, or delete the tail keys",
                            )
                        entry = per.setdefault(str(accel), {}).setdefault(int(b), {})
                        if int(b) in v.latency_ms.get(str(accel), {}):
                            entry["p50"] = v.latency(str(accel), int(b))
                        entry[key[len("latency_") : -len("_ms")]] = float(ms)
            out[v.name] = per
    return out
