"""A plan library on disk, shared by every environment and process that trains on it.

Training re-solves the allocator thousands of times for the same few clusters and
demand levels; a work-bounded (``deterministic``) solve gives the same plan for the
same inputs on every run, so a plan solved once can be handed out again instead of
solved again, by every environment of a vectorised run, by later runs and by other
training seeds. :class:`PlanLibrary` keeps them in one SQLite file (the standard
library's ``sqlite3``; several processes read and write it at once) behind an
in-memory front.

A plan is filed under everything the allocator reads (:func:`plan_key`): the
pipeline's planning content (tasks, variants, profiles, accuracies, SLO: not the
load times, which the allocator never reads, so that episodes with scaled load times
share plans), the cluster, the demand, the allocator options and, when the solve
depends on the running plan (warm start or churn term), the running plan's content
(:func:`lokirl.sim.solving.running_plan_signature`): a plan solved against one
running plan is never handed out against another. Only work-bounded solves are
filed (a wall-clock-limited solve depends on the machine's load), and the key
carries the versions of lokirl and HiGHS.
"""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from lokirl.core.allocator import AllocatorOptions
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.sim.solving import running_plan_signature

#: Default file of the library (relative to the working directory).
DEFAULT_LIBRARY = "runs/plan_library.sqlite"
#: Filings between two checks of the cap (:meth:`PlanLibrary.prune`).
_PRUNE_EVERY = 1000


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("lokirl", "highspy"):
        try:
            out.append(f"{pkg}={version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg}=?")
    return ",".join(out)


_VERSIONS = _versions()
_FINGERPRINTS: dict[int, tuple[Pipeline, str]] = {}


def planning_fingerprint(pipeline: Pipeline) -> str:
    """A digest of what the allocator reads of ``pipeline`` (everything but load times).

    Args:
        pipeline: The pipeline.

    Returns:
        A hex digest, equal for pipelines that differ only in their variants' load
        times and load sources.

    """
    hit = _FINGERPRINTS.get(id(pipeline))
    if hit is not None and hit[0] is pipeline:
        return hit[1]
    tasks = tuple(
        replace(
            t,
            variants=tuple(
                replace(v, load_time_s=0.0, load_time_host_s=None, load_source="")
                for v in t.variants
            ),
        )
        for t in pipeline.tasks
    )
    text = repr(replace(pipeline, tasks=tasks, description=""))
    digest = hashlib.sha256(text.encode()).hexdigest()
    if len(_FINGERPRINTS) > 256:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(pipeline)] = (pipeline, digest)
    return digest


def plan_key(
    pipeline: Pipeline,
    cluster: Cluster,
    demand: float,
    options: AllocatorOptions,
    current: Plan | None,
) -> str:
    """The library key of a solve: a digest of every input the allocator reads.

    Args:
        pipeline: The pipeline.
        cluster: The cluster.
        demand: The demand solved for (frames/s), already rounded by the caller.
        options: The allocator options of the solve.
        current: The running plan (part of the key only when the solve depends on it).

    """
    parts = (
        _VERSIONS,
        planning_fingerprint(pipeline),
        tuple(sorted(cluster.workers.items())),
        repr(float(demand)),
        repr(options),
        repr(running_plan_signature(current, options)),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class PlanLibrary:
    """Solved plans in one SQLite file, shared by processes, behind an LRU memory front.

    The file is capped at ``max_plans``: past it, every ``_PRUNE_EVERY`` filings the
    oldest plans go until a tenth of the room is free again (a plan that is gone is
    solved again when asked for: work-bounded solves give the same plan).

    Args:
        path: The SQLite file (created with its folder if missing).
        memory: Plans kept in memory per process.
        max_plans: Plans the file keeps at most (about 1 KB each; 0: no cap).

    Raises:
        OSError: The file cannot be created or opened (the message names it).
        ValueError: ``memory`` or ``max_plans`` is negative.

    """

    def __init__(
        self, path: str | Path = DEFAULT_LIBRARY, memory: int = 8192, max_plans: int = 500_000
    ) -> None:
        if memory < 0 or max_plans < 0:
            raise ValueError(
                f"plan library {path}: memory and max_plans must be >= 0, "
                f"got {memory} and {max_plans}"
            )
        self.path = Path(path)
        self.memory = memory
        self.max_plans = max_plans
        self.pruned = 0
        self._front: OrderedDict[str, Plan] = OrderedDict()
        self.hits = self.misses = self.stored = 0
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        # Opened lazily, so that an environment holding a library can be pickled to
        # a worker process before its first solve.
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS plans (key TEXT PRIMARY KEY, plan BLOB)")
            except (OSError, sqlite3.Error) as exc:
                raise OSError(
                    f"plan library {self.path}: cannot open ({exc}); pass another path "
                    "(plan_library in the training file) or remove the file"
                ) from exc
            self._db = db
        return self._db

    def _execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """Run one statement; a damaged file is named, with what to do about it."""
        try:
            return self._conn().execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise OSError(
                f"plan library {self.path} is damaged ({exc}): it only caches solved plans "
                f"(every one is solved again when missing), so remove it with its -wal and "
                f"-shm files, or pass another path (plan_library in the training file)"
            ) from exc

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_db"] = None
        state["_front"] = OrderedDict()
        return state

    def get(self, key: str) -> Plan | None:
        """The plan filed under ``key``, or None."""
        plan = self._front.get(key)
        if plan is not None:
            self._front.move_to_end(key)
            self.hits += 1
            return plan
        row = self._execute("SELECT plan FROM plans WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        plan = pickle.loads(row[0])
        self._remember(key, plan)
        self.hits += 1
        return plan

    def put(self, key: str, plan: Plan) -> None:
        """File ``plan`` under ``key`` (a failed plan is not filed)."""
        if plan.status == "failed":
            return
        self._remember(key, plan)
        blob = pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)
        self._execute("INSERT OR IGNORE INTO plans VALUES (?, ?)", (key, blob))
        self.stored += 1
        if self.max_plans and self.stored % _PRUNE_EVERY == 0:
            self.prune()

    def prune(self) -> int:
        """Drop the oldest plans while the file holds more than ``max_plans``.

        Returns:
            How many plans were dropped (down to 90% of ``max_plans``).

        """
        if not self.max_plans or self.count() <= self.max_plans:
            return 0
        keep = int(self.max_plans * 0.9)
        cur = self._execute(
            "DELETE FROM plans WHERE rowid IN (SELECT rowid FROM plans ORDER BY rowid "
            "LIMIT max(0, (SELECT COUNT(*) FROM plans) - ?))",
            (keep,),
        )
        self.pruned += cur.rowcount
        return cur.rowcount

    def _remember(self, key: str, plan: Plan) -> None:
        self._front[key] = plan
        if len(self._front) > self.memory:
            self._front.popitem(last=False)

    def count(self) -> int:
        """Plans in the file."""
        return int(self._execute("SELECT COUNT(*) FROM plans").fetchone()[0])

    def close(self) -> None:
        """Close the file (the library reopens it on next use)."""
        if self._db is not None:
            self._db.close()
            self._db = None
