"""Roles: the user_roles table; the audit log records role grants (no sample: sample_id may be empty).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIONS_BEFORE = "action IN ('flag_added', 'flag_removed', 'review_added', 'undo')"
_ACTIONS_AFTER = "action IN ('flag_added', 'flag_removed', 'review_added', 'undo', 'role_granted', 'role_revoked')"


def upgrade() -> None:
    op.create_table(
        "user_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("who", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_by", sa.String(length=255), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'curator', 'annotator', 'viewer')", name=op.f("ck_user_roles_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_roles")),
        sa.UniqueConstraint("who", name=op.f("uq_user_roles_who")),
    )
    # SQLite rebuilds the table (batch mode copies the rows); PostgreSQL alters it in place.
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("sample_id", existing_type=sa.String(length=255), nullable=True)
        batch.drop_constraint(op.f("ck_audit_log_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_log_action"), _ACTIONS_AFTER)


def downgrade() -> None:
    # Role grants have no sample and no place in the older log: they go with the table.
    op.execute("DELETE FROM audit_log WHERE action IN ('role_granted', 'role_revoked')")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("ck_audit_log_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_log_action"), _ACTIONS_BEFORE)
        batch.alter_column("sample_id", existing_type=sa.String(length=255), nullable=False)
    op.drop_table("user_roles")
