"""Media for exports: each selected item's bytes through db's one media reader, checked against the catalog digest,
and written as content-addressed files once per digest."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from db.media import MediaError, media_digest, read_media_bytes

# File name extensions kept from a media item's source path; anything else gets none (readers sniff content).
MEDIA_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "mp4", "avi", "mov", "mkv", "webm")


def read_verified_media(row: Mapping[str, Any], media_roots: Iterable[str | os.PathLike] = ()) -> list[bytes]:
    """Bytes of every media item of a catalog row (rows in shard order read each row group once); MediaError for the
    first item that cannot be read (files only inside the shard's folder tree or ``media_roots``) or no longer
    matches its catalog digest."""
    data: list[bytes] = []
    for i, item in enumerate(row.get("media") or []):
        blob = read_media_bytes(row, i, media_roots)
        if item.get("digest") and media_digest(blob, bool(item.get("embedded"))) != item["digest"]:
            raise MediaError(f"sample {row['sample_id']}: media[{i}] changed since ingest (digest differs); re-ingest "
                             f"{row['source_file']}")
        data.append(blob)
    return data


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
