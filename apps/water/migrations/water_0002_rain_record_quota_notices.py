"""Monthly rain records for SPI, and the quota levels each permit reached in a year.

Revision ID: water_0002
Revises: water_0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "water_0002"
down_revision: str | None = "water_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE water.rain_month (
            gauge_id  varchar(64) NOT NULL,
            month     date NOT NULL,
            mm        double precision NOT NULL,
            source    text NOT NULL,
            CONSTRAINT pk_rain_month PRIMARY KEY (gauge_id, month),
            CONSTRAINT fk_rain_month_gauge_id_device FOREIGN KEY (gauge_id)
                REFERENCES iot.device (id) ON DELETE CASCADE,
            CONSTRAINT ck_rain_month_mm_not_negative CHECK (mm >= 0),
            CONSTRAINT ck_rain_month_month_first_day CHECK (extract(day FROM month) = 1)
        );

        CREATE TABLE water.quota_notice (
            permit_id  varchar(32) NOT NULL,
            year       integer NOT NULL,
            level      smallint NOT NULL,
            used_m3    double precision NOT NULL,
            alarm_id   bigint,
            noted_at   timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_quota_notice PRIMARY KEY (permit_id, year, level),
            CONSTRAINT fk_quota_notice_permit_id_permit FOREIGN KEY (permit_id)
                REFERENCES water.permit (id) ON DELETE CASCADE,
            CONSTRAINT ck_quota_notice_level CHECK (level IN (90, 100))
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE water.quota_notice; DROP TABLE water.rain_month")
