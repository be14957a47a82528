"""Review queues: queues over a filter with overlap, their items and each person's reservation or verdict; the audit
log records a queue's creation and each verdict.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIONS_BEFORE = "action IN ('flag_added', 'flag_removed', 'review_added', 'undo', 'role_granted', 'role_revoked')"
_ACTIONS_AFTER = (
    "action IN ('flag_added', 'flag_removed', 'review_added', 'undo', 'role_granted', 'role_revoked', "
    "'queue_created', 'queue_verdict')"
)
_VERDICT = "verdict IN ('approve', 'reject', 'fix')"
_LIVE = "undone_at IS NULL"
_RESERVED = "submitted_at IS NULL AND undone_at IS NULL"
_OPEN = "settled_at IS NULL"
_SUBMITTED = "submitted_at IS NOT NULL AND undone_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "review_queues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("filter_link", sa.Text(), nullable=False),
        sa.Column("overlap", sa.Integer(), nullable=False),
        sa.Column("blind", sa.Boolean(), nullable=False),
        sa.Column("reservation_minutes", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("overlap >= 1", name=op.f("ck_review_queues_overlap_positive")),
        sa.CheckConstraint("reservation_minutes >= 1", name=op.f("ck_review_queues_reservation_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_queues")),
        sa.UniqueConstraint("name", name=op.f("uq_review_queues_name")),
    )
    op.create_table(
        "queue_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=255), nullable=False),
        sa.Column("skill", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("n_verdicts", sa.Integer(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settlement", sa.String(length=16), nullable=True),
        sa.Column("settled_by", sa.String(length=255), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("fixed_answer", sa.Text(), nullable=True),
        sa.Column("fixed_reasoning", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=255), nullable=True),
        sa.Column("settle_count", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("settlement IN ('agreed', 'adjudicated')", name=op.f("ck_queue_items_settlement")),
        sa.CheckConstraint(_VERDICT, name=op.f("ck_queue_items_verdict")),
        sa.CheckConstraint("n_verdicts >= 0", name=op.f("ck_queue_items_n_verdicts_not_negative")),
        sa.CheckConstraint(
            "(settled_at IS NULL) = (settlement IS NULL)", name=op.f("ck_queue_items_settled_has_settlement")
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["review_queues.id"], name=op.f("fk_queue_items_queue_id_review_queues"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"], name=op.f("fk_queue_items_review_id_reviews")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_items")),
        sa.UniqueConstraint("queue_id", "sample_id", name=op.f("uq_queue_items_queue_id_sample_id")),
    )
    op.create_index(
        "ix_queue_items_open", "queue_items", ["queue_id", "position"],
        sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN),
    )  # fmt: skip
    op.create_index("ix_queue_items_unwritten", "queue_items", ["queue_id", "review_id", "settled_at"])
    op.create_table(
        "queue_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=255), nullable=False),
        sa.Column("who", sa.String(length=255), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("fixed_answer", sa.Text(), nullable=True),
        sa.Column("fixed_reasoning", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint(_VERDICT, name=op.f("ck_queue_verdicts_verdict")),
        sa.CheckConstraint(
            "(verdict IS NULL) = (submitted_at IS NULL)", name=op.f("ck_queue_verdicts_submitted_has_verdict")
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["review_queues.id"], name=op.f("fk_queue_verdicts_queue_id_review_queues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_verdicts")),
    )  # fmt: skip
    op.create_index(
        "ix_queue_verdicts_submitted", "queue_verdicts", ["queue_id", "who"],
        sqlite_where=sa.text(_SUBMITTED), postgresql_where=sa.text(_SUBMITTED),
    )  # fmt: skip
    op.create_index(
        "ix_queue_verdicts_reserved", "queue_verdicts", ["queue_id", "who"],
        sqlite_where=sa.text(_RESERVED), postgresql_where=sa.text(_RESERVED),
    )  # fmt: skip
    op.create_index(
        "uq_queue_verdicts_live", "queue_verdicts", ["queue_id", "sample_id", "who"], unique=True,
        sqlite_where=sa.text(_LIVE), postgresql_where=sa.text(_LIVE),
    )  # fmt: skip
    # SQLite rebuilds the table (batch mode copies the rows); PostgreSQL alters it in place.
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("ck_audit_log_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_log_action"), _ACTIONS_AFTER)


def downgrade() -> None:
    # Queue events have no place in the older log: they go with the queues. The reviews a queue settled stay.
    op.execute("DELETE FROM audit_log WHERE undoes_id IN (SELECT id FROM audit_log WHERE action = 'queue_verdict')")
    op.execute("DELETE FROM audit_log WHERE action IN ('queue_created', 'queue_verdict')")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(op.f("ck_audit_log_action"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_log_action"), _ACTIONS_BEFORE)
    op.drop_table("queue_verdicts")
    op.drop_table("queue_items")
    op.drop_table("review_queues")
