"""What a Label Studio push writes for annotators to see: never a file from outside the shard's folder and the media
roots, never an item ingest recorded a problem for; such items become a card saying why."""

from __future__ import annotations

from pathlib import Path

from curation.labelstudio.files import MediaFolder
from tests.support.hostile_media import build_hostile_tree
from tests.support.shards import png


def row(tree, sid: str, path: str, problem: str | None = None, camera: bool = False) -> dict:
    """A catalog row; without ``problem``, as a catalog written before the roots were checked would hold it."""
    item = {"kind": "image", "embedded": False, "path": path, "digest": None, "problem": problem}
    out = {"sample_id": sid, "media": [item], "source_file": str(tree.shard_dir / "shard.json"),
           "row_group": None, "row_in_group": None}
    if camera:  # a detection sample: its first image is drawn with boxes
        out.update(camera={"fx": 200.0, "fy": 200.0, "cx": 20.0, "cy": 15.0, "width": 40, "height": 30},
                   boxes_3d=[{"label": "chair", "bbox": [0, 0, 3, 1, 1, 1, 0, 0, 0], "encoding": "euler9"}])
    return out


def sent(files_root: Path) -> list[bytes]:
    return [p.read_bytes() for p in files_root.rglob("*") if p.is_file()]


def test_media_outside_the_roots_is_never_written_for_label_studio(tmp_path):
    tree = build_hostile_tree(tmp_path / "src", "json")
    forbidden = [f.read_bytes() for f in tree.outside_files]
    folder = MediaFolder(tmp_path / "files", "vst")
    for sid, path in tree.outside.items():
        for camera in (False, True):
            out = folder.media_for(row(tree, sid, path, camera=camera))
            assert len(out.urls) == 1 and "problem-" in out.urls[0], sid
            assert f"sample {sid}: media[0] path '{path}' resolves to" in out.note and "outside" in out.note
    assert not [b for b in sent(tmp_path / "files") if b in forbidden]
    ok = folder.media_for(row(tree, "ok", tree.inside["ok"]))
    assert "problem-" not in ok.urls[0] and png(40, 30, (10, 200, 10)) in sent(tmp_path / "files")
    shared = row(tree, "shared", tree.in_media_root["shared"])
    assert "problem-" in folder.media_for(shared).urls[0]
    allowed = MediaFolder(tmp_path / "files", "vst", media_roots=[tree.media_root]).media_for(shared)
    assert "problem-" not in allowed.urls[0]


def test_an_item_with_a_recorded_problem_is_a_card_even_when_its_file_is_readable(tmp_path):
    tree = build_hostile_tree(tmp_path / "src", "json")
    folder = MediaFolder(tmp_path / "files", "vst")
    recorded = "outside_roots: resolves to /somewhere/else.png, outside the shard's folder and CURATOR_MEDIA_ROOTS"
    out = folder.media_for(row(tree, "ok", tree.inside["ok"], problem=recorded))
    assert "problem-" in out.urls[0] and recorded in out.note
    out = folder.media_for(row(tree, "ok", tree.inside["ok"], problem="undecodable: UnidentifiedImageError"))
    assert "problem-" in out.urls[0] and "undecodable" in out.note
    assert png(40, 30, (10, 200, 10)) not in sent(tmp_path / "files")
