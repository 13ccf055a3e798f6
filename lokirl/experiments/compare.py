"""Compare controllers on traces in the simulator with common random numbers.

Every controller plays every (trace, seed) pair with the same seed (hence the same
arrivals); :class:`Comparison` aggregates the episodes with 95% intervals over
seeds x traces and paired differences against a reference. ``lokirl evaluate``
(:mod:`lokirl.commands.evaluate`) is the command over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lokirl.agents.actors import actor_factory
from lokirl.agents.rollout import Episode, rollout
from lokirl.envs.serving import LokiServingEnv
from lokirl.traces.types import RateSeries

#: Two-sided 95% Student t quantiles by degrees of freedom (1..30); 1.96 beyond.
_T95 = [
    12.71,
    4.30,
    3.18,
    2.78,
    2.57,
    2.45,
    2.36,
    2.31,
    2.26,
    2.23,
    2.20,
    2.18,
    2.16,
    2.14,
    2.13,
    2.12,
    2.11,
    2.10,
    2.09,
    2.09,
    2.08,
    2.07,
    2.07,
    2.06,
    2.06,
    2.06,
    2.05,
    2.05,
    2.05,
    2.04,
]

METRICS = (
    "frame_violation_ratio",
    "sub_violation_ratio",
    "accuracy",
    "effective_accuracy",
    "mean_active_workers",
    "solves",
    "reconfigurations",
    "reward",
)


def summary(episode: Episode) -> dict[str, float]:
    """An episode's headline figures (:data:`METRICS`), effective accuracy included.

    The effective accuracy is the frames' path accuracy over all arrived frames, a
    dropped or late frame counting 0 (:attr:`lokirl.sim.SimResult.effective_accuracy`).
    """
    return episode.summary()


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (NaN for one value: unknown)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan
    t = _T95[x.size - 2] if x.size - 1 <= len(_T95) else 1.96
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(x.size))


@dataclass
class Comparison:
    """Episodes per (controller, trace, seed) and their aggregates."""

    controllers: list[str]
    traces: list[str]
    seeds: list[int]
    episodes: dict[tuple[str, str, int], Episode] = field(default_factory=dict)

    def values(self, controller: str, metric: str, trace: str | None = None) -> list[float]:
        """Per-episode values of a metric (one trace or all)."""
        return [
            summary(ep)[metric]
            for (c, t, _), ep in self.episodes.items()
            if c == controller and (trace is None or t == trace)
        ]

    def table(self, trace: str | None = None) -> dict[str, dict[str, tuple[float, float]]]:
        """``{controller: {metric: (mean, ci)}}``.

        For one trace: over its seeds. Over all traces (``trace`` None): the mean of
        the per-trace means and the t-interval over traces, the trace being the unit
        (seeds of one trace share its traffic and are not independent samples of it);
        over the seeds when only one trace was played.
        """
        if trace is not None or len(self.traces) < 2:
            return {
                c: {m: mean_ci(self.values(c, m, trace)) for m in METRICS} for c in self.controllers
            }
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for c in self.controllers:
            out[c] = {}
            for m in METRICS:
                per = [self.values(c, m, t) for t in self.traces]
                out[c][m] = mean_ci([float(np.mean(v)) for v in per if v])
        return out

    def paired(self, reference: str, metric: str = "reward") -> dict[str, tuple[float, float, int]]:
        """Paired differences ``controller - reference`` over the (trace, seed) pairs both played.

        With common random numbers each pair saw the same arrivals. The difference is
        averaged over the seeds of each trace, then over traces, and the interval is
        the t-interval over traces (over the seeds when only one trace was played).

        Returns:
            ``{controller: (mean difference, 95% CI half-width, pairs)}`` for every
            controller other than ``reference``.

        """
        out: dict[str, tuple[float, float, int]] = {}
        for c in self.controllers:
            if c == reference:
                continue
            by_trace: dict[str, list[float]] = {}
            for (cc, t, s), ep in self.episodes.items():
                if cc == c and (reference, t, s) in self.episodes:
                    ref = summary(self.episodes[(reference, t, s)])[metric]
                    by_trace.setdefault(t, []).append(summary(ep)[metric] - ref)
            pairs = sum(len(v) for v in by_trace.values())
            if len(by_trace) < 2:
                mean, ci = mean_ci([d for v in by_trace.values() for d in v])
            else:
                mean, ci = mean_ci([float(np.mean(v)) for v in by_trace.values()])
            out[c] = (mean, ci, pairs)
        return out

    def to_dict(self) -> dict:
        """JSON-ready aggregates, overall and per trace, and every episode's figures."""

        def fmt(tab):
            return {
                c: {m: {"mean": v[0], "ci95": v[1]} for m, v in row.items()}
                for c, row in tab.items()
            }

        return {
            "controllers": self.controllers,
            "traces": self.traces,
            "seeds": self.seeds,
            "overall": fmt(self.table()),
            "per_trace": {t: fmt(self.table(t)) for t in self.traces},
            "episodes": [
                {
                    "controller": c,
                    "trace": t,
                    "seed": sd,
                    **summary(ep),
                    "frames": ep.result.frames.counts(),
                }
                for (c, t, sd), ep in self.episodes.items()
            ],
        }


def compare(
    env: LokiServingEnv,
    controllers: Sequence[str],
    traces: Sequence[RateSeries],
    seeds: Sequence[int],
    on_episode: Callable[[str, str, int, Episode], None] | None = None,
) -> Comparison:
    """Run every controller on every trace and seed (same seed: same randomness).

    Args:
        env: The environment (its config fixes the pipeline, cluster, epoch, reward).
        controllers: Controller specs (``loki``, ``loki-5s``, ``trigger``,
            ``oracle``, ``ppo:PATH``...).
        traces: Rate series to play (each in full).
        seeds: Simulator seeds; each (trace, seed) pair is played by every controller.
        on_episode: Called after each episode (progress reporting).

    """
    comp = Comparison(list(controllers), [t.name for t in traces], list(seeds))
    cache: dict = {}
    for trace in traces:
        for seed in seeds:
            for spec in controllers:
                ep = rollout(env, actor_factory(spec, trace, cache), seed, trace=trace)
                comp.episodes[(spec, trace.name, seed)] = ep
                if on_episode is not None:
                    on_episode(spec, trace.name, seed, ep)
    return comp


#: Metrics of the paired differences ``lokirl evaluate`` reports.
PAIRED_METRICS = ("reward", "frame_violation_ratio", "accuracy", "effective_accuracy")


def paired_summary(
    comp: Comparison, reference: str, metrics: Sequence[str] = PAIRED_METRICS
) -> dict:
    """JSON-ready paired differences against ``reference``, one table per metric.

    Returns:
        ``{"reference": reference, metric: {controller: {"mean", "ci95", "pairs"}}}``.

    """
    return {
        "reference": reference,
        **{
            m: {
                c: {"mean": d[0], "ci95": d[1], "pairs": d[2]}
                for c, d in comp.paired(reference, m).items()
            }
            for m in metrics
        },
    }


def plot_comparison(comp: Comparison, path: Path) -> None:
    """Bar charts (mean and 95% interval) of the headline metrics per controller, to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tab = comp.table()
    names = list(tab)
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.8))
    for ax, metric, title in zip(
        axes,
        ("frame_violation_ratio", "accuracy", "effective_accuracy", "solves", "reward"),
        ("frame SLO violation ratio", "system accuracy", "effective accuracy", "solves", "reward"),
        strict=True,
    ):
        means = [tab[n][metric][0] for n in names]
        cis = [tab[n][metric][1] for n in names]
        ax.bar(range(len(names)), means, yerr=cis, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(
            [n.split("/")[-1][:18] for n in names], rotation=45, ha="right", fontsize=8
        )
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
