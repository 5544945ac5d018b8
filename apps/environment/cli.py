"""``changzhi environment ...``: AQI, plume, the HJ 212 server, logger passwords, exceedances.

:func:`register` adds the ``environment`` group to the ``changzhi`` app.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from apps.platform.cli_kit import USER_ERRORS as _USER_ERRORS
from apps.platform.cli_kit import fail as _fail
from apps.platform.cli_kit import out
from gis_core.db import connect
from gis_core.settings import get_settings

environment_app = typer.Typer(help="Environmental supervision (环保).", no_args_is_help=True)


def _today() -> date:
    return (datetime.now(UTC) + timedelta(hours=8)).date()


@environment_app.command("aqi")
def aqi_cmd(
    scope: Annotated[str, typer.Option(help="station, district or city")] = "district",
    period: Annotated[str, typer.Option(help="hourly or daily")] = "daily",
    standard: Annotated[str, typer.Option(help="HJ 633-2012, HJ 633-2026 or auto")] = "auto",
    start: Annotated[str | None, typer.Option(help="first local day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last local day (default: start)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """AQI of the air stations by HJ 633 (each figure names its edition)."""
    from apps.environment.airquality import check_request, report

    try:
        first = date.fromisoformat(start) if start else _today()
        last = date.fromisoformat(end) if end else first
        check_request(standard, period, scope, first, last)
        with connect(get_settings().database_url) as conn:
            result = report(
                conn, scope=scope, period=period, standard=standard, start=first, end=last
            )
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    table = Table("id", "name", "time", "AQI", "level", "primary", "standard")
    for row in result["rows"]:
        table.add_row(
            row["id"],
            row["name"],
            row["time"],
            str(row["aqi"]),
            row["level_zh"] or "",
            ", ".join(row["primary"]),
            row["standard"],
        )
    out.print(table)
    if not result["rows"]:
        out.print("no air-station readings in that period")


@environment_app.command("plume")
def plume_cmd(
    lon: Annotated[float, typer.Option(help="release longitude (WGS84)")],
    lat: Annotated[float, typer.Option(help="release latitude (WGS84)")],
    emission_gs: Annotated[float, typer.Option(help="emission rate, g/s")],
    height_m: Annotated[float, typer.Option(help="stack or release height")] = 1.0,
    diameter_m: Annotated[float, typer.Option(help="stack inner diameter")] = 0.5,
    exit_velocity_ms: Annotated[float, typer.Option(help="stack exit velocity")] = 0.0,
    exit_temp_c: Annotated[float | None, typer.Option(help="stack exit temperature")] = None,
    duration_s: Annotated[float | None, typer.Option(help="a release of this duration")] = None,
    elapsed_s: Annotated[float | None, typer.Option(help="seen this long after its start")] = None,
    wind_ms: Annotated[float | None, typer.Option(help="10 m wind (default: station)")] = None,
    wind_from_deg: Annotated[float | None, typer.Option(help="wind direction, from")] = None,
    temp_c: Annotated[float | None, typer.Option(help="air temperature")] = None,
    cloud_oktas: Annotated[float | None, typer.Option(help="cloud cover 0..8")] = None,
    stability: Annotated[str | None, typer.Option(help="A..F (default: from weather)")] = None,
    terrain: Annotated[str, typer.Option(help="rural or urban")] = "rural",
    thresholds: Annotated[str, typer.Option(help="contour levels, µg/m³")] = "50,150,500",
    geojson: Annotated[Path | None, typer.Option(help="write the contours here")] = None,
    incident: Annotated[
        bool, typer.Option("--incident", help="open a hazmat incident in dispatch")
    ] = False,
    evacuate_ugm3: Annotated[
        float, typer.Option(help="with --incident: evacuate at or above this, µg/m³")
    ] = 150.0,
) -> None:
    """Plume of a release: contours and the residents, schools and hospitals inside; with
    --incident, a hazmat incident in dispatch with the evacuation area."""
    from apps.environment.evacuation import open_hazmat_incident
    from apps.environment.release import Release, simulate

    try:
        levels = tuple(float(t) for t in thresholds.split(",") if t.strip())
        spec = Release(
            lon=lon, lat=lat, emission_gs=emission_gs, height_m=height_m, diameter_m=diameter_m,
            exit_velocity_ms=exit_velocity_ms, exit_temp_c=exit_temp_c, duration_s=duration_s,
            elapsed_s=elapsed_s, wind_ms=wind_ms, wind_from_deg=wind_from_deg, temp_c=temp_c,
            cloud_oktas=cloud_oktas, stability=stability, terrain=terrain, thresholds=levels,
        )  # fmt: skip
        made = None
        with connect(get_settings().database_url) as conn:
            if incident:
                made = open_hazmat_incident(conn, None, spec, evacuate_ugm3=evacuate_ugm3)
                result = made["plume"]
                conn.commit()
            else:
                result = simulate(conn, spec)
        if geojson is not None:
            geojson.write_text(json.dumps(result, ensure_ascii=False, default=str))
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    w = result["weather"]
    out.print(
        f"stability {result['stability']}, wind {w['wind_ms']} m/s from {w['wind_from_deg']}°, "
        f"peak {result['peak']['ugm3']:.1f} µg/m³ at {result['peak']['lon']:.5f}, "
        f"{result['peak']['lat']:.5f} ({result['total_ms']:.0f} ms)"
    )
    table = Table("≥ µg/m³", "residents", "schools", "hospitals")
    for f in result["features"]:
        p = f["properties"]
        table.add_row(
            f"{p['threshold_ugm3']:g}", f"{p['population']:,}", str(p["schools"]),
            str(p["hospitals"]),
        )  # fmt: skip
    out.print(table)
    if made is not None:
        e = made["evacuation"]
        out.print(
            f"hazmat incident {made['incident']['id']} opened in dispatch: evacuate "
            f"≥ {e['threshold_ugm3']:g} µg/m³, {e['area_km2']:g} km², {e['population']:,} "
            f"residents, {e['schools']} schools, {e['hospitals']} hospitals"
        )


@environment_app.command("upwind")
def upwind_cmd(
    station: Annotated[str | None, typer.Argument(help="air station device id")] = None,
    pollutant: Annotated[str, typer.Option(help="so2, no2, pm10 or pm25")] = "so2",
    at: Annotated[str | None, typer.Option(help="moment, ISO 8601 with offset")] = None,
    exceedance: Annotated[int | None, typer.Option(help="an ambient exceedance's id")] = None,
    wind_ms: Annotated[float | None, typer.Option(help="10 m wind (default: station)")] = None,
    wind_from_deg: Annotated[float | None, typer.Option(help="wind direction, from")] = None,
    stability: Annotated[str | None, typer.Option(help="A..F (default: from weather)")] = None,
    limit: Annotated[int, typer.Option(help="show this many")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
) -> None:
    """Stacks ranked by their modelled contribution at an air station (溯源)."""
    from apps.environment.attribution import for_exceedance, upwind_sources

    try:
        options: dict[str, Any] = {"wind_ms": wind_ms, "wind_from_deg": wind_from_deg,
                   "stability": stability, "limit": limit}  # fmt: skip
        with connect(get_settings().database_url) as conn:
            if exceedance is not None:
                found = for_exceedance(conn, exceedance, **options)
            elif station is None:
                raise _fail("give an air station's device id or --exceedance ID")
            else:
                moment = datetime.fromisoformat(at) if at else datetime.now(UTC)
                found = upwind_sources(conn, station, pollutant, moment, **options)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(found, ensure_ascii=False) + "\n")
        return
    w = found["weather"]
    out.print(
        f"{found['monitor']['name']} {found['pollutant']} at {found['at']}: wind "
        f"{w['wind_ms']:g} m/s from {w['wind_from_deg']:g}°, stability {w['stability']}; "
        f"modelled {found['modelled_ugm3']:.1f} µg/m³"
        + (f", observed {found['observed_ugm3']:.1f}" if found["observed_ugm3"] else "")
    )
    table = Table("#", "source", "enterprise", "km", "g/s", "µg/m³", "share")
    for s in found["sources"]:
        table.add_row(
            str(s["rank"]), s["source"], s["enterprise"] or "", f"{s['distance_m'] / 1000:.1f}",
            f"{s['emission_gs']:.2f}", f"{s['contribution_ugm3']:.2f}", f"{s['share']:.0%}",
        )  # fmt: skip
    out.print(table)


@environment_app.command("stats")
def stats_cmd(
    what: Annotated[str, typer.Argument(help="loads, rates or aqi-days")],
    start: Annotated[str, typer.Option(help="first local day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last local day, YYYY-MM-DD")],
    by: Annotated[str, typer.Option(help="outlet, enterprise, industry or district")] = "district",
    period: Annotated[str, typer.Option(help="month, quarter or year")] = "month",
    scope: Annotated[str, typer.Option(help="aqi-days: station, district or city")] = "district",
) -> None:
    """Statistics as JSON lines: emission loads, exceedance rates or AQI days by level."""
    from apps.environment import statistics

    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        with connect(get_settings().database_url) as conn:
            if what == "loads":
                rows = statistics.loads(conn, by=by, period=period, start=first, end=last)
            elif what == "rates":
                rows = statistics.exceedance_rates(
                    conn, by=by, period=period, start=first, end=last
                )
            elif what == "aqi-days":
                rows = statistics.aqi_days(conn, scope=scope, period=period, start=first, end=last)
            else:
                raise _fail(f"what must be loads, rates or aqi-days, not {what!r}")
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


@environment_app.command("report")
def report_cmd(
    month: Annotated[str, typer.Option(help="the month, YYYY-MM")],
    out_file: Annotated[Path, typer.Option("--out", help="the PDF to write")],
) -> None:
    """The monthly report as a PDF, made offline."""
    from apps.environment.monthly import monthly_pdf

    try:
        with connect(get_settings().database_url) as conn:
            pdf, figures = monthly_pdf(conn, month)
        out_file.write_bytes(pdf)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    work = figures["inspection"]
    out.print(
        f"{out_file}: {len(pdf):,} bytes, {len(figures['aqi_days'])} districts with AQI days, "
        f"{work['tasks']} tasks, {work['complaints']} complaints"
    )


@environment_app.command("inspection-report")
def inspection_report_cmd(
    year: Annotated[int | None, typer.Option(help="default: this quarter's")] = None,
    quarter: Annotated[int | None, typer.Option(help="1..4")] = None,
) -> None:
    """The quarterly inspection report as JSON."""
    from apps.environment.casework import quarterly_report, this_quarter

    try:
        now_year, now_quarter = this_quarter()
        with connect(get_settings().database_url) as conn:
            found = quarterly_report(conn, year or now_year, quarter or now_quarter)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    sys.stdout.write(json.dumps(found, ensure_ascii=False, default=str) + "\n")


@environment_app.command("escalate")
def escalate_cmd() -> None:
    """Escalate the overdue inspection tasks (once per task and local day)."""
    from apps.environment.casework import escalate_overdue

    try:
        with connect(get_settings().database_url) as conn:
            made = escalate_overdue(conn)
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    out.print(f"{len(made)} overdue tasks escalated")
    for e in made:
        out.print(f"  task {e['task_id']}: {e['overdue_hours']:g} h late, {e['assignee'] or '-'}")


@environment_app.command("hj212")
def hj212_cmd(
    host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="TCP port the data loggers connect to")] = 8212,
) -> None:
    """Run the HJ 212-2017 server for the outlets' data loggers in the foreground."""
    from apps.environment.hj212_server import run

    if not 0 <= port <= 65535:
        raise _fail(f"port must be 0..65535, got {port}")
    try:
        get_settings()
        run(host, port)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None


@environment_app.command("logger-password")
def logger_password_cmd(
    outlet: Annotated[str, typer.Argument(help="outlet id or its HJ 212 MN")],
    password: Annotated[str | None, typer.Option(help="this password (default: random)")] = None,
) -> None:
    """Give an outlet's data logger a new HJ 212 password (printed once, stored hashed)."""
    from apps.environment.registry import set_logger_password

    try:
        with connect(get_settings().database_url) as conn:
            mn, new = set_logger_password(conn, outlet, None, password)
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    out.print(f"MN {mn}: PW={new}")


@environment_app.command("scan")
def scan_cmd(
    hours: Annotated[int, typer.Option(help="look back this many hours")] = 24,
) -> None:
    """Find exceedances in the recent telemetry; each new emission one opens a task."""
    from apps.environment.inspection import scan

    try:
        until = datetime.now(UTC)
        with connect(get_settings().database_url) as conn:
            found = scan(conn, until - timedelta(hours=hours), until, None)
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    out.print(f"{found['events']} exceedance events, {len(found['new'])} new")
    for item in found["new"]:
        out.print(
            f"  {item['kind']} {item['device_id']} {item['pollutant']} peak {item['peak']:.1f}"
            f" > {item['limit']:g} from {item['started_at']}"
            + (f" → task {item['task_id']}" if "task_id" in item else "")
        )


def register(root: typer.Typer) -> None:
    root.add_typer(environment_app, name="environment")
