"""Geofences, checked and stored: the queries behind ``web/routers/geofences.py``."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from shapely import to_wkb
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import explain_validity

from gis_core.errors import InvalidInput, NotFound
from gis_core.identity import Principal, audit

MAX_VERTICES = 20_000
# A fence must lie near the city: its envelope grown by this many degrees.
CITY_MARGIN_DEG = 0.5

SELECT = """
SELECT id, name_zh, kinds, on_enter, on_leave, ST_AsGeoJSON(geom, 7) AS geometry
FROM iot.geofence
"""


def area(geometry: dict[str, Any]) -> MultiPolygon:
    """The fence as a valid WGS84 multipolygon, or why it cannot be one."""
    if geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("a geofence is a GeoJSON Polygon or MultiPolygon")
    try:
        geom = shape(geometry)
    except (GEOSException, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InvalidInput(f"not a readable GeoJSON polygon: {exc}") from None
    if geom.is_empty:
        raise InvalidInput("the polygon is empty")
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    vertices = sum(len(p.exterior.coords) + sum(len(r.coords) for r in p.interiors) for p in parts)
    if vertices > MAX_VERTICES:
        raise InvalidInput(f"{vertices} vertices; a geofence may have at most {MAX_VERTICES}")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput("coordinates are lon/lat in degrees (WGS84)")
    if not geom.is_valid:
        raise InvalidInput(f"the polygon is not valid: {explain_validity(geom)}")
    if geom.area == 0:
        raise InvalidInput("the polygon has no area")
    return MultiPolygon(parts) if isinstance(geom, Polygon) else geom


def _feature(row: dict[str, Any]) -> dict[str, Any]:
    geometry = orjson.loads(row.pop("geometry"))
    return {"type": "Feature", "id": row["id"], "geometry": geometry, "properties": row}


def geofences(conn: psycopg.Connection) -> dict[str, Any]:
    """Every geofence, as a GeoJSON FeatureCollection."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(SELECT + " ORDER BY id").fetchall()
    return {"type": "FeatureCollection", "features": [_feature(r) for r in rows]}


def geofence(conn: psycopg.Connection, geofence_id: int) -> dict[str, Any]:
    """One geofence as a GeoJSON Feature."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(SELECT + " WHERE id = %s", (geofence_id,)).fetchone()
    if row is None:
        raise NotFound(f"no geofence {geofence_id}")
    return _feature(row)


def create(
    conn: psycopg.Connection,
    *,
    name_zh: str,
    kinds: list[str],
    on_enter: bool,
    on_leave: bool,
    geometry: dict[str, Any],
    user: Principal,
    client: str | None,
) -> int:
    """Store a checked geofence near the city, audited and committed; returns its id."""
    wkb = to_wkb(area(geometry))
    near = conn.execute(
        """
        SELECT bool_and(ST_Intersects(ST_Expand(ST_Envelope(geom), %s),
                                      ST_GeomFromWKB(%s, 4326)))
        FROM ref.admin_area WHERE level = 'city'
        """,
        (CITY_MARGIN_DEG, wkb),
    ).fetchone()
    if near and near[0] is False:
        raise InvalidInput("the geofence is nowhere near the city")
    row = conn.execute(
        """
        INSERT INTO iot.geofence (name_zh, kinds, on_enter, on_leave, geom)
        VALUES (%s, %s, %s, %s, ST_Multi(ST_GeomFromWKB(%s, 4326)))
        RETURNING id
        """,
        (name_zh, kinds, on_enter, on_leave, wkb),
    ).fetchone()
    assert row is not None
    audit(conn, user, "create", "geofence", str(row[0]), {"name_zh": name_zh}, client)
    conn.commit()
    return int(row[0])


def delete(conn: psycopg.Connection, geofence_id: int, user: Principal, client: str | None) -> None:
    """Remove a geofence (the alarms it raised stay), audited and committed."""
    row = conn.execute(
        "DELETE FROM iot.geofence WHERE id = %s RETURNING name_zh", (geofence_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no geofence {geofence_id}")
    audit(conn, user, "delete", "geofence", str(geofence_id), {"name_zh": row[0]}, client)
    conn.commit()
