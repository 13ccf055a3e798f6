"""Regenerate the built-in pipeline YAML files from the packaged profile data.

Run from the repository root: ``python scripts/build_builtin_pipelines.py``.
Reads ``lokirl/data/profiles/{loki,proteus}`` and writes the GPU pipelines
``lokirl/data/pipelines/{traffic_analysis,social_media,detect_classify_hetero}.yaml``
(the CPU demo ``traffic_analysis_cpu.yaml`` is written by ``lokirl profile``).
Latencies are the profiles' medians (50th percentile). The profiles carry no load
times or memory, so those are *estimates* from each model's published parameter
count and the constants below, labelled as such in every variant's
``load_source``; ``lokirl profile`` (or ``benchmarks/gpu_check.sh``) measures them.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "lokirl" / "data" / "profiles"
OUT = ROOT / "lokirl" / "data" / "pipelines"
BATCHES = tuple(range(1, 65))  # every profiled batch size (the allocator uses powers of two)
PLANNED_BATCHES = (1, 2, 4, 8, 16, 32, 64)  # lokirl.core.pipeline.DEFAULT_BATCH_SIZES

# Parameter counts in millions (published model cards: ultralytics YOLOv5 v6.0; Tan & Le
# 2019 EfficientNet, ImageNet heads; VGG-11/13/16/19 with a 2-class head for the
# genderNet_<depth> variants and Levi & Hassner 2015 for genderNet; OpenAI CLIP
# image + text towers).
PARAMS_M = {
    "yolov5n": 1.9,
    "yolov5s": 7.2,
    "yolov5m": 21.2,
    "yolov5l": 46.5,
    "yolov5x": 86.7,
    "efficientnet-b0": 5.3,
    "efficientnet-b1": 7.8,
    "efficientnet-b2": 9.2,
    "efficientnet-b3": 12.0,
    "efficientnet-b4": 19.0,
    "efficientnet-b5": 30.0,
    "efficientnet-b6": 43.0,
    "efficientnet-b7": 66.0,
    "genderNet": 11.0,
    "genderNet_11": 129.0,
    "genderNet_13": 129.0,
    "genderNet_16": 134.0,
    "genderNet_19": 139.0,
    "clip-vit-base-patch32": 151.0,
    "clip-vit-base-patch16": 150.0,
    "clip-vit-large-patch14": 428.0,
    "clip-vit-large-patch14-336": 428.0,
}

# ---------------------------------------------------------------- load-time and memory model
# Not measured on a GPU. load_time_s (a swap: weights read from disk, copied to the GPU,
# session ready) = INIT_S + weights_MB / DISK_READ_MBPS + weights_MB / H2D_MBPS;
# load_time_host_s (weights already in host memory) = INIT_S + weights_MB / H2D_MBPS.
BYTES_PER_PARAM = 4  # fp32 weights
INIT_S = 0.2  # session creation + one warm-up batch in a worker whose CUDA context exists
DISK_READ_MBPS = 2000.0  # NVMe sequential read, ~2 GB/s
H2D_MBPS = 10000.0  # PCIe 3.0 x16 effective host-to-device copy, ~10 GB/s (GTX 1080 Ti host)
# memory_mb (MiB) = weights + WORKSPACE_MIB + ACTIVATION_MIB[model] x planned batch, where
# the planned batch is the largest of PLANNED_BATCHES whose latency fits in SLO/2 (the
# allocator's default budget) on any GPU type of the pipeline.
WORKSPACE_MIB = 256.0  # ONNX Runtime CUDA arena growth + cuDNN workspace, per loaded variant
# Peak live activations per sample in MiB, fp32, at the model's usual input resolution.
# yolov5 (640x640) and efficientnet (native: b0 224, b1 240, b2 260, b3 300, b4 380, b5 456,
# b6 528, b7 600): measured on CPU with lokirl's own architectures (lokirl.runtime.models,
# torch-profiler peak of a batch-1 forward; it doubles at batch 2). VGG (224x224, about two
# 64x224x224 maps live), genderNet (Levi & Hassner, 227x227) and CLIP ViT (224 or 336):
# about twice the largest intermediate tensor, computed by hand.
ACTIVATION_MIB = {
    "yolov5n": 26.3,
    "yolov5s": 36.3,
    "yolov5m": 47.0,
    "yolov5l": 62.8,
    "yolov5x": 78.6,
    "efficientnet-b0": 15.9,
    "efficientnet-b1": 18.2,
    "efficientnet-b2": 21.3,
    "efficientnet-b3": 42.6,
    "efficientnet-b4": 68.2,
    "efficientnet-b5": 98.1,
    "efficientnet-b6": 175.2,
    "efficientnet-b7": 226.1,
    "genderNet": 3.0,  # conv1: 96 x 56 x 56 maps (1.2 MB) and its normalised copy
    "genderNet_11": 25.0,  # VGG: two 64 x 224 x 224 fp32 maps (12.3 MiB each)
    "genderNet_13": 25.0,
    "genderNet_16": 25.0,
    "genderNet_19": 25.0,
    "clip-vit-base-patch32": 2.0,  # 50 tokens: MLP hidden 50 x 3072
    "clip-vit-base-patch16": 6.0,  # 197 tokens: MLP hidden 197 x 3072, attention 12 x 197^2
    "clip-vit-large-patch14": 16.0,  # 257 tokens: MLP 257 x 4096, attention 16 x 257^2
    "clip-vit-large-patch14-336": 45.0,  # 577 tokens: attention 16 x 577^2 (20 MiB)
}
# Memory of one worker per accelerator type (MiB): the GPU each profile was taken on. Loki
# profiled on a GTX 1080 Ti (11 GiB); Proteus's "pascal" is its GTX 1080 Ti and its
# "ampere" a Tesla V100 (its profiling script relabels v100 as onnxruntime_gpu_ampere;
# the 16 GiB model assumed). The CUDA context (a few hundred MiB) is not subtracted. The
# Proteus "cpu" type has unknown memory and is left out.
DEVICE_MEMORY_MIB = {"gtx1080ti": 11264.0, "v100": 16384.0}
MIB = 2.0**20
LOAD_TIME_NOTE = (
    "load times and memory are estimates from published parameter counts (each variant's "
    "load_source; not measured on a GPU)"
)
SLO_MS = 250.0  # Loki's pipelines
HETERO_SLO_MS = 500.0


def weights_mb(name: str) -> float:
    """fp32 weight size in MB (10^6 bytes)."""
    return PARAMS_M[name] * BYTES_PER_PARAM


def load_time(name: str) -> float:
    """Estimated cold load (from disk) in seconds."""
    w = weights_mb(name)
    return round(INIT_S + w / DISK_READ_MBPS + w / H2D_MBPS, 3)


def load_time_host(name: str) -> float:
    """Estimated load with the weights already in host memory, in seconds."""
    return round(INIT_S + weights_mb(name) / H2D_MBPS, 3)


def planned_batch(tables: dict[str, dict[int, float]], slo_ms: float) -> int:
    """Largest planned batch whose latency fits in SLO/2 on any of the given tables."""
    fits = [
        b
        for table in tables.values()
        for b in PLANNED_BATCHES
        if b in table and table[b] <= slo_ms / 2
    ]
    return max(fits, default=1)


def memory_mib(name: str, batch: int) -> float:
    """Estimated GPU memory in MiB of the loaded variant at ``batch``."""
    weights = weights_mb(name) * 1e6 / MIB
    return round(weights + WORKSPACE_MIB + ACTIVATION_MIB[name] * batch, 1)


def load_fields(name: str, tables: dict[str, dict[int, float]], slo_ms: float) -> dict:
    """load_time_s, load_time_host_s, memory_mb and load_source of a GPU variant."""
    batch = planned_batch(tables, slo_ms)
    return {
        "load_time_s": load_time(name),
        "load_time_host_s": load_time_host(name),
        "memory_mb": memory_mib(name, batch),
        "load_source": (
            f"estimate: weights {weights_mb(name):.0f} MB ({PARAMS_M[name]:g} M fp32 params) "
            f"read at {DISK_READ_MBPS / 1000:g} GB/s from disk and copied at "
            f"{H2D_MBPS / 1000:g} GB/s host-to-device + {INIT_S:g} s init; memory = weights "
            f"+ {WORKSPACE_MIB:g} MiB workspace + {ACTIVATION_MIB[name]:g} MiB activations "
            f"x batch {batch} (not measured on a GPU)"
        ),
    }


def loki_latency() -> dict[str, dict[int, float]]:
    table: dict[str, dict[int, float]] = defaultdict(dict)
    with open(PROFILES / "loki" / "simulator_runtimes.csv") as fh:
        for row in csv.DictReader(fh):
            if row["Accel"] != "onnxruntime_gpu_pascal":
                continue
            b = int(row["batchsize"])
            if b in BATCHES:
                table[row["Model"]][b] = round(float(row["50th_pct"]), 3)
    return table


def loki_accuracy(pipeline: str, task: str) -> dict[str, float]:
    path = PROFILES / "loki" / "variants" / pipeline / f"{task}.csv"
    out = {}
    for line in path.read_text().split():
        name, acc = line.split(",")
        out[name] = round(float(acc), 3)
    return out


def loki_branching() -> dict[str, dict[str, float]]:
    out = {}
    with open(PROFILES / "loki" / "branching.csv") as fh:
        for row in csv.DictReader(fh):
            m = float(row["mult_factor"])
            out[row["model"]] = {
                "car_classification": round(m * float(row["car_classification"]), 4),
                "facial_recognition": round(m * float(row["facial_recognition"]), 4),
            }
    return out


def variant(name, acc, lat, branching=None):
    v = {"name": name, "accuracy": acc, **load_fields(name, {"gpu": lat[name]}, SLO_MS)}
    if branching:
        v["branching"] = branching
    v["latency_ms"] = {"gpu": dict(sorted(lat[name].items()))}
    return v


def traffic_analysis() -> dict:
    lat, br = loki_latency(), loki_branching()
    det = loki_accuracy("traffic_analysis", "object_detection")
    car = loki_accuracy("traffic_analysis", "car_classification")
    face = loki_accuracy("traffic_analysis", "facial_recognition")
    car.pop("efficientnet-b7")  # listed accuracy but no latency rows: cannot be profiled
    return {
        "name": "traffic_analysis",
        "description": (
            "Loki's traffic analysis pipeline: yolov5 detector feeding an efficientnet car "
            "classifier and a genderNet face classifier. Profiles: Loki (HPDC 2024) median "
            "latencies on a GTX 1080 Ti, ONNX Runtime; yolov5s/m accuracies corrected "
            "(COCO mAP n 28.0, s 37.4, m 45.4, l 49.0, x 50.7); efficientnet-b7 dropped "
            f"(no latency rows); {LOAD_TIME_NOTE}."
        ),
        "slo_ms": int(SLO_MS),
        "accelerator_memory_mb": {"gpu": DEVICE_MEMORY_MIB["gtx1080ti"]},
        "tasks": [
            {
                "name": "object_detection",
                "children": ["car_classification", "facial_recognition"],
                "variants": [variant(n, a, lat, br[n]) for n, a in det.items()],
            },
            {
                "name": "car_classification",
                "variants": [variant(n, a, lat) for n, a in car.items()],
            },
            {
                "name": "facial_recognition",
                "variants": [variant(n, a, lat) for n, a in face.items()],
            },
        ],
    }


def social_media() -> dict:
    lat = loki_latency()
    det = loki_accuracy("social_media", "object_detection")
    cap = loki_accuracy("social_media", "image_captioning")
    return {
        "name": "social_media",
        "description": (
            "Loki's social media pipeline: every frame goes to a yolov5 detector and a CLIP "
            "captioner (two roots; Loki's pass-through source and sink are left out). "
            f"Profiles: Loki (HPDC 2024) median latencies, GTX 1080 Ti; {LOAD_TIME_NOTE}."
        ),
        "slo_ms": int(SLO_MS),
        "accelerator_memory_mb": {"gpu": DEVICE_MEMORY_MIB["gtx1080ti"]},
        "tasks": [
            {"name": "object_detection", "variants": [variant(n, a, lat) for n, a in det.items()]},
            {"name": "image_captioning", "variants": [variant(n, a, lat) for n, a in cap.items()]},
        ],
    }


def hetero() -> dict:
    """Detector -> classifier on three accelerator types with different profiles (Proteus)."""
    lat: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    acc: dict[str, float] = {}
    accel_names = {
        "onnxruntime_gpu_pascal": "pascal",
        "onnxruntime_gpu_ampere": "ampere",
        "onnxruntime_cpu": "cpu",
    }
    with open(PROFILES / "proteus" / "aggregate_profiled.csv") as fh:
        for row in csv.DictReader(fh):
            b = int(row["batchsize"])
            if b in BATCHES:
                lat[row["Model"]][accel_names[row["Accel"]]][b] = round(float(row["50th_pct"]), 3)
                acc[row["Model"]] = round(float(row["Normalized_Accuracy"]), 3)
    br = loki_branching()

    def v(name, branching=None):
        gpu_tables = {a: lat[name][a] for a in ("pascal", "ampere") if a in lat[name]}
        out = {"name": name, "accuracy": acc[name], **load_fields(name, gpu_tables, HETERO_SLO_MS)}
        if branching:
            out["branching"] = branching
        out["latency_ms"] = {a: dict(sorted(t.items())) for a, t in lat[name].items()}
        return out

    dets = ["yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x"]
    clss = [
        "efficientnet-b0",
        "efficientnet-b1",
        "efficientnet-b3",
        "efficientnet-b5",
        "efficientnet-b7",
    ]
    return {
        "name": "detect_classify_hetero",
        "description": (
            "Heterogeneous test pipeline: yolov5 detector feeding an efficientnet classifier, "
            "profiled on three accelerator types (pascal, ampere, cpu) with different numbers "
            "(Proteus, ASPLOS 2024, median latencies; accuracies from its normalised column). "
            f"Branching: Loki's car share of detected objects; {LOAD_TIME_NOTE}."
        ),
        "slo_ms": int(HETERO_SLO_MS),
        "accelerator_memory_mb": {
            "pascal": DEVICE_MEMORY_MIB["gtx1080ti"],
            "ampere": DEVICE_MEMORY_MIB["v100"],
        },
        "tasks": [
            {
                "name": "object_detection",
                "children": ["classification"],
                "variants": [v(n, {"classification": br[n]["car_classification"]}) for n in dets],
            },
            {"name": "classification", "variants": [v(n) for n in clss]},
        ],
    }


class _Flow(dict):
    """A mapping written in YAML flow style (one line)."""


yaml.SafeDumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def dump(spec: dict) -> str:
    if "accelerator_memory_mb" in spec:
        spec["accelerator_memory_mb"] = _Flow(spec["accelerator_memory_mb"])
    for task in spec["tasks"]:
        for v in task["variants"]:
            v["latency_ms"] = {a: _Flow(t) for a, t in v["latency_ms"].items()}
            if "branching" in v:
                v["branching"] = _Flow(v["branching"])
    return yaml.safe_dump(spec, sort_keys=False, width=100)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for spec in (traffic_analysis(), social_media(), hetero()):
        path = OUT / f"{spec['name']}.yaml"
        header = "# Generated by scripts/build_builtin_pipelines.py from lokirl/data/profiles.\n"
        path.write_text(header + dump(spec))
        print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
