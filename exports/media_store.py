"""Media for exports: read each selected item's bytes (embedded in its shard, or a file by path) with one read per
row group, check them against the catalog digest, and write content-addressed files once per digest."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import pyarrow.parquet as pq
import xxhash

# Same rule as ingest (curation/readers/media_refs.py): files by path hash their first 4 MiB plus their size.
_PATH_DIGEST_BYTES = 4 << 20
# File name extensions kept from a media item's source path; anything else gets none (readers sniff content).
MEDIA_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "mp4", "avi", "mov", "mkv", "webm")


class MediaMissing(Exception):
    """A media item cannot be read for an export; the message names the sample, item, file and why."""


def media_digest(data: bytes, embedded: bool) -> str:
    """The catalog's digest of an item's bytes (xxh3-64), so a changed shard or file is caught before export."""
    if embedded or len(data) <= _PATH_DIGEST_BYTES:
        return xxhash.xxh3_64_hexdigest(data)
    return xxhash.xxh3_64_hexdigest(data[:_PATH_DIGEST_BYTES] + str(len(data)).encode())


class MediaReader:
    """Reads the media of catalog rows. Rows should come in shard order: each row group is then read once."""

    def __init__(self, cached_row_groups: int = 4, verify: bool = True):
        self._cache: OrderedDict[tuple[str, int], list] = OrderedDict()
        self._size = cached_row_groups
        self._files: dict[str, pq.ParquetFile] = {}
        self.verify = verify

    def _row_group(self, source_file: str, row_group: int) -> list:
        key = (source_file, row_group)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        pf = self._files.get(source_file)
        if pf is None:
            if len(self._files) > 8:  # keep few files open: exports walk shards one after another
                self._files.clear()
            pf = self._files[source_file] = pq.ParquetFile(source_file)
        items = pf.read_row_group(row_group, columns=["images"]).column("images").to_pylist()
        self._cache[key] = items
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return items

    def read_row(self, row: dict) -> list[bytes]:
        """Bytes of every media item of a catalog row (keys: sample_id, media, source_file, row_group,
        row_in_group); raises MediaMissing for the first item that cannot be read or no longer matches."""
        sid = row["sample_id"]
        source_file = row["source_file"]
        out: list[bytes] = []
        for i, item in enumerate(row.get("media") or []):
            if item.get("embedded"):
                data = self._embedded(row, i)
            else:
                data = self._by_path(sid, i, item.get("path") or "", source_file)
            if self.verify and item.get("digest") and media_digest(data, bool(item.get("embedded"))) != item["digest"]:
                raise MediaMissing(f"sample {sid}: media[{i}] changed since ingest (digest differs); re-ingest "
                                   f"{source_file}")
            out.append(data)
        return out

    def _embedded(self, row: dict, i: int) -> bytes:
        sid, source_file = row["sample_id"], row["source_file"]
        if not os.path.exists(source_file):
            raise MediaMissing(f"sample {sid}: media[{i}]: shard {source_file} is gone")
        try:
            items = self._row_group(source_file, int(row["row_group"]))
            raw = (items[int(row["row_in_group"])] or [])[i]
        except (OSError, IndexError, TypeError, ValueError) as exc:
            raise MediaMissing(f"sample {sid}: media[{i}]: cannot read it from {source_file} ({exc})") from exc
        data = (raw.get("bytes") or raw.get("byres")) if isinstance(raw, dict) else None  # upstream misspelling
        if not data:
            raise MediaMissing(f"sample {sid}: media[{i}] in {source_file} has no bytes")
        return data

    @staticmethod
    def _by_path(sid: str, i: int, path: str, source_file: str) -> bytes:
        if not path:
            raise MediaMissing(f"sample {sid}: media[{i}] has neither bytes nor a path")
        p = Path(path)
        resolved = p if p.is_absolute() else Path(source_file).parent / p
        try:
            return resolved.read_bytes()
        except OSError as exc:
            raise MediaMissing(f"sample {sid}: media[{i}] file {resolved}: {exc.strerror or exc}") from exc


class MediaStore:
    """Content-addressed media files under an export folder: ``media/<digest[:2]>/<digest>.<ext>``, once each."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._written: set[str] = set()
        self.files = 0
        self.bytes = 0
        self.reused = 0

    def put(self, relpath: str, data: bytes) -> bool:
        """Write ``data`` at ``relpath`` unless this export already holds it; True when written now."""
        if relpath in self._written:
            self.reused += 1
            return False
        target = self.root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        self._written.add(relpath)
        self.files += 1
        self.bytes += len(data)
        return True
