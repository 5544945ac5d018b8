"""``changzhi traffic ...``: simulated controller logs, measures, live speeds onto the road
graph, fault work orders.

:func:`register` adds the ``traffic`` group to the ``changzhi`` app.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape

from apps.platform.cli_kit import USER_ERRORS as _USER_ERRORS
from apps.platform.cli_kit import fail as _fail
from apps.platform.cli_kit import out
from gis_core.db import connect
from gis_core.settings import get_settings

traffic_app = typer.Typer(help="City traffic (交通).", no_args_is_help=True)


def _when(text: str | None, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{text!r} is not an ISO time (e.g. 2026-12-06T08:00+08:00)") from None
    if when.tzinfo is None:
        raise _fail(f"{text!r} has no time zone: add +08:00 or Z")
    return when


def _emit(result: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    else:
        out.print(line)


JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


@traffic_app.command("simulate-log")
def simulate_log_cmd(
    start: Annotated[str | None, typer.Option(help="ISO start with zone; default 1 h ago")] = None,
    minutes: Annotated[float, typer.Option(help="length of the log")] = 60.0,
    junctions: Annotated[
        int | None, typer.Option(help="the first N junctions; default all")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Simulate controllers' hi-res event logs and store them, as uploads would."""
    from apps.traffic.synth import simulate_into

    begin = _when(start, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes))
    try:
        with connect(get_settings().database_url) as conn:
            result = simulate_into(
                conn, start=begin, duration_s=minutes * 60, junctions=junctions, seed=seed
            )
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    _emit(
        result,
        as_json,
        f"{result['events']:,} events for {result['junctions']} junctions, "
        f"{result['stored']:,} new",
    )


@traffic_app.command("measures")
def measures_cmd(
    start: Annotated[
        str | None, typer.Option("--from", help="ISO with zone; default 1 h ago")
    ] = None,
    to: Annotated[str | None, typer.Option(help="ISO with zone; default now")] = None,
    junction: Annotated[list[int] | None, typer.Option(help="junction id(s); default all")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute and store the 15-minute performance measures of the stored event logs."""
    from apps.traffic import service

    now = datetime.now(UTC)
    end = _when(to, now)
    begin = _when(start, end - timedelta(hours=1))
    try:
        with connect(get_settings().database_url) as conn:
            ids = junction or [r[0] for r in conn.execute("SELECT id FROM traffic.junction")]
            frame, flags = service.compute_and_store(conn, ids, begin, end)
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    result = {
        "junctions": len(ids),
        "rows": len(frame),
        "split_failures": int(frame["split_failures"].sum()) if len(frame) else 0,
        "flags": len(flags),
    }
    _emit(
        result,
        as_json,
        f"{result['rows']:,} measure rows for {len(ids)} junctions, "
        f"{result['split_failures']} split failures, {len(flags)} flags",
    )


@traffic_app.command("update-speeds")
def update_speeds_cmd(
    minutes: Annotated[float, typer.Option(help="fleet fixes of the last N minutes")] = 15.0,
    as_json: JsonOpt = False,
) -> None:
    """Map-match recent vehicle fixes and store live segment speeds."""
    from apps.traffic import service

    try:
        with connect(get_settings().database_url) as conn:
            result = service.update_speeds(conn, minutes=minutes)
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    _emit(
        result,
        as_json,
        f"{result['fixes']:,} fixes, {result['matched']:,} matched, "
        f"{result['segments']:,} segments with a live speed",
    )


@traffic_app.command("apply-speeds")
def apply_speeds_cmd(
    below: Annotated[float, typer.Option(help="congestion index under which to slow")] = 0.6,
    as_json: JsonOpt = False,
) -> None:
    """Write congested segments to the shared road graph, so dispatch ETAs use live speeds."""
    from apps.traffic import service

    try:
        with connect(get_settings().database_url) as conn:
            result = service.apply_speeds(conn, below=below)
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    _emit(result, as_json, f"{result['slowed']} segments slowed ({result['lifted']} lifted)")


@traffic_app.command("work-orders")
def work_orders_cmd(as_json: JsonOpt = False) -> None:
    """Open orders for new signal faults, escalate overdue ones, and list the open ones."""
    from apps.traffic import service

    try:
        with connect(get_settings().database_url) as conn:
            done = service.sync_work_orders(conn)
            orders = service.work_orders(conn, "open")
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps({**done, "open": orders}, default=str) + "\n")
        return
    out.print(f"{done['opened']} opened, {done['escalated']} escalated, {len(orders)} open")
    for o in orders:
        out.print(
            f"  #{o['id']} {escape(o['device_id'])} {escape(o['fault'])} "
            f"due {o['due_at']:%Y-%m-%d %H:%M} level {o['escalation']}"
        )


def register(root: typer.Typer) -> None:
    root.add_typer(traffic_app, name="traffic")
