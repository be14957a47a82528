"""Difficulty: how often a model solves a prompt (its pass rate over n samples, from the model check's results), in
buckets for Browse's facet and as a band for filters and mixtures (RL teams keep e.g. 0.1 < p < 0.6, or drop p = 0
and p = 1)."""

from __future__ import annotations

from pathlib import Path

PASS_RATE_CHECK = "model.reanswer"  # the check whose results carry pass_rate (curation.checks.model)
UNMEASURED = "unmeasured"
# Bucket -> (lowest, highest) pass rate it holds, both ends included: with n samples a pass rate is k/n.
BUCKETS: dict[str, tuple[float, float]] = {
    "unsolved": (0.0, 0.0),
    "hard": (1e-9, 1 / 3),
    "medium": (1 / 3 + 1e-9, 2 / 3),
    "easy": (2 / 3 + 1e-9, 1 - 1e-9),
    "solved": (1.0, 1.0),
}
DIFFICULTIES = (*BUCKETS, UNMEASURED)


def pass_rate_sql(results_dir: Path) -> str:
    """(sample_id, pass_rate) of the latest published run of the model check that measured pass rates, as a
    parenthesised SQL relation (empty when there is none). The glob is a path from settings, never user text."""
    empty = "(SELECT NULL::VARCHAR AS sample_id, NULL::DOUBLE AS pass_rate WHERE FALSE)"
    if not any(Path(results_dir).glob(f"*/{PASS_RATE_CHECK}/*.parquet")):
        return empty
    glob = str(Path(results_dir) / "*" / PASS_RATE_CHECK / "*.parquet").replace("'", "''")
    # A run that answered greedily only (or before pass rates existed) has none: the latest run with some counts.
    return (f"(SELECT sample_id, pass_rate FROM (SELECT * FROM {empty} UNION ALL BY NAME "
            f"SELECT sample_id, pass_rate, run_id FROM read_parquet('{glob}', union_by_name = true)) "
            "WHERE pass_rate IS NOT NULL QUALIFY run_id = max(run_id) OVER ())")


def bucket_sql(column: str) -> str:
    """The difficulty bucket of a pass-rate column (NULL -> unmeasured), as a SQL expression."""
    cases = " ".join(f"WHEN {column} BETWEEN {lo!r} AND {hi!r} THEN '{name}'" for name, (lo, hi) in BUCKETS.items())
    return f"CASE WHEN {column} IS NULL THEN '{UNMEASURED}' {cases} ELSE '{UNMEASURED}' END"


def check_difficulties(values: list[str]) -> list[str]:
    """The values if each names a bucket; ValueError naming the first that does not."""
    for v in values:
        if v not in DIFFICULTIES:
            raise ValueError(f"difficulty {v!r} is not one of {', '.join(DIFFICULTIES)}")
    return values
