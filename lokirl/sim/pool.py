"""Worker processes for playing episodes in parallel.

The pool starts its workers from a clean server process (``forkserver``), not by
forking the calling process: a command that has already loaded a torch policy (or
any library with its own threads) and then forked would hand its workers locks held
by threads that do not exist in them, and a worker would wait on such a lock forever
(seen: ``lokirl bench --jobs 2`` with a ``ppo:`` controller stopped with every worker
idle). Workers import lokirl themselves, about a second each.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """A process pool of ``jobs`` workers that is safe to start from any process.

    Args:
        jobs: Number of worker processes (>= 1).

    Returns:
        The executor (use it as a context manager, or shut it down).

    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method))
