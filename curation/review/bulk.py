"""Bulk actions: flag, approve or reject many samples at once (a page's selected rows, or every sample of a filter)
as one audit batch, and take the whole batch back with one undo.

A batch is what one call wrote: every flag or review it added and every audit entry carries the same person and the
same timestamp, so the batch is found again by (who, at) without a column of its own. Ids are read and written in
chunks inside one transaction: millions of samples never sit in memory as rows, and a batch lands whole or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Column,
    MetaData,
    Select,
    String,
    Table,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.actors import Actor
from curation.review.audit import audit_row
from curation.review.errors import StateError, require_text
from curation.review.flags import FLAG_FIELDS, check_reason
from curation.review.reviews import CURRENT_REVIEW_FIELDS, current_review_fields, fold_reviews
from curation.review.roles import require
from db.engine import StateDB
from db.models import AuditEntry, Flag, Review, utcnow

BulkVerdict = Literal["approve", "reject"]  # a fix needs its own text, so it is never a bulk action
_CHUNK = 5_000  # ids per statement: well inside SQLite's and PostgreSQL's limits on bound parameters
_STAGE_CHUNK = 100_000  # ids staged per executemany
_PERSON = "person"  # the source of a person's flags and reviews
_STAGE = Table("bulk_sample_ids", MetaData(), Column("sample_id", String(255)), prefixes=["TEMPORARY"])
_REVIEW_COLUMNS = (Review.id, Review.sample_id, Review.verdict, Review.reviewer, Review.source, Review.note,
                   Review.fixed_answer, Review.fixed_reasoning, Review.created_at, Review.undone_at)


@dataclass(frozen=True)
class Batch:
    """One bulk action: who did it, when (every row of it carries this timestamp), what, and how many samples it
    changed (samples already in that state are left alone)."""

    who: str
    at: datetime
    action: Literal["flag_added", "review_added"]
    samples: int


def filter_sample_ids(query: CatalogQuery, spec: FilterSpec, batch_rows: int = 50_000) -> Iterator[str]:
    """Every sample id the filter matches, streamed from the catalog in Arrow batches."""
    for batch in query.iter_batches(spec, columns=["sample_id"], batch_rows=batch_rows):
        yield from batch.column(0).to_pylist()


def flag_samples(db: StateDB, sample_ids: Iterable[str], reason: str, by: Actor, note: str | None = None) -> Batch:
    """Flag every sample for ``reason`` as one batch by ``by`` (a sample they already flagged for it keeps its flag)."""
    require(by, "bulk")
    who = by.who
    where = f"bulk flag by {who!r}"
    require_text(who, "who", where)
    check_reason(reason, where)
    at = utcnow()
    fields = {"reason": reason, "note": note, "who": who, "source": _PERSON}
    mine = (Flag.reason == reason, Flag.who == who, Flag.source == _PERSON)
    with db.write() as s, _staged(s, sample_ids) as staged:
        held = select(Flag.id).where(Flag.sample_id == staged.c.sample_id, *mine, Flag.removed_at.is_(None))
        todo = select(staged.c.sample_id).distinct().where(~held.exists()).subquery()
        before = s.scalar(select(func.coalesce(func.max(Flag.id), 0)))
        n = s.execute(insert(Flag.__table__).from_select(
            [*fields, "sample_id", "created_at"],
            select(*(_value(s, v, Flag.__table__.c[k].type) for k, v in fields.items()), todo.c.sample_id,
                   _value(s, at, Flag.created_at.type)),
        )).rowcount
        entry = audit_row(who=who, action="flag_added", sample_id=None, table_name="flags", row_id=0, old=None,
                          new=fields, always=FLAG_FIELDS)
        added = select(Flag.sample_id, Flag.id).where(Flag.id > before, Flag.created_at == at, *mine)
        _insert_audit(s, entry, at, added)
    return Batch(who, at, "flag_added", n)


def review_samples(db: StateDB, sample_ids: Iterable[str], verdict: BulkVerdict, by: Actor,
                   note: str | None = None) -> Batch:
    """Approve or reject every sample as one batch by ``by``; a sample whose current review is already this verdict
    by them is left alone. A sample's earlier fix stays: approving it approves the fixed text (curation.review.reviews).
    """
    require(by, "bulk")
    who = by.who
    where = f"bulk {verdict} by {who!r}"
    require_text(who, "who", where)
    if verdict not in ("approve", "reject"):
        raise StateError(f"{where}: field 'verdict' is {verdict!r}; a bulk review is 'approve' or 'reject'")
    at = utcnow()
    fields = {"verdict": verdict, "reviewer": who, "source": _PERSON, "note": note}
    with db.write() as s, _staged(s, sample_ids) as staged:
        reviewed = select(Review.id).where(Review.sample_id == staged.c.sample_id, Review.undone_at.is_(None))
        # Samples with a review already (few): folded one by one, as add_review does.
        n = 0
        known = s.scalars(select(staged.c.sample_id).distinct().where(reviewed.exists())).all()
        for start in range(0, len(known), _CHUNK):
            n += _review_reviewed(s, known[start : start + _CHUNK], fields, at)
        # The rest (most) have no review: the same new state for each, written by two statements.
        todo = select(staged.c.sample_id).distinct().where(~reviewed.exists()).subquery()
        before = s.scalar(select(func.coalesce(func.max(Review.id), 0)))
        n += s.execute(insert(Review.__table__).from_select(
            [*fields, "sample_id", "created_at"],
            select(*(_value(s, v, Review.__table__.c[k].type) for k, v in fields.items()), todo.c.sample_id,
                   _value(s, at, Review.created_at.type)),
        )).rowcount
        entry = audit_row(who=who, action="review_added", sample_id=None, table_name="reviews", row_id=0, old=None,
                          new=fields, always=("verdict",))
        added = select(Review.sample_id, Review.id).where(Review.id > before, Review.created_at == at,
                                                          Review.reviewer == who)
        _insert_audit(s, entry, at, added)
    return Batch(who, at, "review_added", n)


def _review_reviewed(s: Session, sample_ids: list[str], fields: dict[str, Any], at: datetime) -> int:
    current = {sid: fold_reviews(sid, rows) for sid, rows in _reviews_by_sample(s, sample_ids).items()}
    todo = [sid for sid in sample_ids
            if not ((c := current.get(sid)) and c.verdict == fields["verdict"] and c.reviewer == fields["reviewer"])]
    if not todo:
        return 0
    before = s.scalar(select(func.coalesce(func.max(Review.id), 0)))
    s.execute(insert(Review.__table__), [{**fields, "sample_id": sid, "created_at": at} for sid in todo])
    added = s.execute(select(Review.id, Review.sample_id).where(
        Review.reviewer == fields["reviewer"], Review.id > before, Review.created_at == at))
    audit = []
    for rid, sid in added:
        old = current_review_fields(current.get(sid))
        new = {**(old or dict.fromkeys(CURRENT_REVIEW_FIELDS)), **fields}  # fixed_answer / fixed_reasoning carry over
        audit.append(audit_row(who=fields["reviewer"], action="review_added", sample_id=sid, table_name="reviews",
                               row_id=rid, old=old, new=new, always=("verdict",), at=at))
    s.execute(insert(AuditEntry.__table__), audit)
    return len(todo)


def undo_batch(db: StateDB, batch: Batch, by: Actor) -> int:
    """Take back every event of a batch that is not undone yet, as ``by``, in one transaction; the undos are audit
    entries of their own (one batch too: one ``at``). Returns how many events were undone."""
    require(by, "bulk")
    who = by.who
    where = f"undo of the {batch.action} batch by {batch.who!r} at {batch.at.isoformat()}"
    require_text(who, "who", where)
    at = utcnow()
    a, u = aliased(AuditEntry), aliased(AuditEntry)
    # Correlated, so the unique index on undoes_id answers it per entry (a NOT IN list would be built per statement).
    pending = (a.who == batch.who, a.at == batch.at, a.action == batch.action,
               ~select(u.id).where(u.undoes_id == a.id).exists())
    columns = ["at", "who", "action", "sample_id", "table_name", "row_id", "field", "old_value", "new_value",
               "undoes_id"]
    try:
        with db.write() as s:
            head = (_value(s, at, AuditEntry.at.type), _value(s, who, AuditEntry.who.type),
                    _value(s, "undo", AuditEntry.action.type), a.sample_id)
            if batch.action == "flag_added":
                # As a single undo: the flag's fields (those its adding recorded) when this undo removes it, nothing
                # when someone removed it already.
                active = Flag.removed_at.is_(None)
                n = s.execute(insert(AuditEntry.__table__).from_select(columns, select(
                    *head, _value(s, "flags", AuditEntry.table_name.type), a.row_id,
                    case((active, a.field)), case((active, a.new_value)), null(), a.id,
                ).join(Flag, Flag.id == a.row_id).where(*pending))).rowcount
                undone = _undone_rows(s, at, who, "flags")
                s.execute(update(Flag).where(Flag.id.in_(undone), Flag.removed_at.is_(None))
                          .values(removed_at=at, removed_by=who).execution_options(synchronize_session=False))
                return n
            # A review that is its sample's only one, added with no review before it (old_value NULL): its undo
            # leaves the sample unreviewed, and what it takes back is exactly what its adding recorded.
            other = aliased(Review)
            alone = ~select(other.id).where(other.sample_id == a.sample_id, other.undone_at.is_(None),
                                            other.id != a.row_id).exists()
            n = s.execute(insert(AuditEntry.__table__).from_select(columns, select(
                *head, _value(s, "reviews", AuditEntry.table_name.type), a.row_id, a.field, a.new_value, null(), a.id,
            ).where(*pending, a.old_value.is_(None), alone))).rowcount
            # The rest (a sample with other reviews): folded one by one, as a single undo does.
            rest = s.execute(select(a.id, a.row_id, a.sample_id).where(*pending).order_by(a.id)).all()
            for start in range(0, len(rest), _CHUNK):
                s.execute(insert(AuditEntry.__table__), _undo_reviews(s, rest[start : start + _CHUNK], who, at))
            undone = _undone_rows(s, at, who, "reviews")
            s.execute(update(Review).where(Review.id.in_(undone), Review.undone_at.is_(None))
                      .values(undone_at=at, undone_by=who).execution_options(synchronize_session=False))
            return n + len(rest)
    except IntegrityError as exc:  # the unique undoes_id: someone undid one of these events a moment before us
        raise StateError(f"{where}: part of it was undone at the same moment by someone else; undo it again") from exc


def _undone_rows(s: Session, at: datetime, who: str, table_name: str):
    """The rows (flag or review ids) this undo batch just took back, as a subquery."""
    return select(AuditEntry.row_id).where(AuditEntry.at == at, AuditEntry.who == who, AuditEntry.action == "undo",
                                           AuditEntry.table_name == table_name).scalar_subquery()


def _insert_audit(s: Session, entry: dict[str, Any], at: datetime, added: Select) -> None:
    """One audit entry per (sample_id, row id) of ``added``, each with ``entry``'s fields: one statement."""
    added = added.subquery()
    columns = ["at", "who", "action", "table_name", "field", "new_value", "sample_id", "row_id"]
    t = AuditEntry.__table__.c
    s.execute(insert(AuditEntry.__table__).from_select(columns, select(
        *(_value(s, at if k == "at" else entry[k], t[k].type) for k in columns[:6]), added.c.sample_id, added.c.id)))


@contextmanager
def _staged(s: Session, sample_ids: Iterable[str]) -> Iterator[Table]:
    """The ids in a temporary table of this transaction (gone with it, also when it fails), read in chunks."""
    conn = s.connection()
    _STAGE.create(conn)
    ids = iter(sample_ids)
    while chunk := list(islice(ids, _STAGE_CHUNK)):
        if conn.dialect.paramstyle == "qmark":  # SQLite: the driver's own executemany, several times faster
            conn.exec_driver_sql(f"INSERT INTO {_STAGE.name} (sample_id) VALUES (?)", [(i,) for i in chunk])
        else:  # PostgreSQL: SQLAlchemy packs the rows into multi-row INSERTs
            conn.execute(insert(_STAGE), [{"sample_id": i} for i in chunk])
    yield _STAGE
    _STAGE.drop(conn)


def _value(s: Session, value: Any, type_: Any) -> Any:
    """A bound constant for an INSERT ... SELECT; PostgreSQL needs JSON spelled out (a quoted string is text)."""
    bound = literal(value, type_)
    return cast(bound, type_) if isinstance(type_, JSON) and s.get_bind().dialect.name == "postgresql" else bound


def _undo_reviews(s: Session, entries: Sequence[Any], who: str, at: datetime) -> list[dict[str, Any]]:
    by_sample = _reviews_by_sample(s, list(dict.fromkeys(e.sample_id for e in entries)))
    ids = [e.row_id for e in entries]
    s.execute(update(Review).where(Review.id.in_(ids)).values(undone_at=at, undone_by=who)
              .execution_options(synchronize_session=False))
    out = []
    for e in entries:
        rows = by_sample.get(e.sample_id, [])
        before = fold_reviews(e.sample_id, rows)
        after = fold_reviews(e.sample_id, [r for r in rows if r.id != e.row_id])
        out.append(audit_row(who=who, action="undo", sample_id=e.sample_id, table_name="reviews", row_id=e.row_id,
                             old=current_review_fields(before), new=current_review_fields(after), undoes_id=e.id,
                             at=at))
    return out


def _reviews_by_sample(s: Session, sample_ids: list[str]) -> dict[str, list[Any]]:
    """The samples' reviews that are not undone, oldest first, as Core rows (fold_reviews reads their fields)."""
    out: dict[str, list[Any]] = defaultdict(list)
    for r in s.execute(select(*_REVIEW_COLUMNS).where(Review.sample_id.in_(sample_ids), Review.undone_at.is_(None))
                       .order_by(Review.id)):
        out[r.sample_id].append(r)
    return out
