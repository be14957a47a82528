"""The Overview page: what the catalog holds, how far flagging and review have come per skill, and what ingest
refused, as a curator sees it on opening the app."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from curation.ingest.run import ingest
from curation.presenters.overview import browse_spec_for_bar, clicked_value
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.flags import add_flag
from curation.review.reviews import add_review
from db.engine import open_state
from tests.app.test_app_support import app_at, broken_app_home, demo_app_home, forget_app_caches, point_app_at, shown
from tests.support.actors import person
from tests.support.shards import sft_row, write_sft


@pytest.fixture(autouse=True)
def _fresh_caches():
    yield
    forget_app_caches()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_overview_counts_the_catalog_and_follows_flags_and_reviews(monkeypatch, tmp_path, demo_home):
    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    q = CatalogQuery(settings)
    total = q.count(FilterSpec())
    sample = q.page(FilterSpec(skills=["si_distance"]), limit=1).rows[0]["sample_id"]
    q.close()

    at = app_at()
    assert not at.exception and not at.error
    assert metrics(at) == {"Samples": f"{total:,}", "Flagged": "0", "Reviewed": "0 (0.0%)", "With problems": "3",
                           "Ingest errors": "0"}
    charts = [c.key for c in at.get("plotly_chart")]
    assert {"by_dataset", "by_group", "by_skill", "by_source"} <= set(charts)
    # Nothing reviewed yet: a sentence that says so and what to do, not a chart of empty bars.
    assert "progress" not in charts
    assert any("No sample has been flagged or reviewed yet" in s for s in shown(at, "info"))
    assert any("No ingest errors" in s for s in shown(at, "success"))

    with open_state(settings.db_url) as db:  # a colleague flags and approves a sample meanwhile
        add_flag(db, sample, "wrong_answer", "distance looks off", person("ann"))
        add_review(db, sample, "approve", person("bob"))
    at.run()
    assert metrics(at)["Flagged"] == "1"
    assert metrics(at)["Reviewed"] == f"1 ({100 / total:.1f}%)"
    assert "progress" in [c.key for c in at.get("plotly_chart")]
    table = next(d.value for d in at.dataframe if "reviewed %" in d.value.columns)
    row = table[table["id"] == "si_distance"].iloc[0]
    assert row["skill"] == "Distance Prediction"  # the taxonomy's name for it
    assert (row["flagged"], row["approved"], row["rejected"]) == (1, 1, 0)


def test_rows_read_with_problems_are_counted_by_problem_and_open_in_browse(monkeypatch, tmp_path, demo_home):
    """The demo holds three rows ingest read with a problem (bad meta_info, a missing video, an undecodable image):
    the page must not say every row was read fine."""
    demo_app_home(monkeypatch, tmp_path, demo_home)
    at = app_at()
    assert not at.exception
    (warning,) = [w for w in shown(at, "warning") if "problem recorded" in w]
    assert warning.startswith("3 of 300 samples were read with a problem recorded against them")
    assert all(code in warning for code in ("invalid_meta_info 1", "media_missing_file 1", "media_undecodable 1"))
    link = next(e for e in at.get("page_link") if "with problems" in e.proto.label)
    expected = FilterSpec(has_problems=True).to_query_params()
    assert parse_qs(link.proto.query_string) == {k: [v] for k, v in expected.items()}


def test_the_bar_charts_are_clickable_and_the_skills_read_as_names(monkeypatch, tmp_path, demo_home):
    demo_app_home(monkeypatch, tmp_path, demo_home)
    at = app_at()
    charts = {c.key: c.proto for c in at.get("plotly_chart")}
    for key in ("by_dataset", "by_group", "by_skill", "by_source"):
        assert list(charts[key].selection_mode), f"{key} does not take clicks"
    skill_chart = json.loads(charts["by_skill"].spec)["data"][0]
    assert "Distance Prediction" in skill_chart["y"] and "si_distance" in skill_chart["customdata"]
    # A click names the bar's value; a bar of no single value ('(none)': samples without a source) opens nothing.
    assert clicked_value({"points": [{"customdata": "si_distance", "y": "Distance Prediction"}]}) == "si_distance"
    assert clicked_value({"points": [{"customdata": "(none)"}]}) is None
    assert browse_spec_for_bar("skills", "si_distance") == FilterSpec(skills=["si_distance"])


def test_the_share_of_samples_without_a_skill_is_shown_per_dataset_and_source(monkeypatch, tmp_path):
    """Three samples of a subset folder and a wording no taxonomy rule knows land with skill `unknown`."""
    src = tmp_path / "src"
    write_sft(src / "vst_p/si_distance/part-00000.parquet",
              [sft_row(i, "What is the distance between the chair and the table in meters?", "1.8") for i in range(5)])
    write_sft(src / "vst_p/odd_subset/part-00000.parquet",
              [sft_row(10 + i, f"How tasty does cake {i} look, from 1 to 5?", "4", type_="taste") for i in range(3)])
    settings = point_app_at(monkeypatch, tmp_path / "home")
    ingest([src / "vst_p"], settings, progress=False)
    q = CatalogQuery(settings)
    unknown, total = q.count(FilterSpec(skills=["unknown"])), q.count(FilterSpec())
    q.close()
    assert (unknown, total) == (3, 8)
    at = app_at()
    assert not at.exception
    assert any(c.startswith(f"{unknown:,} of {total:,} samples") and "have skill `unknown`" in c
               for c in shown(at, "caption"))
    table = next(d.value for d in at.dataframe if "share" in d.value.columns)
    assert set(table["by"]) == {"dataset", "source"} and table["unknown"].sum() == 2 * unknown


def test_the_overview_lists_ingest_errors_with_their_reasons(monkeypatch, tmp_path):
    broken_app_home(monkeypatch, tmp_path)
    at = app_at()
    assert not at.exception
    assert metrics(at)["Ingest errors"] == "1"
    errors = at.dataframe[-1].value  # after the progress table
    assert list(errors["file"].str.rsplit("/", n=1).str[-1]) == ["part-00009.parquet"]
    assert "not a readable Parquet file" in errors["reason"].iloc[0]
    assert "errors_by_reason" in [c.key for c in at.get("plotly_chart")]


def test_without_a_catalog_the_overview_says_how_to_build_one(monkeypatch, tmp_path):
    point_app_at(monkeypatch, tmp_path / "empty")
    at = app_at()
    assert not at.exception
    assert any("python -m curation ingest" in e for e in shown(at, "error"))
