"""Reviews: approve / reject / fix a sample; all are kept, and their fold is the sample's CurrentReview.

A sample's current review is the fold of its reviews that are not undone, oldest first: verdict, reviewer, source
and note come from the latest one; fixed_answer / fixed_reasoning from the latest review that set them (last
write wins per field), so an approval after a fix approves the fixed text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curation.review.actors import Actor
from curation.review.audit import write_audit
from curation.review.errors import StateError, require_text
from curation.review.roles import require
from db.engine import StateDB, to_record
from db.models import VERDICTS, Review, as_utc

CURRENT_REVIEW_FIELDS = ("verdict", "reviewer", "source", "note", "fixed_answer", "fixed_reasoning")  # audited


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    sample_id: str
    verdict: str
    reviewer: str
    fixed_answer: str | None
    fixed_reasoning: str | None
    note: str | None
    source: str
    external_id: str | None
    created_at: datetime
    undone_at: datetime | None = None
    undone_by: str | None = None


@dataclass(frozen=True)
class CurrentReview:
    """A sample's current review: its reviews that are not undone, folded (see the module docstring)."""

    sample_id: str
    verdict: str
    reviewer: str
    source: str
    note: str | None
    fixed_answer: str | None
    fixed_reasoning: str | None
    review_id: int  # the latest review that is not undone
    reviewed_at: datetime
    n_reviews: int

    @property
    def fixed(self) -> bool:
        return self.fixed_answer is not None or self.fixed_reasoning is not None


def fold_reviews(sample_id: str, reviews: Sequence[Review]) -> CurrentReview | None:
    """The current review from a sample's reviews (oldest first); None when every one is undone (or none exist)."""
    active = [r for r in reviews if r.undone_at is None]
    if not active:
        return None
    fixed_answer = fixed_reasoning = None
    for r in active:
        fixed_answer = r.fixed_answer if r.fixed_answer is not None else fixed_answer
        fixed_reasoning = r.fixed_reasoning if r.fixed_reasoning is not None else fixed_reasoning
    last = active[-1]
    return CurrentReview(
        sample_id=sample_id,
        verdict=last.verdict,
        reviewer=last.reviewer,
        source=last.source,
        note=last.note,
        fixed_answer=fixed_answer,
        fixed_reasoning=fixed_reasoning,
        review_id=last.id,
        reviewed_at=as_utc(last.created_at),
        n_reviews=len(active),
    )


def current_review_fields(current: CurrentReview | None) -> dict[str, Any] | None:
    """The current review's fields as audit entries record them."""
    return None if current is None else {k: getattr(current, k) for k in CURRENT_REVIEW_FIELDS}


def reviews_of(s: Session, sample_id: str) -> list[Review]:
    """A sample's review rows, oldest first, inside the caller's session."""
    return list(s.scalars(select(Review).where(Review.sample_id == sample_id).order_by(Review.id)))


def check_verdict(verdict: str, fixed_answer: str | None, fixed_reasoning: str | None, where: str) -> None:
    """A StateError unless ``verdict`` is one of VERDICTS and fixed text comes exactly with 'fix'."""
    if verdict not in VERDICTS:
        raise StateError(f"{where}: field 'verdict' is {verdict!r}; use one of {', '.join(VERDICTS)}")
    has_text = fixed_answer is not None or fixed_reasoning is not None
    if verdict == "fix" and not has_text:
        raise StateError(f"{where}: verdict 'fix' needs field 'fixed_answer' or 'fixed_reasoning'")
    if verdict != "fix" and has_text:
        raise StateError(f"{where}: fixed_answer / fixed_reasoning given with verdict {verdict!r}; use 'fix'")


def add_review(
    db: StateDB,
    sample_id: str,
    verdict: str,
    by: Actor,
    fixed_answer: str | None = None,
    fixed_reasoning: str | None = None,
    note: str | None = None,
    source: str = "person",
    external_id: str | None = None,
    reviewer: str | None = None,
) -> CurrentReview:
    """Review a sample as ``by`` (approve / reject / fix with corrected text); returns its new current review.

    ``reviewer`` (default ``by.who``) is whose verdict it is when ``by`` records someone else's (a Label Studio
    annotation ``by`` pulled, a review queue's consensus); the audit entry names ``by``.
    ``external_id`` (e.g. ``'ls:<project>:<annotation id>'``) makes the call idempotent: a review with that
    id already stored is not added again.
    """
    require(by, "fix" if verdict == "fix" else "review")
    where = f"review of sample {sample_id!r}"
    who = by.who
    reviewer = who if reviewer is None else reviewer
    require_text(sample_id, "sample_id", where)
    require_text(who, "who", where)
    require_text(reviewer, "reviewer", where)
    check_verdict(verdict, fixed_answer, fixed_reasoning, where)
    with db.write() as s:
        return review_in(s, sample_id, verdict, who, reviewer, fixed_answer, fixed_reasoning, note, source,
                         external_id)


def review_in(
    s: Session,
    sample_id: str,
    verdict: str,
    who: str,
    reviewer: str,
    fixed_answer: str | None,
    fixed_reasoning: str | None,
    note: str | None,
    source: str,
    external_id: str | None,
) -> CurrentReview:
    """Store a review inside the caller's write transaction, audited as ``who``: add_review's step once it checked
    the role and the fields, and a review queue's, which settles an item and writes its review in one transaction."""
    if external_id is not None and s.scalar(select(Review.id).where(Review.external_id == external_id)):
        return fold_reviews(sample_id, reviews_of(s, sample_id))  # type: ignore[return-value]
    before = fold_reviews(sample_id, reviews_of(s, sample_id))
    review = Review(
        sample_id=sample_id,
        verdict=verdict,
        reviewer=reviewer,
        fixed_answer=fixed_answer,
        fixed_reasoning=fixed_reasoning,
        note=note,
        source=source,
        external_id=external_id,
    )
    try:
        with s.begin_nested():
            s.add(review)
            s.flush()
    except IntegrityError:
        # Another pull stored the same external review between our check and our insert.
        return fold_reviews(sample_id, reviews_of(s, sample_id))  # type: ignore[return-value]
    after = fold_reviews(sample_id, reviews_of(s, sample_id))
    write_audit(
        s,
        who=who,
        action="review_added",
        sample_id=sample_id,
        table_name="reviews",
        row_id=review.id,
        old=current_review_fields(before),
        new=current_review_fields(after),
        always=("verdict",),
    )
    return after  # type: ignore[return-value]


def review_for(db: StateDB, sample_id: str) -> CurrentReview | None:
    """The sample's current review, or None when it has no review (or all were undone)."""
    with db.read() as s:
        return fold_reviews(sample_id, reviews_of(s, sample_id))


def reviews_for(db: StateDB, sample_id: str, include_undone: bool = True) -> list[ReviewRecord]:
    """Every review of a sample, oldest first."""
    with db.read() as s:
        return [to_record(ReviewRecord, r) for r in reviews_of(s, sample_id) if include_undone or r.undone_at is None]


def stored_external_ids(db: StateDB, external_ids: Iterable[str]) -> set[str]:
    """Which of these external ids (e.g. pulled Label Studio annotations) a stored review already carries."""
    ids = list(external_ids)
    stored: set[str] = set()
    with db.read() as s:
        for start in range(0, len(ids), 500):  # bounded IN lists
            part = ids[start : start + 500]
            stored.update(s.scalars(select(Review.external_id).where(Review.external_id.in_(part))))
    return stored


def reviewed_samples_by_source(db: StateDB, source_like: str) -> dict[str, int]:
    """Distinct samples with a live (not undone) review, per review source matching the SQL LIKE ``source_like``."""
    with db.read() as s:
        rows = s.execute(
            select(Review.source, func.count(func.distinct(Review.sample_id)))
            .where(Review.source.like(source_like), Review.undone_at.is_(None))
            .group_by(Review.source)
        ).all()
    return {source: int(n) for source, n in rows}


def current_reviews(db: StateDB, sample_ids: Iterable[str]) -> dict[str, CurrentReview]:
    """The current review of each of these samples (a page of them); samples without one are left out."""
    ids = list(dict.fromkeys(sample_ids))
    rows: dict[str, list[Review]] = {}
    with db.read() as s:
        for start in range(0, len(ids), 500):  # bounded IN lists
            q = select(Review).where(Review.sample_id.in_(ids[start : start + 500])).order_by(Review.id)
            for r in s.scalars(q):
                rows.setdefault(r.sample_id, []).append(r)
        folded = {sid: fold_reviews(sid, rs) for sid, rs in rows.items()}
    return {sid: c for sid, c in folded.items() if c is not None}
