"""Readers for JSON / JSONL records: LLaVA/Qwen-VL style (incl. VST's video subset) and VST RL JSON (§2)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from curation.ingest.readers.media_refs import path_item
from curation.ingest.readers.raw import RAW_SCHEMA, ReaderError, RowError
from curation.vst.vocabulary import ASSISTANT, HUMAN, HUMAN_ROLES

ErrorSink = Callable[[RowError], None]
BATCH_ROWS = 4096


def _records(path: Path, shown: str, on_error: ErrorSink) -> Iterator[tuple[int, object]]:
    if path.suffix == ".jsonl":
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    yield i, json.loads(line)
                except json.JSONDecodeError as exc:
                    on_error(RowError(shown, i, None, f"invalid JSON on line {i + 1}: {exc.msg}"))
        return
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReaderError(f"{shown}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):  # some dumps wrap the list: {"data": [...]}
        data = next((v for v in data.values() if isinstance(v, list)), [data])
    if not isinstance(data, list):
        raise ReaderError(f"{shown}: expected a JSON list of records, found {type(data).__name__}")
    yield from enumerate(data)


def json_kind(path: Path) -> str | None:
    """Peek at the first record to tell LLaVA-style from RL JSON."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    body = head.lstrip()
    if path.suffix == ".jsonl":
        try:
            first = json.loads(body.splitlines()[0]) if body else {}
        except (json.JSONDecodeError, IndexError):
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
        row = _llava_row(rec, base) if fmt.startswith("llava") else _rl_row(rec, base)
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
    media = []
    videos = rec.get("video") or rec.get("videos") or []
    images = rec.get("image") or rec.get("images") or []
    for v in [videos] if isinstance(videos, str) else videos:
        media.append(path_item("video", str(v), base))
    for im in [images] if isinstance(images, str) else images:
        media.append(path_item("image", str(im.get("path") if isinstance(im, dict) else im), base))
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
    images = rec.get("images") or []
    media = [path_item("image", str(im.get("path") if isinstance(im, dict) else im), base) for im in images]
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
