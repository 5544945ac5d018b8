"""The live-state table is updated in place (HOT) at ingest rate.

``iot.device_state`` is rewritten once per reading. With a GiST index on ``geom`` every update
of a moving device had to insert new entries into both indexes, and the dead versions stayed
in the heap until autovacuum, so the statement that reads the previous states scanned more
and more of them: the live-state upsert cost 13.7 µs per reading. Without that index, and with
half of every page left free, an update stays on its page with no index entry (a
heap-only tuple) and page pruning removes the old version: 6.4 µs (measured with 2,000
devices, 500 readings per batch). The table holds one row per device — thousands, not
millions — so a bounding-box read of it scans it, in a few milliseconds.

Revision ID: 0005_device_state_hot
Revises: 0004_tile_generalization
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_device_state_hot"
down_revision: str | None = "0004_tile_generalization"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS iot.ix_device_state_geom")
    op.execute("ALTER TABLE iot.device_state SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE iot.device_state RESET (fillfactor)")
    op.execute("CREATE INDEX ix_device_state_geom ON iot.device_state USING gist (geom)")
