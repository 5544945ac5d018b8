"""``changzhi import`` and ``changzhi export``: GIS files in and out of the platform.

The functions here are typer commands; :func:`register` adds them to the ``changzhi`` app.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gis_core.crs import UnknownCRSError
from gis_core.db import DatabaseUnavailable, connect
from gis_core.errors import PlatformError
from gis_core.io import READ_FORMATS, WRITE_FORMATS, read_features
from gis_core.settings import ConfigError, get_settings
from layers.catalog import Catalog, installed_catalog
from layers.user_layers import BUILTIN_TARGETS, ImportReport, export_layer, import_layer
from layers.user_layers import user_layers as load_user_layers

__all__ = ["export_layer_cmd", "import_file", "register"]

out = Console()
err = Console(stderr=True)
# pyogrio logs every layer it writes at INFO; the summary line says it once.
logging.getLogger("pyogrio").setLevel(logging.WARNING)

# What a user can get wrong: reported as one line, never as a traceback.
_USER_ERRORS = (
    ValueError,  # ImportFileError, ImportRejected, UnknownCRSError, UnsupportedFormat
    PlatformError,
    DatabaseUnavailable,
    ConfigError,
    OSError,
)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]changzhi:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _database_error(exc: psycopg.Error) -> typer.Exit:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.errors.UndefinedTable):
        first += " (is the schema migrated? `changzhi db migrate`)"
    return _fail(f"database error: {first}")


def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            help="file to import: " + ", ".join(f"{k} ({v})" for k, v in READ_FORMATS.items()),
            show_default=False,
        ),
    ],
    layer: Annotated[
        str,
        typer.Option(
            "--layer",
            help="target layer: a new or existing user layer id, or one of "
            + ", ".join(sorted(BUILTIN_TARGETS)),
            show_default=False,
        ),
    ],
    crs: Annotated[
        str | None,
        typer.Option(
            "--crs",
            help="CRS the coordinates are in, replacing what the file says "
            "(e.g. EPSG:4547, CGCS2000, GCJ02)",
        ),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="title of a new user layer")] = None,
    source_layer: Annotated[
        str | None,
        typer.Option("--source-layer", help="table of a GeoPackage, or .shp of a zip"),
    ] = None,
    lon: Annotated[str | None, typer.Option("--lon", help="CSV: longitude column")] = None,
    lat: Annotated[str | None, typer.Option("--lat", help="CSV: latitude column")] = None,
    wkt: Annotated[str | None, typer.Option("--wkt", help="CSV: WKT geometry column")] = None,
    encoding: Annotated[
        str | None,
        typer.Option("--encoding", help="text encoding of a Shapefile or CSV (default: detect)"),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="role that may read a new user layer (repeatable)"),
    ] = None,
) -> None:
    """Import a GIS file into a layer (all or nothing: a bad row rejects the file)."""
    try:
        with err.status(f"reading {escape(file.name)}..."):
            result = read_features(
                file,
                crs_override=crs,
                layer=source_layer,
                encoding=encoding,
                lon=lon,
                lat=lat,
                wkt=wkt,
            )
        settings = get_settings()
        with (
            connect(settings.database_url) as conn,
            Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=not err.is_terminal,  # no bar residue in logs and pipes
            ) as bar,
        ):
            task = bar.add_task("rows", total=result.rows)
            report = import_layer(
                conn,
                result,
                layer,
                catalog=installed_catalog(),
                title_zh=title,
                title_en=title,
                roles=tuple(role or ()),
                source_file=file.name,
                progress=lambda n: bar.advance(task, n),
            )
            conn.commit()
    except UnknownCRSError as exc:
        raise _fail(f"{file.name}: {exc}") from None
    except psycopg.Error as exc:
        raise _database_error(exc) from None
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    _summary(report, result.converted, result.encoding, result.notes)


def _summary(report: ImportReport, converted: bool, encoding: str | None, notes: list[str]) -> None:
    if report.builtin:
        where = f"built-in layer [bold]{escape(report.layer_id)}[/] ({report.table})"
    elif report.created:
        where = f"new layer [bold]{escape(report.layer_id)}[/] ({report.table})"
    else:
        where = f"layer [bold]{escape(report.layer_id)}[/] ({report.table}, appended)"
    out.print(f"imported [bold]{report.rows:,}[/] {report.geometry_type} rows into {where}")
    target = "converted to EPSG:4326" if converted else "stored as EPSG:4326"
    out.print(f"CRS: {escape(report.source_crs)} → {target}", highlight=False)
    if encoding:
        out.print(f"text encoding: {escape(encoding)}", highlight=False)
    if report.columns:
        renamed = [f"{a} → {b}" for a, b in report.columns.items() if a != b]
        out.print(
            f"columns: {escape(', '.join(report.columns.values()))}"
            + (f" (renamed: {escape(', '.join(renamed))})" if renamed else ""),
            highlight=False,
        )
    if report.ignored_columns:
        out.print(
            f"[yellow]ignored columns[/] (no place in {report.table}): "
            + escape(", ".join(report.ignored_columns)),
            highlight=False,
        )
    if report.repaired:
        out.print(
            f"[yellow]repaired {len(report.repaired)} invalid geometr"
            f"{'y' if len(report.repaired) == 1 else 'ies'}[/]:"
        )
        for row, reason in report.repaired[:50]:
            out.print(f"  row {row}: {escape(reason)}", highlight=False)
        if len(report.repaired) > 50:
            out.print(f"  ... and {len(report.repaired) - 50} more")
    for note in notes:
        out.print(f"note: {escape(note)}", highlight=False)


def _catalog(conn: psycopg.Connection) -> Catalog:
    catalog = installed_catalog()
    for extra in load_user_layers(conn):
        if extra.id not in catalog:
            catalog.add(extra)
    return catalog


def export_layer_cmd(
    layer: Annotated[str, typer.Argument(help="layer id", show_default=False)],
    file: Annotated[
        Path,
        typer.Argument(
            help="output: " + ", ".join(f"{k} ({v})" for k, v in WRITE_FORMATS.items()),
            show_default=False,
        ),
    ],
    bbox: Annotated[
        str | None,
        typer.Option("--bbox", help="only features in min_lon,min_lat,max_lon,max_lat"),
    ] = None,
) -> None:
    """Export a layer (built-in or imported) to a GeoPackage, GeoJSON, CSV or zipped Shapefile."""
    try:
        box = None
        if bbox is not None:
            try:
                box = [float(v) for v in bbox.split(",")]
            except ValueError:
                raise ValueError(f"--bbox {bbox!r}: expected 4 numbers") from None
        if file.suffix.lower() not in WRITE_FORMATS:
            raise ValueError(
                f"{file.name}: cannot export to '{file.suffix or file.name}' files; use one of "
                + ", ".join(WRITE_FORMATS)
            )
        settings = get_settings()
        with connect(settings.database_url) as conn:
            catalog = _catalog(conn)
            found = catalog.by_id.get(layer)
            if found is None:
                raise ValueError(f"no layer {layer!r}; layers: {', '.join(sorted(catalog.by_id))}")
            with err.status(f"exporting {escape(layer)}..."):
                count = export_layer(conn, found, file, bbox=box)
    except psycopg.Error as exc:
        raise _database_error(exc) from None
    except _USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    out.print(f"exported [bold]{count:,}[/] features of {escape(layer)} to {escape(str(file))}")


def register(app: typer.Typer) -> None:
    """Add ``import`` and ``export`` to the ``changzhi`` app."""
    app.command("import", help=import_file.__doc__)(import_file)
    app.command("export", help=export_layer_cmd.__doc__)(export_layer_cmd)
