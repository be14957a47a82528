"""A reader that lives on (the app, a worker) sees each catalog an ingest in another process swaps in, lets the old
file go, and never breaks a read already under way; a data home from before row keys is upgraded by one ingest."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys

import duckdb
import pytest
import tantivy

from curation.ingest.run import ingest
from curation.query.catalog import CatalogOutdated, CatalogQuery
from curation.query.filters import FilterSpec
from db.catalog import catalog_identity
from tests.support.shards import sft_row, small_vst_tree, write_sft


def ingest_elsewhere(home, path) -> None:
    """`python -m curation ingest PATH` in a process of its own, as a curator runs it beside the app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATOR_")} | {"CURATOR_HOME": str(home.home)}
    done = subprocess.run([sys.executable, "-m", "curation", "ingest", str(path), "--quiet"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def more_rows(root, n: int = 7):
    write_sft(root / "vst_p" / "si_distance" / "part-00000.parquet",
              [sft_row(100 + i, f"Where is the lantern number {i}?", str(i), id=f"new-{i}") for i in range(n)])
    return root / "vst_p"


def deleted_catalogs_held() -> list[str]:
    """Catalog files this process still holds open although an ingest has replaced them."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "catalog.duckdb" in target and target.endswith("(deleted)"):
            held.append(target)
    return held


def test_a_reader_that_lives_on_sees_each_new_catalog_and_lets_the_old_one_go(home, tmp_path):
    ingest([small_vst_tree(tmp_path / "src") / "vst_p"], home, progress=False)
    q = CatalogQuery(home)  # held for the whole test, as the app holds its own
    before = q.count(FilterSpec())
    ids_before = sorted(r["sample_id"] for r in q.page(FilterSpec(), limit=100).rows)
    # An export under way when the new catalog lands: it reads the catalog it started on, to its end.
    stream = q.iter_batches(FilterSpec(), columns=["sample_id"], batch_rows=1)
    streamed = next(stream).column(0).to_pylist()
    identity = catalog_identity(home.catalog_path)

    ingest_elsewhere(home, more_rows(tmp_path / "more"))  # the file is held here: ingest copies and swaps
    assert catalog_identity(home.catalog_path) != identity

    assert q.count(FilterSpec()) == before + 7
    assert q.sample("new-3") is not None and q.count(FilterSpec(text="lantern")) == 7
    other = CatalogQuery(home)  # a new reader in the same process: the new catalog too, not DuckDB's open one
    assert other.count(FilterSpec()) == before + 7
    other.close()
    streamed += [sid for batch in stream for sid in batch.column(0).to_pylist()]
    assert sorted(streamed) == ids_before
    del stream
    gc.collect()
    assert deleted_catalogs_held() == []
    q.close()


def test_a_data_home_from_before_row_keys_is_upgraded_by_one_ingest(home, tmp_path):
    src = small_vst_tree(tmp_path / "src") / "vst_p"
    ingest([src], home, progress=False)
    # The catalog and text index as the previous version wrote them: no row key, a text index keyed by sample id.
    with duckdb.connect(str(home.catalog_path)) as con:
        con.execute("ALTER TABLE samples DROP COLUMN row_key")
        con.execute("DROP SEQUENCE sample_row_keys")
        ids = [r[0] for r in con.execute("SELECT sample_id FROM samples").fetchall()]
    shutil.rmtree(home.text_index_dir)
    home.text_index_dir.mkdir()
    old = tantivy.SchemaBuilder()
    old.add_text_field("sample_id", stored=True, tokenizer_name="raw")
    old.add_text_field("source_file", stored=False, tokenizer_name="raw")
    for name in ("question", "answer", "reasoning"):
        old.add_text_field(name, stored=False, tokenizer_name="en_stem")
    writer = tantivy.Index(old.build(), path=str(home.text_index_dir)).writer(15_000_000, 1)
    for sid in ids:
        writer.add_json(json.dumps({"sample_id": sid, "source_file": "x", "question": "sofa", "answer": "",
                                    "reasoning": ""}))
    writer.commit()
    writer.wait_merging_threads()

    with pytest.raises(CatalogOutdated, match="python -m curation ingest"):
        CatalogQuery(home)
    ingest([src], home, progress=False)  # nothing changed in the shards: only the upgrade happens
    q = CatalogQuery(home)
    try:
        sofas = q.cursor().execute("SELECT count(*) FROM samples WHERE question ILIKE '%sofa%'").fetchone()[0]
        assert sofas and q.count(FilterSpec(text="sofa")) == sofas
        assert q.page(FilterSpec(text="sofa")).warnings == []
        keys = q.cursor().execute("SELECT count(DISTINCT row_key), count(*) FROM samples").fetchone()
        assert keys[0] == keys[1] == len(ids)
    finally:
        q.close()
