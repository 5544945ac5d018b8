"""OGC API – Tiles, vector: Mapbox Vector Tiles of a catalog layer, built in one query.

The tile envelope is transformed into the layer's SRID so the GiST index answers the
``&&``; features are clipped and quantized by ``ST_AsMVTGeom`` in Web Mercator, simplified
by zoom, thinned on small scales by the layer's zoom filters, and capped per tile.
"""

from __future__ import annotations

import math

from psycopg import Connection, sql

from gis_core.errors import NotFound
from gis_core.layer import Layer

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
# Half a pixel at 4096 per tile, in metres of Web Mercator at zoom 0.
_PIXEL_M_Z0 = 40075016.68557849 / EXTENT / 2


def tile_containing(lon: float, lat: float, z: int) -> tuple[int, int]:
    """(col, row) of the WebMercatorQuad tile at zoom ``z`` that holds a lon/lat point."""
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def check_tile_address(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM:
        raise NotFound(f"tileMatrix {z} is outside WebMercatorQuad (0..{MAX_ZOOM})")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise NotFound(f"tile {z}/{y}/{x} (row/col) lies outside the matrix (0..{n - 1})")


def vector_tile(
    conn: Connection, layer: Layer, z: int, x: int, y: int, *, max_features: int
) -> bytes:
    """The MVT of one WebMercatorQuad tile (empty bytes when nothing falls in it)."""
    check_tile_address(z, x, y)
    if z < layer.min_zoom:
        return b""
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
    if not layer.geometry_type.endswith("Point"):
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
                   t.{id} AS fid{props}
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
        props=props,
        table=sql.Identifier(schema, name),
        where=sql.SQL(" AND ").join(clauses),
        # MVT feature ids are integers; a text key travels as the property "fid" instead.
        as_mvt=sql.SQL(
            "ST_AsMVT(mvt.*, %(layer)s, {e}, 'geom', 'fid')"
            if layer.id_type == "int"
            else "ST_AsMVT(mvt.*, %(layer)s, {e}, 'geom')"
        ).format(e=sql.Literal(EXTENT)),
    )
    row = conn.execute(
        query,
        {
            "z": z,
            "x": x,
            "y": y,
            "margin": BUFFER / EXTENT,
            "cap": max_features,
            "layer": layer.id,
        },
    ).fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""
