"""Fidelity of lokirl's simulator to the Loki authors' simulator, on their metrics.

The authors' simulator (UMass-LIDS/Loki, ``src/simulator``) reports, for a run:

* **SLO violation ratio per stage request** (``run.py:main``, "Overall SLO
  violation ratio"): ``(dropped + late) / (dropped + succeeded)`` over every
  request any task (executor) handled, the **sink** included. ``dropped`` is
  ``Simulator.bump_failed_request_stats`` (a request popped from a queue because it
  would miss its deadline, ``Predictor.pop_while_first_expires`` /
  ``drop_expired_requests``), ``succeeded`` every request that finished service
  (``bump_successful_request_stats``) and ``late`` those among them whose
  processing time exceeded the END event's deadline, which ``insert_event`` leaves
  at its default of 1000 ms (so in practice 0). Every car or face request that
  finishes sends one request to the sink task (``Predictor.finish_request``: the
  leaf variants' only child is ``sink``, one sub-request each), which almost never
  drops, so the sink adds about one on-time request per served leaf request.
* **Frames dropped at the first stage**: object-detection requests dropped over
  frames arrived (each frame is one detection request).
* **Mean ILP objective** (``algorithms/pipeline_ilp.py:PipelineIlp.run``,
  ``objective = sum(c[path] * accuracy[path])``): over the solves, the
  traffic-weighted path accuracy of the plan on the chains the ILP models,
  object detection -> car classification only (the face task and the sink are
  not in the ILP), a path's accuracy being 100 x the product of its variants'
  normalised accuracies. Hardware-scaling plans (yolov5x + efficientnet-b6) score
  99.64. The sink's accuracy of 100 enters the simulator's *accuracy* metric,
  not this objective.

:func:`authors_metrics` computes the same quantities from a lokirl run so that
both simulators are compared on one definition.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.sim import SimConfig, SimResult, Simulation

#: The authors' simulator on the 600 s diurnal trace (50 -> 425 frames/s, 1x), 20
#: workers: Loki and InferLine (measured with their code; see DESIGN, "Lessons").
AUTHORS_DIURNAL: dict[str, dict[str, float]] = {
    "loki": {
        "stage_violation_ratio": 0.056,
        "first_stage_drop_ratio": 0.083,
        "mean_workers": 16.8,
        "mean_objective": 97.3,
    },
    "inferline": {
        "stage_violation_ratio": 0.126,
        "first_stage_drop_ratio": 0.368,
        "mean_workers": 16.7,
    },
}

#: Metrics of :func:`authors_metrics`, in table order, with their labels.
METRICS: tuple[tuple[str, str], ...] = (
    ("stage_violation_ratio", "violated stage requests (authors' definition, sink included)"),
    ("first_stage_drop_ratio", "frames dropped at the first stage"),
    ("mean_workers", "mean active workers"),
    ("mean_objective", "mean ILP objective (car-chain path accuracy)"),
)


def objective_leaf(pipeline: Pipeline) -> str:
    """The leaf task whose chains the authors' ILP plans: the most requested one.

    For ``traffic_analysis`` this is ``car_classification`` (about 17.8 cars per
    frame against 1.1 faces under yolov5x), the task the authors' ILP keeps.
    """
    root = pipeline.task(pipeline.roots[0])
    best = root.best
    demand: dict[str, float] = {}

    def walk(task: str, rate: float, variant_branching: dict[str, float]) -> None:
        t = pipeline.task(task)
        if not t.children:
            demand[task] = demand.get(task, 0.0) + rate
            return
        for child in t.children:
            child_rate = rate * variant_branching.get(child, 1.0)
            walk(child, child_rate, dict(pipeline.task(child).best.branching))

    walk(root.name, 1.0, dict(best.branching))
    return max(sorted(demand), key=lambda k: demand[k])


def loki_objective(plan: Plan, pipeline: Pipeline, leaf: str | None = None) -> float:
    """The authors' ILP objective for ``plan``: its share-weighted chain accuracy.

    Args:
        plan: A plan with path shares.
        pipeline: Its pipeline.
        leaf: The leaf task whose root-to-leaf chains count (default:
            :func:`objective_leaf`).

    Returns:
        ``sum(share * accuracy) / sum(share)`` over the plan's chains ending in
        ``leaf`` (0-100), NaN when the plan has none.

    """
    leaf = leaf or objective_leaf(pipeline)
    num = den = 0.0
    for p in plan.paths:
        if not p.groups or pipeline.variant(p.variants[-1]).task != leaf:
            continue
        num += p.share * p.accuracy
        den += p.share
    return num / den if den > 0 else float("nan")


def authors_metrics(
    result: SimResult,
    pipeline: Pipeline,
    plans: Sequence[Plan] = (),
    first_stage_ms: Sequence[float] | np.ndarray = (),
) -> dict:
    """The authors' simulator's metrics, computed from a lokirl run.

    Args:
        result: The run (its engine must count drops per task: the simpy engine).
        pipeline: The pipeline it served.
        plans: The plans its solves returned, in order (for the mean objective).
        first_stage_ms: Arrival-to-batch-end times of the first-stage requests served
            (ms), for ``first_stage_over_<budget>``: the share of frames dropped at
            the first stage *or* served there later than a per-stage budget of
            :data:`STAGE_BUDGETS_MS`, i.e. what the authors' per-stage deadline
            would have dropped had nothing else changed.

    Returns:
        ``stage_violation_ratio`` (dropped + late stage requests over every stage
        request that ended, plus one sink request per served leaf request),
        ``first_stage_drop_ratio``, ``mean_workers``, ``mean_objective`` (NaN
        without plans), and lokirl's own ``frame_violation_ratio``,
        ``sub_violation_ratio``, ``accuracy``, ``effective_accuracy``,
        ``reconfigurations``, ``solves`` beside them.

    """
    subs = result.subrequests
    dropped = subs.dropped_total
    ended = subs.on_time + subs.late + dropped
    sink = result.leaf_served
    denominator = ended + sink
    root = pipeline.roots[0]
    objectives = [loki_objective(p, pipeline) for p in plans if p.paths]
    objectives = [o for o in objectives if not math.isnan(o)]
    return {
        "stage_violation_ratio": (dropped + subs.late) / denominator if denominator else 0.0,
        "first_stage_drop_ratio": (
            result.dropped_by_task.get(root, 0) / result.frames.arrived
            if result.frames.arrived
            else 0.0
        ),
        "mean_workers": result.mean_active_workers,
        "mean_objective": float(np.mean(objectives)) if objectives else float("nan"),
        "frame_violation_ratio": result.frame_violation_ratio,
        "sub_violation_ratio": result.sub_violation_ratio,
        "accuracy": result.accuracy,
        "effective_accuracy": result.effective_accuracy,
        "reconfigurations": result.reconfigurations,
        "solves": result.solves,
        "dropped_by_task": dict(result.dropped_by_task),
        "sink_requests": sink,
        "stage_requests": ended,
        "phases": _phase_counts(plans),
        **_over_budget(result, root, first_stage_ms),
    }


def _over_budget(result: SimResult, root: str, first_ms: Sequence[float] | np.ndarray) -> dict:
    arr = np.asarray(first_ms, dtype=float)
    if not arr.size or not result.frames.arrived:
        return {}
    dropped = result.dropped_by_task.get(root, 0)
    return {
        f"first_stage_over_{b:.0f}ms": (dropped + int((arr > b).sum())) / result.frames.arrived
        for b in STAGE_BUDGETS_MS
    }


def _phase_counts(plans: Iterable[Plan]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in plans:
        out[p.phase] = out.get(p.phase, 0) + 1
    return out


#: Per-stage deadlines the authors' simulator may give the first stage: the SLO split
#: equally over the app's depth (``Simulator.__init__``: ``perStageSLO =
#: latencySLO / numStages``), 250 / 3 ms counting the sink as a stage, 250 / 2 without.
STAGE_BUDGETS_MS: tuple[float, ...] = (250.0 / 3.0, 125.0)


class _FirstStageTimer(Simulation):
    """The simpy engine, also recording how long each first-stage request took.

    A diagnostic for the fidelity check: the time from a frame's arrival to the end
    of its first-stage batch (ms), for every first-stage request served.
    """

    def reset(self, trace: Any = None, rng: np.random.Generator | None = None) -> Any:
        self.first_stage_ms: list[float] = []
        return super().reset(trace, rng)

    def _finish(self, g: Any, batch: list) -> None:
        if g.task in self.roots:
            from lokirl.sim.engine import _DL

            t = self.env.now + self.slo_s
            self.first_stage_ms.extend(1000.0 * (t - item[0][_DL]) for item in batch)
        super()._finish(g, batch)


def run_recording_plans(
    pipeline: Pipeline,
    cluster: Cluster,
    trace: Any,
    controller: Any,
    config: SimConfig,
    rng: np.random.Generator,
    plan_cache: dict | None = None,
) -> tuple[SimResult, list[Plan], np.ndarray]:
    """Run ``controller`` as :func:`lokirl.sim.simulate` does, keeping every solve's plan.

    Returns:
        The result, the plans the solves returned (in order) and, for every
        first-stage request served, the time from its frame's arrival to the end of
        its batch (ms).

    """
    sim = _FirstStageTimer(
        pipeline,
        cluster,
        trace,
        config,
        rng,
        name=getattr(controller, "name", ""),
        plan_cache=plan_cache,
    )
    plans: list[Plan] = []

    def act(ctx: Any) -> None:
        plan = sim.apply(controller.decide(ctx), planner=controller)
        if plan is not None:
            plans.append(plan)

    act(sim.reset())
    while not sim.done:
        ctx = sim.step_epoch()
        if not sim.done:
            act(ctx)
    return sim.finish(), plans, np.asarray(sim.first_stage_ms)


@dataclass
class FidelityRun:
    """What :func:`fidelity` ran, for the record."""

    trace: str
    speedup: float
    low: float
    high: float
    seeds: tuple[int, ...]
    controllers: tuple[str, ...]
    swap: str
    rows: dict[str, dict] = field(default_factory=dict)
    wall_s: float = 0.0


def fidelity(
    pipeline: Pipeline,
    cluster: Cluster,
    config: SimConfig,
    controllers: Sequence[str] = ("loki", "inferline"),
    seeds: Sequence[int] = (0,),
    trace_name: str = "diurnal_600s",
    low: float = 50.0,
    high: float = 425.0,
    speedup: float = 1.0,
    plan_cache: dict | None = None,
) -> dict:
    """The authors' metrics for ``controllers`` on their diurnal trace, per seed and mean.

    Args:
        pipeline: The pipeline (the authors': ``traffic_analysis``).
        cluster: The cluster (theirs: 20 workers).
        config: Simulator configuration (its ``swap`` is the swap mode compared).
        controllers: Controller names.
        seeds: Arrival seeds.
        trace_name: Bundled trace, rescaled to ``low``..``high`` frames/s.
        low: Lowest rate after rescaling.
        high: Highest rate after rescaling.
        speedup: Time compression (1: real time, as the authors ran it).
        plan_cache: Shared plan memo.

    Returns:
        A JSON-ready dict: settings, ``rows[controller]`` with ``mean`` and
        ``runs`` (one dict of :func:`authors_metrics` per seed), and ``authors``.

    """
    from lokirl.core.controllers import make_controller
    from lokirl.traces import rescale, resolve_trace
    from lokirl.traces import speedup as compress

    trace = resolve_trace(trace_name)
    if speedup != 1.0:
        trace = compress(trace, speedup)
    trace = rescale(trace, low, high)
    t0 = time.perf_counter()
    rows: dict[str, dict] = {}
    for name in controllers:
        runs = []
        for seed in seeds:
            result, plans, first_ms = run_recording_plans(
                pipeline,
                cluster,
                trace,
                make_controller(name),
                config,
                np.random.default_rng(seed),
                plan_cache,
            )
            runs.append(authors_metrics(result, pipeline, plans, first_ms))
        keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
        rows[name] = {
            "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
            "runs": runs,
        }
    run = FidelityRun(
        trace=trace_name,
        speedup=speedup,
        low=low,
        high=high,
        seeds=tuple(seeds),
        controllers=tuple(controllers),
        swap=config.swap,
        rows=rows,
        wall_s=time.perf_counter() - t0,
    )
    return {**run.__dict__, "authors": AUTHORS_DIURNAL}


def relative_gap(ours: float, theirs: float) -> float:
    """``(ours - theirs) / theirs`` (NaN when ``theirs`` is 0 or either is NaN)."""
    if not theirs or math.isnan(ours) or math.isnan(theirs):
        return float("nan")
    return (ours - theirs) / theirs


def render_fidelity(by_mode: dict[str, dict]) -> str:
    """A Markdown table: the authors' figures beside lokirl's under each swap mode.

    Args:
        by_mode: ``{swap mode: fidelity(...) result}``.

    """
    if not by_mode:
        return ""
    modes = list(by_mode)
    first = by_mode[modes[0]]
    seeds = ", ".join(str(s) for s in first["seeds"])
    lines = [
        f"## Fidelity: lokirl vs the authors' simulator ({first['trace']} "
        f"{first['low']:g} -> {first['high']:g} frames/s at {first['speedup']:g}x; "
        f"seeds {seeds}, mean)",
        "",
        "| controller | metric | authors | "
        + " | ".join(f"lokirl `{m}`" for m in modes)
        + " | gap (`"
        + modes[0]
        + "`) |",
        "|---|---|---:|" + "---:|" * len(modes) + "---:|",
    ]
    for ctl in first["controllers"]:
        theirs = AUTHORS_DIURNAL.get(ctl, {})
        for key, label in (*METRICS, ("frame_violation_ratio", "frame violations (lokirl)")):
            vals = [by_mode[m]["rows"].get(ctl, {}).get("mean", {}).get(key) for m in modes]
            if all(v is None for v in vals):
                continue
            t = theirs.get(key)
            fmt = _pct if key.endswith("ratio") else (lambda x: f"{x:.1f}")
            gap = relative_gap(vals[0], t) if t is not None and vals[0] is not None else None
            lines.append(
                f"| {ctl} | {label} | {fmt(t) if t is not None else '-'} | "
                + " | ".join(fmt(v) if v is not None else "-" for v in vals)
                + f" | {'-' if gap is None or math.isnan(gap) else f'{gap:+.0%}'} |"
            )
    lines.append("")
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{x:.1%}"


#: What docs/reproduction.md stated before the swap modes, the authors' controller and
#: the measured load times (lokirl's periodic MILP as "Loki", stop-like swaps with
#: load times from parameter counts; traces at 2x, 3 seeds): the "before" column.
BEFORE: dict[str, str] = {
    "capacity_loki": "0.69x / 0.69x (then `loki` was the periodic MILP)",
    "capacity_periodic": "0.69x / 0.69x (loki-h1.35 125 / 120 vs inferline-h1.2 180 /"
    " inferline-h1.35 175)",
    "diurnal_loki": "34.2% / 18.9%",
    "diurnal_inferline_x": "1.37x / 0.94x",
    "diurnal_proteus_x": "0.95x / 0.99x",
    "step_loki": "38.1% / 21.8%",
    "step_inferline_x": "1.71x / 0.93x",
    "step_proteus_x": "1.03x / 0.88x",
    "low_workers": "6.3 (3.16x fewer)",
    "ample_loki": "9.1% / 3.1% (24 s)",
    "fid_stage": "-",
    "fid_first": "-",
    "fid_workers": "-",
    "fid_objective": "-",
}


def _claim_rows(res: dict) -> dict[str, str]:
    """One swap mode's reproduce results as the cells of :func:`render_claims`."""
    cells: dict[str, str] = {}
    eff = res.get("effective_capacity", {})
    best = eff.get("best", {})

    def cap(system: str) -> str:
        parts = []
        for level in ("sub", "frame"):
            b = best.get(level, {})
            if system not in b or "inferline" not in b:
                return "-"
            parts.append(
                f"{b[system]['ratio']:.2f}x ({b[system]['controller']} "
                f"{b[system]['capacity']:g} vs {b['inferline']['controller']} "
                f"{b['inferline']['capacity']:g})"
            )
        return " / ".join(parts)

    cells["capacity_loki"] = cap("loki")
    cells["capacity_periodic"] = cap("periodic-milp")
    for name, key in (("diurnal_600s", "diurnal"), ("step_600s", "step")):
        tr = res.get("traces", {}).get(name, {}).get("controllers", {})
        lk = tr.get("loki")
        if not lk:
            continue
        cells[f"{key}_loki"] = f"{lk['frame']['mean']:.1%} / {lk['sub']['mean']:.1%}"
        for other in ("inferline", "proteus"):
            o = tr.get(other)
            if o:
                fx = o["frame"]["mean"] / lk["frame"]["mean"] if lk["frame"]["mean"] else math.inf
                sx = o["sub"]["mean"] / lk["sub"]["mean"] if lk["sub"]["mean"] else math.inf
                cells[f"{key}_{other}_x"] = f"{fx:.2f}x / {sx:.2f}x"
        if key == "diurnal":
            cells["ample_loki"] = (
                f"{lk['ample_frame_ratio']:.1%} / {lk['ample_sub_ratio']:.1%} "
                f"({lk['ample_seconds']:.0f} s)"
            )
    claim = res.get("low_load", {}).get("claim") or {}
    if claim:
        cells["low_workers"] = f"{claim['loki_active_workers']:.1f} ({claim['ratio']:.2f}x fewer)"
    fid = res.get("fidelity", {}).get("rows", {}).get("loki", {}).get("mean")
    if fid:
        cells["fid_stage"] = f"{fid['stage_violation_ratio']:.1%}"
        cells["fid_first"] = f"{fid['first_stage_drop_ratio']:.1%}"
        cells["fid_workers"] = f"{fid['mean_workers']:.1f}"
        cells["fid_objective"] = f"{fid['mean_objective']:.1f}"
    return cells


#: (key, claim, paper's figure) in the order of :func:`render_claims`.
CLAIMS: tuple[tuple[str, str, str], ...] = (
    (
        "capacity_loki",
        "effective capacity vs hardware scaling alone, Loki's own controller"
        " (sub-request / frame level)",
        "> 2.7x",
    ),
    (
        "capacity_periodic",
        "same, lokirl's periodic MILP with root headroom (`loki-hX`)",
        "-",
    ),
    ("diurnal_loki", "diurnal peak trace: `loki` violations (frame / sub-request)", "-"),
    (
        "diurnal_inferline_x",
        "diurnal: InferLine-like violations / Loki's (frame / sub)",
        "up to 10x",
    ),
    ("diurnal_proteus_x", "diurnal: Proteus-like / Loki (frame / sub)", "up to 10x"),
    ("step_loki", "step peak trace: `loki` violations (frame / sub-request)", "-"),
    ("step_inferline_x", "step: InferLine-like / Loki (frame / sub)", "up to 10x"),
    ("step_proteus_x", "step: Proteus-like / Loki (frame / sub)", "up to 10x"),
    (
        "low_workers",
        "active workers at 50 frames/s, `loki` (vs 20 for peak provisioning)",
        "up to 2.67x fewer",
    ),
    (
        "ample_loki",
        "diurnal seconds with capacity >= 1.2x arrivals: `loki` violations (frame / sub)",
        "-",
    ),
    ("fid_stage", "1x diurnal, `loki`: violated stage requests, authors' definition", "5.6%*"),
    ("fid_first", "1x diurnal, `loki`: frames dropped at the first stage", "8.3%*"),
    ("fid_workers", "1x diurnal, `loki`: mean active workers", "16.8*"),
    ("fid_objective", "1x diurnal, `loki`: mean ILP objective", "97.3*"),
)


def render_claims(by_mode: dict[str, dict]) -> str:
    """Loki's claims side by side under each swap mode, with the doc's earlier figures.

    Args:
        by_mode: ``{swap mode: lokirl reproduce results dict}``.

    Returns:
        Markdown: the claims table, then the fidelity table.

    """
    modes = list(by_mode)
    cells = {m: _claim_rows(r) for m, r in by_mode.items()}
    lines = [
        "| claim | paper | before | " + " | ".join(f"`{m}`" for m in modes) + " |",
        "|---|---|---|" + "---|" * len(modes),
    ]
    for key, label, paper in CLAIMS:
        lines.append(
            f"| {label} | {paper} | {BEFORE.get(key, '-')} | "
            + " | ".join(cells[m].get(key, "-") for m in modes)
            + " |"
        )
    lines += [
        "",
        "\\* the authors' simulator on the same 1x diurnal day (not a paper figure).",
        "",
    ]
    fid = {m: r["fidelity"] for m, r in by_mode.items() if r.get("fidelity")}
    if fid:
        lines.append(render_fidelity(fid))
    return "\n".join(lines)


__all__ = [
    "AUTHORS_DIURNAL",
    "BEFORE",
    "CLAIMS",
    "render_claims",
    "METRICS",
    "STAGE_BUDGETS_MS",
    "authors_metrics",
    "fidelity",
    "loki_objective",
    "objective_leaf",
    "relative_gap",
    "render_fidelity",
    "run_recording_plans",
]
