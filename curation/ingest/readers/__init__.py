"""Readers: one per source format, each yielding raw batches (curation.ingest.readers.raw) with media as pointers."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.ingest.readers.json_records import json_kind, read_json_records
from curation.ingest.readers.raw import RAW_SCHEMA, ReaderError, RowError
from curation.ingest.readers.vst_parquet import parquet_kind, read_vst_parquet

SUFFIXES = (".parquet", ".json", ".jsonl")
# How the reason of an entry find_shards skipped begins (ingest replaces these errors on each walk of a folder).
SKIPPED = "skipped: "
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


def find_shards(paths: list[Path], on_error: Callable[[RowError], None] | None = None) -> list[Path]:
    """Walk folders; keep files with shard suffixes, sorted so ingest order (and so ids) is deterministic.

    Folders reached through a symlink are not entered (a link back up the tree would loop). A shard-named entry that
    is not a readable file (a dangling or looping symlink, a fifo) and a folder that cannot be listed go to
    ``on_error``: skipped, but never silently."""
    found: list[Path] = []
    for p in paths:
        if not p.is_dir():
            found.append(p)
            continue
        inside: list[Path] = []
        for folder, dirs, files in os.walk(p, onerror=lambda exc: _unlisted(on_error, exc)):
            for name in (*dirs, *files):
                f = Path(folder, name)
                if f.suffix not in SUFFIXES or name in NOT_SHARDS:
                    continue
                if f.is_file():
                    inside.append(f)
                elif not f.is_dir():
                    _report(on_error, f, _why_unusable(f))
        found.extend(sorted(inside))
    return found


def _why_unusable(path: Path) -> str:
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python 3.11 names a loop this way
            return "a symlink that loops back on itself"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a symlink that loops back on itself"
            return f"a symlink to {os.readlink(path)}, which does not exist"
    return "not a regular file (a fifo, socket or device)"


def _unlisted(on_error: Callable[[RowError], None] | None, exc: OSError) -> None:
    _report(on_error, exc.filename, f"a folder that cannot be listed ({exc.strerror})")


def _report(on_error: Callable[[RowError], None] | None, path, why) -> None:
    if on_error is not None:
        on_error(RowError(str(path), None, None, f"{SKIPPED}{why}; fix or remove it"))


__all__ = ["RAW_SCHEMA", "SKIPPED", "ReaderError", "RowError", "detect_format", "read_shard", "find_shards"]
