"""``changzhi water ...``: station classes, upstream traces, drought grades, permits.

:func:`register` adds the ``water`` group to the ``changzhi`` app. Every command can print
its full result as JSON (``--json``), the same document the API returns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from apps.platform.cli_kit import USER_ERRORS as _USER_ERRORS
from apps.platform.cli_kit import fail as _fail
from apps.platform.cli_kit import out
from gis_core.db import connect
from gis_core.settings import get_settings

water_app = typer.Typer(help="Water resources, drought and water quality.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print the full result as JSON")]


def _run(work: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    try:
        with connect(get_settings().database_url) as conn:
            return work(conn)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None


def _json(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")


@water_app.command("classes")
def classes_cmd(
    day: Annotated[
        str | None, typer.Option("--date", help="local day YYYY-MM-DD (default: last 24 h)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Each water-quality station's GB 3838-2002 class and the factor that decided it."""
    from apps.water import service

    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        raise _fail(f"--date {day!r} is not a date like 2026-06-01") from None
    result = _run(lambda conn: service.station_classes(conn, when))
    if as_json:
        _json(result)
        return
    table = Table("station", "name", "class", "deciding", "target", "missing", "hours")
    for s in result["stations"]:
        meets = s["meets_target"]
        colour = "green" if meets else "red" if meets is False else "dim"
        table.add_row(
            s["station"],
            s["name_zh"],
            f"[{colour}]{s['label'] or '-'}[/]",
            ", ".join(s["deciding"]),
            str(s["target_class"]),
            ", ".join(s["missing"]),
            str(s["hours"]),
        )
    out.print(table)
    rate = result["compliance_rate"]
    out.print(f"compliance: {'-' if rate is None else f'{rate:.0%}'} ({result['standard']})")


@water_app.command("trace")
def trace_cmd(
    station: Annotated[str, typer.Argument(help="water-quality site or device id")],
    factor: Annotated[str, typer.Option(help="cod or nh3n")] = "cod",
    decay_per_km: Annotated[float, typer.Option(help="first-order decay per km")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Discharge outlets upstream of a station along the rivers, ranked by load."""
    from apps.water import tracing

    result = _run(lambda conn: tracing.trace_station(conn, station, factor, decay_per_km))
    if as_json:
        _json(result)
        return
    table = Table("#", "outlet", "enterprise", "km upstream", "load g/s", "at station g/s", "basis")
    for o in result["ranked"]:
        table.add_row(
            str(o["rank"]),
            f"{o['outlet_id']} {o['name_zh']}",
            o["enterprise_zh"] or "",
            f"{o['distance_m'] / 1000:.1f}",
            f"{o['load_g_s']:.3f}",
            f"{o['load_at_station_g_s']:.3f}",
            f"{o['basis']['concentration']}/{o['basis']['flow']}",
        )
    out.print(table)
    out.print(
        f"{len(result['ranked'])} outlets upstream of {result['station']['station']}; "
        f"{len(result['off_network'])} off the rivers, {len(result['unknown_load'])} "
        "without a load estimate (not ranked)"
    )


@water_app.command("compliance")
def compliance_cmd(
    days: Annotated[int, typer.Option(help="the last N days")] = 30,
    year: Annotated[int | None, typer.Option(help="a whole year instead (up to now)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Days each station and function zone met its target class, and the compliance rate."""
    from apps.water import service

    result = _run(
        lambda conn: service.quality_compliance(conn, *service.compliance_window(days, year))
    )
    if as_json:
        _json(result)
        return
    table = Table("station", "name", "zone", "target", "days", "met", "rate", "worst")
    for s in result["stations"]:
        table.add_row(
            s["station"],
            s["name_zh"],
            s["zone_zh"] or "-",
            str(s["target_class"]),
            str(s["days_judged"]),
            str(s["days_met"]),
            "-" if s["rate"] is None else f"{s['rate']:.0%}",
            s["worst_label"] or "-",
        )
    out.print(table)
    rate = result["compliance_rate"]
    out.print(
        f"compliance {'-' if rate is None else f'{rate:.1%}'} of {result['days_judged']} station"
        f" days ({result['standard']})"
    )


@water_app.command("drought")
def drought_cmd(
    stage: Annotated[str, typer.Option(help="sowing, seedling, critical or other")] = "other",
    cell_m: Annotated[float, typer.Option(help="map cell size, m")] = 1000.0,
    as_json: JsonOpt = False,
) -> None:
    """Drought grade at each soil probe (GB/T 32136) and drought area by district."""
    from apps.water import drought, service

    result = _run(lambda conn: service.drought_status(conn, stage, cell_m))
    if as_json:
        _json(result)
        return
    table = Table("district", "cropland km²", *drought.GRADE_NAMES, "in drought")
    for d in result["districts"]:
        share = d["drought_share"]
        table.add_row(
            f"{d['name_zh'] or d['district_code']}",
            f"{d['cropland_km2']:.1f}",
            *(f"{d['km2'][g]:.1f}" for g in drought.GRADE_NAMES),
            "-" if share is None else f"{share:.0%}",
        )
    out.print(table)
    graded = [p for p in result["probes"] if p["grade"] >= 0]
    out.print(f"{len(graded)} of {len(result['probes'])} probes graded ({result['standard']})")
    for x in result["left_out"]:
        out.print(f"[yellow]left out[/] {x['station']}: {escape(x['reason'])}")
    if result["towns"]:
        table = Table("town", "district", "cropland km²", "in drought", "mean R %", "grade")
        for t in result["towns"]:
            share = t["drought_share"]
            table.add_row(
                t["name_zh"] or str(t["town_id"]),
                t["district_code"],
                f"{t['cropland_km2']:.1f}",
                "-" if share is None else f"{share:.0%}",
                "-" if t["mean_relative_pct"] is None else f"{t['mean_relative_pct']:.0f}",
                t["grade_zh"] or "-",
            )
        out.print(table)


@water_app.command("drought-map")
def drought_map_cmd(
    out_file: Annotated[str, typer.Option("--out", help="GeoJSON file to write")],
    stage: Annotated[str, typer.Option(help="sowing, seedling, critical or other")] = "other",
    cell_m: Annotated[float, typer.Option(help="map cell size, m")] = 1000.0,
) -> None:
    """The drought map over cropland as GeoJSON: patches of equal GB/T 32136 grade."""
    from apps.water import service

    result = _run(lambda conn: service.drought_geojson(conn, stage, cell_m))
    try:
        with open(out_file, "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False)
    except OSError as exc:
        raise _fail(f"cannot write {out_file}: {exc.strerror}") from None
    out.print(f"{len(result['features'])} patches written to {out_file}")


@water_app.command("spi")
def spi_cmd(
    scale: Annotated[int, typer.Option(help="months: 1, 3 or 6")] = 3,
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: last full)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """SPI at each rain gauge and per district, graded by GB/T 20481."""
    from apps.water import drought_service

    try:
        when = date.fromisoformat(f"{month}-01") if month else None
    except ValueError:
        raise _fail(f"--month {month!r} is not a month like 2026-06") from None
    result = _run(lambda conn: drought_service.spi_status(conn, scale, when))
    if as_json:
        _json(result)
        return
    table = Table("gauge", "name", "district", f"{scale}-month mm", "SPI", "grade", "record")
    for g in result["gauges"]:
        table.add_row(
            g["gauge"],
            g["name_zh"],
            g["district_code"] or "-",
            f"{g['precip_mm']:.0f}",
            f"{g['spi']:+.2f}",
            g["grade_zh"],
            f"{g['months_of_record']} months",
        )
    out.print(table)
    for d in result["districts"]:
        gauges = f"{d['gauges']} gauges"
        out.print(f"{d['district_code']}: SPI {d['spi']:+.2f} {d['grade_zh']} ({gauges})")
    for x in result["left_out"]:
        out.print(f"[yellow]left out[/] {x['gauge']}: {escape(x['reason'])}")
    out.print(f"SPI-{scale} for {result['month']} ({result['standard']})")


@water_app.command("rain-record")
def rain_record_cmd(
    path: Annotated[str, typer.Argument(help="CSV with the columns gauge, month (YYYY-MM), mm")],
    source: Annotated[str, typer.Option(help="where the figures come from")] = "station record",
) -> None:
    """Import rain gauges' monthly totals (the station record SPI needs), all or nothing."""
    import csv

    from apps.water import drought_service

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _fail(f"cannot read {path}: {exc}") from None

    def work(conn: Any) -> dict[str, Any]:
        result = drought_service.import_rain_record(conn, rows, source)
        conn.commit()
        return result

    result = _run(work)
    out.print(f"{result['months']} monthly totals of {result['gauges']} gauge(s) stored")


@water_app.command("outlook")
def outlook_cmd(
    days: Annotated[int, typer.Option(help="days ahead, 1..14")] = 7,
    rain_mm: Annotated[
        str | None, typer.Option(help="forecast rain per day, comma-separated (default: none)")
    ] = None,
    stage: Annotated[str, typer.Option(help="sowing, seedling, critical or other")] = "other",
    tmin_c: Annotated[float | None, typer.Option(help="daily minimum (default: observed)")] = None,
    tmax_c: Annotated[float | None, typer.Option(help="daily maximum (default: observed)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The soil-moisture outlook per district from a soil water balance and the weather."""
    from apps.water import drought, drought_service

    try:
        rain = None if rain_mm is None else [float(v) for v in rain_mm.split(",")]
    except ValueError:
        raise _fail(f"--rain-mm {rain_mm!r} must be numbers separated by commas") from None
    result = _run(
        lambda conn: drought_service.drought_outlook(conn, days, rain, stage, tmin_c, tmax_c)
    )
    if as_json:
        _json(result)
        return
    table = Table("district", "today", *(d[5:] for d in result["dates"]), "enters")
    for d in result["districts"]:
        enters = d["enters"]
        table.add_row(
            d["district_code"],
            f"{d['today_pct']:.0f}% {drought.GRADE_NAMES[d['today_grade']]}",
            *(f"{v:.0f}" for v in d["relative_pct"]),
            "-" if enters is None else f"{enters['grade_zh']} {enters['date']}",
        )
    out.print(table)
    w = result["weather"]
    out.print(
        f"rain {sum(w['rain_mm']):g} mm over {days} days; {w['tmin_c']:g}..{w['tmax_c']:g} °C"
        f" ({w['temperature']})"
    )


@water_app.command("permits")
def permits_cmd(
    year: Annotated[int | None, typer.Option(help="permit year (default: this one)")] = None,
    base_rate: Annotated[
        float | None, typer.Option(help="base fee, yuan/m³ (default: the tariff's)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Water-use permits: metered use against the annual quota, and the fee."""
    from apps.water import service

    result = _run(lambda conn: service.permits(conn, year, base_rate))
    if as_json:
        _json(result)
        return
    colours = {"normal": "green", "warning": "yellow", "exceeded": "red", "meter_fault": "red"}
    table = Table("permit", "holder", "source", "quota m³", "used m³", "use", "state", "fee ¥")
    for p in result["permits"]:
        state = p["state"]
        table.add_row(
            p["permit_id"],
            p["holder_name"],
            p["source_type"],
            f"{p['annual_quota_m3']:,.0f}",
            "-" if p["used_m3"] is None else f"{p['used_m3']:,.0f}",
            "-" if p["ratio"] is None else f"{p['ratio']:.0%}",
            f"[{colours.get(state, 'dim')}]{state}[/]",
            "-" if p["fee_yuan"] is None else f"{p['fee_yuan']:,.2f}",
        )
    out.print(table)
    out.print(
        f"{result['year']}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result["states"].items()))
        + f" (as of {datetime.now():%Y-%m-%d %H:%M})"
    )


@water_app.command("balance")
def balance_cmd(
    year: Annotated[int | None, typer.Option(help="year (default: this one)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The year's water balance per district from the meters: supply by source, use by
    sector, against the permitted quotas (万m³)."""
    from apps.water import report, service

    result = _run(lambda conn: service.water_balance(conn, year))
    if as_json:
        _json(result)
        return
    table = Table("district", *report.SOURCE_ZH.values(), *report.SECTOR_ZH.values(),
                  "total", "permitted")  # fmt: skip
    for d in [*result["districts"], {**result["total"], "name_zh": "合计"}]:
        table.add_row(
            d["name_zh"] or d.get("district_code", ""),
            *(report.wan(d["supply_m3"][k]) for k in report.SOURCE_ZH),
            *(report.wan(d["use_m3"][k]) for k in report.SECTOR_ZH),
            report.wan(d["use_total_m3"]),
            report.wan(d["permitted_m3"]),
        )
    out.print(table)
    out.print(
        f"{result['year']}: {len(result['permits'])} metered permits,"
        f" {len(result['left_out'])} without a usable reading (万m³)"
    )


@water_app.command("report")
def report_cmd(
    year: Annotated[int, typer.Option(help="the report's year")],
    out_file: Annotated[str, typer.Option("--out", help="PDF file to write")],
) -> None:
    """The annual water-resources report (水资源年报) as a PDF, made offline."""
    from apps.water import report

    if not 2000 <= year <= 2100:
        raise _fail(f"--year {year} must be within 2000..2100")
    body = _run(lambda conn: {"pdf": report.render(conn, year)})["pdf"]
    try:
        with open(out_file, "wb") as f:
            f.write(body)
    except OSError as exc:
        raise _fail(f"cannot write {out_file}: {exc.strerror}") from None
    out.print(f"{year} report written to {out_file} ({len(body) / 1024:.0f} KiB)")


def register(root: typer.Typer) -> None:
    root.add_typer(water_app, name="water")
