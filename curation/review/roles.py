"""Roles: each person's role in the state database (audited), and require(), the check every write makes first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from curation.review.actors import Actor, person_key
from curation.review.audit import write_audit
from curation.review.errors import StateError, require_text
from db.engine import StateDB, to_record
from db.models import ROLES, UserRole

DEFAULT_ROLE = "viewer"  # a person signed in but not granted anything may look, not write
_WRITERS = ("admin", "curator", "annotator")
_CURATORS = ("admin", "curator")
# What each write needs. Annotators work samples one at a time; curators also act on whole filters and move data in
# and out; admins also hand out roles, assign work and settle conflicts.
ACTIONS: dict[str, tuple[str, ...]] = {
    "flag": _WRITERS,
    "review": _WRITERS,
    "fix": _WRITERS,
    "undo": _WRITERS,
    "bulk": _CURATORS,
    "run_checks": _CURATORS,
    "export": _CURATORS,
    "ls_push": _CURATORS,
    "ls_pull": _CURATORS,
    "assign": ("admin",),
    "adjudicate": ("admin",),
    "grant_role": ("admin",),
}
GRANT_HINT = "an admin grants roles with `python -m curation roles grant WHO ROLE`"


class PermissionDenied(StateError):
    """A write the actor's role does not allow; the message names the person, the role and the role it needs."""


@dataclass(frozen=True)
class RoleRecord:
    who: str
    role: str
    granted_by: str
    granted_at: datetime


def allowed(actor: Actor, action: str) -> bool:
    """Whether ``actor``'s role may do ``action``: pages use it to offer only what the domain layer will accept."""
    return actor.role in ACTIONS[action]


def require(actor: Actor, action: str) -> None:
    """Nothing when ``actor``'s role may do ``action`` (a key of ACTIONS), else PermissionDenied."""
    if not allowed(actor, action):  # a KeyError here is a bug: every write names one of ACTIONS
        raise PermissionDenied(
            f"{actor.who} has the role {actor.role!r}, which may not {action.replace('_', ' ')}: that needs "
            f"{' or '.join(repr(r) for r in ACTIONS[action])}; {GRANT_HINT}"
        )


def role_of(db: StateDB, who: str) -> str:
    """The role granted to ``who`` (an email or the proxy's user name), else DEFAULT_ROLE."""
    with db.read() as s:
        return s.scalar(select(UserRole.role).where(UserRole.who == person_key(who))) or DEFAULT_ROLE


def actor_for(db: StateDB, name: str | None, email: str | None) -> Actor:
    """The signed-in person as an Actor, with the role the state database holds for them."""
    email = person_key(email) if email and email.strip() else None
    shown = (name or email or "").strip()
    require_text(shown, "name", "signed-in identity")
    return Actor(name=shown, email=email, role=role_of(db, email or shown))


def roles(db: StateDB) -> list[RoleRecord]:
    """Everyone with a granted role, by name."""
    with db.read() as s:
        return [to_record(RoleRecord, r) for r in s.scalars(select(UserRole).order_by(UserRole.who))]


def _check_role(role: str, where: str) -> None:
    if role not in ROLES:
        raise StateError(f"{where}: field 'role' is {role!r}; use one of {', '.join(ROLES)}")


def grant_role(db: StateDB, by: Actor, who: str, role: str) -> RoleRecord:
    """Give ``who`` the role ``role`` (replacing any earlier one); only an admin may, and the last admin stays one."""
    where = f"role of {who!r}"
    require_text(who, "who", where)
    _check_role(role, where)
    require(by, "grant_role")
    key = person_key(who)
    with db.write() as s:
        row = s.scalar(select(UserRole).where(UserRole.who == key))
        old = None if row is None else {"who": key, "role": row.role}
        if row is not None and row.role == role:
            return to_record(RoleRecord, row)
        if row is not None and row.role == "admin":
            _keep_an_admin(s, where)
        if row is None:
            row = UserRole(who=key, role=role, granted_by=by.who)
            s.add(row)
        else:
            row.role, row.granted_by = role, by.who
        s.flush()
        write_audit(s, who=by.who, action="role_granted", sample_id=None, table_name="user_roles", row_id=row.id,
                    old=old, new={"who": key, "role": role}, always=("who",))
        return to_record(RoleRecord, row)


def revoke_role(db: StateDB, by: Actor, who: str) -> None:
    """Take ``who``'s granted role away (they are back to DEFAULT_ROLE); only an admin may, the last admin stays."""
    where = f"role of {who!r}"
    require_text(who, "who", where)
    require(by, "grant_role")
    key = person_key(who)
    with db.write() as s:
        row = s.scalar(select(UserRole).where(UserRole.who == key))
        if row is None:
            return
        if row.role == "admin":
            _keep_an_admin(s, where)
        write_audit(s, who=by.who, action="role_revoked", sample_id=None, table_name="user_roles", row_id=row.id,
                    old={"who": key, "role": row.role}, new=None, always=("who",))
        s.delete(row)


def _keep_an_admin(s: Session, where: str) -> None:
    admins = s.scalar(select(func.count()).select_from(UserRole).where(UserRole.role == "admin"))
    if admins <= 1:
        raise StateError(f"{where}: this is the last admin; grant another person 'admin' first")
