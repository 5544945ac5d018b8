"""Tiles: per-table change versions, and point generalization kept per zoom.

``tiles.layer_version`` is bumped by a statement trigger on every served table (installed by
the tile maintainer on first use), so cached tiles and generalizations know when they are
stale at the cost of one tiny read. ``tiles.point_cell`` holds, for the dense tiles of a point
layer (more points than the tile has pixel cells), one representative feature per cell with
the number of points it stands for.

Revision ID: 0004_tile_generalization
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_tile_generalization"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE SCHEMA tiles;

        -- Keyed by the table's oid: a table dropped and made again starts a new history.
        CREATE TABLE tiles.layer_version (
            relid       oid PRIMARY KEY,
            version     bigint NOT NULL DEFAULT 0,
            changed_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE FUNCTION tiles.bump_layer_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO tiles.layer_version AS v (relid, version) VALUES (TG_RELID, 1)
            ON CONFLICT (relid) DO UPDATE SET version = v.version + 1, changed_at = now();
            RETURN NULL;
        END $$;

        -- One row per generalized point layer: built from the table at `version`, for the
        -- layer definition `fingerprint`; below `cutoff` tiles are one feature per cell.
        CREATE TABLE tiles.point_layer (
            key          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            layer_id     text NOT NULL UNIQUE,
            relid        oid NOT NULL,
            version      bigint NOT NULL,
            fingerprint  text NOT NULL,
            cutoff       smallint NOT NULL,
            points       bigint NOT NULL,
            cells        bigint NOT NULL,
            build_ms     integer NOT NULL,
            built_at     timestamptz NOT NULL DEFAULT now()
        );
        -- The dense tiles, whose cells are stored.
        CREATE TABLE tiles.point_tile (
            layer_key  integer NOT NULL REFERENCES tiles.point_layer (key) ON DELETE CASCADE,
            z          smallint NOT NULL,
            tx         integer NOT NULL,
            ty         integer NOT NULL,
            points     integer NOT NULL,
            PRIMARY KEY (layer_key, z, tx, ty)
        );
        -- px, py: the representative's position in the tile (0..4095, y down), ready for MVT.
        CREATE TABLE tiles.point_cell (
            layer_key  integer NOT NULL,
            z          smallint NOT NULL,
            tx         integer NOT NULL,
            ty         integer NOT NULL,
            fid        bigint,
            n          integer NOT NULL,
            px         smallint NOT NULL,
            py         smallint NOT NULL,
            props      jsonb NOT NULL
        );
        CREATE INDEX ix_point_cell_tile ON tiles.point_cell (layer_key, z, tx, ty);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT tgrelid::regclass AS tbl FROM pg_trigger
                     WHERE tgname = 'changzhi_layer_changed'
            LOOP
                EXECUTE format('DROP TRIGGER changzhi_layer_changed ON %s', r.tbl);
            END LOOP;
        END $$;
        DROP SCHEMA IF EXISTS tiles CASCADE;
        """
    )
