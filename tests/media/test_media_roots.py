"""Media stays inside its roots: a media path resolves only inside its shard's folder tree or CURATOR_MEDIA_ROOTS
(symlinks followed); anything else is recorded at ingest as outside_roots and never read, and the one media reader
refuses it as well, whatever the catalog says."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from curation.ingest.run import ingest
from curation.media.sample_media import load_image
from curation.settings import load_settings
from db.catalog import open_catalog
from db.media import MediaError, read_media_bytes
from tests.support.hostile_media import build_hostile_tree
from tests.support.shards import png, sft_row, write_sft


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every file opened through pathlib, resolved (the readers and the media reader open files so)."""
    seen: list[str] = []
    real_open = Path.open

    def spy(self, *args, **kwargs):
        seen.append(os.path.realpath(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    return seen


def catalog_rows(settings) -> dict[str, dict]:
    con = open_catalog(settings.catalog_path)
    try:
        cur = con.execute("SELECT source_id, media, problems FROM samples")
        names = [d[0] for d in cur.description]
        return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_ingest_records_media_outside_the_shard_folder_and_the_media_roots_and_never_opens_it(tmp_path, fmt,
                                                                                             opened):
    tree = build_hostile_tree(tmp_path / "src", fmt)
    settings = load_settings(tmp_path / "home", env={"CURATOR_MEDIA_ROOTS": str(tree.media_root)}).ensure_dirs()
    opened.clear()  # what building the tree wrote
    summary = ingest([tree.ingest_root], settings, progress=False)
    rows = catalog_rows(settings)
    assert summary.rows_ok == len(rows) == len(tree.outside) + len(tree.inside) + len(tree.in_media_root)
    for sid in tree.outside:
        (item,) = rows[sid]["media"]
        assert item["problem"].startswith("outside_roots: "), (sid, item)
        assert item["digest"] is None and item["byte_size"] is None, sid  # never hashed, so never read
        codes = {(p["code"], p["field"]) for p in rows[sid]["problems"]}
        assert ("media_outside_roots", "media[0]") in codes, sid
    for sid in (*tree.inside, *tree.in_media_root):
        (item,) = rows[sid]["media"]
        assert item["problem"] is None and item["digest"] and item["width"], (sid, item)
    assert "resolves to /etc/passwd" in rows["passwd"]["media"][0]["problem"]
    # The links are followed before the check: where they lead is what is judged (and reported).
    assert str(tmp_path / "src/elsewhere/real.png") in rows["file-link"]["media"][0]["problem"]
    assert not {str(f) for f in tree.outside_files} & set(opened)


def test_without_media_roots_only_the_shard_folder_is_allowed(tmp_path):
    tree = build_hostile_tree(tmp_path / "src", "json")
    settings = load_settings(tmp_path / "home", env={}).ensure_dirs()
    ingest([tree.ingest_root], settings, progress=False)
    (item,) = catalog_rows(settings)["shared"]["media"]
    assert item["problem"].startswith("outside_roots: ") and item["digest"] is None


def test_media_roots_come_from_the_environment_or_curator_toml(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    env = {"CURATOR_MEDIA_ROOTS": f"{a}{os.pathsep}{b}{os.pathsep}"}
    assert load_settings(tmp_path / "h1", env=env).media_roots == (a, b)
    home = tmp_path / "h2"
    home.mkdir()
    (home / "curator.toml").write_text(f'media_roots = ["{a}", "{b}"]\n')
    assert load_settings(home, env={}).media_roots == (a, b)
    (home / "curator.toml").write_text(f'media_roots = "{a}"\n')
    assert load_settings(home, env={}).media_roots == (a,)
    assert load_settings(home, env={"CURATOR_MEDIA_ROOTS": str(b)}).media_roots == (b,)  # the environment wins
    assert load_settings(tmp_path / "h3", env={}).media_roots == ()


def _row(tree, sid: str, path: str) -> dict:
    """A catalog row as one written before the check would hold it: no problem recorded for the item."""
    item = {"kind": "image", "embedded": False, "path": path, "digest": "0" * 16, "problem": None}
    return {"sample_id": sid, "media": [item], "source_file": str(tree.shard_dir / "shard.json"),
            "row_group": None, "row_in_group": None}


def test_the_media_reader_refuses_paths_outside_the_roots_itself(tmp_path, opened):
    tree = build_hostile_tree(tmp_path / "src", "json")
    opened.clear()
    for sid, path in tree.outside.items():
        with pytest.raises(MediaError, match=rf"sample {sid}: media\[0\] path '{path}' resolves to .*, outside the "
                                             r"shard's folder .*CURATOR_MEDIA_ROOTS"):
            read_media_bytes(_row(tree, sid, path), 0)
        with pytest.raises(MediaError, match=rf"sample {sid}: media\[0\] .* outside"):  # the Sample page's reader
            load_image(_row(tree, sid, path), 0)
    assert not {str(f) for f in tree.outside_files} & set(opened)
    for sid, path in tree.inside.items():
        assert read_media_bytes(_row(tree, sid, path), 0) == png(40, 30, (10, 200, 10))
    shared = _row(tree, "shared", tree.in_media_root["shared"])
    with pytest.raises(MediaError, match="outside"):
        read_media_bytes(shared, 0)
    assert read_media_bytes(shared, 0, [tree.media_root]) == png(42, 32, (10, 10, 200))
    assert load_image(shared, 0, [str(tree.media_root)]).size == (42, 32)


def test_a_link_swapped_after_ingest_to_point_outside_is_refused(tmp_path):
    tree = build_hostile_tree(tmp_path / "src", "json")
    settings = load_settings(tmp_path / "home", env={}).ensure_dirs()
    ingest([tree.ingest_root], settings, progress=False)
    row = catalog_rows(settings)["alias"]
    assert row["media"][0]["problem"] is None  # ingest found it inside
    link = tree.shard_dir / "imgs" / "alias.png"
    link.unlink()
    os.symlink(tmp_path / "src/outside.png", link)
    catalog_row = {"sample_id": "alias", "media": row["media"], "source_file": str(tree.shard_dir / "shard.json"),
                   "row_group": None, "row_in_group": None}
    with pytest.raises(MediaError, match=r"sample alias: media\[0\] path 'imgs/alias.png' resolves to .*outside"):
        read_media_bytes(catalog_row, 0)


def test_a_path_with_a_nul_byte_is_a_recorded_problem_not_a_failed_ingest(tmp_path):
    shard_dir = tmp_path / "src"
    (shard_dir / "imgs").mkdir(parents=True)
    (shard_dir / "imgs/ok.png").write_bytes(png())
    hostile = "imgs/ok.png\x00../../etc/passwd"
    write_sft(shard_dir / "a.parquet", [
        sft_row(i, "How far?", "1", id=sid, images=[{"bytes": None, "path": p}])
        for i, (sid, p) in enumerate((("pq-nul", hostile), ("pq-ok", "imgs/ok.png")))])
    (shard_dir / "b.json").write_text(json.dumps([
        {"id": sid, "image": p, "conversations": [{"from": "human", "value": "<image>How far?"},
                                                  {"from": "gpt", "value": "1"}]}
        for sid, p in (("json-nul", hostile), ("json-ok", "imgs/ok.png"))]))
    settings = load_settings(tmp_path / "home", env={}).ensure_dirs()
    summary = ingest([shard_dir], settings, progress=False)
    assert summary.files_failed == 0 and summary.rows_ok == 4
    rows = catalog_rows(settings)
    for sid in ("pq-nul", "json-nul"):
        assert rows[sid]["media"][0]["problem"] and rows[sid]["media"][0]["digest"] is None, sid
    assert rows["pq-ok"]["media"][0]["digest"] and rows["json-ok"]["media"][0]["digest"]
    row = {"sample_id": "json-nul", "media": rows["json-nul"]["media"], "source_file": str(shard_dir / "b.json")}
    with pytest.raises(MediaError, match=r"sample json-nul: media\[0\] path .* is not a file path"):
        read_media_bytes(row, 0)
