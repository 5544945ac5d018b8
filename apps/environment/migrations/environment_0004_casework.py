"""Casework: on-site inspection records with photos, violations and penalties, complaints
(12345 hotline and others) and the escalations of overdue tasks.

Revision ID: environment_0004
Revises: environment_0003
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "environment_0004"
down_revision: str | None = "environment_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _fk(column: str, target: str, table: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(
        f"env.{target}.id", ondelete=ondelete, name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "inspection_record",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "task_id",
            sa.BigInteger(),
            _fk("task_id", "inspection_task", "inspection_record", "CASCADE"),
            nullable=False,
        ),
        sa.Column("inspector", sa.Text(), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_record")),
        schema="env",
    )
    op.create_index("ix_inspection_record_task_id", "inspection_record", ["task_id"], schema="env")
    op.create_table(
        "record_photo",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "record_id",
            sa.BigInteger(),
            _fk("record_id", "inspection_record", "record_photo", "CASCADE"),
            nullable=False,
        ),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_photo")),
        schema="env",
    )
    op.create_index("ix_record_photo_record_id", "record_photo", ["record_id"], schema="env")
    op.create_table(
        "violation",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "record_id",
            sa.BigInteger(),
            _fk("record_id", "inspection_record", "violation", "CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "enterprise_id",
            sa.Integer(),
            _fk("enterprise_id", "enterprise", "violation", "SET NULL"),
            nullable=True,
        ),
        sa.Column("clause", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("penalty_yuan", sa.Double(), nullable=True),
        sa.Column("state", sa.String(16), server_default=sa.text("'found'"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "state IN ('found', 'decided', 'paid', 'rectified')", name=op.f("ck_violation_state")
        ),
        sa.CheckConstraint(
            "penalty_yuan IS NULL OR penalty_yuan >= 0", name=op.f("ck_violation_penalty_yuan")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_violation")),
        schema="env",
    )
    op.create_index("ix_violation_record_id", "violation", ["record_id"], schema="env")
    op.create_index("ix_violation_enterprise_id", "violation", ["enterprise_id"], schema="env")
    op.create_table(
        "complaint",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "enterprise_id",
            sa.Integer(),
            _fk("enterprise_id", "enterprise", "complaint", "SET NULL"),
            nullable=True,
        ),
        sa.Column("distance_m", sa.Double(), nullable=True),
        sa.Column("candidates", postgresql.JSONB(), nullable=False),
        sa.Column(
            "task_id",
            sa.BigInteger(),
            _fk("task_id", "inspection_task", "complaint", "SET NULL"),
            nullable=True,
        ),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.Geometry("POINT", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source IN ('hotline', 'phone', 'letter', 'visit', 'online')",
            name=op.f("ck_complaint_source"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint")),
        schema="env",
    )
    op.create_index("uq_complaint_ticket_id", "complaint", ["ticket_id"], unique=True, schema="env")
    op.create_index("ix_complaint_received_at", "complaint", ["received_at"], schema="env")
    op.create_index(
        "ix_complaint_geom", "complaint", ["geom"], schema="env", postgresql_using="gist"
    )
    op.create_table(
        "task_escalation",
        sa.Column(
            "task_id",
            sa.BigInteger(),
            _fk("task_id", "inspection_task", "task_escalation", "CASCADE"),
            nullable=False,
        ),
        sa.Column("escalated_on", sa.Date(), nullable=False),
        sa.Column("overdue_hours", sa.Double(), nullable=False),
        sa.Column("assignee", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "escalated_on", name=op.f("pk_task_escalation")),
        schema="env",
    )


def downgrade() -> None:
    for table in ("task_escalation", "complaint", "violation", "record_photo"):
        op.drop_table(table, schema="env")
    op.drop_table("inspection_record", schema="env")
