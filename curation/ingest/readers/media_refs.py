"""Media pointers for the catalog: digest, size and problems of each item, never the bytes themselves."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from curation.vst.vocabulary import MISSING_FILE, NO_PATH, OUTSIDE_ROOTS, UNDECODABLE, UNREADABLE
from db.media import (
    PATH_DIGEST_BYTES,
    digest_bytes,
    media_roots_of,
    path_digest,
    real_media_path,
    resolve_media_path,
    within_roots,
)

# The media roots of the ingest under way (settings.media_roots, set by begin_ingest): the readers are called per
# file, far from the settings, and every file of one ingest shares them.
_media_roots: tuple[str, ...] = ()


def image_size(data: bytes) -> tuple[int | None, int | None, str | None]:
    """(width, height, problem) from the image header only; decoding the pixels is the media check's job."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            return int(w), int(h), None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return None, None, f"{UNDECODABLE}: {type(exc).__name__}"


def embedded_item(kind: str, data: bytes, path: str | None) -> dict:
    if kind == "video":
        w = h = None
        problem = None
    else:
        w, h, problem = image_size(data)
    return {
        "kind": kind,
        "digest": digest_bytes(data),
        "width": w,
        "height": h,
        "path": path or "",
        "byte_size": len(data),
        "embedded": True,
        "problem": problem,
    }


@lru_cache(maxsize=65536)
def _dir_entries(directory: str) -> frozenset[str] | None:
    # One listdir per folder instead of one stat per file: millions of rows share few folders.
    try:
        return frozenset(os.listdir(directory))
    except (OSError, ValueError):  # ValueError: a NUL byte in a hostile path
        return None


def path_exists(resolved: Path) -> bool:
    entries = _dir_entries(str(resolved.parent))
    return entries is not None and resolved.name in entries


@lru_cache(maxsize=65536)
def _real_dir(directory: str) -> str:
    return os.path.realpath(directory)


def _is_link(path: str) -> bool:
    # Only a name the folder's listing holds can be a link: a missing file costs no system call.
    folder, name = os.path.split(path)
    entries = _dir_entries(folder)
    return entries is not None and name in entries and os.path.islink(path)


@lru_cache(maxsize=4096)
def _roots(shard_dir: str, media_roots: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(media_roots_of(Path(shard_dir), media_roots))


@lru_cache(maxsize=65536)
def _folder_inside(folder: str, shard_dir: str, media_roots: tuple[str, ...]) -> bool:
    return within_roots(_real_dir(folder), _roots(shard_dir, media_roots))


def outside_roots(path: str, base_dir: Path, media_roots: Iterable[str | os.PathLike] | None = None) -> str | None:
    """None when a media path resolves (symlinks followed) inside the shard's folder tree or a media root (those of
    the ingest under way unless given), else the problem to record; the file is not opened either way."""
    base = str(base_dir)
    given = _media_roots if media_roots is None else tuple(map(str, media_roots))
    try:
        # Most paths are decided from caches: a file (not a link) in a folder that resolves inside the roots.
        full = os.path.join(base, path)
        folder, name = os.path.split(full)
        if name not in ("", ".", "..") and _folder_inside(folder, base, given) and not _is_link(full):
            return None
        real = real_media_path(path, base, _real_dir, _is_link)
    except ValueError:  # a NUL byte: no file has such a name
        return f"{OUTSIDE_ROOTS}: {path!r} is not a file path"
    if within_roots(real, _roots(base, given)):
        return None
    return (f"{OUTSIDE_ROOTS}: resolves to {real}, outside the shard's folder and CURATOR_MEDIA_ROOTS (if it belongs "
            "to the data, add its folder there and ingest again with --force)")


def path_item(kind: str, path: str, base_dir: Path, inspect: bool = True,
              media_roots: Iterable[str | os.PathLike] | None = None) -> dict:
    """A media item referenced by path (relative to the shard's folder). A path that resolves outside the shard's
    folder tree and the media roots (``media_roots``, default those of the ingest under way) is recorded as such
    and never opened."""
    resolved = resolve_media_path(path, base_dir)
    item = {
        "kind": kind,
        "digest": None,
        "width": None,
        "height": None,
        "path": path,
        "byte_size": None,
        "embedded": False,
        "problem": None,
    }
    if not path:
        item["problem"] = NO_PATH
        return item
    if problem := outside_roots(path, base_dir, media_roots):
        item["problem"] = problem
        return item
    if not path_exists(resolved):
        item["problem"] = MISSING_FILE
        return item
    if not inspect:
        return item
    try:
        size = resolved.stat().st_size
        with resolved.open("rb") as fh:
            head = fh.read(PATH_DIGEST_BYTES)
    except OSError as exc:
        item["problem"] = f"{UNREADABLE}: {exc.strerror or exc}"
        return item
    item["byte_size"] = size
    item["digest"] = path_digest(head, size)
    if kind == "image":
        item["width"], item["height"], item["problem"] = image_size(head)
    return item


def begin_ingest(media_roots: Iterable[str | os.PathLike] = ()) -> None:
    """Start of an ingest: folders are listed and resolved afresh, and path media are confined to each shard's
    folder tree and ``media_roots`` (settings.media_roots)."""
    global _media_roots
    _media_roots = tuple(map(str, media_roots))
    for cache in (_dir_entries, _real_dir, _roots, _folder_inside):
        cache.cache_clear()
