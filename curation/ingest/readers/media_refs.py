"""Media pointers for the catalog: digest, size and problems of each item, never the bytes themselves."""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from curation.vst.vocabulary import MISSING_FILE, NO_PATH, UNDECODABLE, UNREADABLE
from db.media import PATH_DIGEST_BYTES, digest_bytes, path_digest, resolve_media_path


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
    except OSError:
        return None


def path_exists(resolved: Path) -> bool:
    entries = _dir_entries(str(resolved.parent))
    return entries is not None and resolved.name in entries


def path_item(kind: str, path: str, base_dir: Path, inspect: bool = True) -> dict:
    """A media item referenced by path (relative to the shard's folder)."""
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


def clear_caches() -> None:
    _dir_entries.cache_clear()
