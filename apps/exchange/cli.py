"""``changzhi exchange ...``: sources, syncs, runs and refusals, sample data, divisions.

:func:`register` adds the ``exchange`` group to the ``changzhi`` app.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from apps.platform.cli_kit import USER_ERRORS as _USER_ERRORS
from apps.platform.cli_kit import fail as _fail
from apps.platform.cli_kit import out
from gis_core.db import connect
from gis_core.settings import get_settings

exchange_app = typer.Typer(help="City data exchange: sources, syncs, sharing.",
                           no_args_is_help=True)  # fmt: skip
JsonOpt = Annotated[bool, typer.Option("--json", help="print the full result as JSON")]


def _json(result: Any) -> None:
    sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")


@exchange_app.command("sources")
def sources_cmd(as_json: JsonOpt = False) -> None:
    """Every source with its state, rows and last run."""
    from apps.exchange import service

    try:
        with connect(get_settings().database_url) as conn:
            rows = service.list_sources(conn, None)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(rows)
        return
    table = Table("source", "kind", "owner", "state", "rows", "last ok", "error")
    for r in rows:
        table.add_row(r["name"], r["kind"], r["owner"], r["state"], str(r["rows"]),
                      str(r["last_ok_at"] or "-")[:19], r["last_error"] or "")  # fmt: skip
    out.print(table)


@exchange_app.command("add")
def add_cmd(
    spec: Annotated[Path, typer.Argument(help="a JSON file describing the source (see README)")],
) -> None:
    """Register or change a source from a JSON description."""
    from apps.exchange import service

    try:
        body = json.loads(spec.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"{spec}: {exc}") from None
    if not isinstance(body, dict) or not {"name", "kind", "location", "owner"} <= set(body):
        raise _fail(f"{spec}: needs at least name, kind, location, owner, key_column, mapping")
    try:
        with connect(get_settings().database_url) as conn:
            service.save_source(conn, None, {"title_zh": body["name"], **body})
            conn.commit()
    except (*_USER_ERRORS, KeyError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"source {body['name']} registered")


@exchange_app.command("sync")
def sync_cmd(
    name: Annotated[str, typer.Argument(help="the source")],
    mode: Annotated[str, typer.Option(help="auto, full or incremental")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Sync a source now; exits 1 if the run failed (its error on one line)."""
    from apps.exchange import service
    from apps.exchange.sync import run_sync

    if mode not in ("auto", "full", "incremental"):
        raise _fail(f"--mode {mode!r}: auto, full or incremental")
    url = get_settings().database_url
    try:
        with connect(url) as conn:
            service.source(conn, name)
        run = run_sync(url, name, mode, actor="cli")
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(run)
    else:
        out.print(
            f"{name}: {run['mode']} {run['state']} · read {run['rows_read']} · loaded "
            f"{run['rows_loaded']} · deleted {run['rows_deleted']} · refused "
            f"{run['rows_refused']} · {run['duration_ms']:.0f} ms"
        )
    if run["state"] != "ok":
        raise _fail(f"{name}: {run['error']}")


@exchange_app.command("runs")
def runs_cmd(name: str, as_json: JsonOpt = False) -> None:
    """A source's recent runs."""
    from apps.exchange import service

    try:
        with connect(get_settings().database_url) as conn:
            rows = service.runs(conn, name)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(rows)
        return
    table = Table("run", "mode", "state", "read", "loaded", "deleted", "refused", "ms", "error")
    for r in rows:
        table.add_row(str(r["id"]), r["mode"], r["state"], str(r["rows_read"]),
                      str(r["rows_loaded"]), str(r["rows_deleted"]), str(r["rows_refused"]),
                      f"{r['duration_ms'] or 0:.0f}", r["error"] or "")  # fmt: skip
    out.print(table)


@exchange_app.command("refusals")
def refusals_cmd(run_id: int, as_json: JsonOpt = False) -> None:
    """The rows a run refused and why."""
    from apps.exchange import service

    try:
        with connect(get_settings().database_url) as conn:
            rows = service.refusals(conn, run_id)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(rows)
        return
    table = Table("row", "key", "column", "value", "reason")
    for r in rows:
        table.add_row(str(r["row_no"]), r["key"] or "", r["column"] or "", r["value"] or "",
                      r["reason"])  # fmt: skip
    out.print(table)


@exchange_app.command("seed")
def seed_cmd(
    folder: Annotated[Path | None, typer.Option(help="where the sample files go")] = None,
) -> None:
    """Write the statistics bureau's sample sources (census real, indicators synthesized),
    register and sync them."""
    from apps.exchange.samples import write_samples
    from apps.exchange.sync import run_sync

    settings = get_settings()
    target = folder or settings.platform.var_dir / "exchange" / "samples"
    try:
        with connect(settings.database_url) as conn:
            files = write_samples(conn, target)
            conn.commit()
        for name in files:
            run = run_sync(settings.database_url, name, "full", actor="cli")
            out.print(f"{name}: {run['state']} · {run['rows_loaded']} rows · {files[name]}")
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None


def register(root: typer.Typer) -> None:
    root.add_typer(exchange_app, name="exchange")
