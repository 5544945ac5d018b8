"""Device kinds are defined by the installed applications, not listed by the database.

The check on ``iot.device.kind`` named the eight kinds of the first applications, so every
new application's kind needed a core migration. It now checks only that a kind is a
well-formed name; which kinds exist is the installed applications' (``GET /apps``).

Revision ID: 0008_app_defined_kinds
Revises: 0007_gateway_devices
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_app_defined_kinds"
down_revision: str | None = "0007_gateway_devices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_PATTERN = "^[a-z][a-z0-9_]{0,23}$"
FIRST_KINDS = (
    "gateway",
    "vehicle",
    "air",
    "water_level",
    "rain",
    "soil",
    "water_quality",
    "emission",
    "signal",
)


def upgrade() -> None:
    op.drop_constraint(op.f("ck_device_known_kind"), "device", schema="iot", type_="check")
    op.create_check_constraint("kind_name", "device", f"kind ~ '{KIND_PATTERN}'", schema="iot")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_device_kind_name"), "device", schema="iot", type_="check")
    kinds = ",".join(f"'{k}'" for k in FIRST_KINDS)
    op.create_check_constraint("known_kind", "device", f"kind IN ({kinds})", schema="iot")
