"""Ingest: shards -> the DuckDB catalog (+ text index). Idempotent per file; bad input is recorded, never fatal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from db.catalog import SAMPLE_COLUMNS, open_for_writing

from .canonical import canonical_select, content_hash_sql
from .readers import ReaderError, RowError, detect_format, find_shards, read_shard
from .readers.media_refs import clear_caches
from .settings import Settings
from .taxonomy import load_taxonomy
from .text_index import TextIndexWriter, document_json_sql

log = logging.getLogger(__name__)
ProgressFn = Callable[[int, int, str], None]
# Files share a transaction until this many rows have landed. DuckDB writes an insert straight into the database
# file only in whole row groups (122,880 rows); a commit per shard (often smaller) sent every row through the WAL
# and then a checkpoint: twice the writing, a third of the ingest time at 4.1M rows.
ROWS_PER_COMMIT = 1_000_000


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
    on_progress: ProgressFn | None = None,
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
        writer = TextIndexWriter(settings.text_index_dir) if text_index else None
        bar = tqdm(jobs, desc="ingest", unit="file", disable=not progress)
        pending = 0  # rows written since the last commit
        con.execute("BEGIN TRANSACTION")
        try:
            for i, (root, f) in enumerate(bar):
                pending += _ingest_file(con, f, dataset or infer_dataset(root), run, select_sql, summary, writer, force)
                if pending >= ROWS_PER_COMMIT:
                    con.execute("COMMIT")
                    if writer and target.in_place:  # the text index commits when the catalog's rows become visible
                        writer.commit()
                    con.execute("BEGIN TRANSACTION")
                    pending = 0
                bar.set_postfix(rows=summary.rows_ok, failed=summary.rows_failed)
                if on_progress:
                    on_progress(i + 1, len(jobs), str(f))
        except BaseException:
            # Both stores drop the same uncommitted files: this group's in place, all of them in a copy (never swapped).
            con.execute("ROLLBACK")
            if writer:
                writer.rollback()
            raise
        con.execute("COMMIT")
        if writer:
            writer.commit()
            writer.wait_merging_threads()
        summary.samples_total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
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


def _ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    dataset: str,
    run: int,
    select_sql: str,
    summary: IngestSummary,
    writer: TextIndexWriter | None,
    force: bool,
) -> int:
    """Replace one file's rows inside the caller's transaction; returns the rows written."""
    source_file = str(path.resolve())
    stat = path.stat()
    if not force:
        prev = con.execute("SELECT size, mtime FROM ingested_files WHERE file = ?", [source_file]).fetchone()
        if prev and prev[0] == stat.st_size and abs(prev[1] - stat.st_mtime) < 1e-6:
            summary.files_unchanged += 1
            return 0
    subset = path.resolve().parent.name  # the subset folder (si_distance/, video/, ...) names the subset
    errors: list[RowError] = []
    try:
        # Read the whole file before touching the catalog: an unusable file leaves its earlier rows in place.
        source_format = detect_format(path)
        batches = list(read_shard(path, errors.append, source_file))
    except ReaderError as exc:
        summary.files_failed += 1
        _record_error(con, summary, RowError(source_file, None, None, str(exc)), run)
        return 0
    # Re-ingesting a file replaces its rows: same rows, no duplicates, and errors from the last try go.
    con.execute("DELETE FROM samples WHERE source_file = ?", [source_file])
    con.execute("DELETE FROM ingest_errors WHERE file = ?", [source_file])
    rows = _insert_canonical(con, pa.Table.from_batches(batches), select_sql, dataset, subset, run) if batches else 0
    for err in errors:
        _record_error(con, summary, err, run)
    con.execute(
        "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
        [source_file, dataset, source_format, stat.st_size, stat.st_mtime, rows, len(errors), run],
    )
    summary.files_ingested += 1
    summary.rows_ok += rows
    summary.rows_failed += len(errors)
    summary.rows_with_problems += con.execute(
        "SELECT count(*) FROM samples WHERE source_file = ? AND len(problems) > 0", [source_file]
    ).fetchall()[0][0]
    if writer is not None:
        docs = con.sql(f"{document_json_sql('samples')} WHERE source_file = $f", params={"f": source_file})
        writer.replace_file(source_file, docs.to_arrow_table().to_batches(max_chunksize=20_000))
    return rows


# sample_id: the source id when present and unique in the dataset, else the content hash (numbered when exact
# copies share one) — DESIGN.md "Stable sample identity". Computed on a narrow relation (row, ids, hash): the
# window functions would otherwise drag every list column through them.
_SAMPLE_IDS_SQL = f"""
WITH hashed AS (
    SELECT row_index, source_id, source_file, {content_hash_sql()} AS content_hash FROM raw_stage
), taken AS (  -- probe the catalog with this file's ids only: the catalog can hold millions
    SELECT sample_id AS id FROM samples WHERE sample_id IN (SELECT source_id FROM hashed)
    UNION SELECT source_id FROM samples
    WHERE dataset = ? AND source_id IN (SELECT source_id FROM hashed)
), counted AS (
    SELECT h.*,
        count(*) OVER (PARTITION BY h.source_id) AS id_uses,
        row_number() OVER (PARTITION BY h.content_hash ORDER BY h.row_index) AS copy_no,
        t.id IS NOT NULL AS id_taken
    FROM hashed h LEFT JOIN taken t ON t.id = h.source_id
), proposed AS (
    SELECT *, 'h' || substr(content_hash, 1, 20)
              || CASE WHEN copy_no > 1 THEN '-' || copy_no ELSE '' END AS hash_id
    FROM counted
)
SELECT
    CASE WHEN nullif(trim(p.source_id), '') IS NOT NULL AND p.id_uses = 1 AND NOT p.id_taken
         THEN p.source_id
         ELSE p.hash_id || CASE WHEN h.id IS NOT NULL THEN '-' || substr(md5(p.source_file), 1, 6) ELSE '' END
    END AS sample_id,
    p.content_hash
FROM proposed p LEFT JOIN (
    SELECT sample_id AS id FROM samples WHERE sample_id IN (SELECT hash_id FROM proposed)
) h ON h.id = p.hash_id
ORDER BY p.row_index"""


def _insert_canonical(con, raw: pa.Table, select_sql: str, dataset: str, subset: str | None, run: int) -> int:
    if pc.all(pc.greater(raw["row_index"][1:], raw["row_index"][:-1])).as_py() is False:
        raw = raw.sort_by("row_index")  # readers yield file order; the ids below come back in row_index order
    # The file's batches are scanned where they lie: DuckDB splits an Arrow scan across its threads by batch.
    con.register("raw_stage", raw)
    try:
        ids = con.sql(_SAMPLE_IDS_SQL, params=[dataset]).to_arrow_table()
    finally:
        con.unregister("raw_stage")
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
