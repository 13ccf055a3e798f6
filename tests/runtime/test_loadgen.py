"""Open-loop replay (no Ray, no HTTP): outcomes counted as the simulator counts frames."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from lokirl.runtime.loadgen import bounded_arrivals, replay


def test_replay_counts_every_request():
    outcomes = ["on_time", "late", "dropped"]

    async def send(i: int) -> dict:
        await asyncio.sleep(0.001)
        if i == 5:
            raise ConnectionError("boom")
        return {"outcome": outcomes[i % 3], "reason": "deadline", "accuracy": 80.0}

    arrivals = bounded_arrivals(np.linspace(0, 0.2, 30), max_requests=20, max_duration_s=1.0)
    res = asyncio.run(replay(arrivals, send))
    f = res.frames
    assert res.sent == 20 and f.conserved and f.in_flight == 0
    assert f.arrived == f.on_time + f.late + f.dropped_total
    assert f.dropped["error:ConnectionError"] == 1
    assert f.accuracy == 80.0
    d = res.to_dict()
    assert d["sent"] == 20 and d["accuracy_source"] == "profile"


def test_replay_caps_in_flight():
    async def send(i: int) -> dict:
        await asyncio.sleep(0.05)
        return {"outcome": "on_time", "accuracy": 100.0}

    res = asyncio.run(replay(np.zeros(10), send, max_in_flight=4))
    assert res.frames.dropped["client_overload"] == 6
    assert res.frames.on_time == 4


def test_rejected_requests_are_not_frames():
    async def send(i: int) -> dict:
        if i % 2:
            return {"outcome": "rejected", "reason": "http_400: image too large"}
        return {"outcome": "on_time", "accuracy": 90.0}

    res = asyncio.run(replay(np.zeros(6), send))
    assert res.frames.arrived == 3 and res.frames.conserved
    assert res.rejected == {"http_400: image too large": 3}
    assert res.to_dict()["rejected"] == 3 and res.frames.dropped_total == 0


class _FakeServer:
    """A loopback HTTP server: JSON status of a lokirl ingress (or HTML), infer answers 503."""

    def __init__(self, lokirl: bool, status: dict | None = None):
        import http.server
        import json
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code, body, ctype="application/json"):
                data = body.encode()
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                fake.gets += 1
                if lokirl:
                    self._reply(200, json.dumps(status or {"pipeline": "tiny"}))
                else:
                    self._reply(200, "<html>hello</html>", "text/html")

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self._reply(503, json.dumps({"outcome": "dropped", "reason": "deadline"}))

        fake = self
        self.gets = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _loadgen(url, *extra):
    from lokirl.cli import main

    return main(
        [
            "loadgen",
            "--trace",
            "step_600s",
            "--url",
            url,
            "--max-requests",
            "5",
            "--duration",
            "2",
            "--no-mlflow",
            *extra,
        ]
    )


def test_loadgen_json_is_strict_when_nothing_is_served(capsys):
    import json

    with _FakeServer(lokirl=True) as srv:
        assert _loadgen(srv.url, "--json", "--speedup", "50") == 0
    out = capsys.readouterr().out

    def no_nan(name):
        raise AssertionError(f"non-JSON constant {name}")

    summary = json.loads(out, parse_constant=no_nan)
    assert summary["on_time"] == 0 and summary["dropped"] == summary["sent"] > 0
    assert summary["latency_ms_p50"] is None or summary["latency_ms_p50"] >= 0


def test_loadgen_refuses_a_server_that_is_not_lokirl(capsys):
    with _FakeServer(lokirl=False) as srv:
        assert _loadgen(srv.url) == 2
    assert "not lokirl serve" in capsys.readouterr().err


def test_loadgen_rejects_bad_options_before_sending(capsys):
    assert _loadgen("http://127.0.0.1:9", "--size", "0") == 2
    assert "--size" in capsys.readouterr().err
    assert _loadgen("http://127.0.0.1:9", "--max-in-flight", "0") == 2
    assert "--max-in-flight" in capsys.readouterr().err


def test_loadgen_refuses_a_trace_too_large_to_draw(capsys, tmp_path):
    from lokirl.cli import main

    huge = tmp_path / "huge.csv"
    huge.write_text("time,rate\n0,1e9\n1,1e9\n")  # drawing 2e9 arrival times: ~16 GB
    args = ["loadgen", "--trace", str(huge), "--url", "http://127.0.0.1:9", "--no-mlflow"]
    assert main(args) == 2
    note, error = capsys.readouterr().err.strip().split("\n")  # how it was read, the error
    assert "read as a rate file" in note and "about 2,000,000,000 requests" in note
    assert "2e+09 frames" in error and "--scale" in error


def test_reserved_stdout_carries_only_the_json():
    """What a library prints to stdout after the reservation goes to stderr."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from lokirl.commands.stdout import reserve_stdout_for_json, strict_json\n"
        "out = reserve_stdout_for_json()\n"
        "print('library notice')\n"
        "os.write(1, b'native notice\\n')\n"
        "print(strict_json({'ratio': float('nan'), 'n': [1.5, float('inf')]}), file=out)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # show an unclosed stream at exit
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"ratio": None, "n": [1.5, None]}
    assert "library notice" in r.stderr and "native notice" in r.stderr
    assert "ResourceWarning" not in r.stderr  # the reserved stream is closed at exit


def test_loadgen_reads_a_trace_by_its_column(capsys, tmp_path):
    """A timestamp CSV with several columns: refused without --column, replayed with it."""
    from lokirl.cli import main
    from lokirl.commands.loadgen import load_arrivals

    log = tmp_path / "log.csv"
    log.write_text("user,ts\n" + "".join(f"u{i},{i * 0.5:.1f}\n" for i in range(20)))
    args = ["loadgen", "--trace", str(log), "--url", "http://127.0.0.1:9", "--no-mlflow"]
    assert main(args) == 2
    assert "--column" in capsys.readouterr().err
    arrivals, _ = load_arrivals(str(log), 1.0, None, 0, "timestamps", "ts")
    assert len(arrivals) == 20 and arrivals[-1] == 9.5
    note = capsys.readouterr().err
    assert f"loadgen: {log}: read as a timestamp CSV (one request a row), column 'ts'" in note
    assert "20 requests in 9.5 s (from 0 s to 9.5 s)" in note


def test_loadgen_rescale_auto_maps_the_trace_onto_the_servers_range(capsys):
    auto = {"lo": 3.0, "hi": 20.0, "unit": "full_accuracy"}
    with _FakeServer(lokirl=True, status={"pipeline": "tiny", "auto_load": auto}) as srv:
        assert _loadgen(srv.url, "--rescale", "auto", "--speedup", "50") == 0
    assert srv.gets == 2  # the status once before the replay (range and pipeline), once after
    out = capsys.readouterr().out
    assert "rescale auto: 3..20 frames/s" in out and "sent 5" in out
    # a server that does not report its range: a clear error before anything is sent
    with _FakeServer(lokirl=True) as srv:
        assert _loadgen(srv.url, "--rescale", "auto") == 2
    err = capsys.readouterr().err
    assert "does not report its load range" in err and "--rescale 5:20" in err
