"""Readers for JSON / JSONL records: LLaVA/Qwen-VL style (incl. VST's video subset) and VST RL JSON (§2)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from curation.ingest.readers.media_refs import path_item
from curation.ingest.readers.raw import RAW_SCHEMA, ReaderError, RowError
from curation.vst.vocabulary import ASSISTANT, HUMAN, HUMAN_ROLES

ErrorSink = Callable[[RowError], None]
BATCH_ROWS = 4096
SAVE_AS_UTF8 = "save the file as UTF-8"
TOO_DEEP = "nested deeper than a JSON parser allows (Python's stops at about 1,000 levels); flatten or drop it"


def _records(path: Path, shown: str, on_error: ErrorSink) -> Iterator[tuple[int, object]]:
    if path.suffix == ".jsonl":
        yield from _jsonl_records(path, shown, on_error)
        return
    data = path.read_bytes()
    try:
        text, bad_byte = data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        # Read it anyway: the records that hold the bad bytes are skipped below, the others land.
        text, bad_byte = data.decode("utf-8-sig", errors="surrogateescape"), exc.start
    del data
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReaderError(f"{shown}: not valid JSON ({exc})") from exc
    except RecursionError:
        # One record nested too deeply stops Python's parser for the whole list: take the list apart without it.
        yield from _records_one_by_one(path, shown, on_error)
        return
    if isinstance(parsed, dict):  # some dumps wrap the list: {"data": [...]}
        parsed = next((v for v in parsed.values() if isinstance(v, list)), [parsed])
    if not isinstance(parsed, list):
        raise ReaderError(f"{shown}: expected a JSON list of records, found {type(parsed).__name__}")
    for i, rec in enumerate(parsed):
        field = _not_utf8_field(rec) if bad_byte is not None else None
        if field is not None:
            on_error(
                RowError(
                    shown,
                    i,
                    field,
                    f"not valid UTF-8 (the file's first bad byte is at offset {bad_byte}); {SAVE_AS_UTF8}",
                )
            )
            continue
        yield i, rec


def _jsonl_records(path: Path, shown: str, on_error: ErrorSink) -> Iterator[tuple[int, object]]:
    """One record per line; a line that is not UTF-8 or not JSON is that row's error."""
    with path.open("rb") as fh:
        for i, raw in enumerate(fh):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8-sig" if i == 0 else "utf-8"))
            except UnicodeDecodeError as exc:
                reason = f"line {i + 1} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                on_error(RowError(shown, i, None, f"{reason}; {SAVE_AS_UTF8}"))
                continue
            except json.JSONDecodeError as exc:
                on_error(RowError(shown, i, None, f"invalid JSON on line {i + 1}: {exc.msg}"))
                continue
            except RecursionError:
                on_error(RowError(shown, i, None, f"line {i + 1} is {TOO_DEEP}"))
                continue
            yield i, rec


def _records_one_by_one(path: Path, shown: str, on_error: ErrorSink) -> Iterator[tuple[int, object]]:
    """A JSON list's elements parsed one at a time: DuckDB's JSON reader (no recursion) cuts the list into
    elements, and an element Python cannot parse is that row's error."""
    size = max(path.stat().st_size, 1 << 24)
    try:
        with duckdb.connect() as con:
            texts = con.execute(
                "SELECT json::VARCHAR FROM read_json_objects(?, format = 'array', maximum_object_size = ?)",
                [str(path), size],
            ).fetchall()
    except duckdb.Error as exc:
        raise ReaderError(f"{shown}: a record is {TOO_DEEP}, and the file is not a plain JSON list ({exc})") from exc
    for i, (text,) in enumerate(texts):
        try:
            rec = json.loads(text)
        except RecursionError:
            on_error(RowError(shown, i, None, f"record {i} is {TOO_DEEP}"))
            continue
        yield i, rec


def _not_utf8_field(rec: object) -> str | None:
    """Where in a record decoded with surrogate escapes a non-UTF-8 byte sits ("" for the record itself), else
    None. Walked with a stack: a record may be nested as deeply as the parser allows."""
    stack: list[tuple[str, object]] = [("", rec)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and not _encodes(value):
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _encodes(key):
                    return where
                stack.append((f"{where}.{key}" if where else key, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{j}]", item) for j, item in enumerate(value))
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_kind(path: Path) -> str | None:
    """Peek at the first record to tell LLaVA-style from RL JSON."""
    try:
        with path.open("rb") as fh:
            # Only a peek: bytes that are not UTF-8 are the reader's to report, with the row they are in.
            head = fh.read(65536).decode("utf-8", errors="replace")
    except OSError:
        return None
    body = head.lstrip("\ufeff \t\r\n")
    if path.suffix == ".jsonl":
        try:
            first = json.loads(body.splitlines()[0]) if body else {}
        except (ValueError, IndexError, RecursionError):
            return "llava-jsonl"
        return (
            "vst-rl-jsonl"
            if isinstance(first, dict) and "question" in first and "conversations" not in first
            else "llava-jsonl"
        )
    if '"conversations"' in head:
        return "llava-json"
    if '"question"' in head:
        return "vst-rl-json"
    return "llava-json"


def _json_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def read_json_records(
    path: Path, fmt: str, on_error: ErrorSink, display_path: str | None = None
) -> Iterator[pa.RecordBatch]:
    shown = display_path or str(path)
    base = path.parent
    rows: list[dict] = []
    for i, rec in _records(path, shown, on_error):
        try:
            row = _llava_row(rec, base) if fmt.startswith("llava") else _rl_row(rec, base)
        except Exception as exc:  # whatever else a hostile record holds costs that row, never the file
            row = ("", f"record could not be read ({type(exc).__name__}: {exc})")
        if isinstance(row, tuple):
            field, reason = row
            on_error(RowError(shown, i, field, reason))
            continue
        row.update(source_file=shown, source_format=fmt, row_group=None, row_in_group=None, row_index=i)
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            yield pa.RecordBatch.from_pylist(rows, schema=RAW_SCHEMA)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=RAW_SCHEMA)


def _media_paths(rec: dict, keys: tuple[str, ...]) -> tuple[str, list[str] | str]:
    """(field, paths) of the first of ``keys`` the record sets: a path, a {"path": ...} object or a list of them.
    ``paths`` is the reason in words when the field holds anything else."""
    field = next((k for k in keys if rec.get(k)), keys[0])
    value = rec.get(field) or []
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list):
        return field, f"is {type(value).__name__} {json.dumps(value)[:40]}; expected a path or a list of paths"
    paths = []
    for j, item in enumerate(items):
        path = item.get("path") if isinstance(item, dict) else item
        if not isinstance(path, str):
            where = field if isinstance(value, (str, dict)) else f"{field}[{j}]"
            return where, f'is {type(item).__name__} {json.dumps(item)[:40]}; expected a path or {{"path": ...}}'
        paths.append(path)
    return field, paths


def _media(rec: dict, base: Path, kinds: dict[str, tuple[str, ...]]) -> list[dict] | tuple[str, str]:
    media = []
    for kind, keys in kinds.items():
        field, paths = _media_paths(rec, keys)
        if isinstance(paths, str):
            return field, paths
        media.extend(path_item(kind, p, base) for p in paths)
    return media


def _llava_row(rec, base: Path) -> dict | tuple[str, str]:
    if not isinstance(rec, dict):
        return ("", f"record is {type(rec).__name__}, expected an object")
    conv = rec.get("conversations")
    if not isinstance(conv, list) or not conv:
        return ("conversations", "missing or empty")
    turns = []
    for t in conv:
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            return ("conversations", "a turn has no text 'value'")
        turns.append({"role": str(t.get("from") or t.get("role") or ""), "text": t["value"]})
    if not any(t["role"] in HUMAN_ROLES and t["text"].strip() for t in turns):
        return ("conversations", "no human turn with text")
    media = _media(rec, base, {"video": ("video", "videos"), "image": ("image", "images")})
    if isinstance(media, tuple):
        return media
    return {
        "source_id": None if rec.get("id") is None else str(rec.get("id")),
        "conversations": turns,
        "thought": None,
        "media": media,
        "data_source": _json_text(rec.get("data_source")),
        "type": _json_text(rec.get("type")),
        "meta_info": _json_text(rec.get("meta_info")),
        "kind": "sft",
        "problems": None,
    }


def _rl_row(rec, base: Path) -> dict | tuple[str, str]:
    if not isinstance(rec, dict):
        return ("", f"record is {type(rec).__name__}, expected an object")
    question = rec.get("question")
    if not isinstance(question, str) or not question.strip():
        return ("question", "missing or empty")
    answer = rec.get("answer_gt", rec.get("answer"))
    media = _media(rec, base, {"image": ("images",)})
    if isinstance(media, tuple):
        return media
    return {
        "source_id": None if rec.get("id") is None else str(rec.get("id")),
        "conversations": [
            {"role": HUMAN, "text": question},
            {"role": ASSISTANT, "text": "" if answer is None else str(answer)},
        ],
        "thought": _json_text(rec.get("thought")),
        "media": media,
        "data_source": _json_text(rec.get("data_source")),
        "type": _json_text(rec.get("type")),
        "meta_info": _json_text(rec.get("meta_info")),
        "kind": "rl",
        "problems": None,
    }


__all__ = ["read_json_records", "json_kind", "ReaderError"]
