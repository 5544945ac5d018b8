"""OGC API – Tiles, vector: Mapbox Vector Tiles of a catalog layer.

Lines and polygons: one query. The tile envelope is transformed into the layer's SRID so the
GiST index answers the ``&&``; features are clipped and quantized by ``ST_AsMVTGeom`` in Web
Mercator, simplified by zoom, thinned on small scales by the layer's zoom filters, and capped
per tile.

Points: a tile never carries more than one feature per pixel cell (``CELL`` tile units, 8 px
of a 256-px tile) below the layer's *cut-off zoom*: the first zoom at which no tile of the
layer holds more points than it has cells (``DENSE_TILE``), found from the data when the
layer is generalized. Each feature carries ``point_count``, the points of its cell, so the
counts of a tile add up to the points in it and density still reads. Dense tiles (more points
than cells) are precomputed in ``tiles.point_cell`` — a tile is then one index range read —
and the others are snapped on the fly. From the cut-off zoom on, every point is sent as is
(``point_count`` 1). Point features belong to exactly one tile, without a buffer: MapLibre
drops circles outside the tile's extent anyway, so a buffered copy would only cost bytes.

Freshness: every served table gets a statement trigger bumping ``tiles.layer_version``. The
generalization remembers the version it was built from and is used only while it matches; a
tile is cached under the version read with it. A write anywhere (ingest, import, the API)
therefore makes both stale at once, and stale tiles are never served.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, sql

from gis_core import tilematrix
from gis_core.errors import NotFound
from gis_core.layer import Layer
from gis_core.tilematrix import HALF_WORLD, TileOutOfRange

log = logging.getLogger(__name__)

EXTENT = 4096
BUFFER = 64
# Half a pixel at 4096 per tile, in metres of Web Mercator at zoom 0.
_PIXEL_M_Z0 = 40075016.68557849 / EXTENT / 2

# Tile units per cell side: 8 px of a 256-px tile, 16 px as MapLibre draws vector tiles (512),
# so at most 1,024 points a tile. Clustering libraries gather within 40-80 px (supercluster's
# radius is 40 px of 512); a finer grid keeps the pattern and is cheap to encode.
CELL = 128
CELLS_PER_SIDE = EXTENT // CELL
CELL_SHIFT = CELLS_PER_SIDE.bit_length() - 1  # cell index >> CELL_SHIFT = tile index
DENSE_TILE = CELLS_PER_SIDE * CELLS_PER_SIDE  # a tile with more points than cells is dense
TRIGGER = "changzhi_layer_changed"
# Points are counted per tile at this zoom and summed upwards; the cut-off zoom is therefore at
# most COUNT_ZOOM + 1 (the console asks for nothing deeper; deeper tiles are sent as they are,
# still capped).
COUNT_ZOOM = 16
# Bump when the generalization's rules change, so old builds are rebuilt.
_GENERALIZATION_FORMAT = "cells-v2"


tile_containing = tilematrix.containing


def check_tile_address(z: int, x: int, y: int) -> None:
    """A tile outside the matrix is a resource that does not exist (404)."""
    try:
        tilematrix.check(z, x, y)
    except TileOutOfRange as exc:
        raise NotFound(str(exc)) from None


def generalizable(layer: Layer) -> bool:
    """Point layers whose look does not change by zoom filter; live (timed) layers are small
    and change every second, so they are served as they are."""
    return layer.geometry_type == "Point" and not layer.zoom_filters and not layer.time_column


def fingerprint(layer: Layer) -> str:
    """What a generalization of this layer depends on besides its rows."""
    parts = (
        _GENERALIZATION_FORMAT,
        str(CELL),
        layer.table,
        layer.geom_column,
        layer.id_column,
        layer.id_type,
        str(layer.srid),
        layer.where or "",
        ",".join(layer.properties),
    )
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class TileState:
    """What the database says about a layer's table and generalization, for one tile."""

    version: int | None  # None: the table is not tracked (no trigger yet), so never cached
    generalized: bool  # a generalization exists and matches the rows and the layer
    cutoff: int  # zoom from which points are sent as they are (0: never thinned)
    layer_key: int | None
    dense: bool  # this tile's cells are stored

    def needs_refresh(self, layer: Layer) -> bool:
        """The table is not tracked yet, or a point layer's generalization is stale."""
        return self.version is None or (generalizable(layer) and not self.generalized)


_STATE_SQL = """
SELECT (SELECT coalesce(max(v.version), 0) FROM tiles.layer_version v WHERE v.relid = c.oid)
           AS version,
       EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = %(trigger)s)
           AS tracked,
       g.key, g.version, g.relid = c.oid AND g.fingerprint = %(fingerprint)s, g.cutoff,
       EXISTS (SELECT 1 FROM tiles.point_tile d
               WHERE d.layer_key = g.key AND d.z = %(z)s AND d.tx = %(x)s AND d.ty = %(y)s)
FROM pg_class c LEFT JOIN tiles.point_layer g ON g.layer_id = %(layer)s
WHERE c.oid = %(table)s::regclass
"""


def tile_state(conn: Connection, layer: Layer, z: int, x: int, y: int) -> TileState:
    """One small read: the table's change version and the layer's generalization."""
    check_tile_address(z, x, y)
    row = conn.execute(
        _STATE_SQL,
        {
            "trigger": TRIGGER,
            "fingerprint": fingerprint(layer),
            "layer": layer.id,
            "table": layer.table,
            "z": z,
            "x": x,
            "y": y,
        },
        prepare=True,
    ).fetchone()
    if row is None:
        raise NotFound(f"collection {layer.id!r} has no table")
    version, tracked, key, built_version, same_layer, cutoff, dense = row
    current = int(version) if tracked else None
    generalized = bool(key is not None and tracked and same_layer and built_version == current)
    return TileState(
        version=current,
        generalized=generalized,
        cutoff=int(cutoff) if cutoff is not None else 0,
        layer_key=key,
        dense=bool(dense) and generalized,
    )


# --------------------------------------------------------------------------- tiles


def vector_tile(
    conn: Connection,
    layer: Layer,
    z: int,
    x: int,
    y: int,
    *,
    max_features: int,
    state: TileState | None = None,
) -> bytes:
    """The MVT of one WebMercatorQuad tile (empty bytes when nothing falls in it)."""
    check_tile_address(z, x, y)
    if z < layer.min_zoom:
        return b""
    if generalizable(layer):
        state = state or tile_state(conn, layer, z, x, y)
        # A stale generalization still says up to which zoom the layer was dense; the tile
        # is then made from the rows, never from stale cells.
        if z < state.cutoff:
            if state.dense and state.layer_key is not None:
                return _stored_cells_tile(conn, layer, z, x, y, state.layer_key)
            return _snapped_points_tile(conn, layer, z, x, y, max_features)
    return _features_tile(conn, layer, z, x, y, max_features)


def _mvt(layer: Layer, alias: str) -> sql.Composable:
    # MVT feature ids are integers; a text key travels as the property "fid" instead.
    if layer.id_type == "int":
        return sql.SQL("ST_AsMVT({a}.*, %(layer)s, {e}, 'geom', 'fid')").format(
            a=sql.Identifier(alias), e=sql.Literal(EXTENT)
        )
    return sql.SQL("ST_AsMVT({a}.*, %(layer)s, {e}, 'geom')").format(
        a=sql.Identifier(alias), e=sql.Literal(EXTENT)
    )


def _one(conn: Connection, query: sql.Composed, params: dict[str, Any]) -> bytes:
    row = conn.execute(query, params).fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""


def _stored_cells_tile(
    conn: Connection, layer: Layer, z: int, x: int, y: int, layer_key: int
) -> bytes:
    fid = sql.SQL("c.fid, ") if layer.id_type == "int" else sql.SQL("")
    query = sql.SQL(
        """
        SELECT {as_mvt} FROM (
            SELECT ST_Point(c.px, c.py) AS geom, {fid}c.n AS point_count, c.props
            FROM tiles.point_cell AS c
            WHERE c.layer_key = %(key)s AND c.z = %(z)s AND c.tx = %(x)s AND c.ty = %(y)s
        ) AS mvt
        """
    ).format(as_mvt=_mvt(layer, "mvt"), fid=fid)
    return _one(conn, query, {"key": layer_key, "z": z, "x": x, "y": y, "layer": layer.id})


def _tile_position(geom: sql.Composable) -> tuple[sql.Composable, sql.Composable]:
    """The point's position in the tile in tile units, the same arithmetic as the cells."""
    px = sql.SQL("floor((ST_X({g}) + {h}) / {w} * %(scale)s)::bigint - %(x)s::bigint * {e}").format(
        g=geom, h=sql.Literal(HALF_WORLD), w=sql.Literal(2 * HALF_WORLD), e=sql.Literal(EXTENT)
    )
    py = sql.SQL("floor(({h} - ST_Y({g})) / {w} * %(scale)s)::bigint - %(y)s::bigint * {e}").format(
        g=geom, h=sql.Literal(HALF_WORLD), w=sql.Literal(2 * HALF_WORLD), e=sql.Literal(EXTENT)
    )
    return px, py


def _snapped_points_tile(
    conn: Connection, layer: Layer, z: int, x: int, y: int, max_features: int
) -> bytes:
    """One feature per cell, from the rows: the point with the smallest id represents it."""
    schema, name = layer.table.split(".", 1)
    geom = sql.Identifier("t", layer.geom_column)
    px, py = _tile_position(sql.Identifier("m"))
    clauses: list[sql.Composable] = [
        sql.SQL("{g} && ST_Transform(b.env, {s})").format(g=geom, s=sql.Literal(layer.srid))
    ]
    if layer.where:
        clauses.append(sql.SQL("(" + layer.where + ")"))
    props = sql.SQL("").join(sql.SQL(", t.{}").format(sql.Identifier(p)) for p in layer.properties)
    out_props = sql.SQL("").join(
        sql.SQL(", p.{}").format(sql.Identifier(p)) for p in layer.properties
    )
    query = sql.SQL(
        """
        WITH b AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env),
        p AS (
            SELECT t.{id} AS fid, {px} AS px, {py} AS py{props}
            FROM {table} AS t, b, ST_Transform({g}, 3857) AS m
            WHERE {where}
        ), inside AS (
            SELECT p.*, p.px / {cell} AS cx, p.py / {cell} AS cy FROM p
            WHERE p.px >= 0 AND p.px < {e} AND p.py >= 0 AND p.py < {e}
        ), mvt AS (
            SELECT DISTINCT ON (p.cx, p.cy)
                   ST_Point(p.px, p.py) AS geom, p.fid,
                   count(*) OVER (PARTITION BY p.cx, p.cy) AS point_count{out_props}
            FROM inside AS p
            ORDER BY p.cx, p.cy, p.fid
            LIMIT %(cap)s
        )
        SELECT {as_mvt} FROM mvt
        """
    ).format(
        id=sql.Identifier(layer.id_column),
        px=px,
        py=py,
        props=props,
        out_props=out_props,
        table=sql.Identifier(schema, name),
        g=geom,
        where=sql.SQL(" AND ").join(clauses),
        cell=sql.Literal(CELL),
        e=sql.Literal(EXTENT),
        as_mvt=_mvt(layer, "mvt"),
    )
    params = {
        "z": z,
        "x": x,
        "y": y,
        "scale": float(EXTENT << z),
        "cap": max_features,
        "layer": layer.id,
    }
    return _one(conn, query, params)


def _features_tile(
    conn: Connection, layer: Layer, z: int, x: int, y: int, max_features: int
) -> bytes:
    schema, name = layer.table.split(".", 1)
    geom = sql.Identifier("t", layer.geom_column)
    clauses: list[sql.Composable] = [
        sql.SQL("{g} && ST_Transform(b.env_buffered, {s})").format(
            g=geom, s=sql.Literal(layer.srid)
        )
    ]
    if layer.where:
        clauses.append(sql.SQL("(" + layer.where + ")"))
    for below_zoom, condition in layer.zoom_filters:
        if z < below_zoom:
            clauses.append(sql.SQL("(" + condition + ")"))
            break
    mercator: sql.Composable = sql.SQL("ST_Transform({g}, 3857)").format(g=geom)
    extra = sql.SQL("")
    if layer.geometry_type.endswith("Point"):
        extra = sql.SQL(", 1 AS point_count")
    else:
        # Drop detail smaller than half a pixel of this zoom before clipping.
        tolerance = _PIXEL_M_Z0 / (1 << z)
        mercator = sql.SQL("ST_Simplify({m}, {tol}, true)").format(
            m=mercator, tol=sql.Literal(tolerance)
        )
    props = sql.SQL("").join(sql.SQL(", t.{}").format(sql.Identifier(p)) for p in layer.properties)
    query = sql.SQL(
        """
        WITH b AS (
            SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env,
                   ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s) AS env_buffered
        ), mvt AS (
            SELECT ST_AsMVTGeom({mercator}, b.env, {extent}, {buffer}, true) AS geom,
                   t.{id} AS fid{extra}{props}
            FROM {table} AS t, b
            WHERE {where}
            LIMIT %(cap)s
        )
        SELECT {as_mvt} FROM mvt WHERE geom IS NOT NULL
        """
    ).format(
        mercator=mercator,
        extent=sql.Literal(EXTENT),
        buffer=sql.Literal(BUFFER),
        id=sql.Identifier(layer.id_column),
        extra=extra,
        props=props,
        table=sql.Identifier(schema, name),
        where=sql.SQL(" AND ").join(clauses),
        as_mvt=_mvt(layer, "mvt"),
    )
    params = {
        "z": z,
        "x": x,
        "y": y,
        "margin": BUFFER / EXTENT,
        "cap": max_features,
        "layer": layer.id,
    }
    return _one(conn, query, params)


# --------------------------------------------------------------------------- maintenance


def track_changes(conn: Connection, layer: Layer) -> bool:
    """Install the change trigger on the layer's table (idempotent). False when this role
    may not (the layer is then served uncached); the caller commits."""
    table = sql.SQL(".").join(sql.Identifier(p) for p in layer.table.split(".", 1))
    installed = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s)",
        (layer.table, TRIGGER),
    ).fetchone()
    if installed and installed[0]:
        return True
    try:
        with conn.transaction():
            # Never queue behind a long import for this: try again on a later tile.
            conn.execute("SET LOCAL lock_timeout = '200ms'")
            conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE TRIGGER {t} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
                    " ON {table} FOR EACH STATEMENT EXECUTE FUNCTION tiles.bump_layer_version()"
                ).format(t=sql.Identifier(TRIGGER), table=table)
            )
            conn.execute(
                "INSERT INTO tiles.layer_version (relid) VALUES (%s::regclass)"
                " ON CONFLICT DO NOTHING",
                (layer.table,),
            )
    except Exception as exc:  # no privilege, lock timeout: the layer stays uncached
        log.warning("cannot track changes of %s: %s", layer.table, exc)
        return False
    return True


@dataclass(frozen=True)
class Generalization:
    layer_id: str
    version: int
    cutoff: int
    points: int
    dense_tiles: int
    cells: int
    build_ms: int


def generalize(conn: Connection, layer: Layer) -> Generalization:
    """Rebuild the layer's point generalization from its rows, in the caller's transaction
    (which should be REPEATABLE READ, so the rows and the version read agree); the caller
    commits. The rows are read once; the cut-off is the first zoom without a dense tile."""
    if not generalizable(layer):
        raise ValueError(f"layer {layer.id!r} is not a point layer that can be generalized")
    started = time.perf_counter()
    schema, name = layer.table.split(".", 1)
    table = sql.Identifier(schema, name)
    geom = sql.Identifier("t", layer.geom_column)
    conn.execute("SET LOCAL statement_timeout = 0")
    row = conn.execute(
        "SELECT coalesce((SELECT version FROM tiles.layer_version WHERE relid = c.oid), 0)"
        " FROM pg_class c WHERE c.oid = %s::regclass",
        (layer.table,),
    ).fetchone()
    version = int(row[0]) if row else 0
    where = sql.SQL(" AND (" + layer.where + ")") if layer.where else sql.SQL("")
    # u, w: the point in the unit square of Web Mercator, y down (as tiles count rows).
    conn.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE _gp ON COMMIT DROP AS
            SELECT fid, u, w, floor(u * {tiles})::int AS tx, floor(w * {tiles})::int AS ty
            FROM (
                SELECT t.{id} AS fid, (ST_X(m) + {h}) / {w} AS u, ({h} - ST_Y(m)) / {w} AS w
                FROM {table} AS t, ST_Transform({g}, 3857) AS m
                WHERE {g} IS NOT NULL AND NOT ST_IsEmpty({g}){where}
            ) AS p
            WHERE u >= 0 AND u < 1 AND w >= 0 AND w < 1
            """
        ).format(
            tiles=sql.Literal(float(1 << COUNT_ZOOM)),
            id=sql.Identifier(layer.id_column),
            h=sql.Literal(HALF_WORLD),
            w=sql.Literal(2 * HALF_WORLD),
            table=table,
            g=geom,
            where=where,
        )
    )
    # Points per tile at COUNT_ZOOM, summed up the pyramid; a tile with more points than
    # cells is dense, and so is every tile above it.
    conn.execute(
        "CREATE TEMP TABLE _t ON COMMIT DROP AS"
        " SELECT %s::smallint AS z, tx, ty, count(*) AS n FROM _gp GROUP BY tx, ty",
        (COUNT_ZOOM,),
    )
    for z in range(COUNT_ZOOM - 1, -1, -1):
        conn.execute(
            "INSERT INTO _t SELECT %(z)s, tx >> 1, ty >> 1, sum(n) FROM _t WHERE z = %(z1)s"
            " GROUP BY 2, 3",
            {"z": z, "z1": z + 1},
        )
    points = int(conn.execute("SELECT coalesce(sum(n), 0) FROM _t WHERE z = 0").fetchone()[0])  # type: ignore[index]
    conn.execute(
        "CREATE TEMP TABLE _dense ON COMMIT DROP AS"
        " SELECT z, tx, ty, n::int AS points FROM _t WHERE n > %s",
        (DENSE_TILE,),
    )
    deepest = conn.execute("SELECT max(z) FROM _dense").fetchone()
    cutoff = 0 if deepest is None or deepest[0] is None else int(deepest[0]) + 1
    conn.execute(
        "CREATE TEMP TABLE _cells (z smallint, cx integer, cy integer, fid bigint, n integer)"
        " ON COMMIT DROP"
    )
    if cutoff:
        # d: the deepest zoom at which a COUNT_ZOOM tile (and so each point in it) lies in a
        # dense tile; its points are gathered into cells at that zoom, and coarser zooms are
        # those cells summed up, so every point is read once.
        conn.execute(
            "CREATE TEMP TABLE _td ON COMMIT DROP AS SELECT z, tx, ty,"
            " CASE WHEN n > %s THEN 0 ELSE -1 END AS d FROM _t WHERE z = 0",
            (DENSE_TILE,),
        )
        for z in range(1, COUNT_ZOOM + 1):
            conn.execute(
                "INSERT INTO _td SELECT t.z, t.tx, t.ty,"
                " CASE WHEN t.n > %(dense)s THEN t.z ELSE p.d END"
                " FROM _t t JOIN _td p ON p.z = %(z1)s AND p.tx = t.tx >> 1 AND p.ty = t.ty >> 1"
                " WHERE t.z = %(z)s",
                {"dense": DENSE_TILE, "z": z, "z1": z - 1},
            )
        conn.execute(
            """
            CREATE TEMP TABLE _raw ON COMMIT DROP AS
            SELECT d AS z, floor(g.u * (%(cells)s::bigint << d))::int AS cx,
                   floor(g.w * (%(cells)s::bigint << d))::int AS cy,
                   min(g.fid) AS fid, count(*)::int AS n
            FROM _gp AS g JOIN _td ON _td.z = %(zc)s AND _td.tx = g.tx AND _td.ty = g.ty
            WHERE _td.d >= 0
            GROUP BY 1, 2, 3
            """,
            {"cells": CELLS_PER_SIDE, "zc": COUNT_ZOOM},
        )
        for z in range(cutoff - 1, -1, -1):
            conn.execute(
                "INSERT INTO _cells SELECT z, cx, cy, fid, n FROM _raw WHERE z = %(z)s"
                " UNION ALL SELECT %(z)s, cx >> 1, cy >> 1, min(fid), sum(n) FROM _cells"
                " WHERE z = %(z1)s GROUP BY cx >> 1, cy >> 1",
                {"z": z, "z1": z + 1},
            )
    key_row = conn.execute(
        """
        INSERT INTO tiles.point_layer AS g
            (layer_id, relid, version, fingerprint, cutoff, points, cells, build_ms)
        VALUES (%(layer)s, %(table)s::regclass, %(version)s, %(fp)s, %(cutoff)s, %(points)s, 0, 0)
        ON CONFLICT (layer_id) DO UPDATE SET relid = excluded.relid, version = excluded.version,
            fingerprint = excluded.fingerprint, cutoff = excluded.cutoff,
            points = excluded.points, built_at = now()
        RETURNING key
        """,
        {
            "layer": layer.id,
            "table": layer.table,
            "version": version,
            "fp": fingerprint(layer),
            "cutoff": cutoff,
            "points": points,
        },
    ).fetchone()
    assert key_row is not None
    key = int(key_row[0])
    conn.execute("DELETE FROM tiles.point_cell WHERE layer_key = %s", (key,))
    conn.execute("DELETE FROM tiles.point_tile WHERE layer_key = %s", (key,))
    conn.execute("INSERT INTO tiles.point_tile SELECT %s, z, tx, ty, points FROM _dense", (key,))
    props = sql.SQL(", ").join(
        sql.SQL("{}, t.{}").format(sql.Literal(p), sql.Identifier(p)) for p in layer.properties
    )
    if layer.id_type != "int":
        props = sql.SQL("'fid', t.{id}, {rest}").format(
            id=sql.Identifier(layer.id_column), rest=props
        )
    cells = conn.execute(
        sql.SQL(
            """
            INSERT INTO tiles.point_cell (layer_key, z, tx, ty, fid, n, px, py, props)
            SELECT %(key)s, c.z, c.cx >> {shift}, c.cy >> {shift}, {fid}, c.n,
                   floor(g.u * ({e}::float8 * 2 ^ c.z)) - (c.cx >> {shift})::bigint * {e},
                   floor(g.w * ({e}::float8 * 2 ^ c.z)) - (c.cy >> {shift})::bigint * {e},
                   jsonb_strip_nulls(jsonb_build_object({props}))
            FROM _cells AS c
            JOIN _gp AS g ON g.fid = c.fid
            JOIN {table} AS t ON t.{id} = c.fid
            ORDER BY c.z, c.cx >> {shift}, c.cy >> {shift}
            """
        ).format(
            fid=sql.SQL("c.fid") if layer.id_type == "int" else sql.SQL("NULL::bigint"),
            shift=sql.Literal(CELL_SHIFT),
            e=sql.Literal(EXTENT),
            props=props,
            table=table,
            id=sql.Identifier(layer.id_column),
        ),
        {"key": key},
    ).rowcount
    dense_tiles = int(conn.execute("SELECT count(*) FROM _dense").fetchone()[0])  # type: ignore[index]
    build_ms = round((time.perf_counter() - started) * 1000)
    conn.execute(
        "UPDATE tiles.point_layer SET cells = %s, build_ms = %s WHERE key = %s",
        (cells, build_ms, key),
    )
    return Generalization(layer.id, version, cutoff, points, dense_tiles, cells, build_ms)


def refresh(
    conn: Connection, layer: Layer, *, generalize_points: bool = True
) -> Generalization | None:
    """Track the layer's table and, for point layers, rebuild a stale generalization. Runs
    in its own transactions on ``conn`` (an idle connection); one builder per layer at a time
    across processes."""
    conn.commit()
    if not track_changes(conn, layer):
        conn.rollback()
        return None
    conn.commit()
    if not generalize_points or not generalizable(layer):
        return None
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    locked = conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('changzhi.tiles.' || %s, 0))",
        (layer.id,),
    ).fetchone()
    if not locked or not locked[0]:
        conn.rollback()
        return None
    state = tile_state(conn, layer, 0, 0, 0)
    if state.generalized:
        conn.rollback()
        return None
    built = generalize(conn, layer)
    conn.commit()
    log.info(
        "generalized %s: %d points, cut-off z%d, %d dense tiles, %d cells, %d ms",
        layer.id,
        built.points,
        built.cutoff,
        built.dense_tiles,
        built.cells,
        built.build_ms,
    )
    return built


# --------------------------------------------------------------------------- cache


class TileLRU:
    """A bounded in-process LRU of tiles by content size; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            data = self._tiles.get(key)
            if data is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: tuple[Any, ...], data: bytes) -> None:
        size = len(data) + 200  # the key and the entry
        if size > self.max_bytes // 8:
            return  # one huge tile must not flush everything else
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= len(old) + 200
            self._tiles[key] = data
            self._bytes += size
            while self._bytes > self.max_bytes and self._tiles:
                _, evicted = self._tiles.popitem(last=False)
                self._bytes -= len(evicted) + 200

    def __len__(self) -> int:
        return len(self._tiles)


ConnectionFactory = Callable[[], AbstractContextManager[Connection]]


class TileService:
    """Tiles with a cache keyed by the table's change version, and a background maintainer
    that tracks tables and rebuilds stale generalizations (never in the request's path)."""

    def __init__(
        self, connect: ConnectionFactory, cache_bytes: int = 64 << 20, retry_s: float = 10.0
    ) -> None:
        self.cache = TileLRU(cache_bytes)
        self._connect = connect
        self._retry_s = retry_s
        self._pending: dict[tuple[str, bool], float] = {}  # when a refresh was started
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiles")

    def tile(
        self,
        conn: Connection,
        layer: Layer,
        z: int,
        x: int,
        y: int,
        *,
        max_features: int,
        use_cache: bool = True,
    ) -> tuple[bytes, str]:
        """The tile and how it was had: ``hit``, ``miss`` (made and cached), ``bypass``
        (made, the client asked for no cached copy) or ``uncached`` (the layer is live or not
        tracked yet)."""
        state = tile_state(conn, layer, z, x, y)
        if state.needs_refresh(layer) and not layer.time_column:
            self.schedule(layer)
        if state.version is None or layer.time_column:
            data = vector_tile(conn, layer, z, x, y, max_features=max_features, state=state)
            return data, "uncached"
        key = (layer.id, fingerprint(layer), state.version, state.generalized, z, x, y)
        if use_cache:
            cached = self.cache.get(key)
            if cached is not None:
                return cached, "hit"
        data = vector_tile(conn, layer, z, x, y, max_features=max_features, state=state)
        self.cache.put(key, data)
        return data, "miss" if use_cache else "bypass"

    def schedule(self, layer: Layer, *, generalize_points: bool = True) -> None:
        """Track the layer's table (and rebuild its generalization) in the background."""
        key = (layer.id, generalize_points)
        with self._lock:
            started = self._pending.get(key)
            if started is not None and time.monotonic() - started < self._retry_s:
                return
            self._pending[key] = time.monotonic()
        self._executor.submit(self._refresh, layer, generalize_points)

    def _refresh(self, layer: Layer, generalize_points: bool) -> None:
        try:
            with self._connect() as conn:
                refresh(conn, layer, generalize_points=generalize_points)
        except Exception:
            log.exception("refreshing tiles of %s failed", layer.id)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
