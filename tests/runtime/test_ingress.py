"""HTTP ingress tests: input validation (no Ray) and a served request (small local Ray)."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest

from lokirl.runtime.app import BadInput, decode_frame


def test_decode_raw_tensor():
    arr = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    out = decode_frame(arr.tobytes(), "application/octet-stream", {"x-tensor-shape": "3,8,8"})
    assert np.array_equal(out, arr)


def test_decode_image():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (255, 0, 0)).save(buf, format="PNG")
    out = decode_frame(buf.getvalue(), "image/png", {})
    assert out.shape == (3, 10, 20) and out[0].max() == 255


@pytest.mark.parametrize(
    ("body", "ctype", "headers", "status", "text"),
    [
        (b"", "image/png", {}, 400, "empty body"),
        (b"not a png", "image/png", {}, 400, "cannot decode"),
        (b"\x00" * 10, "application/octet-stream", {}, 400, "X-Tensor-Shape"),
        (b"\x00" * 10, "application/octet-stream", {"x-tensor-shape": "3,8,8"}, 400, "needs 192"),
        (b"\x00" * 10, "application/octet-stream", {"x-tensor-shape": "a,b"}, 400, "integers"),
        (b"\x00" * 64, "application/octet-stream", {"x-tensor-shape": "1,8"}, 400, "C,H,W"),
        (b"\x00" * 200, "application/octet-stream", {"x-tensor-shape": "5,5,8"}, 400, "channels"),
        (b"{}", "application/json", {}, 400, "shape"),
        (b'{"shape": [3, 8, 8], "data": [1]}', "application/json", {}, 400, "192"),
        (b"x", "text/plain", {}, 415, "unsupported content type"),
    ],
)
def test_decode_rejects_bad_input(body, ctype, headers, status, text):
    with pytest.raises(BadInput) as info:
        decode_frame(body, ctype, headers)
    assert info.value.status == status
    assert text in str(info.value)


@pytest.mark.ray
def test_http_endpoints(ray_local, tiny_pipeline):
    import httpx

    from lokirl.runtime.app import create_app
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    async def main():
        rt = Runtime(RuntimeConfig(pipeline=tiny_pipeline, workers=2, initial_demand=5.0))
        app = create_app(rt, max_body_bytes=4096)
        transport = httpx.ASGITransport(app=app)
        out = {}
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            out["health_before"] = (await client.get("/healthz")).status_code
            await rt.start()
            try:
                frame = np.zeros((3, 16, 16), dtype=np.uint8)
                hdr = {"content-type": "application/octet-stream", "x-tensor-shape": "3,16,16"}
                url = "/v1/pipelines/tiny/infer"
                out["ok"] = await client.post(url, content=frame.tobytes(), headers=hdr)
                out["json"] = await client.post(
                    url,
                    content=json.dumps({"shape": [1, 8, 8], "data": [0.5] * 64}),
                    headers={"content-type": "application/json"},
                )
                out["bad"] = await client.post(url, content=b"xx", headers=hdr)
                out["big"] = await client.post(url, content=b"\x00" * 5000, headers=hdr)
                out["wrong"] = await client.post("/v1/pipelines/nope/infer", content=b"x")
                out["type"] = await client.post(url, content=b"x", headers={"content-type": "a/b"})
                out["status"] = await client.get("/v1/status")
                out["metrics"] = await client.get("/metrics")
                out["health"] = await client.get("/healthz")
                out["ready"] = await client.get("/readyz")
            finally:
                await rt.stop()
        return rt, out

    rt, out = asyncio.run(main())
    assert out["health_before"] == 503
    assert out["ok"].status_code == 200 and out["ok"].json()["outcome"] == "on_time"
    assert out["json"].status_code == 200
    assert out["bad"].status_code == 400 and "needs 768" in out["bad"].json()["error"]
    assert out["big"].status_code == 413
    assert out["wrong"].status_code == 404
    assert out["type"].status_code == 415
    status = out["status"].json()
    assert status["plan"]["pipeline"] == "tiny" and status["frames"]["on_time"] == 2
    assert "profile" in status["accuracy_source"]
    assert 'lokirl_frames_total{outcome="on_time",reason=""} 2.0' in out["metrics"].text
    assert out["health"].status_code == 200
    assert out["ready"].status_code == 200 and out["ready"].json()["ready"] is True
    assert "lokirl_frames_arrived_total 2.0" in out["metrics"].text
    assert 'outcome="arrived"' not in out["metrics"].text  # not beside the outcomes
    assert "lokirl_frame_latency_seconds_count 2.0" in out["metrics"].text
    assert rt.plane.frame_tally().arrived == 2  # bad requests never enter the pipeline
    # Both frames on time: the effective accuracy is the frames' accuracy.
    ft = rt.plane.frame_tally()
    assert status["effective_accuracy"] == pytest.approx(ft.effective_accuracy)
    assert status["effective_accuracy"] == pytest.approx(ft.accuracy_sum / 2)
    assert "lokirl_effective_accuracy " in out["metrics"].text


class _Plane:
    """The data plane's read side, with one dropped frame of four."""

    plan = None
    accuracy = 90.0

    def frame_tally(self):
        from lokirl.core.metrics import Tally

        return Tally(arrived=4, on_time=3, dropped={"deadline": 1}, accuracy_sum=270.0)

    def sub_tally(self):
        from lokirl.core.metrics import Tally

        return Tally()

    def queue_lengths(self):
        return {}

    def active_workers(self):
        return 2


class _Runtime:
    plane = _Plane()
    demand_estimate = 4.0
    solves = reconfigurations = tick_errors = 1

    def status(self):
        return {"frames": self.plane.frame_tally().to_dict(), "accuracy": 90.0, "solves": 1}


def test_metrics_and_status_expose_effective_accuracy():
    from prometheus_client.parser import text_string_to_metric_families

    from lokirl.runtime.app import status_dict
    from lokirl.runtime.metrics import render_metrics

    body, _ = render_metrics(_Runtime())
    values = {
        s.name: s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
        if not s.labels
    }
    assert values["lokirl_system_accuracy"] == pytest.approx(90.0)
    assert values["lokirl_effective_accuracy"] == pytest.approx(67.5)  # 270 / 4
    # the outcome counters and the in-flight gauge sum to the arrivals
    outcomes = sum(
        s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
        if s.name == "lokirl_frames_total"
    )
    assert outcomes + values["lokirl_frames_in_flight"] == values["lokirl_frames_arrived_total"]
    st = status_dict(_Runtime())
    assert list(st) == ["frames", "accuracy", "effective_accuracy", "solves"]
    assert st["effective_accuracy"] == pytest.approx(67.5)
    assert st["frames"]["effective_accuracy"] == pytest.approx(67.5)
