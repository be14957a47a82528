"""Every format, read from a working directory that is not the export's: each record keeps its sample id, and each
media path it names is found (absolute where the trainer resolves paths against its working directory: ms-swift,
verl's videos; relative to the export folder where the loader is given that folder: LLaVA, LLaMA-Factory)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import parse_recipe
from exports import FORMATS
from tests.support.actors import CURATOR
from tests.support.exports_fixtures import make_home, recipe


def _records(fmt: str, folder: Path) -> list[dict]:
    if fmt in ("vst-sft", "vst-rl", "verl"):
        return pq.read_table(sorted(folder.rglob("*.parquet"))).to_pylist()
    files = sorted((folder / "data").glob("*.json*"))
    if fmt == "llava":
        return [r for f in files for r in json.loads(f.read_text())]
    return [json.loads(x) for f in files for x in f.read_text().splitlines()]


def _id(fmt: str, record: dict) -> str:
    return record["extra_info"]["sample_id"] if fmt == "verl" else record["id"]


def _paths(fmt: str, record: dict) -> list[str]:
    if fmt in ("swift", "llamafactory"):
        return record["images"] + record["videos"]
    if fmt == "llava":
        return [p for key in ("image", "video") for p in ([record[key]] if isinstance(record.get(key), str)
                                                         else record.get(key) or [])]
    return list(record.get("videos") or [])  # verl: videos by path, images embedded


def test_every_format_keeps_sample_ids_and_its_media_paths_resolve_from_elsewhere(tmp_path, monkeypatch):
    settings = make_home(tmp_path / "own")
    outcomes = {o.format: o for o in export_mixture(parse_recipe(recipe()), settings, list(FORMATS),
                                                     tmp_path / "out", by=CURATOR)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    every = set(catalog_ids(settings))  # the recipe takes every row
    for fmt, outcome in outcomes.items():
        records = _records(fmt, outcome.out_dir)
        left_out = {r["sample_id"] for part in ("selection", "written") for r in outcome.manifest[part]["left_out"]}
        assert sorted(_id(fmt, r) for r in records) == sorted(every - left_out), fmt  # each once, none lost
        for r in records:
            for p in _paths(fmt, r):
                if fmt in ("swift", "verl"):  # their trainers resolve against the working directory
                    assert Path(p).is_absolute() and Path(p).is_file(), (fmt, p)
                else:
                    assert not Path(p).is_absolute() and (outcome.out_dir / p).is_file(), (fmt, p)
            if fmt == "verl":
                assert all(img["bytes"] for img in r["images"])


def catalog_ids(settings) -> list[str]:
    from curation.query.catalog import CatalogQuery
    from curation.query.filters import FilterSpec

    q = CatalogQuery(settings)
    try:
        return [row["sample_id"] for row in q.page(FilterSpec(), limit=1000).rows]
    finally:
        q.close()
