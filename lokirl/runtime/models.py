"""Model backends and the built-in networks of the traffic-analysis demo.

A *model source* says how a worker builds the network of a variant:

* ``"module:callable"``: a factory returning a torch ``nn.Module`` (keyword
  arguments from the pipeline file's ``runtime.models`` entry);
* a path ending ``.pt``/``.pth``/``.ts``: a TorchScript file (``torch.jit.load``);
* a path ending ``.onnx``: an ONNX file run through onnxruntime;
* a built-in variant name (``yolov5s``, ``efficientnet-b3``, ``genderNet_16``).

Built-in networks are the real architectures with random initialisation unless a
``weights`` file is given; nothing is ever downloaded. Their *accuracy* is never
measured here: it comes from the pipeline profile. The detector's number of
detections is likewise drawn from the variant's branching profile, not read from
its output.
"""

from __future__ import annotations

import importlib
import io
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from lokirl.errors import ConfigError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- YOLOv5

#: (depth multiple, width multiple) of the published YOLOv5 v6 models.
YOLO_SCALES: dict[str, tuple[float, float]] = {
    "n": (0.33, 0.25),
    "s": (0.33, 0.50),
    "m": (0.67, 0.75),
    "l": (1.00, 1.00),
    "x": (1.33, 1.25),
}


def _div8(x: float) -> int:
    return int(math.ceil(x / 8) * 8)


class Conv(nn.Module):
    """Conv2d + BatchNorm + SiLU, 'same' padding (YOLOv5's ``Conv``)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """1x1 then 3x3 conv with an optional residual."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c2, 1)
        self.cv2 = Conv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with three convolutions."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast (three chained max-pools)."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class YOLOv5(nn.Module):
    """YOLOv5 (v6 layout): C3/SPPF backbone, PANet neck, three-scale detect head.

    Args:
        depth: Depth multiple (repeats of each C3).
        width: Width multiple (channels).
        num_classes: Classes of the detect head (COCO: 80).
        anchors: Anchors per scale.

    """

    def __init__(self, depth: float, width: float, num_classes: int = 80, anchors: int = 3) -> None:
        super().__init__()

        def ch(c: int) -> int:
            return _div8(c * width)

        def rep(n: int) -> int:
            return max(round(n * depth), 1)

        self.b0 = Conv(3, ch(64), 6, 2, 2)
        self.b1 = Conv(ch(64), ch(128), 3, 2)
        self.b2 = C3(ch(128), ch(128), rep(3))
        self.b3 = Conv(ch(128), ch(256), 3, 2)
        self.b4 = C3(ch(256), ch(256), rep(6))  # P3
        self.b5 = Conv(ch(256), ch(512), 3, 2)
        self.b6 = C3(ch(512), ch(512), rep(9))  # P4
        self.b7 = Conv(ch(512), ch(1024), 3, 2)
        self.b8 = C3(ch(1024), ch(1024), rep(3))
        self.b9 = SPPF(ch(1024), ch(1024))  # P5
        self.h10 = Conv(ch(1024), ch(512), 1)
        self.h13 = C3(ch(1024), ch(512), rep(3), shortcut=False)
        self.h14 = Conv(ch(512), ch(256), 1)
        self.h17 = C3(ch(512), ch(256), rep(3), shortcut=False)  # out P3
        self.h18 = Conv(ch(256), ch(256), 3, 2)
        self.h20 = C3(ch(512), ch(512), rep(3), shortcut=False)  # out P4
        self.h21 = Conv(ch(512), ch(512), 3, 2)
        self.h23 = C3(ch(1024), ch(1024), rep(3), shortcut=False)  # out P5
        no = anchors * (num_classes + 5)
        self.detect = nn.ModuleList(nn.Conv2d(c, no, 1) for c in (ch(256), ch(512), ch(1024)))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw predictions of the three scales, flattened and concatenated: (B, N)."""
        x = self.b2(self.b1(self.b0(x)))
        p3 = self.b4(self.b3(x))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h10 = self.h10(p5)
        h13 = self.h13(torch.cat((self.up(h10), p4), 1))
        h14 = self.h14(h13)
        o3 = self.h17(torch.cat((self.up(h14), p3), 1))
        o4 = self.h20(torch.cat((self.h18(o3), h14), 1))
        o5 = self.h23(torch.cat((self.h21(o4), h10), 1))
        outs = [d(o).sigmoid().flatten(1) for d, o in zip(self.detect, (o3, o4, o5), strict=True)]
        return torch.cat(outs, 1)


def yolov5(size: str = "s", num_classes: int = 80) -> nn.Module:
    """A YOLOv5 detector of size ``n``, ``s``, ``m``, ``l`` or ``x`` (random weights)."""
    if size not in YOLO_SCALES:
        raise ValueError(f"unknown YOLOv5 size {size!r}: use one of {', '.join(YOLO_SCALES)}")
    depth, width = YOLO_SCALES[size]
    return YOLOv5(depth, width, num_classes)


# --------------------------------------------------------------------------- classifiers


def efficientnet(name: str = "efficientnet-b0", num_classes: int = 196) -> nn.Module:
    """An EfficientNet (``efficientnet-pytorch``'s real architecture, random weights).

    Args:
        name: ``efficientnet-b0`` ... ``efficientnet-b7``.
        num_classes: Output classes (Stanford Cars: 196).

    """
    from efficientnet_pytorch import EfficientNet

    return EfficientNet.from_name(name, num_classes=num_classes)


class SmallCNN(nn.Module):
    """A VGG-style classifier: ``depth`` conv layers in up to five stages, then a head.

    Args:
        depth: Number of 3x3 conv layers (>= 1).
        width: Channels of the first stage (doubling per stage, capped at 8x).
        num_classes: Outputs.

    """

    def __init__(self, depth: int = 3, width: int = 16, num_classes: int = 2) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be >= 1")
        stages = min(depth, 5)
        per = [depth // stages + (1 if i < depth % stages else 0) for i in range(stages)]
        layers: list[nn.Module] = []
        c_in = 3
        for i, n in enumerate(per):
            c_out = width * min(2**i, 8)
            for _ in range(n):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = c_out
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.features(x))


#: Conv depth of the face classifiers (genderNet variants), shallowest is fastest.
GENDERNET_DEPTHS: dict[str, int] = {
    "genderNet": 3,
    "genderNet_11": 8,
    "genderNet_13": 10,
    "genderNet_16": 13,
    "genderNet_19": 16,
}


def gendernet(name: str = "genderNet", width: int = 16) -> nn.Module:
    """A face (gender) classifier of the depth Loki's genderNet variant names suggest."""
    if name not in GENDERNET_DEPTHS:
        raise ValueError(f"unknown genderNet variant {name!r}")
    return SmallCNN(GENDERNET_DEPTHS[name], width, num_classes=2)


def tiny_cnn(depth: int = 1, width: int = 4, num_classes: int = 2) -> nn.Module:
    """A very small CNN for tests and smoke runs."""
    return SmallCNN(depth, width, num_classes)


def builtin_factory(variant: str) -> Callable[[], nn.Module] | None:
    """The built-in network of a traffic-analysis variant name, or ``None``."""
    if variant.startswith("yolov5") and variant[6:] in YOLO_SCALES:
        return lambda: yolov5(variant[6:])
    if variant.startswith("efficientnet-b") and variant[14:].isdigit():
        return lambda: efficientnet(variant)
    if variant in GENDERNET_DEPTHS:
        return lambda: gendernet(variant)
    return None


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class ModelSource:
    """How to build a variant's network.

    Attributes:
        source: ``module:callable``, a ``.pt``/``.ts`` TorchScript file, an ``.onnx``
            file, or a built-in variant name.
        kwargs: Keyword arguments of a factory.
        weights: Optional state-dict file loaded into a factory's module.
        input_size: Square input resolution the worker resizes images to.
        fp16: Run the network and its inputs in half precision (torch models on
            CUDA only: a :class:`Runner` refuses it on the CPU; an ONNX model runs
            in the precision it was exported in).

    """

    source: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_size: int = 224
    fp16: bool = False

    @property
    def kind(self) -> str:
        """``onnx``, ``torchscript``, ``factory`` or ``builtin``."""
        s = self.source.lower()
        if s.endswith(".onnx"):
            return "onnx"
        if s.endswith((".pt", ".pth", ".ts", ".torchscript")):
            return "torchscript"
        if ":" in self.source:
            return "factory"
        return "builtin"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (sent to worker actors)."""
        return {
            "source": self.source,
            "kwargs": dict(self.kwargs),
            "weights": self.weights,
            "input_size": self.input_size,
            "fp16": self.fp16,
        }


def model_sources(
    pipeline_file: str | Path | None,
    variants: list[str],
    input_size: int | None = None,
    fp16: bool | None = None,
) -> dict[str, ModelSource]:
    """Model sources of every variant: the pipeline file's ``runtime`` section, else built-ins.

    The optional section of a pipeline YAML file::

        runtime:
          input_size: 64                 # default square resolution
          fp16: true                     # optional: half precision on CUDA workers
          models:
            det-small: lokirl.runtime.models:tiny_cnn
            det-large: {source: "lokirl.runtime.models:tiny_cnn", kwargs: {depth: 3}}
            cls: models/classifier.onnx

    Args:
        pipeline_file: The pipeline's YAML file (``None`` for a built-in without one).
        variants: Variant names needing a source.
        input_size: Override of the resolution.
        fp16: Override of the section's ``fp16`` (``--fp16``); ``None``: the file's.

    Raises:
        ConfigError: a variant has no source.

    """
    source_name = str(pipeline_file) if pipeline_file else "<pipeline>"
    if input_size is not None and not 1 <= int(input_size) <= 8192:
        raise ConfigError(
            "--input-size", str(input_size), "must be 1..8192 pixels", "pass e.g. --input-size 64"
        )
    section = RuntimeSection()
    if pipeline_file is not None:
        import yaml

        data = yaml.safe_load(Path(pipeline_file).read_text()) or {}
        section = _parse_runtime(data.get("runtime"), source_name)
    size = int(input_size or section.input_size or 224)
    half = bool(section.fp16 if fp16 is None else fp16)
    out: dict[str, ModelSource] = {}
    for v in variants:
        entry = section.models.get(v)
        if entry is None:
            if builtin_factory(v) is None:
                raise ConfigError(
                    source_name,
                    f"runtime.models.{v}",
                    "no model for this variant and no built-in network of that name",
                    "add `runtime: {models: {" + v + ": 'package.module:factory'}}`",
                )
            out[v] = ModelSource(v, input_size=size, fp16=half)
        elif isinstance(entry, str):
            out[v] = ModelSource(entry, input_size=size, fp16=half)
        else:
            out[v] = ModelSource(
                entry.source,
                dict(entry.kwargs),
                entry.weights,
                int(entry.input_size or size),
                half,
            )
    return out


class ModelEntry(BaseModel):
    """One variant's model in a pipeline file's ``runtime.models`` section."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="package.module:factory, a .onnx or a TorchScript file")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="factory arguments")
    weights: str | None = Field(default=None, description="a state-dict file to load")
    input_size: int | None = Field(default=None, ge=1, le=8192, description="square resolution")


class RuntimeSection(BaseModel):
    """The optional ``runtime`` section of a pipeline file (see :func:`model_sources`)."""

    model_config = ConfigDict(extra="forbid")

    input_size: int | None = Field(default=None, ge=1, le=8192)
    fp16: bool = Field(default=False, description="half precision on CUDA workers")
    models: dict[str, str | ModelEntry] = Field(default_factory=dict)


def _parse_runtime(raw: Any, source_name: str) -> RuntimeSection:
    """Validate a ``runtime`` section; errors name the file, the field and the fix."""
    if raw is None:
        return RuntimeSection()
    try:
        return RuntimeSection.model_validate(raw)
    except ValidationError as exc:
        # The most specific error (a union's member that got furthest into the value).
        err = max(exc.errors(), key=lambda e: len(e.get("loc", ())))
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("str", "ModelEntry"))
        field = "runtime" + (f".{loc}" if loc else "")
        fixes = {
            "runtime": "write a mapping: `runtime: {input_size: 64, models: {...}}`",
            "runtime.input_size": "write a whole number of pixels, e.g. `input_size: 64`",
            "runtime.fp16": "write `fp16: true` or `fp16: false`",
        }
        fix = fixes.get(
            field,
            "write e.g. `models: {det: package.module:factory}` or "
            "`{source: package.module:factory, kwargs: {depth: 3}}`",
        )
        raise ConfigError(source_name, field, str(err.get("msg", "invalid")), fix) from None


class Runner:
    """A loaded network that runs NCHW batches on one device.

    Torch networks run on ``device`` in float32, or float16 with ``source.fp16``
    (CUDA only). ONNX models run through onnxruntime: with ``device`` ``cuda`` the
    session asks for ``CUDAExecutionProvider`` (when the installed onnxruntime
    offers it, see the ``onnx-gpu`` extra) and :attr:`device_used` says where it
    really runs: onnxruntime falls back to the CPU when the CUDA provider cannot
    start, and a worker must not report ``cuda`` then.

    Args:
        source: How to build the network.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        preloaded: Weights already in host memory, used instead of reading files
            (the profiler times a load from host memory with it): a state dict
            for a factory or built-in source (replaces ``source.weights``), the
            file's bytes for a TorchScript or ONNX source.

    Raises:
        ConfigError: ``source.fp16`` on a CPU device.

    """

    def __init__(
        self,
        source: ModelSource,
        device: str = "cpu",
        preloaded: Mapping[str, Any] | bytes | None = None,
    ) -> None:
        self.source = source
        self.device = device
        self._session: Any = None
        self._module: Any = None
        cuda = device.startswith("cuda")
        #: The provider an ONNX session runs on (``None`` for torch networks).
        self.provider: str | None = None
        #: The dtype inputs are given in.
        self.input_dtype = torch.float32
        kind = source.kind
        if kind == "onnx":
            self._init_onnx(source, device, preloaded)
            return
        if source.fp16 and not cuda:
            raise ConfigError(
                "fp16",
                f"{source.source} on {device}",
                "half precision is for CUDA workers (CPU kernels are slow or missing in fp16)",
                "drop --fp16 (or set `runtime: {fp16: false}`), or serve on GPU workers",
            )
        if kind == "torchscript":
            if isinstance(preloaded, bytes):
                module = torch.jit.load(io.BytesIO(preloaded), map_location=device)
            else:
                module = torch.jit.load(source.source, map_location=device)
        else:
            if kind == "builtin":
                factory = builtin_factory(source.source)
                if factory is None:
                    raise ValueError(f"no built-in network called {source.source!r}")
                module = factory()
            else:
                mod_name, _, attr = source.source.partition(":")
                factory = getattr(importlib.import_module(mod_name), attr)
                module = factory(**dict(source.kwargs))
            if isinstance(preloaded, Mapping):
                module.load_state_dict(preloaded)
            elif source.weights:
                state = torch.load(source.weights, map_location="cpu", weights_only=True)
                module.load_state_dict(state)
        module = module.to(device).eval()
        if source.fp16:
            module = module.half()
            self.input_dtype = torch.float16
        self._module = module

    def _init_onnx(
        self, source: ModelSource, device: str, preloaded: Mapping[str, Any] | bytes | None
    ) -> None:
        import onnxruntime as ort

        providers: list[Any] = ["CPUExecutionProvider"]
        asked = False
        if device.startswith("cuda"):
            asked = "CUDAExecutionProvider" in ort.get_available_providers()
            if asked:
                index = device.partition(":")[2] or "0"
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index)}))
            else:
                log.warning(
                    "%s: this onnxruntime offers no CUDAExecutionProvider (install the "
                    "onnx-gpu extra); the ONNX model runs on the CPU",
                    source.source,
                )
        if source.fp16:
            log.warning(
                "%s: fp16 applies to torch networks; an ONNX model runs in the precision "
                "it was exported in",
                source.source,
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        model = preloaded if isinstance(preloaded, bytes) else source.source
        self._session = ort.InferenceSession(model, opts, providers=providers)
        first = self._session.get_inputs()[0]
        self._input = first.name
        self._onnx_dtype = np.float16 if first.type == "tensor(float16)" else np.float32
        if self._onnx_dtype == np.float16:
            self.input_dtype = torch.float16
        self.provider = self._session.get_providers()[0]
        if asked and self.provider != "CUDAExecutionProvider":
            log.warning(
                "%s: asked onnxruntime for CUDA, got %s: the ONNX model runs on the CPU",
                source.source,
                self.provider,
            )

    @property
    def device_used(self) -> str:
        """Where the network really runs: ``device``, or ``cpu`` for an ONNX session on the CPU."""
        if self._session is not None and self.provider != "CUDAExecutionProvider":
            return "cpu"
        return self.device

    @property
    def input_device(self) -> str:
        """Where :meth:`run` wants its input: the device for torch, host memory for ONNX."""
        return "cpu" if self._session is not None else self.device

    @property
    def parameters(self) -> int:
        """Number of parameters (0 for ONNX)."""
        if self._module is None:
            return 0
        return sum(p.numel() for p in self._module.parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A copy of the network's weights and buffers on the CPU, float32 (not for ONNX)."""
        if self._module is None:
            raise TypeError("an ONNX Runtime session has no torch state dict")
        return {
            k: v.detach()
            .to("cpu", copy=True)
            .to(torch.float32 if v.is_floating_point() else v.dtype)
            for k, v in self._module.state_dict().items()
        }

    @property
    def weight_bytes(self) -> int:
        """Bytes of the parameters and buffers (0 for ONNX)."""
        if self._module is None:
            return 0
        tensors = [*self._module.parameters(), *self._module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def run(self, batch: np.ndarray | torch.Tensor) -> Any:
        """Run one batch; returns the output (discarded by workers).

        A batch already on the device (from :func:`prepare_batch`) is used as it
        is; a host batch is copied there (from pinned memory on CUDA) and cast to
        :attr:`input_dtype`.
        """
        if self._session is not None:
            x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
            return self._session.run(None, {self._input: x.astype(self._onnx_dtype, copy=False)})
        with torch.inference_mode():
            x = to_device(torch.as_tensor(batch), self.device).to(self.input_dtype)
            out = self._module(x)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            return out


def to_device(x: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``x`` on ``device``; a host tensor goes to CUDA from pinned memory, asynchronously.

    On the CPU (or when ``x`` is already there) nothing is copied.
    """
    dev = torch.device(device)
    if x.device == dev or (dev.type == x.device.type and dev.index is None):
        return x
    if dev.type == "cuda" and x.device.type == "cpu":
        if not x.is_pinned():
            x = x.pin_memory()
        return x.to(dev, non_blocking=True)
    return x.to(dev)


def prepare_batch(
    frames: list[Any],
    size: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Turn CHW frames into one ``(B, 3, size, size)`` batch in [0, 1] on ``device``.

    The frames travel to the device as they came (a uint8 frame is a quarter of
    the bytes of its float32 form), through pinned host memory on CUDA; there they
    are converted to float32, scaled (uint8 by 1/255), one-channel frames repeated
    to three, resized (nearest) and cast to ``dtype``. Frames of one shape and
    dtype are stacked on the host and move in one copy; otherwise each moves
    alone. On the CPU the result is the float32 resize it always was.

    Args:
        frames: CHW arrays (uint8 or float), 1 or 3 channels.
        size: Square output resolution.
        device: Where the batch is built (the runner's :attr:`Runner.input_device`).
        dtype: Output dtype (``torch.float16`` for an fp16 runner).

    """
    arrays = [np.asarray(f) for f in frames]
    first = arrays[0]
    if all(a.shape == first.shape and a.dtype == first.dtype for a in arrays):
        hosts = [torch.from_numpy(np.stack(arrays))]
    else:
        hosts = [torch.tensor(a)[None] for a in arrays]
    parts = [_on_device_resized(h, size, device, dtype) for h in hosts]
    x = parts[0] if len(parts) == 1 else torch.cat(parts)
    return x.contiguous()


def _on_device_resized(
    host: torch.Tensor, size: int, device: str | torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Move an NCHW host batch to ``device``, then convert, scale and resize it there."""
    x = to_device(host, device)
    if x.dtype == torch.uint8:
        x = x.to(torch.float32).div_(255.0)
    else:
        x = x.to(torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="nearest")
    return x.to(dtype)
