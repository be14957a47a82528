"""The local engine: shards checked in this process (one worker) or in a pool of spawned processes."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from curation.checks.runner import ShardResult, ShardTask, chunk_tasks, close_connections, process_shards


def _pool_init() -> None:
    # Each process is one of N workers: keep DuckDB and torch from oversubscribing the cores.
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")


class LocalEngine:
    """Runs ShardTasks in chunks of consecutive shards of about ``batch_rows`` rows (checks.runner.chunk_tasks).

    With ``workers > 1`` this process is one of the workers and ``workers - 1`` spawned processes (DuckDB and threads
    do not survive fork) are the others: this process would otherwise only wait, and starting one more costs half a
    CPU-second of imports. Each takes the next chunk when done with one; a spawned process has at most two in hand
    (one running, one waiting), so a cancel stops quickly.
    """

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def map_shards(self, tasks: list[ShardTask], on_rows: Callable[[int], None] | None = None) -> Iterator[ShardResult]:
        if not tasks:
            return
        rows = tasks[0].batch_rows
        if self.workers > 1:  # at least ~4 chunks a worker, so the last ones finish together
            rows = min(rows, max(1, math.ceil(sum(t.unit.rows for t in tasks) / (4 * self.workers))))
        chunks = chunk_tasks(tasks, rows)
        if self.workers == 1:
            for chunk in chunks:
                yield from process_shards(chunk, on_rows=on_rows)
            return
        queue = [[_single_threaded(t) for t in chunk] for chunk in reversed(chunks)]
        spawned = self.workers - 1
        self._pool = ProcessPoolExecutor(spawned, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_pool_init)
        pending: set[Future] = set()
        while queue or pending:
            while queue and len(pending) < 2 * spawned:
                pending.add(self._pool.submit(process_shards, queue.pop()))
            if queue:  # this process's share
                yield from process_shards(queue.pop(), on_rows=on_rows)
                finished = {f for f in pending if f.done()}
                pending -= finished
            else:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield from fut.result()

    def close(self) -> None:
        close_connections()  # those the in-process shards kept open
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _single_threaded(task: ShardTask) -> ShardTask:
    params = dict(task.params)
    params.setdefault("duckdb_threads", 1)
    return ShardTask(task.catalog_path, task.out_dir, task.run_id, task.unit, task.checks, params, task.batch_rows)
