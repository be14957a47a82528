"""The Browse page: a curator narrows the catalog in the sidebar (facet counts beside every option), searches the
text, pages through the matches and opens one; the filter travels in the URL. A running app sees every ingest."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.components.text import plain
from curation.ingest.run import ingest
from curation.ingest.text_index import TextIndexWriter, document_json_sql
from curation.query.filters import FilterSpec
from curation.review.actors import local_actor
from curation.review.flags import add_flag
from curation.review.reviews import add_review, review_for
from db.catalog import catalog_identity, open_catalog
from db.engine import open_state
from tests.app.test_app_support import app_at, forget_app_caches, point_app_at, texts
from tests.support.actors import person
from tests.support.exports_fixtures import write_results
from tests.support.shards import sft_row, small_vst_tree, write_sft

BROWSE = "pages/1_Browse.py"


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
    assert set(at.dataframe[0].value["skill"]) == {"si_distance"}
    assert ids == [r["sample_id"] for r in catalog.page(FilterSpec(skills=["si_distance"])).rows]
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
    following = catalog.page(FilterSpec(), after=catalog.page(FilterSpec()).next_after).rows
    assert first == [r["sample_id"] for r in catalog.page(FilterSpec()).rows]
    assert second == [r["sample_id"] for r in following] and not set(first) & set(second)
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
            add_flag(db, r["sample_id"], "unit_error", "cm vs m", person("ann"))
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
    assert texts(at, "title") == [f"Sample {plain(pick)}"]


def test_a_search_it_cannot_read_in_full_says_so_and_can_rank_by_relevance(settings, catalog):
    at = app_at(BROWSE, text='bookshelf AND "unclosed')
    assert any(w.startswith("Text search:") and "position" in w for w in texts(at, "warning"))
    at = app_at(BROWSE, text="bookshelf OR lamp")
    assert at.radio(key="browse_order").value == "catalog"
    at.radio(key="browse_order").set_value("relevance").run()
    best = catalog.page(FilterSpec(text="bookshelf OR lamp"), order="relevance").rows
    assert table_ids(at) == [r["sample_id"] for r in best]


def _open_catalog_files() -> list[str]:
    """The catalog files this process holds open; a swapped-out one shows as '... (deleted)'."""
    fds = "/proc/self/fd"
    names = []
    for fd in os.listdir(fds):
        try:
            names.append(os.readlink(os.path.join(fds, fd)))
        except OSError:
            continue
    return [n for n in names if "catalog.duckdb" in n]


@pytest.fixture
def own_home(monkeypatch, tmp_path):
    settings = point_app_at(monkeypatch, tmp_path / "home")
    ingest([small_vst_tree(tmp_path / "src") / "vst_p"], settings, progress=False)
    yield settings
    forget_app_caches()


def test_a_running_app_sees_what_an_ingest_in_another_process_adds(own_home, tmp_path):
    at = app_at(BROWSE)
    before = catalog_identity(own_home.catalog_path)
    shown = int(match_line(at).split("**")[1].replace(",", ""))
    more = write_sft(tmp_path / "more" / "vst_p" / "si_distance" / "part-00000.parquet",
                     [sft_row(100 + i, f"Where is the lantern number {i}?", str(i), id=f"new-{i}") for i in range(7)])
    # The app holds the catalog open, so the ingest (another process, as `python -m curation ingest` is) writes a
    # copy and swaps it in.
    done = subprocess.run([sys.executable, "-m", "curation", "ingest", str(more.parents[1]), "--quiet"],
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    assert catalog_identity(own_home.catalog_path) != before
    at.run()
    assert match_line(at).startswith(f"**{shown + 7}** samples match")
    at.sidebar.text_input(key="flt_text").input("lantern").run()
    assert match_line(at).startswith("**7** samples match")
    assert sorted(table_ids(at)) == sorted(f"new-{i}" for i in range(7))
    import gc

    gc.collect()
    assert not [n for n in _open_catalog_files() if n.endswith("(deleted)")]  # the old file is let go


def test_a_search_made_before_the_text_index_was_built_finds_its_matches_once_it_is(monkeypatch, tmp_path):
    settings = point_app_at(monkeypatch, tmp_path / "home")
    ingest([small_vst_tree(tmp_path / "src") / "vst_p"], settings, progress=False, text_index=False)
    try:
        at = app_at(BROWSE, text="sofa")
        assert match_line(at).startswith("**0** samples match")
        assert any("not been built" in w for w in texts(at, "warning"))
        con = open_catalog(settings.catalog_path)  # the index built from the catalog: the catalog stays as it is
        documents = con.sql(document_json_sql("samples")).to_arrow_table().to_batches()
        sofas = con.execute("SELECT count(*) FROM samples WHERE question ILIKE '%sofa%'").fetchone()[0]
        con.close()
        writer = TextIndexWriter(settings.text_index_dir)
        writer.replace_files([], documents)
        writer.commit()
        writer.close()
        at.run()
        assert sofas and match_line(at).startswith(f"**{sofas}** samples match")
        assert not texts(at, "warning")
    finally:
        forget_app_caches()


def column(at, name: str) -> list:
    return list(at.dataframe[0].value[name])


def test_the_table_shows_each_rows_image_flags_review_and_failed_checks_with_severity(settings, catalog):
    rows = catalog.page(FilterSpec(skills=["si_distance"]), limit=3).rows
    a, b, c = (r["sample_id"] for r in rows)
    with open_state(settings.db_url) as db:
        add_flag(db, a, "unit_error", "cm vs m", person("ann"))
        add_flag(db, a, "bad_geometry", None, person("bob"))
        add_review(db, b, "fix", person("bob"), fixed_answer="2.5")
        add_review(db, b, "approve", person("carl"))
    write_results(settings, "distance_recomputed", {a: (False, "off by 40%"), b: (True, None), c: (True, None)},
                  run_id="run-0001", severity="warning")
    write_results(settings, "media_decodable", {a: (False, "truncated"), b: (True, None), c: (True, None)},
                  run_id="run-0002", severity="error")
    at = app_at(BROWSE, skills="si_distance")
    assert not at.exception
    assert table_ids(at)[:3] == [a, b, c]
    assert column(at, "flags")[:3] == ["unit_error, bad_geometry", "", ""]
    assert column(at, "review")[:3] == ["", "approved by carl (fixed)", ""]
    assert column(at, "failed")[:3] == ["error: media_decodable · warning: distance_recomputed", "", ""]
    assert column(at, "severity")[:3] == ["error", "", ""]
    assert all(t.startswith("data:image/jpeg;base64,") for t in column(at, "thumbnail"))  # bytes read, not stored

    # The sidebar's severity filter keeps the samples with an error-level failure.
    at.sidebar.multiselect(key="flt_failed_severities").select("error").run()
    assert at.query_params["failed_severities"] == "error"
    spec = FilterSpec(skills=["si_distance"], failed_severities=["error"])
    assert table_ids(at) == [r["sample_id"] for r in catalog.page(spec).rows] and a in table_ids(at)


def test_a_search_marks_the_words_it_matched_in_the_table(settings, catalog):
    at = app_at(BROWSE, text="bookshelves")  # stemmed, as the index matched it
    hits = column(at, "match")
    assert hits and all("«bookshel" in h.lower() for h in hits)
    assert "match" not in app_at(BROWSE).dataframe[0].value.columns  # no search, no column


def test_approving_the_whole_filter_is_counted_confirmed_and_undone_in_one_go(settings, catalog):
    spec = FilterSpec(skills=["si_measurement"])
    ids = {r["sample_id"] for r in catalog.page(spec, limit=1000).rows}
    at = app_at(BROWSE, skills="si_measurement")  # single-user (AppTest): the machine's user acts, as admin
    who = local_actor().who
    at.radio(key="bulk_target").set_value("filter")
    at.selectbox(key="bulk_action").set_value("approve").run()
    assert at.button(key="bulk_apply").label == f"Approve {len(ids)} samples…"
    at.button(key="bulk_apply").click().run()
    assert any(w.startswith(f"Approve {len(ids)} samples? It is one batch") for w in texts(at, "warning"))
    with open_state(settings.db_url) as db:
        assert all(review_for(db, sid) is None for sid in ids)  # nothing before the confirmation
    at.button(key="bulk_confirm").click().run()
    assert any(f"Reviewed {len(ids)} samples as one batch by {who}" in s for s in texts(at, "success"))
    with open_state(settings.db_url) as db:
        assert {review_for(db, sid).verdict for sid in ids} == {"approve"}
    assert set(column(at, "review")) == {f"approved by {who}"}
    at.button(key="bulk_undo").click().run()
    assert any(f"Undone: {len(ids)} changes" in i for i in texts(at, "info"))
    with open_state(settings.db_url) as db:
        assert all(review_for(db, sid) is None for sid in ids)
