"""Review queues: a filter's samples, each judged by ``overlap`` different people (blind or not), settled into a review.

A queue's item is open until ``overlap`` people submitted a verdict on it. A person's place on an item is a row of
queue_verdicts: a reservation (no verdict yet) that frees its place when ``expires_at`` passes (a comparison with now,
never a background job), then their verdict. Every write runs inside the state database's write transaction, which
holds the write lock from its start (db/engine.py), so "is a place left?" and "take it" never interleave with another
writer; a partial unique index keeps one live place per person and sample in any case.

When the k-th verdict lands and all k agree (same verdict, and for a fix the same corrected text), the item is settled
"agreed" in that same transaction; a disagreement stays unsettled as a conflict until an admin adjudicates it. The
settled result is written to the reviews table (reviews.review_in) in the transaction that settles the item, so a
death at any point leaves either both or neither. The reviews table only ever holds settled results, so Browse and
Sample never show a pending verdict.

Names and shapes follow the issue-16 contract. Additions: Reservation.skill / .position; Submission carries the
outcome and the audit id; close_queue; adjudicate also takes an item already settled (an admin overrules an agreement,
which is what undo of a settled verdict points to). Each item counts its verdicts (queue_items.n_verdicts, kept by
submit and undo in their transaction), so progress, conflicts and next_item never count verdicts per item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Literal

from sqlalchemy import ColumnElement, and_, case, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curation.review.actors import Actor
from curation.review.audit import write_audit
from curation.review.errors import StateError, require_text
from curation.review.reviews import CurrentReview, check_verdict, review_in
from curation.review.roles import require
from db.engine import StateDB, to_record
from db.models import AuditEntry, QueueItem, ReviewQueue, as_utc, utcnow
from db.models import QueueVerdict as VerdictRow  # the row; QueueVerdict here is the record pages get

_CHUNK = 10_000  # queue items per INSERT while creating a queue
_REVIEWER_MAX = 255  # reviews.reviewer's length
# The review source of a settled item, by settlement, before ":<queue id>": undo knows a queue's review by these.
SETTLED_SOURCE = {"agreed": "queue", "adjudicated": "adjudication"}
VERDICT_FIELDS = ("queue_id", "verdict", "fixed_answer", "fixed_reasoning", "note")  # what a verdict's audit records


@dataclass(frozen=True)
class QueueRecord:
    id: int
    name: str
    filter_link: str
    overlap: int
    blind: bool
    reservation_minutes: int
    created_by: str
    created_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class QueueProgress:
    """Where a queue stands: n_samples = n_done + n_waiting + n_conflicts; n_adjudicated is part of n_done."""

    queue_id: int
    n_samples: int
    n_done: int  # settled: agreed, or adjudicated
    n_waiting: int  # fewer than overlap verdicts in
    n_conflicts: int  # overlap verdicts in, disagreeing, not adjudicated yet
    n_adjudicated: int
    per_reviewer: dict[str, int]  # who -> verdicts submitted (not undone)


@dataclass(frozen=True)
class Reservation:
    queue_id: int
    sample_id: str
    who: str
    expires_at: datetime
    skill: str
    position: int


@dataclass(frozen=True)
class QueueVerdict:
    id: int
    queue_id: int
    sample_id: str
    who: str
    verdict: str
    fixed_answer: str | None
    fixed_reasoning: str | None
    note: str | None
    submitted_at: datetime


@dataclass(frozen=True)
class Submission:
    """What one submit did: ``outcome`` is 'waiting' (fewer than overlap verdicts), 'agreed' (settled, ``review`` is
    the sample's new current review) or 'conflict' (an admin adjudicates)."""

    queue_id: int
    sample_id: str
    who: str
    verdict: str
    n_verdicts: int
    overlap: int
    outcome: Literal["waiting", "agreed", "conflict"]
    audit_id: int
    review: CurrentReview | None


@dataclass(frozen=True)
class Conflict:
    queue_id: int
    sample_id: str
    skill: str
    verdicts: list[QueueVerdict]


# ----------------------------------------------------------------------------------------------- queues


def create_queue(
    db: StateDB,
    by: Actor,
    name: str,
    samples: Iterable[tuple[str, str]],
    filter_link: str,
    overlap: int = 2,
    blind: bool = True,
    reservation_minutes: int = 30,
) -> QueueRecord:
    """A queue over ``samples`` ((sample_id, skill) in the filter's order, which is the queue's order; a repeated
    sample keeps its first place); only an admin may create one."""
    where = f"review queue {name!r}"
    require(by, "assign")
    require_text(name, "name", where)
    if not isinstance(overlap, int) or overlap < 1:
        raise StateError(
            f"{where}: field 'overlap' is {overlap!r}; give how many different people judge each sample (1 or more)"
        )
    if not isinstance(reservation_minutes, int) or reservation_minutes < 1:
        raise StateError(f"{where}: field 'reservation_minutes' is {reservation_minutes!r}; give 1 or more")
    name = name.strip()
    with db.write() as s:
        taken = s.scalar(select(ReviewQueue.id).where(ReviewQueue.name == name))
        if taken is not None:
            raise StateError(f"{where}: a queue with this name exists already (id {taken}); choose another name")
        queue = ReviewQueue(
            name=name,
            filter_link=filter_link,
            overlap=overlap,
            blind=blind,
            reservation_minutes=reservation_minutes,
            created_by=by.who,
        )
        s.add(queue)
        s.flush()
        n = _add_items(s, queue.id, samples, where)
        if n == 0:
            raise StateError(f"{where}: the filter matches no sample; widen the filter ({filter_link})")
        write_audit(
            s,
            who=by.who,
            action="queue_created",
            sample_id=None,
            table_name="review_queues",
            row_id=queue.id,
            old=None,
            new={"name": name, "samples": n, "overlap": overlap, "blind": blind, "filter_link": filter_link},
            always=("name",),
        )
        return to_record(QueueRecord, queue)


def _add_items(s: Session, queue_id: int, samples: Iterable[tuple[str, str]], where: str) -> int:
    seen: set[str] = set()
    position = 0
    it = iter(samples)
    while chunk := list(islice(it, _CHUNK)):
        rows = []
        for sample_id, skill in chunk:
            require_text(sample_id, "sample_id", f"{where}, sample {position + 1}")
            if sample_id in seen:
                continue
            seen.add(sample_id)
            position += 1
            rows.append(
                {
                    "queue_id": queue_id,
                    "sample_id": sample_id,
                    "skill": skill or "unknown",
                    "position": position,
                    "settle_count": 0,
                    "n_verdicts": 0,
                }
            )
        if rows:
            s.execute(insert(QueueItem.__table__), rows)  # Core executemany: no ORM bookkeeping per row
    return position


def close_queue(db: StateDB, by: Actor, queue_id: int) -> QueueRecord:
    """Close a queue (admin): nobody takes or submits anything in it any more; what is settled stays."""
    require(by, "assign")
    with db.write() as s:
        queue = _queue_in(s, queue_id)
        if queue.closed_at is None:
            queue.closed_at = utcnow()
        return to_record(QueueRecord, queue)


def queues(db: StateDB) -> list[QueueRecord]:
    """Every queue, newest first."""
    with db.read() as s:
        return [to_record(QueueRecord, q) for q in s.scalars(select(ReviewQueue).order_by(ReviewQueue.id.desc()))]


def queue(db: StateDB, queue_id: int) -> QueueRecord:
    """One queue by id (StateError when there is none)."""
    with db.read() as s:
        return to_record(QueueRecord, _queue_in(s, queue_id))


def _queue_in(s: Session, queue_id: int, *, open_only: bool = False) -> ReviewQueue:
    queue = s.get(ReviewQueue, queue_id)
    if queue is None:
        raise StateError(f"review queue: field 'queue_id' is {queue_id!r}, which is no queue; pick one of the list")
    if open_only and queue.closed_at is not None:
        raise StateError(
            f"review queue {queue.name!r} was closed at {queue.closed_at:%Y-%m-%d %H:%M} UTC; "
            "nothing more is taken or submitted in it"
        )
    return queue


def queue_progress(db: StateDB, queue_id: int) -> QueueProgress:
    """Counts of a queue's samples by state and of each reviewer's verdicts: two aggregate queries."""
    with db.read() as s:
        queue = _queue_in(s, queue_id)
        settled, adjudicated, total, waiting = s.execute(
            select(
                func.count(QueueItem.settled_at),
                func.count(case((QueueItem.settlement == "adjudicated", 1))),
                func.count(),
                func.count(case((and_(QueueItem.settled_at.is_(None), QueueItem.n_verdicts < queue.overlap), 1))),
            ).where(QueueItem.queue_id == queue_id)
        ).one()
        per_reviewer = dict(s.execute(
            select(VerdictRow.who, func.count()).where(VerdictRow.queue_id == queue_id, *_submitted())
            .group_by(VerdictRow.who)
        ).all())  # fmt: skip
    return QueueProgress(
        queue_id,
        total,
        settled,
        waiting,
        total - settled - waiting,
        adjudicated,
        {who: int(n) for who, n in per_reviewer.items()},
    )


# ----------------------------------------------------------------------------------------------- working a queue


def _submitted() -> tuple[ColumnElement[bool], ...]:
    """A verdict that counts: submitted, not undone."""
    return VerdictRow.submitted_at.is_not(None), VerdictRow.undone_at.is_(None)


def _holding(now: datetime) -> ColumnElement[bool]:
    """A place that counts: a verdict not undone, or a reservation that has not expired."""
    return and_(VerdictRow.undone_at.is_(None), or_(VerdictRow.submitted_at.is_not(None), VerdictRow.expires_at > now))


def next_item(db: StateDB, by: Actor, queue_id: int, now: datetime | None = None) -> Reservation | None:
    """``by``'s live reservation in the queue, else a new one on the first sample (queue order) that ``by`` has not
    judged and whose places (verdicts + live reservations of others) are not all taken; None when nothing is left for
    ``by``. One indexed query finds the sample, inside the write transaction that takes it."""
    require(by, "review")
    now = now or utcnow()
    who = by.who
    with db.write() as s:
        queue = _queue_in(s, queue_id, open_only=True)
        held = s.scalars(
            select(VerdictRow)
            .where(
                VerdictRow.queue_id == queue_id,
                VerdictRow.who == who,
                VerdictRow.submitted_at.is_(None),
                VerdictRow.undone_at.is_(None),
            )
            .order_by(VerdictRow.id)
        ).all()
        for row in held:
            if _as_utc(row.expires_at) > now:
                return _reservation(s, row)
            s.delete(row)  # my own expired reservation: gone, so I may take the same sample again
        s.flush()
        mine = select(VerdictRow.id).where(
            VerdictRow.queue_id == queue_id,
            VerdictRow.sample_id == QueueItem.sample_id,
            VerdictRow.who == who,
            VerdictRow.undone_at.is_(None),
        )
        places = (
            select(func.count())
            .where(
                VerdictRow.queue_id == queue_id,
                VerdictRow.sample_id == QueueItem.sample_id,
                _holding(now),
            )
            .scalar_subquery()
        )
        sample_id = s.scalar(
            select(QueueItem.sample_id)
            .where(
                QueueItem.queue_id == queue_id,
                QueueItem.settled_at.is_(None),
                QueueItem.n_verdicts < queue.overlap,  # conflicts (all in, unsettled) skipped without a lookup
                ~mine.exists(),
                places < queue.overlap,
            )
            .order_by(QueueItem.position)
            .limit(1)
        )
        if sample_id is None:
            return None
        row = VerdictRow(
            queue_id=queue_id,
            sample_id=sample_id,
            who=who,
            reserved_at=now,
            expires_at=now + timedelta(minutes=queue.reservation_minutes),
        )
        s.add(row)
        s.flush()
        return _reservation(s, row)


def _reservation(s: Session, row: VerdictRow) -> Reservation:
    skill, position = s.execute(
        select(QueueItem.skill, QueueItem.position).where(
            QueueItem.queue_id == row.queue_id, QueueItem.sample_id == row.sample_id
        )
    ).one()
    return Reservation(row.queue_id, row.sample_id, row.who, _as_utc(row.expires_at), skill, position)


def release(db: StateDB, by: Actor, queue_id: int, sample_id: str) -> None:
    """Give ``by``'s reservation on a sample back (its place is free at once); nothing when there is none."""
    require(by, "review")
    with db.write() as s:
        _queue_in(s, queue_id)
        for row in s.scalars(
            select(VerdictRow).where(
                VerdictRow.queue_id == queue_id,
                VerdictRow.sample_id == sample_id,
                VerdictRow.who == by.who,
                VerdictRow.submitted_at.is_(None),
                VerdictRow.undone_at.is_(None),
            )
        ):
            s.delete(row)


def submit(
    db: StateDB,
    by: Actor,
    queue_id: int,
    sample_id: str,
    verdict: str,
    fixed_answer: str | None = None,
    fixed_reasoning: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Submission:
    """``by``'s verdict on a queue's sample: on their reservation, or on a place still free (an expired reservation
    counts as long as nobody took its place). One verdict per person and sample; the k-th settles or conflicts."""
    where = f"verdict on sample {sample_id!r} in review queue {queue_id}"
    check_verdict(verdict, fixed_answer, fixed_reasoning, where)
    require(by, "fix" if verdict == "fix" else "review")
    now = now or utcnow()
    who = by.who
    try:
        with db.write() as s:
            queue = _queue_in(s, queue_id, open_only=True)
            where = f"verdict on sample {sample_id!r} in review queue {queue.name!r}"
            item = _item_in(s, queue, sample_id)
            if item.settled_at is not None:
                raise StateError(f"{where}: the sample is settled already ({item.settlement}); take the next one")
            rows = s.scalars(
                select(VerdictRow)
                .where(
                    VerdictRow.queue_id == queue_id, VerdictRow.sample_id == sample_id, VerdictRow.undone_at.is_(None)
                )
                .order_by(VerdictRow.id)
            ).all()
            mine = next((r for r in rows if r.who == who), None)
            if mine is not None and mine.submitted_at is not None:
                raise StateError(
                    f"{where}: {who} gave a verdict on it already ({mine.verdict}); undo that verdict to change it"
                )
            others = sum(
                1 for r in rows if r.who != who and (r.submitted_at is not None or _as_utc(r.expires_at) > now)
            )
            if others >= queue.overlap:
                raise StateError(
                    f"{where}: all {queue.overlap} places on it are taken (your reservation, if you had "
                    "one, expired); take the next sample"
                )
            if mine is None:
                mine = VerdictRow(queue_id=queue_id, sample_id=sample_id, who=who, reserved_at=now, expires_at=now)
                s.add(mine)
            mine.verdict, mine.fixed_answer, mine.fixed_reasoning, mine.note = (
                verdict,
                fixed_answer,
                fixed_reasoning,
                note,
            )
            mine.submitted_at = now
            item.n_verdicts += 1
            s.flush()
            entry = write_audit(
                s,
                who=who,
                action="queue_verdict",
                sample_id=sample_id,
                table_name="queue_verdicts",
                row_id=mine.id,
                old=None,
                new=_verdict_fields(mine),
                always=("queue_id", "verdict"),
            )
            submitted = [r for r in rows if r.submitted_at is not None and r is not mine] + [mine]
            outcome: Literal["waiting", "agreed", "conflict"] = "waiting"
            review = None
            if len(submitted) >= queue.overlap:
                result = _agreed(submitted)
                outcome = "conflict" if result is None else "agreed"
                if result is not None:
                    settled_note = f"agreed in queue {queue.name}"
                    review = _settle(s, item, "agreed", who, now, *result, settled_note,
                                     _people([r.who for r in submitted]))
            n, audit_id = len(submitted), entry.id
    except IntegrityError as exc:  # the live-place index: the same person submitting from two tabs at once
        raise StateError(f"{where}: {who} gave a verdict on it already; undo that verdict to change it") from exc
    return Submission(queue_id, sample_id, who, verdict, n, queue.overlap, outcome, audit_id, review)


def _item_in(s: Session, queue: ReviewQueue, sample_id: str) -> QueueItem:
    item = s.scalar(select(QueueItem).where(QueueItem.queue_id == queue.id, QueueItem.sample_id == sample_id))
    if item is None:
        raise StateError(
            f"review queue {queue.name!r}: field 'sample_id' is {sample_id!r}, which is not in this "
            "queue; take samples with next_item"
        )
    return item


def _agreed(verdicts: list[VerdictRow]) -> tuple[str, str | None, str | None] | None:
    """The common (verdict, fixed_answer, fixed_reasoning) when all agree: the same verdict, and for fixes the same
    corrected text, surrounding blanks aside (one review must carry it); None when they disagree."""

    def strip(text: str | None) -> str | None:
        return None if text is None else text.strip()

    results = {(v.verdict or "", strip(v.fixed_answer), strip(v.fixed_reasoning)) for v in verdicts}
    return results.pop() if len(results) == 1 else None


def _people(whos: list[str]) -> str:
    """The k people as the review's reviewer ("ann@x, bob@y"), shortened to fit the column."""
    text = ", ".join(whos)
    for keep in range(len(whos) - 1, 0, -1):
        if len(text) <= _REVIEWER_MAX:
            break
        text = f"{', '.join(whos[:keep])} and {len(whos) - keep} more"
    return text[:_REVIEWER_MAX]


def _settle(
    s: Session,
    item: QueueItem,
    settlement: str,
    by: str,
    now: datetime,
    verdict: str | None,
    fixed_answer: str | None,
    fixed_reasoning: str | None,
    note: str | None,
    reviewer: str,
) -> CurrentReview:
    """Settle ``item`` and write its review, audited as ``by``, in the caller's transaction (both or neither)."""
    item.settled_at, item.settlement, item.settled_by = now, settlement, by
    item.verdict, item.fixed_answer, item.fixed_reasoning, item.note = verdict, fixed_answer, fixed_reasoning, note
    item.reviewer, item.settle_count = reviewer, item.settle_count + 1
    source = f"{SETTLED_SOURCE[settlement]}:{item.queue_id}"
    review = review_in(s, item.sample_id, verdict or "", by, reviewer, fixed_answer, fixed_reasoning, note, source,
                       external_id=f"{source}:{item.sample_id}:{item.settle_count}")
    item.review_id = review.review_id
    return review


def verdicts_visible_to(db: StateDB, by: Actor, queue_id: int, sample_id: str) -> list[QueueVerdict]:
    """The submitted verdicts on a queue's sample that ``by`` may see: in a blind queue none until ``by`` submitted
    on it or it is settled (admins see all); in an open queue all. Oldest first."""
    with db.read() as s:
        queue = _queue_in(s, queue_id)
        rows = s.scalars(
            select(VerdictRow)
            .where(VerdictRow.queue_id == queue_id, VerdictRow.sample_id == sample_id, *_submitted())
            .order_by(VerdictRow.submitted_at, VerdictRow.id)
        ).all()
        if queue.blind and by.role != "admin" and not any(r.who == by.who for r in rows):
            settled = s.scalar(
                select(QueueItem.settled_at).where(QueueItem.queue_id == queue_id, QueueItem.sample_id == sample_id)
            )
            if settled is None:
                return []
        return [to_record(QueueVerdict, r) for r in rows]


# ----------------------------------------------------------------------------------------------- conflicts


def conflicts(db: StateDB, queue_id: int | None = None) -> list[Conflict]:
    """Items whose verdicts are all in and disagree, not adjudicated yet (of one queue, or of all), in queue order."""
    with db.read() as s:
        q = (
            select(QueueItem.queue_id, QueueItem.sample_id, QueueItem.skill)
            .join(ReviewQueue, ReviewQueue.id == QueueItem.queue_id)
            .where(QueueItem.settled_at.is_(None), QueueItem.n_verdicts >= ReviewQueue.overlap)
            .order_by(QueueItem.queue_id, QueueItem.position)
        )
        if queue_id is not None:
            q = q.where(QueueItem.queue_id == queue_id)
        items = s.execute(q).all()
        found = []
        for qid, sid, skill in items:
            rows = s.scalars(
                select(VerdictRow)
                .where(VerdictRow.queue_id == qid, VerdictRow.sample_id == sid, *_submitted())
                .order_by(VerdictRow.id)
            )
            found.append(Conflict(qid, sid, skill, [to_record(QueueVerdict, r) for r in rows]))
        return found


def adjudicate(
    db: StateDB,
    by: Actor,
    queue_id: int,
    sample_id: str,
    verdict: str,
    fixed_answer: str | None = None,
    fixed_reasoning: str | None = None,
    note: str | None = None,
) -> CurrentReview:
    """An admin's decision on a queue's sample whose verdicts are all in (a conflict, or an agreed item the admin
    overrules): the sample's review (source ``adjudication:<queue id>``), and the item is settled."""
    where = f"adjudication of sample {sample_id!r} in review queue {queue_id}"
    check_verdict(verdict, fixed_answer, fixed_reasoning, where)
    require(by, "adjudicate")
    now = utcnow()
    with db.write() as s:
        queue = _queue_in(s, queue_id)
        item = _item_in(s, queue, sample_id)
        if item.settled_at is None and item.n_verdicts < queue.overlap:
            raise StateError(
                f"{where}: only {item.n_verdicts} of its {queue.overlap} verdicts are in; it is no conflict yet"
            )
        return _settle(
            s,
            item,
            "adjudicated",
            by.who,
            now,
            verdict,
            fixed_answer,
            fixed_reasoning,
            note or f"adjudicated in queue {queue.name}",
            by.who,
        )


# ----------------------------------------------------------------------------------------------- undo


def undo_verdict_in(s: Session, entry: AuditEntry, who: str) -> AuditEntry:
    """Take back a queue verdict (its audit entry ``entry``) inside undo's transaction: refused once its item is
    settled (the settled review stands; an admin adjudicates instead)."""
    where = f"undo of audit entry {entry.id}"
    row = s.get(VerdictRow, entry.row_id)
    if row is None:
        raise StateError(f"{where}: queue verdict {entry.row_id} is missing from the state database")
    queue = _queue_in(s, row.queue_id)
    item = _item_in(s, queue, row.sample_id)
    if item.settled_at is not None:
        raise StateError(
            f"{where}: sample {row.sample_id!r} in review queue {queue.name!r} is settled ({item.settlement}), so its "
            "verdicts stand; an admin adjudicates it instead (Team page, or assignment.adjudicate)"
        )
    old = _verdict_fields(row)
    row.undone_at, row.undone_by = utcnow(), who
    item.n_verdicts -= 1
    s.flush()
    return write_audit(
        s,
        who=who,
        action="undo",
        sample_id=row.sample_id,
        table_name="queue_verdicts",
        row_id=row.id,
        old=old,
        new=None,
        always=("queue_id", "verdict"),
        undoes_id=entry.id,
    )


def _verdict_fields(row: VerdictRow) -> dict[str, object]:
    return {k: getattr(row, k) for k in VERDICT_FIELDS}


def _as_utc(dt: datetime) -> datetime:
    return as_utc(dt)  # type: ignore[return-value]  # never None here
