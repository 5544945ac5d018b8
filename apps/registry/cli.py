"""``changzhi registry ...``: import a corner list as an application, the full check, a
right's history and the register as of a date.

:func:`register` adds the ``registry`` group to the ``changzhi`` app.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from apps.platform.cli_kit import USER_ERRORS as _USER_ERRORS
from apps.platform.cli_kit import fail as _fail
from apps.platform.cli_kit import out
from gis_core.db import connect
from gis_core.identity import Principal
from gis_core.settings import get_settings

registry_app = typer.Typer(help="Land and mineral-rights registries.", no_args_is_help=True)


def _json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


def _read_text(file: Path, encoding: str | None) -> str:
    data = file.read_bytes()
    if encoding:
        return data.decode(encoding)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Corner lists from the bureau's tools are often GBK.
        return data.decode("gb18030")


def _time(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--{name}: not an ISO 8601 time: {value!r}") from None
    # The command line speaks the city's local time when no offset is given.
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


@registry_app.command("import-corners")
def import_corners_cmd(
    file: Annotated[Path, typer.Argument(help="corner-coordinate list (拐点坐标), UTF-8 or GBK")],
    object_id: Annotated[str, typer.Option("--id", help="licence number or parcel code")],
    applicant: Annotated[str, typer.Option(help="holder, by name or credit code")],
    kind: Annotated[str, typer.Option(help="mining, exploration or parcel")] = "mining",
    zone: Annotated[
        int | None, typer.Option(help="3° zone when the file gives none (25–45)")
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="text encoding (default: guess)")] = None,
    user: Annotated[str, typer.Option(help="the registrar filing it")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="print the application as JSON")] = False,
) -> None:
    """File a corner list as an application: parsed (axes and zone handled), checked against
    the register, basic farmland, the red line and built-up areas; findings listed."""
    from apps.registry import service

    try:
        text = _read_text(file, encoding)
        boundary = service.boundary_from_corners(text, default_zone=zone)
        actor = Principal(0, user, frozenset({"registrar"}), None)
        with connect(get_settings().database_url) as conn:
            made = service.submit(
                conn,
                actor,
                kind=kind,
                object_id=object_id,
                applicant=applicant,
                boundary=boundary,
                corners=text,
            )
            conn.commit()
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(made)
        return
    for warning in boundary.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print(
        f"application {made['id']} for {escape(made['object_id'])}: "
        f"{made['area_m2']:,.0f} m² ({made['area_mu']:,.1f} 亩), "
        f"depth {made['depth_top_m']}–{made['depth_bottom_m']} m, due {made['due_at']:%Y-%m-%d}"
    )
    _findings_table(made["findings"])


def _findings_table(findings: list[dict[str, Any]]) -> None:
    if not findings:
        out.print("[green]no conflicts[/]")
        return
    table = Table("finding", "check", "with", "area m²", "亩", "share", "status")
    for f in findings:
        table.add_row(
            str(f["id"]),
            f["check_kind"],
            f"{f['other_kind']} {f['other_id']}",
            f"{f['area_m2']:,.0f}",
            f"{f['area_mu']:,.2f}",
            f"{f['share']:.1%}" if f["share"] is not None else "",
            f["status"],
        )
    out.print(table)


@registry_app.command("check")
def check_cmd(
    sample: Annotated[int, typer.Option(help="findings listed per check")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """The full conflict check of the register: parcel overlaps, gaps and slivers; rights
    against rights (plan and depth), basic farmland, the red line and built-up areas."""
    from apps.registry import service

    try:
        with connect(get_settings().database_url) as conn:
            summary = service.full_check(conn, sample)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(summary)
        return
    table = Table("check", "findings", "area m²", "亩", "seconds")
    for name, c in summary["checks"].items():
        table.add_row(
            name,
            str(c["count"]),
            f"{c['area_m2']:,.0f}",
            f"{c['area_mu']:,.1f}",
            f"{c['seconds']:.2f}",
        )
    out.print(table)
    for c in summary["checks"].values():
        for f in c["findings"]:
            out.print(
                f"  {f['check']}: {f['kind_a']} {f['a']} × {f['kind_b']} {f['b']} "
                f"{f['area_m2']:,.0f} m²"
            )


@registry_app.command("history")
def history_cmd(
    license_no: Annotated[str, typer.Argument(help="licence number (or parcel code)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the history as JSON")] = False,
) -> None:
    """Every version of a right: valid and recorded times, holder, transaction and reason."""
    from apps.registry import service

    try:
        with connect(get_settings().database_url) as conn:
            found = service.right_history(conn, license_no)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(found)
        return
    table = Table("version", "valid from", "valid to", "recorded", "until", "holder", "txn")
    for v in found["versions"]:
        txn = v["transaction"] or {}
        table.add_row(
            str(v["version_id"]),
            f"{v['valid_from']:%Y-%m-%d}",
            f"{v['valid_to']:%Y-%m-%d}" if v["valid_to"] else "open",
            f"{v['recorded_from']:%Y-%m-%d %H:%M}",
            f"{v['recorded_to']:%Y-%m-%d %H:%M}" if v["recorded_to"] else "held",
            str(v["attrs"].get("holder", "")),
            f"{txn.get('operation', '')} {txn.get('note') or ''}",
        )
    out.print(table)


@registry_app.command("asof")
def asof_cmd(
    valid: Annotated[str, typer.Option(help="valid time (ISO 8601; local time if no offset)")],
    known: Annotated[str | None, typer.Option(help="as the register knew it then")] = None,
    license_no: Annotated[str | None, typer.Option(help="one right only")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print GeoJSON")] = False,
) -> None:
    """The rights the register held as valid on a date, as it knew them at another."""
    from apps.registry import service

    try:
        valid_at = _time(valid, "valid")
        assert valid_at is not None
        with connect(get_settings().database_url) as conn:
            found = service.as_of(conn, valid_at, _time(known, "known"), object_id=license_no)
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(found)
        return
    table = Table("object", "kind", "holder", "valid from", "valid to", "area m²")
    for f in found["features"]:
        p = f["properties"]
        table.add_row(
            f["id"],
            p["kind"],
            str(p.get("holder", "")),
            f"{p['valid_from']:%Y-%m-%d}",
            f"{p['valid_to']:%Y-%m-%d}" if p["valid_to"] else "open",
            f"{p['area_m2']:,.0f}",
        )
    out.print(table)
    out.print(f"{found['numberReturned']} objects: {found['counts']}")


@registry_app.command("certificate")
def certificate_cmd(
    license_no: Annotated[str, typer.Argument(help="licence number")],
    out_file: Annotated[Path, typer.Option("--out", help="where to write the PDF")],
) -> None:
    """A right's certificate (采矿许可证) with its map and corner table, as PDF."""
    from apps.registry import certificate

    try:
        with connect(get_settings().database_url) as conn:
            right = certificate.right_in_force(conn, license_no)
        out_file.write_bytes(certificate.certificate_pdf(right))
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    out.print(f"wrote {escape(str(out_file))} (zone {right.zone})")


@registry_app.command("corners")
def corners_cmd(
    license_no: Annotated[str, typer.Argument(help="licence number")],
    out_file: Annotated[Path | None, typer.Option("--out", help="file; default: print")] = None,
) -> None:
    """A right's boundary as a corner-coordinate list (拐点坐标, zone-prefixed Y)."""
    from apps.registry import certificate

    try:
        with connect(get_settings().database_url) as conn:
            text = certificate.corner_list(certificate.right_in_force(conn, license_no))
        if out_file is None:
            sys.stdout.write(text)
        else:
            out_file.write_text(text, encoding="utf-8")
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None


@registry_app.command("stats")
def stats_cmd(
    what: Annotated[str, typer.Argument(help="landuse, change or rights")],
    at: Annotated[str | None, typer.Option(help="date (ISO 8601); default now")] = None,
    start: Annotated[str | None, typer.Option(help="change: the first date")] = None,
    level: Annotated[str, typer.Option(help="GB/T 21010 level: first or second")] = "first",
    months: Annotated[int, typer.Option(help="rights: expiry horizon in months")] = 6,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Land use by district and class, the change matrix, or rights by mineral and expiry."""
    from apps.registry import stats

    try:
        when = _time(at, "at") or dt.datetime.now(dt.UTC)
        with connect(get_settings().database_url) as conn:
            if what == "landuse":
                found = stats.land_use(conn, when, level)
            elif what == "change":
                first = _time(start, "start")
                if first is None:
                    raise ValueError("change needs --start (and --at for the end, default now)")
                found = stats.change_matrix(conn, first, when, level)
            elif what == "rights":
                found = stats.rights_summary(conn, when, months)
            else:
                raise ValueError(f"unknown statistic {what!r}: landuse, change or rights")
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _json(found)
        return
    if what == "landuse":
        table = Table("district", "class", "name", "parcels", "ha", "亩")
        for r in found["rows"]:
            table.add_row(
                str(r["district"] or r["district_code"]),
                r["class"],
                str(r["class_zh"]),
                str(r["parcels"]),
                f"{r['hectares']:,.2f}",
                f"{r['mu']:,.1f}",
            )
    elif what == "change":
        table = Table("from", "to", "ha", "亩")
        for c in found["cells"]:
            table.add_row(c["from"], c["to"], f"{c['hectares']:,.2f}", f"{c['mu']:,.1f}")
    else:
        table = Table("mineral", "type", "rights", "km²")
        for m in found["by_mineral"]:
            table.add_row(str(m["mineral"]), m["right_type"], str(m["rights"]), f"{m['area_km2']}")
        out.print(table)
        table = Table("expiring", "holder", "mineral", "valid to")
        for e in found["expiring"]:
            table.add_row(
                e["license_no"], str(e["holder"]), str(e["mineral"]), f"{e['valid_to']:%Y-%m-%d}"
            )
    out.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(registry_app, name="registry")
