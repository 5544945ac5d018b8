"""The flood API (``/flood``): rain surfaces, gauge forecasts, inundation scenarios (closing
the flooded roads for every router) and evacuation plans.

Reading needs a login; a scenario that closes roads needs the planner, dispatcher or
supervisor role (admins always). The work is done by :mod:`apps.flood.service`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from apps.flood import service
from gis_core.errors import InvalidInput
from gis_core.identity import Principal
from web.deps import ConnDep, CurrentUser, require_roles

router = APIRouter(tags=["flood"])

Planner = Annotated[Principal, Depends(require_roles("planner", "dispatcher", "supervisor"))]
GeoJSON = dict[str, Any]


class GaugeRain(BaseModel):
    id: str
    lon: float
    lat: float
    mm: float


class ArealRain(BaseModel):
    site_id: str | None = None
    code: str | None = None
    name_zh: str
    mm: float | None = Field(description="mean rain over the area (mm); null off the grid")


class RainGrid(BaseModel):
    cell_m: float
    width: int
    height: int
    bbox: list[float] = Field(description="west, south, east, north (WGS84)")
    max_mm: float
    mean_mm: float


class RainOut(BaseModel):
    window: str
    start: datetime
    end: datetime
    method: str = Field(description="the method used (may differ from the one asked: see notes)")
    notes: list[str]
    gauges: list[GaugeRain]
    silent: list[str] = Field(description="rain gauges that sent nothing in the window")
    grid: RainGrid
    catchments: list[ArealRain]
    districts: list[ArealRain]
    isohyets: GeoJSON = Field(description="bands (kind band) and lines (kind line), WGS84")


class ForecastOut(BaseModel):
    site_id: str
    device_id: str
    name_zh: str
    now: datetime
    step_min: int
    times: list[datetime] = Field(description="end of each step: observed steps, then forecast")
    observed_m: list[float | None]
    simulated_m: list[float]
    forecast_m: list[float]
    rain_mm: list[float] = Field(description="areal rain over the catchment per observed step")
    warning_m: float | None
    danger_m: float | None
    warning_at: datetime | None = Field(description="first forecast step at or above warning")
    danger_at: datetime | None
    peak_m: float | None
    hindcast_nse: float | None
    rain_gauges: list[str]
    catchment_km2: float
    notes: list[str]


class ScenarioIn(BaseModel):
    """One of: a level per gauge, a uniform rise above every channel bed, or the latest
    observed levels."""

    stages: dict[str, float] | None = Field(
        None, description="gauge (site or device id) -> water level (m, the gauge's datum)"
    )
    rise_m: float | None = Field(None, description="stage above the channel bed everywhere (m)")
    observed: bool = Field(False, description="use every gauge's latest reading")


class InundationIn(ScenarioIn):
    close_roads: bool = Field(True, description="close roads under more than 0.3 m of water")


class AffectedPoi(BaseModel):
    id: int
    category: str
    name_zh: str
    depth_m: float


class DistrictPeople(BaseModel):
    code: str
    name_zh: str
    people: int


class InundationOut(BaseModel):
    wet_cells: int
    area_km2: float
    max_depth_m: float
    mean_depth_m: float
    people: int
    districts: list[DistrictPeople]
    pois: list[AffectedPoi]
    pois_by_category: dict[str, int]
    roads_flooded: list[int]
    roads_closed: int
    flooded: GeoJSON = Field(description="flooded polygons by depth class, WGS84")
    notes: list[str]


class ReopenOut(BaseModel):
    reopened: int


class EvacuationIn(ScenarioIn):
    routes: int = Field(50, ge=0, le=500, description="how many of the largest flows to draw")


class ShelterUse(BaseModel):
    id: int
    name_zh: str
    capacity: int
    assigned: int


class DistrictEvacuation(BaseModel):
    code: str
    name_zh: str
    people: int
    assigned: int
    unassigned: int
    mean_travel_min: float | None


class EvacuationOut(BaseModel):
    people: int
    assigned: int
    unassigned: int
    mean_travel_min: float | None
    shelters: list[ShelterUse]
    districts: list[DistrictEvacuation]
    routes: GeoJSON
    roads_avoided: int = 0
    notes: list[str]


def _announce(request: Request, body: dict[str, Any]) -> None:
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish_event({"type": "inundation", "app": "flood", **body})


@router.get("/rain", summary="Rain over a window: surface, isohyets, areal rain")
def rain(
    _: CurrentUser,
    conn: ConnDep,
    window: Annotated[str, Query(description="1h, 3h, 6h or 24h")] = "3h",
    method: Annotated[str, Query(description="idw, thiessen or kriging")] = "kriging",
    end: Annotated[datetime | None, Query(description="end of the window (default: now)")] = None,
    cell_m: Annotated[float, Query(ge=100, le=5000)] = 1000.0,
) -> RainOut:
    return RainOut.model_validate(
        service.rain(conn, window=window, method=method, end=end, cell_m=cell_m)
    )


@router.get("/gauges/{gauge_id}/forecast", summary="Observed and forecast stage at a gauge")
def forecast(
    gauge_id: str,
    _: CurrentUser,
    conn: ConnDep,
    hours: Annotated[float, Query(ge=1, le=72)] = 12.0,
    horizon_h: Annotated[float, Query(ge=0.5, le=48)] = 6.0,
    now: Annotated[datetime | None, Query(description="the forecast's time (default: now)")] = None,
) -> ForecastOut:
    return ForecastOut.model_validate(
        service.forecast(conn, gauge_id, now=now, hours=hours, horizon_h=horizon_h)
    )


@router.post("/inundation", summary="Inundation of a stage scenario; closes flooded roads")
def inundation(body: InundationIn, _: Planner, conn: ConnDep, request: Request) -> InundationOut:
    out = service.inundate(
        conn,
        stages=body.stages,
        rise_m=body.rise_m,
        observed=body.observed,
        close=body.close_roads,
    )
    conn.commit()
    _announce(
        request,
        {
            "event": "scenario",
            "area_km2": out["area_km2"],
            "people": out["people"],
            "roads_closed": out["roads_closed"],
        },
    )
    return InundationOut.model_validate(out)


@router.delete("/inundation", summary="Reopen every road the flood closed")
def inundation_clear(_: Planner, conn: ConnDep, request: Request) -> ReopenOut:
    reopened = service.reopen(conn)
    conn.commit()
    _announce(request, {"event": "cleared", "roads_reopened": reopened})
    return ReopenOut(reopened=reopened)


@router.post("/evacuation", summary="Evacuation plan: people to shelters by road, min-cost flow")
def evacuation(body: EvacuationIn, _: CurrentUser, conn: ConnDep) -> EvacuationOut:
    out = service.evacuate(
        conn, stages=body.stages, rise_m=body.rise_m, observed=body.observed, routes=body.routes
    )
    return EvacuationOut.model_validate(out)


@router.get(
    "/briefing.{fmt}",
    summary="Flood consultation briefing (防汛会商): map, hydrographs, alarms, tables",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "image/png": {}}}},
)
def briefing(
    fmt: str,
    _: CurrentUser,
    conn: ConnDep,
    window: Annotated[str, Query(description="rain window: 1h, 3h, 6h or 24h")] = "3h",
    rise_m: Annotated[
        float | None, Query(gt=0, le=30, description="scenario: stage above every bed (m)")
    ] = None,
) -> Response:
    from apps.flood.briefing import briefing as make

    if fmt not in ("pdf", "png"):
        raise InvalidInput(f"briefing.{fmt}: ask for briefing.pdf or briefing.png")
    data, _summary = make(conn, fmt=fmt, window=window, rise_m=rise_m)  # type: ignore[arg-type]
    conn.rollback()  # the briefing only looks: nothing it touched is kept
    return Response(
        data,
        media_type="application/pdf" if fmt == "pdf" else "image/png",
        headers={"Content-Disposition": f'inline; filename="flood-briefing.{fmt}"'},
    )


class ForecastStep(BaseModel):
    step: int
    time: datetime
    stages: dict[str, float] = Field(description="site id -> forecast level (m)")


class ForecastStepsOut(BaseModel):
    now: datetime
    step_min: int
    steps: list[ForecastStep]
    notes: list[str]


@router.get("/forecast/steps", summary="Every forecast gauge's level per step ahead")
def forecast_steps(
    _: CurrentUser,
    conn: ConnDep,
    horizon_h: Annotated[float, Query(ge=0.5, le=24)] = 6.0,
) -> ForecastStepsOut:
    from apps.flood.tiles import forecast_steps as steps

    return ForecastStepsOut.model_validate(steps(conn, horizon_h=horizon_h))


@router.get(
    "/depth/{z}/{x}/{y}.png",
    summary="Inundation depth tile (EPSG:3857) of a rise or of a forecast step",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def depth_tile(
    z: int,
    x: int,
    y: int,
    _: CurrentUser,
    conn: ConnDep,
    rise_m: Annotated[float | None, Query(gt=0, le=30)] = None,
    step: Annotated[int | None, Query(ge=0, description="forecast step (/forecast/steps)")] = None,
) -> Response:
    from apps.flood.tiles import depth_tile as tile

    data = tile(conn, z, x, y, rise_m=rise_m, step=step)
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=60"})
