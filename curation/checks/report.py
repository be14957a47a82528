"""What the checks found, read back: failures with their severity (ingest problems as ingest.* checks), counts per
check x skill, scores."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from typing import TextIO

import duckdb
import pyarrow as pa

from curation.query.results import latest_results_sql
from curation.query.severity import SEVERITIES, check_severities, problem_severity_sql
from curation.settings import Settings
from db.catalog import open_catalog

FAILURE_COLUMNS = ["sample_id", "check", "severity", "reason", "score"]


def _connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    return open_catalog(settings.catalog_path, read_only=True)


def _check_filter(pattern: str | None) -> tuple[str, list]:
    """A GLOB over check names: an exact name, a family ('format' = 'format.*') or a pattern ('geometry.bbox*')."""
    if not pattern:
        return "TRUE", []
    pat = pattern if any(ch in pattern for ch in "*?[") or "." in pattern else f"{pattern}.*"
    return '"check" GLOB ?', [pat]


def failures_sql(settings: Settings, include_ingest: bool = True) -> str:
    """Failing outcomes of the latest run of each check, plus the problems ingest recorded against samples, each
    with its severity: sample_id, check, severity, reason, score."""
    parts = [
        f"SELECT sample_id, check_name AS \"check\", severity, reason, score "
        f"FROM {latest_results_sql(settings.results_dir)} WHERE NOT passed"
    ]
    if include_ingest:
        parts.append(
            f"SELECT sample_id, 'ingest.' || p.code AS \"check\", {problem_severity_sql('p.code', 'kind')} "
            "AS severity, "
            "coalesce(p.field || ': ', '') || coalesce(p.message, '') AS reason, NULL::DOUBLE AS score "
            "FROM (SELECT sample_id, kind, unnest(problems) AS p FROM samples "
            "WHERE len(problems) > 0)"
        )
    return " UNION ALL ".join(f"({p})" for p in parts)


def _severity_filter(severities: list[str] | None) -> tuple[str, list]:
    if not severities:
        return "TRUE", []
    return "severity IN (SELECT unnest(?::VARCHAR[]))", [check_severities(severities)]


def iter_failures(settings: Settings, check: str | None = None, include_ingest: bool = True,
                  batch_rows: int = 50_000, severities: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Every (sample_id, check, severity, reason, score) known to be wrong, of the given severities (all when None),
    ordered by sample then check."""
    con = _connect(settings)
    try:
        where, params = _check_filter(check)
        by_severity, severity_params = _severity_filter(severities)
        sql = (f"SELECT * FROM ({failures_sql(settings, include_ingest)}) WHERE {where} AND {by_severity} "
               "ORDER BY sample_id, \"check\"")
        yield from con.sql(sql, params=[*params, *severity_params] or None).to_arrow_reader(batch_rows)
    finally:
        con.close()


def write_failures(settings: Settings, fmt: str = "jsonl", check: str | None = None, out: TextIO | None = None,
                   include_ingest: bool = True, severities: list[str] | None = None) -> int:
    """Print failures (of the given severities, all when None) as JSON lines or CSV (with a header); returns how
    many were written."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"format: {fmt!r} is not jsonl or csv")
    out = out or sys.stdout
    n = 0
    writer = None
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FAILURE_COLUMNS)
    for batch in iter_failures(settings, check, include_ingest, severities=severities):
        for row in batch.to_pylist():
            if writer is not None:
                writer.writerow([row["sample_id"], row["check"], row["severity"], row["reason"] or "",
                                 "" if row["score"] is None else row["score"]])
            else:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def failures_text(settings: Settings, fmt: str = "jsonl", check: str | None = None,
                  severities: list[str] | None = None) -> str:
    buf = io.StringIO()
    write_failures(settings, fmt, check, buf, severities=severities)
    return buf.getvalue()


def check_summary(settings: Settings, include_ingest: bool = True, severities: list[str] | None = None) -> pa.Table:
    """Per check and skill: samples checked, failed (counting failures of the given severities; all when None),
    failure rate, and the failures per severity (errors, warnings, infos). Ingest problems appear as ingest.* checks;
    a check none of whose failures has a counted severity keeps its rows (failed 0)."""
    counted = check_severities(severities) if severities else list(SEVERITIES)
    con = _connect(settings)
    try:
        ingest = (
            f"UNION ALL SELECT sample_id, 'ingest.' || p.code, FALSE, {problem_severity_sql('p.code', 'kind')} "
            "FROM (SELECT sample_id, kind, unnest(problems) AS p FROM samples WHERE len(problems) > 0)"
            if include_ingest else ""
        )
        per_severity = ", ".join(f"count(*) FILTER (WHERE NOT r.passed AND r.severity = '{s}')::BIGINT AS {s}s"
                                 for s in SEVERITIES)
        sql = f"""
        WITH r AS (
          SELECT sample_id, check_name, passed, severity FROM {latest_results_sql(settings.results_dir)}
          {ingest}
        ), counts AS (
          SELECT r.check_name, s.skill, count(*) AS checked,
                 count(*) FILTER (WHERE NOT r.passed AND r.severity IN (SELECT unnest($counted))) AS failed,
                 {per_severity}
          FROM r JOIN samples s USING (sample_id) GROUP BY ALL
        )
        SELECT check_name, skill, checked::BIGINT AS checked, failed::BIGINT AS failed,
               failed / checked AS fail_rate, {', '.join(f'{s}s' for s in SEVERITIES)}
        FROM counts ORDER BY check_name, skill
        """
        return con.sql(sql, params={"counted": counted}).to_arrow_table()
    finally:
        con.close()



def score_histogram(settings: Settings, check_name: str, bins: int = 20) -> pa.Table:
    """Histogram of a check's scores in its latest run: bin_start, bin_end, count, failed (empty when unscored)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    con = duckdb.connect()
    try:
        sql = f"""
        WITH r AS (SELECT score, passed FROM {latest_results_sql(settings.results_dir)}
                   WHERE check_name = ? AND score IS NOT NULL AND isfinite(score)),
        b AS (SELECT min(score) AS lo, max(score) AS hi FROM r),
        x AS (SELECT r.*, b.lo, b.hi,
                     CASE WHEN b.hi = b.lo THEN 0 ELSE least({bins} - 1, floor((score - b.lo) / (b.hi - b.lo) * {bins}))
                     END::INTEGER AS bin FROM r, b)
        SELECT bin, any_value(lo) + bin * (any_value(hi) - any_value(lo)) / {bins} AS bin_start,
               any_value(lo) + (bin + 1) * (any_value(hi) - any_value(lo)) / {bins} AS bin_end,
               count(*) AS count, count(*) FILTER (WHERE NOT passed) AS failed
        FROM x GROUP BY bin ORDER BY bin
        """
        return con.sql(sql, params=[check_name]).to_arrow_table()
    finally:
        con.close()
