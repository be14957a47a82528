"""Rows broken for training (a failure of `error` severity: a check's, or a problem ingest recorded) stay out of a
mixture by default, refilled from the next ranks and counted per check in the manifest; a recipe may keep them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curation.ingest.run import ingest
from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import parse_recipe
from curation.mixtures.selection import sample_rank, select_mixture
from curation.query.catalog import CatalogQuery
from curation.settings import Settings, load_settings
from tests.support.actors import CURATOR
from tests.support.exports_fixtures import make_home, recipe, write_results
from tests.support.shards import png, write_rl


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    return make_home(tmp_path_factory.mktemp("errors"))


@pytest.fixture
def home(built: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(built.home, tmp_path / "home")
    return load_settings(tmp_path / "home")


def _select(settings: Settings, data: dict):
    q = CatalogQuery(settings)
    try:
        return select_mixture(parse_recipe(data), q)
    finally:
        q.close()


def _picked(sel) -> set[str]:
    return set(sel.table.column("sample_id").to_pylist())


DIST = {"name": "dist", "filter": {"skills": ["si_distance"]}, "count": 5}


def test_error_failures_are_left_out_by_default_refilled_and_counted_per_check(home, tmp_path):
    before = _select(home, recipe(components=[DIST]))
    ranked = sorted(_picked(before), key=lambda s: sample_rank(17, s))
    write_results(home, "format.answer_present", {ranked[0]: (False, "turns: 1 of 1 answer turn(s) say nothing"),
                                                  ranked[1]: (True, None)}, severity="error")
    write_results(home, "consistency.units", {ranked[2]: (False, "turns: 180 cm where meters are asked")},
                  severity="warning")

    after = _select(home, recipe(components=[DIST]))
    assert len(_picked(after)) == 5 and ranked[0] not in _picked(after)  # refilled from the next rank
    assert set(ranked[1:]) <= _picked(after)  # a warning is a doubt, not a reason to leave a row out
    assert after.excluded == {"error:format.answer_present": 1}

    kept = _select(home, recipe(components=[DIST], include_error_rows=True))
    assert kept.excluded == {} and _picked(kept) == _picked(before)

    # The manifest says how many rows the policy left out, per check, and what the policy was.
    outcome, = export_mixture(parse_recipe(recipe(components=[DIST])), home, ["llava"], tmp_path / "out",
                              write_media=False, by=CURATOR)
    manifest = json.loads((outcome.out_dir / "manifest.json").read_text())
    assert manifest["selection"]["excluded"]["by_reason"] == {"error:format.answer_present": 1}
    assert manifest["written"]["error_rows"] == "left out"
    assert ranked[0] not in {r["id"] for r in json.loads(next((outcome.out_dir / "data").glob("*.json")).read_text())}


def test_an_error_problem_ingest_recorded_leaves_the_row_out_too(home, tmp_path):
    # An RL row whose meta_info is not JSON has no reward mode: ingest records it, with error severity.
    write_rl(tmp_path / "src/vst_r/rl/rl_gr_math/part-00001.parquet", [
        {"id": "rl-badmeta", "images": [{"bytes": png(50, 30), "path": ""}], "question": "What is 9+9?",
         "answer": "18", "meta_info": "{mode: math_score"}])
    ingest([tmp_path / "src/vst_r"], home, progress=False)
    only = [{"name": "rl", "filter": {"sample_ids": ["rl-badmeta", "rl-1"]}, "fraction": 1.0}]
    sel = _select(home, recipe(components=only))
    assert _picked(sel) == {"rl-1"} and sel.excluded == {"error:ingest.invalid_meta_info": 1}
    assert _picked(_select(home, recipe(components=only, include_error_rows=True))) == {"rl-badmeta", "rl-1"}
