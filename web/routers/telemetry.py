"""Devices, history, alarms and dead letters for operators. The queries are in
:mod:`web.services.telemetry`; here the routes and the shapes they answer with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from gis_core.identity import Principal
from web.deps import ConnDep, CurrentUser, KindsDep, client_address, require_roles
from web.services import telemetry as service

# The track queries, named here too: tests compare their plans.
from web.services.telemetry import TRACK_PROBE, TRACK_SCAN  # noqa: F401

router = APIRouter(tags=["telemetry"])

Operator = Annotated[
    Principal, Depends(require_roles("dispatcher", "supervisor", "inspector", "planner"))
]


class DeviceOut(BaseModel):
    """A registered device and its last state (the state fields are null until it reports)."""

    id: str
    kind: str
    name_zh: str | None
    department_code: str | None
    site_id: str | None
    expected_interval_s: int
    ts: datetime | None
    online: bool | None
    status: str | None
    reading: dict[str, Any] | None
    lon: float | None
    lat: float | None
    received_at: datetime | None


class DeviceDetailOut(BaseModel):
    """One device, its last state and the unit it rides in (null for fixed stations)."""

    id: str
    kind: str
    name_zh: str | None
    department_code: str | None
    site_id: str | None
    expected_interval_s: int
    attributes: dict[str, Any] | None
    ts: datetime | None
    seq: int | None
    online: bool | None
    status: str | None
    reading: dict[str, Any] | None
    received_at: datetime | None
    lon: float | None
    lat: float | None
    unit_id: str | None
    call_sign: str | None
    unit_type: str | None
    unit_status: str | None


class LineString(BaseModel):
    type: Literal["LineString"]
    coordinates: list[list[float]]


class TrackProperties(BaseModel):
    device_id: str
    start: str
    end: str
    times: list[str]
    speed_kmh: list[float | None]
    bucket_s: float


class TrackOut(BaseModel):
    """A GeoJSON Feature: the kept fixes as a LineString, their times alongside."""

    type: Literal["Feature"]
    id: str
    geometry: LineString
    properties: TrackProperties


class SeriesPoint(BaseModel):
    t: str
    avg: float | None
    min: float | None
    max: float | None
    n: int


class SeriesOut(BaseModel):
    device_id: str
    field: str
    bucket_s: float
    points: list[SeriesPoint]


class AlarmOut(BaseModel):
    id: int
    kind: str
    rule: str
    severity: int
    device_id: str | None
    incident_id: int | None
    message_zh: str
    message_en: str
    value: float | None
    threshold: float | None
    raised_at: datetime
    last_seen_at: datetime
    occurrences: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    lon: float | None
    lat: float | None


class AlarmAckOut(BaseModel):
    """The live event every console receives when an alarm is acknowledged."""

    type: Literal["alarm"]
    event: Literal["acknowledged"]
    id: int
    kind: str
    by: str
    at: str


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str | None
    payload: str | None
    payload_bytes: int


class DeadLettersOut(BaseModel):
    counts_last_day: dict[str, int]
    items: list[DeadLetterOut]


class HealthTotals(BaseModel):
    total: int
    online: int
    offline: int
    never: int


# The next two are built by jsonb_agg, and jsonb orders keys by length, then bytes: the fields
# are declared in that order so the answer stays byte for byte what it was.
class KindHealth(BaseModel):
    kind: str
    never: int
    total: int
    online: int
    offline: int


class OfflineDevice(BaseModel):
    id: str
    ts: str | None
    lat: float | None
    lon: float | None
    kind: str
    name_zh: str | None
    received_at: str | None
    department_code: str | None
    reported_online: bool | None
    expected_interval_s: int


class DeviceHealthOut(BaseModel):
    as_of: datetime
    offline_after_intervals: int
    totals: HealthTotals
    kinds: list[KindHealth]
    offline_total: int
    offline: list[OfflineDevice]


@router.get("/devices", response_model=list[DeviceOut])
def devices(
    _: CurrentUser,
    conn: ConnDep,
    kinds: KindsDep,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[dict[str, Any]]:
    service.known_kind(kind, kinds)
    return service.devices(conn, kind=kind, limit=limit)


@router.get("/devices/{device_id}", response_model=DeviceDetailOut)
def device(device_id: str, _: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    return service.device(conn, device_id)


@router.get("/devices/{device_id}/track", response_model=TrackOut)
def track(
    device_id: str,
    _: CurrentUser,
    conn: ConnDep,
    start: datetime | None = None,
    end: datetime | None = None,
    max_points: Annotated[int, Query(ge=2, le=20_000)] = 2000,
) -> dict[str, Any]:
    """A device's positions in a window as a GeoJSON LineString, thinned to ``max_points``
    by time buckets (the first fix of each bucket), plus the times of the kept fixes."""
    return service.track(conn, device_id, start=start, end=end, max_points=max_points)


@router.get("/devices/{device_id}/series", response_model=SeriesOut)
def series(
    device_id: str,
    _: CurrentUser,
    conn: ConnDep,
    kinds: KindsDep,
    field: Annotated[str, Query(description="a reading field, e.g. pm25 or level_m")],
    start: datetime | None = None,
    end: datetime | None = None,
    bucket_s: Annotated[float | None, Query(ge=1)] = None,
    max_points: Annotated[int, Query(ge=2, le=20_000)] = 1000,
) -> dict[str, Any]:
    """A measurement over time, averaged in buckets (min/max/count kept)."""
    return service.series(
        conn,
        device_id,
        field=field,
        fields={f for k in kinds.values() for f in k.spec},
        start=start,
        end=end,
        bucket_s=bucket_s,
        max_points=max_points,
    )


@router.get("/alarms", response_model=list[AlarmOut])
def alarms(
    _: CurrentUser,
    conn: ConnDep,
    state: Annotated[str, Query(pattern="^(open|unacknowledged|all)$")] = "unacknowledged",
    kind: str | None = None,
    start: Annotated[datetime | None, Query(description="raised at or after")] = None,
    end: Annotated[datetime | None, Query(description="raised before")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """Alarms newest first, the most severe first within the same minute; ``start``/``end``
    keep those raised in a window (a console's replay asks for its window's alarms)."""
    return service.alarms(conn, state=state, kind=kind, start=start, end=end, limit=limit)


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmAckOut)
def acknowledge(alarm_id: int, user: Operator, conn: ConnDep, request: Request) -> dict[str, Any]:
    """Acknowledge an alarm: recorded, audited, and removed from every console at once."""
    event = service.acknowledge(conn, alarm_id, user, client_address(request))
    request.app.state.live.publish_event(event)
    return event


@router.get("/telemetry/dead-letters", response_model=DeadLettersOut)
def dead_letters(
    _: Operator,
    conn: ConnDep,
    reason: str | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, Any]:
    """Rejected readings with their reason, and the counts by reason over the last day."""
    return service.dead_letters(conn, reason=reason, device_id=device_id, limit=limit)


@router.get("/telemetry/health", response_model=DeviceHealthOut)
def device_health(
    _: Operator,
    conn: ConnDep,
    kinds: KindsDep,
    kind: Annotated[str | None, Query(description="only this kind in the offline list")] = None,
    department: Annotated[
        str | None, Query(max_length=32, description="only this department's devices")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, Any]:
    """Field devices by kind: online, offline, never reported; and the offline ones, those
    heard from last first (``offline_total`` says how many there are beyond ``limit``)."""
    service.known_kind(kind, kinds)
    return service.device_health(conn, kind=kind, department=department, limit=limit)
