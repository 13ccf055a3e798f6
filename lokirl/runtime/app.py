"""HTTP ingress: FastAPI in front of one :class:`~lokirl.runtime.runtime.Runtime`.

(or of an extra ingress replica, :class:`~lokirl.runtime.replicas.IngressReplica`)

Endpoints:

* ``POST /v1/pipelines/{name}/infer``: one frame, as an image (``image/png``,
  ``image/jpeg``...), a raw tensor (``application/octet-stream`` with header
  ``X-Tensor-Shape: C,H,W`` and optionally ``X-Tensor-Dtype: uint8|float32``), or
  JSON ``{"shape": [C, H, W], "data": [...]}``. Answers 200 with the outcome
  (``on_time`` or ``late``), 503 when the frame was dropped (with the reason),
  4xx with a message for bad input.
* ``GET /v1/status``: the running plan, workers and tallies (accuracy and effective
  accuracy side by side).
* ``GET /metrics``: Prometheus text format.
* ``GET /healthz``: liveness: 200 while the event loop answers and the controller
  loop ticks (503 with a reason otherwise, e.g. while starting).
* ``GET /readyz``: readiness: 200 when enough live workers serve the running plan;
  503 with the reason otherwise (a worker down and being replaced, a task with no
  ready worker, starting).

An image's size is read from its header before it is decoded (an image over
``max_pixels`` is refused with 413), and every body is decoded in a small thread
pool, never on the event loop: a huge image cannot stall ``/healthz`` or other
requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from lokirl.runtime.runtime import Runtime

#: Default request body limit (bytes).
MAX_BODY_BYTES = 8 * 1024 * 1024

_MAX_SIDE = 4096
_MIN_SIDE = 8

#: Default largest image accepted, in pixels (width x height), checked before decoding.
MAX_PIXELS = 4096 * 4096


class BadInput(ValueError):
    """The request body is not a frame this ingress accepts."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise BadInput(f"tensor shape must be C,H,W (3 numbers), got {list(shape)}")
    c, h, w = shape
    if c not in (1, 3):
        raise BadInput(f"tensor must have 1 or 3 channels first (C,H,W), got C={c}")
    if not (_MIN_SIDE <= h <= _MAX_SIDE and _MIN_SIDE <= w <= _MAX_SIDE):
        raise BadInput(f"height and width must be in [{_MIN_SIDE}, {_MAX_SIDE}], got {h}x{w}")
    return c, h, w


def image_size(body: bytes) -> tuple[int, int]:
    """Width and height of an encoded image, read from its header (nothing is decoded).

    Raises:
        BadInput: not an image PIL can read (400).

    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(body)) as img:  # lazy: reads the header only
            return img.size
    except Exception:  # noqa: BLE001 - any failure to read the header is the client's
        raise BadInput("cannot decode the image: send a PNG or JPEG file") from None


def decode_frame(
    body: bytes, content_type: str, headers: dict[str, str], max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Decode a request body into a CHW array (uint8 or float32).

    Args:
        body: The request body.
        content_type: Its ``Content-Type``.
        headers: The request headers, lower-case names.
        max_pixels: Largest image (width x height) decoded; a larger one is refused
            from its header, before any decoding.

    Raises:
        BadInput: with the HTTP status (400, 413, 415) and a message saying what to send.

    """
    ctype = (content_type or "").split(";")[0].strip().lower()
    if not body:
        raise BadInput("empty body: send an image, a raw tensor or JSON {shape, data}")
    if ctype.startswith("image/"):
        w, h = image_size(body)
        if w * h > max_pixels or max(w, h) > _MAX_SIDE:
            raise BadInput(
                f"image of {w}x{h} pixels is too large: at most {max_pixels} pixels and "
                f"{_MAX_SIDE} per side are accepted; resize it before sending",
                status=413,
            )
        try:
            from PIL import Image

            img = Image.open(io.BytesIO(body))
            img.draft("RGB", (1024, 1024))
            arr = np.asarray(img.convert("RGB"))
        except Exception:  # noqa: BLE001 - any decoding failure is the client's
            raise BadInput(f"cannot decode the {ctype} image") from None
        arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
        _check_shape(arr.shape)
        return arr
    if ctype in ("application/octet-stream", "application/x-tensor"):
        raw_shape = headers.get("x-tensor-shape")
        if not raw_shape:
            raise BadInput(
                "raw tensor without X-Tensor-Shape header: add e.g. X-Tensor-Shape: 3,64,64"
            )
        try:
            shape = tuple(int(x) for x in raw_shape.split(","))
        except ValueError:
            raise BadInput(f"X-Tensor-Shape {raw_shape!r} is not C,H,W integers") from None
        _check_shape(shape)
        dtype = headers.get("x-tensor-dtype", "uint8").lower()
        if dtype not in ("uint8", "float32"):
            raise BadInput(f"X-Tensor-Dtype {dtype!r} not supported: use uint8 or float32")
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if len(body) != need:
            raise BadInput(
                f"body has {len(body)} bytes; shape {list(shape)} of {dtype} needs {need}"
            )
        return np.frombuffer(body, dtype=dtype).reshape(shape)
    if ctype == "application/json":
        try:
            doc = json.loads(body)
            shape = tuple(int(x) for x in doc["shape"])
            data = doc["data"]
        except Exception:  # noqa: BLE001
            raise BadInput('JSON body must be {"shape": [C, H, W], "data": [numbers...]}') from None
        _check_shape(shape)
        try:
            arr = np.asarray(data, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadInput("JSON data must be numbers") from None
        if arr.size != int(np.prod(shape)) or not np.all(np.isfinite(arr)):
            raise BadInput(f"JSON data must hold {int(np.prod(shape))} finite numbers")
        return arr.reshape(shape)
    raise BadInput(
        f"unsupported content type {ctype or '(none)'}: send image/*, "
        "application/octet-stream with X-Tensor-Shape, or application/json",
        status=415,
    )


def _finite(x: Any) -> Any:
    """Replace NaN and infinities (not JSON) with ``None``."""
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def status_dict(runtime: Any) -> dict[str, Any]:
    """The runtime's status with the effective accuracy beside the accuracy.

    Args:
        runtime: The runtime (anything with ``status()`` and ``plane.frame_tally()``).

    Returns:
        ``runtime.status()`` plus ``effective_accuracy``: the frames' path accuracy
        summed over on-time frames, divided by all arrived frames (0-100).

    """
    status = runtime.status()
    effective = runtime.plane.frame_tally().effective_accuracy
    out: dict[str, Any] = {}
    for key, value in status.items():
        out[key] = value
        if key == "accuracy":
            out["effective_accuracy"] = effective
    out.setdefault("effective_accuracy", effective)
    return out


def create_app(
    runtime: Runtime,
    max_body_bytes: int = MAX_BODY_BYTES,
    manage: bool = False,
    max_pixels: int = MAX_PIXELS,
    decode_threads: int = 2,
    control_url: str | None = None,
) -> Any:
    """Build the FastAPI app serving ``runtime``.

    Args:
        runtime: The runtime (started already unless ``manage``).
        max_body_bytes: Largest request body accepted (413 beyond).
        manage: Start the runtime on app startup and stop it on shutdown.
        max_pixels: Largest image (width x height) accepted (413 beyond, from the
            header, before decoding).
        decode_threads: Threads that decode request bodies off the event loop.
        control_url: Set for an extra ingress replica
            (:class:`~lokirl.runtime.replicas.IngressReplica`): ``/metrics`` answers
            404 naming the controller's ingress there (which counts every replica),
            so that nothing is scraped twice; ``/v1/status`` is the replica's own view.

    """
    from contextlib import asynccontextmanager

    from lokirl.runtime.metrics import render_metrics

    decoder = concurrent.futures.ThreadPoolExecutor(
        max(1, decode_threads), thread_name_prefix="lokirl-decode"
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if manage:
            await runtime.start()
        try:
            yield
        finally:
            if manage:
                await runtime.stop()
            decoder.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="lokirl", lifespan=lifespan)
    name = runtime.pipeline.name

    def _probe(check: str) -> tuple[bool, str]:
        fn = getattr(runtime, check, None)
        if callable(fn):
            return fn()
        return (True, "ok") if runtime.started else (False, "starting")

    @app.get("/healthz")
    async def healthz() -> Any:
        ok, reason = _probe("liveness")
        body = {"ok": ok, "pipeline": name, "reason": None if ok else reason}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/readyz")
    async def readyz() -> Any:
        ok, reason = _probe("readiness")
        body = {"ready": ok, "pipeline": name, "reason": None if ok else reason}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/v1/status")
    async def status() -> Any:
        return JSONResponse(_finite(json.loads(json.dumps(status_dict(runtime), default=str))))

    @app.get("/metrics")
    async def metrics() -> Any:
        if control_url is not None:
            return JSONResponse(
                {"error": f"an ingress replica: the metrics of every replica are at {control_url}"},
                status_code=404,
            )
        body, ctype = render_metrics(runtime)
        return PlainTextResponse(body, media_type=ctype)

    @app.post("/v1/pipelines/{pipeline}/infer")
    async def infer(pipeline: str, request: Request) -> Any:
        if pipeline != name:
            return JSONResponse(
                {"error": f"no pipeline {pipeline!r} here; this server serves {name!r}"},
                status_code=404,
            )
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            return JSONResponse(
                {"error": f"body of {length} bytes exceeds the limit of {max_body_bytes}"},
                status_code=413,
            )
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > max_body_bytes:
                return JSONResponse(
                    {"error": f"body exceeds the limit of {max_body_bytes} bytes"},
                    status_code=413,
                )
        try:
            frame = await asyncio.get_running_loop().run_in_executor(
                decoder,
                decode_frame,
                bytes(buf),
                request.headers.get("content-type", ""),
                dict(request.headers),
                max_pixels,
            )
        except BadInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        if not runtime.started:
            return JSONResponse({"error": "the runtime is not serving yet"}, status_code=503)
        result = await runtime.submit(frame)
        return JSONResponse(result, status_code=503 if result["outcome"] == "dropped" else 200)

    return app
