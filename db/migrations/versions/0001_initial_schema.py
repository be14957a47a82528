"""Initial schema: flags, reviews, audit log, jobs, job units, Label Studio projects and links.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("sample_id", sa.String(length=255), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=True),
        sa.Column("old_value", sa.JSON(), nullable=True),
        sa.Column("new_value", sa.JSON(), nullable=True),
        sa.Column("undoes_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "action IN ('flag_added', 'flag_removed', 'review_added', 'undo')", name=op.f("ck_audit_log_action")
        ),
        sa.ForeignKeyConstraint(["undoes_id"], ["audit_log.id"], name=op.f("fk_audit_log_undoes_id_audit_log")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("undoes_id", name=op.f("uq_audit_log_undoes_id")),
    )
    op.create_index("ix_audit_log_sample_id", "audit_log", ["sample_id", "id"])
    op.create_index("ix_audit_log_who", "audit_log", ["who", "id"])

    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("who", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "reason IN ('wrong_answer', 'bad_reasoning', 'bad_media', 'missing_media', 'placeholder_mismatch', 'bad_geometry', 'ambiguous', 'duplicate', 'contamination', 'unit_error', 'other')",
            name=op.f("ck_flags_reason"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
    )
    op.create_index("ix_flags_sample_reason", "flags", ["sample_id", "reason"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'completed', 'failed', 'cancelled')", name=op.f("ck_jobs_state")
        ),
        sa.CheckConstraint("done >= 0", name=op.f("ck_jobs_done_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"])

    op.create_table(
        "ls_projects",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_projects")),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=255), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("fixed_answer", sa.Text(), nullable=True),
        sa.Column("fixed_reasoning", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "verdict <> 'fix' OR fixed_answer IS NOT NULL OR fixed_reasoning IS NOT NULL",
            name=op.f("ck_reviews_fix_has_text"),
        ),
        sa.CheckConstraint(
            "verdict = 'fix' OR (fixed_answer IS NULL AND fixed_reasoning IS NULL)",
            name=op.f("ck_reviews_only_fix_has_text"),
        ),
        sa.CheckConstraint("verdict IN ('approve', 'reject', 'fix')", name=op.f("ck_reviews_verdict")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("external_id", name=op.f("uq_reviews_external_id")),
    )
    op.create_index("ix_reviews_sample_id", "reviews", ["sample_id", "id"])

    op.create_table(
        "job_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("unit_key", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("output_path", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('done', 'failed')", name=op.f("ck_job_units_state")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_units_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_units")),
        sa.UniqueConstraint("job_id", "unit_key", name=op.f("uq_job_units_job_id_unit_key")),
    )
    op.create_table(
        "ls_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["ls_projects.id"], name=op.f("fk_ls_links_project_id_ls_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_links")),
        sa.UniqueConstraint("project_id", "sample_id", name=op.f("uq_ls_links_project_id_sample_id")),
        sa.UniqueConstraint("project_id", "task_id", name=op.f("uq_ls_links_project_id_task_id")),
    )
    op.create_index("ix_ls_links_sample_id", "ls_links", ["sample_id"])


def downgrade() -> None:
    op.drop_index("ix_ls_links_sample_id", table_name="ls_links")

    op.drop_table("ls_links")
    op.drop_table("job_units")
    op.drop_index("ix_reviews_sample_id", table_name="reviews")

    op.drop_table("reviews")
    op.drop_table("ls_projects")
    op.drop_index("ix_jobs_state_id", table_name="jobs")

    op.drop_table("jobs")
    op.drop_index("ix_flags_sample_reason", table_name="flags")

    op.drop_table("flags")
    op.drop_index("ix_audit_log_who", table_name="audit_log")
    op.drop_index("ix_audit_log_sample_id", table_name="audit_log")

    op.drop_table("audit_log")
