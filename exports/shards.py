"""Sharded output files (JSON Lines, JSON arrays, Parquet) cut where only the content decides, never the batches.

Shards are cut by size or row count at row boundaries, so the same rows always give the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Fixed Parquet writer settings: byte-identical files for identical rows (pyarrow writes no timestamps).
PARQUET_OPTIONS = {"compression": "snappy", "use_dictionary": True, "write_statistics": True, "version": "2.6",
                       "data_page_version": "1.0"}


def shard_name(index: int, ext: str) -> str:
    return f"part-{index:05d}.{ext}"


class ShardWriteError(OSError):
    """A shard file could not be written (a full disk, a read-only folder): names the file and what to do."""

    def __str__(self) -> str:
        return (f"{self.filename}: could not be written ({self.strerror}); free space on its disk or make the "
                "folder writable, or export to another --out folder, then export again")


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Errors of writing ``path`` as a ShardWriteError naming it: Python's file writes and Arrow's name no file."""
    try:
        yield
    except ShardWriteError:
        raise
    except OSError as exc:
        raise ShardWriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc


class TextShards:
    """Records into ``<dir>/part-NNNNN.jsonl`` (each record ends with a newline) or JSON arrays ``part-NNNNN.json``
    (each record starts with ",\\n"). Bytes go from Arrow's buffers to the file without Python strings, and are
    hashed (sha256) on the way."""

    def __init__(self, directory: Path, array: bool, shard_bytes: int | None = None, shard_rows: int | None = None):
        self.directory = Path(directory)
        self.array = array
        self.shard_bytes = shard_bytes
        self.shard_rows = shard_rows
        self.paths: list[Path] = []
        self.sha256: dict[Path, str] = {}
        self.rows = 0
        self._fh = None
        self._hash = None
        self._bytes = 0
        self._rows = 0

    def _put(self, data) -> None:
        with _writing(self.paths[-1]):
            self._fh.write(data)
        self._hash.update(data)

    def _open(self) -> None:
        path = self.directory / shard_name(len(self.paths), "json" if self.array else "jsonl")
        with _writing(path):
            self.directory.mkdir(parents=True, exist_ok=True)
            fh = path.open("wb")
        self.paths.append(path)
        self._fh, self._hash = fh, hashlib.sha256()
        # A JSON array adds "[\n" and "\n]\n" and drops its first record's ",\n": 3 bytes over the records.
        self._bytes, self._rows = (3 if self.array else 0), 0
        if self.array:
            self._put(b"[\n")

    def _close_file(self) -> None:
        if self._fh is not None:
            if self.array:
                self._put(b"\n]\n")
            fh, self._fh = self._fh, None
            with _writing(self.paths[-1]):
                fh.close()  # writes what is still buffered: a full disk may show only here
            self.sha256[self.paths[-1]] = self._hash.hexdigest()
            self._fh = self._hash = None

    def write(self, records: pa.Array) -> None:
        """Append a batch of records (a string array), opening new shards where the limits say."""
        n = len(records)
        if n == 0:
            return
        if records.null_count:
            raise ValueError("a record is NULL: the export query produced no JSON for it")
        if not pa.types.is_large_string(records.type):
            records = records.cast(pa.large_string())
        offsets = np.frombuffer(records.buffers()[1], dtype=np.int64)[records.offset: records.offset + n + 1]
        data = memoryview(records.buffers()[2])
        sizes = np.diff(offsets)
        start = 0
        while start < n:
            if self._fh is None:
                self._open()
            end = self._room(sizes, start)
            if end > start:
                skip = 2 if (self.array and self._rows == 0) else 0  # the first record of an array has no ",\n"
                self._put(data[int(offsets[start]) + skip: int(offsets[end])])
                self._bytes += int(sizes[start:end].sum())
                self._rows += end - start
                self.rows += end - start
                start = end
            if start < n:
                self._close_file()

    def _room(self, sizes: np.ndarray, start: int) -> int:
        """Index after the last record (from ``start``) that fits in the current shard; at least one record."""
        end = len(sizes)
        if self.shard_rows:
            end = min(end, start + max(self.shard_rows - self._rows, 0))
        if self.shard_bytes:
            cum = np.cumsum(sizes[start:end]) + self._bytes
            end = start + int(np.searchsorted(cum, self.shard_bytes, side="right"))
        if end <= start and self._rows == 0:
            end = start + 1  # a record bigger than a whole shard still gets written
        return end

    def close(self) -> list[Path]:
        self._close_file()
        return self.paths


class ParquetShards:
    """Tables into ``<dir>/part-NNNNN.parquet``: fixed-size row groups, a new file when size or rows would overflow."""

    def __init__(self, directory: Path, schema: pa.Schema, row_group_rows: int, shard_bytes: int | None = None,
                 shard_rows: int | None = None):
        self.directory = Path(directory)
        self.schema = schema
        self.row_group_rows = max(1, min(row_group_rows, shard_rows or row_group_rows))
        self.shard_bytes = shard_bytes
        self.shard_rows = shard_rows
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._bytes = 0
        self._rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, rows: int) -> None:
        buf = pa.concat_tables(self._pending)
        group, rest = buf.slice(0, rows), buf.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        self._write_group(group.combine_chunks())

    def _write_group(self, group: pa.Table) -> None:
        size = group.nbytes  # uncompressed; a stable, content-only measure
        if self._writer is not None and (
            (self.shard_bytes and self._bytes + size > self.shard_bytes)
            or (self.shard_rows and self._rows + group.num_rows > self.shard_rows)
        ):
            self._close_writer()
        if self._writer is None:
            path = self.directory / shard_name(len(self.paths), "parquet")
            with _writing(path):
                self.directory.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(path, self.schema, **PARQUET_OPTIONS)
            self.paths.append(path)
            self._bytes = self._rows = 0
        with _writing(self.paths[-1]):
            self._writer.write_table(group, row_group_size=group.num_rows)
        self._bytes += size
        self._rows += group.num_rows

    def close(self) -> list[Path]:
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._close_writer()
        return self.paths

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with _writing(self.paths[-1]):
                writer.close()  # writes the footer
