"""Undo: take back one flag, unflag or review event by its audit entry; the undo is an audit entry of its own."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curation.review.actors import Actor
from curation.review.assignment import SETTLED_SOURCE, undo_verdict_in
from curation.review.audit import AuditRecord, write_audit
from curation.review.errors import StateError, require_text
from curation.review.flags import FLAG_FIELDS, flag_fields, mark_removed
from curation.review.reviews import current_review_fields, fold_reviews, reviews_of
from curation.review.roles import GRANT_HINT, PermissionDenied, require
from db.engine import StateDB, to_record
from db.models import AuditEntry, Flag, Review, utcnow

# What to do instead of undoing an entry that is not a sample's flag or review.
NOT_A_SAMPLE = {"user_roles": "grant the earlier role again instead",
                "review_queues": "close the queue on the Team page instead"}
# Reviews a review queue settled: the queue's item stays settled, so undoing one would leave the sample without its
# review; an admin adjudicates again instead.
SETTLED_PREFIXES = tuple(f"{name}:" for name in SETTLED_SOURCE.values())
UNDO_ANYONES = ("admin", "curator")  # roles that may take back other people's changes; an annotator only their own


def _check_may_undo(entry: AuditEntry, by: Actor) -> None:
    """PermissionDenied when ``by`` may undo only their own changes and ``entry`` is someone else's."""
    if entry.who != by.who and by.role not in UNDO_ANYONES:
        raise PermissionDenied(
            f"undo of audit entry {entry.id}: it is {entry.who}'s change, and {by.who} has the role {by.role!r}, "
            f"which may undo only their own; {' or '.join(repr(r) for r in UNDO_ANYONES)} may undo anyone's "
            f"({GRANT_HINT})"
        )


def _undo_in(s: Session, entry: AuditEntry, who: str) -> AuditEntry:
    where = f"undo of audit entry {entry.id}"
    if entry.action == "undo":
        raise StateError(f"{where}: it is itself an undo; add the flag or review again instead")
    if entry.sample_id is None:  # a role grant or a new queue: no sample event to take back
        instead = NOT_A_SAMPLE.get(entry.table_name, "change it where it was made")
        raise StateError(f"{where}: it changed {entry.table_name}, not a sample; {instead}")
    done = s.scalar(select(AuditEntry.id).where(AuditEntry.undoes_id == entry.id))
    if done is not None:
        raise StateError(f"{where}: already undone by audit entry {done}")
    if entry.table_name == "queue_verdicts":  # a review queue's verdict: its rules live with the queues
        return undo_verdict_in(s, entry, who)
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
    if review.source.startswith(SETTLED_PREFIXES):
        raise StateError(f"{where}: it is the settled result of a review queue ({review.source}); an admin "
                         "adjudicates the sample again on the Team page instead")
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


def undo(db: StateDB, audit_id: int, by: Actor) -> AuditRecord:
    """Undo one flag / unflag / review event by its audit id as ``by``; the undo is an audit entry of its own.
    An annotator may undo only their own events, curators and admins anyone's."""
    require(by, "undo")
    who = by.who
    require_text(who, "who", f"undo of audit entry {audit_id}")
    try:
        with db.write() as s:
            entry = s.get(AuditEntry, audit_id)
            if entry is None:
                raise StateError(f"undo: field 'audit_id' is {audit_id}, which is no audit entry")
            _check_may_undo(entry, by)
            return to_record(AuditRecord, _undo_in(s, entry, who))
    except IntegrityError as exc:  # the unique undoes_id: someone undid it a moment before us
        raise StateError(f"undo of audit entry {audit_id}: already undone") from exc


def undo_last(db: StateDB, by: Actor) -> AuditRecord | None:
    """Undo ``by``'s latest event that is not undone yet; None when there is nothing left to undo."""
    require(by, "undo")
    who = by.who
    require_text(who, "who", "undo of your last change")
    undone = select(AuditEntry.undoes_id).where(AuditEntry.undoes_id.is_not(None))
    settled = (select(AuditEntry.id).join(Review, Review.id == AuditEntry.row_id)
               .where(AuditEntry.table_name == "reviews",
                      or_(*(Review.source.startswith(p) for p in SETTLED_PREFIXES))))
    with db.write() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.who == who, AuditEntry.action != "undo", AuditEntry.id.not_in(undone),
                   AuditEntry.sample_id.is_not(None), ~AuditEntry.id.in_(settled))
            .order_by(AuditEntry.id.desc())
            .limit(1)
        ).first()
        return None if entry is None else to_record(AuditRecord, _undo_in(s, entry, who))
