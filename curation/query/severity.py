"""Failure severities: `error` breaks training, `warning` doubts quality, `info` is a known quirk the catalog
normalised; and the severity of each problem ingest records."""

from __future__ import annotations

from collections.abc import Iterable

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)  # most severe first
# What a failure stored without a severity counts as (results written before failures carried one).
UNSTATED = WARNING


def check_severities(values: Iterable[str]) -> list[str]:
    """The values, lower-cased; ValueError naming any that is not a severity."""
    out = [str(v).strip().lower() for v in values]
    bad = [v for v in out if v not in SEVERITIES]
    if bad:
        raise ValueError(f"severity {', '.join(map(repr, bad))} is not one of {', '.join(SEVERITIES)}")
    return out


def problem_severity_sql(code: str, kind: str) -> str:
    """DuckDB: the severity of an ingest problem (``samples.problems[].code``) of a sample of ``kind``.

    A media problem (no path, missing, unreadable, undecodable, outside the media roots) breaks training; so does
    meta_info that is not JSON on an RL row (its reward mode is in there); anything else is a warning.
    """
    return (
        f"CASE WHEN starts_with({code}, 'media_') THEN '{ERROR}' "
        f"WHEN {code} = 'invalid_meta_info' AND {kind} = 'rl' THEN '{ERROR}' ELSE '{WARNING}' END"
    )
