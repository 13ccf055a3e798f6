"""Tables, figures and side-by-side comparisons of ``lokirl reproduce`` results.

Pure functions of the results dict of
:func:`lokirl.experiments.reproduction.run_reproduction` (and of the
``results.json`` files earlier runs wrote), plus the writers of a run's folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from lokirl.experiments.reproduction import BOUND


def plot_capacity(results: dict, path: Path) -> None:
    """Violation ratio vs steady demand for every probe of the bisections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eff = results["effective_capacity"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, level in zip(axes, ("sub", "frame"), strict=True):
        for ctl, pts in sorted(eff.get("curves", {}).items()):
            d = [p["demand"] for p in pts]
            y = [max(p[level], 1e-4) for p in pts]
            ls = "-" if ctl.startswith("loki") else "--"
            ax.plot(d, y, ls, marker="o", ms=3, lw=1, label=ctl)
        ax.axhline(BOUND, color="0.4", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("steady demand (frames/s)")
        ax.set_title(f"{level}-level SLO violation ratio (mean over seeds run)")
        ax.legend(fontsize=7, ncol=2)
    axes[0].set_ylabel("violation ratio (floored at 1e-4)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pm(sp: dict, pct: bool = True) -> str:
    """``mean (min-max)``: the spread over seeds."""
    if sp["n"] <= 1:
        return f"{sp['mean']:.2%}" if pct else f"{sp['mean']:.2f}"
    if pct:
        return f"{sp['mean']:.2%} ({sp['min']:.2%}-{sp['max']:.2%})"
    return f"{sp['mean']:.2f} ({sp['min']:.2f}-{sp['max']:.2f})"


_PM = "lokirl's periodic MILP (root headroom)"


def _num(x: float | None) -> str:
    """``x`` with two decimals, ``-`` when absent (results stored before it existed)."""
    return "-" if x is None else f"{x:.2f}"


def render_tables(results: dict) -> str:
    """The Markdown tables of a ``reproduce`` results dict."""
    st = results["settings"]
    seeds = ", ".join(str(k) for k in st["seeds"])
    eff = results["effective_capacity"]
    lines = [
        f"## Effective capacity (frames/s; SLO violation ratio <= {results['bound']:.0%} on every"
        f" seed of {seeds}; bisection to {st['resolution']} frames/s, {st['steady_s']} s runs)",
        "",
        "| controller | sub-request level | accuracy there | eff. acc. there | frame level |"
        " accuracy there | eff. acc. there |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for ctl, r in eff["controllers"].items():
        sub, frame = r["sub"], r["frame"]
        lines.append(
            f"| {ctl} | {sub['capacity']:g} | {sub['accuracy_at_capacity']:.2f} | "
            f"{_num(sub.get('effective_accuracy_at_capacity'))} | {frame['capacity']:g} | "
            f"{frame['accuracy_at_capacity']:.2f} | "
            f"{_num(frame.get('effective_accuracy_at_capacity'))} |"
        )
    lines.append("")
    for level in ("sub", "frame"):
        b = eff["best"][level]
        il = b.get("inferline")
        for system, label in (("loki", "Loki (authors' controller)"), ("periodic-milp", _PM)):
            if system not in b or il is None:
                continue
            lines.append(
                f"- best at the {level} level, {label}: {b[system]['controller']} "
                f"{b[system]['capacity']:g} vs {il['controller']} {il['capacity']:g} frames/s: "
                f"**{b[system]['ratio']:.2f}x**"
            )
    low = results["low_load"]
    lines += [
        "",
        f"## Steady low demand (seeds {seeds}; violation mean (min-max))",
        "",
        "| controller | demand | viol/frame | viol/sub-req | workers | plan capacity | reconfig"
        " | sub-req drops (all seeds) | plan | utilisation per task at the demand |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in low["rows"]:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(r["sub_dropped"].items())) or "none"
        if r["sub_late"]:
            drops += f", late {r['sub_late']}"
        util = ", ".join(f"{t} {u:.0%}" for t, u in r["plan"]["utilisation"].items())
        lines.append(
            f"| {r['controller']} | {r['demand']} | {_pm(r['frame'])} | {_pm(r['sub'])} | "
            f"{r['workers']:.1f} | {r['plan_capacity']:.0f} | {r['reconfigurations']:.1f} | "
            f"{drops} of {r['sub_arrived']} | {'; '.join(r['plan']['groups'])} | {util} |"
        )
    c = low["claim"]
    if c:
        lines += [
            "",
            f"Low load ({c['demand']} frames/s): Loki uses {c['loki_active_workers']:.1f} active "
            f"workers vs {c['peak_provisioning_workers']} for peak provisioning "
            f"(**{c['ratio']:.2f}x fewer**).",
        ]
    for name, tr in results["traces"].items():
        lines += [
            "",
            f"## {name}: {tr['low']:g} -> {tr['high']:g} frames/s at {tr['speedup']:g}x speed "
            f"(seeds {seeds}; mean (min-max))",
            "",
            "| controller | viol/frame | viol/sub-req | accuracy | eff. acc. | workers | solves |"
            f" reconfig | x {tr.get('reference', 'loki-h1.2')} (frame / sub) |"
            " seconds with capacity >= 1.2x arrivals |"
            " viol/frame there | viol/sub-req there |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for ctl, v in tr["controllers"].items():
            fx = v.get("frame_vs_ref", v.get("frame_vs_loki_h1.2"))
            sx = v.get("sub_vs_ref", v.get("sub_vs_loki_h1.2"))
            rel = f"{fx:.1f} / {sx:.1f}" if fx is not None and sx is not None else "-"
            lines.append(
                f"| {ctl} | {_pm(v['frame'])} | {_pm(v['sub'])} | {_pm(v['accuracy'], False)} | "
                f"{_pm(v['effective_accuracy'], False) if 'effective_accuracy' in v else '-'} | "
                f"{v['workers']:.1f} | {v['solves']:.0f} | {v['reconfigurations']:.0f} | {rel} | "
                f"{v['ample_seconds']:.0f} | {v['ample_frame_ratio']:.2%} | "
                f"{v['ample_sub_ratio']:.2%} |"
            )
    if results.get("fidelity"):
        from lokirl.experiments.fidelity import render_fidelity

        lines += ["", render_fidelity({st.get("swap", "overlap"): results["fidelity"]})]
    rt = results.get("runtime")
    if rt:
        lines += [
            "",
            f"Runtime: {rt['wall_s']:.0f} s wall, {rt['simulations']} simulations.",
        ]
    lines.append("")
    return "\n".join(lines)


def write_reproduction(results: dict, out: Path) -> str:
    """Write ``img/capacity_search.png``, ``results.json`` and ``tables.md`` under ``out``.

    Returns:
        The Markdown tables (as written to ``tables.md``).

    """
    plot_capacity(results, out / "img" / "capacity_search.png")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    tables = render_tables(results)
    (out / "tables.md").write_text(tables)
    return tables


def compare_runs(dirs: Sequence[Path], out: Path | None = None) -> str:
    """Earlier runs side by side, one column per swap mode: claims and fidelity.

    Args:
        dirs: Run folders (or their ``results.json``), one run per swap mode.
        out: Folder ``comparison.md`` is written to (``None``: not written).

    Returns:
        The Markdown comparison.

    Raises:
        ConfigError: a folder without ``results.json``, or two runs of one mode.

    """
    from lokirl.errors import ConfigError
    from lokirl.experiments.fidelity import render_claims

    by_mode: dict[str, dict] = {}
    for d in dirs:
        path = d / "results.json" if d.is_dir() else d
        if not path.is_file():
            raise ConfigError("--compare", str(d), "has no results.json", "pass a --out folder")
        res = json.loads(path.read_text())
        mode = res.get("settings", {}).get("swap", "overlap")
        if mode in by_mode:
            raise ConfigError("--compare", str(d), f"is a second {mode} run", "one run per mode")
        by_mode[mode] = res
    order = {m: k for k, m in enumerate(("free", "stop", "overlap"))}
    text = render_claims(dict(sorted(by_mode.items(), key=lambda kv: order.get(kv[0], 99))))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(text)
    return text
