"""``changzhi flood ...``: prepare the DEM, rain, forecasts, inundation and evacuation.

:func:`register` adds the ``flood`` group to the ``changzhi`` app. Every command takes
``--json`` for the full answer; without it a short table. User errors: one red line, exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import psycopg
import typer
from rich.markup import escape
from rich.table import Table

from apps.platform.cli_kit import USER_ERRORS as _USER_ERRORS
from apps.platform.cli_kit import fail as _fail
from apps.platform.cli_kit import out
from gis_core.db import connect
from gis_core.settings import get_settings

flood_app = typer.Typer(help="Flood decision support (防汛减灾).", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="print the full answer as JSON")]


def _run(work: Callable[[psycopg.Connection], Any], *, commit: bool = False) -> Any:
    try:
        with connect(get_settings().database_url) as conn:
            result = work(conn)
            if commit:
                conn.commit()
            return result
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None


def _dump(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


def _stages(pairs: list[str]) -> dict[str, float] | None:
    """``GAUGE=LEVEL`` pairs."""
    if not pairs:
        return None
    stages: dict[str, float] = {}
    for pair in pairs:
        gauge, sep, level = pair.partition("=")
        try:
            stages[gauge.strip()] = float(level)
        except ValueError:
            sep = ""
        if not sep or not gauge.strip():
            raise _fail(f"--stage {pair!r}: give GAUGE=LEVEL, e.g. WL-140402-001=3.5")
    return stages


@flood_app.command("prepare")
def prepare_cmd(
    stream_area: Annotated[
        float, typer.Option(help="drained area (km²) that starts a stream")
    ] = 2.0,
    as_json: AsJson = False,
) -> None:
    """Run the prepare chain on the loaded DEM: COGs under <var>/flood/, streams and the
    catchment of every river gauge in the database."""
    from apps.flood.preparation import prepare_city

    settings = get_settings()
    report = _run(
        lambda conn: prepare_city(conn, settings.platform.var_dir, stream_area_km2=stream_area),
        commit=True,
    )
    if as_json:
        _dump(report.as_dict())
        return
    out.print(
        f"prepared {report.cells:,} cells in {report.prepare_s:.1f} s: "
        f"{report.streams:,} stream lines, {report.catchments} gauge catchments -> "
        f"{report.out_dir}"
    )
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")


@flood_app.command("rain")
def rain_cmd(
    window: Annotated[str, typer.Option(help="1h, 3h, 6h or 24h")] = "3h",
    method: Annotated[str, typer.Option(help="idw, thiessen or kriging")] = "kriging",
    end: Annotated[
        datetime | None, typer.Option(help="end of the window, with its UTC offset")
    ] = None,
    cell_m: Annotated[float, typer.Option(help="grid cell (m)")] = 1000.0,
    as_json: AsJson = False,
) -> None:
    """Areal rain per district and gauge catchment over a window."""
    from apps.flood.service import rain

    result = _run(lambda conn: rain(conn, window=window, method=method, end=end, cell_m=cell_m))
    if as_json:
        _dump(result)
        return
    out.print(
        f"{result['window']} to {result['end']:%Y-%m-%d %H:%M %Z} by {result['method']}: "
        f"max {result['grid']['max_mm']} mm, city mean {result['grid']['mean_mm']} mm"
    )
    table = Table("district", "mm")
    for row in result["districts"]:
        table.add_row(row["name_zh"], "-" if row["mm"] is None else f"{row['mm']:.1f}")
    out.print(table)
    for note in result["notes"]:
        out.print(f"[yellow]note:[/] {escape(note)}")


@flood_app.command("forecast")
def forecast_cmd(
    gauge: Annotated[str, typer.Argument(help="river gauge: site or device id")],
    hours: Annotated[float, typer.Option(help="hours of observations")] = 12.0,
    horizon: Annotated[float, typer.Option(help="forecast horizon (h)")] = 6.0,
    as_json: AsJson = False,
) -> None:
    """Observed and forecast stage at a river gauge, and when it passes its warning level."""
    from apps.flood.service import forecast

    result = _run(lambda conn: forecast(conn, gauge, hours=hours, horizon_h=horizon))
    if as_json:
        _dump(result)
        return
    last = next((v for v in reversed(result["observed_m"]) if v is not None), None)
    out.print(
        f"{result['name_zh']} ({result['site_id']}): now {last} m, forecast peak "
        f"{result['peak_m']} m; warning {result['warning_m']} m, danger {result['danger_m']} m"
    )
    for label, key in (("warning", "warning_at"), ("danger", "danger_at")):
        when = result[key]
        out.print(
            f"{label}: " + (f"[bold red]passed at {when:%H:%M}[/]" if when else "not reached")
        )
    for note in result["notes"]:
        out.print(f"[yellow]note:[/] {escape(note)}")


@flood_app.command("inundate")
def inundate_cmd(
    stage: Annotated[list[str] | None, typer.Option(help="GAUGE=LEVEL (m), repeatable")] = None,
    rise: Annotated[float | None, typer.Option(help="uniform stage above every bed (m)")] = None,
    observed: Annotated[bool, typer.Option(help="use the latest observed levels")] = False,
    close_roads: Annotated[
        bool, typer.Option(help="close roads under more than 0.3 m of water")
    ] = True,
    as_json: AsJson = False,
) -> None:
    """Inundation depth of a stage scenario and what it reaches; closes the flooded roads."""
    from apps.flood.service import inundate

    stages = _stages(stage or [])
    result = _run(
        lambda conn: inundate(
            conn, stages=stages, rise_m=rise, observed=observed, close=close_roads
        ),
        commit=True,
    )
    if as_json:
        _dump(result)
        return
    out.print(
        f"{result['area_km2']} km² under water (max {result['max_depth_m']} m): "
        f"{result['people']:,} people, {len(result['pois'])} POIs, "
        f"{result['roads_closed']} roads closed"
    )
    table = Table("district", "people")
    for row in result["districts"]:
        table.add_row(row["name_zh"], f"{row['people']:,}")
    out.print(table)
    for note in result["notes"]:
        out.print(f"[yellow]note:[/] {escape(note)}")


@flood_app.command("reopen")
def reopen_cmd() -> None:
    """Reopen every road the flood closed."""
    from apps.flood.service import reopen

    n = _run(reopen, commit=True)
    out.print(f"{n} roads reopened")


@flood_app.command("evacuate")
def evacuate_cmd(
    stage: Annotated[list[str] | None, typer.Option(help="GAUGE=LEVEL (m), repeatable")] = None,
    rise: Annotated[float | None, typer.Option(help="uniform stage above every bed (m)")] = None,
    observed: Annotated[bool, typer.Option(help="use the latest observed levels")] = False,
    as_json: AsJson = False,
) -> None:
    """Send the people of the flooded cells to shelters by road, within capacities."""
    from apps.flood.service import evacuate

    stages = _stages(stage or [])
    result = _run(lambda conn: evacuate(conn, stages=stages, rise_m=rise, observed=observed))
    if as_json:
        _dump(result)
        return
    out.print(
        f"{result['people']:,} people: {result['assigned']:,} to shelters "
        f"(mean {result['mean_travel_min']} min), {result['unassigned']:,} without a place"
    )
    table = Table("district", "people", "assigned", "unassigned", "mean min")
    for row in result["districts"]:
        table.add_row(
            row["name_zh"],
            f"{row['people']:,}",
            f"{row['assigned']:,}",
            f"{row['unassigned']:,}",
            "-" if row["mean_travel_min"] is None else f"{row['mean_travel_min']}",
        )
    out.print(table)
    for note in result["notes"]:
        out.print(f"[yellow]note:[/] {escape(note)}")


@flood_app.command("briefing")
def briefing_cmd(
    out_file: Annotated[str, typer.Option("--out", help="the briefing file: NAME.pdf or NAME.png")],
    window: Annotated[str, typer.Option(help="rain window: 1h, 3h, 6h or 24h")] = "3h",
    rise: Annotated[
        float | None, typer.Option(help="inundation scenario: stage above every bed (m)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The flood consultation briefing (防汛会商): map, hydrographs, alarms, affected and
    evacuation tables, as one PDF or PNG page, made offline."""
    from pathlib import Path

    from apps.flood.briefing import briefing

    path = Path(out_file)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("pdf", "png"):
        raise _fail(f"--out {out_file}: the briefing is a .pdf or a .png file")
    if not path.parent.is_dir():
        raise _fail(f"--out {out_file}: no folder {path.parent}")
    data, summary = _run(
        lambda conn: briefing(conn, fmt=fmt, window=window, rise_m=rise)  # type: ignore[arg-type]
    )
    path.write_bytes(data)
    if as_json:
        _dump({"file": str(path), "bytes": len(data), **summary})
        return
    out.print(f"briefing written to {path} ({len(data):,} bytes)")
    for alarm in summary["alarms"]:
        out.print(
            f"[red]forecast alarm[/] {escape(alarm['name_zh'])}: warning at "
            f"{alarm['warning_at'] or '-'}, danger at {alarm['danger_at'] or '-'}"
        )
    for note in summary["notes"]:
        out.print(f"[yellow]note:[/] {escape(note)}")


def register(app: typer.Typer) -> None:
    """Add ``changzhi flood`` to the platform's command line."""
    app.add_typer(flood_app, name="flood")
