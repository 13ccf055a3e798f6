"""Swapping a worker's variant, and the serving view the router is built from.

One semantics for the simulator and the live runtime (DESIGN, "Reconfiguration").
A worker that changes variant must load the new one; :data:`SwapMode` says what
it does meanwhile:

* ``overlap`` (default, make-before-break): the worker keeps serving its old
  variant while the new one loads, when both fit in the worker's memory
  (:meth:`~lokirl.core.pipeline.Pipeline.fits`); it switches when the new one is
  ready. When they do not fit, the swap falls back to ``stop``.
* ``stop``: the old variant stops at once; the worker serves nothing for the new
  variant's load time.
* ``free``: a swap takes no time (the Loki authors' simulator; for reproduction
  only), and a worker the plan no longer uses drains its queue.

:func:`plan_swap` is the per-worker decision. :func:`serving_view` turns "which
worker serves what right now" into a plan whose groups count only the workers
that can serve now; :func:`serving_table` builds the Most-Accurate-First routing
table from it. So the router counts a worker's capacity only from the time it
can serve: a loading worker's new group gets no traffic until it is ready, and an
``overlap`` worker counts for its old variant's group until it switches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

from lokirl.core.pipeline import Pipeline
from lokirl.core.plan import Plan, WorkerGroup
from lokirl.core.router import RoutingTable, build_routing_table

#: How a worker changes variant; see the module docstring.
SwapMode = Literal["overlap", "stop", "free"]

#: The modes, default first.
SWAP_MODES: tuple[str, ...] = get_args(SwapMode)

#: One line per mode, for command-line help.
SWAP_HELP: Mapping[str, str] = {
    "overlap": "make-before-break (default): a worker keeps serving its old variant while "
    "the new one loads (when both fit in its memory; else as 'stop'), then switches",
    "stop": "the old variant stops at once; the worker serves nothing for the new "
    "variant's load time",
    "free": "swaps take no time and a removed worker drains its queue (the Loki authors' "
    "simulator; for reproducing their numbers only)",
}


def swap_help() -> str:
    """Help text of a ``--swap`` option: every mode and what it does."""
    return "; ".join(f"{m}: {SWAP_HELP[m]}" for m in SWAP_MODES)


def check_swap_mode(mode: str) -> SwapMode:
    """``mode`` if it is a :data:`SwapMode`; raises ``ValueError`` otherwise."""
    if mode not in SWAP_MODES:
        raise ValueError(f"swap mode must be one of {', '.join(SWAP_MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Swap:
    """What one worker does when it changes variant.

    Attributes:
        mode: The effective mode: ``overlap`` falls back to ``stop`` when the two
            variants do not fit together (or when the worker holds no variant).
        ready_s: Seconds from now until the new variant serves (0 under ``free``).
        old_serves: Whether the old variant keeps serving until then.
        fits: The memory check of old and new together (``None``: unknown, or not
            asked because the mode is not ``overlap``).

    """

    mode: SwapMode
    ready_s: float
    old_serves: bool
    fits: bool | None = None


def plan_swap(
    pipeline: Pipeline,
    accelerator: str,
    old: str | None,
    new: str,
    mode: SwapMode = "overlap",
    load_time_s: float | None = None,
) -> Swap:
    """The swap of one worker from variant ``old`` to ``new`` (a pure function).

    Under ``overlap`` the old variant keeps serving while the new one loads when
    ``pipeline.fits(accelerator, [old, new])`` is true **or unknown** (``None``:
    a variant's or the worker's memory is not profiled; we assume it fits, as a
    worker that ran out of memory would show in the measured profile); when it is
    false the swap is a ``stop``.

    Args:
        pipeline: The pipeline (variants' load times and memory).
        accelerator: Accelerator type of the worker.
        old: Variant the worker holds now (``None``: none).
        new: Variant it must serve.
        mode: The requested :data:`SwapMode`.
        load_time_s: Seconds the load takes; default: ``new``'s profiled
            ``load_time_s``.

    Returns:
        The effective :class:`Swap`. ``old == new`` is no swap: ready at once, the
        variant serving throughout.

    Raises:
        ValueError: ``mode`` is not a :data:`SwapMode`.
        KeyError: a variant is not in the pipeline.

    """
    mode = check_swap_mode(mode)
    if old == new:
        return Swap(mode, 0.0, True)
    load = pipeline.variant(new).load_time_s if load_time_s is None else float(load_time_s)
    if mode == "free":
        return Swap("free", 0.0, False)
    if mode == "stop" or old is None:
        return Swap("stop", max(0.0, load), False)
    fits = pipeline.fits(accelerator, [old, new])
    if fits is False:
        return Swap("stop", max(0.0, load), False, fits)
    return Swap("overlap", max(0.0, load), True, fits)


def drains_on_removal(mode: SwapMode) -> bool:
    """Whether a worker the new plan leaves out serves its queued requests before idling.

    Under ``overlap`` and ``free`` it does (its variant stays loaded); under
    ``stop`` its requests are re-routed at once.
    """
    return check_swap_mode(mode) != "stop"


@dataclass(frozen=True)
class WorkerServing:
    """What one worker can serve right now (an input of :func:`serving_view`).

    Attributes:
        accelerator: Accelerator type of the worker.
        group: Index into the plan's groups of the group the worker is assigned
            to; ``None``: the plan does not use it.
        ready: Whether it serves that group's variant now (not loading).
        old: While it loads under ``overlap``: the group (of the previous plan)
            whose variant it keeps serving; ``None`` otherwise.

    """

    accelerator: str
    group: int | None
    ready: bool
    old: WorkerGroup | None = None


@dataclass(frozen=True)
class ServingView:
    """The running plan as the router should see it.

    Attributes:
        plan: The plan with each group's ``replicas`` set to the workers that serve
            it now (0 for a group whose workers all load), followed by *interim*
            groups: old variants that ``overlap`` workers keep serving while no group
            of the plan runs them.
        n_plan: Number of the plan's own groups: view group ``i < n_plan`` is plan
            group ``i``; the rest are interim.
        serving: Per worker (in the order given), the view group it takes requests
            from now, or ``None``.

    """

    plan: Plan
    n_plan: int
    serving: tuple[int | None, ...]

    @property
    def interim(self) -> tuple[WorkerGroup, ...]:
        """The interim groups (old variants still serving)."""
        return self.plan.groups[self.n_plan :]


def serving_view(plan: Plan, workers: Sequence[WorkerServing]) -> ServingView:
    """The serving view of ``plan`` given what each worker can serve now.

    A ready worker counts for its plan group. An ``overlap`` worker still loading
    counts for a plan group that runs its old variant on its accelerator (batch
    sizes change for free), else for an interim group with its old group's batch
    size and profile (one interim group per old variant and accelerator). A worker
    that is loading otherwise, or not in the plan, counts nowhere.

    Args:
        plan: The running plan.
        workers: Every worker's state.

    Returns:
        The :class:`ServingView`.

    """
    n = len(plan.groups)
    counts = [0] * n
    by_variant: dict[tuple[str, str], int] = {}
    for i, g in enumerate(plan.groups):
        by_variant.setdefault((g.variant, g.accelerator), i)
    interim: list[WorkerGroup] = []
    interim_at: dict[tuple[str, str], int] = {}
    serving: list[int | None] = []
    for w in workers:
        if w.group is not None and w.ready:
            gid: int | None = w.group
        elif w.old is not None:
            key = (w.old.variant, w.accelerator)
            gid = by_variant.get(key)
            if gid is None:
                gid = interim_at.get(key)
                if gid is None:
                    gid = interim_at[key] = n + len(interim)
                    interim.append(replace(w.old, replicas=0, load=0.0))
                    counts.append(0)
        else:
            gid = None
        if gid is not None:
            counts[gid] += 1
        serving.append(gid)
    groups = [replace(g, replicas=c) for g, c in zip((*plan.groups, *interim), counts, strict=True)]
    return ServingView(replace(plan, groups=tuple(groups)), n, tuple(serving))


def serving_table(
    view: ServingView,
    pipeline: Pipeline,
    demand: float | None = None,
    branching: Mapping[str, Mapping[str, float]] | None = None,
) -> RoutingTable:
    """Most-Accurate-First routing table of a serving view.

    Group ids of the table are view group ids. Groups with no serving worker get
    no traffic; demand beyond what serves now is dropped at admission.

    Args:
        view: From :func:`serving_view`.
        pipeline: The pipeline.
        demand: Root demand estimate (frames/s); the plan's demand if ``None``.
        branching: Estimated branching factors (see
            :func:`~lokirl.core.router.build_routing_table`).

    """
    return build_routing_table(view.plan, pipeline, demand, branching)


__all__ = [
    "SWAP_HELP",
    "SWAP_MODES",
    "ServingView",
    "Swap",
    "SwapMode",
    "WorkerServing",
    "check_swap_mode",
    "drains_on_removal",
    "plan_swap",
    "serving_table",
    "serving_view",
    "swap_help",
]
