"""The traffic API (``/traffic``): controller event batches, signal performance measures and
the coordination diagram, live road speeds, red-light violations, fault work orders and
message signs.

Reading needs a login; writes need an operator role (dispatcher or supervisor; admins
always). Changes consoles should see at once are published on the application's event topic
(``cz/v1/events/traffic``) as ``{"type": ...}``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from apps.traffic import service
from gis_core.identity import Principal
from realtime.topics import command, event_topic
from web.deps import ConnDep, CurrentUser, require_roles

router = APIRouter(tags=["traffic"])

Operator = Annotated[Principal, Depends(require_roles("dispatcher", "supervisor"))]


def _publish(request: Request, topic: str, body: dict[str, Any], *, retain: bool = False) -> None:
    client = getattr(request.app.state, "mqtt", None)
    if client is not None:
        client.publish(topic, json.dumps(body, ensure_ascii=False, default=str), 1, retain)


# --------------------------------------------------------------------------- models


class EventBatch(BaseModel):
    """A controller's batch of hi-res events (Indiana enumerations), in any order."""

    ts: list[datetime] = Field(max_length=service.MAX_BATCH, description="with a time zone")
    code: list[int] = Field(max_length=service.MAX_BATCH, description="enumeration 0-255")
    param: list[int] = Field(max_length=service.MAX_BATCH, description="parameter 0-32767")


class IngestOut(BaseModel):
    received: int
    stored: int
    duplicates_in_batch: int
    already_stored: int = Field(description="events this junction had already sent")
    out_of_order: int


class JunctionOut(BaseModel):
    id: int
    device_id: str | None
    name_zh: str
    lon: float | None
    lat: float | None
    mode: str | None
    fault: str | None
    state: str = Field(description="the mode, or fault / offline / unknown")
    open_work_orders: int
    bin_start: datetime | None
    share_on_green: float | None
    split_failures: int | None
    volume: int | None


class MeasureRow(BaseModel):
    junction_id: int
    bin_start: datetime
    phase: int
    arrivals: int
    arrivals_on_green: int
    pct_aog: float | None
    platoon_ratio: float | None
    green_s: float | None
    cycles: int
    split_failures: int
    gap_out: int
    max_out: int
    force_off: int
    ped_samples: int
    ped_delay_s: float | None
    volume: int


class LogFlag(BaseModel):
    kind: str
    junction: int
    param: int
    ts: datetime


class MeasuresOut(BaseModel):
    junction_id: int
    rows: list[MeasureRow]
    flags: list[LogFlag]


class PcdPoint(BaseModel):
    ts: datetime
    phase: int
    cycle_start: datetime
    t_in_cycle_s: float
    green_start_s: float
    green_end_s: float
    cycle_s: float


class SpeedFeature(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: dict[str, Any] = Field(description="the road, a GeoJSON LineString")
    properties: dict[str, Any] = Field(
        description="road_id, name, speed_kmh, free_speed_kmh, congestion_index (live / free "
        "speed), observations, updated_at"
    )


class SpeedsOut(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[SpeedFeature]


class SpeedUpdateOut(BaseModel):
    fixes: int
    matched: int
    segments: int


class ApplyOut(BaseModel):
    lifted: int
    slowed: int


class ViolationIn(BaseModel):
    junction_id: int = Field(ge=0)
    phase: int = Field(ge=1, le=255)
    ts: datetime
    plate: str = Field(min_length=1, max_length=16)
    approach: str | None = Field(None, max_length=16)
    camera_id: str | None = Field(None, max_length=64)
    photo_ref: str | None = Field(None, max_length=500)


class ViolationOut(BaseModel):
    id: int
    junction_id: int
    phase: int
    ts: datetime
    plate: str
    verdict: Literal["confirmed", "review", "no_signal_data"]
    signal_state: str | None
    state_since: datetime | None
    reason: str


class WorkOrderOut(BaseModel):
    id: int
    alarm_id: int | None
    device_id: str
    junction_id: int | None
    fault: str
    state: str
    opened_at: datetime
    due_at: datetime
    escalation: int
    escalated_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None


class WorkOrderPatch(BaseModel):
    state: Literal["open", "in_progress", "done"]


class SignOut(BaseModel):
    id: str
    name_zh: str
    road_id: int | None
    rows: int
    columns: int
    lon: float | None
    lat: float | None
    lines: list[str] | None
    sent_by: str | None
    sent_at: datetime | None


class MessageIn(BaseModel):
    text: str | None = Field(None, max_length=500, description="laid out to fit the sign")
    lines: list[str] | None = Field(None, max_length=8, description="or the lines as shown")
    reason: str | None = Field(None, max_length=200)


class MessageOut(BaseModel):
    id: int
    sign_id: str
    lines: list[str]
    sent_by: str
    sent_at: datetime
    reason: str | None


class SuggestionOut(BaseModel):
    sign_id: str
    lines: list[str] | None
    why: str


# --------------------------------------------------------------------------- routes

From = Annotated[datetime, Query(alias="from", description="start, with a time zone")]
To = Annotated[datetime, Query(description="end (exclusive), with a time zone")]


@router.get("/junctions", response_model=list[JunctionOut], summary="Junctions by state")
def junctions(_: CurrentUser, conn: ConnDep) -> Any:
    return service.junctions(conn)


class EventsIn(EventBatch):
    junction_id: int = Field(ge=0)


@router.post("/events", response_model=IngestOut, summary="A batch of controller events")
def post_events(batch: EventsIn, _: Operator, conn: ConnDep) -> Any:
    report = service.ingest_events(conn, batch.junction_id, batch.ts, batch.code, batch.param)
    conn.commit()
    return report.__dict__


@router.get(
    "/junctions/{junction_id}/measures",
    response_model=MeasuresOut,
    summary="Performance measures per 15-minute bin and phase (computed and stored)",
)
def measures(junction_id: int, start: From, to: To, _: CurrentUser, conn: ConnDep) -> Any:
    service.junction(conn, junction_id)
    frame, flags = service.compute_and_store(conn, [junction_id], start, to)
    conn.commit()
    return {
        "junction_id": junction_id,
        "rows": frame.to_dict("records"),
        "flags": flags,
    }


@router.get(
    "/junctions/{junction_id}/pcd",
    response_model=list[PcdPoint],
    summary="Purdue coordination diagram points",
)
def pcd(
    junction_id: int,
    start: From,
    to: To,
    _: CurrentUser,
    conn: ConnDep,
    phase: Annotated[int | None, Query(ge=1, le=255)] = None,
) -> Any:
    return service.coordination(conn, junction_id, start, to, phase)


@router.get(
    "/speeds", response_model=SpeedsOut, summary="Live segment speeds as GeoJSON over ref.road"
)
def speeds(_: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    return service.speeds_geojson(conn)


@router.post(
    "/speeds/update", response_model=SpeedUpdateOut, summary="Map-match recent fleet fixes"
)
def speeds_update(
    request: Request,
    _: Operator,
    conn: ConnDep,
    minutes: Annotated[float, Query(ge=1, le=1440)] = 15.0,
) -> Any:
    result = service.update_speeds(conn, minutes=minutes)
    conn.commit()
    _publish(request, event_topic("traffic"), {"type": "speeds", **result})
    return result


@router.post(
    "/speeds/apply",
    response_model=ApplyOut,
    summary="Write congested segments to the shared road graph as slowdowns",
)
def speeds_apply(
    _: Operator, conn: ConnDep, below: Annotated[float, Query(gt=0, le=1)] = 0.6
) -> Any:
    result = service.apply_speeds(conn, below=below)
    conn.commit()
    return result


@router.post("/violations", response_model=ViolationOut, summary="A red-light camera event")
def post_violation(body: ViolationIn, request: Request, _: Operator, conn: ConnDep) -> Any:
    made = service.check_and_store_violation(conn, **body.model_dump())
    conn.commit()
    _publish(request, event_topic("traffic"), {"type": "violation", "violation": made})
    return made


@router.get("/violations", response_model=list[ViolationOut], summary="Recent violations")
def get_violations(
    _: CurrentUser,
    conn: ConnDep,
    verdict: Literal["confirmed", "review", "no_signal_data"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    return service.violations(conn, verdict, limit)


@router.get(
    "/work-orders",
    response_model=list[WorkOrderOut],
    summary="Fault work orders (opened from alarms and escalated on read)",
)
def get_work_orders(
    _: CurrentUser,
    conn: ConnDep,
    state: Literal["open", "in_progress", "done"] | None = None,
) -> Any:
    service.sync_work_orders(conn)
    conn.commit()
    return service.work_orders(conn, state)


@router.patch(
    "/work-orders/{order_id}", response_model=WorkOrderOut, summary="Start or close an order"
)
def patch_work_order(order_id: int, body: WorkOrderPatch, user: Operator, conn: ConnDep) -> Any:
    order = service.set_work_order_state(conn, order_id, body.state, user.username)
    conn.commit()
    return order


@router.get("/signs", response_model=list[SignOut], summary="Message signs and what they show")
def get_signs(_: CurrentUser, conn: ConnDep) -> Any:
    return service.signs(conn)


@router.get(
    "/signs/{sign_id}/suggestion",
    response_model=SuggestionOut,
    summary="A suggested message from the sign's road (closed or congested)",
)
def sign_suggestion(
    sign_id: str, _: CurrentUser, conn: ConnDep, lang: Literal["zh", "en"] = "zh"
) -> Any:
    return service.suggest_message(conn, sign_id, lang)


@router.post(
    "/signs/{sign_id}/message",
    response_model=MessageOut,
    summary="Put an approved message on a sign (validated, audited, sent over MQTT)",
)
def sign_message(
    sign_id: str, body: MessageIn, request: Request, user: Operator, conn: ConnDep
) -> Any:
    made = service.put_message(
        conn, sign_id, text=body.text, lines=body.lines, by=user.username, reason=body.reason
    )
    conn.commit()
    _publish(
        request, command("vms", sign_id), {"lines": made["lines"], "id": made["id"]}, retain=True
    )
    _publish(request, event_topic("traffic"), {"type": "sign", "message": made})
    return made
