"""manifest.json beside every export: the recipe, catalog version, counts, exclusions and why, applied fixes,
samples left out, and every data file with its size and sha256 (media files are named by their own digest)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_entries(root: Path, paths: list[Path], known: dict[Path, str] | None = None) -> list[dict[str, Any]]:
    """{path (relative to the export folder), bytes, sha256} for each file, sorted by path; ``known`` holds hashes
    taken while writing (the other files are read back)."""
    root, known = Path(root), known or {}
    out = []
    for p in sorted(set(map(Path, paths))):
        digest = known.get(p) or sha256_file(p)
        out.append({"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": digest})
    return out


def build_manifest(*, fmt: str, recipe: dict, catalog: dict, selection: dict, written: dict, files: list[dict],
                   media: dict, trainer: dict | None = None, created_at: datetime | None = None,
                   exported_by: str | None = None) -> dict[str, Any]:
    """The manifest as a dict. Everything but ``created_at`` and ``exported_by`` (the person who exported) is a
    function of the recipe and the data. ``trainer``: what the format's trainer needs besides the data (verl's reward
    function, VST's data config), when anything."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "format": fmt,
        "created_at": (created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "exported_by": exported_by,
        "recipe": recipe,
        "catalog": catalog,
        "selection": selection,
        "written": written,
        "media": media,
        "files": files,
        **({"trainer": trainer} if trainer else {}),
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    path = Path(root) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    return path

