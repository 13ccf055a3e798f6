"""Episode worker pools never fork the calling process."""

import os

from lokirl.sim.pool import process_pool


def test_pool_workers_start_clean_and_run_work():
    with process_pool(2) as pool:
        assert pool._mp_context.get_start_method() in ("forkserver", "spawn")
        results = list(pool.map(abs, [-1, -2, 3]))
        pids = {pool.submit(os.getpid).result() for _ in range(2)}
    assert results == [1, 2, 3]
    assert os.getpid() not in pids
