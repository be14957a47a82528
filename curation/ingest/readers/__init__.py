"""Readers: one per source format, each yielding raw batches (curation.ingest.readers.raw) with media as pointers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.ingest.readers.json_records import json_kind, read_json_records
from curation.ingest.readers.raw import RAW_SCHEMA, ReaderError, RowError
from curation.ingest.readers.vst_parquet import parquet_kind, read_vst_parquet

SUFFIXES = (".parquet", ".json", ".jsonl")
# Files that sit beside shards but are not samples: export manifests, the demo's ground truth.
NOT_SHARDS = {"manifest.json", "dataset_info.json", "demo_manifest.json", "defects.parquet"}


def detect_format(path: Path) -> str | None:
    """The source format of one file, or None when it is not a shard we read."""
    if path.suffix == ".parquet":
        try:
            return parquet_kind(pq.read_schema(path)) or "unknown-parquet"
        except Exception:
            return "unreadable-parquet"
    if path.suffix in (".json", ".jsonl"):
        return json_kind(path)
    return None


def read_shard(
    path: Path, on_error: Callable[[RowError], None], display_path: str | None = None
) -> Iterator[pa.RecordBatch]:
    """Raw batches of one shard, whatever its format. Raises ReaderError when the file as a whole is unusable."""
    shown = display_path or str(path)
    fmt = detect_format(path)
    if fmt is None:
        raise ReaderError(f"{shown}: not a shard (expected {', '.join(SUFFIXES)})")
    if fmt.endswith("parquet"):
        yield from read_vst_parquet(path, on_error, shown)
    else:
        yield from read_json_records(path, fmt, on_error, shown)


def find_shards(paths: list[Path]) -> list[Path]:
    """Walk folders; keep files with shard suffixes, sorted so ingest order (and so ids) is deterministic."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(
                f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix in SUFFIXES and f.name not in NOT_SHARDS
            )
        else:
            found.append(p)
    return found


__all__ = ["RAW_SCHEMA", "ReaderError", "RowError", "detect_format", "read_shard", "find_shards"]
