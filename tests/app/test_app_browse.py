"""The Browse page: a curator narrows the catalog in the sidebar (facet counts beside every option), searches the
text, pages through the matches and opens one; the filter travels in the URL."""

from __future__ import annotations

import pytest

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.flags import add_flag
from db.engine import open_state
from tests.app.test_app_support import app_at, demo_app_home, forget_app_caches, texts

BROWSE = "pages/1_Browse.py"


@pytest.fixture
def settings(monkeypatch, tmp_path, demo_home):
    yield demo_app_home(monkeypatch, tmp_path, demo_home)
    forget_app_caches()


@pytest.fixture
def catalog(settings):
    q = CatalogQuery(settings)
    yield q
    q.close()


def table_ids(at) -> list[str]:
    return list(at.dataframe[0].value["sample_id"])


def match_line(at) -> str:
    return next(m for m in texts(at, "markdown") if "samples match" in m)


def test_picking_a_skill_narrows_the_table_counts_the_options_and_goes_into_the_url(settings, catalog):
    at = app_at(BROWSE)
    assert not at.exception
    total = catalog.count(FilterSpec())
    assert match_line(at).startswith(f"**{total:,}** samples match")
    skills = at.sidebar.multiselect(key="flt_skills")
    facets = catalog.facets(FilterSpec())["skills"]
    assert f"si_distance ({facets['si_distance']:,})" in skills.options  # the count next to the option

    skills.select("si_distance").run()
    assert at.query_params["skills"] == "si_distance"
    assert match_line(at).startswith(f"**{facets['si_distance']}** samples match")
    ids = table_ids(at)
    assert set(at.dataframe[0].value["skill"]) == {"si_distance"} and ids == sorted(ids)
    # Other dimensions now count only si_distance samples.
    groups = at.sidebar.multiselect(key="flt_groups").options
    assert groups == [f"single ({facets['si_distance']})"]


def test_a_shared_link_opens_the_same_view(settings, catalog):
    spec = FilterSpec(skills=["si_distance", "si_measurement"], sources=["scannet"], has_reasoning=False)
    at = app_at(BROWSE, **spec.to_query_params())
    assert not at.exception
    assert at.sidebar.multiselect(key="flt_skills").value == ["si_distance", "si_measurement"]
    assert at.sidebar.multiselect(key="flt_sources").value == ["scannet"]
    assert at.sidebar.selectbox(key="flt_has_reasoning").value == "no"
    assert match_line(at).startswith(f"**{catalog.count(spec)}** samples match")
    at.run()  # a reload keeps it
    assert at.query_params == spec.to_query_params()


def test_pages_follow_the_keyset_forward_and_back(settings, catalog):
    at = app_at(BROWSE)
    first = table_ids(at)
    assert len(first) == 50
    at.button(key="browse_next").click().run()
    second = table_ids(at)
    assert len(second) == 50 and second[0] > first[-1]
    assert any("page 2 · rows 51–100" in c for c in texts(at, "caption"))
    at.button(key="browse_prev").click().run()
    assert table_ids(at) == first
    assert at.button(key="browse_prev").disabled


def test_free_text_search_uses_the_text_index(settings, catalog):
    at = app_at(BROWSE)
    at.sidebar.text_input(key="flt_text").input("bookshelf").run()
    assert at.query_params["text"] == "bookshelf"
    expected = catalog.count(FilterSpec(text="bookshelf"))
    assert 0 < expected < catalog.count(FilterSpec())
    assert match_line(at).startswith(f"**{expected}** samples match")


def test_the_state_filters_find_what_colleagues_flagged(settings, catalog):
    flagged = catalog.page(FilterSpec(skills=["si_measurement"]), limit=2).rows
    with open_state(settings.db_url) as db:
        for r in flagged:
            add_flag(db, r["sample_id"], "unit_error", "cm vs m", "ann")
    at = app_at(BROWSE, flagged="1")
    assert at.sidebar.selectbox(key="flt_flagged").value == "yes"
    assert sorted(table_ids(at)) == sorted(r["sample_id"] for r in flagged)
    at.sidebar.multiselect(key="flt_flag_reasons").select("wrong_answer").run()
    assert any("No sample matches" in i for i in texts(at, "info"))
    at.button(key="flt_reset_btn").click().run()
    assert at.query_params == {} and len(table_ids(at)) == 50


def test_a_broken_link_is_reported_not_crashed_on(settings):
    at = app_at(BROWSE, review="maybe", skills="si_distance")
    assert not at.exception
    assert any("bad value" in w for w in texts(at, "warning"))
    assert match_line(at).endswith("everything")


def test_opening_a_sample_keeps_the_filter_for_the_review_queue(settings, catalog):
    at = app_at(BROWSE, skills="si_depth_comparison")
    pick = table_ids(at)[1]
    at.selectbox(key="browse_pick").select(pick)
    at.button(key="browse_open").click().run()
    assert not at.exception
    assert at.query_params == {"skills": "si_depth_comparison", "id": pick}
    assert texts(at, "title") == [f"Sample {pick}"]
