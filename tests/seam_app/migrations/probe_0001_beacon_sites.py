"""The seam probe's table, on a branch of its own.

Revision ID: probe_0001
Revises:
"""

from collections.abc import Sequence

from alembic import op

revision: str = "probe_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("seam_probe",)
depends_on: str | Sequence[str] | None = "0010_login_throttle"


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS probe")
    op.execute(
        "CREATE TABLE probe.beacon_site (id integer PRIMARY KEY, name_zh text,"
        " geom geometry(Point, 4326))"
    )
    op.execute(
        "INSERT INTO probe.beacon_site VALUES"
        " (1, '一号信标', ST_SetSRID(ST_MakePoint(113.1, 36.2), 4326))"
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA probe CASCADE")
