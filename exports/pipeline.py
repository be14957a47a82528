"""Write one export: the selected rows streamed out of DuckDB in output order, with their media, cut into shards.

Memory stays bounded by a few batches (plus one row group per open Parquet partition, and for text formats the
records of the catalog slices computed ahead: a few hundred thousand rows).

Text formats come out in the catalog's row order (ingest order), then up-sampled copies: the rows are read with
a positional join against a mask over the catalog, which keeps that order without a join or a sort (every
batch's ``ord`` is checked, so a broken order can never pass silently). A positional join runs on one thread, so
slices of the catalog are read side by side and written one after the other. Formats with embedded media come out
sorted by where the rows sit in their shards, so that each row group is read once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from threading import Event, Lock
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from db.media import MediaError
from exports.base import (
    TALLY_COLUMNS,
    ExportFormat,
    FormatContext,
    effective_rows_sql,
    helper_select,
    media_relpath_sql,
    unexportable_media_sql,
)
from exports.media_store import MediaStore, read_verified_media
from exports.shards import ParquetShards, TextShards

# (sql, params, Arrow tables to register) -> a DuckDB relation over the catalog (``samples``) and those tables.
RelationFn = Callable[[str, list, dict[str, pa.Table]], Any]

SELECTION_SCHEMA = pa.schema(
    [
        ("ord", pa.int64()),  # position in the output
        ("sample_id", pa.string()),
        ("out_id", pa.string()),  # the id written: sample_id, or sample_id~N for the N-th up-sampled copy
        ("copy", pa.int32()),
        ("component", pa.string()),
        ("downgrade", pa.bool_()),  # reasoning trace removed, kept as a direct answer
        ("pos", pa.int64()),  # the catalog row (DuckDB rowid) the sample sits in
    ]
)
FIXES_SCHEMA = pa.schema([("sample_id", pa.string()), ("gpt_text", pa.string()), ("answer", pa.string())])
_POSITIONAL = True  # tests switch it off to hold the sorted path to the same bytes
_SLICE_ROWS = (150_000, 500_000)  # least and most catalog rows per text query (tests make them small)
_MAX_QUERY_THREADS = 8  # text queries read side by side (at most DuckDB's threads setting)
_ROW_COLUMNS = ["ord", "sample_id", "out_id", "copy", "component", "downgrade", "fix_gpt", "fix_answer", "repair"]
TALLY_NAMES = {"_component": "by_component", "_skill": "by_skill", "_source": "by_source", "_group": "by_group",
               "_dataset": "by_dataset"}


@dataclass
class ExportPlan:
    """Everything one export needs besides the catalog."""

    fmt: ExportFormat
    out_dir: Path  # where the files go now (the caller may rename the folder afterwards)
    selection: pa.Table  # SELECTION_SCHEMA
    fixes: pa.Table | None = None  # FIXES_SCHEMA: the first assistant turn's new text and the new final answer
    placeholders: str = "convert"  # convert | repair (strip and re-prepend one tag per media item)
    leave_out: list[dict[str, str]] = field(default_factory=list)  # {sample_id, reason}: rows not to write, and why
    repair_ids: list[str] = field(default_factory=list)  # rows whose placeholders are repaired (under convert)
    shard_bytes: int | None = 1_000_000_000
    shard_rows: int | None = None
    row_group_rows: int | None = None  # Parquet; default 64 with media, 8192 without
    write_media: bool = True  # False: records reference media files that are not written (dry text exports)
    media_prefix: str = ""  # prefix of media paths in path-based records ('' = relative to the export folder)
    media_roots: tuple = ()  # folders media files may be read from besides their shard's (settings.media_roots)
    dataset_name: str = "vst_mixture"
    progress: bool = False
    batch_rows: int = 8192
    counts: dict[str, dict[str, int]] | None = None  # the selection's tallies (saves a pass for text formats)


@dataclass
class ExportResult:
    data_files: list[Path]
    extra_files: list[Path]
    rows: int
    counts: dict[str, dict[str, int]]
    left_out: list[dict[str, str]] = field(default_factory=list)
    media: dict[str, int] = field(default_factory=dict)
    sha256: dict[Path, str] = field(default_factory=dict)  # hashes taken while writing (the rest are read back)


def write_export(plan: ExportPlan, relation: RelationFn) -> ExportResult:
    fmt = plan.fmt
    out = Path(plan.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    selection = plan.selection.select(SELECTION_SCHEMA.names).cast(SELECTION_SCHEMA)
    fixes = (plan.fixes if plan.fixes is not None else FIXES_SCHEMA.empty_table()).select(FIXES_SCHEMA.names)
    has_videos = has_media = True
    if fmt.media == "embedded":
        has_videos, has_media = relation(
            "SELECT coalesce(bool_or(s.n_videos > 0), false), coalesce(bool_or(len(s.media) > 0), false) "
            "FROM sel JOIN samples s USING (sample_id)", [], {"sel": selection}).fetchall()[0]
    ctx = FormatContext(has_videos=bool(has_videos), media_prefix=plan.media_prefix, dataset_name=plan.dataset_name)
    left_out: list[dict[str, str]] = []
    skip = _unexportable(relation, selection, left_out)
    if plan.leave_out:  # the caller's reasons to leave rows out (rows failing the placeholder check)
        skipped = set(skip)
        given = [r for r in plan.leave_out if r["sample_id"] not in skipped]
        left_out.extend(given)
        skip += [r["sample_id"] for r in given]
    store = MediaStore(out)
    if fmt.media == "files" and plan.write_media:
        skip += _store_media(relation, selection, store, left_out, plan, skip)
    rows_table = _rows_with_fixes(selection, fixes, skip, plan.repair_ids)
    sql_of = _sql_builder(fmt, ctx, plan, fixes.num_rows > 0, bool(pc.any(selection.column("downgrade")).as_py()),
                          bool(plan.repair_ids) and plan.placeholders == "convert")
    bar = tqdm(total=rows_table.num_rows, desc=f"export {fmt.name}", unit="row", disable=not plan.progress)
    sha: dict[Path, str] = {}
    if fmt.file_kind == "parquet":
        # Media are read shard by shard, row group by row group: sort by where the rows sit in their shards.
        order = "ORDER BY source_file, row_index, copy, out_id"
        batches = relation(sql_of("extra") + f" {order}", [], {"extra": rows_table.select(_ROW_COLUMNS)}) \
            .to_arrow_reader(256)
        tally: dict[str, Counter] = {name: Counter() for name in TALLY_COLUMNS}
        data_files, rows = _write_parquet(fmt, ctx, plan, batches, has_media, tally, left_out, bar, out, store)
        counts = {TALLY_NAMES[k]: dict(sorted(c.items())) for k, c in tally.items()}
    else:
        data_files, sha = _write_text(fmt, plan, relation, rows_table, sql_of, out, bar)
        rows = rows_table.num_rows
        # Text records carry nothing but their JSON: the counts come from the selection (less what was skipped).
        counts = plan.counts if plan.counts is not None and not skip else _tally(relation, rows_table)
    bar.close()
    extra: list[Path] = []
    if fmt.extra_files:
        rel = [p.relative_to(out).as_posix() for p in data_files]
        for name, content in fmt.extra_files(ctx, rel).items():
            (out / name).write_bytes(content)
            extra.append(out / name)
    media = {"files": store.files, "bytes": store.bytes, "reused": store.reused}
    return ExportResult(data_files, extra, rows, counts, sorted(left_out, key=lambda r: r["sample_id"]), media, sha)


def _rows_with_fixes(selection: pa.Table, fixes: pa.Table, skip: list[str], repair: list[str] = ()) -> pa.Table:
    """The selection with each row's fix (NULL when none) and whether its placeholders are repaired, less the
    samples to skip; order kept."""
    if skip:
        selection = selection.filter(pc.invert(pc.is_in(selection.column("sample_id"),
                                                        value_set=pa.array(skip, pa.string()))))
    selection = selection.append_column("repair", pc.is_in(selection.column("sample_id"),
                                                           value_set=pa.array(list(repair), pa.string())))
    if fixes.num_rows == 0:
        none = pa.nulls(selection.num_rows, pa.string())
        return selection.append_column("fix_gpt", none).append_column("fix_answer", none)
    at = pc.index_in(selection.column("sample_id"), value_set=fixes.column("sample_id"))
    return selection.append_column("fix_gpt", fixes.column("gpt_text").take(at)) \
                    .append_column("fix_answer", fixes.column("answer").take(at))


def _sql_builder(fmt: ExportFormat, ctx: FormatContext, plan: ExportPlan, fixes: bool,
                 downgrades: bool, repairs: bool = False) -> Callable[..., str]:
    def sql(source: str, rowids: tuple[int, int] | None = None) -> str:
        base = effective_rows_sql(fmt.placeholders, plan.placeholders, fmt.ensure_tags, source=source,
                                  fixes=fixes, downgrades=downgrades, rowids=rowids, turn_fields=fmt.turn_fields,
                                  roles=fmt.roles, repairs=repairs)
        if fmt.file_kind == "parquet":
            # A format's own reason to leave a row out, and the files of the media kinds it writes as files.
            own = (f", {fmt.left_out(ctx)} AS _left_out" if fmt.left_out else "") + (
                f", list_transform(media, lambda m: {media_relpath_sql('m')}) AS _relpaths" if fmt.file_kinds else "")
            select = f"SELECT ord, {fmt.select(ctx)}, {helper_select()}{own} FROM e"
        else:
            select = f"SELECT ord, {fmt.select(ctx)} FROM e"
        return f"{base}\n{select}"
    return sql


@dataclass
class _Part:
    """One query of a text export: a source (mask | extra), its tables, whether it needs ORDER BY ord, and for
    a slice of the mask the catalog rowids it covers (first, last)."""

    source: str
    tables: dict[str, pa.Table]
    order: bool = False
    rowids: tuple[int, int] | None = None


def _sources(relation: RelationFn, rows: pa.Table, workers: int = 1) -> list[_Part]:
    """Where the text rows come from, in output order.

    First copies through a positional join with a mask over the catalog (catalog order, no join, no sort), then
    the up-sampled copies joined and sorted; everything joined and sorted when the catalog's rowids are not in scan
    order (they are, in a DuckDB table that is only appended to and deleted from). A positional join runs on one
    thread, so the catalog is cut into slices that run side by side: one per worker, unless that makes them too
    small to be worth a query of their own or too big to hold while the slice before is written.
    """
    rowids = relation("SELECT rowid FROM samples", [], {}).to_arrow_table().column(0).to_numpy()
    copies = pc.max(rows.column("copy")).as_py() or 1
    first = rows if copies == 1 else rows.filter(pc.equal(rows.column("copy"), 1))
    pos = first.column("pos").to_numpy()
    dense = len(rowids) and rowids[0] == 0 and rowids[-1] == len(rowids) - 1  # no deleted rows: rowid = position
    at = pos if dense else np.searchsorted(rowids, pos)
    positional = (_POSITIONAL and len(rowids) > 0 and bool(np.all(np.diff(rowids) > 0))
                  and bool(np.all(at < len(rowids))) and np.array_equal(rowids[np.minimum(at, len(rowids) - 1)], pos))
    if not positional:
        return [_Part("extra", {"extra": rows.select(_ROW_COLUMNS)}, True)]
    # First copies are written under their sample_id, which the catalog row has: out_id stays NULL in the mask.
    n = len(rowids)
    columns = {"ord": first.column("ord"), "component": first.column("component"),
               "downgrade": first.column("downgrade"), "fix_gpt": first.column("fix_gpt"),
               "fix_answer": first.column("fix_answer"), "repair": first.column("repair")}
    if len(at) != n or not np.array_equal(at, np.arange(n)):  # not every catalog row, in order: spread them out
        index = np.full(n, -1, dtype=np.int64)
        index[at] = np.arange(first.num_rows)
        take = pa.array(index, mask=index < 0)
        columns = {k: (c.dictionary_encode() if k == "component" else c).take(take) for k, c in columns.items()}
    mask = pa.table({"ord": columns["ord"], "out_id": pa.nulls(n, pa.string()),
                     "copy": pa.array(np.ones(n, np.int32)), **{k: c for k, c in columns.items() if k != "ord"}})
    out = []
    if len(at):
        # Slices span the selected rows only; each covers the rowids of its mask rows exactly.
        lo, hi = int(at.min()), int(at.max()) + 1
        least, most = _SLICE_ROWS
        size = min(max(-(-(hi - lo) // max(workers, 1)), least), most)  # a slice per worker, within bounds
        for a in range(lo, hi, size):
            b = min(a + size, hi)
            out.append(_Part("mask", {"mask": mask.slice(a, b - a)}, False, (int(rowids[a]), int(rowids[b - 1]))))
    if copies > 1:
        later = rows.filter(pc.greater(rows.column("copy"), 1))
        out.append(_Part("extra", {"extra": later.select(_ROW_COLUMNS)}, True))
    return out


_DONE = object()


def _in_order(readers: list[Callable[[], Iterator[pa.RecordBatch]]], workers: int) -> Iterator[pa.RecordBatch]:
    """The batches of every reader, reader after reader, read on ``workers`` threads side by side (DuckDB lets go
    of the GIL while it computes): the reader in front streams, those behind it buffer, at most ``workers`` ahead."""
    stop = Event()
    queues: list[Queue] = [Queue() for _ in readers]

    def read(k: int) -> None:
        try:
            for batch in (readers[k]() if not stop.is_set() else ()):
                if stop.is_set():
                    break
                if batch.num_rows:
                    queues[k].put(batch)
        except BaseException as exc:  # raised again by the consumer
            queues[k].put(exc)
        queues[k].put(_DONE)

    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="export-query") as pool:
        submitted = 0
        try:
            for k in range(len(readers)):
                while submitted < min(len(readers), k + max(workers, 1) + 1):
                    pool.submit(read, submitted)
                    submitted += 1
                while (item := queues[k].get()) is not _DONE:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            stop.set()


def _write_text(fmt: ExportFormat, plan: ExportPlan, relation: RelationFn, rows: pa.Table,
                sql_of: Callable[..., str], out: Path, bar) -> tuple[list[Path], dict[Path, str]]:
    """Stream the records out of DuckDB (each with its separator) into shards, in output order: slices of the
    catalog are computed on worker threads side by side while this thread writes and hashes."""
    shards = TextShards(out / fmt.data_dir, array=fmt.file_kind == "json", shard_bytes=plan.shard_bytes,
                        shard_rows=plan.shard_rows)
    line = "',' || chr(10) || _json" if fmt.file_kind == "json" else "_json || chr(10)"
    threads = int(relation("SELECT current_setting('threads')", [], {}).fetchall()[0][0])
    workers = max(1, min(threads, _MAX_QUERY_THREADS))
    lock = Lock()  # one new cursor at a time: a connection makes its cursors one by one

    def reader(part: _Part) -> Callable[[], Iterator[pa.RecordBatch]]:
        sql = (f"SELECT ord, {line} AS _line FROM ({sql_of(part.source, part.rowids)})"
               + (" ORDER BY ord" if part.order else ""))

        def read() -> Iterator[pa.RecordBatch]:  # on a worker: binding the query overlaps the others' work
            with lock:
                rel = relation(sql, [], part.tables)
            return rel.to_arrow_reader(plan.batch_rows)
        return read

    readers = [reader(part) for part in _sources(relation, rows, workers)]
    last = -1
    for batch in _in_order(readers, workers):
        ords = batch.column("ord").to_numpy()
        # The order is part of determinism: it is checked, never assumed.
        if ords[0] <= last or (len(ords) > 1 and bool(np.any(np.diff(ords) <= 0))):
            raise RuntimeError("export rows came out of order; please report this")
        last = int(ords[-1])
        shards.write(batch.column("_line"))
        bar.update(batch.num_rows)
    files = shards.close()
    if shards.rows != rows.num_rows:
        raise RuntimeError(f"export wrote {shards.rows} records for {rows.num_rows} rows; please report this")
    return files, dict(shards.sha256)


def _tally(relation: RelationFn, rows: pa.Table) -> dict[str, dict[str, int]]:
    """Rows per component / skill / source / group / dataset of what is written."""
    result = relation(
        "SELECT r.component, s.skill, coalesce(s.source, '(none)'), s.sample_group, s.dataset, count(*) "
        "FROM r JOIN samples s USING (sample_id) GROUP BY ALL", [], {"r": rows.select(["sample_id", "component"])})
    tally: dict[str, Counter] = {name: Counter() for name in TALLY_COLUMNS}
    for *keys, n in result.fetchall():
        for name, key in zip(TALLY_COLUMNS, keys):
            tally[name][key if key is not None else "(none)"] += n
    return {TALLY_NAMES[k]: dict(sorted(c.items())) for k, c in tally.items()}


def _count(tally: dict[str, Counter], batch: pa.RecordBatch | pa.Table) -> None:
    for name in TALLY_COLUMNS:
        for item in pc.value_counts(batch.column(name)).to_pylist():
            tally[name][item["values"] if item["values"] is not None else "(none)"] += item["counts"]


def _unexportable(relation: RelationFn, selection: pa.Table, left_out: list) -> list[str]:
    """The selected samples with media ingest recorded as missing, undecodable or outside the media roots (the
    catalog's media[].problem): left out, and listed with why, before any media is read."""
    sql = (f"SELECT * FROM (SELECT s.sample_id, {unexportable_media_sql('s.media')} AS why FROM samples s "
           "WHERE len(s.problems) > 0 AND s.sample_id IN (SELECT sample_id FROM sel)) "  # ingest tags such rows
           "WHERE why IS NOT NULL ORDER BY sample_id")
    bad = relation(sql, [], {"sel": selection.select(["sample_id"])}).fetchall()
    left_out.extend({"sample_id": sid, "reason": f"media not exported: {why}"} for sid, why in bad)
    return [sid for sid, _ in bad]


def _store_media(relation: RelationFn, selection: pa.Table, store: MediaStore, left_out: list,
                 plan: ExportPlan, skip: list[str]) -> list[str]:
    """Write every selected media item once (content-addressed), but none of the samples in ``skip``; the samples
    whose media fail are returned."""
    if skip:
        selection = selection.filter(pc.invert(pc.is_in(selection.column("sample_id"),
                                                        value_set=pa.array(skip, pa.string()))))
    sql = (
        "SELECT s.sample_id, s.media, s.source_file, s.row_group, s.row_in_group, "
        f"list_transform(s.media, lambda m: {media_relpath_sql('m')}) AS relpaths "
        "FROM (SELECT DISTINCT sample_id FROM sel) u "
        "JOIN samples s USING (sample_id) WHERE len(s.media) > 0 "
        "ORDER BY s.source_file, s.row_index, s.sample_id"  # shard by shard: each row group is read once
    )
    tables = {"sel": selection.select(["sample_id"])}
    failed: list[str] = []
    n = relation("SELECT count(DISTINCT sample_id) FROM sel", [], tables).fetchall()[0][0]
    bar = tqdm(total=n, desc=f"media {plan.fmt.name}", unit="sample", disable=not plan.progress)
    for batch in relation(sql, [], tables).to_arrow_reader(256):
        for row in batch.to_pylist():
            try:
                data = read_verified_media(row, plan.media_roots)
            except MediaError as exc:
                failed.append(row["sample_id"])
                left_out.append({"sample_id": row["sample_id"], "reason": f"media unreadable at export: {exc}"})
                continue
            for relpath, blob in zip(row["relpaths"], data):
                store.put(relpath, blob)
        bar.update(batch.num_rows)
    bar.close()
    return failed


def _write_parquet(fmt: ExportFormat, ctx: FormatContext, plan: ExportPlan, batches: Iterator[pa.RecordBatch],
                   has_media: bool, tally: dict[str, Counter], left_out: list, bar,
                   out: Path, store: MediaStore) -> tuple[list[Path], int]:
    schema = fmt.schema(ctx)
    rg_rows = plan.row_group_rows or (64 if has_media else 8192)
    writers: dict[str, ParquetShards] = {}
    rows = 0
    for batch in batches:
        bar.update(batch.num_rows)
        media_rows = batch.column("_media").to_pylist()
        data: list[list[bytes]] = []
        keep = np.ones(batch.num_rows, dtype=bool)
        meta = batch.select(["_sample_id", "_source_file", "_row_group", "_row_in_group"]).to_pylist()
        reasons = batch.column("_left_out").to_pylist() if fmt.left_out else [None] * batch.num_rows
        relpaths = batch.column("_relpaths").to_pylist() if fmt.file_kinds else [None] * batch.num_rows
        for i, (media, m) in enumerate(zip(media_rows, meta)):
            if reasons[i] is not None:  # the format cannot carry this row: no media read for it
                keep[i] = False
                data.append([])
                left_out.append({"sample_id": m["_sample_id"], "reason": reasons[i]})
                continue
            row = {"sample_id": m["_sample_id"], "media": media, "source_file": m["_source_file"],
                   "row_group": m["_row_group"], "row_in_group": m["_row_in_group"]}
            try:
                data.append(read_verified_media(row, plan.media_roots) if media else [])
            except MediaError as exc:
                keep[i] = False
                data.append([])
                left_out.append({"sample_id": m["_sample_id"], "reason": f"media unreadable at export: {exc}"})
                continue
            for item, relpath, blob in zip(media or [], relpaths[i] or [], data[-1]):
                if item["kind"] in fmt.file_kinds and plan.write_media:
                    store.put(relpath, blob)
        if not keep.all():
            idx = np.flatnonzero(keep)
            batch = batch.take(pa.array(idx))
            media_rows = [media_rows[i] for i in idx]
            data = [data[i] for i in idx]
        if batch.num_rows == 0:
            continue
        extra = fmt.media_columns(media_rows, data, ctx)
        columns = [extra[f.name] if f.name in extra else batch.column(f.name) for f in schema]
        table = pa.Table.from_arrays([c.cast(f.type) for c, f in zip(columns, schema)], schema=schema)
        _count(tally, batch)
        rows += batch.num_rows
        parts = batch.column("_skill").to_pylist() if fmt.partition_by_skill else [fmt.data_dir] * batch.num_rows
        for part in dict.fromkeys(parts):
            idx = [i for i, p in enumerate(parts) if p == part]
            sub = table if len(idx) == table.num_rows else table.take(pa.array(idx))
            name = part or "unknown"
            if name not in writers:
                writers[name] = ParquetShards(out / name, schema, rg_rows, plan.shard_bytes, plan.shard_rows)
            writers[name].write(sub)
    files: list[Path] = []
    for name in sorted(writers):
        files.extend(writers[name].close())
    return files, rows
