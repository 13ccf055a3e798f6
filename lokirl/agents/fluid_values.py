"""The fluid model's reward of each library plan, computed for all plans at once.

:func:`plan_values` turns what each worker group of each library plan was fed and
lost (the fluid queues of :func:`~lokirl.agents.hindsight.epoch_model` and
:class:`~lokirl.agents.fluid_chooser.FluidState`) into the modelled reward and the
on-time frames of every (epoch, plan). The groups' layout (which plan and task each
belongs to) is fixed by the library, so :class:`PlanLayout` indexes it once and
every call is a few array operations whatever the number of plans: a decision of
``fluid`` on 100 workers (134 plans) no longer loops over plans in Python.

The arithmetic is the per-plan loop's, in a fixed order: sums over a (plan, task)'s
groups add the same elements in the same order (numpy sums each gathered row as it
sums the row it was gathered from), and a plan's task factors multiply in the
pipeline's task order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lokirl.core.pipeline import Pipeline
from lokirl.core.plan import Plan


@dataclass(frozen=True)
class PlanLayout:
    """Which groups make up each (plan, task) of a library, as gather indices.

    Attributes:
        n_plans: Plans in the library.
        pair_plan: Library index of each (plan, task) pair, plans in order and, within
            a plan, its tasks in the pipeline's order.
        pair_root: Whether each pair's task is a root.
        by_length: ``(pairs, columns)`` per number of groups in a pair: the pairs of
            that size and their groups' columns (pairs x size, each row in group order).
        pair_acc_max: Best accuracy among each pair's groups.
        task_pairs: Per task (pipeline order), the pair of each plan that has it
            (``-1``: the plan does not serve the task).
        first_pair: Each plan's first pair (its first task in the pipeline's order;
            ``-1``: a plan with no groups).
        active_share_num: Active workers of each plan.
        paths: Root-to-leaf chains of task indices.

    """

    n_plans: int
    pair_plan: np.ndarray
    pair_root: np.ndarray
    by_length: tuple[tuple[np.ndarray, np.ndarray], ...]
    pair_acc_max: np.ndarray
    task_pairs: np.ndarray
    first_pair: np.ndarray
    active_share_num: np.ndarray
    paths: tuple[tuple[int, ...], ...]

    @classmethod
    def build(
        cls,
        library: Sequence[Plan],
        own: np.ndarray,
        names: np.ndarray,
        accg: np.ndarray,
        pipeline: Pipeline,
    ) -> PlanLayout:
        """Index the groups of ``library`` (``own``, ``names``, ``accg``: per group).

        Raises:
            ValueError: a group names a task the pipeline does not have.

        """
        order = [t.name for t in pipeline.tasks]
        tix = {t: i for i, t in enumerate(order)}
        unknown = sorted({str(n) for n in names} - set(tix))
        if unknown:
            raise ValueError(f"plan groups name tasks {unknown} not in {pipeline.name}")
        roots = set(pipeline.roots)
        own = np.asarray(own)
        names = np.asarray(names)
        pair_plan: list[int] = []
        pair_root: list[bool] = []
        cols: list[np.ndarray] = []
        task_pairs = np.full((len(order), len(library)), -1, dtype=np.int64)
        for j in range(len(library)):
            m = own == j
            for t in order:
                c = np.flatnonzero(m & (names == t))
                if len(c) == 0:
                    continue
                task_pairs[tix[t], j] = len(pair_plan)
                pair_plan.append(j)
                pair_root.append(t in roots)
                cols.append(c)
        sizes = np.asarray([len(c) for c in cols], dtype=np.int64)
        by_length = tuple(
            (np.flatnonzero(sizes == k), np.stack([cols[i] for i in np.flatnonzero(sizes == k)]))
            for k in sorted(set(sizes.tolist()))
        )
        accg = np.asarray(accg, dtype=float)
        paths = tuple(tuple(tix[t] for t in p) for p in pipeline.root_to_leaf_tasks())
        return cls(
            n_plans=len(library),
            pair_plan=np.asarray(pair_plan, dtype=np.int64),
            pair_root=np.asarray(pair_root, dtype=bool),
            by_length=by_length,
            pair_acc_max=np.asarray([accg[c].max() for c in cols]),
            task_pairs=task_pairs,
            first_pair=np.asarray(
                [
                    next((int(i) for i in task_pairs[:, j] if i >= 0), -1)
                    for j in range(len(library))
                ],
                dtype=np.int64,
            ),
            active_share_num=np.asarray([p.active_workers for p in library], dtype=float),
            paths=paths,
        )

    def pair_sums(self, x: np.ndarray) -> np.ndarray:
        """Sum ``x`` (epochs x groups) over each pair's groups: epochs x pairs."""
        out = np.empty((x.shape[0], len(self.pair_plan)))
        for pairs, cols in self.by_length:
            out[:, pairs] = x[:, cols].sum(axis=2)
        return out

    def per_task(self, x: np.ndarray, fill: float) -> np.ndarray:
        """Spread a per-pair array (epochs x pairs) to tasks x epochs x plans (``fill``: absent)."""
        out = np.full((self.task_pairs.shape[0], x.shape[0], self.n_plans), fill)
        for t in range(self.task_pairs.shape[0]):
            has = self.task_pairs[t] >= 0
            out[t][:, has] = x[:, self.task_pairs[t][has]]
        return out


def plan_values(
    library: Sequence[Plan],
    own: np.ndarray,
    names: np.ndarray,
    accg: np.ndarray,
    fed: np.ndarray,
    lost: np.ndarray,
    admit: np.ndarray,
    a_ep: np.ndarray,
    workers: int,
    weights: dict[str, float],
    pipeline: Pipeline,
    layout: PlanLayout | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fluid model's reward and on-time frames per (epoch, plan).

    A frame is on time when it is admitted and none of its requests is lost: per
    task, a share ``f`` of requests lost loses ``1 - (1 - f)^b`` of the frames, ``b``
    the task's requests per admitted frame (1 at a root). The accuracy is each
    task's served-weighted variant accuracy, multiplied along root-to-leaf paths,
    paths weighted by their leaf's served requests.

    Args:
        library: The plans.
        own: Library index of each group (groups of all plans, concatenated).
        names: Task of each group.
        accg: Accuracy of each group.
        fed: Requests fed to each group (epochs x groups).
        lost: Requests each group lost (epochs x groups).
        admit: Share of frames each plan admits (epochs x plans).
        a_ep: Frames arrived per epoch.
        workers: Workers in the cluster.
        weights: Reward weights.
        pipeline: The pipeline.
        layout: :meth:`PlanLayout.build` of the same groups (built here if absent;
            a caller evaluating one library many times keeps it).

    Returns:
        (value, served), both epochs x plans: the modelled reward and the on-time frames.

    """
    lay = layout or PlanLayout.build(library, own, names, accg, pipeline)
    a_ep = np.asarray(a_ep, dtype=float)
    fed = np.asarray(fed, dtype=float)
    lost = np.asarray(lost, dtype=float)
    accg = np.asarray(accg, dtype=float)
    arrived = a_ep[:, None]
    # on-time share: admitted, and no request of the frame lost at any task
    fin, lo = lay.pair_sums(fed), lay.pair_sums(lost)
    adm = admit[:, lay.pair_plan]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(fin > 0, lo / np.maximum(fin, 1e-12), 0.0)
        per_frame = np.where(arrived > 0, fin / np.maximum(arrived * adm, 1e-12), 1.0)
    factor = (1.0 - f) ** np.where(lay.pair_root[None, :], 1.0, per_frame)
    ok = np.asarray(admit, dtype=float).copy()
    for fac in lay.per_task(factor, 1.0):  # tasks in the pipeline's order
        ok = ok * fac
    served = a_ep[:, None] * ok
    # accuracy: per task the served-weighted mean of its groups' accuracies
    done = fed - lost
    tot = lay.pair_sums(done)
    wacc = lay.pair_sums(done * accg[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        mix = np.where(tot > 0, wacc / tot, lay.pair_acc_max[None, :])
    mix_t = lay.per_task(mix / 100.0, 1.0)
    load_t = lay.per_task(tot, 0.0)
    present = lay.task_pairs >= 0
    num = np.zeros_like(ok)
    den = np.zeros_like(ok)
    for path in lay.paths:
        pa = np.ones_like(ok)
        for t in path:
            pa = pa * mix_t[t]
        leaf = path[-1]
        num += np.where(present[leaf][None, :], load_t[leaf] * pa * 100.0, 0.0)
        den += load_t[leaf]
    # nothing served at any leaf: the first task's accuracy (it multiplies a share of 0
    # on-time frames unless that task was fed nothing)
    fp = lay.first_pair
    fallback = np.where(fp >= 0, mix[:, np.maximum(fp, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(den > 0, num / np.maximum(den, 1e-12), fallback)
    frac = np.where(arrived > 0, ok, 0.0)
    bad = np.where(arrived > 0, 1.0 - ok, 0.0)
    act = lay.active_share_num / max(1, workers)
    value = frac * acc / 100.0 - weights["violation"] * bad - weights["workers"] * act[None, :]
    return value, served
