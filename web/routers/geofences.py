"""Geofences: areas whose entry or exit by a device raises an alarm.

Supervisors, dispatchers and admins draw or import them; the ingest workers pick them up
within their registry refresh (30 s) and test every new position against them. Deleting a
geofence stops new crossings; alarms it raised stay in the ledger.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, field_validator
from shapely import to_wkb
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import explain_validity

from gis_core.application import device_kinds
from gis_core.errors import InvalidInput, NotFound
from gis_core.identity import Principal, audit
from web.deps import ConnDep, CurrentUser, client_address, require_roles

router = APIRouter(tags=["geofences"])

Editor = Annotated[Principal, Depends(require_roles("supervisor", "dispatcher"))]
MAX_VERTICES = 20_000
# A fence must lie near the city: its envelope grown by this many degrees.
CITY_MARGIN_DEG = 0.5


class GeofenceIn(BaseModel):
    name_zh: str = Field(min_length=1, max_length=100, description="the name alarms show")
    kinds: list[str] = Field(
        default=["vehicle"], min_length=1, description="device kinds watched, e.g. vehicle"
    )
    on_enter: bool = True
    on_leave: bool = True
    geometry: dict[str, Any] = Field(
        description="GeoJSON Polygon or MultiPolygon in WGS84 lon/lat",
        examples=[
            {
                "type": "Polygon",
                "coordinates": [[[113.1, 36.18], [113.12, 36.18], [113.12, 36.2], [113.1, 36.18]]],
            }
        ],
    )

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(device_kinds()))
        if unknown:
            raise ValueError(f"unknown device kinds {unknown}; kinds: {', '.join(device_kinds())}")
        return sorted(set(kinds))

    @field_validator("name_zh")
    @classmethod
    def _printable(cls, name: str) -> str:
        if not name.strip() or "\x00" in name:
            raise ValueError("a geofence needs a name (no NUL characters)")
        return name.strip()


def _area(geometry: dict[str, Any]) -> MultiPolygon:
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


SELECT = """
SELECT id, name_zh, kinds, on_enter, on_leave, ST_AsGeoJSON(geom, 7) AS geometry
FROM iot.geofence
"""


@router.get("/geofences", summary="The geofences, as GeoJSON")
def list_geofences(_: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(SELECT + " ORDER BY id").fetchall()
    return {"type": "FeatureCollection", "features": [_feature(r) for r in rows]}


@router.post("/geofences", status_code=201, summary="Create a geofence")
def create_geofence(
    body: GeofenceIn, user: Editor, conn: ConnDep, request: Request
) -> dict[str, Any]:
    area = to_wkb(_area(body.geometry))
    near = conn.execute(
        """
        SELECT bool_and(ST_Intersects(ST_Expand(ST_Envelope(geom), %s),
                                      ST_GeomFromWKB(%s, 4326)))
        FROM ref.admin_area WHERE level = 'city'
        """,
        (CITY_MARGIN_DEG, area),
    ).fetchone()
    if near and near[0] is False:
        raise InvalidInput("the geofence is nowhere near the city")
    row = conn.execute(
        """
        INSERT INTO iot.geofence (name_zh, kinds, on_enter, on_leave, geom)
        VALUES (%s, %s, %s, %s, ST_Multi(ST_GeomFromWKB(%s, 4326)))
        RETURNING id
        """,
        (body.name_zh, body.kinds, body.on_enter, body.on_leave, area),
    ).fetchone()
    assert row is not None
    client = client_address(request)
    audit(conn, user, "create", "geofence", str(row[0]), {"name_zh": body.name_zh}, client)
    conn.commit()
    return get_geofence(row[0], user, conn)


@router.get("/geofences/{geofence_id}", summary="One geofence")
def get_geofence(geofence_id: int, _: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(SELECT + " WHERE id = %s", (geofence_id,)).fetchone()
    if row is None:
        raise NotFound(f"no geofence {geofence_id}")
    return _feature(row)


@router.delete("/geofences/{geofence_id}", status_code=204, summary="Delete a geofence")
def delete_geofence(geofence_id: int, user: Editor, conn: ConnDep, request: Request) -> None:
    row = conn.execute(
        "DELETE FROM iot.geofence WHERE id = %s RETURNING name_zh", (geofence_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no geofence {geofence_id}")
    client = client_address(request)
    audit(conn, user, "delete", "geofence", str(geofence_id), {"name_zh": row[0]}, client)
    conn.commit()
