"""Undo: take back one flag, unflag or review event by its audit entry; the undo is an audit entry of its own."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curation.review.audit import AuditRecord, write_audit
from curation.review.errors import StateError, require_text
from curation.review.flags import FLAG_FIELDS, flag_fields, mark_removed
from curation.review.reviews import current_review_fields, fold_reviews, reviews_of
from db.engine import StateDB, to_record
from db.models import AuditEntry, Flag, Review, utcnow


def _undo_in(s: Session, entry: AuditEntry, who: str) -> AuditEntry:
    where = f"undo of audit entry {entry.id}"
    if entry.action == "undo":
        raise StateError(f"{where}: it is itself an undo; add the flag or review again instead")
    if entry.sample_id is None:  # a role grant (curation/review/roles.py): no sample event to take back
        raise StateError(f"{where}: it changed {entry.table_name}, not a sample; grant the earlier role again instead")
    done = s.scalar(select(AuditEntry.id).where(AuditEntry.undoes_id == entry.id))
    if done is not None:
        raise StateError(f"{where}: already undone by audit entry {done}")
    if entry.table_name == "flags":
        flag = s.get(Flag, entry.row_id)
        if flag is None:
            raise StateError(f"{where}: flag {entry.row_id} is missing from the state database")
        if entry.action == "flag_added":
            undo_entry = mark_removed(s, flag, who, "undo", undoes_id=entry.id)
        else:  # flag_removed: bring it back
            restored = flag.removed_at is not None
            flag.removed_at, flag.removed_by = None, None
            s.flush()
            undo_entry = write_audit(
                s,
                who=who,
                action="undo",
                sample_id=flag.sample_id,
                table_name="flags",
                row_id=flag.id,
                old=None,
                new=flag_fields(flag) if restored else None,
                always=FLAG_FIELDS if restored else (),
                undoes_id=entry.id,
            )
        assert undo_entry is not None
        return undo_entry
    review = s.get(Review, entry.row_id)
    if review is None:
        raise StateError(f"{where}: review {entry.row_id} is missing from the state database")
    before = fold_reviews(review.sample_id, reviews_of(s, review.sample_id))
    review.undone_at, review.undone_by = utcnow(), who
    s.flush()
    after = fold_reviews(review.sample_id, reviews_of(s, review.sample_id))
    return write_audit(
        s,
        who=who,
        action="undo",
        sample_id=review.sample_id,
        table_name="reviews",
        row_id=review.id,
        old=current_review_fields(before),
        new=current_review_fields(after),
        undoes_id=entry.id,
    )


def undo(db: StateDB, audit_id: int, who: str) -> AuditRecord:
    """Undo one flag / unflag / review event by its audit id; the undo is an audit entry of its own."""
    require_text(who, "who", f"undo of audit entry {audit_id}")
    try:
        with db.write() as s:
            entry = s.get(AuditEntry, audit_id)
            if entry is None:
                raise StateError(f"undo: field 'audit_id' is {audit_id}, which is no audit entry")
            return to_record(AuditRecord, _undo_in(s, entry, who))
    except IntegrityError as exc:  # the unique undoes_id: someone undid it a moment before us
        raise StateError(f"undo of audit entry {audit_id}: already undone") from exc


def undo_last(db: StateDB, who: str) -> AuditRecord | None:
    """Undo ``who``'s latest event that is not undone yet; None when there is nothing left to undo."""
    undone = select(AuditEntry.undoes_id).where(AuditEntry.undoes_id.is_not(None))
    with db.write() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.who == who, AuditEntry.action != "undo", AuditEntry.id.not_in(undone),
                   AuditEntry.sample_id.is_not(None))
            .order_by(AuditEntry.id.desc())
            .limit(1)
        ).first()
        return None if entry is None else to_record(AuditRecord, _undo_in(s, entry, who))
