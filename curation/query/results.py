"""The check-results table: its schema, its Parquet layout, and the relations its readers query.

Layout: ``<results_dir>/<run_id>/<check_name>/part-*.parquet`` with the columns of RESULT_SCHEMA; a run is written
under ``<results_dir>/.inprogress/<run_id>/`` and renamed into place when it completes (curation.jobs.run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from curation.query.severity import UNSTATED

RESULT_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("check_name", pa.string()),
        ("check_version", pa.string()),
        ("passed", pa.bool_()),
        ("score", pa.float64()),
        ("reason", pa.string()),
        ("run_id", pa.string()),
        ("severity", pa.string()),  # of a failure: error, warning or info (curation.query.severity); NULL on a pass
    ]
)
STAGING = ".inprogress"  # where a run's files wait until the run completes
_PARTS = "*/*/*.parquet"  # <run_id>/<check_name>/part-*.parquet
_SQL_TYPES = {pa.string(): "VARCHAR", pa.bool_(): "BOOLEAN", pa.float64(): "DOUBLE"}
# The relation when no check has run yet: RESULT_SCHEMA's columns, no rows.
_EMPTY_RESULTS = (
    f"(SELECT {', '.join(f'NULL::{_SQL_TYPES[f.type]} AS {f.name}' for f in RESULT_SCHEMA)} WHERE FALSE)"
)


def latest_results_sql(results_dir: Path) -> str:
    """The latest run of each check as a parenthesised SQL relation with RESULT_SCHEMA's columns (empty when no
    check has run). The glob is a path from settings (quoted), never user text."""
    if not any(Path(results_dir).glob(_PARTS)):
        return _EMPTY_RESULTS
    glob = str(Path(results_dir) / _PARTS).replace("'", "''")
    # Files written before failures carried a severity lack the column: the empty relation, unioned by name, adds it.
    columns = [n if n != "severity" else f"coalesce(severity, CASE WHEN NOT passed THEN '{UNSTATED}' END) AS severity"
               for n in RESULT_SCHEMA.names]
    return (
        f"(SELECT {', '.join(columns)} FROM (SELECT * FROM {_EMPTY_RESULTS} UNION ALL BY NAME "
        f"SELECT * FROM read_parquet('{glob}', union_by_name = true)) "
        "QUALIFY run_id = max(run_id) OVER (PARTITION BY check_name))"
    )


def checks_with_results(results_dir: Path) -> list[str]:
    """Checks with results on disk (any published run), from the folder names: cheap enough for every page run."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    return sorted({p.parent.name for p in root.glob(_PARTS) if not p.parts[-3].startswith(STAGING)})


def sample_results(results_dir: Path, sample_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The latest outcome of every check that looked at these samples, one dict per (sample, check) with
    RESULT_SCHEMA's keys, ordered by sample, run and check."""
    sql = (f"SELECT * FROM {latest_results_sql(results_dir)} WHERE sample_id IN (SELECT unnest(?::VARCHAR[])) "
           "ORDER BY sample_id, run_id, check_name")
    con = duckdb.connect()
    try:
        return con.sql(sql, params=[list(sample_ids)]).to_arrow_table().to_pylist()
    finally:
        con.close()
