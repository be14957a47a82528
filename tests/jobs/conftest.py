"""Every job-queue story here runs on SQLite and on PostgreSQL (tests/support/state_db.py); the worker stories share a
small ingested catalog and read their results back the way the app does."""

import pytest

from curation.ingest.run import ingest
from curation.query.results import latest_results_sql
from tests.support.shards import small_vst_tree
from tests.support.state_db import db, db_url  # noqa: F401 - fixtures

FAST = {"embedder": "hashing"}  # check params: the quick text embedder


@pytest.fixture
def catalog(home, tmp_path):
    """Three shards: SFT Parquet (4 rows), LLaVA video JSON (2 rows, one video missing), RL Parquet (2 rows)."""
    ingest([small_vst_tree(tmp_path / "src")], home, progress=False)
    return home


def results(settings, check: str | None = None) -> list[dict]:
    """The latest published result rows (of one check)."""
    import duckdb

    sql = f"SELECT * FROM {latest_results_sql(settings.results_dir)}"
    rows = duckdb.connect().sql(sql).to_arrow_table().to_pylist()
    return [r for r in rows if check is None or r["check_name"] == check]
