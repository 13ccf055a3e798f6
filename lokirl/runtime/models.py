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

    """

    source: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_size: int = 224

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
        }


def model_sources(
    pipeline_file: str | Path | None, variants: list[str], input_size: int | None = None
) -> dict[str, ModelSource]:
    """Model sources of every variant: the pipeline file's ``runtime`` section, else built-ins.

    The optional section of a pipeline YAML file::

        runtime:
          input_size: 64                 # default square resolution
          models:
            det-small: lokirl.runtime.models:tiny_cnn
            det-large: {source: "lokirl.runtime.models:tiny_cnn", kwargs: {depth: 3}}
            cls: models/classifier.onnx

    Args:
        pipeline_file: The pipeline's YAML file (``None`` for a built-in without one).
        variants: Variant names needing a source.
        input_size: Override of the resolution.

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
            out[v] = ModelSource(v, input_size=size)
        elif isinstance(entry, str):
            out[v] = ModelSource(entry, input_size=size)
        else:
            out[v] = ModelSource(
                entry.source, dict(entry.kwargs), entry.weights, int(entry.input_size or size)
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
        }
        fix = fixes.get(
            field,
            "write e.g. `models: {det: package.module:factory}` or "
            "`{source: package.module:factory, kwargs: {depth: 3}}`",
        )
        raise ConfigError(source_name, field, str(err.get("msg", "invalid")), fix) from None


class Runner:
    """A loaded network that runs float32 NCHW batches on one device.

    Args:
        source: How to build the network.
        device: ``cpu`` or ``cuda``.
        preloaded: Weights already in host memory, used instead of reading files
            (the profiler times a load from host memory with it): a state dict
            for a factory or built-in source (replaces ``source.weights``), the
            file's bytes for a TorchScript or ONNX source.

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
        kind = source.kind
        if kind == "onnx":
            import onnxruntime as ort

            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda"):
                providers.insert(0, "CUDAExecutionProvider")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            model = preloaded if isinstance(preloaded, bytes) else source.source
            self._session = ort.InferenceSession(model, opts, providers=providers)
            self._input = self._session.get_inputs()[0].name
            return
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
        self._module = module.to(device).eval()

    @property
    def parameters(self) -> int:
        """Number of parameters (0 for ONNX)."""
        if self._module is None:
            return 0
        return sum(p.numel() for p in self._module.parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A copy of the network's weights and buffers on the CPU (not for ONNX)."""
        if self._module is None:
            raise TypeError("an ONNX Runtime session has no torch state dict")
        return {k: v.detach().to("cpu", copy=True) for k, v in self._module.state_dict().items()}

    @property
    def weight_bytes(self) -> int:
        """Bytes of the parameters and buffers (0 for ONNX)."""
        if self._module is None:
            return 0
        tensors = [*self._module.parameters(), *self._module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def run(self, batch: np.ndarray | torch.Tensor) -> Any:
        """Run one batch; returns the output (discarded by workers)."""
        if self._session is not None:
            x = batch.numpy() if isinstance(batch, torch.Tensor) else batch
            return self._session.run(None, {self._input: x.astype(np.float32, copy=False)})
        with torch.inference_mode():
            x = torch.as_tensor(batch).to(self.device, non_blocking=True)
            out = self._module(x)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            return out


def prepare_batch(frames: list[np.ndarray], size: int) -> torch.Tensor:
    """Resize CHW frames (uint8 or float) to ``size`` x ``size`` and stack them, float32 in [0, 1]."""
    tensors = []
    for f in frames:
        t = torch.as_tensor(np.asarray(f))
        if t.dtype == torch.uint8:
            t = t.float().div_(255.0)
        else:
            t = t.float()
        if t.shape[0] == 1:
            t = t.expand(3, *t.shape[1:])
        tensors.append(t)
    same = all(t.shape == tensors[0].shape for t in tensors)
    if same:
        x = torch.stack(tensors)
        if x.shape[-2:] != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="nearest")
        return x.contiguous()
    return torch.cat(
        [
            torch.nn.functional.interpolate(t[None], size=(size, size), mode="nearest")
            for t in tensors
        ]
    ).contiguous()
