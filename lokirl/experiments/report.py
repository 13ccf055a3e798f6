"""Reports of a suite's per-episode table: summary (JSON), markdown, Pareto front plot.

All functions are pure functions of :class:`lokirl.experiments.runner.Results` (or of
the summary built from it), except :func:`pareto_plot`, which writes a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lokirl.experiments import stats
from lokirl.experiments.runner import METRICS, Results
from lokirl.experiments.tuning import within_budget

#: Metrics compared pair by pair with the reference.
PAIRED_METRICS: tuple[str, ...] = (
    "reward",
    "frame_violation_ratio",
    "effective_accuracy",
    "accuracy",
)

#: Short column labels.
LABELS: dict[str, str] = {
    "reward": "reward",
    "frame_violation_ratio": "frame viol",
    "sub_violation_ratio": "sub viol",
    "accuracy": "accuracy",
    "effective_accuracy": "eff. acc.",
    "mean_active_workers": "workers",
    "solves": "solves",
    "reconfigurations": "reconfigs",
    "solver_time_s": "solver s",
}

#: Columns of the per-case table.
CASE_METRICS: tuple[str, ...] = (
    "reward",
    "frame_violation_ratio",
    "sub_violation_ratio",
    "effective_accuracy",
    "accuracy",
    "solves",
    "reconfigurations",
    "mean_active_workers",
)


def fmt(metric: str, value: float, signed: bool = False) -> str:
    """Format a metric's value (violations in percent)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    if "violation" in metric:
        return f"{value * 100:{sign}.2f}%"
    if metric in ("solves", "reconfigurations"):
        return f"{value:{sign}.1f}"
    if metric == "poi":
        return f"{value:.2f}"
    return f"{value:{sign}.2f}"


def fmt_interval(metric: str, iv: Mapping[str, Any], signed: bool = False) -> str:
    """``estimate [lo, hi]``."""
    return (
        f"{fmt(metric, iv['estimate'], signed)} "
        f"[{fmt(metric, iv['lo'], signed)}, {fmt(metric, iv['hi'], signed)}]"
    )


def per_case(results: Results) -> list[dict[str, Any]]:
    """Mean over seeds of each metric per (case, controller), in suite and controller order."""
    rows = results.rows
    out = []
    for case in results.meta["cases"]:
        for c in results.meta["controllers"]:
            mine = [r for r in rows if r["case"] == case and r["controller"] == c]
            ok = [r for r in mine if not r.get("error")]
            entry: dict[str, Any] = {
                "case": case,
                "family": results.meta["families"][case],
                "controller": c,
                "seeds": len(ok),
                "failed": len(mine) - len(ok),
            }
            for m in METRICS:
                vals = [float(r[m]) for r in ok if r.get(m) is not None]
                entry[m] = float(np.mean(vals)) if vals else math.nan
            out.append(entry)
    return out


def pareto_front(points: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Which points are on the front: higher effective accuracy, lower frame violations.

    A point is dominated when another is at least as good on both and better on one.
    """
    flags = []
    for p in points:
        a, v = p["effective_accuracy"], p["frame_violation_ratio"]
        if not (math.isfinite(a) and math.isfinite(v)):
            flags.append(False)
            continue
        dominated = any(
            q is not p
            and q["effective_accuracy"] >= a
            and q["frame_violation_ratio"] <= v
            and (q["effective_accuracy"] > a or q["frame_violation_ratio"] < v)
            for q in points
            if math.isfinite(q["effective_accuracy"]) and math.isfinite(q["frame_violation_ratio"])
        )
        flags.append(not dominated)
    return flags


def summarize(results: Results, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Everything a report shows, JSON-ready (``summary.json``).

    Args:
        results: The runner's table.
        n_boot: Bootstrap resamples of every interval.
        seed: Seed of the bootstrap (same seed: same intervals).

    Returns:
        ``meta``, ``bootstrap`` (settings), ``per_case``, ``aggregate``
        (``{controller: {metric: {scope: interval}}}``), ``paired``
        (``{metric: {controller: {scope: {mean, iqm, poi}}}}``), ``pareto`` and
        ``failures``.

    """
    meta = results.meta
    rows = results.rows
    ctrls = list(meta["controllers"])
    ref = meta["reference"]
    agg: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in ctrls}
    for m in METRICS:
        for c, scopes in stats.aggregate(rows, m, ctrls, n_boot, seed).items():
            agg[c][m] = {s: iv.to_dict() for s, iv in scopes.items()}
    paired = {
        m: {
            c: {s: {k: iv.to_dict() for k, iv in d.items()} for s, d in scopes.items()}
            for c, scopes in stats.compare(rows, m, ref, ctrls, n_boot, seed).items()
        }
        for m in PAIRED_METRICS
    }
    points = []
    for c in ctrls:
        ov = {m: agg[c][m].get("overall", {}).get("estimate", math.nan) for m in METRICS}
        points.append(
            {
                "controller": c,
                "effective_accuracy": ov["effective_accuracy"],
                "frame_violation_ratio": ov["frame_violation_ratio"],
                "solves": ov["solves"],
                "mean_active_workers": ov["mean_active_workers"],
                "reward": ov["reward"],
            }
        )
    for p, on in zip(points, pareto_front(points), strict=True):
        p["on_front"] = on
    return {
        "meta": meta,
        "bootstrap": {
            "n_boot": n_boot,
            "seed": seed,
            "level": 0.95,
            "design": (
                "cases resampled within families (all together when a family has fewer "
                f"than {stats.MIN_STRATUM}), then seeds within cases; expanded percentile "
                "interval (stats.expanded_tail)"
            ),
        },
        "per_case": per_case(results),
        "aggregate": agg,
        "paired": paired,
        "pareto": points,
        "failures": [
            {k: r[k] for k in ("case", "seed", "controller", "error")} for r in results.failed
        ],
        # Controllers pooled from several (``--pool``): their rows are per 120 s of trace.
        "pooled": sorted({r["controller"] for r in rows if "members" in r}),
        # The only part that differs between runs (machine load); not in the tables.
        "runtime": {
            "episodes": sum(1 for r in rows if "members" not in r),  # played, not pooled
            "wall_s": float(sum(r.get("wall_s") or 0.0 for r in rows)),
            "cpu_s": float(sum(r.get("cpu_s") or 0.0 for r in rows)),
        },
    }


def scopes(summary: Mapping[str, Any]) -> list[str]:
    """``overall`` then the families, as the summary orders them."""
    fams = sorted(set(summary["meta"]["families"].values()))
    return ["overall", *fams]


def _solve_time(meta: Mapping[str, Any]) -> str:
    st = meta.get("solver_time", "model")
    if st == "model":
        return "modelled solver time (per allocator phase)"
    if not isinstance(st, int | float):
        return f"solver time {st!r}"
    return f"every solve takes {abs(float(st)):g} s of simulated time"


def swap_note(meta: Mapping[str, Any]) -> str:
    """What a run played under ``bench --swap`` says of its swap mode ("" if the suite's)."""
    swap = meta.get("swap")
    if not swap:
        return ""
    return f"every case played under swap mode `{swap}` (`--swap`), not the suite's"


def timing_note(meta: Mapping[str, Any]) -> str:
    """What a run played under ``bench --arrival-jitter`` says of its arrivals ("" if drawn)."""
    timing = meta.get("arrival_timing")
    if not timing:
        return ""
    if timing["copy"] == 0 or timing["jitter_ms"] == 0:
        return "arrivals drawn beforehand, undelayed (`--arrival-jitter`, copy 0)"
    return (
        f"arrivals drawn beforehand, each delayed by up to {timing['jitter_ms']:g} ms "
        f"(`--arrival-jitter`, copy {timing['copy']})"
    )


def overhead_note(meta: Mapping[str, Any]) -> str:
    """What a run played under ``bench --batch-overhead`` says of its batches ("" if none)."""
    secs = meta.get("batch_overhead_s") or 0.0
    if not secs:
        return ""
    return (
        f"every batch occupies its worker {secs * 1000:g} ms beyond its profiled latency "
        "(`--batch-overhead`; no plan accounts for it)"
    )


def _across_commits(meta: Mapping[str, Any]) -> str:
    """The commit line's note for runs merged across commits (``bench --allow-commits``)."""
    across = meta.get("across_commits")
    if not across:
        return ""
    return (
        f" (runs of {len(across['commits'])} commits merged; the "
        f"{across['bridge_episodes']} episodes of controllers played at more than one "
        "commit came out identical)"
    )


def markdown(summary: Mapping[str, Any]) -> str:
    """A markdown report (usable in docs/results.md)."""
    meta = summary["meta"]
    ref = meta["reference"]
    n_cases = len(meta["cases"])
    seeds = sorted({len(v) for v in meta["seeds"].values()})
    lines = [
        f"# `lokirl bench --suite {meta['suite']}`",
        "",
        f"- suite: `{meta['suite']}` ({meta.get('suite_source', '')}), hash `{meta['suite_hash'][:16]}`",
        f"- commit: `{meta['commit']}`" + _across_commits(meta),
        f"- {n_cases} cases x {'/'.join(map(str, seeds))} seeds; controllers: "
        + ", ".join(f"`{c}`" for c in meta["controllers"])
        + f"; reference: `{ref}`",
        f"- solves: {meta['solver']}, deterministic (work-bounded), {_solve_time(meta)}; "
        "common random numbers across controllers",
        *([f"- swaps: {swap_note(meta)}"] if swap_note(meta) else []),
        *([f"- arrivals: {timing_note(meta)}"] if timing_note(meta) else []),
        *([f"- batches: {overhead_note(meta)}"] if overhead_note(meta) else []),
        f"- intervals: 95% expanded percentile (few cases), hierarchical bootstrap ({summary['bootstrap']['n_boot']} "
        "resamples: cases within families, all together where a family has fewer than "
        f"{stats.MIN_STRATUM} cases, then seeds within cases)",
        f"- reward, solves and reconfigurations per {stats.PER_STEPS} s of trace (a longer case "
        "counts once, not by its length); the per-case table gives episode totals",
        "",
        "## Overall (mean over cases [95% interval])",
        "",
    ]
    cols = ("reward", "frame_violation_ratio", "effective_accuracy", "accuracy", "solves")
    lines.append("| controller | " + " | ".join(LABELS[m] for m in cols) + " | workers |")
    lines.append("|---" * (len(cols) + 2) + "|")
    for c, per in summary["aggregate"].items():
        cells = [fmt_interval(m, per[m]["overall"]) for m in cols]
        cells.append(fmt("mean_active_workers", per["mean_active_workers"]["overall"]["estimate"]))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", f"## Paired differences vs `{ref}` (same case and seed)", ""]
    lines.append(
        "Mean and IQM of A - reference over cases, and P(A better than reference), "
        "each with its 95% interval; n = cases. A family of fewer than about 5 cases "
        "gives an interval that understates how much cases differ (one case: seed noise only)."
    )
    for m in PAIRED_METRICS:
        lines += ["", f"### {LABELS[m]}", ""]
        lines.append("| controller | scope | n | mean | IQM | P(better) |")
        lines.append("|---|---|---|---|---|---|")
        for c, per in summary["paired"][m].items():
            for s in scopes(summary):
                d = per.get(s)
                if d is None or not d["mean"]["cases"]:
                    continue
                lines.append(
                    f"| {c} | {s} | {d['mean']['cases']} | {fmt_interval(m, d['mean'], True)} | "
                    f"{fmt_interval(m, d['iqm'], True)} | {fmt_interval('poi', d['poi'])} |"
                )
    lines += ["", "## Pareto front (overall means)", ""]
    lines.append("| controller | eff. acc. | frame viol | solves | workers | on front |")
    lines.append("|---|---|---|---|---|---|")
    for p in summary["pareto"]:
        lines.append(
            f"| {p['controller']} | {fmt('effective_accuracy', p['effective_accuracy'])} | "
            f"{fmt('frame_violation_ratio', p['frame_violation_ratio'])} | "
            f"{fmt('solves', p['solves'])} | {fmt('mean_active_workers', p['mean_active_workers'])} | "
            f"{'yes' if p['on_front'] else ''} |"
        )
    lines += ["", "## Per case (mean over seeds)", ""]
    if summary.get("pooled"):
        names = ", ".join(f"`{c}`" for c in summary["pooled"])
        lines += [
            f"Episode totals, except the pooled {names}: per {stats.PER_STEPS} s of trace "
            "(pooling brings each member's episode to that length before averaging).",
            "",
        ]
    lines.append(
        "| case | family | controller | " + " | ".join(LABELS[m] for m in CASE_METRICS) + " |"
    )
    lines.append("|---" * (len(CASE_METRICS) + 3) + "|")
    for e in summary["per_case"]:
        lines.append(
            f"| {e['case']} | {e['family']} | {e['controller']} | "
            + " | ".join(fmt(m, e[m]) for m in CASE_METRICS)
            + " |"
        )
    if summary["failures"]:
        lines += ["", "## Failed episodes (left out of every figure)", ""]
        for f in summary["failures"]:
            lines.append(f"- {f['case']} seed {f['seed']} {f['controller']}: {f['error']}")
    return "\n".join(lines) + "\n"


def pareto_plot(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Effective accuracy vs frame violations, one point per controller (PNG).

    Each point is annotated with its mean solves and active workers; the front is
    drawn as a step line through the non-dominated points.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [
        p
        for p in summary["pareto"]
        if math.isfinite(p["effective_accuracy"]) and math.isfinite(p["frame_violation_ratio"])
    ]
    fig, ax = plt.subplots(figsize=(7, 5))
    for p in pts:
        x, y = 100 * p["frame_violation_ratio"], p["effective_accuracy"]
        ax.scatter([x], [y], s=60, color="tab:red" if p["on_front"] else "tab:blue", zorder=3)
        ax.annotate(
            f"{p['controller']}\n{p['solves']:.0f} solves, {p['mean_active_workers']:.1f} workers",
            (x, y),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    front = sorted((p for p in pts if p["on_front"]), key=lambda p: p["frame_violation_ratio"])
    if len(front) > 1:
        ax.plot(
            [100 * p["frame_violation_ratio"] for p in front],
            [p["effective_accuracy"] for p in front],
            color="tab:red",
            lw=1,
            ls="--",
            drawstyle="steps-post",
        )
    meta = summary["meta"]
    ax.set_xlabel("frame SLO violation ratio (%), lower is better")
    ax.set_ylabel("effective accuracy, higher is better")
    ax.set_title(f"suite {meta['suite']}: mean over {len(meta['cases'])} cases (red: Pareto front)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def tuning_table(tuned: Mapping[str, Any], top: int = 10) -> str:
    """Markdown table of a tuning run's best trials (the written ``tuned/NAME.yaml``).

    Args:
        tuned: The tuning record (:meth:`lokirl.experiments.tuning.TuningResult.to_dict`).
        top: Trials shown, best score first.

    """
    trials = sorted(tuned.get("trials", []), key=lambda t: -t["score"])[:top]
    lines = [
        "| setting | score | eff. acc. | frame viol | solves | workers |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in trials:
        m = t.get("metrics", {})
        chosen = " (chosen)" if t["spec"] == tuned.get("spec") else ""
        lines.append(
            f"| `{t['spec']}`{chosen} | {t['score']:.2f} "
            f"| {fmt('effective_accuracy', m.get('effective_accuracy', math.nan))} "
            f"| {fmt('frame_violation_ratio', m.get('frame_violation_ratio', math.nan))} "
            f"| {fmt('solves', m.get('solves', math.nan))} "
            f"| {fmt('mean_active_workers', m.get('mean_active_workers', math.nan))} |"
        )
    return "\n".join(lines)


def tuning_front_plot(
    tuned: Sequence[Mapping[str, Any]],
    path: str | Path,
    others: Sequence[Mapping[str, Any]] = (),
    budgets: Sequence[float] = (),
) -> Path:
    """Every trial of each tuning grid, effective accuracy vs frame violations (PNG).

    One colour per tuned baseline; its Pareto front as a dashed step line and its
    chosen setting (best score) as a star. ``others`` (points with ``controller``,
    ``effective_accuracy``, ``frame_violation_ratio``, e.g. a bench summary's
    ``pareto`` list on the same suite) are drawn in black for reference; each of
    ``budgets`` (frame-violation shares, e.g. 0.05) as a dotted vertical line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    for i, run in enumerate(tuned):
        c = colours[i % len(colours)]
        pts = [
            {"spec": t["spec"], **t.get("metrics", {})}
            for t in run.get("trials", [])
            if math.isfinite(t.get("metrics", {}).get("effective_accuracy", math.nan))
            and math.isfinite(t.get("metrics", {}).get("frame_violation_ratio", math.nan))
        ]
        if not pts:
            continue
        xs = [100 * p["frame_violation_ratio"] for p in pts]
        ys = [p["effective_accuracy"] for p in pts]
        ax.scatter(xs, ys, s=18, color=c, alpha=0.6, label=f"{run['baseline']} trials")
        on = pareto_front(pts)
        front = sorted(
            (p for p, f in zip(pts, on, strict=True) if f), key=lambda p: p["frame_violation_ratio"]
        )
        if len(front) > 1:
            ax.plot(
                [100 * p["frame_violation_ratio"] for p in front],
                [p["effective_accuracy"] for p in front],
                color=c,
                lw=1,
                ls="--",
                drawstyle="steps-post",
            )
        best = [p for p in pts if p["spec"] == run.get("spec")]
        if best:
            b = best[0]
            ax.scatter(
                [100 * b["frame_violation_ratio"]],
                [b["effective_accuracy"]],
                s=160,
                marker="*",
                color=c,
                edgecolor="black",
                zorder=4,
                label=f"{run['baseline']} chosen",
            )
    for p in others:
        a, v = p.get("effective_accuracy", math.nan), p.get("frame_violation_ratio", math.nan)
        if not (math.isfinite(a) and math.isfinite(v)):
            continue
        ax.scatter([100 * v], [a], s=30, color="black", marker="x", zorder=3)
        ax.annotate(
            p["controller"], (100 * v, a), xytext=(4, -10), textcoords="offset points", fontsize=7
        )
    for b in budgets:
        ax.axvline(100 * b, color="grey", ls=":", lw=1)
        ax.annotate(
            f"budget {100 * b:g}%",
            (100 * b, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=7,
            color="grey",
        )
    suite = tuned[0].get("suite", "?") if tuned else "?"
    ax.set_xlabel("frame SLO violation ratio (%), lower is better")
    ax.set_ylabel("effective accuracy, higher is better")
    ax.set_title(f"tuning grids on {suite} (mean over cases); x: other controllers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def budget_table(tuned: Sequence[Mapping[str, Any]], budgets: Sequence[float]) -> str:
    """Markdown table: each search's best setting within each budget (:func:`within_budget`).

    A search with no trial within a budget shows its lowest frame-violation share
    instead, so the table says how far the budget is from what the search reached.

    Args:
        tuned: Tuning records, one per method.
        budgets: Frame-violation shares, e.g. ``(0.01, 0.05)``.

    """
    lines = [
        "| method | trials | budget | best within the budget | eff. acc. | frame viol | score |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for run in tuned:
        trials = run.get("trials", [])
        lowest = min(
            (t.get("metrics", {}).get("frame_violation_ratio", math.inf) for t in trials),
            default=math.inf,
        )
        for b in budgets:
            t = within_budget(run, b)
            head = f"| {run.get('baseline', '?')} | {len(trials)} | {100 * b:g}% "
            if t is None:
                lines.append(
                    head + f"| none (the search's lowest: "
                    f"{fmt('frame_violation_ratio', lowest)}) | | | |"
                )
                continue
            m = t["metrics"]
            lines.append(
                head + f"| `{t['spec']}` "
                f"| {fmt('effective_accuracy', m['effective_accuracy'])} "
                f"| {fmt('frame_violation_ratio', m['frame_violation_ratio'])} "
                f"| {t['score']:.2f} |"
            )
    return "\n".join(lines)
