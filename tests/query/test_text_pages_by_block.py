"""Pages of a text search in the catalog's key order, found block by block outward from where the page starts: from
any point, forwards and backwards, for a word in most documents and for one in a few documents far apart (past the
windows a page searches first), on row keys with gaps (rows deleted by re-ingests) — always the same keys as a
brute-force pass over every document."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from curation.ingest.text_index import BLOCK_SHIFT, TextIndexWriter, TextSearch, document_json_sql

BLOCK = 1 << BLOCK_SHIFT
DOCS = 40_000


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """40,000 documents whose keys leave gaps (every 10th key, from 3): they span about 390 blocks."""
    rng = np.random.default_rng(7)
    keys = 3 + 10 * np.arange(DOCS)
    words = np.where(rng.random(DOCS) < 0.7, "chair", "table")
    rare = np.zeros(DOCS, dtype=bool)
    rare[[5, 6, 900, 12_000, 12_001, 25_000, DOCS - 1]] = True  # far apart: most gaps span more than 64 blocks
    questions = [f"How far is the {w}{' and the tapestry' if r else ''}?" for w, r in zip(words, rare)]
    table = pa.table({"row_key": keys, "sample_id": [f"s{k}" for k in keys], "source_file": ["f.parquet"] * DOCS,
                     "question": questions, "answer": ["1.5"] * DOCS, "reasoning": pa.nulls(DOCS, pa.string()),
                     "answer_kind": ["number"] * DOCS,
                     "boxes_3d": pa.nulls(DOCS, pa.list_(pa.struct([("label", pa.string())])))})
    folder = tmp_path_factory.mktemp("text") / "index"
    con = duckdb.connect()
    con.register("rows", table)
    docs = con.sql(document_json_sql("rows")).to_arrow_table().to_batches(5000)
    writer = TextIndexWriter(folder)
    writer.replace_files(["f.parquet"], docs)
    writer.commit()
    writer.close()
    return folder, {w: keys[words == w].tolist() for w in ("chair", "table")} | {"tapestry": keys[rare].tolist()}


def expected(hits: list[int], limit: int, after: int | None, before: int | None, descending: bool) -> list[int]:
    inside = [k for k in hits if (after is None or k > after) and (before is None or k < before)]
    return inside[::-1][:limit] if descending else inside[:limit]


@pytest.mark.parametrize("counted", [False, True], ids=["a new search", "after its count"])
@pytest.mark.parametrize("word", ["chair", "table", "tapestry"])
def test_a_page_from_any_point_holds_the_same_keys_as_a_brute_force_pass(index, word, counted):
    folder, hits = index
    search = TextSearch(folder)
    if counted:  # the count finds the first match: pages start from it
        assert search.count(word)[0] == len(hits[word])
    mine = hits[word]
    ends = [None, 0, 2, 3, 4, BLOCK - 1, BLOCK, 123_457, 250_000, 399_990, 399_993, 10**9]
    points = ends + [mine[len(mine) // 2], mine[-1], mine[0]]
    for limit in (1, 7, 51):
        for after in points:
            got = search.keys(word, limit, after=after)[0]
            assert got == expected(mine, limit, after, None, False), (word, limit, after)
        for before in points:
            got = search.keys(word, limit, before=before, descending=True)[0]
            assert got == expected(mine, limit, None, before, True), (word, limit, before)
    for after, before in ((None, 5_000), (60_000, 120_009), (8_999, 9_003), (mine[0], mine[-1])):
        for descending in (False, True):
            got = search.keys(word, 51, after=after, before=before, descending=descending)[0]
            assert got == expected(mine, 51, after, before, descending), (word, after, before, descending)


def test_walking_pages_steps_through_every_hit_once_in_key_order(index):
    folder, hits = index
    search = TextSearch(folder)
    for word, limit in (("chair", 500), ("tapestry", 2)):
        walked, after = [], None
        while page := search.keys(word, limit, after=after)[0]:
            walked += page
            after = page[-1]
        assert walked == hits[word]
