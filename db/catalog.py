"""The DuckDB catalog: one row per sample, columns only (media as pointers), plus ingest bookkeeping.

One writer (ingest) opens it read-write; the app and the worker open it read-only, which
DuckDB allows from many processes at once while no writer holds the file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
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
            con = duckdb.connect(str(path), read_only=read_only)
            if not read_only:
                for stmt in DDL:
                    con.execute(stmt)
                con.execute(
                    "INSERT INTO catalog_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    [str(SCHEMA_VERSION)],
                )
            return con
        except duckdb.IOException as exc:  # lock held by another process
            last = exc
            time.sleep(0.25)
    raise CatalogBusy(f"catalog {path} is locked by another process (an ingest?): {last}")


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
def open_for_writing(path: str | Path) -> Iterator[CatalogWrite]:
    """A read-write connection for ingest, even while the app or the worker read the catalog.

    DuckDB lets one process write a file only when no other process has it open. When readers hold it, ingest
    writes a copy and swaps it in atomically at the end: readers keep the old file (its inode stays alive) until
    they reopen, and every new connection sees the new catalog. Nothing is swapped if the ingest fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _ingest_lock(path):
        try:
            con = open_catalog(path, read_only=False, retries=1)
        except CatalogBusy:
            con = None
        if con is None:
            yield from _write_copy_and_swap(path)
            return
        try:
            yield CatalogWrite(con, in_place=True)
        finally:
            con.close()


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


def _write_copy_and_swap(path: Path) -> Iterator[CatalogWrite]:
    staging = path.with_name(path.name + ".ingest")
    staging.unlink(missing_ok=True)
    shutil.copyfile(path, staging)
    con = open_catalog(staging, read_only=False, retries=1)
    try:
        yield CatalogWrite(con, in_place=False)
        con.execute("CHECKPOINT")
        con.close()
        os.replace(staging, path)
    finally:
        con.close()
        staging.unlink(missing_ok=True)


@contextmanager
def catalog(path: str | Path, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_catalog(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def catalog_version(con: duckdb.DuckDBPyConnection) -> str:
    """A string that changes whenever the catalog's content changes (last ingest run + row count)."""
    run, rows = con.execute("SELECT coalesce(max(ingest_run), 0), count(*) FROM samples").fetchone()
    return f"run{run}-rows{rows}"
