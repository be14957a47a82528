"""The curation-state schema: flags, reviews, audit log, roles, review queues, jobs, Label Studio projects and links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The fixed vocabulary of why a sample is doubtful (the UI, the checks and Label Studio all speak it).
FLAG_REASONS: tuple[str, ...] = (
    "wrong_answer",
    "bad_reasoning",
    "bad_media",
    "missing_media",
    "placeholder_mismatch",
    "bad_geometry",
    "ambiguous",
    "duplicate",
    "contamination",
    "unit_error",
    "other",
)
VERDICTS: tuple[str, ...] = ("approve", "reject", "fix")
JOB_STATES: tuple[str, ...] = ("queued", "running", "completed", "failed", "cancelled")
UNIT_STATES: tuple[str, ...] = ("done", "failed")
AUDIT_ACTIONS: tuple[str, ...] = (
    "flag_added", "flag_removed", "review_added", "undo", "role_granted", "role_revoked", "queue_created",
    "queue_verdict",
)  # fmt: skip
# How a work queue's item was settled: its k verdicts agreed, or an admin decided a conflict.
SETTLEMENTS: tuple[str, ...] = ("agreed", "adjudicated")
# What a signed-in person may do on a shared server (curation/review/roles.py says which role may do what).
ROLES: tuple[str, ...] = ("admin", "curator", "annotator", "viewer")

# Deterministic constraint names, so later migrations can alter them on PostgreSQL and in SQLite batch mode.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp in the state database is UTC."""
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """``dt`` with its UTC zone: SQLite hands back naive datetimes, and everything we store is UTC."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    # A CHECK over a fixed vocabulary instead of a database ENUM type: same SQL on SQLite and PostgreSQL,
    # and adding a value is one batch migration instead of an ALTER TYPE.
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class Flag(Base):
    """A curator's or a check's doubt about one sample; removing it keeps the row (removed_at set)."""

    __tablename__ = "flags"
    __table_args__ = (
        CheckConstraint(_in("reason", FLAG_REASONS), name="reason"),
        Index("ix_flags_sample_reason", "sample_id", "reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(255))
    # 'person' or the id of the check run that raised it.
    source: Mapped[str] = mapped_column(String(255), default="person")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(255))


class Review(Base):
    """One review of a sample; all are kept, the latest (not undone) one per field is the sample's state.

    The original answer and reasoning stay in the catalog; a fix only carries the corrected text.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
        CheckConstraint(
            "verdict <> 'fix' OR fixed_answer IS NOT NULL OR fixed_reasoning IS NOT NULL", name="fix_has_text"
        ),
        CheckConstraint(
            "verdict = 'fix' OR (fixed_answer IS NULL AND fixed_reasoning IS NULL)", name="only_fix_has_text"
        ),
        Index("ix_reviews_sample_id", "sample_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(255))
    verdict: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str] = mapped_column(String(255))
    fixed_answer: Mapped[str | None] = mapped_column(Text)
    fixed_reasoning: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    # 'person', 'labelstudio:<project>', ...
    source: Mapped[str] = mapped_column(String(255), default="person")
    # Id in the source system (e.g. a Label Studio annotation): a repeated pull finds it and adds nothing.
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(255))


class AuditEntry(Base):
    """One change to the curation state: who did what to which sample (none for a role grant), old and new as JSON."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(_in("action", AUDIT_ACTIONS), name="action"),
        Index("ix_audit_log_sample_id", "sample_id", "id"),
        Index("ix_audit_log_who", "who", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    who: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    sample_id: Mapped[str | None] = mapped_column(String(255))  # None: a change to no sample (a role grant)
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[int] = mapped_column(Integer)
    # The changed fields, comma separated (the JSON values hold one key per field).
    field: Mapped[str | None] = mapped_column(String(255))
    old_value: Mapped[Any | None] = mapped_column(JSON)
    new_value: Mapped[Any | None] = mapped_column(JSON)
    # Unique: an event is undone at most once, even when two curators press undo at the same moment.
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("audit_log.id"), unique=True)


class UserRole(Base):
    """The role of one signed-in person (by email, or the proxy's user name); people not listed have the default."""

    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    who: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(255))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewQueue(Base):
    """A work queue over a filter's samples: each is judged by ``overlap`` different people, blind or not."""

    __tablename__ = "review_queues"
    __table_args__ = (
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("reservation_minutes >= 1", name="reservation_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    filter_link: Mapped[str] = mapped_column(Text)  # the Browse link the samples came from (shown, never followed)
    overlap: Mapped[int] = mapped_column(Integer)
    blind: Mapped[bool] = mapped_column(Boolean)
    reservation_minutes: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


_RESERVED = "submitted_at IS NULL AND undone_at IS NULL"
_OPEN = "settled_at IS NULL"
_SUBMITTED = "submitted_at IS NOT NULL AND undone_at IS NULL"


class QueueItem(Base):
    """One sample of a queue at its place in the filter's order; once settled it carries the result its review got."""

    __tablename__ = "queue_items"
    __table_args__ = (
        UniqueConstraint("queue_id", "sample_id"),
        CheckConstraint(_in("settlement", SETTLEMENTS), name="settlement"),
        CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
        CheckConstraint("(settled_at IS NULL) = (settlement IS NULL)", name="settled_has_settlement"),
        CheckConstraint("n_verdicts >= 0", name="n_verdicts_not_negative"),
        # next_item: the open items in queue order are one index range that stops at the first fit. Partial, because
        # PostgreSQL keeps an index's order only past equalities: after `settled_at IS NULL` it would sort them all.
        Index(
            "ix_queue_items_open",
            "queue_id",
            "position",
            sqlite_where=text(_OPEN),
            postgresql_where=text(_OPEN),
        ),
        # Settled items whose review is not written yet (normally none), found without passing the settled ones (a
        # partial index would do, but SQLite without statistics prefers the range of ix_queue_items_open).
        Index("ix_queue_items_unwritten", "queue_id", "review_id", "settled_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("review_queues.id", ondelete="CASCADE"))
    sample_id: Mapped[str] = mapped_column(String(255))
    skill: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    # Submitted verdicts not undone, kept by submit and undo in their transaction: progress, conflicts and next_item
    # read it instead of counting verdicts per item.
    n_verdicts: Mapped[int] = mapped_column(Integer, default=0)
    settled_at: Mapped[datetime | None]
    settlement: Mapped[str | None] = mapped_column(String(16))
    settled_by: Mapped[str | None] = mapped_column(String(255))
    # The settled result, kept until its review is written (and after): the review is written from these.
    verdict: Mapped[str | None] = mapped_column(String(16))
    fixed_answer: Mapped[str | None] = mapped_column(Text)
    fixed_reasoning: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str | None] = mapped_column(String(255))
    settle_count: Mapped[int] = mapped_column(Integer, default=0)  # part of the review's external id
    review_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"))  # None while its review is not written


class QueueVerdict(Base):
    """One person's place on a queue's sample: a reservation until submitted (verdict set), then their verdict."""

    __tablename__ = "queue_verdicts"
    __table_args__ = (
        CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
        CheckConstraint("(verdict IS NULL) = (submitted_at IS NULL)", name="submitted_has_verdict"),
        # Verdicts per person (queue_progress): read from the index alone. Lookups by sample use uq_queue_verdicts_live.
        Index(
            "ix_queue_verdicts_submitted", "queue_id", "who",
            sqlite_where=text(_SUBMITTED), postgresql_where=text(_SUBMITTED),
        ),
        # A person's open reservations (next_item asks on every step): not every verdict they ever gave.
        Index(
            "ix_queue_verdicts_reserved", "queue_id", "who",
            sqlite_where=text(_RESERVED), postgresql_where=text(_RESERVED),
        ),
        # One live place per person and sample (an undone verdict frees it): two tabs of one person cannot both take
        # a place, whatever the interleaving.
        Index(
            "uq_queue_verdicts_live", "queue_id", "sample_id", "who", unique=True,
            sqlite_where=text("undone_at IS NULL"), postgresql_where=text("undone_at IS NULL"),
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("review_queues.id", ondelete="CASCADE"))
    sample_id: Mapped[str] = mapped_column(String(255))
    who: Mapped[str] = mapped_column(String(255))
    verdict: Mapped[str | None] = mapped_column(String(16))
    fixed_answer: Mapped[str | None] = mapped_column(Text)
    fixed_reasoning: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    reserved_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]  # a reservation not submitted by then frees its place (a comparison, no job)
    submitted_at: Mapped[datetime | None]
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(255))


class Job(Base):
    """A background job (check run, export): a state machine queued -> running -> completed|failed|cancelled."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        CheckConstraint("done >= 0", name="done_not_negative"),
        Index("ix_jobs_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    rate: Mapped[float | None] = mapped_column(Float)  # units per second since started_at
    eta_s: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(255))

    units: Mapped[list[JobUnit]] = relationship(back_populates="job", cascade="all, delete-orphan")


class JobUnit(Base):
    """A completion marker for one unit (shard) of a job, so a restarted job skips what is done."""

    __tablename__ = "job_units"
    __table_args__ = (
        UniqueConstraint("job_id", "unit_key"),
        CheckConstraint(_in("state", UNIT_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    unit_key: Mapped[str] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), default="done")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    output_path: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="units")


class LSProject(Base):
    """A Label Studio project we created (its id is Label Studio's)."""

    __tablename__ = "ls_projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))  # e.g. 'review', 'bbox3d'
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LSLink(Base):
    """Which Label Studio task shows which sample: pulls map annotations back by these, never by position."""

    __tablename__ = "ls_links"
    __table_args__ = (
        UniqueConstraint("project_id", "sample_id"),
        UniqueConstraint("project_id", "task_id"),
        Index("ix_ls_links_sample_id", "sample_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("ls_projects.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(Integer)
    sample_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))  # the project's kind, kept here for one-table filters
    pushed_at: Mapped[datetime] = mapped_column(default=utcnow)
