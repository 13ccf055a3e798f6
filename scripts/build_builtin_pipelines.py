"""Regenerate the built-in pipeline YAML files from the packaged profile data.

Run from the repository root: ``python scripts/build_builtin_pipelines.py``.
Reads ``lokirl/data/profiles/{loki,proteus}`` and writes
``lokirl/data/pipelines/*.yaml``. Latencies are the profiles' medians (50th
percentile); load times are estimates (see LOAD_TIME_NOTE) until measured with
``lokirl profile``.
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

# Parameter counts in millions (published model cards); used only for load-time estimates.
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
LOAD_TIME_NOTE = "load_time_s estimated as 0.3 s + 20 ms per million parameters (not measured)"


def load_time(name: str) -> float:
    return round(0.3 + 0.02 * PARAMS_M[name], 3)


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
    v = {"name": name, "accuracy": acc, "load_time_s": load_time(name)}
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
        "slo_ms": 250,
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
        "slo_ms": 250,
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
        out = {"name": name, "accuracy": acc[name], "load_time_s": load_time(name)}
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
        "slo_ms": 500,
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
