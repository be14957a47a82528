"""Round trips: what we export as VST Parquet ingests back as the same samples (ids, turns, media digests),
with reviewed fixes in place where the recipe asked for them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curation.ingest.run import ingest
from curation.mixtures.export import export_mixture
from curation.mixtures.recipe import parse_recipe
from curation.query.catalog import CatalogQuery
from curation.settings import Settings, load_settings
from tests.support.actors import CURATOR
from tests.support.exports_fixtures import make_home, recipe


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    return make_home(tmp_path_factory.mktemp("rt"))


@pytest.fixture
def home(built: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(built.home, tmp_path / "home")
    return load_settings(tmp_path / "home")


def _ingest_export(out_dir: Path, home: Path) -> tuple[Settings, object]:
    """Ingest an export's data folders into a fresh home (not manifest.json: it sits beside the data)."""
    fresh = load_settings(home).ensure_dirs()
    summary = ingest(sorted(d for d in Path(out_dir).iterdir() if d.is_dir()), fresh, progress=False)
    return fresh, summary


def _rows(settings: Settings) -> dict[str, dict]:
    q = CatalogQuery(settings)
    try:
        res = q.cursor().execute("SELECT sample_id, skill, turns, answer, question, reasoning, "
                        "list_transform(media, lambda m: m.digest) AS digests FROM samples")
        names = [d[0] for d in res.description]
        return {r[0]: dict(zip(names, r)) for r in res.fetchall()}
    finally:
        q.close()


def test_vst_sft_export_ingests_back_to_the_same_samples_with_fixes_applied(home, tmp_path):
    from curation.review.reviews import add_review
    from db.engine import open_state
    from tests.support.actors import person

    db = open_state(home.db_url)
    add_review(db, "dist-001", "fix", person("carol"), fixed_answer="1.15")
    add_review(db, "cot-002", "fix", person("carol"), fixed_reasoning="The sofa is nearer, so B.", fixed_answer="B")
    outcome, = export_mixture(parse_recipe(recipe(apply_fixes=True)), home, ["vst-sft"], tmp_path / "out",
                              state_db=db, by=CURATOR)
    db.close()
    fresh, summary = _ingest_export(outcome.out_dir, tmp_path / "fresh")
    assert summary.rows_failed == 0

    original, back = _rows(home), _rows(fresh)
    assert set(back) == set(original) - {"vid-2"}  # vid-2's video is missing: left out, listed
    assert outcome.manifest["selection"]["left_out"][0]["sample_id"] == "vid-2"
    for sid, row in back.items():
        was = original[sid]
        assert row["digests"] == was["digests"], sid
        assert row["skill"] == was["skill"], sid  # one folder per skill keeps the skill on re-ingest
        assert row["question"] == was["question"], sid
        if sid.startswith("rl-"):  # RL questions carry no placeholder: VST SFT needs one per image
            assert row["turns"][0]["text"] == "<|image_pad|>" + was["turns"][0]["text"]
        elif sid not in ("dist-001", "cot-002"):
            assert row["turns"] == was["turns"], sid
    assert back["dist-001"]["answer"] == "1.15" and back["dist-001"]["turns"][1]["text"] == "1.15"
    assert back["cot-002"]["turns"][1]["text"] == "<think>The sofa is nearer, so B.</think> B"
    assert back["cot-002"]["reasoning"] == "The sofa is nearer, so B." and back["cot-002"]["answer"] == "B"
    fixes = outcome.manifest["selection"]["fixes"]
    assert fixes["applied"] == 2 and {f["sample_id"] for f in fixes["samples"]} == {"dist-001", "cot-002"}


def test_without_apply_fixes_the_original_text_is_exported(home, tmp_path):
    from curation.review.reviews import add_review
    from db.engine import open_state
    from tests.support.actors import person

    db = open_state(home.db_url)
    add_review(db, "dist-001", "fix", person("carol"), fixed_answer="1.15")
    outcome, = export_mixture(parse_recipe(recipe()), home, ["vst-sft"], tmp_path / "out", state_db=db, by=CURATOR)
    db.close()
    fresh, _ = _ingest_export(outcome.out_dir, tmp_path / "fresh")
    assert _rows(fresh)["dist-001"]["answer"] == "1.1"


def test_vst_rl_export_ingests_back_with_the_same_questions_answers_and_media(home, tmp_path):
    outcome, = export_mixture(parse_recipe(recipe()), home, ["vst-rl"], tmp_path / "out", by=CURATOR)
    fresh, _ = _ingest_export(outcome.out_dir, tmp_path / "fresh")
    original, back = _rows(home), _rows(fresh)
    videos = {"vid-1", "vid-3"}  # VST's RL rows hold images only: left out, listed
    assert set(back) == set(original) - {"vid-2"} - videos
    assert {r["sample_id"] for r in outcome.manifest["written"]["left_out"]} == videos
    for sid, row in back.items():
        assert (row["question"], row["answer"], row["digests"]) == (
            original[sid]["question"], original[sid]["answer"], original[sid]["digests"]), sid
    assert back["cot-000"]["reasoning"] is None  # RL rows carry the final answer, not the trace


def test_downgraded_samples_come_back_as_direct_answers(home, tmp_path):
    from tests.support.exports_fixtures import write_results

    write_results(home, "consistency.reasoning_vs_answer", {"cot-003": (False, "trace concludes B, answer is A")})
    outcome, = export_mixture(parse_recipe(recipe(reasoning_failures="downgrade")), home, ["vst-sft"],
                              tmp_path / "out", by=CURATOR)
    fresh, _ = _ingest_export(outcome.out_dir, tmp_path / "fresh")
    row = _rows(fresh)["cot-003"]
    assert row["turns"][1]["text"] == "A" and row["reasoning"] is None
    assert outcome.manifest["selection"]["downgraded"] == {"count": 1, "sample_ids": ["cot-003"]}
