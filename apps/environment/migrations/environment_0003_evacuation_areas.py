"""Evacuation areas of the hazmat incidents a plume model opened in dispatch.

Revision ID: environment_0003
Revises: environment_0002
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "environment_0003"
down_revision: str | None = "environment_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evacuation_area",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("threshold_ugm3", sa.Double(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("schools", sa.Integer(), nullable=False),
        sa.Column("hospitals", sa.Integer(), nullable=False),
        sa.Column("stability", sa.String(4), nullable=False),
        sa.Column("release", postgresql.JSONB(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            geoalchemy2.Geometry("MULTIPOLYGON", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evacuation_area")),
        schema="env",
    )
    op.create_index(
        "ix_evacuation_area_incident_id", "evacuation_area", ["incident_id"], schema="env"
    )
    op.create_index(
        "ix_evacuation_area_geom",
        "evacuation_area",
        ["geom"],
        schema="env",
        postgresql_using="gist",
    )


def downgrade() -> None:
    op.drop_table("evacuation_area", schema="env")
