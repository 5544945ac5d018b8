"""Geofences: areas whose entry or exit by a device raises an alarm.

Supervisors, dispatchers and admins draw or import them; the ingest workers pick them up
within their registry refresh (30 s) and test every new position against them. Deleting a
geofence stops new crossings; alarms it raised stay in the ledger.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, field_validator

from gis_core.application import device_kinds
from gis_core.identity import Principal
from web.deps import ConnDep, CurrentUser, client_address, require_roles
from web.services import geofences as service

router = APIRouter(tags=["geofences"])

Editor = Annotated[Principal, Depends(require_roles("supervisor", "dispatcher"))]


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


class GeofenceProperties(BaseModel):
    id: int
    name_zh: str
    kinds: list[str]
    on_enter: bool
    on_leave: bool


class GeofenceOut(BaseModel):
    """A geofence as a GeoJSON Feature; its geometry is a MultiPolygon in WGS84 lon/lat."""

    type: Literal["Feature"]
    id: int
    geometry: dict[str, Any] = Field(description="GeoJSON MultiPolygon, WGS84 lon/lat")
    properties: GeofenceProperties


class GeofencesOut(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[GeofenceOut]


@router.get("/geofences", response_model=GeofencesOut, summary="The geofences, as GeoJSON")
def list_geofences(_: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    return service.geofences(conn)


@router.post("/geofences", status_code=201, response_model=GeofenceOut, summary="Create a geofence")
def create_geofence(
    body: GeofenceIn, user: Editor, conn: ConnDep, request: Request
) -> dict[str, Any]:
    geofence_id = service.create(
        conn,
        name_zh=body.name_zh,
        kinds=body.kinds,
        on_enter=body.on_enter,
        on_leave=body.on_leave,
        geometry=body.geometry,
        user=user,
        client=client_address(request),
    )
    return service.geofence(conn, geofence_id)


@router.get("/geofences/{geofence_id}", response_model=GeofenceOut, summary="One geofence")
def get_geofence(geofence_id: int, _: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    return service.geofence(conn, geofence_id)


@router.delete(
    "/geofences/{geofence_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a geofence",
)
def delete_geofence(geofence_id: int, user: Editor, conn: ConnDep, request: Request) -> None:
    service.delete(conn, geofence_id, user, client_address(request))
