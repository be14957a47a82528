"""A shard folder whose rows name media outside it every way a hostile or careless shard can (an absolute system
file, a climb with .., an absolute path to a real image elsewhere, a symlink inside pointing out, a neighbour whose
name starts like the shard's folder), next to media that belong: inside the folder, or in a configured media root."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.shards import png, sft_row, write_sft

QUESTION = "What is the distance between the chair and the table in meters?"


@dataclass(frozen=True)
class HostileTree:
    ingest_root: Path  # the folder given to ingest
    shard_dir: Path  # the folder the shards sit in
    media_root: Path  # a folder to name in CURATOR_MEDIA_ROOTS
    outside: dict[str, str]  # row id -> media path that must never be read
    inside: dict[str, str]  # row id -> media path inside the shard's folder
    in_media_root: dict[str, str]  # row id -> media path inside media_root
    outside_files: list[Path]  # the real files the outside paths reach (none may be read or copied)


def build_hostile_tree(base: Path, fmt: str = "json") -> HostileTree:
    """``base``/data/sub holds one shard (LLaVA JSON or VST SFT Parquet with path-only images), one row per path."""
    elsewhere, shared, root = base / "elsewhere", base / "shared", base / "data"
    shard_dir = root / "sub"
    for d in (elsewhere, shared, shard_dir / "imgs", root / "sub2"):
        d.mkdir(parents=True, exist_ok=True)
    (base / "outside.png").write_bytes(png(31, 17, (1, 2, 3)))
    (elsewhere / "real.png").write_bytes(png(33, 19, (4, 5, 6)))
    (root / "sub2" / "x.png").write_bytes(png(35, 21, (7, 8, 9)))
    (shard_dir / "imgs" / "ok.png").write_bytes(png(40, 30, (10, 200, 10)))
    (shared / "shared.png").write_bytes(png(42, 32, (10, 10, 200)))
    os.symlink(elsewhere / "real.png", shard_dir / "imgs" / "link.png")
    os.symlink(elsewhere, shard_dir / "linkdir")
    os.symlink("ok.png", shard_dir / "imgs" / "alias.png")  # a link that stays inside is fine
    outside = {
        "passwd": "/etc/passwd",
        "climb": "../../outside.png",
        "absolute": str(elsewhere / "real.png"),
        "file-link": "imgs/link.png",
        "dir-link": "linkdir/real.png",
        "neighbour": "../sub2/x.png",  # data/sub2 is not inside data/sub, though its name starts the same
        "gone-outside": "../../gone.png",  # missing as well: still recorded as outside, not as missing
    }
    inside = {"ok": "imgs/ok.png", "alias": "imgs/alias.png", "absolute-inside": str(shard_dir / "imgs" / "ok.png")}
    in_media_root = {"shared": str(shared / "shared.png")}
    paths = {**outside, **inside, **in_media_root}
    if fmt == "json":
        (shard_dir / "shard.json").write_text(json.dumps([
            {"id": sid, "image": p, "type": "distance", "data_source": "scannet", "conversations": [
                {"from": "human", "value": "<image>\n" + QUESTION}, {"from": "gpt", "value": "1.5"}]}
            for sid, p in paths.items()
        ]))
    else:
        write_sft(shard_dir / "shard.parquet",
                  [sft_row(i, QUESTION, "1.5", id=sid, images=[{"bytes": None, "path": p}])
                   for i, (sid, p) in enumerate(paths.items())])
    files = [Path("/etc/passwd"), base / "outside.png", elsewhere / "real.png", root / "sub2" / "x.png"]
    return HostileTree(root, shard_dir, shared, outside, inside, in_media_root, files)
