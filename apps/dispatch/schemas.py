"""What the dispatch API answers with: the response models of :mod:`apps.dispatch.api`.

They document the shapes in OpenAPI and check what goes out. Each allows fields beyond those
declared (``extra="allow"``), so a field added to a query reaches clients before its model
names it, and nothing a client reads today is ever filtered away.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Rows read from the database carry datetimes; answers that were also announced on the live
# topic were made JSON first and carry the ISO text. Either is sent as it is.
Timestamp = Annotated[datetime | str, Field(description="ISO 8601 time with its UTC offset")]


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class PlanItem(Out):
    unit_type: str
    count: int


class StoredPlanItem(Out):
    """A plan line as the incident stored it (jsonb, which orders keys by length)."""

    count: int
    unit_type: str


class IncidentTypeOut(Out):
    code: str
    name_zh: str
    name_en: str
    priority: int
    plan: list[PlanItem]
    departments: list[str]


class PlansOut(Out):
    incident_types: list[IncidentTypeOut]
    unit_types: dict[str, str] = Field(description="unit type: the department that runs it")
    targets: dict[str, float | int] = Field(description="dispatch and response targets")


class GeocodeOut(Out):
    """The gazetteer's best match for an address, with how it matched."""

    query: str
    match: str
    kind: str
    detail: str | None
    district_code: str | None
    district: str | None
    lon: float
    lat: float
    method: str
    confidence: float


class IncidentOut(Out):
    id: int
    incident_type: str
    priority: int
    status: str
    caller: str | None
    description: str | None
    address: str | None
    geocode: dict[str, Any] | None
    district_code: str | None
    district: str | None
    joint: bool
    source: str
    created_by: str | None
    created_at: Timestamp
    closed_at: Timestamp | None
    lon: float
    lat: float
    area_class: str | None
    response_target_s: float | None
    plan: list[StoredPlanItem] | None
    ticket_id: str | None


class AssignmentRow(Out):
    id: int
    unit_id: str
    call_sign: str
    unit_type: str
    department_code: str
    unit_status: str
    assigned_by: str
    dispatched_at: datetime
    en_route_at: datetime | None
    on_scene_at: datetime | None
    cleared_at: datetime | None
    eta_s: float | None


class TimelineEntry(Out):
    at: datetime
    event: str
    actor: str | None
    detail: dict[str, Any] | None


class IncidentDetailOut(IncidentOut):
    assignments: list[AssignmentRow]
    timeline: list[TimelineEntry]


class IncidentClosedOut(IncidentOut):
    cleared_assignments: list[int] = Field(description="assignments the closing released")


class Snap(Out):
    edge_id: int | None
    fraction: float
    distance_m: float


class CandidateOut(Out):
    rank: int
    unit_id: str
    call_sign: str
    unit_type: str
    department_code: str
    eta_s: float | None
    distance_m: float | None
    straight_m: float
    lon: float | None
    lat: float | None
    position_source: str
    position_ts: str | None
    snap: Snap
    off_network: bool
    flags: list[str]
    route: dict[str, Any] | None = Field(description="GeoJSON LineString of the route")


class PlanNeed(Out):
    unit_type: str
    count: int
    assigned: int
    visible: bool


class HiddenType(Out):
    unit_type: str
    department: str
    reason: str


class RecommendationsOut(Out):
    incident_id: int
    incident_type: str
    k: int
    engine: Literal["graph", "pgrouting"]
    scene: dict[str, Any] = Field(description="the scene: lon, lat and where it snapped")
    plan: list[PlanNeed]
    hidden: list[HiddenType]
    proposal: list[str] = Field(description="unit ids filling the plan, fastest first")
    candidates: list[CandidateOut]
    considered: int
    timings_ms: dict[str, float | int]


class AssignmentMade(Out):
    assignment_id: int
    unit_id: str
    call_sign: str
    dispatched_at: Timestamp
    eta_s: float | None


class AssignedOut(Out):
    incident_id: int
    assignments: list[AssignmentMade]


class StatusOut(Out):
    assignment_id: int
    unit_id: str
    status: str
    incident_id: int
    at: Timestamp
    source: str


class UnitOut(Out):
    id: str
    call_sign: str
    unit_type: str
    department_code: str
    status: str
    status_changed_at: datetime
    device_id: str | None
    station_poi_id: int | None
    station: str | None
    lon: float | None
    lat: float | None
    position_ts: datetime | None
    online: bool | None
    incident_id: int | None
    assignment_id: int | None
    gps_suspect: bool


class HotlineReportOut(Out):
    rows: int
    created: int
    duplicates: int
    unplaced: int
    incidents: list[dict[str, Any]] = Field(description="the incidents made, one per ticket")
    duplicate_rows: list[dict[str, Any]]
    unplaced_rows: list[dict[str, Any]] = Field(description="rows not placed, with the reason")


class CoverageLayerOut(Out):
    """GeoJSON: one polygon per drive time (largest first) and the stations as points."""

    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]]


class CoverageTableOut(Out):
    category: str
    minutes: list[int]
    stations: int
    rows: list[dict[str, Any]] = Field(
        description="per district, then the city (district_code null): census and grid "
        "population, cells, and inside_{m}min, outside_{m}min, share_inside_{m}min per drive time"
    )


class CoverageSuggestionsOut(Out):
    category: str
    minutes: int
    suggestions: list[dict[str, Any]]
