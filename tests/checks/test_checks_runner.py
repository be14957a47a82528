"""The shard runner: a chunk of shards checked together writes what checking each shard alone writes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from curation.checks.base import rows_to_table
from curation.checks.registry import all_checks
from curation.checks.runner import ShardTask, ShardUnit, chunk_tasks, close_connections, process_shards
from curation.jobs.run import shard_units
from db.catalog import open_catalog
from tests.support.checks_helpers import sample

RULES = tuple(sorted(n for n, c in all_checks().items() if c.cost == "rule" and c.scope == "row"))


def parts(out: Path) -> dict[str, set[tuple]]:
    """Every part file's rows, by check/part name."""
    return {p.relative_to(out).as_posix(): {tuple(r.values()) for r in pq.read_table(p).to_pylist()}
            for p in sorted(out.rglob("*.parquet"))}


def run(catalog: Path, out: Path, chunks: list[list], batch_rows: int = 20_000) -> dict[str, set[tuple]]:
    try:
        for chunk in chunks:
            process_shards([ShardTask(str(catalog), str(out), "r1", u, RULES, {}, batch_rows) for u in chunk])
    finally:
        close_connections()
    return parts(out)


def test_a_chunk_of_shards_writes_what_each_shard_alone_writes(demo_home, tmp_path):
    units = shard_units(demo_home.catalog_path)
    assert len(units) > 3
    alone = run(demo_home.catalog_path, tmp_path / "alone", [[u] for u in units])
    together = run(demo_home.catalog_path, tmp_path / "together", [units])
    small_batches = run(demo_home.catalog_path, tmp_path / "small", [units], batch_rows=37)
    assert len(alone) > 3 * len(units) and together == alone and small_batches == alone


def test_a_sample_id_in_two_shards_is_checked_in_each(home, tmp_path):
    """Ingest keeps sample ids unique; were one repeated across shards, each shard still gets its own outcome."""
    rows = [sample("same", "How tall is the lamp in meters?", "52", answer_kind="number", source_file=f"/d/{f}.jsonl")
            for f in ("a", "b")]
    rows += [sample(f"own-{f}", "Which one?", "A", answer_kind="choice", source_file=f"/d/{f}.jsonl") for f in "ab"]
    for i, r in enumerate(rows):
        r.update(sample_group="single", skill="unknown", source_format="llava_json", row_index=i)
    con = open_catalog(home.catalog_path, read_only=False)
    con.register("new_rows", rows_to_table(rows))
    con.execute("INSERT INTO samples BY NAME SELECT * FROM new_rows")
    con.close()
    units = shard_units(home.catalog_path)
    assert [u.rows for u in units] == [2, 2]
    alone = run(home.catalog_path, tmp_path / "alone", [[u] for u in units])
    assert run(home.catalog_path, tmp_path / "together", [units]) == alone
    units_part = {k: v for k, v in alone.items() if k.startswith("consistency.units/")}
    assert len(units_part) == 2 and all(len(v) == 1 for v in units_part.values())


def test_consecutive_shards_are_chunked_up_to_the_batch_size():
    sizes = [4, 3, 5, 12, 1, 1]
    tasks = [ShardTask("", "", "", ShardUnit(f"f{i}", n), RULES, {}) for i, n in enumerate(sizes)]
    assert [[t.unit.rows for t in c] for c in chunk_tasks(tasks, 8)] == [[4, 3], [5], [12], [1, 1]]
