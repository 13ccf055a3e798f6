"""Training of the learned forecaster.

Data: seeded synthetic families (:mod:`lokirl.traces.generators`) drawn as
Poisson counts per second, plus the bundled traces (minus any held out). Split
by time: in every series, windows whose forecast targets lie in the first
``1 - val_frac`` of the series train, windows whose decision time lies after
that point validate. Loss: Huber on the log of the mean rate over the next
``h`` s for the mean head, pinball at ``quantile`` for the upper head.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from lokirl.forecast.model import Artifact, ModelConfig, Norm, build_net, features, reference
from lokirl.traces import RateSeries, as_rates, bundled_trace, generate, resample, speedup

#: Bundled traces used for training by default (the raw gpt2 file is a subset of zipf_exponential).
TRAIN_TRACES: tuple[str, ...] = (
    "twitter_medium_normal_load",
    "twitter_zipf_exponential",
    "twitter_zipf_exponential_bursty",
    "twitter_zipf_flat_bursty",
    "diurnal_600s",
    "step_600s",
)
#: The bundled traces the frozen ``test`` suite plays. Left out of training by default
#: (``TrainConfig.holdout``), so that a forecaster trained here (the bundled ``default.pt``
#: among them) may be used by a controller evaluated on that suite.
TEST_TRACES: tuple[str, ...] = (
    "twitter_medium_normal_load",
    "twitter_zipf_exponential",
    "twitter_zipf_exponential_bursty",
    "twitter_zipf_flat_bursty",
)
#: Families mixed into the synthetic training set, with their sampling weights.
TRAIN_FAMILIES: dict[str, float] = {
    "mixture": 3.0,
    "mmpp": 2.0,
    "bursts": 2.0,
    "diurnal": 1.0,
    "step": 1.0,
    "spikes": 1.0,
    "random_walk": 1.0,
    "ramp": 0.5,
}
#: Families whose parameters are drawn at random per series (``diverse``), with weights.
DIVERSE_FAMILIES: dict[str, float] = {
    "mmpp": 2.0,
    "bursts": 1.0,
    "step": 1.0,
}


def _diverse_params(family: str, rng: np.random.Generator) -> dict[str, Any]:
    """Random parameters for a family of :data:`DIVERSE_FAMILIES`."""
    lo = float(np.exp(rng.uniform(np.log(30), np.log(600))))
    hi = lo * float(np.exp(rng.uniform(np.log(1.5), np.log(10))))
    noise = float(rng.uniform(0.0, 0.15))
    if family == "mmpp":  # on/off with sojourns from a few seconds to minutes
        return {
            "low": lo,
            "high": hi,
            "mean_low_s": float(np.exp(rng.uniform(np.log(5), np.log(120)))),
            "mean_high_s": float(np.exp(rng.uniform(np.log(5), np.log(120)))),
            "noise": noise,
        }
    if family == "bursts":
        return {
            "base": lo,
            "peak": hi,
            "burst_rate_per_min": float(rng.uniform(0.3, 4.0)),
            "mean_burst_s": float(np.exp(rng.uniform(np.log(2), np.log(60)))),
            "noise": noise,
        }
    k = int(rng.integers(2, 8))
    levels = tuple(float(x) for x in np.exp(rng.uniform(np.log(lo), np.log(hi), k)))
    return {"levels": levels, "noise": noise}


@dataclass(frozen=True)
class TrainConfig:
    """How to train the learned forecaster.

    Attributes:
        model: Network shape.
        seed: Seed of data generation and initialisation.
        n_synthetic: Number of generated series.
        synthetic_s: Length of each generated series in seconds.
        traces: Bundled trace names (or file paths) added to the data.
        trace_repeats: How many Poisson re-draws of each bundled trace to add
            (the first copy is the trace itself).
        holdout: Bundled names left out (default: :data:`TEST_TRACES`, the frozen test
            suite's; the held-out evaluation holds out one fold of them instead).
        noise_max: Largest log-sd of the multiplicative noise added per second to
            generated series (drawn uniformly from 0 to it per series).
        diverse_frac: Share of generated series drawn from :data:`DIVERSE_FAMILIES`
            with random parameters (sojourns, burst lengths, levels) instead of
            the families' defaults.
        speedup_max: Generated series are played at a speed drawn log-uniformly
            in ``[1 / speedup_max, speedup_max]`` (1 keeps their time scale).
        val_frac: Share of each series' time kept for validation.
        stride: Step between windows of generated series.
        epochs: Passes over the training windows.
        batch_size: Windows per gradient step.
        lr: Adam learning rate (cosine-decayed to 5% of it).
        weight_decay: Adam weight decay.
        huber_delta: Huber loss threshold in log space.
        mean_loss: Loss of the mean head: ``huber`` (on the log error) or ``mape``
            (``|exp(log error) - 1|``, the relative error the evaluation scores).
        threads: Torch CPU threads.

    """

    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    n_synthetic: int = 120
    synthetic_s: int = 600
    traces: tuple[str, ...] = TRAIN_TRACES
    trace_repeats: int = 8
    holdout: tuple[str, ...] = TEST_TRACES
    noise_max: float = 0.3
    diverse_frac: float = 0.5
    speedup_max: float = 2.0
    val_frac: float = 0.2
    stride: int = 2
    epochs: int = 12
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    huber_delta: float = 0.3
    mean_loss: str = "mape"
    threads: int = 1


def training_series(cfg: TrainConfig, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Build the training series as ``(per-second counts, stride)`` pairs."""
    out: list[tuple[np.ndarray, int]] = []
    names = list(TRAIN_FAMILIES)
    weights = np.array([TRAIN_FAMILIES[n] for n in names])
    dnames = list(DIVERSE_FAMILIES)
    dweights = np.array([DIVERSE_FAMILIES[n] for n in dnames])
    for _ in range(cfg.n_synthetic):
        speed = 1.0
        if cfg.speedup_max > 1:
            speed = math.exp(rng.uniform(-math.log(cfg.speedup_max), math.log(cfg.speedup_max)))
        length = int(math.ceil(cfg.synthetic_s * speed)) + 1
        if rng.random() < cfg.diverse_frac:
            family = str(rng.choice(dnames, p=dweights / dweights.sum()))
            series = generate(family, length, rng, **_diverse_params(family, rng))
        else:
            family = str(rng.choice(names, p=weights / weights.sum()))
            series = generate(family, length, rng)
        if speed != 1.0:  # play ``speed`` times faster at the same rate level
            fast = speedup(series, speed)
            series = resample(RateSeries(fast.rates / speed, bin_s=fast.bin_s), 1.0)
        rates = series.rates[: cfg.synthetic_s]
        scale = math.exp(rng.uniform(math.log(0.2), math.log(3.0)))
        sigma = rng.uniform(0.0, cfg.noise_max)
        noise = rng.lognormal(-0.5 * sigma**2, sigma, size=rates.shape)
        out.append((rng.poisson(rates * scale * noise).astype(float), cfg.stride))
    for name in cfg.traces:
        if name in cfg.holdout:
            continue
        series = as_rates(bundled_trace(name)).rates
        out.append((np.asarray(series, dtype=float), 1))
        for _ in range(max(0, cfg.trace_repeats - 1)):
            scale = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
            out.append((rng.poisson(series * scale).astype(float), 1))
    return out


def make_windows(
    rates: np.ndarray, cfg: ModelConfig, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut decision points ``times`` of a series into model windows and targets.

    Windows that reach before the start are padded with the first value (as the
    forecaster does online).

    Returns:
        ``(windows (N, window), targets (N, H) log1p mean rates, mask (N, H))``.

    """
    w = cfg.window
    padded = np.concatenate([np.full(w - 1, rates[0]), rates])
    idx = times[:, None] + np.arange(w)[None, :]
    windows = padded[idx]
    csum = np.concatenate([[0.0], np.cumsum(rates)])
    n = len(rates)
    targets = np.zeros((len(times), len(cfg.horizons_s)))
    mask = np.zeros_like(targets, dtype=bool)
    for j, h in enumerate(cfg.horizons_s):
        ok = times + h <= n - 1
        end = np.minimum(times + 1 + h, n)
        targets[:, j] = np.log1p((csum[end] - csum[np.minimum(times + 1, n)]) / h)
        mask[:, j] = ok
    return windows, targets, mask


def build_dataset(cfg: TrainConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Make train and validation windows (time-based split within each series)."""
    m = cfg.model
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("xt", "yt", "mt", "xv", "yv", "mv")}
    for rates, stride in training_series(cfg, rng):
        n = len(rates)
        split = int(n * (1 - cfg.val_frac))
        start = min(m.ref_s if m.ref == "mean" else 1, n - 1)
        t_all = np.arange(start, n - 1, stride)
        tr = t_all[t_all + 1 < split]
        va = t_all[t_all >= split]
        for t_idx, (kx, ky, km) in ((tr, ("xt", "yt", "mt")), (va, ("xv", "yv", "mv"))):
            if len(t_idx) == 0:
                continue
            x, y, mk = make_windows(rates, m, t_idx)
            if t_idx is tr:  # training targets must end before the split
                for j, h in enumerate(m.horizons_s):
                    mk[:, j] &= t_idx + h < split
            parts[kx].append(x)
            parts[ky].append(y)
            parts[km].append(mk)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _losses(
    out: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    q: float,
    delta: float,
    mean_loss: str = "huber",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-head loss and upper-head pinball loss, both on ``log1p`` targets.

    The pinball loss at ``q`` is applied to the upper head with error
    ``target - upper``: under-forecasts cost ``q`` per unit, over-forecasts ``1 - q``.
    """
    n_h = y.shape[1]
    if mean_loss == "mape":
        point = torch.abs(torch.expm1((out[:, :n_h] - y).clamp(max=3.0)))
    else:
        point = torch.nn.functional.huber_loss(out[:, :n_h], y, reduction="none", delta=delta)
    up_err = y - out[:, n_h:]
    pinball = torch.maximum(q * up_err, (q - 1) * up_err)
    denom = mask.sum().clamp(min=1)
    return (point * mask).sum() / denom, (pinball * mask).sum() / denom


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the artifact, per-epoch history and timings."""

    artifact: Artifact
    history: list[dict[str, float]]
    n_train: int
    n_val: int
    seconds: float


def train(
    cfg: TrainConfig,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    dataset: dict[str, np.ndarray] | None = None,
) -> TrainResult:
    """Train a forecaster and return its artifact.

    Args:
        cfg: Training configuration.
        on_epoch: Called after each epoch with ``(epoch, metrics)``; metric keys
            are namespaced (``train/loss``, ``val/mean_loss``...).
        on_step: Called after each batch with ``(step, total_steps)``.
        dataset: Precomputed :func:`build_dataset` output (tests, sweeps).

    """
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = dataset if dataset is not None else build_dataset(cfg, rng)
    m = cfg.model
    ref_train = reference(data["xt"], m)
    norm = Norm(level_mu=float(ref_train.mean()), level_sd=float(ref_train.std() + 1e-6))

    def tensors(prefix: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, ref = features(data["x" + prefix], m, norm)
        y = data["y" + prefix] - ref[:, None]
        return (
            torch.from_numpy(x),
            torch.from_numpy(y.astype(np.float32)),
            torch.from_numpy(data["m" + prefix].astype(np.float32)),
        )

    xt, yt, mt = tensors("t")
    xv, yv, mv = tensors("v") if len(data["xv"]) else (xt[:0], yt[:0], mt[:0])
    net = build_net(m)
    if m.ref == "ewma":  # start from the EWMA forecast: the net learns a correction
        last = [mod for mod in net.modules() if isinstance(mod, torch.nn.Linear)][-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(xt)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=cfg.lr * 0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        sums = np.zeros(2)
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            hub, pin = _losses(
                net(xt[idx]), yt[idx], mt[idx], m.quantile, cfg.huber_delta, cfg.mean_loss
            )
            loss = hub + pin
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums += (float(hub.detach()), float(pin.detach()))
            step += 1
            if on_step is not None:
                on_step(step, total)
        metrics = {
            "train/mean_loss": float(sums[0] / steps_per_epoch),
            "train/upper_pinball": float(sums[1] / steps_per_epoch),
            "train/loss": float(sums.sum() / steps_per_epoch),
            "train/lr": sched.get_last_lr()[0],
        }
        if len(xv):
            net.eval()
            with torch.inference_mode():
                hub, pin = _losses(net(xv), yv, mv, m.quantile, cfg.huber_delta, cfg.mean_loss)
            metrics |= {"val/mean_loss": float(hub), "val/upper_pinball": float(pin)}
            metrics["val/loss"] = metrics["val/mean_loss"] + metrics["val/upper_pinball"]
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    meta: dict[str, Any] = {
        "train_config": _plain(asdict(cfg)),
        "final": history[-1] if history else {},
        "n_train": int(n),
        "n_val": int(len(xv)),
    }
    artifact = Artifact(m, norm, {k: v.detach().clone() for k, v in net.state_dict().items()}, meta)
    return TrainResult(artifact, history, int(n), int(len(xv)), time.perf_counter() - t0)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


__all__ = [
    "TrainConfig",
    "TrainResult",
    "build_dataset",
    "make_windows",
    "train",
    "training_series",
]
