"""Exports never write media that ingest recorded as missing, undecodable or outside the media roots: such samples
are left out, and the manifest says which and why; the pipeline holds to it even for a selection that lists them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.ingest.run import ingest
from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import parse_recipe
from curation.query.catalog import CatalogQuery
from curation.settings import Settings, load_settings
from exports import get_format
from exports.pipeline import SELECTION_SCHEMA, ExportPlan, write_export
from tests.support.actors import CURATOR
from tests.support.exports_fixtures import recipe
from tests.support.hostile_media import QUESTION, build_hostile_tree
from tests.support.shards import png, sft_row, write_sft

GARBAGE = b"GIF89a but then nothing an image decoder can use" * 4


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> tuple[Settings, object, list[bytes]]:
    """The hostile tree (LLaVA JSON) plus an undecodable image by path, one embedded undecodable image and one
    missing file; returns the settings, the tree and the bytes no export may hold."""
    base = tmp_path_factory.mktemp("media_problems")
    tree = build_hostile_tree(base / "src", "json")
    shard = tree.shard_dir / "shard.json"
    records = json.loads(shard.read_text())
    (tree.shard_dir / "imgs" / "broken.png").write_bytes(GARBAGE)
    for sid, path in (("broken-file", "imgs/broken.png"), ("missing", "imgs/never-written.png")):
        records.append(dict(records[0], id=sid, image=path))
    shard.write_text(json.dumps(records))
    write_sft(tree.shard_dir / "embedded.parquet", [
        sft_row(0, QUESTION, "2.0", id="embedded-ok", images=[{"bytes": png(50, 40, (9, 9, 9)), "path": "a.png"}]),
        sft_row(1, QUESTION, "2.5", id="embedded-broken", images=[{"bytes": GARBAGE[:-1], "path": "b.png"}]),
    ])
    settings = load_settings(base / "home", env={"CURATOR_MEDIA_ROOTS": str(tree.media_root)}).ensure_dirs()
    ingest([tree.ingest_root], settings, progress=False)
    forbidden = [f.read_bytes() for f in tree.outside_files] + [GARBAGE, GARBAGE[:-1]]
    return settings, tree, forbidden


def bad_ids(tree) -> set[str]:
    return {*tree.outside, "broken-file", "missing", "embedded-broken"}


def good_ids(tree) -> set[str]:
    return {*tree.inside, *tree.in_media_root, "embedded-ok"}


def written_bytes(out: Path) -> list[bytes]:
    """Every media file's bytes and every embedded image's bytes of an export."""
    blobs = [p.read_bytes() for p in (out / "media").rglob("*") if p.is_file()]
    for f in out.rglob("*.parquet"):
        blobs += [im["bytes"] for row in pq.read_table(f, columns=["images"]).column("images").to_pylist()
                  for im in row]
    return blobs


@pytest.mark.parametrize("fmt", ["llava", "vst-sft"])
def test_an_export_leaves_out_bad_media_and_says_why(home, tmp_path, fmt):
    settings, tree, forbidden = home
    (outcome,) = export_mixture(parse_recipe(recipe()), settings, [fmt], tmp_path / fmt, by=CURATOR)
    blobs = written_bytes(outcome.out_dir)
    assert blobs and not [b for b in blobs if any(b == f or f in b for f in forbidden)]
    assert outcome.rows == len(good_ids(tree))
    m = outcome.manifest
    why = {r["sample_id"]: r["reason"] for r in m["selection"]["left_out"] + m["written"]["left_out"]}
    assert set(why) == bad_ids(tree)
    assert all("outside_roots: resolves to" in why[sid] for sid in tree.outside)
    assert "undecodable" in why["broken-file"] and "undecodable" in why["embedded-broken"]
    assert "missing_file" in why["missing"]


def test_the_pipeline_drops_bad_media_even_when_the_selection_lists_it(home, tmp_path):
    """A selection made without the recipe's exclusions (every catalog row): the writer itself leaves them out."""
    settings, tree, forbidden = home
    query = CatalogQuery(settings)
    try:
        ids = query.cursor().execute("SELECT rowid, sample_id FROM samples ORDER BY rowid").fetchall()
        n = len(ids)
        selection = pa.table({"ord": pa.array(range(n), pa.int64()), "sample_id": [s for _, s in ids],
                              "out_id": [s for _, s in ids], "copy": pa.array([1] * n, pa.int32()),
                              "component": ["all"] * n, "downgrade": [False] * n,
                              "pos": pa.array([r for r, _ in ids], pa.int64())}, schema=SELECTION_SCHEMA)
        keep: list = []

        def relation(sql, params, tables):
            cur = query.cursor(tables)
            keep.append(cur)
            return cur.sql(sql, params=params)

        for fmt in ("llava", "vst-sft"):
            out = tmp_path / fmt
            result = write_export(ExportPlan(fmt=get_format(fmt), out_dir=out, selection=selection,
                                             media_roots=settings.media_roots), relation)
            blobs = written_bytes(out)
            assert blobs and not [b for b in blobs if any(b == f or f in b for f in forbidden)]
            assert result.rows == len(good_ids(tree))
            why = {r["sample_id"]: r["reason"] for r in result.left_out}
            assert set(why) == bad_ids(tree)
            assert all(r.startswith("media not exported: media[0] image ") for r in why.values())
            assert sum(result.counts["by_component"].values()) == result.rows
    finally:
        query.close()
