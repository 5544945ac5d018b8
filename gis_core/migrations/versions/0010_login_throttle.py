"""Login throttling shared by every API process, and the workers' heartbeats.

``auth.login_throttle`` counts failed logins per address and per account, so that several API
processes behind one balancer refuse the same guesser. ``iot.worker_heartbeat`` holds one row
per running worker, beaten every few seconds with its figures, so that ``/health`` and
``/metrics`` see workers on any host (one revision for both keeps the core's chain short).

Revision ID: 0010_login_throttle
Revises: 0009_road_closures
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_login_throttle"
down_revision: str | None = "0009_road_closures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE auth.login_throttle (
            key               text NOT NULL,
            failures          integer NOT NULL,
            first_failure_at  timestamptz NOT NULL,
            last_failure_at   timestamptz NOT NULL,
            blocked_until     timestamptz,
            CONSTRAINT pk_login_throttle PRIMARY KEY (key)
        );
        CREATE INDEX ix_login_throttle_last_failure_at ON auth.login_throttle (last_failure_at);
        CREATE TABLE iot.worker_heartbeat (
            worker      text NOT NULL,
            role        text NOT NULL,
            host        text NOT NULL,
            pid         integer NOT NULL,
            started_at  timestamptz NOT NULL,
            beat_at     timestamptz NOT NULL,
            figures     jsonb NOT NULL DEFAULT '{}'::jsonb,
            CONSTRAINT pk_worker_heartbeat PRIMARY KEY (worker)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE iot.worker_heartbeat; DROP TABLE auth.login_throttle")
