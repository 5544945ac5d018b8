"""Dispatch: villages for the gazetteer, incident targets, GPS suspects, the road graph's version.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ref.village (
            id             integer PRIMARY KEY,
            name_zh        text NOT NULL,
            district_code  varchar(12),
            geom           geometry(Point, 4326) NOT NULL
        );
        CREATE INDEX ix_village_geom ON ref.village USING gist (geom);

        -- What dispatch decides about an incident when it is created: the area class and the
        -- response target that follows from it, the response plan at the time, and the
        -- 12345 ticket it came from (unique: an import run twice creates nothing twice).
        CREATE TABLE ops.incident_meta (
            incident_id        bigint PRIMARY KEY
                               REFERENCES ops.incident (id) ON DELETE CASCADE,
            area_class         text NOT NULL CHECK (area_class IN ('urban', 'rural')),
            response_target_s  double precision NOT NULL,
            plan               jsonb NOT NULL DEFAULT '[]',
            ticket_id          text UNIQUE
        );

        -- Units whose GPS jumped implausibly: the jumped fix is ignored, the last good one
        -- kept, until consistent fixes re-anchor the unit.
        CREATE TABLE ops.gps_suspect (
            unit_id      varchar(64) PRIMARY KEY REFERENCES ops.unit (id) ON DELETE CASCADE,
            flagged_at   timestamptz NOT NULL DEFAULT now(),
            jumps        integer NOT NULL DEFAULT 1,
            good_ts      timestamptz,
            good_geom    geometry(Point, 4326),
            bad_geom     geometry(Point, 4326)
        );

        CREATE INDEX ix_assignment_incident ON ops.assignment (incident_id);
        CREATE INDEX ix_unit_type_status ON ops.unit (unit_type, status);
        CREATE INDEX ix_unit_device ON ops.unit (device_id);

        -- Every change of the road network bumps this, so in-memory copies of the routing
        -- graph know when they are stale at the cost of one tiny read.
        CREATE TABLE ref.road_graph_version (
            one      boolean PRIMARY KEY DEFAULT true CHECK (one),
            version  bigint NOT NULL DEFAULT 1,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO ref.road_graph_version DEFAULT VALUES;
        CREATE FUNCTION ref.bump_road_graph_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE ref.road_graph_version SET version = version + 1, changed_at = now();
            RETURN NULL;
        END $$;
        CREATE TRIGGER road_graph_changed
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ref.road
            FOR EACH STATEMENT EXECUTE FUNCTION ref.bump_road_graph_version();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS road_graph_changed ON ref.road;
        DROP FUNCTION IF EXISTS ref.bump_road_graph_version();
        DROP TABLE IF EXISTS ref.road_graph_version;
        DROP INDEX IF EXISTS ops.ix_unit_device;
        DROP INDEX IF EXISTS ops.ix_unit_type_status;
        DROP INDEX IF EXISTS ops.ix_assignment_incident;
        DROP TABLE IF EXISTS ops.gps_suspect;
        DROP TABLE IF EXISTS ops.incident_meta;
        DROP TABLE IF EXISTS ref.village;
        """
    )
