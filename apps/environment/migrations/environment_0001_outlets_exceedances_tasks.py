"""Discharge outlets with their permit limits and HJ 212 logins, exceedance events and
inspection tasks, on the environment application's own branch.

Revision ID: environment_0001
Revises:
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "environment_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("environment",)
depends_on: str | Sequence[str] | None = "0009_road_closures"

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "outlet",
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
        sa.Column(
            "source_id",
            sa.Integer(),
            sa.ForeignKey(
                "env.pollution_source.id",
                ondelete="CASCADE",
                name=op.f("fk_outlet_source_id_pollution_source"),
            ),
            nullable=False,
        ),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name_zh", sa.Text(), nullable=False),
        sa.Column("medium", sa.String(8), nullable=False),
        sa.Column("standard", sa.Text(), nullable=False),
        sa.Column("mn", sa.String(24), nullable=False),
        sa.Column("pw_hash", sa.Text(), nullable=False),
        sa.Column(
            "device_id",
            sa.String(64),
            sa.ForeignKey(
                "iot.device.id", ondelete="SET NULL", name=op.f("fk_outlet_device_id_device")
            ),
            nullable=True,
        ),
        sa.Column(
            "geom",
            geoalchemy2.Geometry("POINT", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("medium IN ('air', 'water')", name=op.f("ck_outlet_medium")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outlet")),
        sa.UniqueConstraint("mn", name=op.f("uq_outlet_mn")),
        schema="env",
    )
    op.create_index("ix_outlet_source_id", "outlet", ["source_id"], schema="env")
    op.create_index("ix_outlet_device_id", "outlet", ["device_id"], schema="env")
    op.create_index("ix_outlet_geom", "outlet", ["geom"], schema="env", postgresql_using="gist")
    op.create_table(
        "outlet_limit",
        sa.Column(
            "outlet_id",
            sa.Integer(),
            sa.ForeignKey(
                "env.outlet.id", ondelete="CASCADE", name=op.f("fk_outlet_limit_outlet_id_outlet")
            ),
            nullable=False,
        ),
        sa.Column("pollutant", sa.String(32), nullable=False),
        sa.Column("limit_value", sa.Double(), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("averaging", sa.String(8), server_default=sa.text("'1h'"), nullable=False),
        sa.Column("o2_reference_pct", sa.Double(), nullable=True),
        sa.Column("standard", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("outlet_id", "pollutant", name=op.f("pk_outlet_limit")),
        schema="env",
    )
    op.create_table(
        "exceedance",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column(
            "outlet_id",
            sa.Integer(),
            sa.ForeignKey(
                "env.outlet.id", ondelete="SET NULL", name=op.f("fk_exceedance_outlet_id_outlet")
            ),
            nullable=True,
        ),
        sa.Column("pollutant", sa.String(32), nullable=False),
        sa.Column("averaging", sa.String(8), nullable=False),
        sa.Column("limit_value", sa.Double(), nullable=False),
        sa.Column("standard", sa.Text(), nullable=False),
        sa.Column("peak_value", sa.Double(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("kind IN ('emission', 'ambient')", name=op.f("ck_exceedance_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exceedance")),
        schema="env",
    )
    op.create_index(
        "uq_exceedance_device_id_pollutant_started_at",
        "exceedance",
        ["device_id", "pollutant", "started_at"],
        unique=True,
        schema="env",
    )
    op.create_index("ix_exceedance_started_at", "exceedance", ["started_at"], schema="env")
    op.create_table(
        "inspection_task",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column(
            "enterprise_id",
            sa.Integer(),
            sa.ForeignKey(
                "env.enterprise.id",
                ondelete="SET NULL",
                name=op.f("fk_inspection_task_enterprise_id_enterprise"),
            ),
            nullable=True,
        ),
        sa.Column(
            "outlet_id",
            sa.Integer(),
            sa.ForeignKey(
                "env.outlet.id",
                ondelete="SET NULL",
                name=op.f("fk_inspection_task_outlet_id_outlet"),
            ),
            nullable=True,
        ),
        sa.Column(
            "exceedance_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "env.exceedance.id",
                ondelete="SET NULL",
                name=op.f("fk_inspection_task_exceedance_id_exceedance"),
            ),
            nullable=True,
        ),
        sa.Column("state", sa.String(16), server_default=sa.text("'open'"), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assignee", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "state IN ('open', 'assigned', 'inspecting', 'reported', 'closed', 'cancelled')",
            name=op.f("ck_inspection_task_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_task")),
        schema="env",
    )
    for column in ("state", "due_at", "enterprise_id", "exceedance_id"):
        op.create_index(f"ix_inspection_task_{column}", "inspection_task", [column], schema="env")


def downgrade() -> None:
    op.drop_table("inspection_task", schema="env")
    op.drop_table("exceedance", schema="env")
    op.drop_table("outlet_limit", schema="env")
    op.drop_table("outlet", schema="env")
