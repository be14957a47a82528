"""Ingest: shards -> the DuckDB catalog (+ text index). Idempotent per file; bad input is recorded, never fatal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curation.ingest.canonical import canonical_select
from curation.ingest.readers import ReaderError, RowError, detect_format, find_shards, read_shard
from curation.ingest.readers.media_refs import clear_caches
from curation.ingest.sample_ids import GroupFile, TakenIds, previous_ids
from curation.ingest.text_index import TextIndexWriter, document_json_sql
from curation.settings import Settings
from curation.vst.taxonomy import load_taxonomy
from db.catalog import SAMPLE_COLUMNS, open_for_writing

# Files share a transaction until this many rows have landed. DuckDB writes an insert straight into the database
# file only in whole row groups (122,880 rows); a commit per shard (often smaller) sent every row through the WAL
# and then a checkpoint: twice the writing, a third of the ingest time at 4.1M rows.
ROWS_PER_COMMIT = 500000
# Files are written in groups of about this many rows: one id pass, one INSERT, one text-index read per group.
# DuckDB binds and plans the canonical SELECT anew for every statement (about 60 ms); a statement per file made a
# shard of 2,000 rows (embedded images keep real shards small) cost three times its rows' work.
ROWS_PER_GROUP = 100_000


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
    select_sql = canonical_select(tax, source="(SELECT *, ?::INTEGER AS ingest_run FROM raw_stage)")
    clear_caches()
    with open_for_writing(settings.catalog_path) as target:
        con = target.con
        con.execute("SET enable_progress_bar = false")  # tqdm shows ingest's progress; DuckDB's bar would interleave
        run = con.execute("SELECT coalesce(max(ingest_run), 0) + 1 FROM ingest_runs").fetchone()[0]
        con.execute("INSERT INTO ingest_runs VALUES (?, now(), NULL, 0, 0, 0)", [run])
        summary = IngestSummary(ingest_run=run)
        jobs: list[tuple[Path, Path]] = []
        seen: set[Path] = set()  # a file reached through two of the paths is ingested once
        for root in map(Path, paths):
            if not root.exists():
                _record_error(con, summary, RowError(str(root), None, None, "path does not exist"), run)
                continue
            jobs.extend((root, f) for f in find_shards([root]) if _first_time(f, seen))
        summary.files_seen = len(jobs)
        known = _ingested_files(con)
        todo = jobs if force else _changed(jobs, known)
        summary.files_unchanged = len(jobs) - len(todo)
        writer = TextIndexWriter(settings.text_index_dir) if text_index else None
        taken = TakenIds(con) if todo else None
        bar = tqdm(total=len(jobs), initial=summary.files_unchanged, desc="ingest", unit="file", disable=not progress)
        pending = 0  # rows written since the last commit
        con.execute("BEGIN TRANSACTION")
        try:
            # A group never spans a commit: what a commit makes durable is whole groups.
            for group in _groups(_read_ahead(todo), min(ROWS_PER_GROUP, ROWS_PER_COMMIT)):
                datasets = [dataset or infer_dataset(shard.root) for shard in group]
                pending += _write_group(con, group, datasets, known, run, select_sql, summary, writer, taken)
                if pending >= ROWS_PER_COMMIT:
                    con.execute("COMMIT")
                    # Write what the commit left in the WAL now: left to the end, the last checkpoint held it all
                    # in memory at once (3.3 GB peak at 4.1M rows against 2.3 GB).
                    con.execute("CHECKPOINT")
                    if writer and target.in_place:  # the text index commits when the catalog's rows become visible
                        writer.commit()
                    con.execute("BEGIN TRANSACTION")
                    pending = 0
                bar.update(len(group))
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
    _record_errors(con, summary, [err], run)


def _record_errors(con, summary: IngestSummary, errors: list[RowError], run: int) -> None:
    if not errors:
        return
    summary.errors.extend(errors)
    con.executemany(
        "INSERT INTO ingest_errors (file, row_index, field, reason, ingest_run) VALUES (?, ?, ?, ?, ?)",
        [[e.file, e.row_index, e.field, e.reason, run] for e in errors],
    )


def _first_time(path: Path, seen: set[Path]) -> bool:
    resolved = path.resolve()
    if resolved in seen:
        return False
    seen.add(resolved)
    return True


def _ingested_files(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, float]]:
    """Every file the catalog holds rows of, with the size and mtime it had when ingested."""
    rows = con.execute("SELECT file, size, mtime FROM ingested_files").fetchall()
    return {f: (size, mtime) for f, size, mtime in rows}


def _changed(jobs: list[tuple[Path, Path]], known: dict[str, tuple[int, float]]) -> list[tuple[Path, Path]]:
    """The jobs whose file is new or changed (size or mtime) since it was last ingested."""
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


def _groups(shards: Iterator[_ReadShard], rows: int) -> Iterator[list[_ReadShard]]:
    """Consecutive shards in groups of at least ``rows`` rows (the last one smaller)."""
    group: list[_ReadShard] = []
    size = 0
    for shard in shards:
        group.append(shard)
        size += shard.table.num_rows if shard.table is not None else 0
        if size >= rows:
            yield group
            group, size = [], 0
    if group:
        yield group


def _write_group(
    con: duckdb.DuckDBPyConnection,
    group: list[_ReadShard],
    datasets: list[str],
    known: dict[str, tuple[int, float]],
    run: int,
    select_sql: str,
    summary: IngestSummary,
    writer: TextIndexWriter | None,
    taken: TakenIds,
) -> int:
    """Replace a group of files' rows inside the caller's transaction; returns the rows written."""
    files: list[GroupFile] = []
    tables: list[pa.Table] = []
    written: list[tuple[_ReadShard, str]] = []
    # Errors from a file's last try go, whether it failed as a whole then or now.
    con.execute("DELETE FROM ingest_errors WHERE file IN (SELECT unnest(?))", [[s.source_file for s in group]])
    for shard, shard_dataset in zip(group, datasets):
        source_file = shard.source_file
        if shard.failure is not None:
            summary.files_failed += 1
            _record_error(con, summary, RowError(source_file, None, None, shard.failure), run)
            continue
        # Re-ingesting a file replaces its rows: same rows, no duplicates; unchanged rows keep their ids. A file
        # never ingested has no rows to look for (each lookup scans the catalog).
        previous = None
        if source_file in known:
            previous = previous_ids(con, source_file)
            con.execute("DELETE FROM samples WHERE source_file = ?", [source_file])
        written.append((shard, shard_dataset))
        if shard.table is not None and shard.table.num_rows:
            files.append(GroupFile(source_file, shard_dataset, previous))
            tables.append(_staged(shard.table, len(tables), shard_dataset, Path(source_file).parent.name))
    rows = _insert_group(con, tables, files, select_sql, run, taken) if tables else 0
    _record_errors(con, summary, [err for shard, _ in written for err in shard.errors], run)
    if not written:
        return 0
    con.executemany(
        "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            [s.source_file, d, s.source_format, s.size, s.mtime, s.table.num_rows if s.table else 0, len(s.errors), run]
            for s, d in written
        ],
    )
    summary.files_ingested += len(written)
    summary.rows_ok += rows
    summary.rows_failed += sum(len(s.errors) for s, _ in written)
    if writer is not None:
        names = [s.source_file for s, _ in written]
        docs = con.sql(
            f"{document_json_sql('samples')} WHERE ingest_run = $run AND source_file IN (SELECT unnest($files))",
            params={"run": run, "files": [f.source_file for f in files]},
        )
        writer.replace_files([n for n in names if n in known], docs.to_arrow_table().to_batches(max_chunksize=20_000))
    return rows


def _staged(raw: pa.Table, file_no: int, dataset: str, subset: str) -> pa.Table:
    """A file's raw rows in row order, with the columns ingest adds: its place in the group, dataset and subset (the
    subset folder si_distance/, video/, ... names the subset)."""
    if pc.all(pc.greater(raw["row_index"][1:], raw["row_index"][:-1])).as_py() is False:
        raw = raw.sort_by("row_index")  # readers yield file order; ids come back in (file_no, row_index) order
    n = raw.num_rows
    return (
        raw.append_column("file_no", pa.array(np.full(n, file_no, dtype=np.int32)))
        .append_column("dataset", pa.array([dataset] * n, pa.string()))
        .append_column("subset", pa.array([subset] * n, pa.string()))
    )


def _insert_group(
    con, tables: list[pa.Table], files: list[GroupFile], select_sql: str, run: int, taken: TakenIds
) -> int:
    raw = pa.concat_tables(tables)
    ids = taken.assign(con, raw, files)
    # The ids ride along as columns rather than a join, so the scan stays in file order without an ORDER BY:
    # rows land in (file, row_index) order and the catalog's physical order does not depend on thread timing.
    staged = raw.append_column("sample_id", ids["sample_id"]).append_column("content_hash", ids["content_hash"])
    # The group's batches are scanned where they lie: DuckDB splits an Arrow scan across its threads by batch.
    con.register("raw_stage", staged)
    try:
        cols = ", ".join(name for name, _ in SAMPLE_COLUMNS)
        con.execute(f"INSERT INTO samples ({cols}) {select_sql}", [run])
    finally:
        con.unregister("raw_stage")
    return raw.num_rows
