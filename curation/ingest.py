"""Ingest: shards -> the DuckDB catalog (+ text index). Idempotent per file; bad input is recorded, never fatal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from db.catalog import SAMPLE_COLUMNS, open_for_writing

from .canonical import canonical_select
from .readers import ReaderError, RowError, detect_format, find_shards, read_shard
from .readers.media_refs import clear_caches
from .sample_ids import TakenIds, previous_ids
from .settings import Settings
from .taxonomy import load_taxonomy
from .text_index import TextIndexWriter, document_json_sql

# Files share a transaction until this many rows have landed. DuckDB writes an insert straight into the database
# file only in whole row groups (122,880 rows); a commit per shard (often smaller) sent every row through the WAL
# and then a checkpoint: twice the writing, a third of the ingest time at 4.1M rows.
ROWS_PER_COMMIT = 500000


@dataclass
class IngestSummary:
    ingest_run: int
    files_seen: int = 0
    files_ingested: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    rows_ok: int = 0
    rows_failed: int = 0
    rows_with_problems: int = 0
    samples_total: int = 0
    seconds: float = 0.0
    errors: list[RowError] = field(default_factory=list)


def infer_dataset(path: Path) -> str:
    """vst-p / vst-r when the path says so, else the name of the folder given to ingest."""
    for part in reversed(path.resolve().parts):
        low = part.lower().replace("-", "_")
        if low in ("vst_p", "vstp"):
            return "vst-p"
        if low in ("vst_r", "vstr"):
            return "vst-r"
    return path.resolve().name if path.is_dir() else path.resolve().parent.name


def ingest(
    paths: list[str | Path],
    settings: Settings,
    dataset: str | None = None,
    force: bool = False,
    progress: bool = True,
    text_index: bool = True,
) -> IngestSummary:
    """Ingest files/folders into the catalog. Unchanged files (same size and mtime) are skipped unless ``force``."""
    started = time.perf_counter()
    settings.ensure_dirs()
    tax = load_taxonomy()
    select_sql = canonical_select(
        tax, source="(SELECT *, ?::VARCHAR AS dataset, ?::VARCHAR AS subset, ?::INTEGER AS ingest_run FROM raw_stage)"
    )
    clear_caches()
    with open_for_writing(settings.catalog_path) as target:
        con = target.con
        run = con.execute("SELECT coalesce(max(ingest_run), 0) + 1 FROM ingest_runs").fetchone()[0]
        con.execute("INSERT INTO ingest_runs VALUES (?, now(), NULL, 0, 0, 0)", [run])
        summary = IngestSummary(ingest_run=run)
        jobs: list[tuple[Path, Path]] = []
        for root in map(Path, paths):
            if not root.exists():
                _record_error(con, summary, RowError(str(root), None, None, "path does not exist"), run)
                continue
            jobs.extend((root, f) for f in find_shards([root]))
        summary.files_seen = len(jobs)
        todo = jobs if force else _changed(con, jobs)
        summary.files_unchanged = len(jobs) - len(todo)
        writer = TextIndexWriter(settings.text_index_dir) if text_index else None
        taken = TakenIds(con) if todo else None
        bar = tqdm(total=len(jobs), initial=summary.files_unchanged, desc="ingest", unit="file", disable=not progress)
        pending = 0  # rows written since the last commit
        con.execute("BEGIN TRANSACTION")
        try:
            for shard in _read_ahead(todo):
                shard_dataset = dataset or infer_dataset(shard.root)
                pending += _write_shard(con, shard, shard_dataset, run, select_sql, summary, writer, taken)
                if pending >= ROWS_PER_COMMIT:
                    con.execute("COMMIT")
                    if writer and target.in_place:  # the text index commits when the catalog's rows become visible
                        writer.commit()
                    con.execute("BEGIN TRANSACTION")
                    pending = 0
                bar.update()
                bar.set_postfix(rows=summary.rows_ok, failed=summary.rows_failed)
        except BaseException:
            # Both stores drop the same uncommitted files: this group's in place, all of them in a copy (never swapped).
            con.execute("ROLLBACK")
            if writer:
                try:
                    writer.rollback()
                finally:
                    writer.close()
            raise
        finally:
            bar.close()
        con.execute("COMMIT")
        if writer:
            writer.commit()
            writer.close()
        summary.samples_total, summary.rows_with_problems = con.execute(
            "SELECT count(*), count(*) FILTER (ingest_run = ? AND len(problems) > 0) FROM samples", [run]
        ).fetchall()[0]
        con.execute(
            "UPDATE ingest_runs SET finished_at = now(), files = ?, rows_ok = ?, rows_failed = ? WHERE ingest_run = ?",
            [summary.files_ingested, summary.rows_ok, summary.rows_failed, run],
        )
        con.execute("CHECKPOINT")
    summary.seconds = time.perf_counter() - started
    return summary


def _record_error(con, summary: IngestSummary, err: RowError, run: int) -> None:
    summary.errors.append(err)
    con.execute(
        "INSERT INTO ingest_errors (file, row_index, field, reason, ingest_run) VALUES (?, ?, ?, ?, ?)",
        [err.file, err.row_index, err.field, err.reason, run],
    )


def _changed(con: duckdb.DuckDBPyConnection, jobs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The jobs whose file is new or changed (size or mtime) since it was last ingested."""
    rows = con.execute("SELECT file, size, mtime FROM ingested_files").fetchall()
    known = {f: (size, mtime) for f, size, mtime in rows}
    todo = []
    for root, path in jobs:
        prev, stat = known.get(str(path.resolve())), path.stat()
        if not (prev and prev[0] == stat.st_size and abs(prev[1] - stat.st_mtime) < 1e-6):
            todo.append((root, path))
    return todo


@dataclass
class _ReadShard:
    """One file read in full before the catalog is touched: an unusable file leaves its earlier rows in place."""

    root: Path
    source_file: str  # resolved path
    size: int
    mtime: float
    source_format: str | None = None
    table: pa.Table | None = None
    errors: list[RowError] = field(default_factory=list)
    failure: str | None = None  # why the file as a whole is unusable


def _read_file(root: Path, path: Path) -> _ReadShard:
    stat = path.stat()
    shard = _ReadShard(root, str(path.resolve()), stat.st_size, stat.st_mtime)
    try:
        shard.source_format = detect_format(path)
        batches = list(read_shard(path, shard.errors.append, shard.source_file))
        shard.table = pa.Table.from_batches(batches) if batches else None
    except ReaderError as exc:
        shard.failure = str(exc)
    return shard


def _read_ahead(jobs: list[tuple[Path, Path]]) -> Iterator[_ReadShard]:
    """The jobs' files read in order, the next one on a thread while the caller writes this one: the Python readers
    (pyarrow compute, which frees the GIL) then run beside DuckDB's insert instead of taking turns with it."""
    with ThreadPoolExecutor(1, thread_name_prefix="ingest-read") as pool:
        ahead: Future | None = None
        for root, path in jobs:
            following = pool.submit(_read_file, root, path)
            if ahead is not None:
                yield ahead.result()
            ahead = following
        if ahead is not None:
            yield ahead.result()


def _write_shard(
    con: duckdb.DuckDBPyConnection,
    shard: _ReadShard,
    dataset: str,
    run: int,
    select_sql: str,
    summary: IngestSummary,
    writer: TextIndexWriter | None,
    taken: TakenIds,
) -> int:
    """Replace one file's rows inside the caller's transaction; returns the rows written."""
    source_file = shard.source_file
    if shard.failure is not None:
        summary.files_failed += 1
        _record_error(con, summary, RowError(source_file, None, None, shard.failure), run)
        return 0
    subset = Path(source_file).parent.name  # the subset folder (si_distance/, video/, ...) names the subset
    # Re-ingesting a file replaces its rows: same rows, no duplicates, and errors from the last try go; unchanged
    # rows keep their ids. A file never ingested has no rows to look for (each lookup scans the catalog).
    previous = None
    if con.execute("SELECT count(*) FROM ingested_files WHERE file = ?", [source_file]).fetchall()[0][0]:
        previous = previous_ids(con, source_file)
        con.execute("DELETE FROM samples WHERE source_file = ?", [source_file])
    con.execute("DELETE FROM ingest_errors WHERE file = ?", [source_file])
    rows = (
        _insert_canonical(con, shard.table, select_sql, dataset, subset, run, taken, source_file, previous)
        if shard.table is not None
        else 0
    )
    for err in shard.errors:
        _record_error(con, summary, err, run)
    con.execute(
        "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
        [source_file, dataset, shard.source_format, shard.size, shard.mtime, rows, len(shard.errors), run],
    )
    summary.files_ingested += 1
    summary.rows_ok += rows
    summary.rows_failed += len(shard.errors)
    if writer is not None:
        docs = con.sql(f"{document_json_sql('samples')} WHERE source_file = $f", params={"f": source_file})
        writer.replace_file(source_file, docs.to_arrow_table().to_batches(max_chunksize=20_000))
    return rows


def _insert_canonical(
    con,
    raw: pa.Table,
    select_sql: str,
    dataset: str,
    subset: str | None,
    run: int,
    taken: TakenIds,
    source_file: str,
    previous: pa.Table | None,
) -> int:
    if pc.all(pc.greater(raw["row_index"][1:], raw["row_index"][:-1])).as_py() is False:
        raw = raw.sort_by("row_index")  # readers yield file order; the ids below come back in row_index order
    ids = taken.assign(con, raw, dataset, source_file, previous)
    # The ids ride along as columns rather than a join, so the scan stays in file order without an ORDER BY:
    # rows land in row_index order and the catalog's physical order does not depend on thread timing.
    staged = raw.append_column("sample_id", ids["sample_id"]).append_column("content_hash", ids["content_hash"])
    con.register("raw_stage", staged)
    try:
        cols = ", ".join(name for name, _ in SAMPLE_COLUMNS)
        con.execute(f"INSERT INTO samples ({cols}) {select_sql}", [dataset, subset, run])
    finally:
        con.unregister("raw_stage")
    return raw.num_rows
