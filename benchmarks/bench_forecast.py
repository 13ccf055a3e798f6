"""Per-step CPU cost (update + predict) of every registered forecaster.

Run: python benchmarks/bench_forecast.py [--steps N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lokirl.forecast import NAMES, make_forecaster

HORIZONS = (1, 5, 10, 30, 60)


def bench(name: str, rates: np.ndarray) -> float:
    f = make_forecaster(name)
    state = f.init_state()
    for r in rates[:100]:  # warm up, fill windows
        state = f.update(state, float(r))
    t0 = time.perf_counter()
    for r in rates:
        state = f.update(state, float(r))
        f.predict(state, HORIZONS)
    return (time.perf_counter() - t0) / len(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rates = np.random.default_rng(0).poisson(400, args.steps).astype(float)
    print(f"{'forecaster':<12}{'us/step (update+predict, 5 horizons)':>40}")
    for name in NAMES:
        print(f"{name:<12}{bench(name, rates) * 1e6:>40.1f}")


if __name__ == "__main__":
    main()
