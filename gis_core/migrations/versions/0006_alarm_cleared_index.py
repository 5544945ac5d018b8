"""Recently cleared alarms are found by index.

Every ingest batch looks up the alarms its readings may continue, reopen or clear: the open
ones and those cleared within the reopen window. Without an index on ``cleared_at`` that was a
scan of the whole alarm history per batch (70 ms with a million alarms).

Revision ID: 0006_alarm_cleared_index
Revises: 0005_device_state_hot
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_alarm_cleared_index"
down_revision: str | None = "0005_device_state_hot"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alarm_cleared_at", "alarm", ["cleared_at"], unique=False, schema="iot")


def downgrade() -> None:
    op.drop_index("ix_alarm_cleared_at", table_name="alarm", schema="iot")
