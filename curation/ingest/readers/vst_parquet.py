"""Readers for VST's Parquet shards: SFT (vst-format.md §1) and RL (§2), streamed one row group at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.ingest.readers.media_refs import _dir_entries, embedded_item, path_item
from curation.ingest.readers.raw import MEDIA_TYPE, RAW_SCHEMA, TURN_TYPE, ReaderError, RowError
from curation.vst.vocabulary import ASSISTANT, HUMAN, HUMAN_ROLES, MISSING_FILE, NO_PATH, VIDEO_PAD
from db.media import BYTES_FIELDS

ErrorSink = Callable[[RowError], None]


def parquet_kind(schema: pa.Schema) -> str | None:
    names = set(schema.names)
    if "conversations" in names:
        return "vst-sft-parquet"
    if {"question", "answer"} <= names:
        return "vst-rl-parquet"
    return None


def read_vst_parquet(path: Path, on_error: ErrorSink, display_path: str | None = None) -> Iterator[pa.RecordBatch]:
    """Yield raw batches for one shard; rows without usable turns go to ``on_error`` and are skipped."""
    shown = display_path or str(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged footer
        raise ReaderError(f"{shown}: not a readable Parquet file ({exc})") from exc
    fmt = parquet_kind(pf.schema_arrow)
    if fmt is None:
        raise ReaderError(
            f"{shown}: Parquet columns {pf.schema_arrow.names} are neither VST SFT (conversations, images, ...) "
            "nor VST RL (question, answer, images, meta_info)"
        )
    wanted = ["id", "conversations", "images", "data_source", "type", "meta_info", "question", "answer"]
    columns = [c for c in wanted if c in pf.schema_arrow.names]
    row_base = 0
    for rg in range(pf.num_row_groups):
        try:
            table = pf.read_row_group(rg, columns=columns)
        except Exception as exc:
            n = pf.metadata.row_group(rg).num_rows
            on_error(
                RowError(shown, None, None, f"row group {rg} (rows {row_base}-{row_base + n - 1}) unreadable: {exc}")
            )
            row_base += n
            continue
        try:
            batch = _to_raw(table, fmt, path, shown, rg, row_base, on_error)
        except ReaderError:
            raise  # the file's columns are unusable: every row group would say the same
        except Exception as exc:  # whatever else these rows hold costs their row group, never the file
            rows = f"rows {row_base}-{row_base + table.num_rows - 1}"
            on_error(RowError(shown, None, None, f"row group {rg} ({rows}) unreadable: {type(exc).__name__}: {exc}"))
            batch = None
        row_base += table.num_rows
        if batch is not None and batch.num_rows:
            yield batch


def _column(table: pa.Table, name: str, n: int, shown: str) -> pa.Array:
    """A text column as text: numbers become their digits; a column that has no text form makes the file unusable."""
    if name not in table.column_names:
        return pa.nulls(n, pa.string())
    col = table.column(name).combine_chunks()
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ReaderError(f"{shown}: column '{name}' is {col.type}, expected text; rewrite it as strings") from exc


def _to_raw(table: pa.Table, fmt: str, path: Path, shown: str, rg: int, row_base: int, on_error: ErrorSink):
    n = table.num_rows
    if fmt == "vst-sft-parquet":
        turns, valid = _sft_turns(table.column("conversations").combine_chunks(), shown, row_base, on_error)
        kind = "sft"
    else:
        turns, valid = _rl_turns(
            _column(table, "question", n, shown), _column(table, "answer", n, shown), shown, row_base, on_error
        )
        kind = "rl"
    types = _column(table, "type", n, shown)
    media = _media(table, types, turns, path.parent, shown, row_base)
    raw = pa.RecordBatch.from_arrays(
        [
            _column(table, "id", n, shown),
            turns,
            pa.nulls(n, pa.string()),
            media,
            _column(table, "data_source", n, shown),
            types,
            _meta_info_text(table, n),
            pa.array([kind] * n, pa.string()),
            pa.array([shown] * n, pa.string()),
            pa.array([fmt] * n, pa.string()),
            pa.array([rg] * n, pa.int32()),
            pa.array(range(n), pa.int32()),
            pa.array(range(row_base, row_base + n), pa.int64()),
            pa.nulls(n, RAW_SCHEMA.field("problems").type),
        ],
        schema=RAW_SCHEMA,
    )
    return raw.filter(valid) if not pc.all(valid).as_py() else raw


def _meta_info_text(table: pa.Table, n: int) -> pa.Array:
    if "meta_info" not in table.column_names:
        return pa.nulls(n, pa.string())
    col = table.column("meta_info").combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.cast(pa.string())
    # Some converters store meta_info as a struct/list column instead of JSON text: keep it as JSON text.
    import json

    return pa.array([None if v is None else json.dumps(v, sort_keys=True) for v in col.to_pylist()], pa.string())


def _sft_turns(conv: pa.Array, shown: str, row_base: int, on_error: ErrorSink) -> tuple[pa.Array, pa.Array]:
    if not (pa.types.is_list(conv.type) or pa.types.is_large_list(conv.type)) or not pa.types.is_struct(
        conv.type.value_type
    ):
        raise ReaderError(f"{shown}: column 'conversations' is {conv.type}, expected list<struct<from, value>>")
    st = conv.type.value_type
    names = [st.field(i).name for i in range(st.num_fields)]
    if "value" not in names or "from" not in names:
        raise ReaderError(f"{shown}: 'conversations' turns have fields {names}, expected 'from' and 'value'")
    values = conv.values
    roles = values.field("from").cast(pa.string())
    texts = values.field("value").cast(pa.string())
    inner = pa.StructArray.from_arrays([roles, texts], fields=list(TURN_TYPE))
    turns = pa.ListArray.from_arrays(conv.offsets, inner, mask=conv.is_null())
    # A usable row has at least one human turn with text.
    lengths = pc.list_value_length(turns).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(turns)
    human_text = pc.and_(
        pc.is_in(flat.field("role"), value_set=pa.array(HUMAN_ROLES)),
        pc.greater(pc.utf8_length(flat.field("text").fill_null("")), 0),
    ).fill_null(False)
    ok_parents = pc.filter(pc.list_parent_indices(turns), human_text).to_numpy(zero_copy_only=False)
    ok = np.zeros(len(turns), dtype=bool)
    ok[ok_parents] = True
    for i in np.flatnonzero(~ok):
        reason = "no turns" if lengths[i] == 0 else "no human turn with text"
        on_error(RowError(shown, row_base + int(i), "conversations", reason))
    valid = pa.array(ok)
    return turns, valid


def _rl_turns(question: pa.Array, answer: pa.Array, shown: str, row_base: int, on_error: ErrorSink):
    q = question.cast(pa.string())
    a = answer.cast(pa.string()) if not pa.types.is_string(answer.type) else answer
    n = len(q)
    human = pa.StructArray.from_arrays([pa.array([HUMAN] * n), q], fields=list(TURN_TYPE))
    gpt = pa.StructArray.from_arrays([pa.array([ASSISTANT] * n), a], fields=list(TURN_TYPE))
    # Interleave [human_i, gpt_i] into one list per row.
    idx = pa.array([j for i in range(n) for j in (i, n + i)])
    values = pa.concat_arrays([human, gpt]).take(idx)
    turns = pa.ListArray.from_arrays(pa.array(range(0, 2 * n + 1, 2), pa.int32()), values)
    valid = pc.greater(pc.utf8_length(q.fill_null("")), pa.scalar(0, pa.int32()))
    for i, ok in enumerate(valid.to_pylist()):
        if not ok:
            on_error(RowError(shown, row_base + i, "question", "empty or missing question"))
    return turns, valid


def _media(table: pa.Table, types: pa.Array, turns: pa.Array, base_dir: Path, shown: str, row_base: int) -> pa.Array:
    """Media pointers for a batch, built column-wise. Only items whose bytes we can reach (embedded, or a file
    that exists) go through Python (hash + image header); a missing file costs no Python at all."""
    n = table.num_rows
    if "images" not in table.column_names:
        return pa.array([[] for _ in range(n)], pa.list_(MEDIA_TYPE))
    images = _item_lists(table.column("images").combine_chunks(), shown)
    offsets = images.offsets.to_numpy(zero_copy_only=False)
    lo = int(offsets[0])
    values = images.values.slice(lo, int(offsets[-1]) - lo)
    offsets = offsets - lo
    n_items = len(values)
    if pa.types.is_struct(values.type):
        names = [values.type.field(i).name for i in range(values.type.num_fields)]
        key = next((k for k in BYTES_FIELDS if k in names), None)
        data = values.field(key) if key else pa.nulls(n_items, pa.binary())
        paths = values.field("path").cast(pa.string()) if "path" in names else pa.nulls(n_items, pa.string())
    elif pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):  # bare bytes, no paths
        data, paths = values.cast(pa.binary()), pa.nulls(n_items, pa.string())
    else:  # a plain list of paths
        data, paths = pa.nulls(n_items, pa.binary()), values.cast(pa.string())
    paths = paths.fill_null("")
    # The first item of a video row is the video.
    counts = np.diff(offsets)
    parent = np.repeat(np.arange(n), counts)
    first_of_row = np.zeros(n_items, dtype=bool)
    first_of_row[offsets[:-1][counts > 0]] = True
    video_row = pc.equal(pc.utf8_lower(types.fill_null("")), "video").to_numpy(zero_copy_only=False).copy()
    video_row[list(_rows_mentioning(turns, VIDEO_PAD))] = True
    is_video = first_of_row & video_row[parent] if n_items else first_of_row
    kinds = np.where(is_video, "video", "image")
    # Which items can be read: embedded bytes, or a path whose folder lists it.
    has_bytes = pc.fill_null(pc.greater(pc.binary_length(data), 0), False).to_numpy(zero_copy_only=False)
    base = str(base_dir)
    resolved = pc.if_else(pc.starts_with(paths, "/"), paths, pc.binary_join_element_wise(base, paths, "/"))
    folders = pc.replace_substring_regex(resolved, "/[^/]*$", "")
    listed = [f"{d}/{e}" for d in pc.unique(folders).to_pylist() for e in (_dir_entries(d) or ())]
    exists = pc.is_in(resolved, value_set=pa.array(listed, pa.string())).to_numpy(zero_copy_only=False)
    # A path that may leave the shard's folder (absolute, or climbing with ..) is judged by path_item even when
    # missing, so it is recorded as outside the media roots, as the JSON readers record it.
    escapes = pc.match_substring_regex(paths, r"^/|(^|/)\.\.(/|$)").to_numpy(zero_copy_only=False)
    readable = np.flatnonzero(
        has_bytes | ((exists | escapes) & (pc.utf8_length(paths).to_numpy(zero_copy_only=False) > 0))
    )
    # Unreadable items, all at once.
    problem = pc.if_else(pc.equal(paths, ""), NO_PATH, MISSING_FILE)
    default = pa.StructArray.from_arrays(
        [
            pa.array(kinds, pa.string()),
            pa.nulls(n_items, pa.string()),
            pa.nulls(n_items, pa.int32()),
            pa.nulls(n_items, pa.int32()),
            paths,
            pa.nulls(n_items, pa.int64()),
            pa.array(np.zeros(n_items, bool)),
            problem,
        ],
        fields=list(MEDIA_TYPE),
    )
    if len(readable):
        datas = data.take(pa.array(readable)).to_pylist()
        plist = paths.take(pa.array(readable)).to_pylist()
        items = [
            embedded_item(kinds[i], d, p) if d else path_item(kinds[i], p, base_dir)
            for i, d, p in zip(readable.tolist(), datas, plist)
        ]
        fixed = pa.array(items, MEDIA_TYPE)
        mapping = np.arange(n_items)
        mapping[readable] = n_items + np.arange(len(readable))
        struct = pa.concat_arrays([default, fixed]).take(pa.array(mapping))
    else:
        struct = default
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct)


def _item_lists(images: pa.Array, shown: str) -> pa.Array:
    """The `images` column as a list of items per row. VST writes list<struct<bytes, path>>; a list of paths or of
    bytes reads too, and so does one item per row (a path, bytes, or a struct as Hugging Face's Image feature writes
    it), where a null or empty value means no image."""
    t = images.type
    one_per_row = not (pa.types.is_list(t) or pa.types.is_large_list(t))
    item = t if one_per_row else t.value_type
    if not (pa.types.is_struct(item) or pa.types.is_null(item) or _is_text_or_bytes(item)):
        raise ReaderError(
            f"{shown}: column 'images' is {t}; expected list<struct<bytes, path>> (VST), a list of paths or bytes, "
            "or one path per row: rewrite the column in one of these shapes"
        )
    if not one_per_row:
        return images
    present = pc.is_valid(images)
    if _is_text_or_bytes(item):
        present = pc.and_(present, pc.greater(pc.binary_length(images), 0)).fill_null(False)
    counts = present.to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int32)])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), images.filter(present))


def _is_text_or_bytes(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _rows_mentioning(turns: pa.Array, needle: str) -> set[int]:
    """Indices of rows where any turn's text contains ``needle``."""
    flat = pc.list_flatten(turns)
    hits = pc.match_substring(flat.field("text").fill_null(""), needle)
    return set(pc.filter(pc.list_parent_indices(turns), hits).to_pylist())
