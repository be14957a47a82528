"""The one reader of media bytes behind a catalog media pointer: embedded in a Parquet shard, or a file by path."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from threading import Lock
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

# Files by path hash at most this much (videos can be gigabytes): head + size is a stable, fast digest.
PATH_DIGEST_BYTES = 4 << 20
# Row groups' `images` columns kept in memory, newest last: rows read in shard order (checks, exports) cost one read
# per row group. The newest row group is kept even when it alone is larger than the budget.
CACHE_BYTES = 256 << 20
# The field of an `images` struct holding the bytes: "bytes", or upstream's misspelling "byres" in some shards.
BYTES_FIELDS = ("bytes", "byres")


class MediaError(Exception):
    """A media item cannot be read; the message names the sample, item, file and why."""


def digest_bytes(data: bytes) -> str:
    """xxh3-64 hex of a byte string, the digest the catalog records for embedded media."""
    return xxhash.xxh3_64_hexdigest(data)


def path_digest(head: bytes, size: int) -> str:
    """The catalog's digest of a file by path from its first PATH_DIGEST_BYTES (``head``) and its size."""
    return digest_bytes(head) if size <= PATH_DIGEST_BYTES else digest_bytes(head + str(size).encode())


def media_digest(data: bytes, embedded: bool) -> str:
    """The catalog's digest of an item's whole bytes, so a changed shard or file can be caught after ingest."""
    return digest_bytes(data) if embedded else path_digest(data[:PATH_DIGEST_BYTES], len(data))


def struct_bytes(value: Any) -> bytes | None:
    """The bytes of one `images` struct (under either of BYTES_FIELDS); None when it holds none."""
    if not isinstance(value, Mapping):
        return None
    return next((value[k] for k in BYTES_FIELDS if value.get(k)), None)


def resolve_media_path(path: str, base_dir: Path) -> Path:
    """A media path as written in a shard: absolute, or relative to the shard's folder."""
    p = Path(path)
    return p if p.is_absolute() else base_dir / p


def real_media_path(path: str, shard_dir: str | os.PathLike, real_dir: Callable[[str], str] = os.path.realpath,
                    is_link: Callable[[str], bool] = os.path.islink) -> str:
    """Where a media path written in a shard really points: relative to the shard's folder, every symlink followed.
    ``real_dir`` resolves the folder and ``is_link`` tells whether the file itself is a link (ingest answers both from
    caches: millions of rows share few folders). Raises ValueError for a path no file can have (a NUL byte)."""
    full = os.path.join(shard_dir, path)  # an absolute path stays as it is
    folder, name = os.path.split(full)
    if name in ("", ".", ".."):  # names a folder: nothing to split off
        return os.path.realpath(full)
    joined = os.path.join(real_dir(folder), name)
    return os.path.realpath(joined) if is_link(joined) else joined


def media_roots_of(shard_dir: Path, media_roots: Iterable[str | os.PathLike] = ()) -> list[str]:
    """The folders a shard's media may lie in, symlinks resolved: the shard's own folder tree, then ``media_roots``
    (CURATOR_MEDIA_ROOTS)."""
    return [os.path.realpath(shard_dir), *(os.path.realpath(r) for r in media_roots)]


def within_roots(real_path: str, roots: Iterable[str]) -> bool:
    """Whether a resolved path lies in one of ``roots`` (resolved folders): by whole path components, so that
    /data/shards2 is not inside /data/shards."""
    return any(real_path == r or real_path.startswith(r if r.endswith(os.sep) else r + os.sep) for r in roots)


class _RowGroups:
    """The `images` column of recently read row groups, bounded by bytes; keyed by the file's size and mtime too, so
    a replaced shard is read again."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._entries: OrderedDict[tuple, pa.Array] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._lock = Lock()

    def images(self, source_file: str, row_group: int) -> pa.Array:
        st = os.stat(source_file)
        key = (source_file, st.st_size, st.st_mtime_ns, row_group)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        with pq.ParquetFile(source_file) as pf:
            column = pf.read_row_group(row_group, columns=["images"]).column("images").combine_chunks()
        with self._lock:
            if key not in self._entries:
                self._entries[key] = column
                self._bytes += column.nbytes
            while len(self._entries) > 1 and self._bytes > self._max_bytes:
                self._bytes -= self._entries.popitem(last=False)[1].nbytes
        return column


_ROW_GROUPS = _RowGroups()


def _embedded(row: Mapping[str, Any], index: int) -> bytes:
    sid, source_file = row.get("sample_id"), row["source_file"]
    try:
        images = _ROW_GROUPS.images(source_file, int(row["row_group"]))
    except FileNotFoundError as exc:
        raise MediaError(f"sample {sid}: shard {source_file} is gone (media[{index}] is embedded in it)") from exc
    except Exception as exc:  # pyarrow raises several types for a damaged or rewritten shard
        raise MediaError(f"sample {sid}: cannot read media[{index}] from {source_file}: {exc}") from exc
    try:
        items = images[int(row["row_in_group"])].values
        raw = items[index].as_py() if items is not None and index < len(items) else None
    except (IndexError, TypeError, ValueError) as exc:
        raise MediaError(f"sample {sid}: cannot read media[{index}] from {source_file}: {exc}") from exc
    data = struct_bytes(raw)
    if not data:
        raise MediaError(f"sample {sid}: media[{index}] in {source_file} has no bytes")
    return data


def _by_path(row: Mapping[str, Any], index: int, path: str, media_roots: Iterable[str | os.PathLike]) -> bytes:
    sid = row.get("sample_id")
    if not path:
        raise MediaError(f"sample {sid}: media[{index}] has neither bytes nor a path")
    shard_dir = Path(row["source_file"]).parent
    # Checked here too, not only at ingest: the app and the exports read through this function, and a catalog
    # written before the check (or a link swapped since) must not hand out a file from elsewhere on the machine.
    try:
        real = real_media_path(path, shard_dir)
    except ValueError as exc:
        raise MediaError(f"sample {sid}: media[{index}] path {path!r} is not a file path ({exc})") from exc
    if not within_roots(real, media_roots_of(shard_dir, media_roots)):
        raise MediaError(
            f"sample {sid}: media[{index}] path {path!r} resolves to {real}, outside the shard's folder {shard_dir} "
            "and the media roots; not read (add its folder to CURATOR_MEDIA_ROOTS if it belongs to the data)"
        )
    try:
        return Path(real).read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc
        shown = resolve_media_path(path, shard_dir)
        raise MediaError(f"sample {sid}: media[{index}] file {shown} cannot be read ({reason})") from exc


def read_media_bytes(row: Mapping[str, Any], index: int, media_roots: Iterable[str | os.PathLike] = ()) -> bytes:
    """Bytes of media item ``index`` of a catalog row (keys: sample_id, media, source_file, row_group,
    row_in_group); MediaError says why they cannot be had. A file by path is read only when it lies, symlinks
    resolved, inside the shard's folder tree or one of ``media_roots`` (the settings' CURATOR_MEDIA_ROOTS)."""
    media = row.get("media") or []
    if not 0 <= index < len(media):
        raise MediaError(f"sample {row.get('sample_id')}: no media item {index} (it has {len(media)})")
    item = media[index]
    if item.get("embedded"):
        return _embedded(row, index)
    return _by_path(row, index, item.get("path") or "", media_roots)
