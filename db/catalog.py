"""The DuckDB catalog: one row per sample, columns only (media as pointers), plus ingest bookkeeping.

One writer (ingest) opens it read-write; the app and the worker open it read-only, which
DuckDB allows from many processes at once while no writer holds the file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

SCHEMA_VERSION = 1

# The canonical sample row: ingest derives these columns from every reader's rows (curation/ingest/canonical.py).
MEDIA_STRUCT = (
    "STRUCT(kind VARCHAR, digest VARCHAR, width INTEGER, height INTEGER, path VARCHAR, "
    "byte_size BIGINT, embedded BOOLEAN, problem VARCHAR)"
)
TURN_STRUCT = "STRUCT(role VARCHAR, text VARCHAR)"
CAMERA_STRUCT = (
    "STRUCT(fx DOUBLE, fy DOUBLE, cx DOUBLE, cy DOUBLE, width INTEGER, height INTEGER, stated_as VARCHAR)"
)
BOX3D_STRUCT = "STRUCT(label VARCHAR, bbox DOUBLE[], encoding VARCHAR)"
BOX2D_STRUCT = "STRUCT(label VARCHAR, bbox DOUBLE[])"
PROBLEM_STRUCT = "STRUCT(code VARCHAR, field VARCHAR, message VARCHAR)"

SAMPLE_COLUMNS: list[tuple[str, str]] = [
    ("sample_id", "VARCHAR NOT NULL"),
    ("source_id", "VARCHAR"),
    ("dataset", "VARCHAR NOT NULL"),
    ("subset", "VARCHAR"),
    ("sample_group", "VARCHAR NOT NULL"),  # single | multi | video | text
    ("skill", "VARCHAR NOT NULL"),  # canonical id (vst-format.md §6) or 'unknown'
    ("data_source", "VARCHAR"),  # raw
    ("source", "VARCHAR"),  # normalised origin: scannet, arkitscenes, ... (lower case)
    ("type", "VARCHAR"),  # raw free-form task tag
    ("kind", "VARCHAR NOT NULL"),  # sft | rl
    ("turns", f"{TURN_STRUCT}[]"),
    ("n_turns", "INTEGER"),
    ("question", "VARCHAR"),  # first human (or user) turn, media placeholders removed
    ("answer", "VARCHAR"),  # stated answer: first answer turn after </think>, or RL answer
    ("reasoning", "VARCHAR"),  # text inside <think>...</think>, NULL when none
    ("has_reasoning", "BOOLEAN"),
    ("answer_kind", "VARCHAR"),  # choice | number | bbox3d | text
    ("rl_modes", "VARCHAR[]"),
    ("question_type", "VARCHAR"),
    ("meta_info", "VARCHAR"),  # raw JSON text as found
    ("media", f"{MEDIA_STRUCT}[]"),
    ("n_images", "INTEGER"),
    ("n_videos", "INTEGER"),
    ("camera", CAMERA_STRUCT),
    ("boxes_3d", f"{BOX3D_STRUCT}[]"),
    ("boxes_2d", f"{BOX2D_STRUCT}[]"),
    ("scene_id", "VARCHAR"),
    ("content_hash", "VARCHAR"),
    ("problems", f"{PROBLEM_STRUCT}[]"),  # usable-row problems found at ingest
    ("source_file", "VARCHAR NOT NULL"),
    ("source_format", "VARCHAR NOT NULL"),
    ("row_group", "INTEGER"),
    ("row_in_group", "INTEGER"),
    ("row_index", "BIGINT"),
    ("ingest_run", "INTEGER"),
]

DDL = [
    "CREATE TABLE IF NOT EXISTS samples ("
    + ", ".join(f"{name} {typ}" for name, typ in SAMPLE_COLUMNS)
    + ")",
    # The row's key inside this catalog (not its identity: a re-ingested file's rows get new ones). Drawn in insert
    # order, so rows lie in key order: pages and text-index hits address rows by it, and DuckDB skips row groups
    # by its min/max. Filled by default on insert (ingest never names it); added to catalogs made before it.
    "CREATE SEQUENCE IF NOT EXISTS sample_row_keys",
    "ALTER TABLE samples ADD COLUMN IF NOT EXISTS row_key BIGINT DEFAULT nextval('sample_row_keys')",
    """CREATE TABLE IF NOT EXISTS ingest_errors (
        file VARCHAR NOT NULL, row_index BIGINT, field VARCHAR, reason VARCHAR NOT NULL,
        ingest_run INTEGER, recorded_at TIMESTAMP DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS ingested_files (
        file VARCHAR PRIMARY KEY, dataset VARCHAR, source_format VARCHAR, size BIGINT,
        mtime DOUBLE, rows_ok BIGINT, rows_failed BIGINT, ingest_run INTEGER,
        ingested_at TIMESTAMP DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS ingest_runs (
        ingest_run INTEGER PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP,
        files INTEGER, rows_ok BIGINT, rows_failed BIGINT)""",
    "CREATE TABLE IF NOT EXISTS catalog_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
]


class CatalogBusy(RuntimeError):
    """The catalog file is locked by a writer (an ingest is running)."""


def open_catalog(path: str | Path, read_only: bool = True, retries: int = 20) -> duckdb.DuckDBPyConnection:
    """Open the catalog. Read-only opens wait briefly for a running ingest, then say so clearly."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"no catalog at {path}: run `python -m curation ingest PATH` (or `make run`, which builds the demo)"
        )
    last: Exception | None = None
    for _ in range(max(retries, 1)):
        try:
            con = _attach_read_only(path) if read_only else duckdb.connect(str(path))
            if not read_only:
                for stmt in DDL:
                    con.execute(stmt)
                con.execute(
                    "INSERT INTO catalog_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    [str(SCHEMA_VERSION)],
                )
            return con
        except (duckdb.IOException, duckdb.ResourceInUseException) as exc:  # a writer elsewhere, or readers here
            last = exc
            time.sleep(0.25)
    raise CatalogBusy(f"catalog {path} is locked by another process (an ingest?): {last}")


def _attach_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the file at ``path`` as it is now, in a database instance of its own.

    ``duckdb.connect(path)`` hands out the instance already open for that path in this process: after ingest swaps
    in a new file, a reader that reconnects would get the old one for as long as any connection to it lives.
    Its cursors start elsewhere: take them with ``reader_cursor``."""
    con = duckdb.connect(":memory:", config={"temp_directory": f"{path}.tmp"})  # where DuckDB spills for the file
    try:
        con.execute(f"ATTACH '{_sql_text(path)}' AS {_READER_NAME} (READ_ONLY)")
        con.execute(f"USE {_READER_NAME}")
    except BaseException:
        con.close()
        raise
    return con


_READER_NAME = "catalog"  # what a read-only connection calls the catalog file it attached


def reader_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of a read-only catalog connection (``open_catalog``) that reads the catalog: a cursor is a connection
    of its own, and starts in the instance's empty in-memory database."""
    cur = con.cursor()
    cur.execute(f"USE {_READER_NAME}")
    return cur


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def catalog_identity(path: str | Path) -> str:
    """Changes when ingest replaces the catalog file: readers key their cached connections on it."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return "absent"
    return f"{st.st_ino}:{st.st_mtime_ns}"


@dataclass(frozen=True)
class CatalogWrite:
    con: duckdb.DuckDBPyConnection
    # False while ingest writes a copy: its commits become visible (and durable) only when the copy is swapped in
    # at the end, so stores that follow the catalog (the text index) must commit only then too.
    in_place: bool


@contextmanager
def open_for_writing(path: str | Path, on_visible: Callable[[], None] | None = None) -> Iterator[CatalogWrite]:
    """A read-write connection for ingest, even while the app or the worker read the catalog.

    DuckDB lets one process write a file only when no other process has it open. When readers hold it, ingest
    writes a copy and swaps it in atomically at the end: readers keep the old file (its inode stays alive) until
    they reopen, and every new connection sees the new catalog. Nothing is swapped if the ingest fails.
    ``on_visible`` runs once what was written is the catalog every new connection opens, still under the ingest
    lock: where a store that follows the catalog (the text index) commits.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _ingest_lock(path):
        _clear_staging(path)  # a writer killed while writing a copy left it (and its WAL) behind
        try:
            con = open_catalog(path, read_only=False, retries=1)
        except CatalogBusy:
            con = None
        if con is None:
            yield from _write_copy_and_swap(path, on_visible)
            return
        try:
            yield CatalogWrite(con, in_place=True)
        finally:
            con.close()
        if on_visible is not None:
            on_visible()


@contextmanager
def _ingest_lock(path: Path) -> Iterator[None]:
    """One ingest at a time: a second one would copy a file that is being written."""
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CatalogBusy(f"another ingest is writing {path}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _staging(path: Path) -> Path:
    return path.with_name(path.name + ".ingest")


def _clear_staging(path: Path) -> None:
    """Remove a copy being written and its WAL (DuckDB would replay a stale WAL onto the next copy)."""
    staging = _staging(path)
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)


def _write_copy_and_swap(path: Path, on_visible: Callable[[], None] | None) -> Iterator[CatalogWrite]:
    staging = _staging(path)
    shutil.copyfile(path, staging)
    con = open_catalog(staging, read_only=False, retries=1)
    try:
        yield CatalogWrite(con, in_place=False)
        con.execute("CHECKPOINT")
        con.close()
        os.replace(staging, path)
        if on_visible is not None:
            on_visible()
    finally:
        con.close()
        _clear_staging(path)


@contextmanager
def catalog(path: str | Path, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_catalog(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def ingested_file_versions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every file the catalog holds rows of, with a version that changes whenever ingest rewrites them (its run and
    the time it was written: runs restart in a new catalog, times do not)."""
    rows = con.execute("SELECT file, ingest_run, ingested_at FROM ingested_files").fetchall()
    return {file: f"{run}@{at}" for file, run, at in rows}


def catalog_version(con: duckdb.DuckDBPyConnection) -> str:
    """A string that changes whenever the catalog's content changes (last ingest run + row count, and the skills'
    revision once `retag` has re-derived them)."""
    run, rows = con.execute("SELECT coalesce(max(ingest_run), 0), count(*) FROM samples").fetchone()
    skills = con.execute("SELECT value FROM catalog_meta WHERE key = 'skills_revision'").fetchone()
    return f"run{run}-rows{rows}" + (f"-skills{skills[0]}" if skills else "")
