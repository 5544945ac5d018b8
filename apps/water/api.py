"""The water API (``/water``): station classes and trends, upstream traces, drought grades,
permits and their metered use. Reading needs a login; the services do the work.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from apps.water import drought_service, service, tracing
from gis_core.errors import InvalidParameter
from gis_core.identity import Principal
from web.deps import ConnDep, CurrentUser, require_roles

router = APIRouter(tags=["water"])
Registrar = Annotated[Principal, Depends(require_roles("planner", "supervisor"))]


class Station(BaseModel):
    station: str
    device_id: str
    name_zh: str
    district_code: str | None
    lon: float
    lat: float
    target_class: int
    waterbody: str
    zone_zh: str | None


class StationClass(Station):
    hours: int
    water_class: int | None
    label: str | None
    deciding: list[str]
    missing: list[str]
    factor_classes: dict[str, int]
    means: dict[str, float | None]
    meets_target: bool | None


class Classes(BaseModel):
    standard: str
    since: str
    until: str
    stations: list[StationClass]
    compliance_rate: float | None


class DayClass(BaseModel):
    date: str
    water_class: int | None
    label: str | None
    hours: int
    means: dict[str, float | None]


class Trend(BaseModel):
    trend: str | None
    reason: str | None = None
    p_value: float | None = None
    tau: float | None = None
    sen_slope_per_day: float | None = None
    n: int | None = None
    test: str | None = None


class QualityTrend(BaseModel):
    station: Station
    days: int
    series: list[DayClass]
    trends: dict[str, Trend]


class StationCompliance(Station):
    days_judged: int
    days_met: int
    rate: float | None
    worst_class: int | None
    worst_label: str | None


class ZoneCompliance(BaseModel):
    zone_zh: str
    target_class: int
    stations: int
    days_judged: int
    days_met: int
    rate: float | None


class Compliance(BaseModel):
    standard: str
    since: str
    until: str
    stations: list[StationCompliance]
    zones: list[ZoneCompliance]
    days_judged: int
    days_met: int
    compliance_rate: float | None


class LoadBasis(BaseModel):
    concentration: str | None
    flow: str | None


class RankedOutlet(BaseModel):
    rank: int
    outlet_id: str
    name_zh: str
    enterprise_zh: str | None
    credit_code: str | None
    lon: float
    lat: float
    concentration_mgl: float | None
    flow_m3s: float | None
    basis: LoadBasis
    receiving_m: float
    distance_m: float
    load_g_s: float
    load_at_station_g_s: float


class Trace(BaseModel):
    station: Station
    factor: str
    decay_per_km: float
    snapped_m: float
    ranked: list[RankedOutlet]
    off_network: list[str]
    unknown_load: list[str]
    rivers: dict[str, Any]
    network: dict[str, int]


class Probe(BaseModel):
    station: str
    name_zh: str
    district_code: str | None
    lon: float
    lat: float
    ts: str | None
    vwc_pct: float | None
    relative_pct: float | None
    grade: int
    grade_zh: str | None


class LeftOut(BaseModel):
    station: str
    reason: str


class AreaDrought(BaseModel):
    """抗旱统计 of one area: km² of cropland per grade, the drought share, the mean relative
    moisture and its grade."""

    km2: dict[str, float]
    cropland_km2: float
    drought_km2: float
    drought_share: float | None
    mean_relative_pct: float | None
    grade: int
    grade_zh: str | None


class DistrictDrought(AreaDrought):
    district_code: str
    name_zh: str | None


class TownDrought(AreaDrought):
    town_id: int
    name_zh: str | None
    district_code: str


class Drought(BaseModel):
    standard: str
    stage: str
    cell_m: float
    probes: list[Probe]
    left_out: list[LeftOut]
    districts: list[DistrictDrought]
    towns: list[TownDrought]


class GaugeSpi(BaseModel):
    gauge: str
    name_zh: str
    district_code: str | None
    lon: float
    lat: float
    months_of_record: int
    first_month: str
    precip_mm: float
    spi: float
    grade: int
    grade_zh: str


class GaugeLeftOut(BaseModel):
    gauge: str
    reason: str


class DistrictSpi(BaseModel):
    district_code: str
    gauges: int
    spi: float
    grade: int
    grade_zh: str


class Spi(BaseModel):
    standard: str
    scale_months: int
    month: str
    gauges: list[GaugeSpi]
    left_out: list[GaugeLeftOut]
    districts: list[DistrictSpi]


class OutlookWeather(BaseModel):
    rain_mm: list[float]
    tmin_c: float
    tmax_c: float
    temperature: str


class ProbeOutlook(BaseModel):
    station: str
    district_code: str | None
    today_pct: float
    today_grade: int
    relative_pct: list[float]
    grade: list[int]
    worsening: bool


class GradeEntered(BaseModel):
    date: str
    grade: int
    grade_zh: str


class DistrictOutlook(BaseModel):
    district_code: str
    probes: int
    today_pct: float
    today_grade: int
    relative_pct: list[float]
    grade: list[int]
    enters: GradeEntered | None


class DroughtOutlook(BaseModel):
    standard: str
    stage: str
    dates: list[str]
    weather: OutlookWeather
    probes: list[ProbeOutlook]
    left_out: list[LeftOut]
    districts: list[DistrictOutlook]


class PermitUse(BaseModel):
    permit_id: str
    holder_uscc: str
    holder_name: str
    source_type: str
    source_site_id: str
    sector: str
    annual_quota_m3: float
    season_months: list[int]
    valid_from: str
    valid_until: str
    district_code: str | None
    lon: float
    lat: float
    meter_id: str | None
    used_m3: float | None
    ratio: float | None
    state: str
    fee_yuan: float | None
    fault: str | None


class Tariff(BaseModel):
    base_rate_yuan_m3: float
    over_quota_tiers: list[list[float]]


class Permits(BaseModel):
    year: int
    tariff: Tariff
    permits: list[PermitUse]
    states: dict[str, int]


class DayUse(BaseModel):
    date: str
    used_m3: float
    volume_m3: float


class PermitDetail(PermitUse):
    year: int
    before_readings_m3: float | None
    daily: list[DayUse]


class BalanceRow(BaseModel):
    supply_m3: dict[str, float]
    use_m3: dict[str, float]
    supply_total_m3: float
    use_total_m3: float
    permitted_m3: float


class DistrictBalance(BalanceRow):
    district_code: str
    name_zh: str | None
    difference_m3: float


class MeteredPermit(BaseModel):
    permit_id: str
    holder_name: str
    district_code: str
    source_type: str
    sector: str
    annual_quota_m3: float
    used_m3: float
    ratio: float


class PermitLeftOut(BaseModel):
    permit_id: str
    holder_name: str
    reason: str


class Balance(BaseModel):
    year: int
    districts: list[DistrictBalance]
    total: BalanceRow
    permits: list[MeteredPermit]
    left_out: list[PermitLeftOut]


class PermitIn(BaseModel):
    """A new water-use permit (取水许可)."""

    permit_id: str = Field(min_length=1, max_length=32, examples=["WP-140402-0101"])
    holder_uscc: str = Field(description="unified social credit code (GB 32100)")
    holder_name: str = Field(min_length=1, max_length=200)
    source_type: str = Field(description="surface, groundwater, unconventional or transfer")
    source_site_id: str = Field(description="the well or intake meter's monitoring site")
    sector: str = Field(description="agriculture, industry, domestic or ecological")
    annual_quota_m3: float = Field(gt=0, le=1e10)
    season_months: list[int] = Field(min_length=1, max_length=12, examples=[[3, 4, 5, 6]])
    valid_from: date
    valid_until: date


Year = Annotated[int | None, Query(ge=2000, le=2100, description="permit year (default: this)")]
Rate = Annotated[
    float | None, Query(gt=0, le=100, description="base fee, yuan/m³ (default: the tariff's)")
]


@router.get("/quality/classes", summary="Each station's GB 3838-2002 class", response_model=Classes)
def quality_classes(
    _: CurrentUser,
    conn: ConnDep,
    day: Annotated[
        date | None, Query(alias="date", description="local day (default: the last 24 h)")
    ] = None,
) -> Any:
    return service.station_classes(conn, day)


@router.get(
    "/quality/compliance",
    summary="Days meeting the target class per station and function zone, and the rate",
    response_model=Compliance,
)
def quality_compliance(
    _: CurrentUser,
    conn: ConnDep,
    days: Annotated[int, Query(ge=1, le=366, description="the last N days")] = 30,
    year: Year = None,
) -> Any:
    return service.quality_compliance(conn, *service.compliance_window(days, year))


@router.get(
    "/quality/trend/{station}",
    summary="A station's daily classes and Mann-Kendall trends",
    response_model=QualityTrend,
)
def quality_trend(
    station: str,
    _: CurrentUser,
    conn: ConnDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Any:
    return service.quality_trend(conn, station, days)


@router.get(
    "/trace/{station}", summary="Outfalls upstream of a station, by load", response_model=Trace
)
def trace(
    station: str,
    _: CurrentUser,
    conn: ConnDep,
    factor: Annotated[str, Query(description="cod or nh3n")] = "cod",
    decay_per_km: Annotated[float, Query(ge=0, le=10, description="first-order decay")] = 0.0,
) -> Any:
    return tracing.trace_station(conn, station, factor, decay_per_km)


@router.get(
    "/drought", summary="Drought grade per probe (GB/T 32136), by district", response_model=Drought
)
def drought_status(
    _: CurrentUser,
    conn: ConnDep,
    stage: Annotated[str, Query(description="sowing, seedling, critical or other")] = "other",
    cell_m: Annotated[float, Query(ge=100, le=10_000, description="map cell, m")] = 1000.0,
) -> Any:
    return service.drought_status(conn, stage, cell_m)


Stage = Annotated[str, Query(description="sowing, seedling, critical or other")]


@router.get(
    "/drought/grid",
    summary="The drought map over cropland as GeoJSON patches of equal grade",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
def drought_grid(
    _: CurrentUser,
    conn: ConnDep,
    stage: Stage = "other",
    cell_m: Annotated[float, Query(ge=100, le=10_000, description="map cell, m")] = 1000.0,
) -> Any:
    body = orjson.dumps(service.drought_geojson(conn, stage, cell_m))
    return Response(body, media_type="application/geo+json")


@router.get(
    "/drought/spi",
    summary="SPI per rain gauge and district (GB/T 20481 grades)",
    response_model=Spi,
)
def drought_spi(
    _: CurrentUser,
    conn: ConnDep,
    scale: Annotated[int, Query(description="months: 1, 3 or 6")] = 3,
    month: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (default: last full)")
    ] = None,
) -> Any:
    when = None if month is None else _month(month)
    return drought_service.spi_status(conn, scale, when)


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError:
        raise InvalidParameter(f"month {text!r} is not a month like 2026-06") from None


@router.get(
    "/drought/outlook",
    summary="7-day soil-moisture outlook per probe and district from a soil water balance",
    response_model=DroughtOutlook,
)
def drought_outlook(
    _: CurrentUser,
    conn: ConnDep,
    days: Annotated[int, Query(ge=1, le=14)] = 7,
    rain_mm: Annotated[
        str | None, Query(description="forecast rain per day, comma-separated (default: none)")
    ] = None,
    stage: Stage = "other",
    tmin_c: Annotated[float | None, Query(ge=-50, le=50)] = None,
    tmax_c: Annotated[float | None, Query(ge=-50, le=60)] = None,
) -> Any:
    rain = None if rain_mm is None else _numbers("rain_mm", rain_mm)
    return drought_service.drought_outlook(conn, days, rain, stage, tmin_c, tmax_c)


def _numbers(name: str, text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        message = f"{name} must be numbers separated by commas, got {text!r}"
        raise InvalidParameter(message) from None


@router.get("/permits", summary="Water-use permits and their use", response_model=Permits)
def permits(_: CurrentUser, conn: ConnDep, year: Year = None, base_rate: Rate = None) -> Any:
    return service.permits(conn, year, base_rate)


@router.get(
    "/permits/{permit_id}/use",
    summary="A permit's metered use against its quota, and the fee",
    response_model=PermitDetail,
)
def permit_use(
    permit_id: str, _: CurrentUser, conn: ConnDep, year: Year = None, base_rate: Rate = None
) -> Any:
    return service.permit_use(conn, permit_id, year, base_rate)


@router.post(
    "/permits",
    summary="Register a water-use permit (refused if it overlaps one of the holder's)",
    response_model=PermitDetail,
    status_code=201,
)
def permit_register(body: PermitIn, _: Registrar, conn: ConnDep) -> Any:
    result = service.register_permit(conn, body.model_dump())
    conn.commit()
    return result


@router.get(
    "/balance",
    summary="The year's water balance per district: supply by source, use by sector",
    response_model=Balance,
)
def balance(_: CurrentUser, conn: ConnDep, year: Year = None) -> Any:
    return service.water_balance(conn, year)


@router.get(
    "/report/{year}.pdf",
    summary="The annual water-resources report (水资源年报) as PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def annual_report(year: int, _: CurrentUser, conn: ConnDep) -> Response:
    from apps.water import report

    if not 2000 <= year <= 2100:
        raise InvalidParameter(f"year must be within 2000..2100, got {year}")
    body = report.render(conn, year)
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="water-report-{year}.pdf"'},
    )
