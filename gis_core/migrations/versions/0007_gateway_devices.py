"""Gateways are registered devices, and each device may name the gateway it sits behind.

A gateway batch (``cz/v1/gateway/{id}/telemetry``) used to be trusted for whatever device ids
its body named, so any login could write any device's readings through it. Now a gateway is a
device of kind ``gateway`` and speaks only for the devices whose ``gateway_id`` is its id.

Revision ID: 0007_gateway_devices
Revises: 0006_alarm_cleared_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_gateway_devices"
down_revision: str | None = "0006_alarm_cleared_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("vehicle", "air", "water_level", "rain", "soil", "water_quality", "emission", "signal")


def _known_kind(kinds: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_device_known_kind"), "device", schema="iot", type_="check")
    op.create_check_constraint(
        op.f("ck_device_known_kind"),
        "device",
        "kind IN (" + ",".join(f"'{k}'" for k in kinds) + ")",
        schema="iot",
    )


def upgrade() -> None:
    _known_kind((*KINDS, "gateway"))
    op.add_column("device", sa.Column("gateway_id", sa.String(64), nullable=True), schema="iot")
    op.create_foreign_key(
        "fk_device_gateway_id_device",
        "device",
        "device",
        ["gateway_id"],
        ["id"],
        source_schema="iot",
        referent_schema="iot",
        ondelete="SET NULL",
    )
    op.create_index("ix_device_gateway_id", "device", ["gateway_id"], schema="iot")


def downgrade() -> None:
    op.drop_index("ix_device_gateway_id", table_name="device", schema="iot")
    op.drop_constraint("fk_device_gateway_id_device", "device", schema="iot", type_="foreignkey")
    op.drop_column("device", "gateway_id", schema="iot")
    gateways = "SELECT id FROM iot.device WHERE kind = 'gateway'"
    op.execute(f"DELETE FROM iot.device_state WHERE device_id IN ({gateways})")
    op.execute("DELETE FROM iot.device WHERE kind = 'gateway'")
    _known_kind(KINDS)
