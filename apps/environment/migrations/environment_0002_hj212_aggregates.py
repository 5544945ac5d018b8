"""The data loggers' own hourly and daily statistics (HJ 212 CN 2061 and 2031).

Revision ID: environment_0002
Revises: environment_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "environment_0002"
down_revision: str | None = "environment_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hj212_aggregate",
        sa.Column(
            "outlet_id",
            sa.Integer(),
            sa.ForeignKey(
                "env.outlet.id",
                ondelete="CASCADE",
                name=op.f("fk_hj212_aggregate_outlet_id_outlet"),
            ),
            nullable=False,
        ),
        sa.Column("cn", sa.String(4), nullable=False),
        sa.Column("data_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("factors", postgresql.JSONB(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("outlet_id", "cn", "data_time", name=op.f("pk_hj212_aggregate")),
        schema="env",
    )


def downgrade() -> None:
    op.drop_table("hj212_aggregate", schema="env")
