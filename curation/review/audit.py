"""The audit log: one entry per change to a sample's flags or reviews or to a role (who, old and new values)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.engine import StateDB, to_record
from db.models import AuditEntry


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    who: str
    action: str  # flag_added | flag_removed | review_added | undo | role_granted | role_revoked
    sample_id: str | None  # None for a change to no sample (a role grant)
    table_name: str
    row_id: int
    field: str | None
    old_value: Any
    new_value: Any
    undoes_id: int | None


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


def write_audit(
    session: Session,
    *,
    who: str,
    action: str,
    sample_id: str | None,
    table_name: str,
    row_id: int,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    always: Sequence[str] = (),
    undoes_id: int | None = None,
) -> AuditEntry:
    """Add one change's audit entry inside the caller's write transaction (changed fields only, plus ``always``)."""
    entry = AuditEntry(
        **audit_row(
            who=who,
            action=action,
            sample_id=sample_id,
            table_name=table_name,
            row_id=row_id,
            old=old,
            new=new,
            always=always,
            undoes_id=undoes_id,
        )
    )
    session.add(entry)
    session.flush()
    return entry


def audit_row(
    *,
    who: str,
    action: str,
    sample_id: str | None,
    table_name: str,
    row_id: int,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    always: Sequence[str] = (),
    undoes_id: int | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One audit entry's column values (changed fields only, plus ``always``): a bulk action inserts a batch of these
    at once, every one with the batch's ``at`` (curation/review/bulk.py)."""
    field, old_json, new_json = _diff(old, new, always)
    row = {
        "who": who,
        "action": action,
        "sample_id": sample_id,
        "table_name": table_name,
        "row_id": row_id,
        "field": field,
        "old_value": old_json,
        "new_value": new_json,
        "undoes_id": undoes_id,
    }
    return row if at is None else {**row, "at": at}


def history(db: StateDB, sample_id: str) -> list[AuditRecord]:
    """Every change to a sample's flags and reviews, oldest first."""
    with db.read() as s:
        q = select(AuditEntry).where(AuditEntry.sample_id == sample_id).order_by(AuditEntry.id)
        return [to_record(AuditRecord, a) for a in s.scalars(q)]


def table_history(db: StateDB, table_name: str) -> list[AuditRecord]:
    """Every change to one table's rows (e.g. ``user_roles``: who granted which role to whom), oldest first."""
    with db.read() as s:
        q = select(AuditEntry).where(AuditEntry.table_name == table_name).order_by(AuditEntry.id)
        return [to_record(AuditRecord, a) for a in s.scalars(q)]
