"""The Overview page: what the catalog holds, how far flagging and review have come per skill, and what ingest
refused, as a curator sees it on opening the app."""

from __future__ import annotations

import pytest

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.flags import add_flag
from curation.review.reviews import add_review
from db.engine import open_state
from tests.app.test_app_support import app_at, broken_app_home, demo_app_home, forget_app_caches, point_app_at, shown


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
    assert metrics(at) == {"Samples": f"{total:,}", "Flagged": "0", "Reviewed": "0 (0.0%)", "Ingest errors": "0"}
    charts = [c.key for c in at.get("plotly_chart")]
    assert {"by_dataset", "by_group", "by_skill", "by_source", "progress"} <= set(charts)
    assert any("No ingest errors" in s for s in shown(at, "success"))

    with open_state(settings.db_url) as db:  # a colleague flags and approves a sample meanwhile
        add_flag(db, sample, "wrong_answer", "distance looks off", "ann")
        add_review(db, sample, "approve", "bob")
    at.run()
    assert metrics(at)["Flagged"] == "1"
    assert metrics(at)["Reviewed"] == f"1 ({100 / total:.1f}%)"
    table = at.dataframe[0].value
    row = table[table["skill"] == "si_distance"].iloc[0]
    assert (row["flagged"], row["approved"], row["rejected"]) == (1, 1, 0)


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
