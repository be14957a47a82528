"""The catalog and the text index never disagree after a crash: an ingest killed (os._exit, injected at the worst
moment) between their commits is followed by an ingest without --force that finds and repairs the gap on its own,
in place and while a reader holds the catalog (copy and swap)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
import tantivy

from curation.ingest.run import ingest
from tests.support.shards import sft_row, write_sft

FILES, ROWS = 3, 2000
KILLED = 17

# An ingest in a process of its own, with one file per group and a commit after each, killed at a named point.
DRIVER = textwrap.dedent("""
    import os, sys
    from pathlib import Path

    import curation.ingest.run as run_module
    from curation.ingest.text_index import TextIndexWriter
    from curation.settings import load_settings

    home, where, paths = sys.argv[1], sys.argv[2], [Path(p) for p in sys.argv[3:]]
    settings = load_settings(home)
    run_module.ROWS_PER_GROUP = run_module.ROWS_PER_COMMIT = 1
    if where == "index-commit":  # right after a catalog COMMIT (or its swap), before the text index's commit
        TextIndexWriter.commit = lambda self: os._exit(17)
    elif where == "swap":  # a copy written in full, before it is swapped in
        real_replace = os.replace
        def replace(src, dst, *args, **kwargs):
            if Path(dst) == settings.catalog_path:
                os._exit(17)
            return real_replace(src, dst, *args, **kwargs)
        os.replace = replace
    elif where == "held-record":  # the index committed, the record of what it holds not yet written
        import curation.ingest.index_sync as sync
        sync._save_held_files = lambda *args: os._exit(17)
    run_module.ingest(paths, settings, progress=False)
""")


def shards(root: Path, first: int, count: int) -> list[Path]:
    """``count`` shards of ROWS rows each, every row searchable by the word 'distance' and its own number."""
    out, row = [], sft_row(0, "", "1.5")  # one row's media and fields for all: sft_row draws an image per call
    for f in range(first, first + count):
        rows = [
            {
                **row,
                "id": f"id-{n}",
                "conversations": [
                    {"from": "human", "value": f"What is the distance to marker{n}?"},
                    {"from": "gpt", "value": "1.5"},
                ],
            }
            for n in range(f * ROWS, (f + 1) * ROWS)
        ]
        out.append(write_sft(root / f"set{f}" / "vst_p" / "si_distance" / "part-00000.parquet", rows, 500).parent)
    return out


def killed_ingest(home, tmp_path: Path, where: str, paths: list[Path]) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    done = subprocess.run(
        [sys.executable, str(driver), str(home.home), where, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == KILLED, done.stderr[-3000:]


def catalog_ids(home) -> list[str]:
    with duckdb.connect(str(home.catalog_path), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT sample_id FROM samples").fetchall()]


def assert_both_stores_agree(home, rows: int) -> None:
    """Every catalog row is found by a search, once; the index holds no other document."""
    index = tantivy.Index.open(str(home.text_index_dir))
    searcher = index.searcher()
    hits = searcher.search(index.parse_query("distance", ["question"]), limit=rows + 100)
    found = [searcher.doc(addr)["sample_id"][0] for _, addr in hits.hits]
    ids = catalog_ids(home)
    assert len(ids) == rows
    assert searcher.num_docs == rows and len(found) == rows
    assert sorted(found) == sorted(ids)


@pytest.fixture
def reader(home):
    """A process holding the catalog open read-only, as the app and the worker do: ingest must copy and swap."""
    procs = []

    def start() -> None:
        p = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import duckdb, sys; c = duckdb.connect({str(home.catalog_path)!r}, "
                "read_only=True); print('open', flush=True); sys.stdin.readline()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout.readline().strip() == "open"
        procs.append(p)

    yield start
    for p in procs:
        p.communicate("\n", timeout=60)


def test_a_kill_after_the_catalog_commit_is_repaired_by_the_next_ingest(home, tmp_path):
    paths = shards(tmp_path, 0, FILES)
    killed_ingest(home, tmp_path, "index-commit", paths)
    assert len(catalog_ids(home)) == ROWS  # the first file's commit landed in the catalog only
    again = ingest(paths, home, progress=False)  # no --force
    assert (again.files_unchanged, again.files_ingested, again.files_reindexed) == (1, FILES - 1, 1)
    assert_both_stores_agree(home, FILES * ROWS)


@pytest.mark.parametrize("where", ["swap", "index-commit"])
def test_a_kill_while_a_reader_holds_the_catalog_is_repaired_too(home, tmp_path, reader, where):
    """Copy and swap: the index must never hold what the catalog's copy had not yet swapped in ("swap"), and a kill
    after the swap ("index-commit") leaves a gap the next ingest repairs."""
    first = shards(tmp_path, 0, 1)
    ingest(first, home, progress=False)
    more = shards(tmp_path, 1, FILES - 1)
    reader()
    killed_ingest(home, tmp_path, where, first + more)
    assert len(catalog_ids(home)) == (ROWS if where == "swap" else FILES * ROWS)
    ingest(first + more, home, progress=False)  # the reader still holds the catalog: a copy again
    assert_both_stores_agree(home, FILES * ROWS)


def test_a_kill_before_the_index_records_what_it_holds_repairs_without_duplicates(home, tmp_path):
    paths = shards(tmp_path, 0, FILES)
    killed_ingest(home, tmp_path, "held-record", paths)
    again = ingest(paths, home, progress=False)
    assert again.files_reindexed == 1  # indexed already, but not known to be: indexed again, replacing itself
    assert_both_stores_agree(home, FILES * ROWS)


def test_a_lost_text_index_is_rebuilt_from_the_catalog_without_the_shards(home, tmp_path):
    import shutil

    paths = shards(tmp_path, 0, FILES)
    ingest(paths, home, progress=False)
    shutil.rmtree(home.text_index_dir)
    for p in paths:
        shutil.rmtree(p.parent)  # the shards are gone: only the catalog's rows can rebuild the index
    again = ingest(paths, home, progress=False)
    assert again.files_reindexed == FILES and again.rows_ok == 0
    assert_both_stores_agree(home, FILES * ROWS)


def test_an_ingest_without_the_text_index_is_caught_up_by_the_next(home, tmp_path):
    paths = shards(tmp_path, 0, FILES)
    ingest(paths[:1], home, progress=False)
    ingest(paths[1:], home, progress=False, text_index=False)  # as bench.scale's bare-catalog phase does
    again = ingest(paths, home, progress=False)
    assert again.files_unchanged == FILES and again.files_reindexed == FILES - 1
    assert_both_stores_agree(home, FILES * ROWS)
