#!/usr/bin/env bash
# Check a GPU node for lokirl and measure the demo models on it.
#
#   1. CUDA through torch: device name, memory, compute capability, a small matmul.
#   2. ONNX Runtime: the execution providers it offers, and which one a session on a
#      tiny exported model really gets (the CUDA provider falls back to CPU silently
#      when its libraries are missing), as onnxruntime and as a lokirl worker reports it.
#   3. `lokirl profile` of every variant of PIPELINE (traffic_analysis_cpu's six models)
#      on the device: latency per batch size (median, p95, p99 of RUNS runs), load time
#      from disk and from host memory, memory per variant, the device's memory; with
#      FP16=1 a second profile in half precision. The figures are printed next to the
#      estimates the GPU pipelines ship (scripts/build_builtin_pipelines.py).
#   4. The `gpu`-marked tests (CUDA data path, pinned copies, fp16, ONNX on CUDA).
#   5. A short live serve of the measured profile on the GPU (SERVE_S seconds of
#      traffic, SERVE_WORKERS workers sharing the GPUs): outcomes, latency, and the
#      device each load reported.
#
# Usage, from the repository root in the project's environment:
#     bash benchmarks/gpu_check.sh [OUT_DIR]
# Environment: PYTHON (default .venv/bin/python when present, else python3),
#     PIPELINE (traffic_analysis_cpu), LOAD_REPEATS (5), RUNS (50: timed batches per
#     size), BATCH_SIZES (1,2,4,8,16,32), INPUT_SIZE (64, the demo's), FP16 (1: also
#     profile in fp16; 0: not), SERVE_S (20; 0 skips the live serve), SERVE_WORKERS
#     (4), SERVE_SCALE (20:100: frames/s, step_600s rescaled), SERVE_SPEEDUP (30: the
#     600 s trace compressed), PORT (8765), CPU_SMOKE (1: without CUDA, run a small CPU profile so the
#     script's own path is exercised; 0: skip it).
# On a machine without CUDA every GPU part is skipped with a message, the parts
# skipped are listed at the end, and the script exits 0.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT="${1:-$(mktemp -d -t lokirl-gpu-check-XXXXXX)}"
mkdir -p "$OUT"
PIPELINE="${PIPELINE:-traffic_analysis_cpu}"
LOAD_REPEATS="${LOAD_REPEATS:-5}"
RUNS="${RUNS:-50}"
BATCH_SIZES="${BATCH_SIZES:-1,2,4,8,16,32}"
INPUT_SIZE="${INPUT_SIZE:-64}"
FP16="${FP16:-1}"
SERVE_S="${SERVE_S:-20}"
SERVE_WORKERS="${SERVE_WORKERS:-4}"
SERVE_SCALE="${SERVE_SCALE:-20:100}"
SERVE_SPEEDUP="${SERVE_SPEEDUP:-30}"
PORT="${PORT:-8765}"
CPU_SMOKE="${CPU_SMOKE:-1}"
SKIPPED=()
lokirl() { "$PYTHON" -c "import sys; from lokirl.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }

echo "== 1. CUDA through torch"
CUDA=$("$PYTHON" - <<'EOF'
import torch

print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}", flush=True)
if not torch.cuda.is_available():
    print("no CUDA device visible to torch (no GPU found): the GPU checks below are skipped",
          flush=True)
    raise SystemExit(0)
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}: {p.total_memory / 2**20:.0f} MiB, "
          f"compute capability {p.major}.{p.minor}, {p.multi_processor_count} SMs", flush=True)
x = torch.randn(2048, 2048, device="cuda")
torch.cuda.synchronize()
print(f"matmul on cuda:0 ok (checksum {float((x @ x).abs().mean()):.3f})", flush=True)
print("CUDA_OK", flush=True)
EOF
)
echo "$CUDA" | grep -v '^CUDA_OK$'
if echo "$CUDA" | grep -q '^CUDA_OK$'; then
    HAVE_CUDA=1
else
    HAVE_CUDA=0
    SKIPPED+=("1. CUDA device checks (no GPU found)")
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max \
        --format=csv || echo "nvidia-smi failed"
else
    echo "nvidia-smi: not installed"
fi

echo
echo "== 2. ONNX Runtime"
ONNX_OUT=$("$PYTHON" - "$OUT" "$HAVE_CUDA" 2>&1 <<'EOF'
import sys

out, have_cuda = sys.argv[1], sys.argv[2] == "1"
try:
    import onnxruntime as ort
except ImportError:
    print("onnxruntime not installed")
    raise SystemExit(0)
providers = ort.get_available_providers()
print(f"onnxruntime {ort.__version__}, device {ort.get_device()}, providers: {', '.join(providers)}")
if "CUDAExecutionProvider" not in providers:
    print("CUDAExecutionProvider not offered: ONNX models would run on the CPU "
          "(install the onnx-gpu extra, see pyproject.toml)")
if not have_cuda:
    print("no GPU found: the ONNX session check on CUDA is skipped")
    print("ONNX_SKIPPED")
    raise SystemExit(0)
import logging

import numpy as np
import torch

from lokirl.runtime.models import ModelSource, tiny_cnn
from lokirl.runtime.worker import Worker

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
path = f"{out}/tiny.onnx"
try:
    torch.onnx.export(tiny_cnn().eval(), torch.zeros(1, 3, 32, 32), path, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
except Exception as exc:  # the exporter needs the onnx package
    print(f"cannot export a test model ({type(exc).__name__}: {exc}); session check skipped")
    raise SystemExit(0)
if "CUDAExecutionProvider" in providers:
    sess = ort.InferenceSession(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 32, 32), np.float32)})
    got = sess.get_providers()
    ok = got[0] == "CUDAExecutionProvider"
    print(f"session providers: {', '.join(got)} -> {'CUDA used' if ok else 'FELL BACK TO CPU'}")
res = Worker(0, "cuda").load("onnx", ModelSource(path, input_size=32).to_dict(), warmup=[1, 8])
print(f"a lokirl GPU worker loading it reports: device {res['device']}, provider "
      f"{res['provider']}, warmed up at {res['warmed']} in {res['load_s']:.3f} s")
EOF
) || ONNX_OUT="$ONNX_OUT
the ONNX check FAILED"
echo "$ONNX_OUT" | grep -v '^ONNX_SKIPPED$'
if echo "$ONNX_OUT" | grep -q '^ONNX_SKIPPED$'; then
    SKIPPED+=("2. ONNX session on CUDA (no GPU found)")
fi

echo
echo "== 3. lokirl profile of ${PIPELINE}'s variants"
PROFILES=()
if [[ "$HAVE_CUDA" == 1 ]]; then
    PROFILE="$OUT/${PIPELINE}_gpu.yaml"
    lokirl profile --pipeline "$PIPELINE" --device cuda --accelerator gpu --in-process \
        --input-size "$INPUT_SIZE" --batch-sizes "$BATCH_SIZES" --runs "$RUNS" \
        --load-repeats "$LOAD_REPEATS" --out "$PROFILE"
    PROFILES+=("$PROFILE")
    if [[ "$FP16" == 1 ]]; then
        echo "-- the same in fp16"
        if lokirl profile --pipeline "$PIPELINE" --device cuda --accelerator gpu --in-process \
            --input-size "$INPUT_SIZE" --batch-sizes "$BATCH_SIZES" --runs "$RUNS" \
            --load-repeats "$LOAD_REPEATS" --fp16 --out "$OUT/${PIPELINE}_gpu_fp16.yaml"; then
            PROFILES+=("$OUT/${PIPELINE}_gpu_fp16.yaml")
        else
            echo "the fp16 profile FAILED"
        fi
    fi
else
    SKIPPED+=("3. profile on the GPU (no GPU found)")
    if [[ "$CPU_SMOKE" == 1 ]]; then
        echo "no GPU found: skipping the GPU profile; a small CPU run instead (CPU_SMOKE=0 skips it)"
        PROFILE="$OUT/traffic_analysis_cpu_smoke.yaml"
        lokirl profile --pipeline traffic_analysis_cpu --device cpu --in-process \
            --variants yolov5n,efficientnet-b0,genderNet --input-size "$INPUT_SIZE" \
            --batch-sizes 1,2 --runs 3 --load-repeats 1 --out "$PROFILE"
        PROFILES+=("$PROFILE")
        echo "-- --fp16 on the CPU is refused (expected):"
        if lokirl profile --pipeline traffic_analysis_cpu --device cpu --in-process --fp16 \
            --out "$OUT/refused.yaml" 2>&1; then
            echo "--fp16 on the CPU was NOT refused"
            exit 1
        fi
    else
        echo "no GPU found: skipping the GPU profile"
    fi
fi

for PROFILE in "${PROFILES[@]}"; do
    echo
    echo "== figures ($PROFILE)"
    "$PYTHON" - "$PROFILE" <<'EOF'
import sys

from lokirl.core.pipeline_config import load_pipeline, pipeline_from_file
from lokirl.runtime.profiler import tail_latencies

measured = pipeline_from_file(sys.argv[1])
tail = tail_latencies(sys.argv[1])
estimate = load_pipeline("traffic_analysis")  # GPU estimates (GTX 1080 Ti constants)
accel = measured.accelerators[0]
mem = measured.accelerator_memory_mb.get(accel)
print(f"accelerator {accel}: worker memory {'unknown' if mem is None else f'{mem:.0f} MiB'}")
head = ("variant", "load s", "host s", "MiB", "est load s", "est MiB")
print("{:<16} {:>8} {:>8} {:>9} {:>10} {:>9}".format(*head))
names = {e.name for e in estimate.variants()}
for v in measured.variants():
    est = estimate.variant(v.name) if v.name in names else None
    print("{:<16} {:>8.3f} {:>8.3f} {:>9} {:>10} {:>9}".format(
        v.name, v.load_time_s, v.load_time_host_s or float("nan"),
        "-" if v.memory_mb is None else f"{v.memory_mb:.1f}",
        "-" if est is None else f"{est.load_time_s:.3f}",
        "-" if est is None or est.memory_mb is None else f"{est.memory_mb:.0f}"))
print()
print("latency in ms per batch size: median / p95 / p99")
for v in measured.variants():
    rows = tail.get(v.name, {}).get(accel, {})
    cells = []
    for b in v.batch_sizes(accel):
        t = rows.get(b, {})
        cells.append(f"b{b} {v.latency(accel, b):.2f}/{t.get('p95', float('nan')):.2f}/"
                     f"{t.get('p99', float('nan')):.2f}")
    print(f"{v.name:<16} " + "  ".join(cells))
print("(est: the shipped GPU estimate at 640/native resolution; measured memory is at the "
      "profile's input size and largest batch)")
EOF
done

echo
echo "== 4. gpu-marked tests"
if [[ "$HAVE_CUDA" == 1 ]]; then
    "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/runtime/test_gpu_path.py \
        || echo "gpu tests FAILED"
else
    echo "no GPU found: the gpu-marked tests are skipped"
    SKIPPED+=("4. gpu-marked tests (no GPU found)")
fi

echo
echo "== 5. a short live serve on the GPU"
SERVE_ON=""
if [[ "$SERVE_S" != 0 && ${#PROFILES[@]} -gt 0 ]]; then
    if [[ "$HAVE_CUDA" == 1 ]]; then
        SERVE_ON=gpu
    elif [[ "$CPU_SMOKE" == 1 ]]; then
        # Exercise the serve path on the CPU smoke profile: a few seconds at a few frames/s.
        SERVE_ON=cpu
        SERVE_S=$(( SERVE_S < 6 ? SERVE_S : 6 ))
        SERVE_SCALE=2:6
        SERVE_WORKERS=3
        echo "no GPU found: a ${SERVE_S} s CPU serve of the smoke profile instead"
    fi
fi
if [[ -n "$SERVE_ON" ]] && "$PYTHON" -c "import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
    echo "port $PORT is taken by another server: live serve skipped (PORT=... picks another)"
    SERVE_ON=""
    SERVE_S=0
fi
if [[ -n "$SERVE_ON" ]]; then
    LOG="$OUT/serve.log"
    # Python itself in the background (not through the lokirl function, whose subshell
    # would take the kill below and leave the server running).
    "$PYTHON" -c "import sys; from lokirl.cli import main; sys.exit(main(sys.argv[1:]))" \
        serve --pipeline "${PROFILES[0]}" --workers "$SERVE_WORKERS" --port "$PORT" \
        --log-level WARNING >"$LOG" 2>&1 &
    SERVE_PID=$!
    trap 'kill "$SERVE_PID" 2>/dev/null || true' EXIT
    READY=0
    for _ in $(seq 1 180); do
        if "$PYTHON" -c "import httpx, sys; sys.exit(httpx.get('http://127.0.0.1:$PORT/readyz').status_code != 200)" 2>/dev/null; then
            READY=1
            break
        fi
        if ! kill -0 "$SERVE_PID" 2>/dev/null; then break; fi
        sleep 1
    done
    if [[ "$READY" == 1 ]]; then
        lokirl loadgen --trace step_600s --speedup "$SERVE_SPEEDUP" --rescale "$SERVE_SCALE" \
            --url "http://127.0.0.1:$PORT" --duration "$SERVE_S" --max-requests 100000 \
            --size "$INPUT_SIZE" --no-mlflow --json >"$OUT/loadgen.json" || echo "loadgen FAILED"
        "$PYTHON" - "$PORT" "$OUT/loadgen.json" <<'EOF'
import json
import sys

import httpx

status = httpx.get(f"http://127.0.0.1:{sys.argv[1]}/v1/status").json()
try:
    print("loadgen:", json.dumps(json.loads(open(sys.argv[2]).read()))[:1500])
except (OSError, ValueError):
    print("loadgen: no summary")
print(f"GPU share per worker: {status.get('gpus_per_worker')}; frames: {status['frames']}")
print(f"frame latency ms: {status['latency_ms']}")
for load in status.get("load_times", []):
    print(f"  worker {load['worker']}: {load['variant']} loaded in {load['load_s']:.3f} s "
          f"on {load.get('device')}")
EOF
    else
        echo "the server did not become ready; the end of its log:"
        tail -n 30 "$LOG"
    fi
    kill "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    trap - EXIT
else
    if [[ "$SERVE_S" == 0 ]]; then echo "live serve skipped"; else echo "no GPU found: live serve skipped"; fi
fi
if [[ "$SERVE_ON" != gpu ]]; then
    SKIPPED+=("5. live serve on the GPU ($([[ "$SERVE_S" == 0 ]] && echo "SERVE_S=0 or port taken" || echo "no GPU found"))")
fi

echo
if [[ ${#SKIPPED[@]} -gt 0 ]]; then
    echo "gpu_check: skipped:"
    printf '  %s\n' "${SKIPPED[@]}"
fi
echo "gpu_check: done; files in $OUT"
