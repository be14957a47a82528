"""The local engine: shards checked in this process (one worker) or in a pool of spawned processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from curation.jobs import ShardResult, ShardTask, process_shard


def _pool_init() -> None:
    # Each process is one of N workers: keep DuckDB and torch from oversubscribing the cores.
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")


class LocalEngine:
    """Runs ShardTasks; with ``workers > 1`` each shard goes to a separate process (spawned: DuckDB and threads
    do not survive fork), at most ``workers`` in flight so a cancel stops quickly."""

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def map_shards(self, tasks: list[ShardTask], on_rows: Callable[[int], None] | None = None) -> Iterator[ShardResult]:
        if self.workers == 1:
            for task in tasks:
                yield process_shard(task, on_rows=on_rows)
            return
        tasks = [_single_threaded(t) for t in tasks]
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_pool_init)
        pending: set[Future] = set()
        queue = list(reversed(tasks))
        while queue or pending:
            while queue and len(pending) < self.workers:
                pending.add(self._pool.submit(process_shard, queue.pop()))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _single_threaded(task: ShardTask) -> ShardTask:
    params = dict(task.params)
    params.setdefault("duckdb_threads", 1)
    return ShardTask(task.catalog_path, task.out_dir, task.run_id, task.unit, task.checks, params, task.batch_rows)
