"""Handing the cluster over to a new plan: which worker takes which replica, where queues go.

One semantics for the simulator and the live runtime (DESIGN, "Reconfiguration"):
both engines call these pure functions when a plan is put in force, and apply
their answer to their own worker and queue objects.

* :func:`assign_workers` maps the new plan's replicas onto workers so as to change
  as few variants as possible: a worker that holds (or is loading) a replica's
  variant keeps it, those the running plan uses first and loaded ones before
  loading ones; the remaining replicas go to the workers left over, those the
  running plan does not use first, in worker order.
* :func:`old_queue_moves` says where each old group's queue goes: to the new
  plan's group of the same variant and accelerator; else it stays with the
  workers that keep serving that variant while they load (``overlap``; one
  *interim* group per variant and accelerator collects them); else it is drained
  by the workers that leave the plan (when the swap mode drains); else it is
  re-routed through the new routing table; :func:`hand_over_queues` applies that
  answer to an engine's own group objects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from lokirl.core.plan import Plan


@dataclass(frozen=True)
class WorkerHolding:
    """What one worker holds when a new plan arrives (an input of :func:`assign_workers`).

    Attributes:
        accelerator: Accelerator type of the worker.
        variant: The variant it holds, or is loading for the running plan (``None``:
            none).
        in_plan: Whether the running plan uses it.
        loading: Whether it is loading ``variant``.

    """

    accelerator: str
    variant: str | None
    in_plan: bool
    loading: bool


def assign_workers(plan: Plan, workers: Sequence[WorkerHolding]) -> tuple[int | None, ...]:
    """Map ``plan``'s replicas onto workers, changing as few variants as possible.

    For each (variant, accelerator) of the plan, in the order its groups name them,
    one slot per replica (group by group): the workers holding or loading that
    variant on that accelerator take the slots, those the running plan uses first,
    then loaded before loading, then in worker order. Slots left over go, in that
    order, to the first worker of the same accelerator among those not yet taken,
    the ones the running plan does not use first, then in worker order. A plan
    needing more workers of an accelerator than there are leaves the rest of its
    slots unfilled.

    Args:
        plan: The new plan.
        workers: Every worker that can take a replica, in worker order.

    Returns:
        Per worker, the index of the plan group it serves, or ``None`` (left over).

    """
    slots: dict[tuple[str, str], list[int]] = {}
    for i, g in enumerate(plan.groups):
        slots.setdefault((g.variant, g.accelerator), []).extend([i] * g.replicas)
    assigned: list[int | None] = [None] * len(workers)
    leftover: list[int] = []
    for (variant, accel), want in slots.items():
        holders = [
            k for k, w in enumerate(workers) if w.variant == variant and w.accelerator == accel
        ]
        holders.sort(key=lambda k: (not workers[k].in_plan, workers[k].loading, k))
        for k, gi in zip(holders, want, strict=False):
            assigned[k] = gi
        leftover.extend(want[len(holders) :])
    pool = [k for k in range(len(workers)) if assigned[k] is None]
    pool.sort(key=lambda k: (workers[k].in_plan, k))
    for gi in leftover:
        accel = plan.groups[gi].accelerator
        for j, k in enumerate(pool):
            if workers[k].accelerator == accel:
                assigned[k] = gi
                del pool[j]
                break
    return tuple(assigned)


#: Where one old group's queue goes (see :func:`old_queue_moves`).
QueueMoveKind = Literal["group", "interim", "join", "drain", "reroute"]


@dataclass(frozen=True)
class QueueMove:
    """Where one old group's queue goes when a new plan is put in force.

    Attributes:
        kind: ``group``: into the new plan's group ``target``; ``interim``: the old
            group stays, as the interim group of its variant and accelerator (its
            ``overlap`` workers keep serving it while they load); ``join``: into
            the old group ``target``, the interim group of the same variant and
            accelerator; ``drain``: the old group stays, drained by the workers
            that left the plan; ``reroute``: its requests are routed again through
            the new table.
        target: The group of ``group`` (a new plan group index) or ``join`` (an
            old group index); ``None`` otherwise.

    """

    kind: QueueMoveKind
    target: int | None = None


def old_queue_moves(
    old: Sequence[tuple[str, str]],
    new: Sequence[tuple[str, str]],
    still_served: Collection[tuple[str, str]],
    drained: Sequence[bool],
) -> tuple[QueueMove, ...]:
    """Where each old group's queue goes when a new plan is put in force.

    Args:
        old: Each old group's (variant, accelerator): the running plan's groups,
            then the groups still being drained.
        new: Each new plan group's (variant, accelerator).
        still_served: The (variant, accelerator) pairs that workers keep serving
            while they load a new variant (``overlap``).
        drained: Per old group, whether a worker the new plan leaves out drains it
            (the swap mode drains on removal and the worker served that group with
            requests queued).

    Returns:
        One :class:`QueueMove` per old group, in order. A group that stays (``interim``,
        ``drain``) keeps its queue; one that moves (``group``, ``join``) hands it on.

    Raises:
        ValueError: ``old`` and ``drained`` differ in length.

    """
    if len(old) != len(drained):
        raise ValueError(f"old groups ({len(old)}) and drained flags ({len(drained)}) differ")
    same: dict[tuple[str, str], int] = {}
    for i, key in enumerate(new):
        same.setdefault(key, i)
    interim: dict[tuple[str, str], int] = {}
    moves: list[QueueMove] = []
    for j, key in enumerate(old):
        if key in same:
            moves.append(QueueMove("group", same[key]))
        elif key in still_served:
            keep = interim.setdefault(key, j)
            moves.append(QueueMove("interim") if keep == j else QueueMove("join", keep))
        elif drained[j]:
            moves.append(QueueMove("drain"))
        else:
            moves.append(QueueMove("reroute"))
    return tuple(moves)


class QueuedGroup(Protocol):
    """A group with a queue (an engine's own group object)."""

    queue: Any  # a deque (or list) of the engine's requests


G = TypeVar("G", bound=QueuedGroup)


def hand_over_queues(
    old_groups: Sequence[G], new_groups: Sequence[G], moves: Sequence[QueueMove]
) -> tuple[list[G], list[G], list[G]]:
    """Apply :func:`old_queue_moves`' answer to an engine's own group objects.

    Queues that move (``group``, ``join``) are appended to their target's and
    cleared; the groups that stay or must be re-routed are returned for the engine
    to keep as it keeps them.

    Args:
        old_groups: The old groups, in the order given to :func:`old_queue_moves`.
        new_groups: The new plan's groups, in plan order.
        moves: :func:`old_queue_moves`' answer.

    Returns:
        ``(interim, drained, reroute)``: the old groups that stay as interim groups,
        those that stay to be drained, and those with requests to route again.

    """
    interim: list[G] = []
    drained: list[G] = []
    reroute: list[G] = []
    for og, move in zip(old_groups, moves, strict=True):
        if move.kind == "interim":
            interim.append(og)
        elif move.kind == "drain":
            drained.append(og)
        elif move.kind == "reroute":
            if og.queue:
                reroute.append(og)
        else:
            assert move.target is not None  # "group" and "join" name their target
            target = new_groups[move.target] if move.kind == "group" else old_groups[move.target]
            target.queue.extend(og.queue)
            og.queue.clear()
    return interim, drained, reroute


__all__ = [
    "QueuedGroup",
    "hand_over_queues",
    "QueueMove",
    "QueueMoveKind",
    "WorkerHolding",
    "assign_workers",
    "old_queue_moves",
]
