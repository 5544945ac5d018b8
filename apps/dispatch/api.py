"""The dispatch API (``/dispatch``): incidents, recommendations, assignments, coverage, CAP.

Writes need the dispatcher or supervisor role (admins always); reading needs a login. A
dispatcher sees and assigns the units of their own department only, unless the incident is
declared joint; supervisors, admins and the command centre see every agency. Every change is
announced to the consoles as a live event ``{"type": "incident", "event": ...}``.
"""

from __future__ import annotations

import math
import threading
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from apps.dispatch import cap, coverage, hotline, incidents, plans, routing, schemas, terminals
from apps.dispatch.gazetteer import Unmatched, gazetteer_for, geocode
from gis_core.errors import InvalidInput, InvalidParameter
from gis_core.identity import Principal
from web.deps import ConnDep, CurrentUser, require_roles

router = APIRouter(tags=["dispatch"])

Operator = Annotated[Principal, Depends(require_roles("dispatcher", "supervisor"))]
UNMATCHED_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Invalid input; an address that matched nothing comes with suggestions",
        "content": {
            "application/json": {
                "example": {
                    "detail": "the address '火星基地' matches nothing in the gazetteer",
                    "suggestions": [{"name": "潞州区", "kind": "district", "score": 0.0}],
                }
            }
        },
    }
}
MAX_UPLOAD = 20 * 1024 * 1024


class IncidentIn(BaseModel):
    """A new incident. Give the location as lon/lat (any supported CRS) or as an address."""

    incident_type: str = Field(
        description="one of: " + ", ".join(plans.INCIDENT_TYPES), examples=["structure_fire"]
    )
    priority: int | None = Field(
        None, ge=1, le=4, description="1 life threatening .. 4 routine; default by type"
    )
    caller: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    lon: float | None = Field(None, description="x: longitude, or easting in a projected CRS")
    lat: float | None = Field(None, description="y: latitude, or northing")
    crs: str | None = Field(
        None, description="CRS of lon/lat: EPSG code or alias (WGS84, CGCS2000, GCJ02, 4547)"
    )
    address: str | None = Field(
        None, max_length=300, description="address or place, geocoded by the local gazetteer"
    )
    joint: bool = Field(False, description="a joint incident: every agency's units may be used")
    min_confidence: float = Field(0.5, ge=0, le=1, description="least geocoding confidence")


class IncidentPatch(BaseModel):
    joint: bool | None = Field(None, description="declare (or undeclare) a joint incident")
    priority: int | None = Field(None, ge=1, le=4)
    description: str | None = Field(None, max_length=4000)


class AssignIn(BaseModel):
    unit_ids: list[str] = Field(min_length=1, max_length=50, examples=[["FIRE-E-001"]])


class StatusIn(BaseModel):
    status: str = Field(description="en_route, on_scene or cleared", examples=["on_scene"])


class CloseIn(BaseModel):
    note: str | None = Field(None, max_length=2000)


def _announce(request: Request, body: dict[str, Any]) -> None:
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish_event({"type": "incident", **body})


def _command(request: Request, orders: list[terminals.Order]) -> None:
    """Send committed orders to the units' terminals (see :mod:`apps.dispatch.terminals`)."""
    terminals.send(getattr(request.app.state, "mqtt", None), orders)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _unmatched(exc: Unmatched) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "suggestions": exc.suggestions}, status_code=422)


# --------------------------------------------------------------------------- reference


@router.get(
    "/plans", response_model=schemas.PlansOut, summary="Incident types and their response plans"
)
def list_plans(_: CurrentUser) -> dict[str, Any]:
    s = plans.dispatch_settings()
    return {
        "incident_types": [
            {
                "code": t.code,
                "name_zh": t.name_zh,
                "name_en": t.name_en,
                "priority": t.priority,
                "plan": [{"unit_type": u, "count": n} for u, n in t.plan],
                "departments": sorted(t.departments),
            }
            for t in plans.INCIDENT_TYPES.values()
        ],
        "unit_types": {u: plans.UNIT_DEPARTMENT[u] for u in plans.UNIT_TYPES},
        "targets": {
            "dispatch_deadline_s": s.dispatch_deadline_s,
            "routine_dispatch_deadline_s": s.routine_dispatch_deadline_s,
            "urban_target_s": s.urban_target_s,
            "rural_target_s": s.rural_target_s,
            "urban_density_km2": s.urban_density_km2,
        },
    }


@router.get(
    "/geocode",
    response_model=schemas.GeocodeOut,
    summary="Place an address or place name against the local gazetteer",
    responses=UNMATCHED_RESPONSE,
)
def geocode_address(
    _: CurrentUser,
    conn: ConnDep,
    q: Annotated[str, Query(min_length=1, max_length=300, description="address or place")],
    min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.5,
) -> Any:
    try:
        return geocode(gazetteer_for(conn), q, min_confidence=min_confidence)
    except Unmatched as exc:
        return _unmatched(exc)


# --------------------------------------------------------------------------- incidents


@router.post(
    "/incidents",
    status_code=201,
    response_model=schemas.IncidentOut,
    summary="Create an incident",
    responses=UNMATCHED_RESPONSE,
)
def create(body: IncidentIn, user: Operator, conn: ConnDep, request: Request) -> Any:
    """Validated (type, priority, location inside the city), located (coordinates in any
    supported CRS, or the address geocoded with its match and confidence), classified urban
    or rural (which sets its response target), audited and announced."""
    try:
        made = incidents.create_incident(
            conn,
            incidents.Actor(user),
            incident_type=body.incident_type,
            priority=body.priority,
            caller=body.caller,
            description=body.description,
            lon=body.lon,
            lat=body.lat,
            crs=body.crs,
            address=body.address,
            joint=body.joint,
            min_confidence=body.min_confidence,
        )
    except Unmatched as exc:
        return _unmatched(exc)
    conn.commit()
    made = _jsonable(made)
    _announce(request, {"event": "created", "incident": made})
    return made


@router.get(
    "/incidents",
    response_model=list[schemas.IncidentOut],
    summary="Incidents, most urgent first",
)
def incidents_list(
    _: CurrentUser,
    conn: ConnDep,
    state: Annotated[str, Query(pattern="^(open|closed|all)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    return incidents.list_incidents(conn, state, limit)


@router.get(
    "/incidents/{incident_id}",
    response_model=schemas.IncidentDetailOut,
    summary="An incident with its assignments and timeline",
)
def incident_get(incident_id: int, _: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    return incidents.incident_detail(conn, incident_id)


@router.patch(
    "/incidents/{incident_id}",
    response_model=schemas.IncidentOut,
    summary="Declare joint, change priority or text",
)
def incident_patch(
    incident_id: int, body: IncidentPatch, user: Operator, conn: ConnDep, request: Request
) -> dict[str, Any]:
    updated = incidents.update_incident(
        conn,
        incidents.Actor(user),
        incident_id,
        joint=body.joint,
        priority=body.priority,
        description=body.description,
    )
    conn.commit()
    updated = _jsonable(updated)
    _announce(request, {"event": "updated", "incident": updated})
    return updated


@router.post(
    "/incidents/{incident_id}/close",
    response_model=schemas.IncidentClosedOut,
    summary="Close; its units become available",
)
def incident_close(
    incident_id: int, user: Operator, conn: ConnDep, request: Request, body: CloseIn | None = None
) -> dict[str, Any]:
    closed = incidents.close_incident(
        conn, incidents.Actor(user), incident_id, body.note if body else None
    )
    orders = terminals.release_orders(conn, closed["cleared_assignments"], "closed")
    conn.commit()
    _command(request, orders)
    closed = _jsonable(closed)
    _announce(request, {"event": "closed", "incident": closed})
    return closed


# --------------------------------------------------------------------------- recommendation


@router.get(
    "/incidents/{incident_id}/recommendations",
    response_model=schemas.RecommendationsOut,
    summary="The best available units by road travel time, per unit type of the plan",
)
def recommendations(
    incident_id: int,
    user: CurrentUser,
    conn: ConnDep,
    k: Annotated[int, Query(ge=1, le=50, description="units per type")] = 5,
    types: Annotated[
        str | None, Query(description="unit types instead of the plan's, e.g. engine,rescue")
    ] = None,
    engine: Annotated[
        str, Query(pattern="^(graph|pgrouting)$", description="graph (fast) or pgrouting")
    ] = "graph",
    routes: Annotated[bool, Query(description="include route geometries")] = True,
) -> dict[str, Any]:
    """Ranks the available units of the types the incident's response plan needs (or
    ``types``) by road-network ETA — live positions snapped to the road graph, a straight-line
    prefilter made exact by a speed bound — with the ETA, route distance and geometry. Units
    off the network, without a fix, offline or with a suspect GPS are flagged, never hidden.
    ``proposal`` is the plan filled with the fastest units: assign it with one click."""
    incident = incidents.get_incident(conn, incident_id)
    if incident["closed_at"] is not None:
        raise InvalidInput(f"incident {incident_id} is closed")
    kind = plans.INCIDENT_TYPES.get(incident["incident_type"])
    plan = dict(kind.plan) if kind else {}
    wanted = plans.parse_unit_types(types) or tuple(plan) or ("patrol",)
    visible = plans.visible_departments(user.department, user.roles, incident["joint"])
    shown = [t for t in wanted if visible is None or plans.UNIT_DEPARTMENT[t] in visible]
    hidden = [t for t in wanted if t not in shown]
    rec = (
        routing.recommend(
            conn,
            float(incident["lon"]),
            float(incident["lat"]),
            shown,
            k=k,
            departments=visible,
            engine=engine,
            with_routes=routes,
        )
        if shown
        else None
    )
    assigned = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT u.unit_type, count(*) FROM ops.assignment a JOIN ops.unit u ON u.id = a.unit_id"
            " WHERE a.incident_id = %s AND a.cleared_at IS NULL GROUP BY u.unit_type",
            (incident_id,),
        ).fetchall()
    }
    candidates: list[dict[str, Any]] = []
    proposal: list[str] = []
    edge_ids = routing.graph_for(conn).edge_id if rec else None
    for t in shown:
        ranked = rec.by_type.get(t, []) if rec else []
        need = max(plan.get(t, 1 if types else 0) - assigned.get(t, 0), 0)
        for rank, c in enumerate(ranked, start=1):
            route = rec.routes.get(c.unit_id) if rec else None
            item = {
                "rank": rank,
                "unit_id": c.unit_id,
                "call_sign": c.call_sign,
                "unit_type": c.unit_type,
                "department_code": c.department_code,
                "eta_s": round(c.eta_s, 1) if math.isfinite(c.eta_s) else None,
                "distance_m": route["distance_m"] if route else None,
                "straight_m": round(c.straight_m, 1),
                "lon": c.lon if math.isfinite(c.lon) else None,
                "lat": c.lat if math.isfinite(c.lat) else None,
                "position_source": c.position_source,
                "position_ts": c.position_ts.isoformat() if c.position_ts else None,
                "snap": {
                    "edge_id": int(edge_ids[c.snap_edge])
                    if edge_ids is not None and c.snap_edge >= 0
                    else None,
                    "fraction": round(c.snap_fraction, 6),
                    "distance_m": round(c.snap_m, 1),
                },
                "off_network": "off_network" in c.flags,
                "flags": c.flags,
                "route": route["geometry"] if route else None,
            }
            candidates.append(item)
            if rank <= need and item["eta_s"] is not None:
                proposal.append(c.unit_id)
    return {
        "incident_id": incident_id,
        "incident_type": incident["incident_type"],
        "k": k,
        "engine": engine,
        "scene": rec.scene if rec else {"lon": incident["lon"], "lat": incident["lat"]},
        "plan": [
            {
                "unit_type": t,
                "count": plan.get(t, 0),
                "assigned": assigned.get(t, 0),
                "visible": t in shown,
            }
            for t in wanted
        ],
        "hidden": [
            {
                "unit_type": t,
                "department": plans.UNIT_DEPARTMENT[t],
                "reason": "another agency's units: declare the incident joint to see them",
            }
            for t in hidden
        ],
        "proposal": proposal,
        "candidates": candidates,
        "considered": rec.considered if rec else 0,
        "timings_ms": rec.timings_ms if rec else {},
    }


# --------------------------------------------------------------------------- assignments


@router.post(
    "/incidents/{incident_id}/assignments",
    status_code=201,
    response_model=schemas.AssignedOut,
    summary="Dispatch units (all or none)",
    responses={
        403: {"description": "another department's unit and the incident is not joint"},
        409: {"description": "a unit is not available (taken meanwhile), or incident closed"},
    },
)
def assign(
    incident_id: int, body: AssignIn, user: Operator, conn: ConnDep, request: Request
) -> dict[str, Any]:
    incident = incidents.get_incident(conn, incident_id)
    etas = routing.unit_etas(conn, float(incident["lon"]), float(incident["lat"]), body.unit_ids)
    made = incidents.assign(conn, incidents.Actor(user), incident_id, body.unit_ids, etas)
    orders = terminals.dispatch_orders(conn, [m["assignment_id"] for m in made])
    conn.commit()
    _command(request, orders)
    out = {"incident_id": incident_id, "assignments": _jsonable(made)}
    _announce(request, {"event": "assigned", **out, "by": user.username})
    return out


@router.post(
    "/assignments/{assignment_id}/status",
    response_model=schemas.StatusOut,
    summary="Move an assignment forward: en_route, on_scene, cleared",
)
def assignment_status(
    assignment_id: int, body: StatusIn, user: Operator, conn: ConnDep, request: Request
) -> dict[str, Any]:
    done = incidents.transition(conn, incidents.Actor(user), assignment_id, body.status)
    cleared = body.status == "cleared"
    orders = terminals.release_orders(conn, [assignment_id], "cleared") if cleared else []
    conn.commit()
    _command(request, orders)
    assert done is not None  # operators get an error, never a silent skip
    out = _jsonable(done)
    _announce(request, {"event": "status", **out, "by": user.username})
    return out


@router.get(
    "/units",
    response_model=list[schemas.UnitOut],
    summary="Units this user may dispatch, with status and live position",
)
def units(
    user: CurrentUser,
    conn: ConnDep,
    status: Annotated[
        str | None, Query(pattern="^(available|dispatched|en_route|on_scene|out_of_service)$")
    ] = None,
    unit_type: Annotated[str | None, Query(description="engine, ambulance, ...")] = None,
) -> list[dict[str, Any]]:
    if unit_type is not None and unit_type not in plans.UNIT_TYPES:
        raise InvalidParameter(f"unit_type: one of {', '.join(plans.UNIT_TYPES)}")
    visible = plans.visible_departments(user.department, user.roles, False)
    return incidents.unit_rows(conn, visible, status, unit_type)


# --------------------------------------------------------------------------- CAP


@router.get(
    "/incidents/{incident_id}/cap",
    summary="The incident as a CAP 1.2 alert (XML)",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def incident_cap(incident_id: int, _: CurrentUser, conn: ConnDep) -> Response:
    """An OASIS CAP 1.2 alert (area as a circle and as a polygon), in Chinese and English; a
    closed incident gives a Cancel referencing the alert. ``X-CAP-Valid`` says whether it
    validated against the official OASIS schema, which ships with the platform."""
    incident = incidents.get_incident(conn, incident_id)
    xml = cap.incident_cap(incident)
    errors = cap.validate(xml)
    valid = "false" if errors else "true"
    return Response(xml, media_type="application/xml", headers={"X-CAP-Valid": valid})


# --------------------------------------------------------------------------- hotline


@router.post(
    "/hotline/import",
    response_model=schemas.HotlineReportOut,
    summary="Import 12345 hotline tickets from CSV",
)
async def hotline_import(
    user: Operator,
    conn: ConnDep,
    request: Request,
    file: Annotated[UploadFile, File(description="CSV export (UTF-8 or GB18030)")],
    min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.5,
) -> dict[str, Any]:
    """Every row geocoded and made an incident; rows that could not be placed are reported
    with the reason and suggestions. Re-importing a ticket creates nothing twice."""
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise InvalidInput("the file is larger than 20 MB")
    from starlette.concurrency import run_in_threadpool

    report = await run_in_threadpool(
        hotline.import_hotline, conn, data, user, min_confidence=min_confidence
    )
    conn.commit()
    out: dict[str, Any] = _jsonable(report.as_dict())
    if report.created:
        _announce(
            request,
            {"event": "imported", "source": "hotline", "incidents": len(report.created)},
        )
    return out


# --------------------------------------------------------------------------- coverage

# The analysis behind the layer and the table is the same and costly: computed once per road
# graph, dataset and question, and shared by both.
_coverages: dict[tuple[Any, ...], coverage.Coverage] = {}
_coverages_lock = threading.Lock()


def _minutes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise InvalidParameter("minutes: whole minutes separated by commas, e.g. 5,10,15") from None


def _coverage(conn: psycopg.Connection, category: str, mins: tuple[int, ...]) -> coverage.Coverage:
    key = (
        conn.info.dbname,
        routing.graph_version(conn),
        category,
        mins,
        conn.execute("SELECT max(loaded_at) FROM ref.dataset").fetchone(),
    )
    with _coverages_lock:
        cached = _coverages.get(key)
    if cached is None:
        cached = coverage.compute(conn, category, mins)
        with _coverages_lock:
            if len(_coverages) > 16:
                _coverages.clear()
            _coverages[key] = cached
    return cached


# The coverage endpoints' shared parameters.
StationCategory = Annotated[str, Query(pattern="^(fire_station|hospital|police_station)$")]
DriveTimes = Annotated[str, Query(description="drive times, minutes")]


@router.get(
    "/coverage",
    response_model=schemas.CoverageLayerOut,
    summary="Drive-time areas of stations as GeoJSON, with population",
)
def coverage_layer(
    _: CurrentUser,
    conn: ConnDep,
    category: StationCategory = "fire_station",
    minutes: DriveTimes = "5,10,15",
) -> dict[str, Any]:
    """One polygon per drive time (the union of the population cells reached within it,
    largest first) with the population inside and outside it, and the stations as points."""
    return _coverage(conn, category, _minutes(minutes)).layer()


@router.get(
    "/coverage/table",
    response_model=schemas.CoverageTableOut,
    summary="Population inside/outside each drive time, by district",
)
def coverage_table(
    _: CurrentUser,
    conn: ConnDep,
    category: StationCategory = "fire_station",
    minutes: DriveTimes = "5,10,15",
) -> dict[str, Any]:
    return _coverage(conn, category, _minutes(minutes)).table()


@router.get(
    "/coverage/suggestions",
    response_model=schemas.CoverageSuggestionsOut,
    summary="Where a new station would help most",
)
def coverage_suggestions(
    _: CurrentUser,
    conn: ConnDep,
    category: StationCategory = "fire_station",
    minutes: Annotated[int, Query(ge=1, le=120)] = 10,
    count: Annotated[int, Query(ge=1, le=20)] = 3,
) -> dict[str, Any]:
    cov = coverage.compute(conn, category, (minutes,))
    return {
        "category": category,
        "minutes": minutes,
        "suggestions": coverage.suggest_stations(conn, cov, minutes=minutes, count=count),
    }
