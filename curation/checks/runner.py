"""Running the row checks over shards of the catalog: the work of one check-worker process.

A chunk of consecutive shards is read from the catalog in one query and checked batch by batch; each check's
outcomes are then split by shard and written as one Parquet part per shard and check, under
``<out_dir>/<check>/part-<hash of the shard>.parquet`` (curation.query.results). curation.jobs.run plans the shards
and records their completion; the engines (curation.jobs.engines) run this module's functions. It imports nothing of the
state database: a spawned worker process starts in a third of a second.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from curation.checks.base import Check, CheckContext, with_check_columns
from curation.checks.registry import select_checks
from db.catalog import catalog_identity, open_catalog


@dataclass(frozen=True)
class ShardUnit:
    source_file: str
    rows: int

    @property
    def key(self) -> str:
        return self.source_file

    @property
    def part(self) -> str:
        # Named by a hash of the shard path: stable across resumes even if other shards come and go.
        return f"part-{xxhash.xxh3_64_hexdigest(self.source_file.encode())}.parquet"


@dataclass(frozen=True)
class ShardTask:
    """Everything one process needs to check one shard (picklable for process pools)."""

    catalog_path: str
    out_dir: str
    run_id: str
    unit: ShardUnit
    checks: tuple[str, ...]
    params: dict[str, Any]
    batch_rows: int = 50_000  # rows checked together: DuckDB plans each SQL check once per batch


@dataclass
class CheckStats:
    rows: int = 0
    failed: int = 0
    seconds: float = 0.0

    def add(self, other: CheckStats) -> None:
        self.rows += other.rows
        self.failed += other.failed
        self.seconds += other.seconds


@dataclass
class ShardResult:
    unit: ShardUnit
    stats: dict[str, CheckStats]
    seconds: float


# Dictionary pages only for the columns with one value per file: sample ids are unique, and trying a dictionary for
# them first costs a third of the write and makes the file 2.5x bigger.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": ["check_name", "check_version", "run_id"]}


def write_part(path: Path, table: pa.Table) -> None:
    """Write a Parquet file atomically: a temporary name in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    pq.write_table(table, tmp, **PARQUET_OPTIONS)
    os.replace(tmp, path)


def instantiate(names: tuple[str, ...] | list[str], params: dict[str, Any]) -> list[Check]:
    registry = {c.name: c for c in select_checks(list(names))}
    return [registry[n](params) for n in names]


def shard_columns(checks: list[Check]) -> list[str]:
    cols = {"sample_id"}
    for c in checks:
        cols.update(c.columns)
    return sorted(cols)


def run_checks_on(batch: pa.Table, checks: list[Check], ctx: CheckContext,
                  stats: dict[str, CheckStats] | None = None) -> dict[str, pa.Table]:
    """Outcomes of each check on one Arrow batch of catalog rows (the heart of every engine)."""
    out: dict[str, pa.Table] = {}
    for check in checks:
        t0 = time.perf_counter()
        result = check.run(batch, ctx)
        if stats is not None:
            s = stats.setdefault(check.name, CheckStats())
            s.rows += result.num_rows
            s.failed += result.num_rows - int(pc.sum(result.column("passed")).as_py() or 0)
            s.seconds += time.perf_counter() - t0
        out[check.name] = result
    return out


def chunk_tasks(tasks: list[ShardTask], rows: int) -> list[list[ShardTask]]:
    """Consecutive shards grouped into chunks of at most ``rows`` rows (a bigger shard is a chunk of its own).

    The checks run once per chunk batch rather than once per shard: DuckDB plans the rule checks' queries in about
    75 ms per batch whatever its size, which is most of the work on a 10k-row shard.
    """
    chunks: list[list[ShardTask]] = []
    size = 0
    for task in tasks:
        if chunks and size + task.unit.rows <= rows:
            chunks[-1].append(task)
            size += task.unit.rows
        else:
            chunks.append([task])
            size = task.unit.rows
    return chunks


def process_shards(tasks: list[ShardTask], on_rows: Callable[[int], None] | None = None) -> list[ShardResult]:
    """Run the row checks over a chunk of shards (same run) in batches; write one Parquet part per shard and check.

    The shards are read in one query, in catalog order, and checked together; each check's outcomes are then split
    by shard, so every shard's parts hold what checking it alone gives.
    """
    started = time.perf_counter()
    first = tasks[0]
    checks = instantiate(first.checks, first.params)
    con, scratch = _connections(first)
    ctx = CheckContext(dict(first.params), scratch)
    keys = [t.unit.source_file for t in tasks]
    timing: dict[str, CheckStats] = {}  # whole-chunk figures; each shard's share of the seconds is taken below
    # shard -> check -> outcome tables, in batch order
    parts: dict[str, dict[str, list[pa.Table]]] = {k: {c.name: [] for c in checks} for k in keys}
    try:
        cols = shard_columns(checks)
        read = cols if "source_file" in cols or len(tasks) == 1 else [*cols, "source_file"]
        # BETWEEN lets DuckDB skip the row groups of other shards (the list alone scans the column).
        reader = con.sql(f"SELECT {', '.join(read)} FROM samples WHERE source_file BETWEEN ? AND ? "
                         "AND list_contains(?, source_file)",
                         params=[min(keys), max(keys), keys]).to_arrow_reader(first.batch_rows)
        for rb in reader:
            whole = pa.Table.from_batches([rb])
            for batch in _separable(whole, keys):
                outcomes = run_checks_on(batch, checks, ctx, timing)
                results = {name: table for name, table in outcomes.items() if table.num_rows}
                for name, key, table in _by_shard(results, batch, keys):
                    parts[key][name].append(table)
            if on_rows is not None:
                on_rows(whole.num_rows)
    finally:
        for c in checks:
            c.close()
    total_rows = sum(t.unit.rows for t in tasks) or 1
    elapsed = time.perf_counter() - started
    results = []
    for task in tasks:
        share = task.unit.rows / total_rows
        stats: dict[str, CheckStats] = {}
        for check in checks:
            tables = parts[task.unit.source_file][check.name]
            outcomes = pa.concat_tables(tables) if len(tables) > 1 else tables[0] if tables else None
            rows = outcomes.num_rows if outcomes is not None else 0
            passed = int(pc.sum(outcomes.column("passed")).as_py() or 0) if rows else 0
            stats[check.name] = CheckStats(rows, rows - passed, timing.get(check.name, CheckStats()).seconds * share)
            if rows:
                write_part(Path(task.out_dir) / check.name / task.unit.part,
                           with_check_columns(outcomes, check.name, check.version, task.run_id))
        results.append(ShardResult(task.unit, stats, elapsed * share))
    return results


def _separable(batch: pa.Table, keys: list[str]) -> list[pa.Table]:
    """The batch, whose outcomes _by_shard can tell apart by sample id; or, should a sample id repeat in it (ingest
    makes them unique), one batch per shard."""
    if len(keys) == 1 or pc.count_distinct(batch.column("sample_id")).as_py() == batch.num_rows:
        return [batch]
    files = batch.column("source_file")
    return [batch.filter(pc.equal(files, key)) for key in pc.unique(files).to_pylist()]


def _by_shard(results: dict[str, pa.Table], batch: pa.Table, keys: list[str]) -> Iterator[tuple[str, str, pa.Table]]:
    """The checks' outcomes on a batch, per shard: (check, shard, outcomes), rows in their order.

    Outcomes name their rows by sample id (unique in the batch: _separable), so each is found in the batch (one hash
    lookup for all the checks) and takes its row's shard.
    """
    if len(keys) == 1:
        for name, table in results.items():
            yield name, keys[0], table
        return
    if not results:
        return
    shard = pc.dictionary_encode(batch.column("source_file")).combine_chunks()
    names = shard.dictionary.to_pylist()
    ids = pa.chunked_array([c for t in results.values() for c in t.column("sample_id").chunks], pa.string())
    codes = pc.take(shard.indices, pc.index_in(ids, value_set=batch.column("sample_id"))).to_numpy()
    start = 0
    for name, table in results.items():
        mine = codes[start:start + table.num_rows]
        start += table.num_rows
        if (mine == mine[0]).all():
            yield name, names[int(mine[0])], table
            continue
        order = np.argsort(mine, kind="stable")
        bounds = np.flatnonzero(np.diff(mine[order])) + 1
        ordered = table.take(pa.array(order))
        for lo, hi in zip([0, *bounds], [*bounds, len(order)]):
            yield name, names[int(mine[order[lo]])], ordered.slice(lo, hi - lo)


# Per process and thread: the read-only catalog connection and the checks' scratch connection, kept from one chunk to
# the next of a run (opening the two costs ~35 ms); reopened when ingest replaced the catalog file.
_CONNECTIONS: dict[tuple, tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]] = {}


def _connections(task: ShardTask) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
    threads, memory = task.params.get("duckdb_threads"), task.params.get("duckdb_memory", "1GB")
    key = (threading.get_ident(), task.catalog_path, catalog_identity(task.catalog_path), threads, memory)
    if key not in _CONNECTIONS:
        close_connections()  # this thread's, of another catalog or an earlier file
        con = open_catalog(task.catalog_path, read_only=True)
        tune(con, threads, memory)
        # Rows come in the catalog's own (ingest) order, without the sort an ORDER BY costs (half the read: every
        # column is carried through it); the order of a part's rows means nothing.
        con.execute("SET preserve_insertion_order = true")
        scratch = duckdb.connect()
        scratch.execute(f"SET threads = {int(threads or 2)}")
        _CONNECTIONS[key] = (con, scratch)
    return _CONNECTIONS[key]


def close_connections() -> None:
    """Close the connections process_shards keeps for this thread (the engine calls it when a run ends: a worker
    holds the catalog only while a job runs)."""
    for key in [k for k in _CONNECTIONS if k[0] == threading.get_ident()]:
        for con in _CONNECTIONS.pop(key):
            con.close()


def tune(con, threads: int | None, memory: str | None) -> None:
    """Bound DuckDB's threads and memory (it spills to disk beyond the limit) and let it reorder rows freely."""
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory:
        con.execute("SET memory_limit = ?", [str(memory)])
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # a streamed chunk's query lasts while its rows are checked
