"""Opening a sample from a page or a review step reads its row by the row key the page showed (no scan of every
random id); a key from before an ingest that moved the rows never opens the wrong sample."""

from __future__ import annotations

import shutil

from curation.ingest.run import ingest
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from tests.support.shards import sft_row, write_sft


def shard(path, order):
    rows = [sft_row(i, f"How far is the chair {i} from the table?", str(i), id=f"uuid-{i:03d}") for i in order]
    return write_sft(path, rows)


def by_scan(q: CatalogQuery, sample_id: str) -> dict | None:
    res = q.cursor().execute("SELECT * FROM samples WHERE sample_id = ?", [sample_id])
    row = res.fetchone()
    return dict(zip([d[0] for d in res.description], row)) if row else None


def test_samples_opened_from_pages_and_review_steps_are_the_right_rows_across_an_ingest(home, tmp_path):
    src = tmp_path / "vst_p" / "si_distance" / "part-00000.parquet"
    shard(src, range(40))
    ingest([src.parents[1]], home, progress=False)
    q = CatalogQuery(home)
    try:
        page = q.page(FilterSpec(), limit=10)
        for row in page.rows:  # Browse -> a sample
            assert q.sample(row["sample_id"]) == by_scan(q, row["sample_id"])
        prev, nxt = q.neighbours(FilterSpec(), page.rows[-1]["sample_id"])  # the review queue's step
        assert q.sample(nxt) == by_scan(q, nxt) and nxt == "uuid-010"
        text_prev, text_next = q.neighbours(FilterSpec(text="chair"), "uuid-020")
        assert (text_prev, text_next) == ("uuid-019", "uuid-021") and q.sample(text_next)["answer"] == "21"

        # The shard is rewritten in reverse order and ingested again: every row moves, under new row keys.
        shutil.copy(shard(tmp_path / "reversed.parquet", reversed(range(40))), src)
        ingest([src.parents[1]], home, progress=False, force=True)
        for row in page.rows + [{"sample_id": nxt}, {"sample_id": text_next}]:
            fresh = q.sample(row["sample_id"])
            assert fresh == by_scan(q, row["sample_id"]) and fresh["sample_id"] == row["sample_id"]
        assert q.sample("uuid-999") is None and q.neighbours(FilterSpec(), "uuid-999") == (None, None)
        assert q.neighbours(FilterSpec(), "uuid-010") == ("uuid-011", "uuid-009")  # the new order
    finally:
        q.close()
