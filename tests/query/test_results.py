"""The check-results table: the relation every reader queries has RESULT_SCHEMA's columns, empty or not, and the
readers see the latest run of each check only."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from curation.query.results import (
    RESULT_SCHEMA,
    STAGING,
    checks_with_results,
    latest_results_sql,
    sample_results,
)


def _write(root, run_id: str, check: str, rows: list[tuple]) -> None:
    out = root / run_id / check
    out.mkdir(parents=True)
    table = pa.Table.from_pylist(
        [dict(zip(RESULT_SCHEMA.names, (sid, check, "1", passed, score, None, run_id, None), strict=True))
         for sid, passed, score in rows], schema=RESULT_SCHEMA)
    pq.write_table(table, out / "part-0.parquet")


def _schema(relation: str) -> pa.Schema:
    return duckdb.connect().sql(f"SELECT * FROM {relation}").to_arrow_table().schema


def test_the_relation_has_the_schema_before_and_after_a_run(tmp_path):
    assert _schema(latest_results_sql(tmp_path)) == RESULT_SCHEMA
    assert checks_with_results(tmp_path / "absent") == []
    _write(tmp_path, "r1", "format.a", [("s1", True, 1.0)])
    assert _schema(latest_results_sql(tmp_path)) == RESULT_SCHEMA


def test_readers_see_the_latest_run_of_each_check(tmp_path):
    _write(tmp_path, "r1", "format.a", [("s1", True, 1.0), ("s2", True, 0.5)])
    _write(tmp_path, "r2", "format.a", [("s1", False, 0.0)])
    _write(tmp_path, "r1", "media.b", [("s1", True, None)])
    _write(tmp_path / STAGING, "r3", "model.c", [("s1", False, 0.0)])  # a run still being written
    assert checks_with_results(tmp_path) == ["format.a", "media.b"]
    got = [(r["sample_id"], r["check_name"], r["passed"], r["run_id"]) for r in sample_results(tmp_path, ["s1", "s2"])]
    assert got == [("s1", "media.b", True, "r1"), ("s1", "format.a", False, "r2")]
    assert sample_results(tmp_path, ["nobody"]) == []
