"""The curation state as Arrow tables the query layer joins with the catalog: per-sample state, ids per state filter."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from sqlalchemy import Integer, String, Subquery, and_, cast, false, func, literal_column, not_, null, select, union_all

from curation.review.errors import StateError
from curation.review.flags import check_reason
from db.engine import StateDB
from db.models import VERDICTS, AuditEntry, Flag, Review

_MATCH_KEY = b"curator.state_match"  # schema metadata of state_sample_ids: b"include" | b"exclude"

STATE_TABLE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("flagged", pa.bool_()),
        ("flag_reasons", pa.list_(pa.string())),
        ("verdict", pa.string()),
        ("reviewer", pa.string()),
        ("fixed", pa.bool_()),
        ("n_flags", pa.int32()),
    ]
)


def _sample_state() -> Subquery:
    """One row per sample with an active flag or a review that is not undone.

    Columns: sample_id, reasons (comma list, may repeat), n_flags, verdict, reviewer, n_fixes. One pass over
    each table and one GROUP BY over their UNION ALL (a LEFT JOIN of two aggregates has no index to use).
    """
    flag_state = (
        select(
            Flag.sample_id,
            func.aggregate_strings(Flag.reason, ",").label("reasons"),
            func.count().label("n_flags"),
            cast(null(), String).label("verdict"),
            cast(null(), String).label("reviewer"),
            literal_column("0").label("n_fixes"),
        )
        .where(Flag.removed_at.is_(None))
        .group_by(Flag.sample_id)
    )
    latest = (
        select(
            Review.sample_id,
            func.max(Review.id).label("review_id"),
            (func.count(Review.fixed_answer) + func.count(Review.fixed_reasoning)).label("n_fixes"),
        )
        .where(Review.undone_at.is_(None))
        .group_by(Review.sample_id)
        .cte("latest_review")
    )
    review_state = select(
        latest.c.sample_id,
        cast(null(), String).label("reasons"),
        literal_column("0").label("n_flags"),
        Review.verdict,
        Review.reviewer,
        latest.c.n_fixes,
    ).join(Review, Review.id == latest.c.review_id)
    both = union_all(flag_state, review_state).subquery("both_states")
    return (
        select(
            both.c.sample_id,
            func.max(both.c.reasons).label("reasons"),
            cast(func.sum(both.c.n_flags), Integer).label("n_flags"),  # PostgreSQL: sum(bigint) is numeric
            func.max(both.c.verdict).label("verdict"),
            func.max(both.c.reviewer).label("reviewer"),
            cast(func.sum(both.c.n_fixes), Integer).label("n_fixes"),
        )
        .group_by(both.c.sample_id)
        .subquery("sample_state")
    )


def _reason_list(joined: str | None, seen: dict[str, list[str]]) -> list[str]:
    # Few distinct reason combinations exist, so split and sort each one once.
    if not joined:
        return []
    if joined not in seen:
        seen[joined] = sorted(set(joined.split(",")))
    return seen[joined]


def state_table(db: StateDB) -> pa.Table:
    """Per-sample state for joins and exports: every sample with an active flag or a review, one row each.

    Columns: sample_id, flagged, flag_reasons (sorted), verdict, reviewer, fixed, n_flags.
    """
    st = _sample_state()
    cols = (st.c.sample_id, st.c.reasons, st.c.n_flags, st.c.verdict, st.c.reviewer, st.c.n_fixes)
    with db.engine.connect() as conn:  # Core rows: no ORM bookkeeping for 100k rows
        rows = conn.execute(select(*cols)).all()
    seen: dict[str, list[str]] = {}
    sample_ids, reasons, n_flags, verdicts, reviewers, n_fixes = (
        (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [], [], [])
    )
    return pa.Table.from_arrays(
        [
            pa.array(sample_ids, pa.string()),
            pa.array([n > 0 for n in n_flags], pa.bool_()),
            pa.array([_reason_list(r, seen) for r in reasons], pa.list_(pa.string())),
            pa.array(verdicts, pa.string()),
            pa.array(reviewers, pa.string()),
            pa.array([n > 0 for n in n_fixes], pa.bool_()),
            pa.array(n_flags, pa.int32()),
        ],
        schema=STATE_TABLE_SCHEMA,
    ).sort_by("sample_id")


def state_sample_ids(
    db: StateDB,
    *,
    flagged: bool | None = None,
    reasons: Iterable[str] | None = None,
    reviewed: bool | None = None,
    verdicts: Iterable[str] | None = None,
    reviewers: Iterable[str] | None = None,
    fixed: bool | None = None,
) -> pa.Table:
    """Sample ids for a state filter, as an Arrow table with one column ``sample_id``.

    The state database only knows samples that were flagged or reviewed. When a sample it has never seen
    passes the filter (e.g. ``flagged=False``), the table lists the known samples that FAIL it instead and
    its schema metadata says so: ``state_filter_excludes(table)`` is True and the catalog rows to keep are
    those NOT IN the table. Otherwise (the usual case) keep the rows IN the table.
    """
    reasons = list(reasons) if reasons is not None else []
    verdicts = list(verdicts) if verdicts is not None else []
    reviewers = list(reviewers) if reviewers is not None else []
    for r in reasons:
        check_reason(r, "state filter")
    for v in verdicts:
        if v not in VERDICTS:
            raise StateError(f"state filter: field 'verdicts' has {v!r}; use one of {', '.join(VERDICTS)}")
    st = _sample_state()
    conds = []
    if flagged is not None:
        conds.append(st.c.n_flags > 0 if flagged else st.c.n_flags == 0)
    if reasons:
        with_reason = select(Flag.sample_id).where(Flag.reason.in_(reasons), Flag.removed_at.is_(None))
        conds.append(st.c.sample_id.in_(with_reason))
    if reviewed is not None:
        conds.append(st.c.verdict.is_not(None) if reviewed else st.c.verdict.is_(None))
    if verdicts:
        conds.append(st.c.verdict.in_(verdicts))
    if reviewers:
        conds.append(st.c.reviewer.in_(reviewers))
    if fixed is not None:
        conds.append(st.c.n_fixes > 0 if fixed else st.c.n_fixes == 0)
    # Does a sample with no state at all (not flagged, not reviewed, not fixed) pass?
    blank_passes = not (flagged or reasons or reviewed or verdicts or reviewers or fixed)
    q = select(st.c.sample_id)
    if blank_passes:
        q = q.where(not_(and_(*conds))) if conds else q.where(false())
    else:
        q = q.where(and_(*conds))
    with db.engine.connect() as conn:
        ids = list(conn.scalars(q))
    schema = pa.schema([("sample_id", pa.string())], metadata={_MATCH_KEY: b"exclude" if blank_passes else b"include"})
    return pa.Table.from_arrays([pa.array(ids, pa.string())], schema=schema)


def state_version(db: StateDB) -> tuple[int, int]:
    """Changes whenever a flag or review changes (audit count and last id): cache state_table by it."""
    with db.engine.connect() as conn:
        n, last = conn.execute(select(func.count(), func.coalesce(func.max(AuditEntry.id), 0))).one()
        return int(n), int(last)


def state_filter_excludes(table: pa.Table) -> bool:
    """True when a state_sample_ids result lists samples to drop rather than samples to keep."""
    return (table.schema.metadata or {}).get(_MATCH_KEY) == b"exclude"
