#!/usr/bin/env bash
# Check a GPU node for lokirl and measure the demo models on it.
#
#   1. CUDA through torch: device name, memory, compute capability, a small matmul.
#   2. ONNX Runtime: the execution providers it offers, and which one a session on a
#      tiny exported model really gets (the CUDA provider falls back to CPU silently
#      when its libraries are missing).
#   3. `lokirl profile` of traffic_analysis_cpu's six models on the device: latency per
#      batch size, load time from disk and from host memory, memory per variant, the
#      device's memory; then the figures next to the estimates the GPU pipelines ship
#      (scripts/build_builtin_pipelines.py), to check those estimates' constants.
#
# Usage, from the repository root in the project's environment:
#     bash benchmarks/gpu_check.sh [OUT_DIR]
# Environment: PYTHON (default .venv/bin/python when present, else python3),
#     LOAD_REPEATS (5), BATCH_SIZES (1,2,4,8,16,32), INPUT_SIZE (64, the demo's),
#     CPU_SMOKE (1: without CUDA, run a small CPU profile so the script's own path is
#     exercised; 0: skip it).
# On a machine without CUDA every GPU part is skipped with a message and the script
# exits 0.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT="${1:-$(mktemp -d -t lokirl-gpu-check-XXXXXX)}"
mkdir -p "$OUT"
LOAD_REPEATS="${LOAD_REPEATS:-5}"
BATCH_SIZES="${BATCH_SIZES:-1,2,4,8,16,32}"
INPUT_SIZE="${INPUT_SIZE:-64}"
CPU_SMOKE="${CPU_SMOKE:-1}"
lokirl() { "$PYTHON" -c "import sys; from lokirl.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }

echo "== 1. CUDA through torch"
CUDA=$("$PYTHON" - <<'EOF'
import torch

print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}", flush=True)
if not torch.cuda.is_available():
    print("no CUDA device visible to torch: the GPU checks below are skipped", flush=True)
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
if echo "$CUDA" | grep -q '^CUDA_OK$'; then HAVE_CUDA=1; else HAVE_CUDA=0; fi
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max \
        --format=csv || echo "nvidia-smi failed"
else
    echo "nvidia-smi: not installed"
fi

echo
echo "== 2. ONNX Runtime"
"$PYTHON" - "$OUT" "$HAVE_CUDA" <<'EOF'
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
    print("CUDAExecutionProvider not offered: ONNX models would run on the CPU")
    raise SystemExit(0)
if not have_cuda:
    print("CUDAExecutionProvider offered but torch sees no GPU: session check skipped")
    raise SystemExit(0)
import numpy as np
import torch

from lokirl.runtime.models import tiny_cnn

path = f"{out}/tiny.onnx"
try:
    torch.onnx.export(tiny_cnn().eval(), torch.zeros(1, 3, 32, 32), path, dynamo=False)
except Exception as exc:  # the exporter needs the onnx package
    print(f"cannot export a test model ({type(exc).__name__}: {exc}); session check skipped")
    raise SystemExit(0)
sess = ort.InferenceSession(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 32, 32), np.float32)})
got = sess.get_providers()
ok = got[0] == "CUDAExecutionProvider"
print(f"session providers: {', '.join(got)} -> {'CUDA used' if ok else 'FELL BACK TO CPU'}")
EOF

echo
echo "== 3. lokirl profile of traffic_analysis_cpu's models"
if [[ "$HAVE_CUDA" == 1 ]]; then
    PROFILE="$OUT/traffic_analysis_gpu.yaml"
    lokirl profile --pipeline traffic_analysis_cpu --device cuda --accelerator gpu --in-process \
        --input-size "$INPUT_SIZE" --batch-sizes "$BATCH_SIZES" --load-repeats "$LOAD_REPEATS" \
        --out "$PROFILE"
elif [[ "$CPU_SMOKE" == 1 ]]; then
    echo "no CUDA: skipping the GPU profile; a small CPU run instead (CPU_SMOKE=0 skips it)"
    PROFILE="$OUT/traffic_analysis_cpu_smoke.yaml"
    lokirl profile --pipeline traffic_analysis_cpu --device cpu --in-process \
        --variants yolov5n,efficientnet-b0,genderNet --input-size "$INPUT_SIZE" \
        --batch-sizes 1,2 --repeats 2 --load-repeats 1 --out "$PROFILE"
else
    echo "no CUDA: skipping the GPU profile"
    PROFILE=""
fi

if [[ -n "$PROFILE" ]]; then
    echo
    echo "== figures ($PROFILE)"
    "$PYTHON" - "$PROFILE" <<'EOF'
import sys

from lokirl.core.pipeline_config import load_pipeline, pipeline_from_file

measured = pipeline_from_file(sys.argv[1])
estimate = load_pipeline("traffic_analysis")  # GPU estimates (GTX 1080 Ti constants)
accel = measured.accelerators[0]
mem = measured.accelerator_memory_mb.get(accel)
print(f"accelerator {accel}: worker memory {'unknown' if mem is None else f'{mem:.0f} MiB'}")
head = ("variant", "load s", "host s", "MiB", "lat b1 ms", "lat max ms", "est load s", "est MiB")
print("{:<16} {:>8} {:>8} {:>9} {:>10} {:>11} {:>10} {:>9}".format(*head))
names = {e.name for e in estimate.variants()}
for v in measured.variants():
    sizes = v.batch_sizes(accel)
    est = estimate.variant(v.name) if v.name in names else None
    print("{:<16} {:>8.3f} {:>8.3f} {:>9} {:>10.2f} {:>11.2f} {:>10} {:>9}".format(
        v.name, v.load_time_s, v.load_time_host_s or float("nan"),
        "-" if v.memory_mb is None else f"{v.memory_mb:.1f}",
        v.latency(accel, 1), v.latency(accel, sizes[-1]),
        "-" if est is None else f"{est.load_time_s:.3f}",
        "-" if est is None or est.memory_mb is None else f"{est.memory_mb:.0f}"))
print("(est: the shipped GPU estimate at 640/native resolution; measured memory is at the "
      "profile's input size and largest batch)")
EOF
fi
echo
echo "gpu_check: done; files in $OUT"
