"""``changzhi dispatch ...``: hotline import, coverage, the dispatch monitor.

:func:`register` adds the ``dispatch`` group to the ``changzhi`` app.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from apps.platform.cli_kit import USER_ERRORS as _USER_ERRORS
from apps.platform.cli_kit import fail as _fail
from apps.platform.cli_kit import out
from gis_core.db import connect
from gis_core.settings import get_settings

dispatch_app = typer.Typer(help="Emergency dispatch (CAD).", no_args_is_help=True)


@dispatch_app.command("import-hotline")
def import_hotline_cmd(
    file: Annotated[Path, typer.Argument(help="12345 tickets as CSV (UTF-8 or GB18030)")],
    min_confidence: Annotated[
        float, typer.Option(help="least geocoding confidence to place a ticket")
    ] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
) -> None:
    """Import 12345 hotline tickets: each row geocoded and made an incident; the rows that
    could not be placed are listed with the reason and suggestions."""
    from apps.dispatch.hotline import import_hotline

    try:
        data = file.read_bytes()
        with connect(get_settings().database_url) as conn:
            report = import_hotline(conn, data, None, min_confidence=min_confidence)
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, default=str) + "\n")
        return
    out.print(
        f"{report.rows:,} tickets: [green]{len(report.created):,} incidents created[/], "
        f"{len(report.duplicates):,} already imported, "
        f"[{'red' if report.unplaced else 'green'}]{len(report.unplaced):,} not placed[/]"
    )
    if report.unplaced:
        table = Table("row", "ticket", "address", "why", "did you mean")
        for u in report.unplaced:
            hints = ", ".join(s["name"] for s in u.get("suggestions", [])[:3])
            table.add_row(
                str(u["row"]), u["ticket_id"] or "", u["address"], u["reason"][:80], hints
            )
        out.print(table)


@dispatch_app.command("coverage")
def coverage_cmd(
    category: Annotated[
        str, typer.Option(help="fire_station, hospital or police_station")
    ] = "fire_station",
    minutes: Annotated[str, typer.Option(help="drive times in minutes")] = "5,10,15",
    suggest: Annotated[int, typer.Option(help="suggest this many new stations")] = 0,
    geojson: Annotated[
        Path | None, typer.Option(help="also write the drive-time areas as GeoJSON here")
    ] = None,
) -> None:
    """Population inside and outside the stations' drive-time areas, by district."""
    from apps.dispatch import coverage

    try:
        mins = tuple(int(m) for m in minutes.split(",") if m.strip())
        with connect(get_settings().database_url) as conn:
            cov = coverage.compute(conn, category, mins)
            table_data = cov.table()
            picks = (
                coverage.suggest_stations(conn, cov, minutes=max(mins), count=suggest)
                if suggest
                else []
            )
            if geojson is not None:
                geojson.write_text(json.dumps(cov.layer(), ensure_ascii=False))
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    table = Table("district", "census", "grid", *(f"outside {m} min" for m in mins))
    for row in table_data["rows"]:
        table.add_row(
            row["district"],
            f"{row['census_population'] or 0:,}",
            f"{row['grid_population']:,}",
            *(
                f"{row[f'outside_{m}min']:,} ({1 - (row[f'share_inside_{m}min'] or 0):.0%})"
                for m in mins
            ),
        )
    out.print(table)
    for p in picks:
        out.print(
            f"new station #{p['rank']}: {p['lon']}, {p['lat']} ({p['district']}) reaches "
            f"{p['population_newly_covered']:,} more residents within {p['minutes']} min"
        )


@dispatch_app.command("monitor")
def monitor_cmd() -> None:
    """Run the dispatch monitor (GPS lifecycle and escalation timers) in the foreground."""
    from apps.dispatch.monitor import run_monitor

    run_monitor()


def register(app: typer.Typer) -> None:
    """Add ``changzhi dispatch`` to the platform's command line."""
    app.add_typer(dispatch_app, name="dispatch")
