"""The raw batch every reader yields: source rows reduced to common columns, media as pointers."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TURN_TYPE = pa.struct([("role", pa.string()), ("text", pa.string())])
MEDIA_TYPE = pa.struct(
    [
        ("kind", pa.string()),  # image | video
        ("digest", pa.string()),  # xxh3-64 hex of the bytes; NULL when the bytes are unreachable
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("path", pa.string()),  # as written in the source (may be empty for embedded bytes)
        ("byte_size", pa.int64()),
        ("embedded", pa.bool_()),
        ("problem", pa.string()),  # NULL, or why this item cannot be shown (missing_file, undecodable, ...)
    ]
)
PROBLEM_TYPE = pa.struct([("code", pa.string()), ("field", pa.string()), ("message", pa.string())])

RAW_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("conversations", pa.list_(TURN_TYPE)),
        ("thought", pa.string()),  # RL JSON form keeps its reasoning apart from the answer
        ("media", pa.list_(MEDIA_TYPE)),
        ("data_source", pa.string()),
        ("type", pa.string()),
        ("meta_info", pa.string()),
        ("kind", pa.string()),  # sft | rl
        ("source_file", pa.string()),
        ("source_format", pa.string()),
        ("row_group", pa.int32()),
        ("row_in_group", pa.int32()),
        ("row_index", pa.int64()),
        ("problems", pa.list_(PROBLEM_TYPE)),
    ]
)


@dataclass(frozen=True)
class RowError:
    """A row (or a whole file when row_index is None) that could not become a sample."""

    file: str
    row_index: int | None
    field: str | None
    reason: str


class ReaderError(Exception):
    """A whole file cannot be read; the message names the file and what is wrong."""
