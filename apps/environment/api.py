"""The environment API (``/environment``): AQI, the source registry with live outlet data,
plume modelling, exceedances and the inspection workflow.

Reading needs a login (the registry: the roles that see pollution sources); writing tasks
needs an inspector or supervisor, and the workflow checks who may take each step. New
exceedances and task changes are announced to the consoles as live events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from apps.environment import (
    airquality,
    attribution,
    casework,
    evacuation,
    inspection,
    monthly,
    registry,
    release,
    statistics,
)
from gis_core.identity import Principal
from web.deps import ConnDep, CurrentUser, SettingsDep, require_roles

router = APIRouter(tags=["environment"])

Viewer = Annotated[
    Principal, Depends(require_roles("planner", "inspector", "supervisor", "dispatcher"))
]
Inspector = Annotated[Principal, Depends(require_roles("inspector", "supervisor"))]
# Who may open a dispatch incident: dispatch's own operators.
Operator = Annotated[Principal, Depends(require_roles("dispatcher", "supervisor"))]


def _announce(request: Request, body: dict[str, Any]) -> None:
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish_event(body)


# --------------------------------------------------------------------------- models


class AqiRow(BaseModel):
    id: str = Field(description="station device id, district code or 'city'")
    name: str
    district_code: str | None
    time: str = Field(description="local (China Standard Time) hour or day")
    standard: str = Field(description="the HJ 633 edition this figure was computed by")
    aqi: int
    level: int | None
    level_zh: str | None
    level_en: str | None
    colour: str | None
    primary: list[str]
    iaqi: dict[str, int]
    complete: bool
    publishable: bool


class AqiReport(BaseModel):
    scope: str
    period: str
    standard: str
    start: str
    end: str
    rows: list[AqiRow]


class Limit(BaseModel):
    pollutant: str
    limit: float
    unit: str
    averaging: str
    o2_reference_pct: float | None
    standard: str


class Live(BaseModel):
    ts: str
    online: bool
    reading: dict[str, Any]


class OutletOut(BaseModel):
    id: int
    code: str
    name_zh: str
    medium: str
    standard: str
    mn: str
    device_id: str | None
    lon: float
    lat: float
    limits: list[Limit]
    live: Live | None


class EnterpriseOut(BaseModel):
    id: int
    name_zh: str
    credit_code: str
    industry_code: str
    industry_zh: str
    district_code: str | None


class SourceOut(BaseModel):
    id: int
    kind: str
    name_zh: str
    stack_height_m: float | None
    lon: float
    lat: float
    enterprise: EnterpriseOut | None
    outlets: list[OutletOut]


class PlumeIn(BaseModel):
    """A release: a stack (height, diameter, exit velocity and temperature) or an accidental
    release at a point (leave the stack fields out; give duration_s and elapsed_s for a
    release of limited duration). Weather left out is the nearest weather station's."""

    lon: float = Field(examples=[113.12])
    lat: float = Field(examples=[36.19])
    emission_gs: float = Field(ge=0, le=1e6, description="emission rate, g/s", examples=[100])
    height_m: float = Field(1.0, gt=0, le=500)
    diameter_m: float = Field(0.5, gt=0, le=30)
    exit_velocity_ms: float = Field(0.0, ge=0, le=100)
    exit_temp_c: float | None = Field(None, ge=-50, le=1500)
    duration_s: float | None = Field(None, gt=0)
    elapsed_s: float | None = Field(None, ge=0)
    wind_ms: float | None = Field(None, ge=0, le=75)
    wind_from_deg: float | None = Field(None, ge=0, le=360)
    temp_c: float | None = Field(None, ge=-50, le=60)
    cloud_oktas: float | None = Field(None, ge=0, le=8)
    stability: str | None = Field(None, description="A..F or A-B, B-C, C-D; default: weather")
    terrain: str = Field("rural", description="rural or urban dispersion coefficients")
    thresholds: list[float] = Field(
        default_factory=lambda: list(release.DEFAULT_THRESHOLDS),
        min_length=1,
        max_length=8,
        description="contour levels, µg/m³",
    )
    half_width_m: float = Field(5000.0, ge=100, le=50_000)
    cells: int = Field(200, ge=2, le=release.MAX_CELLS)


class PlumeWeather(BaseModel):
    wind_ms: float | None
    wind_from_deg: float | None
    temp_c: float | None
    cloud_oktas: float | None
    station: dict[str, Any] | None


class PlumeOut(BaseModel):
    type: str = "FeatureCollection"
    features: list[dict[str, Any]] = Field(
        description="one per threshold: the area at or above it (lon/lat) with population, "
        "schools, hospitals and the places counted"
    )
    stability: str
    weather: PlumeWeather
    peak: dict[str, float]
    model_ms: float
    total_ms: float


class PlumeIncidentIn(PlumeIn):
    """A release to model and hand to dispatch as a hazmat incident."""

    evacuate_ugm3: float = Field(
        evacuation.DEFAULT_EVACUATE_UGM3,
        gt=0,
        description="evacuate the ground at or above this concentration, µg/m³",
    )
    priority: int | None = Field(None, ge=1, le=4, description="default: the hazmat plan's")
    description: str | None = Field(None, max_length=2000)


class EvacuationOut(BaseModel):
    id: int
    incident_id: int
    threshold_ugm3: float
    area_km2: float
    population: int
    schools: int
    hospitals: int
    stability: str
    geometry: dict[str, Any] = Field(description="the evacuation area, GeoJSON (lon/lat)")
    places: list[dict[str, Any]] | None = None
    release: dict[str, Any] | None = None
    created_by: str | None = None
    created_at: datetime | None = None


class PlumeIncidentOut(BaseModel):
    incident: dict[str, Any] = Field(description="the dispatch incident, as dispatch shows it")
    evacuation: EvacuationOut
    plume: PlumeOut


class UpwindSource(BaseModel):
    rank: int
    source_id: int
    source: str
    enterprise_id: int | None
    enterprise: str | None
    stack_height_m: float
    lon: float
    lat: float
    distance_m: float
    downwind_m: float = Field(description="how far downwind of this stack the station lies")
    crosswind_m: float
    emission_gs: float = Field(description="concentration × flue-gas flow of its outlets")
    contribution_ugm3: float = Field(description="its modelled ground-level µg/m³ there")
    share: float = Field(description="of the modelled total of all stacks")
    outlets: list[dict[str, Any]]


class UpwindOut(BaseModel):
    exceedance_id: int | None = None
    monitor: dict[str, Any]
    pollutant: str
    emitted_as: str = Field(description="the outlet monitors' field credited with it")
    at: str
    weather: dict[str, Any]
    modelled_ugm3: float
    observed_ugm3: float | None = Field(description="the station's mean over the hour before")
    sources: list[UpwindSource]
    downwind_of: int = Field(description="stacks whose plume reaches the station")
    measured: int = Field(description="stacks with an emission reading at that time")
    unmeasured: list[int] = Field(description="source ids with no reading then")


def _upwind_options(
    wind_ms: Annotated[float | None, Query(ge=0, le=75, description="default: station")] = None,
    wind_from_deg: Annotated[float | None, Query(ge=0, le=360)] = None,
    stability: Annotated[str | None, Query(description="A..F; default: from weather")] = None,
    terrain: Annotated[str, Query(description="rural or urban")] = "rural",
    radius_m: Annotated[float, Query(ge=100, le=attribution.MAX_RADIUS_M)] = 20_000.0,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    return {"wind_ms": wind_ms, "wind_from_deg": wind_from_deg, "stability": stability,
            "terrain": terrain, "radius_m": radius_m, "limit": limit}  # fmt: skip


UpwindOptions = Annotated[dict[str, Any], Depends(_upwind_options)]


class ExceedanceOut(BaseModel):
    id: int
    kind: str
    device_id: str
    outlet_id: int | None
    pollutant: str
    averaging: str
    limit: float
    standard: str
    peak: float
    started_at: datetime
    ended_at: datetime | None
    hours: int
    task_id: int | None


class ScanIn(BaseModel):
    hours: int = Field(24, ge=1, le=31 * 24, description="scan this many hours back from now")


class ScanOut(BaseModel):
    events: int
    new: list[dict[str, Any]]


class TaskOut(BaseModel):
    id: int
    title: str
    enterprise_id: int | None
    outlet_id: int | None
    exceedance_id: int | None
    state: str
    due_at: datetime
    assignee: str | None
    created_by: str
    note: str | None
    created_at: datetime
    updated_at: datetime
    overdue: bool


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    due_at: datetime = Field(description="with its offset, e.g. 2026-12-08T17:00:00+08:00")
    enterprise_id: int | None = None
    outlet_id: int | None = None
    exceedance_id: int | None = None
    assignee: str | None = Field(None, max_length=100)
    note: str | None = Field(None, max_length=4000)


class TransitionIn(BaseModel):
    state: str = Field(description=", ".join(inspection.TASK_STATES), examples=["assigned"])
    assignee: str | None = Field(None, max_length=100)
    note: str | None = Field(None, max_length=4000)


# --------------------------------------------------------------------------- routes


@router.get("/aqi", response_model=AqiReport, summary="AQI by HJ 633-2012 or HJ 633-2026")
def get_aqi(
    _: CurrentUser,
    conn: ConnDep,
    scope: Annotated[str, Query(description="station, district or city")] = "district",
    period: Annotated[str, Query(description="hourly or daily")] = "hourly",
    standard: Annotated[
        str, Query(description="HJ 633-2012, HJ 633-2026 or auto (the edition in force)")
    ] = "auto",
    start: Annotated[date | None, Query(description="first local day (default today)")] = None,
    end: Annotated[date | None, Query(description="last local day (default start)")] = None,
) -> Any:
    """Hourly or daily AQI of the air stations' telemetry, per station, district or city; each
    row names the edition it was computed by (``auto``: the edition in force at its time)."""
    today = (datetime.now(UTC) + timedelta(hours=8)).date()
    first = start or today
    return airquality.report(
        conn, scope=scope, period=period, standard=standard, start=first, end=end or first
    )


@router.get("/sources", response_model=list[SourceOut], summary="Pollution sources")
def get_sources(
    _: Viewer,
    conn: ConnDep,
    district: Annotated[str | None, Query(max_length=12)] = None,
    industry: Annotated[str | None, Query(max_length=8, description="GB/T 4754 code")] = None,
    limit: Annotated[int, Query(ge=1, le=registry.MAX_SOURCES)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Sources with their enterprise, outlets, permit limits and the outlets' live data."""
    return registry.list_sources(
        conn, district=district, industry=industry, limit=limit, offset=offset
    )


@router.get("/sources/{source_id}", response_model=SourceOut, summary="One pollution source")
def get_source(source_id: int, _: Viewer, conn: ConnDep) -> Any:
    return registry.get_source(conn, source_id)


@router.post("/plume", response_model=PlumeOut, summary="Plume of a release: contours, affected")
def post_plume(body: PlumeIn, _: CurrentUser, conn: ConnDep) -> Any:
    """Gaussian plume (Briggs rise and σ) over a receptor grid about the release: the areas
    at or above each threshold as GeoJSON, with residents, schools and hospitals inside."""
    fields = body.model_dump()
    fields["thresholds"] = tuple(fields["thresholds"])
    return release.simulate(conn, release.Release(**fields))


@router.post(
    "/plume/incident",
    response_model=PlumeIncidentOut,
    status_code=201,
    summary="Plume → hazmat incident in dispatch with its evacuation area",
    responses={409: {"description": "the dispatch application is not installed"}},
)
def post_plume_incident(
    body: PlumeIncidentIn, user: Operator, conn: ConnDep, request: Request
) -> Any:
    """Model the release as ``POST /plume`` does, then open a ``hazmat`` incident in dispatch
    at the release point with the ground at or above ``evacuate_ugm3`` as its evacuation area
    (kept here and on the incident's timeline); dispatch's recommendations work for it."""
    fields = body.model_dump(exclude={"evacuate_ugm3", "priority", "description"})
    fields["thresholds"] = tuple(fields["thresholds"])
    made = evacuation.open_hazmat_incident(
        conn,
        user,
        release.Release(**fields),
        evacuate_ugm3=body.evacuate_ugm3,
        priority=body.priority,
        description=body.description,
    )
    conn.commit()
    live = getattr(request.app.state, "live", None)
    if live is not None:  # dispatch's consoles see it as any new incident
        live.publish_event({"type": "incident", "event": "created", "incident": made["incident"]})
    return made


@router.get(
    "/plume/incidents/{incident_id}",
    response_model=EvacuationOut,
    summary="The evacuation area of a hazmat incident",
)
def get_evacuation(incident_id: int, _: CurrentUser, conn: ConnDep) -> Any:
    return evacuation.evacuation_of(conn, incident_id)


@router.get(
    "/upwind", response_model=UpwindOut, summary="Stacks ranked by contribution at a station"
)
def get_upwind(
    _: Viewer,
    conn: ConnDep,
    options: UpwindOptions,
    device_id: Annotated[str, Query(max_length=64, description="the air station")],
    pollutant: Annotated[str, Query(description="so2, no2, pm10 or pm25")],
    at: Annotated[datetime, Query(description="the moment, with its offset")],
) -> Any:
    """The registered stacks near an air station ranked by their modelled contribution to a
    pollutant there at a moment: each stack's plume (its outlet monitor's concentration ×
    flow, the nearest weather station's wind and stability then) evaluated at the station."""
    return attribution.upwind_sources(conn, device_id, pollutant, at, **options)


@router.get(
    "/exceedances/{exceedance_id}/upwind",
    response_model=UpwindOut,
    summary="The stacks upwind of an ambient exceedance, ranked",
)
def get_exceedance_upwind(
    exceedance_id: int, _: Viewer, conn: ConnDep, options: UpwindOptions
) -> Any:
    """As ``/upwind``, for an ambient exceedance's station and pollutant at the middle of
    its first exceeding hour."""
    return attribution.for_exceedance(conn, exceedance_id, **options)


@router.get("/exceedances", response_model=list[ExceedanceOut], summary="Exceedance events")
def get_exceedances(
    _: CurrentUser,
    conn: ConnDep,
    kind: Annotated[str | None, Query(description="emission or ambient")] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Any:
    return inspection.list_exceedances(
        conn, kind=kind, open_only=open_only, since=since, limit=limit
    )


@router.post("/exceedances/scan", response_model=ScanOut, summary="Find new exceedances")
def scan_exceedances(body: ScanIn, user: Inspector, conn: ConnDep, request: Request) -> Any:
    """Scan the last hours of telemetry; each new emission exceedance opens a task."""
    until = datetime.now(UTC)
    found = inspection.scan(conn, until - timedelta(hours=body.hours), until, user)
    conn.commit()
    for item in found["new"]:
        _announce(request, {"type": "exceedance", "exceedance": item})
    return found


@router.get("/tasks", response_model=list[TaskOut], summary="Inspection tasks")
def get_tasks(
    _: CurrentUser,
    conn: ConnDep,
    state: Annotated[str | None, Query()] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
    overdue: Annotated[bool, Query()] = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Any:
    return inspection.list_tasks(conn, state=state, assignee=assignee, overdue=overdue, limit=limit)


@router.get("/tasks/{task_id}", response_model=TaskOut, summary="One inspection task")
def get_task(task_id: int, _: CurrentUser, conn: ConnDep) -> Any:
    return inspection.get_task(conn, task_id)


@router.post("/tasks", response_model=TaskOut, status_code=201, summary="Create a task")
def post_task(body: TaskIn, user: Inspector, conn: ConnDep, request: Request) -> Any:
    task = inspection.create_task(conn, user, **body.model_dump())
    conn.commit()
    _announce(request, {"type": "task", "event": "created", "task_id": task["id"]})
    return task


@router.post(
    "/tasks/{task_id}/transition", response_model=TaskOut, summary="Move a task on its workflow"
)
def post_transition(
    task_id: int, body: TransitionIn, user: CurrentUser, conn: ConnDep, request: Request
) -> Any:
    """open → assigned → inspecting → reported → closed (supervisor assigns, cancels, closes
    and sends back; the assignee starts and reports)."""
    task = inspection.transition(
        conn, user, task_id, body.state, assignee=body.assignee, note=body.note
    )
    conn.commit()
    _announce(request, {"type": "task", "event": body.state, "task_id": task_id})
    return task


# --------------------------------------------------------------------------- casework


class RecordIn(BaseModel):
    findings: str = Field(min_length=1, max_length=20_000, description="what was found on site")
    visited_at: datetime | None = Field(None, description="default: now; with its offset")


class ViolationIn(BaseModel):
    clause: str = Field(min_length=1, max_length=500, examples=["大气污染防治法第九十九条"])
    description: str = Field(min_length=1, max_length=4000)
    penalty_yuan: float | None = Field(None, ge=0, le=1e9)
    state: str = Field("found", description="found, decided, paid or rectified")


class ComplaintIn(BaseModel):
    content: str = Field(min_length=1, max_length=4000)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    source: str = Field("phone", description="hotline, phone, letter, visit or online")
    ticket_id: str | None = Field(None, max_length=64)
    received_at: datetime | None = None
    open_task: bool = Field(True, description="open an inspection task for the matched one")
    radius_m: float = Field(casework.MATCH_RADIUS_M, ge=10, le=10_000)


class HotlineIn(BaseModel):
    open_task: bool = True


class PhotoOut(BaseModel):
    id: int
    record_id: int
    filename: str
    content_type: str = Field(description="image/jpeg or image/png, by the file's first bytes")
    size_bytes: int
    sha256: str
    uploaded_by: str
    created_at: datetime


class ViolationOut(BaseModel):
    id: int
    record_id: int
    enterprise_id: int | None = Field(description="the inspected task's enterprise")
    clause: str
    description: str
    penalty_yuan: float | None
    state: str = Field(description="found, decided, paid or rectified")
    created_by: str
    created_at: datetime


class RecordOut(BaseModel):
    id: int
    task_id: int
    inspector: str
    visited_at: datetime
    findings: str
    created_at: datetime
    photos: list[PhotoOut]
    violations: list[ViolationOut]


class NearEnterprise(BaseModel):
    enterprise_id: int
    name_zh: str
    distance_m: float


class ComplaintOut(BaseModel):
    id: int
    source: str
    ticket_id: str | None = Field(description="the 12345 hotline's ticket number")
    received_at: datetime
    content: str
    enterprise_id: int | None = Field(description="the nearest enterprise within the radius")
    distance_m: float | None
    candidates: list[NearEnterprise] = Field(description="the enterprises near, nearest first")
    task_id: int | None = Field(description="the inspection task opened for it")
    created_by: str
    created_at: datetime
    lon: float
    lat: float


class HotlineOut(BaseModel):
    imported: int
    matched: int = Field(description="of them, matched to an enterprise")
    complaints: list[ComplaintOut]


class EscalationOut(BaseModel):
    task_id: int
    overdue_hours: float
    assignee: str | None
    escalated_on: str = Field(description="the local (China Standard Time) day, ISO 8601")


class EscalateOut(BaseModel):
    escalated: list[EscalationOut]


class EnterpriseViolations(BaseModel):
    enterprise_id: int | None
    name_zh: str | None
    violations: int
    penalty_yuan: float


class InspectionReport(BaseModel):
    year: int
    quarter: int
    start: str = Field(description="the quarter's first instant, China Standard Time")
    end: str = Field(description="the next quarter's first instant")
    tasks: int
    tasks_by_state: dict[str, int]
    tasks_from_exceedances: int
    tasks_overdue: int
    tasks_escalated: int
    records: int
    photos: int
    violations: int
    penalties_decided_yuan: float
    penalties_paid_yuan: float
    enterprises_most_violations: list[EnterpriseViolations] = Field(description="the top ten")
    complaints: int
    complaints_by_source: dict[str, int]
    complaints_matched: int


@router.post(
    "/tasks/{task_id}/records",
    response_model=RecordOut,
    status_code=201,
    summary="An on-site inspection record",
)
def post_record(task_id: int, body: RecordIn, user: Inspector, conn: ConnDep) -> Any:
    record = casework.add_record(
        conn, user, task_id, findings=body.findings, visited_at=body.visited_at
    )
    conn.commit()
    return record


@router.get(
    "/tasks/{task_id}/records",
    response_model=list[RecordOut],
    summary="A task's records, photos and violations",
)
def get_records(task_id: int, _: CurrentUser, conn: ConnDep) -> Any:
    return casework.records_of(conn, task_id)


@router.post(
    "/records/{record_id}/photos",
    response_model=PhotoOut,
    status_code=201,
    summary="Attach a photo (JPEG or PNG, ≤ 10 MB) to a record",
    responses={413: {"description": "too large"}, 415: {"description": "not JPEG or PNG"}},
)
async def post_photo(
    record_id: int, file: UploadFile, user: Inspector, conn: ConnDep, settings: SettingsDep
) -> Any:
    data = await file.read(casework.MAX_PHOTO_BYTES + 1)
    photo = casework.add_photo(
        conn,
        user,
        record_id,
        filename=file.filename or "photo",
        data=data,
        var_dir=settings.platform.var_dir,
    )
    conn.commit()
    return photo


@router.get("/photos/{photo_id}", summary="A record's photo", response_class=FileResponse)
def get_photo(photo_id: int, _: CurrentUser, conn: ConnDep, settings: SettingsDep) -> Any:
    path, content_type, name = casework.photo_file(conn, photo_id, settings.platform.var_dir)
    return FileResponse(path, media_type=content_type, filename=name)


@router.post(
    "/records/{record_id}/violations",
    response_model=ViolationOut,
    status_code=201,
    summary="A violation and its penalty",
)
def post_violation(record_id: int, body: ViolationIn, user: Inspector, conn: ConnDep) -> Any:
    violation = casework.add_violation(conn, user, record_id, **body.model_dump())
    conn.commit()
    return violation


@router.post(
    "/complaints",
    response_model=ComplaintOut,
    status_code=201,
    summary="A complaint (信访), matched to enterprises",
)
def post_complaint(body: ComplaintIn, user: Inspector, conn: ConnDep, request: Request) -> Any:
    """Matched to the nearest enterprise within ``radius_m``; with ``open_task``, an inspection
    task for it."""
    complaint = casework.create_complaint(conn, user, **body.model_dump())
    conn.commit()
    if complaint["task_id"] is not None:
        _announce(request, {"type": "task", "event": "created", "task_id": complaint["task_id"]})
    return complaint


@router.get("/complaints", response_model=list[ComplaintOut], summary="Complaints, newest first")
def get_complaints(
    _: Viewer,
    conn: ConnDep,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Any:
    return casework.list_complaints(conn, since=since, limit=limit)


@router.post(
    "/complaints/hotline",
    response_model=HotlineOut,
    summary="12345 hotline tickets about the environment",
)
def post_hotline(body: HotlineIn, user: Inspector, conn: ConnDep) -> Any:
    """The hotline tickets dispatch imported whose text is about the environment (odour,
    smoke, dust, noise, sewage...), as complaints matched to the enterprises near them."""
    made = casework.import_hotline(conn, user, open_task=body.open_task)
    conn.commit()
    return made


@router.post(
    "/tasks/escalate", response_model=EscalateOut, summary="Escalate overdue tasks (超时催办)"
)
def post_escalate(_: Inspector, conn: ConnDep, request: Request) -> Any:
    """Each task past its due time, once a local day; the watcher does this every round."""
    made = casework.escalate_overdue(conn)
    conn.commit()
    for e in made:
        _announce(request, {"type": "task", "event": "escalated", **e})
    return {"escalated": made}


@router.get(
    "/reports/inspection",
    response_model=InspectionReport,
    summary="The quarterly inspection report",
)
def get_inspection_report(
    _: Viewer,
    conn: ConnDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    quarter: Annotated[int | None, Query(ge=1, le=4)] = None,
) -> Any:
    """Tasks by state, overdue and escalated, records, photos, violations and penalties,
    complaints by channel (default: the current quarter, China Standard Time)."""
    now_year, now_quarter = casework.this_quarter()
    return casework.quarterly_report(conn, year or now_year, quarter or now_quarter)


# --------------------------------------------------------------------------- statistics

StatsBy = Annotated[str, Query(description="outlet, enterprise, industry or district")]
StatsPeriod = Annotated[str, Query(description="month, quarter or year (local time)")]


class LoadRow(BaseModel):
    key: str = Field(description="the group's code: outlet id, enterprise id, industry or district")
    name: str
    period: str = Field(description="the period's first local day")
    hours: int = Field(description="outlet-hours measured")
    outlets: int
    load_kg: dict[str, float] = Field(description="kg by pollutant (so2, nox, dust)")


class ExceedanceRateRow(BaseModel):
    key: str
    name: str
    period: str
    pollutant: str
    hours: int = Field(description="outlet-hours measured")
    hours_over: int = Field(description="of them, above the permit's 1-hour limit")
    rate: float
    events: int = Field(description="emission exceedance events that began then")


class AqiDaysRow(BaseModel):
    id: str = Field(description="station device id, district code or 'city'")
    name: str
    period: str
    days_by_level: dict[str, int] = Field(description="AQI level 1..6 → days")
    good_days: int = Field(description="levels 1 and 2")
    no_data: int
    standards: list[str] = Field(description="the HJ 633 editions the counts come from")


@router.get(
    "/stats/loads",
    response_model=list[LoadRow],
    summary="Emission loads, kg, by group and period",
)
def get_loads(
    _: Viewer, conn: ConnDep, start: date, end: date, by: StatsBy = "district",
    period: StatsPeriod = "month",
) -> Any:  # fmt: skip
    """Σ over measured hours of each outlet's hourly mean concentration × flow."""
    return statistics.loads(conn, by=by, period=period, start=start, end=end)


@router.get(
    "/stats/exceedance-rates",
    response_model=list[ExceedanceRateRow],
    summary="Hours above permit limits, by group and period",
)
def get_rates(
    _: Viewer, conn: ConnDep, start: date, end: date, by: StatsBy = "industry",
    period: StatsPeriod = "month",
) -> Any:  # fmt: skip
    return statistics.exceedance_rates(conn, by=by, period=period, start=start, end=end)


@router.get(
    "/stats/aqi-days",
    response_model=list[AqiDaysRow],
    summary="Days at each AQI level, by station/district/city",
)
def get_aqi_days(
    _: CurrentUser,
    conn: ConnDep,
    start: date,
    end: date,
    scope: Annotated[str, Query(description="station, district or city")] = "district",
    period: StatsPeriod = "month",
    standard: Annotated[str, Query(description="HJ 633-2012, HJ 633-2026 or auto")] = "auto",
) -> Any:
    return statistics.aqi_days(
        conn, scope=scope, period=period, start=start, end=end, standard=standard
    )


@router.get(
    "/reports/monthly.pdf",
    summary="The monthly report as PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def get_monthly_pdf(
    _: Viewer,
    conn: ConnDep,
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", examples=["2026-11"])],
) -> Response:
    """AQI days by level and the city's daily AQI; loads by district and industry, SO2
    exceedance rates, the month's inspection work (made here, offline)."""
    pdf, _figures = monthly.monthly_pdf(conn, month)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="environment-{month}.pdf"'},
    )
