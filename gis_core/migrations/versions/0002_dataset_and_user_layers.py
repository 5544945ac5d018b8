"""The loaded dataset's provenance, and layers imported by users.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ref.dataset (
            city        text PRIMARY KEY,
            seed        bigint NOT NULL,
            scale       double precision NOT NULL,
            loaded_at   timestamptz NOT NULL DEFAULT now(),
            dem_path    text,
            counts      jsonb NOT NULL DEFAULT '{}'
        );
        CREATE SCHEMA IF NOT EXISTS userdata;
        CREATE TABLE ref.user_layer (
            id            text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{1,47}$'),
            table_name    text NOT NULL UNIQUE,
            title_zh      text NOT NULL,
            title_en      text NOT NULL,
            geometry_type text NOT NULL,
            properties    text[] NOT NULL,
            roles         text[] NOT NULL DEFAULT '{}',
            source_file   text,
            created_by    text,
            created_at    timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ref.user_layer; DROP SCHEMA IF EXISTS userdata CASCADE;")
    op.execute("DROP TABLE IF EXISTS ref.dataset")
