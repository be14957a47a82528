"""Flags: a curator's or a check's doubt about a sample, for one of the fixed FLAG_REASONS; removing keeps the row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from curation.review.actors import Actor
from curation.review.audit import write_audit
from curation.review.errors import StateError, require_text
from curation.review.roles import require
from db.engine import StateDB, to_record

# FLAG_REASONS is defined with the table's CHECK constraint in db.models; the app and Label Studio read it from here.
from db.models import FLAG_REASONS, AuditEntry, Flag, utcnow

FLAG_FIELDS = ("reason", "note", "who", "source")  # what a flag's audit entries carry


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


def flag_fields(flag: Flag) -> dict[str, Any]:
    """The flag's fields as its audit entries record them."""
    return {k: getattr(flag, k) for k in FLAG_FIELDS}


def check_reason(reason: str, where: str) -> None:
    """A StateError unless ``reason`` is one of FLAG_REASONS."""
    if reason not in FLAG_REASONS:
        raise StateError(f"{where}: field 'reason' is {reason!r}; use one of {', '.join(FLAG_REASONS)}")


def add_flag(
    db: StateDB, sample_id: str, reason: str, note: str | None, by: Actor, source: str = "person",
    flagger: str | None = None,
) -> FlagRecord:
    """Flag a sample as ``by``. The same person (or check run) flagging it again for the same reason gets the same
    flag. ``flagger`` (default by.who) is whose flag it is when ``by`` records someone else's (a Label Studio
    annotator's reject that ``by`` pulled); the audit entry always names by.who."""
    require(by, "flag")
    where = f"flag on sample {sample_id!r}"
    who = by.who if flagger is None else flagger
    require_text(sample_id, "sample_id", where)
    require_text(who, "who", where)
    check_reason(reason, where)
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
            return to_record(FlagRecord, existing)
        flag = Flag(sample_id=sample_id, reason=reason, note=note, who=who, source=source)
        s.add(flag)
        s.flush()
        write_audit(
            s,
            who=by.who,
            action="flag_added",
            sample_id=sample_id,
            table_name="flags",
            row_id=flag.id,
            old=None,
            new=flag_fields(flag),
            always=FLAG_FIELDS,
        )
        return to_record(FlagRecord, flag)


def add_flags(
    db: StateDB,
    sample_ids: Iterable[str],
    reason: str,
    by: Actor,
    source: str = "person",
    note: str | None = None,
    notes: Mapping[str, str | None] | None = None,
) -> int:
    """Flag many samples in one transaction (a check run's failures) as ``by``; returns how many flags were new.

    Samples that already carry an active flag with this reason from this person and ``source`` are skipped.
    ``notes`` gives a per-sample note that overrides ``note``.
    """
    require(by, "flag")
    who = by.who
    require_text(who, "who", "bulk flag")
    check_reason(reason, f"bulk flag by {who!r}")
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
                "field": ",".join(FLAG_FIELDS),
                "old_value": None,
                "new_value": {"reason": reason, "note": fnote, "who": who, "source": source},
            }
            for fid, sid, fnote in ids
        ]
        s.execute(insert(AuditEntry.__table__), audit_rows)
        return len(rows)


def mark_removed(s: Session, flag: Flag, who: str, action: str, undoes_id: int | None = None) -> AuditEntry | None:
    """Remove ``flag`` inside the caller's transaction and audit it as ``action``; None when it was already removed
    (an undo, ``undoes_id`` given, is audited even then)."""
    # Conditional: of two curators removing the same flag at once, one removes it and one finds it gone.
    res = s.execute(
        update(Flag)
        .where(Flag.id == flag.id, Flag.removed_at.is_(None))
        .values(removed_at=utcnow(), removed_by=who)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1 and undoes_id is None:
        return None
    old = flag_fields(flag) if res.rowcount == 1 else None
    return write_audit(
        s,
        who=who,
        action=action,
        sample_id=flag.sample_id,
        table_name="flags",
        row_id=flag.id,
        old=old,
        new=None,
        always=FLAG_FIELDS if old else (),
        undoes_id=undoes_id,
    )


def remove_flag(db: StateDB, flag_id: int, by: Actor) -> FlagRecord:
    """Remove one flag as ``by`` (its row stays, marked removed); removing a removed flag changes nothing."""
    require(by, "flag")
    who = by.who
    require_text(who, "who", f"remove flag {flag_id}")
    with db.write() as s:
        flag = s.get(Flag, flag_id)
        if flag is None:
            raise StateError(f"remove flag: field 'flag_id' is {flag_id}, which is no flag in the state database")
        mark_removed(s, flag, who, "flag_removed")
        s.refresh(flag)
        return to_record(FlagRecord, flag)


def clear_flags(db: StateDB, sample_id: str, by: Actor, reason: str | None = None) -> list[FlagRecord]:
    """Remove every active flag of a sample (or only those with ``reason``) as ``by``; returns the flags removed."""
    require(by, "flag")
    who = by.who
    require_text(who, "who", f"clear flags on sample {sample_id!r}")
    if reason is not None:
        check_reason(reason, f"clear flags on sample {sample_id!r}")
    removed: list[FlagRecord] = []
    with db.write() as s:
        q = select(Flag).where(Flag.sample_id == sample_id, Flag.removed_at.is_(None))
        if reason is not None:
            q = q.where(Flag.reason == reason)
        for flag in s.scalars(q.order_by(Flag.id)).all():
            if mark_removed(s, flag, who, "flag_removed") is not None:
                s.refresh(flag)
                removed.append(to_record(FlagRecord, flag))
    return removed


def flags_for(db: StateDB, sample_id: str, include_removed: bool = False) -> list[FlagRecord]:
    """A sample's flags, oldest first."""
    with db.read() as s:
        q = select(Flag).where(Flag.sample_id == sample_id)
        if not include_removed:
            q = q.where(Flag.removed_at.is_(None))
        return [to_record(FlagRecord, f) for f in s.scalars(q.order_by(Flag.id))]


def active_flags(db: StateDB, sample_ids: Iterable[str]) -> dict[str, list[FlagRecord]]:
    """The active flags of each of these samples (a page of them), oldest first; samples without one are left out."""
    ids = list(dict.fromkeys(sample_ids))
    out: dict[str, list[FlagRecord]] = {}
    with db.read() as s:
        for start in range(0, len(ids), 500):  # bounded IN lists
            q = select(Flag).where(Flag.sample_id.in_(ids[start : start + 500]), Flag.removed_at.is_(None))
            for f in s.scalars(q.order_by(Flag.id)):
                out.setdefault(f.sample_id, []).append(to_record(FlagRecord, f))
    return out
