"""The GPU-ready data path: GPU shares per worker, uint8 frames resized on the device,
fp16, warm-up at every planned batch size, ONNX providers reported as used.

Everything the logic allows runs on the CPU; the CUDA paths are marked ``gpu`` and
skipped where torch sees no CUDA device.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import warnings

import numpy as np
import pytest
import torch

from lokirl.errors import ConfigError
from lokirl.runtime import models
from lokirl.runtime.models import ModelSource, Runner, model_sources, prepare_batch, to_device
from lokirl.runtime.worker import Worker, gpu_share, make_worker, warmup_sizes

TINY_SRC = ModelSource("lokirl.runtime.models:tiny_cnn", {"depth": 2}, None, 16)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def reference_prepare_batch(frames, size):
    """The CPU preprocessing before the device path: float32 on the host, then resize."""
    tensors = []
    for f in frames:
        t = torch.as_tensor(np.asarray(f))
        t = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
        if t.shape[0] == 1:
            t = t.expand(3, *t.shape[1:])
        tensors.append(t)
    if all(t.shape == tensors[0].shape for t in tensors):
        x = torch.stack(tensors)
        if x.shape[-2:] != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="nearest")
        return x.contiguous()
    return torch.cat(
        [
            torch.nn.functional.interpolate(t[None], size=(size, size), mode="nearest")
            for t in tensors
        ]
    )


def _frames(kind: str) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    if kind == "uint8":
        return [rng.integers(0, 256, (3, 48, 64), dtype=np.uint8) for _ in range(4)]
    if kind == "float":
        return [rng.random((3, 40, 40), dtype=np.float32) for _ in range(3)]
    if kind == "gray":
        return [rng.integers(0, 256, (1, 30, 20), dtype=np.uint8) for _ in range(2)]
    if kind == "mixed":  # shapes, dtypes and channels differ: one copy per frame
        return [
            rng.integers(0, 256, (3, 50, 30), dtype=np.uint8),
            rng.integers(0, 256, (1, 16, 16), dtype=np.uint8),
            rng.random((3, 20, 70), dtype=np.float32),
        ]
    return [rng.integers(0, 256, (3, 16, 16), dtype=np.uint8) for _ in range(2)]  # no resize


# ---------------------------------------------------------------------------- GPU share
@pytest.mark.parametrize(
    ("workers", "gpus", "requested", "share"),
    [
        (4, 8, None, 1.0),  # a GPU each
        (8, 8, None, 1.0),
        (3, 2, None, 0.5),  # more workers than GPUs: they share
        (9, 8, None, 0.5),
        (3, 1, None, 0.3333),  # rounded down to Ray's step, 3 x 0.3333 fit on one GPU
        (5, 1, None, 0.2),
        (4, 2, 0.5, 0.5),
        (3, 1, 1 / 3, 0.3333),
        (1, 4, 0.25, 0.25),
        (4, 0, None, 0.0),  # no GPU: CPU workers
    ],
)
def test_gpu_share(workers, gpus, requested, share):
    got = gpu_share(workers, gpus, requested)
    assert got == share
    if gpus:
        assert workers * got <= gpus + 1e-9


@pytest.mark.parametrize(
    ("workers", "gpus", "requested", "words"),
    [
        (2, 2, 0.0, "must be in (0, 1]"),
        (2, 2, 1.5, "must be in (0, 1]"),
        (2, 2, float("nan"), "must be in (0, 1]"),
        (2, 0, 0.5, "no GPU"),
        (3, 2, 1.0, "3 GPU workers need 3 GPUs but the Ray cluster has 2"),
        # 5 x 0.4 = 2 GPUs, but only two shares of 0.4 fit on one GPU: 4 workers
        (5, 2, 0.4, "a share must fit on one GPU"),
    ],
)
def test_gpu_share_refusals_name_the_flag_and_the_fix(workers, gpus, requested, words):
    with pytest.raises(ConfigError) as exc:
        gpu_share(workers, gpus, requested)
    assert exc.value.source == "--gpus-per-worker" and words in exc.value.problem
    assert exc.value.fix


def test_gpu_share_fix_suggests_a_share_that_fits():
    with pytest.raises(ConfigError) as exc:
        gpu_share(6, 2, 1.0)
    assert "--gpus-per-worker 0.3333 (3 workers per GPU)" in exc.value.fix
    assert gpu_share(6, 2, 0.3333) == 0.3333 and "--workers 2 or fewer" in exc.value.fix


def test_make_worker_claims_the_share(monkeypatch):
    import ray

    seen = {}

    class Fake:
        def options(self, **options):
            seen.update(options)
            return self

        def remote(self, *args):
            seen["args"] = args
            return "actor"

    monkeypatch.setattr(ray, "remote", lambda cls: Fake())
    assert make_worker(0, True, gpus_per_worker=0.25) == "actor"
    assert (seen["num_gpus"], seen["num_cpus"], seen["args"][1]) == (0.25, 0.25, "cuda")
    seen.clear()
    make_worker(1, False, num_cpus=0.5)
    assert "num_gpus" not in seen and seen["num_cpus"] == 0.5 and seen["args"][1] == "cpu"
    with pytest.raises(ValueError):
        make_worker(0, True, gpus_per_worker=2.0)


def test_runtime_sets_the_share_and_refuses_fp16_on_cpu_workers(
    tiny_pipeline, monkeypatch, tmp_path
):
    import lokirl.runtime.worker as worker
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    def rt(**kw):
        return Runtime(RuntimeConfig(pipeline=tiny_pipeline, controller="static", **kw))

    monkeypatch.setattr(worker, "cluster_gpus", lambda: 2.0)
    r = rt(workers=3)
    r._check_gpus()
    assert r.gpu_share == 0.5
    r = rt(workers=3, gpus_per_worker=1.0)
    with pytest.raises(ConfigError, match="--gpus-per-worker"):
        r._check_gpus()
    r = rt(workers=2, fp16=True)
    r._check_gpus()  # GPU workers: fp16 is fine
    assert r.gpu_share == 1.0 and all(s.fp16 for s in r.sources.values())

    monkeypatch.setattr(worker, "cluster_gpus", lambda: 0.0)
    r = rt(workers=2)
    r._check_gpus()
    assert r.gpu_share == 0.0
    with pytest.raises(ConfigError) as exc:
        rt(workers=2, fp16=True)._check_gpus()
    assert exc.value.source == "--fp16" and "CUDA" in exc.value.problem
    with pytest.raises(ConfigError, match="no GPU"):
        rt(workers=2, gpus_per_worker=0.5)._check_gpus()
    with pytest.raises(ConfigError, match="use_gpu is off"):
        rt(workers=2, gpus_per_worker=0.5, use_gpu=False)._check_gpus()
    # the pipeline file's runtime.fp16 is refused the same way, naming the file's field
    f = tmp_path / "half.yaml"
    f.write_text(open(tiny_pipeline).read().replace("runtime:\n", "runtime:\n  fp16: true\n"))
    with pytest.raises(ConfigError) as exc:
        Runtime(RuntimeConfig(pipeline=str(f), workers=2, controller="static"))._check_gpus()
    assert exc.value.source.endswith("half.yaml") and exc.value.field == "runtime.fp16"
    # --fp16 off overrides the file
    r = Runtime(RuntimeConfig(pipeline=str(f), workers=2, controller="static", fp16=False))
    r._check_gpus()


# ---------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("kind", ["uint8", "float", "gray", "mixed", "same-size"])
def test_device_preprocessing_matches_the_host_float_resize_on_cpu(kind):
    frames = _frames(kind)
    got = prepare_batch(frames, 24)
    want = reference_prepare_batch(frames, 24)
    assert got.shape == (len(frames), 3, 24, 24) and got.dtype == torch.float32
    assert got.is_contiguous()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_prepare_batch_casts_to_the_runner_dtype():
    x = prepare_batch(_frames("uint8"), 16, "cpu", torch.float16)
    assert x.dtype == torch.float16
    torch.testing.assert_close(
        x.float(), reference_prepare_batch(_frames("uint8"), 16), atol=1e-3, rtol=0
    )


@pytest.mark.parametrize("kind", ["uint8", "mixed"])
def test_read_only_frames_from_the_object_store_are_accepted(kind):
    frames = _frames(kind)
    want = reference_prepare_batch(frames, 8)
    for f in frames:
        f.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch
        got = prepare_batch(frames, 8)
    torch.testing.assert_close(got, want)


def test_to_device_is_a_no_op_on_cpu(monkeypatch):
    def no_pinning(self):
        raise AssertionError("pinned memory on the CPU path")

    monkeypatch.setattr(torch.Tensor, "pin_memory", no_pinning)
    x = torch.zeros(2, 3)
    assert to_device(x, "cpu") is x
    prepare_batch(_frames("uint8"), 8, "cpu")


def test_the_cuda_path_pins_then_copies_uint8_then_converts(monkeypatch):
    """The CUDA branch's order on the CPU, with the copy faked: pin, copy uint8, convert."""
    events: list[str] = []
    to = torch.Tensor.to

    def fake_pin(self):
        events.append(f"pin {self.dtype}")
        return self

    def fake_to(self, *args, **kwargs):
        if args and isinstance(args[0], torch.device) and args[0].type == "cuda":
            events.append(f"copy {self.dtype} non_blocking={kwargs.get('non_blocking')}")
            return self  # stands for the device copy
        if args and isinstance(args[0], torch.dtype):
            events.append(f"to {args[0]}")
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: False)
    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    frames = _frames("uint8")
    got = prepare_batch(frames, 24, "cuda")
    assert events[:3] == [
        "pin torch.uint8",
        "copy torch.uint8 non_blocking=True",
        "to torch.float32",
    ]
    monkeypatch.undo()
    torch.testing.assert_close(got, reference_prepare_batch(frames, 24))


# ---------------------------------------------------------------------------- fp16
def test_fp16_is_refused_on_cpu():
    half = ModelSource("lokirl.runtime.models:tiny_cnn", input_size=16, fp16=True)
    with pytest.raises(ConfigError) as exc:
        Runner(half, "cpu")
    assert "CUDA" in exc.value.problem and "--fp16" in exc.value.fix
    w = Worker(0, "cpu")
    with pytest.raises(ConfigError):
        w.load("x", half.to_dict())
    assert w.variant is None


def test_fp16_travels_in_the_model_source(tmp_path, tiny_pipeline):
    names = ["det-small", "cls-small"]
    assert not any(s.fp16 for s in model_sources(tiny_pipeline, names).values())
    assert all(s.fp16 for s in model_sources(tiny_pipeline, names, None, True).values())
    src = model_sources(tiny_pipeline, names, None, True)["det-small"]
    assert ModelSource(**src.to_dict()) == src


# ---------------------------------------------------------------------------- warm-up
def test_warmup_sizes():
    assert warmup_sizes(True) == (1,) and warmup_sizes(False) == ()
    assert warmup_sizes([8, 1, 4, 4]) == (1, 4, 8) and warmup_sizes([]) == ()
    with pytest.raises(ValueError):
        warmup_sizes([0, 2])


def test_load_warms_up_at_every_planned_batch_size(monkeypatch):
    seen: list[tuple[int, ...]] = []
    run = Runner.run

    def spy(self, batch):
        seen.append(tuple(batch.shape))
        return run(self, batch)

    monkeypatch.setattr(Runner, "run", spy)
    w = Worker(0, "cpu")
    res = w.load("det", TINY_SRC.to_dict(), warmup=[1, 2, 4, 8])
    assert res["warmed"] == [1, 2, 4, 8] and res["device"] == "cpu" and res["provider"] is None
    assert [s[0] for s in seen] == [1, 2, 4, 8] and all(s[1:] == (3, 16, 16) for s in seen)
    seen.clear()
    assert w.load("det", TINY_SRC.to_dict())["warmed"] == [1] and len(seen) == 1
    seen.clear()
    assert w.load("det", TINY_SRC.to_dict(), warmup=False)["warmed"] == [] and not seen


# ---------------------------------------------------------------------------- ONNX providers
@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    pytest.importorskip("onnx")
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    module = models.tiny_cnn().eval()
    torch.onnx.export(
        module,
        torch.zeros(1, 3, 16, 16),
        str(path),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
    )
    return str(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_on_a_cuda_worker_reports_the_provider_it_really_uses(onnx_file, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        pytest.skip("this onnxruntime runs on CUDA here (see the gpu test)")
    src = ModelSource(onnx_file, input_size=16)
    w = Worker(0, "cuda")  # a GPU worker whose onnxruntime has no (working) CUDA provider
    with caplog.at_level(logging.WARNING, logger="lokirl.runtime.models"):
        res = w.load("cls", src.to_dict(), warmup=[1, 2])
    assert res["provider"] == "CPUExecutionProvider" and res["device"] == "cpu"
    assert w.info()["device"] == "cpu" and "runs on the CPU" in caplog.text
    out = w.infer([np.zeros((3, 20, 20), np.uint8)] * 2)
    assert out["variant"] == "cls"
    assert Runner(src, "cpu").device_used == "cpu"


# ---------------------------------------------------------------------------- CUDA (gpu)
@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("kind", ["uint8", "float", "gray", "mixed", "same-size"])
def test_device_preprocessing_on_cuda_matches_the_cpu(kind):
    frames = _frames(kind)
    got = prepare_batch(frames, 24, "cuda")
    assert got.device.type == "cuda" and got.dtype == torch.float32
    torch.testing.assert_close(got.cpu(), reference_prepare_batch(frames, 24), atol=1e-6, rtol=0)
    half = prepare_batch(frames, 24, "cuda", torch.float16)
    assert half.dtype == torch.float16


@pytest.mark.gpu
@cuda
def test_host_batches_go_to_cuda_from_pinned_memory(monkeypatch):
    pinned = []
    pin = torch.Tensor.pin_memory

    def spy(self, *args, **kwargs):
        out = pin(self, *args, **kwargs)
        pinned.append(out.is_pinned())
        return out

    monkeypatch.setattr(torch.Tensor, "pin_memory", spy)
    x = to_device(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "cuda")
    assert x.device.type == "cuda" and pinned == [True]
    assert to_device(x, "cuda") is x


@pytest.mark.gpu
@cuda
def test_fp16_worker_on_cuda_warms_up_and_serves():
    half = ModelSource("lokirl.runtime.models:tiny_cnn", {"depth": 2}, None, 16, fp16=True)
    w = Worker(0, "cuda")
    res = w.load("det", half.to_dict(), warmup=[1, 2, 4])
    assert res["device"] == "cuda" and res["fp16"] is True and res["warmed"] == [1, 2, 4]
    assert next(w.runner._module.parameters()).dtype == torch.float16
    out = w.infer([np.zeros((3, 32, 32), np.uint8)] * 3)
    assert out["service_ms"] > 0
    # the same weights in fp32 and fp16 give close outputs
    full = Runner(TINY_SRC, "cuda")
    halved = Runner(dataclasses.replace(TINY_SRC, fp16=True), "cuda", full.state_dict())
    x = prepare_batch(_frames("uint8"), 16, "cuda")
    assert halved.run(x).dtype == torch.float16
    torch.testing.assert_close(halved.run(x).float(), full.run(x), atol=1e-2, rtol=1e-2)


@pytest.mark.gpu
@cuda
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_on_cuda_uses_the_cuda_provider(onnx_file):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (install the onnx-gpu extra)")
    w = Worker(0, "cuda")
    res = w.load("cls", ModelSource(onnx_file, input_size=16).to_dict(), warmup=[1, 2])
    assert res["provider"] == "CUDAExecutionProvider" and res["device"] == "cuda"
    w.infer([np.zeros((3, 20, 20), np.uint8)] * 2)


# ---------------------------------------------------------------------------- serve flags
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--gpus-per-worker", "0"], "--gpus-per-worker: 0: a worker's share of a GPU"),
        (["--gpus-per-worker", "1.5"], "--gpus-per-worker: 1.5: a worker's share of a GPU"),
        (["--gpus-per-worker", "0.5", "--emulate"], "emulated workers claim no GPU"),
    ],
)
def test_serve_refuses_a_bad_gpu_share_at_once(argv, words, capsys):
    from lokirl.cli import main

    assert main(["serve", "--port", "1", *argv]) == 2
    assert words in capsys.readouterr().err


def test_serve_passes_the_share_and_fp16_to_the_runtime(tiny_pipeline, monkeypatch):
    import lokirl.runtime.runtime as runtime
    from lokirl.cli import main

    seen = []

    class Stop(ConfigError):
        pass

    def fake(config, pipeline=None):
        seen.append(config)
        raise Stop("runtime", "-", "stopped by the test", "-")

    monkeypatch.setattr(runtime, "Runtime", fake)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["serve", "--pipeline", tiny_pipeline, "--workers", "2", "--port", str(port)]
    assert main([*argv, "--gpus-per-worker", "0.25", "--fp16"]) == 2
    assert (seen[-1].gpus_per_worker, seen[-1].fp16) == (0.25, True)
    assert main(argv) == 2
    assert (seen[-1].gpus_per_worker, seen[-1].fp16) == (None, None)  # defaults


def test_workers_sharing_a_gpu_judge_swaps_against_their_share(monkeypatch):
    """Two workers per GPU: a make-before-break swap that fits a whole GPU is a stop."""
    import lokirl.runtime.worker as worker
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.core.reconfig import plan_swap
    from lokirl.runtime.runtime import Runtime, RuntimeConfig
    from lokirl.runtime.worker import share_worker_memory

    p = load_pipeline("traffic_analysis")  # worker memory 11,264 MiB (GTX 1080 Ti)
    assert share_worker_memory(p, "gpu", 1.0) is p
    half = share_worker_memory(p, "gpu", 0.5)
    assert half.accelerator_memory_mb["gpu"] == p.accelerator_memory_mb["gpu"] / 2
    # efficientnet-b6 + b5 (about 9.5 GiB) fit one worker's whole GPU, not half of it.
    assert plan_swap(p, "gpu", "efficientnet-b6", "efficientnet-b5").mode == "overlap"
    assert plan_swap(half, "gpu", "efficientnet-b6", "efficientnet-b5").mode == "stop"

    monkeypatch.setattr(worker, "cluster_gpus", lambda: 2.0)
    r = Runtime(RuntimeConfig(pipeline="traffic_analysis", workers=4, controller="static"))
    r._check_gpus()
    assert r.gpu_share == 0.5
    assert r.plane.pipeline.accelerator_memory_mb["gpu"] == half.accelerator_memory_mb["gpu"]
    r = Runtime(RuntimeConfig(pipeline="traffic_analysis", workers=2, controller="static"))
    r._check_gpus()  # a GPU each: the profile's memory stands
    assert r.plane.pipeline.accelerator_memory_mb["gpu"] == p.accelerator_memory_mb["gpu"]
