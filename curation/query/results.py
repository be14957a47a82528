"""Check results on disk: Parquet files, one folder per run, read as one relation of the latest run per check.

Layout: ``<results_dir>/<run_id>/<check_name>/part-*.parquet`` with columns
``sample_id, check_name, check_version, passed, score, reason, run_id``.
"""

from __future__ import annotations

from pathlib import Path

RESULT_COLUMNS = ["sample_id", "check_name", "check_version", "passed", "score", "reason", "run_id"]
EMPTY_RESULTS = (
    "(SELECT NULL::VARCHAR AS sample_id, NULL::VARCHAR AS check_name, NULL::VARCHAR AS check_version, "
    "NULL::BOOLEAN AS passed, NULL::DOUBLE AS score, NULL::VARCHAR AS reason, NULL::VARCHAR AS run_id WHERE FALSE)"
)


def results_glob(results_dir: Path) -> str:
    return str(Path(results_dir) / "*" / "*" / "*.parquet")


def latest_results_sql(results_dir: Path) -> str:
    """A parenthesised relation; the glob is a path from settings (quoted), never user text."""
    if not any(Path(results_dir).glob("*/*/*.parquet")):
        return EMPTY_RESULTS
    glob = results_glob(results_dir).replace("'", "''")
    return (
        f"(SELECT {', '.join(RESULT_COLUMNS)} FROM read_parquet('{glob}', union_by_name = true) "
        "QUALIFY run_id = max(run_id) OVER (PARTITION BY check_name))"
    )
