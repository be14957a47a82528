"""The curation state as plain functions over a StateDB: flags, reviews, undo, history, jobs, Label Studio links.

Rules the functions keep (tests/test_state.py tells them as stories):
- Nothing is deleted: a removed flag keeps its row (removed_at), an undone review keeps its row (undone_at),
  and every change writes one audit entry with the changed fields' old and new values as JSON.
- A sample's review state is the fold of its reviews that are not undone, oldest first: verdict, reviewer,
  source and note come from the latest one; fixed_answer / fixed_reasoning from the latest review that set
  them (last write wins per field), so an approval after a fix approves the fixed text.
- Several curators at once: on SQLite every write transaction is ``BEGIN IMMEDIATE`` (writers queue on
  busy_timeout instead of failing), on PostgreSQL it first takes one transaction-level advisory lock, so
  concurrent flags and reviews all land and the audit keeps each one.
- Jobs move queued -> running -> completed | failed | cancelled by conditional UPDATEs, so two workers never
  claim the same job and a cancelled job cannot be marked completed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TypeVar

import pyarrow as pa
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Engine,
    Integer,
    String,
    Subquery,
    and_,
    cast,
    create_engine,
    event,
    false,
    func,
    insert,
    literal_column,
    not_,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from db.models import (
    FLAG_REASONS,
    VERDICTS,
    AuditEntry,
    Flag,
    Job,
    JobUnit,
    LSLink,
    LSProject,
    Review,
    utcnow,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_IMMEDIATE = "curator_sqlite_immediate"  # execution option: this transaction will write
_PG_MIGRATION_LOCK = 0x5653_5443  # advisory-lock key serialising concurrent `upgrade head` on PostgreSQL
_PG_WRITE_LOCK = 0x5653_5457  # advisory-lock key every PostgreSQL write transaction queues on (see _pg_engine)
STATE_MATCH_KEY = b"curator.state_match"  # schema metadata of state_sample_ids: b"include" | b"exclude"


_R = TypeVar("_R")


class StateError(ValueError):
    """A request the curation state refuses; the message names the sample or row and the field."""


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class FlagRecord:
    id: int
    sample_id: str
    reason: str
    note: str | None
    who: str
    source: str
    created_at: datetime
    removed_at: datetime | None = None
    removed_by: str | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


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
class ReviewState:
    """A sample's current review state (see the module docstring for how reviews fold into it)."""

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


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    who: str
    action: str  # flag_added | flag_removed | review_added | undo
    sample_id: str
    table_name: str
    row_id: int
    field: str | None
    old_value: Any
    new_value: Any
    undoes_id: int | None


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    params: dict[str, Any]
    state: str
    done: int
    total: int | None
    rate: float | None
    eta_s: float | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker_id: str | None

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


@dataclass(frozen=True)
class UnitRecord:
    job_id: int
    unit_key: str
    state: str
    rows: int
    output_path: str | None
    finished_at: datetime


@dataclass(frozen=True)
class LSProjectRecord:
    id: int
    title: str
    kind: str
    url: str | None
    created_at: datetime


@dataclass(frozen=True)
class LSLinkRecord:
    project_id: int
    task_id: int
    sample_id: str
    kind: str
    pushed_at: datetime


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


def _record(cls: type[_R], row: object) -> _R:
    """The dataclass ``cls`` from an ORM row with the same attribute names (timestamps made UTC-aware)."""
    values = {f.name: getattr(row, f.name) for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: _aware(v) if isinstance(v, datetime) else v for k, v in values.items()})


# --------------------------------------------------------------------------------------------- opening


@dataclass
class StateDB:
    """An open state database: one engine, a session factory for reads and one for writes."""

    url: str
    engine: Engine
    _read: sessionmaker[Session]
    _write: sessionmaker[Session]

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success; it holds the write lock (SQLite, PostgreSQL) from its start."""
        with self._write.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _enable_wal(cursor: Any, wait_s: float = 30.0) -> None:
    """Switch the file to WAL, retrying while another process holds it.

    Changing the journal mode needs an exclusive lock and SQLite answers "database is locked" at once, without
    calling the busy handler, when two processes open a fresh file together (one is already migrating). Once
    the file is in WAL mode the pragma is a no-op, so the retry only ever happens on that first open.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _sqlite_engine(db_url: str) -> Engine:
    url = make_url(db_url)
    database = url.database or ""
    memory = database in ("", ":memory:") or "mode=memory" in database or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, else every connection is its own empty DB
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that we can say BEGIN IMMEDIATE (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if not memory:
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails with "database is locked" when another
        # writer committed in between (busy_timeout cannot help); IMMEDIATE takes the lock up front.
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _pg_engine(db_url: str) -> Engine:
    engine = create_engine(db_url, pool_pre_ping=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # PostgreSQL's BEGIN IMMEDIATE: without it two READ COMMITTED writers both pass a read-then-write step
        # (add_flag's "already flagged?", add_review's old/new fold for the audit) and store duplicates or a
        # broken audit chain. One writer at a time, as on SQLite; readers are never blocked.
        if conn.get_execution_options().get(_IMMEDIATE, False):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK})")

    return engine


def _make_engine(db_url: str) -> Engine:
    backend = make_url(db_url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(db_url)
    if backend == "postgresql":
        return _pg_engine(db_url)
    return create_engine(db_url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Run ``alembic upgrade head`` inside one locked transaction, so two processes opening at once are safe."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.execution_options(**{_IMMEDIATE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_state(db_url: str, *, upgrade: bool = True) -> StateDB:
    """Open (creating and migrating as needed) the state database at any SQLAlchemy URL."""
    engine = _make_engine(db_url)
    if upgrade:
        try:
            migrate(engine)
        except Exception:
            engine.dispose()
            raise
    writer = engine.execution_options(**{_IMMEDIATE: True})
    return StateDB(
        url=db_url,
        engine=engine,
        _read=sessionmaker(engine, expire_on_commit=False),
        _write=sessionmaker(writer, expire_on_commit=False),
    )


# --------------------------------------------------------------------------------------------- audit


def _diff(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, always: Sequence[str] = ()
) -> tuple[str | None, dict[str, Any] | None, dict[str, Any] | None]:
    """(field, old_json, new_json) keeping only the keys whose value changed, plus ``always``."""
    old, new = old or {}, new or {}
    keys = [k for k in dict.fromkeys([*old, *new]) if k in always or old.get(k) != new.get(k)]
    if not keys:
        return None, None, None
    old_json = {k: old.get(k) for k in keys} if old else None
    new_json = {k: new.get(k) for k in keys} if new else None
    return ",".join(keys), old_json, new_json


def _audit(
    session: Session,
    *,
    who: str,
    action: str,
    sample_id: str,
    table_name: str,
    row_id: int,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    always: Sequence[str] = (),
    undoes_id: int | None = None,
) -> AuditEntry:
    field, old_json, new_json = _diff(old, new, always)
    entry = AuditEntry(
        who=who,
        action=action,
        sample_id=sample_id,
        table_name=table_name,
        row_id=row_id,
        field=field,
        old_value=old_json,
        new_value=new_json,
        undoes_id=undoes_id,
    )
    session.add(entry)
    session.flush()
    return entry


def _require(value: str | None, what: str, where: str) -> str:
    if not value or not str(value).strip():
        raise StateError(f"{where}: field '{what}' is empty; give a non-empty {what}")
    return value


# --------------------------------------------------------------------------------------------- flags


_FLAG_FIELDS = ("reason", "note", "who", "source")


def _flag_json(f: Flag) -> dict[str, Any]:
    return {k: getattr(f, k) for k in _FLAG_FIELDS}


def _check_reason(reason: str, where: str) -> None:
    if reason not in FLAG_REASONS:
        raise StateError(f"{where}: field 'reason' is {reason!r}; use one of {', '.join(FLAG_REASONS)}")


def add_flag(
    db: StateDB, sample_id: str, reason: str, note: str | None, who: str, source: str = "person"
) -> FlagRecord:
    """Flag a sample. The same person (or check run) flagging it again for the same reason gets the same flag."""
    where = f"flag on sample {sample_id!r}"
    _require(sample_id, "sample_id", where)
    _require(who, "who", where)
    _check_reason(reason, where)
    with db.write() as s:
        existing = s.scalars(
            select(Flag).where(
                Flag.sample_id == sample_id,
                Flag.reason == reason,
                Flag.who == who,
                Flag.source == source,
                Flag.removed_at.is_(None),
            )
        ).first()
        if existing is not None:
            return _record(FlagRecord, existing)
        flag = Flag(sample_id=sample_id, reason=reason, note=note, who=who, source=source)
        s.add(flag)
        s.flush()
        _audit(
            s,
            who=who,
            action="flag_added",
            sample_id=sample_id,
            table_name="flags",
            row_id=flag.id,
            old=None,
            new=_flag_json(flag),
            always=_FLAG_FIELDS,
        )
        return _record(FlagRecord, flag)


def add_flags(
    db: StateDB,
    sample_ids: Iterable[str],
    reason: str,
    who: str,
    source: str = "person",
    note: str | None = None,
    notes: Mapping[str, str | None] | None = None,
) -> int:
    """Flag many samples in one transaction (a check run's failures); returns how many flags were new.

    Samples that already carry an active flag with this reason from this ``who`` and ``source`` are skipped.
    ``notes`` gives a per-sample note that overrides ``note``.
    """
    _require(who, "who", "bulk flag")
    _check_reason(reason, f"bulk flag by {who!r}")
    notes = notes or {}
    mine = (Flag.reason == reason, Flag.who == who, Flag.source == source)
    with db.write() as s:
        have = set(s.scalars(select(Flag.sample_id).where(*mine, Flag.removed_at.is_(None))))
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for sid in sample_ids:
            if sid not in have:
                have.add(sid)
                rows.append(
                    {
                        "sample_id": sid,
                        "reason": reason,
                        "note": notes.get(sid, note),
                        "who": who,
                        "source": source,
                        "created_at": now,
                    }
                )
        if not rows:
            return 0
        # Table-level executemany (no RETURNING, no ORM bookkeeping): several times faster for 100k rows.
        # The batch's ids come back by its exact timestamp, which no other batch from this who/source shares.
        before = s.scalar(select(func.coalesce(func.max(Flag.id), 0)))
        s.execute(insert(Flag.__table__), rows)
        ids = s.execute(
            select(Flag.id, Flag.sample_id, Flag.note).where(*mine, Flag.id > before, Flag.created_at == now)
        )
        audit_rows = [
            {
                "at": now,
                "who": who,
                "action": "flag_added",
                "sample_id": sid,
                "table_name": "flags",
                "row_id": fid,
                "field": ",".join(_FLAG_FIELDS),
                "old_value": None,
                "new_value": {"reason": reason, "note": fnote, "who": who, "source": source},
            }
            for fid, sid, fnote in ids
        ]
        s.execute(insert(AuditEntry.__table__), audit_rows)
        return len(rows)


def _remove(s: Session, flag: Flag, who: str, action: str, undoes_id: int | None = None) -> AuditEntry | None:
    # Conditional: of two curators removing the same flag at once, one removes it and one finds it gone.
    res = s.execute(
        update(Flag)
        .where(Flag.id == flag.id, Flag.removed_at.is_(None))
        .values(removed_at=utcnow(), removed_by=who)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1 and undoes_id is None:
        return None
    old = _flag_json(flag) if res.rowcount == 1 else None
    return _audit(
        s,
        who=who,
        action=action,
        sample_id=flag.sample_id,
        table_name="flags",
        row_id=flag.id,
        old=old,
        new=None,
        always=_FLAG_FIELDS if old else (),
        undoes_id=undoes_id,
    )


def remove_flag(db: StateDB, flag_id: int, who: str) -> FlagRecord:
    """Remove one flag (its row stays, marked removed); removing a removed flag changes nothing."""
    _require(who, "who", f"remove flag {flag_id}")
    with db.write() as s:
        flag = s.get(Flag, flag_id)
        if flag is None:
            raise StateError(f"remove flag: field 'flag_id' is {flag_id}, which is no flag in the state database")
        _remove(s, flag, who, "flag_removed")
        s.refresh(flag)
        return _record(FlagRecord, flag)


def clear_flags(db: StateDB, sample_id: str, who: str, reason: str | None = None) -> list[FlagRecord]:
    """Remove every active flag of a sample (or only those with ``reason``); returns the flags removed."""
    _require(who, "who", f"clear flags on sample {sample_id!r}")
    if reason is not None:
        _check_reason(reason, f"clear flags on sample {sample_id!r}")
    removed: list[FlagRecord] = []
    with db.write() as s:
        q = select(Flag).where(Flag.sample_id == sample_id, Flag.removed_at.is_(None))
        if reason is not None:
            q = q.where(Flag.reason == reason)
        for flag in s.scalars(q.order_by(Flag.id)).all():
            if _remove(s, flag, who, "flag_removed") is not None:
                s.refresh(flag)
                removed.append(_record(FlagRecord, flag))
    return removed


def flags_for(db: StateDB, sample_id: str, include_removed: bool = False) -> list[FlagRecord]:
    """A sample's flags, oldest first."""
    with db.read() as s:
        q = select(Flag).where(Flag.sample_id == sample_id)
        if not include_removed:
            q = q.where(Flag.removed_at.is_(None))
        return [_record(FlagRecord, f) for f in s.scalars(q.order_by(Flag.id))]


# --------------------------------------------------------------------------------------------- reviews

_STATE_FIELDS = ("verdict", "reviewer", "source", "note", "fixed_answer", "fixed_reasoning")


def _fold(sample_id: str, reviews: Sequence[Review]) -> ReviewState | None:
    active = [r for r in reviews if r.undone_at is None]
    if not active:
        return None
    fixed_answer = fixed_reasoning = None
    for r in active:
        fixed_answer = r.fixed_answer if r.fixed_answer is not None else fixed_answer
        fixed_reasoning = r.fixed_reasoning if r.fixed_reasoning is not None else fixed_reasoning
    last = active[-1]
    return ReviewState(
        sample_id=sample_id,
        verdict=last.verdict,
        reviewer=last.reviewer,
        source=last.source,
        note=last.note,
        fixed_answer=fixed_answer,
        fixed_reasoning=fixed_reasoning,
        review_id=last.id,
        reviewed_at=_aware(last.created_at),
        n_reviews=len(active),
    )


def _state_json(state: ReviewState | None) -> dict[str, Any] | None:
    return None if state is None else {k: getattr(state, k) for k in _STATE_FIELDS}


def _reviews_of(s: Session, sample_id: str) -> list[Review]:
    return list(s.scalars(select(Review).where(Review.sample_id == sample_id).order_by(Review.id)))


def add_review(
    db: StateDB,
    sample_id: str,
    verdict: str,
    who: str,
    fixed_answer: str | None = None,
    fixed_reasoning: str | None = None,
    note: str | None = None,
    source: str = "person",
    external_id: str | None = None,
) -> ReviewState:
    """Review a sample (approve / reject / fix with corrected text); returns the sample's new review state.

    ``external_id`` (e.g. ``'ls:<project>:<annotation id>'``) makes the call idempotent: a review with that
    id already stored is not added again.
    """
    where = f"review of sample {sample_id!r}"
    _require(sample_id, "sample_id", where)
    _require(who, "who", where)
    if verdict not in VERDICTS:
        raise StateError(f"{where}: field 'verdict' is {verdict!r}; use one of {', '.join(VERDICTS)}")
    has_text = fixed_answer is not None or fixed_reasoning is not None
    if verdict == "fix" and not has_text:
        raise StateError(f"{where}: verdict 'fix' needs field 'fixed_answer' or 'fixed_reasoning'")
    if verdict != "fix" and has_text:
        raise StateError(f"{where}: fixed_answer / fixed_reasoning given with verdict {verdict!r}; use 'fix'")
    with db.write() as s:
        if external_id is not None and s.scalar(select(Review.id).where(Review.external_id == external_id)):
            return _fold(sample_id, _reviews_of(s, sample_id))  # type: ignore[return-value]
        before = _fold(sample_id, _reviews_of(s, sample_id))
        review = Review(
            sample_id=sample_id,
            verdict=verdict,
            reviewer=who,
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
            return _fold(sample_id, _reviews_of(s, sample_id))  # type: ignore[return-value]
        after = _fold(sample_id, _reviews_of(s, sample_id))
        _audit(
            s,
            who=who,
            action="review_added",
            sample_id=sample_id,
            table_name="reviews",
            row_id=review.id,
            old=_state_json(before),
            new=_state_json(after),
            always=("verdict",),
        )
        return after  # type: ignore[return-value]


def review_for(db: StateDB, sample_id: str) -> ReviewState | None:
    """The sample's current review state, or None when it has no review (or all were undone)."""
    with db.read() as s:
        return _fold(sample_id, _reviews_of(s, sample_id))


def reviews_for(db: StateDB, sample_id: str, include_undone: bool = True) -> list[ReviewRecord]:
    """Every review of a sample, oldest first."""
    with db.read() as s:
        return [_record(ReviewRecord, r) for r in _reviews_of(s, sample_id) if include_undone or r.undone_at is None]


# --------------------------------------------------------------------------------------------- undo / history


def _undo_in(s: Session, entry: AuditEntry, who: str) -> AuditEntry:
    where = f"undo of audit entry {entry.id}"
    if entry.action == "undo":
        raise StateError(f"{where}: it is itself an undo; add the flag or review again instead")
    done = s.scalar(select(AuditEntry.id).where(AuditEntry.undoes_id == entry.id))
    if done is not None:
        raise StateError(f"{where}: already undone by audit entry {done}")
    if entry.table_name == "flags":
        flag = s.get(Flag, entry.row_id)
        if flag is None:
            raise StateError(f"{where}: flag {entry.row_id} is missing from the state database")
        if entry.action == "flag_added":
            undo_entry = _remove(s, flag, who, "undo", undoes_id=entry.id)
        else:  # flag_removed: bring it back
            restored = flag.removed_at is not None
            flag.removed_at, flag.removed_by = None, None
            s.flush()
            undo_entry = _audit(
                s,
                who=who,
                action="undo",
                sample_id=flag.sample_id,
                table_name="flags",
                row_id=flag.id,
                old=None,
                new=_flag_json(flag) if restored else None,
                always=_FLAG_FIELDS if restored else (),
                undoes_id=entry.id,
            )
        assert undo_entry is not None
        return undo_entry
    review = s.get(Review, entry.row_id)
    if review is None:
        raise StateError(f"{where}: review {entry.row_id} is missing from the state database")
    before = _fold(review.sample_id, _reviews_of(s, review.sample_id))
    review.undone_at, review.undone_by = utcnow(), who
    s.flush()
    after = _fold(review.sample_id, _reviews_of(s, review.sample_id))
    return _audit(
        s,
        who=who,
        action="undo",
        sample_id=review.sample_id,
        table_name="reviews",
        row_id=review.id,
        old=_state_json(before),
        new=_state_json(after),
        undoes_id=entry.id,
    )


def undo(db: StateDB, audit_id: int, who: str) -> AuditRecord:
    """Undo one flag / unflag / review event by its audit id; the undo is an audit entry of its own."""
    _require(who, "who", f"undo of audit entry {audit_id}")
    try:
        with db.write() as s:
            entry = s.get(AuditEntry, audit_id)
            if entry is None:
                raise StateError(f"undo: field 'audit_id' is {audit_id}, which is no audit entry")
            return _record(AuditRecord, _undo_in(s, entry, who))
    except IntegrityError as exc:  # the unique undoes_id: someone undid it a moment before us
        raise StateError(f"undo of audit entry {audit_id}: already undone") from exc


def undo_last(db: StateDB, who: str) -> AuditRecord | None:
    """Undo ``who``'s latest event that is not undone yet; None when there is nothing left to undo."""
    undone = select(AuditEntry.undoes_id).where(AuditEntry.undoes_id.is_not(None))
    with db.write() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.who == who, AuditEntry.action != "undo", AuditEntry.id.not_in(undone))
            .order_by(AuditEntry.id.desc())
            .limit(1)
        ).first()
        return None if entry is None else _record(AuditRecord, _undo_in(s, entry, who))


def history(db: StateDB, sample_id: str) -> list[AuditRecord]:
    """Every change to a sample's flags and reviews, oldest first."""
    with db.read() as s:
        q = select(AuditEntry).where(AuditEntry.sample_id == sample_id).order_by(AuditEntry.id)
        return [_record(AuditRecord, a) for a in s.scalars(q)]


# --------------------------------------------------------------------------------------------- jobs


def create_job(db: StateDB, kind: str, params: Mapping[str, Any] | None = None, total: int | None = None) -> JobInfo:
    """Queue a job (params must be JSON-serialisable)."""
    _require(kind, "kind", "new job")
    with db.write() as s:
        job = Job(kind=kind, params=dict(params or {}), total=total)
        s.add(job)
        s.flush()
        return _record(JobInfo, job)


def get_job(db: StateDB, job_id: int) -> JobInfo:
    with db.read() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise StateError(f"job: field 'job_id' is {job_id}, which is no job in the state database")
        return _record(JobInfo, job)


def list_jobs(
    db: StateDB, states: Iterable[str] | None = None, kind: str | None = None, limit: int = 50
) -> list[JobInfo]:
    """Jobs, newest first."""
    with db.read() as s:
        q = select(Job)
        if states is not None:
            q = q.where(Job.state.in_(list(states)))
        if kind is not None:
            q = q.where(Job.kind == kind)
        return [_record(JobInfo, j) for j in s.scalars(q.order_by(Job.id.desc()).limit(limit))]


def claim_next_job(db: StateDB, worker_id: str, kinds: Iterable[str] | None = None) -> JobInfo | None:
    """Atomically take the oldest queued job for this worker; None when the queue is empty."""
    _require(worker_id, "worker_id", "claim job")
    kinds = list(kinds) if kinds is not None else None
    while True:
        with db.write() as s:
            q = select(Job.id).where(Job.state == "queued")
            if kinds is not None:
                q = q.where(Job.kind.in_(kinds))
            job_id = s.scalar(q.order_by(Job.id).limit(1))
            if job_id is None:
                return None
            now = utcnow()
            # Only one UPDATE can move it out of 'queued'; a worker that loses the race tries the next job.
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "queued")
                .values(
                    state="running",
                    worker_id=worker_id,
                    started_at=now,
                    heartbeat_at=now,
                    finished_at=None,
                    error=None,
                    rate=None,
                    eta_s=None,
                )
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 1:
                job = s.scalars(select(Job).where(Job.id == job_id).execution_options(populate_existing=True)).one()
                return _record(JobInfo, job)


def _set_if(db: StateDB, job_id: int, states: tuple[str, ...], **values: Any) -> bool:
    with db.write() as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(states))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def update_progress(db: StateDB, job_id: int, done: int, total: int | None = None) -> bool:
    """Record progress (and a heartbeat) of a running job; False means it is no longer running: stop."""
    now = utcnow()
    with db.write() as s:
        row = s.execute(select(Job.started_at, Job.total).where(Job.id == job_id, Job.state == "running")).first()
        if row is None:
            return False
        started, known_total = _aware(row.started_at), total if total is not None else row.total
        elapsed = (now - started).total_seconds() if started else 0.0
        rate = done / elapsed if elapsed > 0 else None
        eta = (known_total - done) / rate if rate and known_total is not None else None
        values: dict[str, Any] = {"done": done, "heartbeat_at": now, "rate": rate, "eta_s": eta}
        if total is not None:
            values["total"] = total
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "running")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def heartbeat(db: StateDB, job_id: int) -> bool:
    """Tell watchers the worker is alive during a long unit; False means the job is no longer running."""
    return _set_if(db, job_id, ("running",), heartbeat_at=utcnow())


def finish_job(db: StateDB, job_id: int) -> bool:
    """running -> completed; False when the job was cancelled (or failed) meanwhile."""
    return _set_if(db, job_id, ("running",), state="completed", finished_at=utcnow(), eta_s=0.0)


def fail_job(db: StateDB, job_id: int, error: str) -> bool:
    """queued|running -> failed, keeping the error text for the UI."""
    return _set_if(db, job_id, ("queued", "running"), state="failed", error=error, finished_at=utcnow())


def cancel_job(db: StateDB, job_id: int) -> bool:
    """queued|running -> cancelled; a running worker sees it through update_progress / is_cancelled."""
    return _set_if(db, job_id, ("queued", "running"), state="cancelled", finished_at=utcnow(), eta_s=None)


def is_cancelled(db: StateDB, job_id: int) -> bool:
    with db.read() as s:
        return s.scalar(select(Job.state).where(Job.id == job_id)) == "cancelled"


def requeue_stale_jobs(db: StateDB, older_than_s: float, now: datetime | None = None) -> list[int]:
    """Put running jobs whose heartbeat is older than ``older_than_s`` back in the queue (their worker died).

    Units already marked done stay done, so the next worker resumes where the dead one stopped.
    """
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_s)
    with db.write() as s:
        ids = list(s.scalars(select(Job.id).where(Job.state == "running", Job.heartbeat_at < cutoff)))
        if ids:
            s.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.state == "running")
                .values(state="queued", worker_id=None, rate=None, eta_s=None)
                .execution_options(synchronize_session=False)
            )
        return ids


def requeue_job(db: StateDB, job_id: int, worker_id: str) -> bool:
    """running -> queued when the worker holding it stops (SIGTERM); its done units stay done. False when the job is
    no longer this worker's (cancelled, or re-queued as stale and claimed by another)."""
    with db.write() as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "running", Job.worker_id == worker_id)
            .values(state="queued", worker_id=None, rate=None, eta_s=None)
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1


def mark_unit_done(db: StateDB, job_id: int, unit_key: str, rows: int = 0, output_path: str | None = None) -> None:
    """Leave the completion marker of one unit (shard) of a job; marking it again updates the marker."""
    values = {"state": "done", "rows": rows, "output_path": output_path, "finished_at": utcnow()}
    with db.write() as s:
        res = s.execute(
            update(JobUnit)
            .where(JobUnit.job_id == job_id, JobUnit.unit_key == unit_key)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0:
            try:
                with s.begin_nested():
                    s.execute(insert(JobUnit).values(job_id=job_id, unit_key=unit_key, **values))
            except IntegrityError as exc:
                if s.get(Job, job_id) is None:
                    raise StateError(f"unit {unit_key!r}: field 'job_id' is {job_id}, which is no job") from exc
                # Same unit marked by someone else in the meantime: keep ours (last write wins).
                s.execute(
                    update(JobUnit)
                    .where(JobUnit.job_id == job_id, JobUnit.unit_key == unit_key)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )


def done_units(db: StateDB, job_id: int) -> dict[str, UnitRecord]:
    """The units of a job that are done, by unit key."""
    with db.read() as s:
        q = select(JobUnit).where(JobUnit.job_id == job_id, JobUnit.state == "done")
        return {u.unit_key: _record(UnitRecord, u) for u in s.scalars(q)}


# --------------------------------------------------------------------------------------------- Label Studio


def record_project(db: StateDB, project_id: int, title: str, kind: str, url: str | None = None) -> LSProjectRecord:
    """Remember a Label Studio project (created or found); recording it again updates title, kind and url."""
    with db.write() as s:
        project = s.get(LSProject, project_id)
        if project is None:
            project = LSProject(id=project_id, title=title, kind=kind, url=url)
            s.add(project)
        else:
            project.title, project.kind, project.url = title, kind, url
        s.flush()
        return _record(LSProjectRecord, project)


def list_projects(db: StateDB, kind: str | None = None) -> list[LSProjectRecord]:
    with db.read() as s:
        q = select(LSProject)
        if kind is not None:
            q = q.where(LSProject.kind == kind)
        return [_record(LSProjectRecord, p) for p in s.scalars(q.order_by(LSProject.id))]


def record_links(db: StateDB, project_id: int, links: Mapping[str, int] | Iterable[tuple[str, int]]) -> int:
    """Record pushed tasks as sample_id -> task_id for a recorded project; returns how many links were new.

    A sample pushed again to the same project points at its newest task.
    """
    pairs = list(links.items()) if isinstance(links, Mapping) else list(links)
    with db.write() as s:
        project = s.get(LSProject, project_id)
        if project is None:
            raise StateError(f"links: field 'project_id' is {project_id}, not a recorded project; record_project first")
        existing = {link.sample_id: link for link in s.scalars(select(LSLink).where(LSLink.project_id == project_id))}
        now = utcnow()
        new_rows: list[dict[str, Any]] = []
        for sample_id, task_id in pairs:
            link = existing.get(sample_id)
            if link is None:
                new_rows.append(
                    {
                        "project_id": project_id,
                        "task_id": int(task_id),
                        "sample_id": sample_id,
                        "kind": project.kind,
                        "pushed_at": now,
                    }
                )
            elif link.task_id != int(task_id):
                link.task_id, link.pushed_at = int(task_id), now
        s.flush()
        if new_rows:
            s.execute(insert(LSLink), new_rows)
        return len(new_rows)


def links_for_project(db: StateDB, project_id: int) -> list[LSLinkRecord]:
    with db.read() as s:
        q = select(LSLink).where(LSLink.project_id == project_id).order_by(LSLink.task_id)
        return [_record(LSLinkRecord, link) for link in s.scalars(q)]


def links_for_sample(db: StateDB, sample_id: str) -> list[LSLinkRecord]:
    with db.read() as s:
        q = select(LSLink).where(LSLink.sample_id == sample_id).order_by(LSLink.project_id)
        return [_record(LSLinkRecord, link) for link in s.scalars(q)]


# --------------------------------------------------------------------------------------------- state as Arrow


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
        _check_reason(r, "state filter")
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
    schema = pa.schema(
        [("sample_id", pa.string())], metadata={STATE_MATCH_KEY: b"exclude" if blank_passes else b"include"}
    )
    return pa.Table.from_arrays([pa.array(ids, pa.string())], schema=schema)


def state_version(db: StateDB) -> tuple[int, int]:
    """Changes whenever a flag or review changes (audit count and last id): cache state_table by it."""
    with db.engine.connect() as conn:
        n, last = conn.execute(select(func.count(), func.coalesce(func.max(AuditEntry.id), 0))).one()
        return int(n), int(last)


def state_filter_excludes(table: pa.Table) -> bool:
    """True when a state_sample_ids result lists samples to drop rather than samples to keep."""
    return (table.schema.metadata or {}).get(STATE_MATCH_KEY) == b"exclude"
