"""Text search at a size where it used to cut off (a text filter kept only the best 20,000 hits): counts, facets,
pages in either order, the review queue's steps and exports' batches all agree with a brute-force scan of the
catalog, on random (UUID) sample ids."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.ingest.run import ingest
from curation.query.catalog import CatalogQuery
from curation.query.filters import DIMENSIONS, FilterSpec
from curation.settings import load_settings
from tests.support.shards import CONV, IMAGES

ROWS_PER_SKILL = 20_000  # three skill folders: 60,000 rows
LAMP = 0.45  # share of rows whose question names a lamp: ~27,000 hits, past the old cut of 20,000
# Words of the generated text; none but "lamp(s)" contains "lamp", so ILIKE '%lamp%' is the exact reference for the
# stemmed word lamp (tantivy's en_stem makes "lamps" "lamp").
OTHERS = np.array(["chair", "table", "sofa", "bed", "desk"])
# Rows appended last (so they come last in the catalog's order) that name the lamp so often in so few words that
# any relevance ranking puts them first.
BEST = ["lamp lamp lamp", "lamp lamp", "the lamp"]


def _shard(rng: np.random.Generator, n: int, best: list[str]) -> pa.Table:
    lamp = rng.random(n) < LAMP
    other = OTHERS[rng.integers(0, len(OTHERS), n)]
    noun = np.where(lamp, np.where(rng.random(n) < 0.5, "lamps", "lamp"), other)
    questions = [f"How far is the {o} from the {w}?" for o, w in zip(OTHERS[rng.integers(0, len(OTHERS), n)], noun)]
    questions += best
    n = len(questions)
    answers = [f"{x:.1f}" for x in rng.uniform(0.5, 5.0, n)]
    conv = pa.array([[{"from": "human", "value": "<image>" + q}, {"from": "gpt", "value": a}]
                     for q, a in zip(questions, answers)], CONV)
    images = pa.array([[{"bytes": None, "path": f"scenes/s{i}.jpg"}] for i in range(n)], IMAGES)
    return pa.table({
        "id": pa.array([str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]),
        "conversations": conv,
        "images": images,
        "data_source": pa.array(rng.choice(["scannet", "arkitscenes", "hypersim"], n)),
        "type": pa.array(["qa"] * n),
        "meta_info": pa.array(['[{"width": 640, "height": 480}]'] * n),
    })


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 60,003-row catalog (and text index) with random UUID sample ids, as real VST shards have."""
    root = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(12)
    skills = ["si_distance", "si_depth_comparison", "si_measurement"]
    for k, skill in enumerate(skills):
        path = root / "vst_p" / skill / "part-00000.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(_shard(rng, ROWS_PER_SKILL, BEST if k == len(skills) - 1 else []), path, row_group_size=4096)
    settings = load_settings(root / "home").ensure_dirs()
    ingest([root / "vst_p"], settings, progress=False)
    q = CatalogQuery(settings)
    yield q
    q.close()


def reference(q: CatalogQuery, where: str = "TRUE") -> list[str]:
    """Brute force: the sample ids whose question, answer or reasoning names a lamp, in the catalog's row order."""
    return [r[0] for r in q.cursor().execute(
        "SELECT sample_id FROM samples WHERE (question ILIKE '%lamp%' OR answer ILIKE '%lamp%' "
        f"OR reasoning ILIKE '%lamp%') AND {where} ORDER BY row_key").fetchall()]


def walk(q: CatalogQuery, spec: FilterSpec, order: str = "catalog", limit: int = 5000) -> list[dict]:
    rows, after = [], None
    while True:
        page = q.page(spec, after=after, limit=limit, columns=["sample_id", "question", "skill"], order=order)
        rows += page.rows
        if page.next_after is None:
            return rows
        after = page.next_after


def test_counts_every_hit_past_twenty_thousand(big):
    expected = reference(big)
    assert len(expected) > 20_000
    assert big.count(FilterSpec(text="lamp")) == len(expected)
    assert big.count(FilterSpec(text="lamps")) == len(expected)  # the same stem
    in_skill = reference(big, "skill = 'si_depth_comparison'")
    assert big.count(FilterSpec(text="lamp", skills=["si_depth_comparison"])) == len(in_skill)
    scannet = reference(big, "source = 'scannet'")
    assert big.count(FilterSpec(text="lamp", sources=["scannet"], sample_ids=[])) == len(scannet)
    # A filter outside the facet cube's fields (ids) counts by scanning: the same hits.
    ids = expected[::3]
    assert big.count(FilterSpec(text="lamp", sample_ids=ids + ["not-a-sample"])) == len(ids)


def test_facets_under_a_text_filter_count_every_hit(big):
    spec = FilterSpec(text="lamp", skills=["si_distance"])
    facets = big.facets(spec)
    for name, column in DIMENSIONS.items():
        where = "TRUE" if name == "skills" else "skill = 'si_distance'"  # a dimension ignores its own selection
        rows = big.cursor().execute(
            f"SELECT coalesce({column}, '(none)'), count(*) FROM samples WHERE sample_id IN "
            f"(SELECT unnest(?::VARCHAR[])) AND {where} GROUP BY 1", [reference(big)]).fetchall()
        assert facets[name] == dict(sorted(((str(v), n) for v, n in rows), key=lambda p: (-p[1], p[0]))), name


def test_pages_walk_every_hit_once_in_the_catalogs_order(big):
    expected = reference(big)
    fresh = CatalogQuery(big.settings)  # tantivy returns each page's keys: no hit set is collected
    try:
        assert [r["sample_id"] for r in walk(fresh, FilterSpec(text="lamp"), limit=4999)] == expected
        assert fresh._text._kept(("hits", "lamp", fresh.text_version())) is None
    finally:
        fresh.close()
    big.count(FilterSpec(text="lamp", skills=["si_distance"]))  # collects the hits: pages are then cut from them
    assert [r["sample_id"] for r in walk(big, FilterSpec(text="lamp"))] == expected
    in_skill = reference(big, "skill IN ('si_distance', 'si_measurement')")
    spec = FilterSpec(text="lamp", skills=["si_distance", "si_measurement"])
    assert [r["sample_id"] for r in walk(big, spec, limit=777)] == in_skill
    few = expected[::997]  # a filter that keeps a few hits far apart: the page looks through every hit
    assert [r["sample_id"] for r in walk(big, FilterSpec(text="lamp", sample_ids=few), limit=10)] == few
    first = big.page(FilterSpec(text="lamp"), limit=50, with_total=True)
    assert first.total == len(expected) and [r["sample_id"] for r in first.rows] == expected[:50]


def test_relevance_order_puts_the_best_matches_first_and_still_walks_every_hit_once(big):
    expected = reference(big)
    ranked = walk(big, FilterSpec(text="lamp"), order="relevance", limit=3000)
    assert sorted(r["sample_id"] for r in ranked) == sorted(expected)
    assert [r["question"] for r in ranked[:3]] == BEST  # most lamps in fewest words first (BM25)
    assert [r["sample_id"] for r in big.page(FilterSpec(text="lamp"), limit=3).rows] != \
        [r["sample_id"] for r in ranked[:3]]  # the catalog's order is another order
    spec = FilterSpec(text="lamp", skills=["si_measurement"])  # relevance under a filter on other fields too
    assert {r["question"] for r in walk(big, spec, order="relevance", limit=50)[:3]} == set(BEST)
    assert sorted(r["sample_id"] for r in walk(big, spec, order="relevance", limit=2000)) == \
        sorted(reference(big, "skill = 'si_measurement'"))


def test_the_review_queue_steps_through_the_same_hits_as_the_pages(big):
    expected = reference(big)
    fresh = CatalogQuery(big.settings)  # steps found by tantivy, then from the kept hits
    try:
        assert fresh.neighbours(FilterSpec(text="lamp"), expected[5]) == (expected[4], expected[6])
    finally:
        fresh.close()
    for spec, ids in ((FilterSpec(text="lamp"), expected),
                      (FilterSpec(text="lamp", sources=["hypersim"]), reference(big, "source = 'hypersim'"))):
        for i in (0, 1, len(ids) // 2, len(ids) - 1):
            prev, nxt = big.neighbours(spec, ids[i])
            assert prev == (ids[i - 1] if i else None) and nxt == (ids[i + 1] if i + 1 < len(ids) else None)


def test_exports_and_pushes_stream_every_hit(big):
    spec = FilterSpec(text="lamp")
    streamed = [sid for b in big.iter_batches(spec, columns=["sample_id"]) for sid in b.column(0).to_pylist()]
    assert streamed == sorted(reference(big))
    batches = big.iter_batches(FilterSpec(text="lamp", skills=["si_distance"]), columns=["sample_id"])
    assert sum(b.num_rows for b in batches) == len(reference(big, "skill = 'si_distance'"))


def test_a_query_it_cannot_read_in_full_says_so(big):
    page = big.page(FilterSpec(text='lamp AND "unclosed'), limit=5)
    assert page.warnings and "position" in page.warnings[0]
    assert big.text_warnings(FilterSpec(text="question:(")) != []
