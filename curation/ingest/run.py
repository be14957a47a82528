"""Ingest: shards -> the DuckDB catalog (+ text index). Idempotent per file; bad input is recorded, never fatal."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curation.ingest.canonical import canonical_select
from curation.ingest.index_sync import TextIndexFollower
from curation.ingest.readers import SKIPPED, ReaderError, RowError, detect_format, find_shards, read_shard
from curation.ingest.readers.media_refs import begin_ingest
from curation.ingest.sample_ids import GroupFile, TakenIds, previous_ids, propose_ids
from curation.ingest.text_index import document_json_sql
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
# Errors of the canonical SELECT that a row's data causes (a value it cannot convert, text a function rejects): they
# cost that row. Anything else (a bug in the SELECT, a full disk) stops the ingest.
ROW_DATA_ERRORS = (duckdb.DataError, duckdb.InvalidInputException)
# A group whose SELECT fails is split in halves until the failing rows stand alone, a statement per try (each planned
# anew: a fraction of a second): past this many tries per group, the rows still failing are recorded as ranges.
MAX_DERIVE_TRIES = 64


@dataclass
class IngestSummary:
    ingest_run: int
    files_seen: int = 0
    files_ingested: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    files_reindexed: int = 0  # held by the catalog but missing from the text index (a kill between their commits)
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
    begin_ingest(settings.media_roots)
    follower: TextIndexFollower | None = None

    def index_follows() -> None:  # the catalog written is now the one every new connection opens
        if follower is not None:
            follower.commit()

    try:
        with open_for_writing(settings.catalog_path, on_visible=index_follows) as target:
            con = target.con
            # Where the canonical SELECT runs apart from the catalog's transaction after it failed on a group's data.
            derive = con.cursor()
            for c in (con, derive):
                c.execute("SET enable_progress_bar = false")  # tqdm shows ingest's progress; DuckDB's would interleave
            run = con.execute("SELECT coalesce(max(ingest_run), 0) + 1 FROM ingest_runs").fetchone()[0]
            con.execute("INSERT INTO ingest_runs VALUES (?, now(), NULL, 0, 0, 0)", [run])
            summary = IngestSummary(ingest_run=run)
            jobs = _find_jobs(con, [Path(p) for p in paths], summary, run)
            summary.files_seen = len(jobs)
            known = _ingested_files(con)
            todo = jobs if force else _changed(jobs, known)
            summary.files_unchanged = len(jobs) - len(todo)
            if text_index:
                follower = TextIndexFollower(settings.text_index_dir)
                # A file counts as ingested only once both stores hold it: what the catalog committed and the index
                # did not (a kill between the two commits) is indexed again from the catalog's rows.
                summary.files_reindexed = follower.repair(con)
            taken = TakenIds(con) if todo else None
            bar = tqdm(
                total=len(jobs), initial=summary.files_unchanged, desc="ingest", unit="file", disable=not progress
            )

            def write(group: list[_ReadShard], apart: bool = False) -> int:
                args = (known, run, select_sql, summary, follower, taken)
                return _write_group(con, derive if apart else None, group, *args)

            pending = 0  # rows written since the last commit
            since_commit: list[tuple[list[tuple[Path, Path]], bool]] = []  # each group since then: jobs, apart
            at_commit = _counts(summary)
            con.execute("BEGIN TRANSACTION")
            try:
                # A group never spans a commit: what a commit makes durable is whole groups.
                for group in _groups(_read_ahead(todo, dataset), min(ROWS_PER_GROUP, ROWS_PER_COMMIT)):
                    apart = False
                    try:
                        pending += write(group)
                    except ROW_DATA_ERRORS:
                        # The failed statement aborted the transaction, and with it every group since the last
                        # commit: write them again, this group's SELECT apart from it, where the rows it fails on
                        # are found and left out. Rare, so the usual path keeps the SELECT inside the INSERT.
                        con.execute("ROLLBACK")
                        _restore_counts(summary, at_commit)
                        con.execute("BEGIN TRANSACTION")
                        pending = sum(write([_read_file(*job, dataset) for job in jobs], was)
                                      for jobs, was in since_commit)
                        apart = True
                        pending += write(group, apart)
                    since_commit.append(([(shard.root, Path(shard.found)) for shard in group], apart))
                    if pending >= ROWS_PER_COMMIT:
                        con.execute("COMMIT")
                        # Write what the commit left in the WAL now: left to the end, the last checkpoint held it all
                        # in memory at once (3.3 GB peak at 4.1M rows against 2.3 GB).
                        con.execute("CHECKPOINT")
                        if follower and target.in_place:  # the index commits when the catalog's rows become visible
                            follower.caught_up(con)
                            follower.commit()
                        con.execute("BEGIN TRANSACTION")
                        pending, since_commit, at_commit = 0, [], _counts(summary)
                    bar.update(len(group))
                    bar.set_postfix(rows=summary.rows_ok, failed=summary.rows_failed)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                bar.close()
            con.execute("COMMIT")
            if follower:
                follower.caught_up(con)  # committed by index_follows once this catalog is the one readers open
            summary.samples_total, summary.rows_with_problems = con.execute(
                "SELECT count(*), count(*) FILTER (ingest_run = ? AND len(problems) > 0) FROM samples", [run]
            ).fetchall()[0]
            con.execute(
                "UPDATE ingest_runs SET finished_at = now(), files = ?, rows_ok = ?, rows_failed = ? "
                "WHERE ingest_run = ?",
                [summary.files_ingested, summary.rows_ok, summary.rows_failed, run],
            )
            con.execute("CHECKPOINT")
            derive.close()
    except BaseException:
        # Both stores keep only what they committed: in place, the groups before the last commit (the index follows
        # it); in a copy, nothing (never swapped in). A catalog commit the index missed is repaired next time.
        if follower:
            follower.rollback()
        raise
    finally:
        if follower:
            follower.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _counts(summary: IngestSummary) -> IngestSummary:
    """A copy of the summary as it stands (at a commit), to go back to when what followed is rolled back."""
    return dataclasses.replace(summary, errors=list(summary.errors))


def _restore_counts(summary: IngestSummary, at: IngestSummary) -> None:
    for f in dataclasses.fields(summary):
        setattr(summary, f.name, list(at.errors) if f.name == "errors" else getattr(at, f.name))


def _find_jobs(con, roots: list[Path], summary: IngestSummary, run: int) -> list[tuple[Path, Path]]:
    """(root, file) for each shard under the roots, each file once; a root that does not exist, or an entry that
    cannot be a shard (a looping symlink, say), is recorded instead, replacing what an earlier ingest recorded."""
    jobs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()  # a file reached through two of the paths is ingested once
    problems: list[RowError] = []
    for root in roots:
        if not root.exists():
            problems.append(RowError(str(root), None, None, "path does not exist"))
            continue
        jobs.extend((root, f) for f in find_shards([root], problems.append) if _first_time(f, seen))
    summary.files_failed += sum(e.reason.startswith(SKIPPED) for e in problems)
    for folder in (str(r) for r in roots if not r.is_file()):  # entries skipped under it may have been fixed since
        con.execute(
            "DELETE FROM ingest_errors WHERE file = ? OR (starts_with(reason, ?) AND starts_with(file, ?))",
            [folder, SKIPPED, folder.rstrip("/") + "/"],
        )
    con.execute("DELETE FROM ingest_errors WHERE file IN (SELECT unnest(?))", [[e.file for e in problems]])
    _record_errors(con, summary, problems, run)
    return jobs


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
    """The jobs whose file is new or changed (size or mtime) since it was last ingested; a file that cannot be
    looked at stays in, for its read to record why."""
    todo = []
    for root, path in jobs:
        try:
            prev, st = known.get(str(path.resolve())), path.stat()
        except (OSError, RuntimeError):
            todo.append((root, path))
            continue
        if not (prev and prev[0] == st.st_size and abs(prev[1] - st.st_mtime) < 1e-6):
            todo.append((root, path))
    return todo


@dataclass
class _ReadShard:
    """One file read in full before the catalog is touched: an unusable file leaves its earlier rows in place."""

    root: Path
    found: str  # the path as found under the root
    source_file: str  # resolved path
    dataset: str
    size: int = 0
    mtime: float = 0.0
    source_format: str | None = None
    table: pa.Table | None = None  # the raw rows as staged for the canonical SELECT (see _staged)
    proposed: pa.Table | None = None  # what its rows propose for their ids (sample_ids.propose_ids)
    errors: list[RowError] = field(default_factory=list)
    failure: str | None = None  # why the file as a whole is unusable


def _read_file(root: Path, path: Path, dataset: str | None, ids_con: duckdb.DuckDBPyConnection | None = None
               ) -> _ReadShard:
    """Read a file, stage its rows and propose their ids (on ``ids_con``, a DuckDB connection of the reading
    thread: hashing a file's content, a sixth of the ingest's work, then runs beside the catalog's writes)."""
    shard = _ReadShard(root, str(path), str(path), dataset or infer_dataset(root))
    try:
        shard.source_file = str(path.resolve())
        st = path.stat()
        shard.size, shard.mtime = st.st_size, st.st_mtime
        if not stat.S_ISREG(st.st_mode):  # a fifo named like a shard would block the read for ever
            raise ReaderError(f"{path}: not a regular file; ingest reads files of shards only")
        shard.source_format = detect_format(path)
        batches = list(read_shard(path, shard.errors.append, shard.source_file))
        if batches and sum(b.num_rows for b in batches):
            shard.table = _staged(pa.Table.from_batches(batches), shard.dataset, Path(shard.source_file).parent.name)
            with contextlib.nullcontext(ids_con) if ids_con is not None else duckdb.connect() as con:
                shard.proposed = propose_ids(con, shard.table)
    except ReaderError as exc:
        shard.failure = str(exc)
    except Exception as exc:  # whatever a hostile file makes a reader raise costs that file, never the ingest
        shard.failure = (
            f"{shard.source_file}: could not be read ({type(exc).__name__}: {exc}); fix or remove the file, "
            "or report it if the file is sound"
        )
    return shard


def _read_ahead(jobs: list[tuple[Path, Path]], dataset: str | None) -> Iterator[_ReadShard]:
    """The jobs' files read in order, the next one on a thread while the caller writes this one: the Python readers
    (pyarrow compute, which frees the GIL) and the ids' proposals then run beside DuckDB's insert instead of taking
    turns with it."""
    # The pool (the read under way) is done before its connection closes.
    with duckdb.connect() as ids_con, ThreadPoolExecutor(1, thread_name_prefix="ingest-read") as pool:
        ahead: Future | None = None
        for root, path in jobs:
            following = pool.submit(_read_file, root, path, dataset, ids_con)
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
    derive: duckdb.DuckDBPyConnection | None,
    group: list[_ReadShard],
    known: dict[str, tuple[int, float]],
    run: int,
    select_sql: str,
    summary: IngestSummary,
    follower: TextIndexFollower | None,
    taken: TakenIds,
) -> int:
    """Replace a group of files' rows inside the caller's transaction; returns the rows written. With ``derive``,
    the canonical SELECT runs there, apart from the transaction (see _insert_group)."""
    files: list[GroupFile] = []
    tables: list[pa.Table] = []
    proposals: list[pa.Table] = []
    written: list[tuple[_ReadShard, str]] = []
    # Errors from a file's last try go, whether it failed as a whole then or now (under either of its names).
    names = sorted({name for s in group for name in (s.source_file, s.found)})
    con.execute("DELETE FROM ingest_errors WHERE file IN (SELECT unnest(?))", [names])
    for shard in group:
        shard_dataset = shard.dataset
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
            tables.append(shard.table)
            proposals.append(shard.proposed)
    landed = _insert_group(con, derive, tables, proposals, files, select_sql, run, taken) if tables else _Landed()
    _record_errors(con, summary, [err for shard, _ in written for err in shard.errors] + landed.errors, run)
    if not written:
        return 0
    failed = {s.source_file: len(s.errors) + landed.lost[s.source_file] for s, _ in written}  # rows, by file
    con.executemany(
        "INSERT OR REPLACE INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            [
                s.source_file,
                d,
                s.source_format,
                s.size,
                s.mtime,
                (s.table.num_rows if s.table else 0) - landed.lost[s.source_file],
                failed[s.source_file],
                run,
            ]
            for s, d in written
        ],
    )
    summary.files_ingested += len(written)
    summary.rows_ok += landed.rows
    summary.rows_failed += sum(failed.values())
    if follower is not None:
        # Read back: the catalog draws each row's key, which the index keeps, on insert. Every written file's
        # documents are dropped, even a new file's: a copy the catalog never swapped in may have left them in an
        # index committed by an older version of ingest.
        docs = con.sql(
            f"{document_json_sql('samples')} WHERE ingest_run = $run AND source_file IN (SELECT unnest($files))",
            params={"run": run, "files": [f.source_file for f in files]},
        )
        follower.replace_files([s.source_file for s, _ in written], docs.to_arrow_table().to_batches(20_000))
    return landed.rows


def _staged(raw: pa.Table, dataset: str, subset: str) -> pa.Table:
    """A file's raw rows in row order, with the columns ingest adds: dataset, subset (the subset folder
    si_distance/, video/, ... names the subset) and file_no, which sample_ids.propose_ids partitions by (0: a file
    is proposed for alone)."""
    if pc.all(pc.greater(raw["row_index"][1:], raw["row_index"][:-1])).as_py() is False:
        raw = raw.sort_by("row_index")  # readers yield file order; ids come back in (file_no, row_index) order
    n = raw.num_rows
    return (
        raw.append_column("file_no", pa.array(np.zeros(n, dtype=np.int32)))
        .append_column("dataset", pa.array([dataset] * n, pa.string()))
        .append_column("subset", pa.array([subset] * n, pa.string()))
    )


@dataclass
class _Landed:
    """What a group's insert landed, and the rows it could not derive."""

    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    lost: Counter[str] = field(default_factory=Counter)  # rows that did not land, by file


def _insert_group(
    con: duckdb.DuckDBPyConnection,
    derive: duckdb.DuckDBPyConnection | None,
    tables: list[pa.Table],
    proposals: list[pa.Table],
    files: list[GroupFile],
    select_sql: str,
    run: int,
    taken: TakenIds,
) -> _Landed:
    raw = pa.concat_tables(tables)
    ids = taken.assign(con, proposals, files)
    # The ids ride along as columns rather than a join, so the scan stays in file order without an ORDER BY:
    # rows land in (file, row_index) order and the catalog's physical order does not depend on thread timing.
    staged = raw.append_column("sample_id", ids["sample_id"]).append_column("content_hash", ids["content_hash"])
    cols = ", ".join(name for name, _ in SAMPLE_COLUMNS)
    if derive is None:  # one statement: the SELECT streams into the INSERT, split across DuckDB's threads by batch
        con.register("raw_stage", staged)
        try:
            con.execute(f"INSERT INTO samples ({cols}) {select_sql}", [run])
        finally:
            # An aborted transaction refuses even this; the caller rolls back, and the next register replaces it.
            with contextlib.suppress(duckdb.TransactionException):
                con.unregister("raw_stage")
        return _Landed(rows=raw.num_rows)
    # Apart from the transaction: a SELECT that fails there aborts nothing, and can be tried again on parts.
    derived, landed = _derive(derive, staged, select_sql, run)
    if derived is not None and derived.num_rows:
        con.register("derived_stage", derived)
        try:
            con.execute(f"INSERT INTO samples ({cols}) SELECT {cols} FROM derived_stage")
        finally:
            con.unregister("derived_stage")
    return landed


def _derive(
    cur: duckdb.DuckDBPyConnection, staged: pa.Table, select_sql: str, run: int
) -> tuple[pa.Table | None, _Landed]:
    """The catalog rows of a group, by the canonical SELECT on ``cur`` (apart from the catalog's transaction). When
    it fails on the rows' data, the group is split in halves until the failing rows stand alone: they are recorded
    and the others land."""
    landed = _Landed()
    parts: list[pa.Table] = []
    tries = 0

    def attempt(part: pa.Table) -> None:
        nonlocal tries
        tries += 1
        cur.register("raw_stage", part)  # the group's batches are scanned where they lie, split across threads
        try:
            parts.append(cur.sql(select_sql, params=[run]).to_arrow_table())
            return
        except ROW_DATA_ERRORS as exc:
            reason = str(exc).splitlines()[0]
        finally:
            cur.unregister("raw_stage")
        if part.num_rows > 1 and tries < MAX_DERIVE_TRIES:
            attempt(part.slice(0, part.num_rows // 2))
            attempt(part.slice(part.num_rows // 2))
        else:
            _record_lost(
                landed,
                part,
                lambda rows: (
                    f"the canonical SELECT failed on {rows} ({reason}); fix the row in the shard, "
                    "or report it: deriving the catalog's columns should never fail on data"
                ),
            )

    attempt(staged)
    derived = pa.concat_tables(parts) if parts else None
    if derived is not None:  # a NULL where the catalog allows none would abort the transaction: that row's error too
        required = [name for name, typ in SAMPLE_COLUMNS if "NOT NULL" in typ]
        missing = functools.reduce(pc.or_, [pc.is_null(derived[c]) for c in required])
        if pc.any(missing).as_py():
            _record_lost(
                landed,
                derived.filter(missing),
                lambda rows: f"the canonical SELECT left {rows} without one of {required}; report it: an ingest bug",
            )
            derived = derived.filter(pc.invert(missing))
    landed.rows = derived.num_rows if derived is not None else 0
    return derived, landed


def _record_lost(landed: _Landed, rows: pa.Table, reason: Callable[[str], str]) -> None:
    """Record ``rows`` as not landed: an error per row, or per file and range where bisecting gave up early."""
    by_file: dict[str, list[int]] = {}
    for file, row in zip(rows["source_file"].to_pylist(), rows["row_index"].to_pylist()):
        by_file.setdefault(file, []).append(row)
    for file, file_rows in by_file.items():
        landed.lost[file] += len(file_rows)
        where = "this row" if len(file_rows) == 1 else f"rows {min(file_rows)}-{max(file_rows)} ({len(file_rows)} rows)"
        landed.errors.append(RowError(file, min(file_rows), None, reason(where)))
