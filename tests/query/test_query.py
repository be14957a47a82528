"""Query-layer stories: filter, facet, page through and share a view."""

from __future__ import annotations

import pytest

from curation.ingest.run import ingest
from curation.query import catalog as query
from curation.query.catalog import CatalogQuery
from curation.query.filters import DIMENSIONS, FilterSpec
from tests.support.shards import sft_row, write_sft


@pytest.fixture
def many(home, tmp_path):
    qs = ["What is the distance between the chair and the table?", "How tall is the lamp?",
          "Which is closer to the camera, the sofa or the bed?"]
    rows = [{**sft_row(i, qs[i % 3], str(i)), "data_source": ["scannet", "arkitscenes", "hypersim"][i % 3]}
            for i in range(57)]
    write_sft(tmp_path / "vst_p" / "mixed" / "p.parquet", rows, row_group_size=16)
    ingest([tmp_path / "vst_p"], home, progress=False)
    q = CatalogQuery(home)
    yield q
    q.close()


def test_keyset_pages_walk_every_row_once_in_the_catalogs_order(many):
    seen, after = [], None
    while True:
        page = many.page(FilterSpec(), after=after, limit=10)
        seen += [r["sample_id"] for r in page.rows]
        if page.next_after is None:
            break
        after = page.next_after
    in_file_order = [f"id-{i}" for i in range(57)]  # one file: the catalog holds its rows in the file's order
    assert seen == in_file_order


def test_facets_count_under_the_filter_but_keep_own_options(many):
    spec = FilterSpec(skills=["si_distance"])
    f = many.facets(spec)
    assert f["skills"] == {"si_distance": 19, "si_measurement": 19, "si_depth_comparison": 19}
    assert f["sources"] == {"scannet": 19}
    assert many.count(spec) == 19
    assert many.count(FilterSpec(skills=["si_distance"], sources=["hypersim"])) == 0


def _facet_one_by_one(q: CatalogQuery, spec: FilterSpec, name: str) -> dict[str, int]:
    """The reference: one query per dimension, its own selection left out."""
    column = DIMENSIONS[name]
    c = q.compile(spec, skip=name)
    rows = q.cursor(c.tables).execute(
        f"SELECT coalesce(s.{column}, '(none)'), count(*) FROM samples s WHERE {c.where} GROUP BY 1", c.params
    ).fetchall()
    return dict(sorted(((str(v), n) for v, n in rows), key=lambda p: (-p[1], p[0])))


@pytest.mark.parametrize("spec", [
    FilterSpec(),
    FilterSpec(skills=["si_distance"]),
    FilterSpec(skills=["si_distance", "si_depth_comparison", "mi_camera_motion"], sources=["scannet"]),
    FilterSpec(groups=["single", "video"], answer_kinds=["number"], datasets=["vst-p"], has_reasoning=False),
    FilterSpec(skills=["si_distance", "cot_sr_si", "rl_gr_math"], types=["qa"], text="chair"),
    FilterSpec(subsets=["no_such_subset"]),
    FilterSpec(has_problems=True, sources=["scannet", "arkitscenes"]),
    FilterSpec(has_problems=False, has_reasoning=True, groups=["single"]),
], ids=["none", "one", "two-dims", "four-dims", "with-text", "nothing-matches", "problems", "no-problems"])
@pytest.mark.parametrize("cube", [True, False], ids=["cube", "scan"])
def test_facets_match_a_query_per_dimension(demo_home, spec, cube, monkeypatch):
    """Whether counted from the facet cube (filters on its fields and text only) or by scanning the catalog, facets
    and count agree with a plain query per dimension over the catalog, order included."""
    if not cube:
        monkeypatch.setattr(query, "_CUBE_MAX_ROWS", 0)
    q = CatalogQuery(demo_home)
    try:
        facets = q.facets(spec)
        expected = {name: _facet_one_by_one(q, spec, name) for name in DIMENSIONS}
        assert {n: list(f.items()) for n, f in facets.items()} == {n: list(f.items()) for n, f in expected.items()}
        unselected = next(n for n in DIMENSIONS if not getattr(spec, n))  # its facet counts exactly the matches
        c = q.compile(spec)
        cur = q.cursor(c.tables)
        reference = cur.execute(f"SELECT count(*) FROM samples s WHERE {c.where}", c.params).fetchone()[0]
        assert sum(facets[unselected].values()) == q.count(spec) == reference
        assert (q._cube_for(spec) is not None) == cube  # with text: the cube of the search's hits
    finally:
        q.close()


def test_the_facet_cube_is_built_once_per_catalog_version(many, monkeypatch):
    spec = FilterSpec(skills=["si_distance"])
    cube = many._cube_for(spec)
    assert many.count(spec) == 19 and many._cube_for(FilterSpec(has_problems=False)) is cube
    monkeypatch.setattr(many, "version", lambda: "another version")
    assert many._cube_for(spec) is not cube
    assert many.facets(FilterSpec(), ["sources"])["sources"] == {"arkitscenes": 19, "hypersim": 19, "scannet": 19}


def test_text_search_narrows_and_ranks(many):
    assert many.count(FilterSpec(text="lamp")) == 19
    assert many.count(FilterSpec(text="lamp", sources=["arkitscenes"])) == 19
    assert many.count(FilterSpec(text="lamp", sources=["scannet"])) == 0


def test_view_round_trips_through_the_url():
    spec = FilterSpec(skills=["si_distance", "video_measurement"], has_reasoning=True, text="chair near",
                      failed_checks=["format.placeholders"], score_below={"consistency.mra": 0.5}, review="unreviewed")
    params = spec.to_query_params()
    assert all(isinstance(v, str) for v in params.values())
    assert FilterSpec.from_query_params(params) == spec
    assert FilterSpec.from_query_params({"unknown_key": "x"}) == FilterSpec()


def test_neighbours_step_through_the_filter(many):
    ids = [r["sample_id"] for r in many.page(FilterSpec(skills=["si_measurement"]), limit=100).rows]
    prev, nxt = many.neighbours(FilterSpec(skills=["si_measurement"]), ids[1])
    assert (prev, nxt) == (ids[0], ids[2])


def test_iter_batches_streams_everything(many):
    total = sum(b.num_rows for b in many.iter_batches(FilterSpec(), columns=["sample_id"], batch_rows=7))
    assert total == 57


def test_unknown_filter_keys_are_refused():
    with pytest.raises(ValueError):
        FilterSpec.model_validate({"skils": ["si_distance"]})
