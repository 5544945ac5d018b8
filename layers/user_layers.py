"""Layers imported from files, and imports into the built-in layers that accept them.

:func:`import_layer` stores a :class:`gis_core.io.ReadResult`:

- into a built-in layer whose table takes imported rows (parcels, the POI layers such as
  shelters or hospitals, monitoring sites), mapping the file's columns onto the table's;
- or into a user layer, the table ``userdata.<layer_id>`` registered in ``ref.user_layer``,
  created from the file's columns on first import and appended to afterwards.

Everything happens in the caller's transaction (inside a savepoint, so a failed import leaves
nothing behind and the caller's transaction usable); the caller commits.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal, cast

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg.pq import TransactionStatus

from gis_core.bulk import copy_rows, ewkb_hex
from gis_core.crs import CGCS2000_GK_CM114, WGS84, transform_geometry
from gis_core.errors import Conflict, InvalidInput, NotFound
from gis_core.identity import Principal, audit
from gis_core.io import ImportRejected, ReadResult, RowProblem, write_features
from gis_core.layer import PUBLIC, Layer
from gis_core.models import ROLES
from layers.catalog import Catalog

__all__ = [
    "BUILTIN_TARGETS",
    "LAYER_ID_RE",
    "ImportReport",
    "export_layer",
    "import_layer",
    "sanitize_identifier",
    "user_layers",
]

LAYER_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
USER_SCHEMA: Final = "userdata"
USER_GROUP: Final = "imported"
# Columns every user table has, and names PostgreSQL keeps for itself.
_RESERVED: Final = frozenset(
    {"id", "geom", "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"}
)
_GEOMETRY_TYPES: Final = {
    "POINT": "Point",
    "MULTIPOINT": "MultiPoint",
    "LINESTRING": "LineString",
    "MULTILINESTRING": "MultiLineString",
    "POLYGON": "Polygon",
    "MULTIPOLYGON": "MultiPolygon",
}
_DIMENSION: Final = {
    "Point": 0,
    "MultiPoint": 0,
    "LineString": 1,
    "MultiLineString": 1,
    "Polygon": 2,
    "MultiPolygon": 2,
}
_KIND: Final = {0: "points", 1: "lines", 2: "polygons"}
# Types a user table column can have (information_schema spelling, also valid DDL).
_COLUMN_TYPES: Final = (
    "boolean",
    "bigint",
    "double precision",
    "timestamp with time zone",
    "date",
    "text",
)
_PROGRESS_EVERY: Final = 500

Progress = Callable[[int], None]


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class _Target:
    """A built-in table that takes imported rows."""

    table: str
    fixed: Mapping[str, Any] = field(default_factory=dict)  # set by the layer, not the file
    computed: frozenset[str] = frozenset()  # filled in here
    excluded: frozenset[str] = frozenset()  # never imported
    aliases: Mapping[str, str] = field(default_factory=dict)  # file name (lower) -> column
    key: str | None = None  # a natural key that must be new


_POI_ALIASES: Final = {
    "name": "name_zh",
    "名称": "name_zh",
    "英文名称": "name_en",
    "地址": "address",
    "容量": "capacity",
    "区县代码": "district_code",
    "部门代码": "department_code",
}

BUILTIN_TARGETS: Final[Mapping[str, _Target]] = {
    "parcels": _Target(
        "registry.parcel",
        fixed={"version": 1},
        computed=frozenset({"area_m2", "registered_by"}),
        excluded=frozenset({"valid_to"}),
        aliases={
            "宗地代码": "parcel_code",
            "地类编码": "land_use",
            "地类代码": "land_use",
            "地类名称": "land_use_zh",
            "权利人": "owner",
            "区县代码": "district_code",
        },
        key="parcel_code",
    ),
    **{
        f"{category}s": _Target("ref.poi", fixed={"category": category}, aliases=_POI_ALIASES)
        for category in ("fire_station", "hospital", "police_station", "school", "shelter")
    },
    "geofences": _Target(
        "iot.geofence",
        aliases={
            "name": "name_zh",
            "名称": "name_zh",
            "进入告警": "on_enter",
            "离开告警": "on_leave",
        },
    ),
    "monitoring_sites": _Target(
        "iot.monitoring_site",
        aliases={
            "site_id": "id",
            "站点编号": "id",
            "编号": "id",
            "name": "name_zh",
            "名称": "name_zh",
            "类型": "kind",
            "区县代码": "district_code",
        },
        key="id",
    ),
}


@dataclass(frozen=True)
class _Column:
    name: str
    data_type: str
    max_length: int | None
    nullable: bool
    has_default: bool
    identity: bool


@dataclass(frozen=True)
class ImportReport:
    """What an import did.

    Attributes
    ----------
    layer_id, table
        Where the rows went.
    rows
        Rows written.
    created
        A new user layer was created (False: appended, or a built-in layer).
    builtin
        The rows went into a built-in layer's table.
    columns
        File column -> table column, for the columns imported.
    ignored_columns
        File columns that had no place in the table.
    layer
        The user layer's catalog entry (None for built-in layers).
    """

    layer_id: str
    table: str
    rows: int
    created: bool
    builtin: bool
    source: str
    source_crs: str
    geometry_type: str
    repaired: tuple[tuple[int, str], ...]
    columns: Mapping[str, str]
    ignored_columns: tuple[str, ...]
    layer: Layer | None = None


# --------------------------------------------------------------------------- helpers


def sanitize_identifier(name: str) -> str:
    """A lower-case SQL column name for a file's column name; Chinese letters are kept.

    Examples
    --------
    >>> sanitize_identifier("Land Use (GB/T 21010)"), sanitize_identifier("2020人口")
    ('land_use_gb_t_21010', 'c_2020人口')
    """
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    text = re.sub(r"\W+", "_", text).strip("_") or "column"
    if text[0].isdigit():
        text = "c_" + text
    return _fit_identifier(text)


def _fit_identifier(text: str, suffix: str = "") -> str:
    # PostgreSQL truncates identifiers at 63 bytes; cut first so names stay distinct.
    room = 63 - len(suffix.encode())
    cut = text.encode()[:room].decode("utf-8", errors="ignore")
    return cut + suffix


def _column_names(names: Sequence[str]) -> list[str]:
    """Sanitized, distinct column names for a user table, clear of reserved names."""
    taken: set[str] = set()
    out = []
    for name in names:
        base = sanitize_identifier(name)
        if base in _RESERVED:
            base = _fit_identifier("src_" + base)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = _fit_identifier(base, f"_{n}")
        taken.add(candidate)
        out.append(candidate)
    return out


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _column_type(series: pd.Series) -> str:
    """The SQL type of a user table column for a file column."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp with time zone"
    values = [v for v in series.tolist() if not _missing(v)]
    if values and all(isinstance(v, bool | np.bool_) for v in values):
        return "boolean"
    if values and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return "bigint"
    if values and all(isinstance(v, datetime) for v in values):
        return "timestamp with time zone"
    if values and all(isinstance(v, date) and not isinstance(v, datetime) for v in values):
        return "date"
    return "text"


class _Bad(ValueError):
    """A value that does not fit its column; the message says why."""


def _coerce(value: Any, column: _Column) -> Any:
    """A file value as the column's type; raises _Bad when it cannot be."""
    if _missing(value):
        return None
    kind = column.data_type
    if isinstance(value, np.generic):
        value = value.item()
    if kind in ("integer", "bigint", "smallint"):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            value = int(value)
        if not isinstance(value, int):
            raise _Bad(f"{column.name} {value!r} is not a whole number")
        limit = {"smallint": 2**15, "integer": 2**31}.get(kind, 2**63)
        if not -limit <= value < limit:
            raise _Bad(f"{column.name} {value} is out of range")
        return value
    if kind in ("double precision", "real", "numeric"):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _Bad(f"{column.name} {value!r} is not a number") from None
    if kind == "boolean":
        if isinstance(value, bool | int):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "t", "yes", "y", "1", "是"):
            return True
        if text in ("false", "f", "no", "n", "0", "否"):
            return False
        raise _Bad(f"{column.name} {value!r} is not true or false")
    if kind in ("json", "jsonb"):
        if isinstance(value, str):
            try:
                orjson.loads(value)
            except orjson.JSONDecodeError:
                raise _Bad(f"{column.name} is not valid JSON") from None
            return value
        return orjson.dumps(value, default=str).decode()
    if kind.startswith("timestamp") or kind == "date":
        if isinstance(value, pd.Timestamp):
            return value.to_pydatetime()
        return value if isinstance(value, date) else str(value)
    # Text: whole-number floats are codes that lost their type on the way (e.g. 1401.0).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else str(value)
    if column.max_length is not None and len(text) > column.max_length:
        raise _Bad(f"{column.name} {text[:30]!r} is longer than {column.max_length} characters")
    return text


def _table_columns(conn: psycopg.Connection, table: str) -> list[_Column]:
    schema, name = table.split(".", 1)
    rows = conn.execute(
        """
        SELECT column_name, data_type, character_maximum_length, is_nullable = 'YES',
               column_default IS NOT NULL OR is_identity = 'YES', is_identity = 'YES'
        FROM information_schema.columns
        WHERE table_schema = %s AND table_name = %s
        ORDER BY ordinal_position
        """,
        (schema, name),
    ).fetchall()
    return [_Column(*row) for row in rows]


def _table_geometry_type(conn: psycopg.Connection, table: str) -> str:
    schema, name = table.split(".", 1)
    row = conn.execute(
        """
        SELECT type FROM geometry_columns
        WHERE f_table_schema = %s AND f_table_name = %s AND f_geometry_column = 'geom'
        """,
        (schema, name),
    ).fetchone()
    if row is None or str(row[0]).upper() not in _GEOMETRY_TYPES:
        raise Conflict(f"table {table} has no typed geometry column 'geom'")
    return _GEOMETRY_TYPES[str(row[0]).upper()]


def _fit_geometries(
    geoms: np.ndarray, have: str, want: str, layer_id: str, source: str
) -> tuple[np.ndarray, dict[int, str]]:
    """Geometries made to fit a column of type ``want``; rows that cannot, with reasons."""
    if _DIMENSION[have] != _DIMENSION[want]:
        raise InvalidInput(
            f"{source}: layer {layer_id!r} holds {_KIND[_DIMENSION[want]]}; "
            f"the file has {_KIND[_DIMENSION[have]]}"
        )
    types = shapely.get_type_id(geoms)
    out = geoms.copy()
    problems: dict[int, str] = {}
    multi_id = {0: 4, 1: 5, 2: 6}[_DIMENSION[want]]
    if want.startswith("Multi"):
        single = types != multi_id
        if single.any():
            make = {4: shapely.multipoints, 5: shapely.multilinestrings, 6: shapely.multipolygons}
            out[single] = make[multi_id](geoms[single], indices=np.arange(int(single.sum())))
        return out, problems
    for i in np.flatnonzero(types == multi_id):
        parts = shapely.get_parts(geoms[i])
        if len(parts) == 1:
            out[i] = parts[0]
        else:
            problems[int(i)] = f"has {len(parts)} parts; layer {layer_id!r} holds single {want}s"
    return out, problems


def _rejected(result: ReadResult, problems: Mapping[int, str]) -> ImportRejected:
    """Positional problems as row problems named like gis_core.io names them."""
    frame = result.frame
    ident_col = result.id_column
    listed = []
    for i, reason in problems.items():
        ident = None
        if ident_col is not None and not _missing(frame[ident_col].iloc[i]):
            ident = f"{ident_col}={frame[ident_col].iloc[i]}"
        listed.append(RowProblem(int(frame.index[i]), reason, ident))
    return ImportRejected(result.source, listed, len(frame))


@contextmanager
def _savepoint(conn: psycopg.Connection) -> Iterator[None]:
    """A savepoint in the caller's transaction: on error our writes are undone, not theirs."""
    if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        # Open the caller's transaction first, or transaction() would commit on its own.
        conn.execute("SELECT 1")
    with conn.transaction():
        yield


def _write(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    progress: Progress | None,
) -> int:
    pending = 0

    def on_row() -> None:
        nonlocal pending
        pending += 1
        if progress is not None and pending >= _PROGRESS_EVERY:
            progress(pending)
            pending = 0

    count = copy_rows(conn, table, columns, rows, on_row=on_row)
    if progress is not None and pending:
        progress(pending)
    return count


# --------------------------------------------------------------------------- import


def import_layer(
    conn: psycopg.Connection,
    result: ReadResult,
    layer_id: str,
    *,
    catalog: Catalog,
    title_zh: str | None = None,
    title_en: str | None = None,
    roles: Sequence[str] = (),
    source_file: str | None = None,
    actor: Principal | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Store checked features in a built-in layer that takes imports, or in a user layer.

    Parameters
    ----------
    conn
        The caller's connection; the import runs in a savepoint of its transaction and the
        caller commits.
    result
        The file as read by :func:`gis_core.io.read_features`.
    layer_id
        A built-in layer accepting imports (``parcels``, ``fire_stations``, ``hospitals``,
        ``police_stations``, ``schools``, ``shelters``, ``monitoring_sites``) or the id of a
        user layer (``^[a-z][a-z0-9_]{1,47}$``), created if new, appended to if it exists.
    catalog
        The layer catalog (:class:`layers.catalog.Catalog`): built-in ids are looked up there.
    title_zh, title_en, roles
        For a new user layer: titles (the id by default) and the roles that may read it
        (everyone when empty).
    source_file
        The file's name, recorded with the layer and in the audit trail.
    actor
        Who imports (None: the platform itself, e.g. the CLI).
    progress
        Called with the number of rows written since its last call.

    Raises
    ------
    InvalidInput
        A bad layer id or role, missing required columns, points into a polygon layer, ...
    Conflict
        A built-in layer that takes no imports, existing keys, an incompatible user table.
    ImportRejected
        Rows whose values do not fit the table's columns; nothing is written.
    """
    if not LAYER_ID_RE.match(layer_id):
        raise InvalidInput(
            f"layer id {layer_id!r}: use 2-48 lower-case letters, digits and underscores, "
            "starting with a letter"
        )
    unknown = sorted(set(roles) - {*ROLES, "*"})
    if unknown:
        raise InvalidInput(f"unknown role(s): {', '.join(unknown)}; known: {', '.join(ROLES)}")
    source = source_file or result.source
    builtin = catalog.by_id.get(layer_id)
    try:
        with _savepoint(conn):
            if builtin is not None and builtin.group != USER_GROUP:
                report = _import_builtin(conn, result, builtin, source, actor, progress)
            else:
                report = _import_user(
                    conn,
                    result,
                    layer_id,
                    title_zh=title_zh,
                    title_en=title_en,
                    roles=roles,
                    source=source,
                    actor=actor,
                    progress=progress,
                )
            audit(
                conn,
                actor,
                "import",
                "layer",
                layer_id,
                {
                    "file": source,
                    "rows": report.rows,
                    "repaired": len(report.repaired),
                    "table": report.table,
                    "created": report.created,
                    "source_crs": report.source_crs,
                },
            )
    except psycopg.errors.IntegrityError as exc:
        raise Conflict(f"{source}: cannot import into {layer_id!r}: {_db_message(exc)}") from None
    except psycopg.errors.DataError as exc:
        raise InvalidInput(
            f"{source}: cannot import into {layer_id!r}: {_db_message(exc)}"
        ) from None
    return report


def _db_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).splitlines()[0]
    if diag.message_detail:
        text += f" ({diag.message_detail})"
    return text


def _import_builtin(
    conn: psycopg.Connection,
    result: ReadResult,
    layer: Layer,
    source: str,
    actor: Principal | None,
    progress: Progress | None,
) -> ImportReport:
    target = BUILTIN_TARGETS.get(layer.id)
    if target is None or target.table != layer.table:
        accepting = ", ".join(sorted(BUILTIN_TARGETS))
        raise Conflict(
            f"layer {layer.id!r} is a built-in layer that takes no imports "
            f"(those that do: {accepting}); import into a new layer id instead"
        )
    columns = _table_columns(conn, target.table)
    by_name = {c.name: c for c in columns}
    importable = {
        c.name: c
        for c in columns
        if c.name != "geom"
        and not c.identity
        and c.name not in target.fixed
        and c.name not in target.computed
        and c.name not in target.excluded
    }
    # File columns onto table columns: the table's own names first, then the aliases.
    frame = result.frame
    file_columns = [c for c in frame.columns if c != frame.geometry.name]
    mapping: dict[str, str] = {}
    for use_aliases in (False, True):
        for column in file_columns:
            key = str(column).strip().lower()
            name = target.aliases.get(key) if use_aliases else key
            if column not in mapping and name in importable and name not in mapping.values():
                mapping[column] = name
    ignored = tuple(str(c) for c in file_columns if c not in mapping)
    required = [c.name for c in importable.values() if not c.nullable and not c.has_default]
    missing = [name for name in required if name not in mapping.values()]
    if missing:
        raise InvalidInput(
            f"{source}: layer {layer.id!r} needs column(s) {', '.join(missing)}; the file has: "
            + (", ".join(map(str, file_columns)) or "no attribute columns")
        )

    have = _table_geometry_type(conn, target.table)
    geoms, problems = _fit_geometries(
        np.asarray(frame.geometry.values, dtype=object),
        result.geometry_type,
        have,
        layer.id,
        source,
    )
    n = len(frame)
    values: dict[str, list[Any]] = {}
    for file_column, name in mapping.items():
        column = importable[name]
        out: list[Any] = []
        for i, value in enumerate(frame[file_column].tolist()):
            try:
                v = _coerce(value, column)
                if v is None and name in required:
                    raise _Bad(f"{name} is empty")
            except _Bad as exc:
                problems.setdefault(i, str(exc))
                v = None
            out.append(v)
        values[name] = out
    if target.key is not None:
        keys = values[target.key]
        seen: dict[Any, int] = {}
        for i, key in enumerate(keys):
            if key is not None and key in seen:
                problems.setdefault(i, f"{target.key} {key!r} repeats row {seen[key] + 1}")
            seen.setdefault(key, i)
    if problems:
        raise _rejected(result, problems)
    if target.key is not None:
        _refuse_existing(conn, target.table, target.key, values[target.key], layer.id, source)

    for name, value in target.fixed.items():
        values[name] = [value] * n
    if "area_m2" in target.computed:
        metric = transform_geometry(geoms, WGS84, CGCS2000_GK_CM114)
        values["area_m2"] = [float(a) for a in shapely.area(metric)]
    if "registered_by" in target.computed:
        values["registered_by"] = [actor.username if actor else "system"] * n
    names = [name for name in values if name in by_name]
    rows = list(zip(*(values[c] for c in names), ewkb_hex(geoms, WGS84), strict=True))
    written = _write(conn, target.table, [*names, "geom"], rows, progress)
    return ImportReport(
        layer_id=layer.id,
        table=target.table,
        rows=written,
        created=False,
        builtin=True,
        source=source,
        source_crs=result.source_crs,
        geometry_type=have,
        repaired=tuple(result.repaired),
        columns=dict(mapping),
        ignored_columns=ignored,
    )


def _refuse_existing(
    conn: psycopg.Connection,
    table: str,
    key: str,
    keys: Sequence[Any],
    layer_id: str,
    source: str,
) -> None:
    schema, name = table.split(".", 1)
    query = sql.SQL("SELECT DISTINCT {k} FROM {t} WHERE {k} = ANY(%s) ORDER BY 1 LIMIT 11").format(
        k=sql.Identifier(key), t=sql.Identifier(schema, name)
    )
    existing = [row[0] for row in conn.execute(query, ([k for k in keys if k is not None],))]
    if existing:
        shown = ", ".join(map(str, existing[:10])) + (", ..." if len(existing) > 10 else "")
        raise Conflict(
            f"{source}: {key} already in layer {layer_id!r}: {shown}; an import only adds new ones"
        )


def _import_user(
    conn: psycopg.Connection,
    result: ReadResult,
    layer_id: str,
    *,
    title_zh: str | None,
    title_en: str | None,
    roles: Sequence[str],
    source: str,
    actor: Principal | None,
    progress: Progress | None,
) -> ImportReport:
    table = f"{USER_SCHEMA}.{layer_id}"
    # Two imports into one new id at once would race on CREATE TABLE; take turns.
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('changzhi.user_layer.' || %s, 0))",
        (layer_id,),
    )
    registered = conn.execute(
        "SELECT table_name, geometry_type FROM ref.user_layer WHERE id = %s FOR UPDATE",
        (layer_id,),
    ).fetchone()
    frame = result.frame
    file_columns = [str(c) for c in frame.columns if c != frame.geometry.name]
    names = _column_names(file_columns)
    types = {n: _column_type(frame[c]) for c, n in zip(file_columns, names, strict=True)}

    if registered is None:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if exists and exists[0]:
            raise Conflict(f"table {table} exists but is not a registered layer")
        geometry_type = result.geometry_type
        _create_table(conn, layer_id, [(n, types[n]) for n in names], geometry_type)
        columns = {c.name: c for c in _table_columns(conn, table)}
        created = True
    else:
        table = registered[0]
        geometry_type = registered[1]
        columns = {c.name: c for c in _table_columns(conn, table)}
        _check_compatible(layer_id, source, names, types, columns)
        created = False

    geoms, problems = _fit_geometries(
        np.asarray(frame.geometry.values, dtype=object),
        result.geometry_type,
        geometry_type,
        layer_id,
        source,
    )
    values: dict[str, list[Any]] = {}
    for file_column, name in zip(file_columns, names, strict=True):
        out: list[Any] = []
        for i, value in enumerate(frame[file_column].tolist()):
            try:
                out.append(_coerce(value, columns[name]))
            except _Bad as exc:
                problems.setdefault(i, str(exc))
                out.append(None)
        values[name] = out
    if problems:
        raise _rejected(result, problems)

    if created:
        conn.execute(
            """
            INSERT INTO ref.user_layer (id, table_name, title_zh, title_en, geometry_type,
                                        properties, roles, source_file, created_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                layer_id,
                table,
                title_zh or title_en or layer_id,
                title_en or title_zh or layer_id,
                geometry_type,
                names,
                list(roles),
                source,
                actor.username if actor else "system",
            ),
        )
    rows = list(zip(*(values[n] for n in names), ewkb_hex(geoms, WGS84), strict=True))
    written = _write(conn, table, [*names, "geom"], rows, progress)
    layer = next((x for x in user_layers(conn) if x.id == layer_id), None)
    return ImportReport(
        layer_id=layer_id,
        table=table,
        rows=written,
        created=created,
        builtin=False,
        source=source,
        source_crs=result.source_crs,
        geometry_type=geometry_type,
        repaired=tuple(result.repaired),
        columns=dict(zip(file_columns, names, strict=True)),
        ignored_columns=(),
        layer=layer,
    )


def _create_table(
    conn: psycopg.Connection,
    layer_id: str,
    columns: Sequence[tuple[str, str]],
    geometry_type: str,
) -> None:
    # Every name formatted below is checked: the id by LAYER_ID_RE, columns sanitized and
    # quoted, types and the geometry type from fixed lists.
    if geometry_type not in _DIMENSION:
        raise InvalidInput(f"cannot store geometry type {geometry_type!r}")
    odd = [kind for _, kind in columns if kind not in _COLUMN_TYPES]
    if odd:
        raise InvalidInput(f"cannot store column type(s) {', '.join(odd)}")
    definitions = [
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in columns
    ]
    conn.execute(
        sql.SQL(
            "CREATE TABLE {table} (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            "{columns}geom geometry({gtype}, 4326) NOT NULL)"
        ).format(
            table=sql.Identifier(USER_SCHEMA, layer_id),
            columns=sql.SQL("").join(d + sql.SQL(", ") for d in definitions),
            gtype=sql.SQL(geometry_type),
        )
    )
    conn.execute(
        sql.SQL("CREATE INDEX {index} ON {table} USING gist (geom)").format(
            index=sql.Identifier(f"ix_{layer_id}_geom"),
            table=sql.Identifier(USER_SCHEMA, layer_id),
        )
    )


def _check_compatible(
    layer_id: str,
    source: str,
    names: Sequence[str],
    types: Mapping[str, str],
    columns: Mapping[str, _Column],
) -> None:
    """Appending needs every file column in the table, with a type its values fit."""
    absent = [n for n in names if n not in columns]
    if absent:
        raise Conflict(
            f"{source}: layer {layer_id!r} has no column(s) {', '.join(absent)}; "
            "import the file into a new layer id instead"
        )
    widening = {("bigint", "double precision")}
    clashes = [
        f"{n} ({types[n]} into {columns[n].data_type})"
        for n in names
        if types[n] != columns[n].data_type
        and columns[n].data_type != "text"
        and (types[n], columns[n].data_type) not in widening
    ]
    if clashes:
        raise Conflict(
            f"{source}: column types differ from layer {layer_id!r}: {'; '.join(clashes)}"
        )


# --------------------------------------------------------------------------- reading layers


def _style(geometry_type: str) -> dict[str, Any]:
    dimension = _DIMENSION.get(geometry_type, 0)
    if dimension == 0:
        return {"color": "#495057", "radius": 5, "order": 45}
    if dimension == 1:
        return {"stroke": "#495057", "width": 2, "order": 9}
    return {"stroke": "#495057", "fill": "rgba(73,80,87,0.15)", "order": 4}


def user_layers(conn: psycopg.Connection) -> list[Layer]:
    """Catalog entries for the registered user layers (group ``imported``)."""
    rows = conn.execute(
        """
        SELECT id, table_name, title_zh, title_en, geometry_type, properties, roles,
               source_file, created_at
        FROM ref.user_layer ORDER BY id
        """
    ).fetchall()
    layers = []
    for layer_id, table, zh, en, gtype, properties, roles, source_file, created in rows:
        properties = tuple(properties or ())
        label = next((p for p in ("name_zh", "name", "名称", "title") if p in properties), None)
        layers.append(
            Layer(
                layer_id,
                table,
                zh,
                en,
                cast(
                    Literal[
                        "Point",
                        "LineString",
                        "Polygon",
                        "MultiPoint",
                        "MultiLineString",
                        "MultiPolygon",
                    ],
                    gtype,
                ),
                properties,
                group=USER_GROUP,
                roles=tuple(roles) if roles else PUBLIC,
                label=label,
                label_en="name_en" if "name_en" in properties else None,
                style=_style(gtype),
                description=f"imported from {source_file or 'a file'} on {created:%Y-%m-%d}",
            )
        )
    return layers


# --------------------------------------------------------------------------- export


def _export_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return value


def export_layer(
    conn: psycopg.Connection,
    layer: Layer,
    path: str | Path,
    *,
    bbox: Sequence[float] | None = None,
) -> int:
    """Write a layer (its fixed filter honoured) to a file; return the number of features.

    Parameters
    ----------
    layer
        A catalog layer, built-in or user.
    path
        ``.gpkg``, ``.geojson``/``.json``, ``.csv`` or ``.zip`` (Shapefile); see
        :func:`gis_core.io.write_features`.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS84: only features intersecting it.
    """
    schema, name = layer.table.split(".", 1)
    columns = [layer.id_column, *(p for p in layer.properties if p != layer.id_column)]
    geom: sql.Composable = sql.Identifier("t", layer.geom_column)
    if layer.srid != WGS84:
        geom = sql.SQL("ST_Transform({}, 4326)").format(geom)
    clauses: list[sql.Composable] = [
        sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(layer.geom_column))
    ]
    params: list[Any] = []
    if layer.where:
        # The layer's own filter, text from the catalog (as in gis_core.features).
        clauses.append(sql.SQL("(" + layer.where + ")"))
    if bbox is not None:
        box = [float(v) for v in bbox]
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise InvalidInput("bbox: expected 4 finite numbers min_lon,min_lat,max_lon,max_lat")
        clauses.append(
            sql.SQL("t.{g} && ST_Transform(ST_MakeEnvelope(%s, %s, %s, %s, 4326), {srid})").format(
                g=sql.Identifier(layer.geom_column), srid=sql.Literal(layer.srid)
            )
        )
        params.extend(box)
    query = sql.SQL(
        "SELECT {columns}, ST_AsBinary({geom}) FROM {table} AS t WHERE {where} ORDER BY t.{id}"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("t", c) for c in columns),
        geom=geom,
        table=sql.Identifier(schema, name),
        where=sql.SQL(" AND ").join(clauses),
        id=sql.Identifier(layer.id_column),
    )
    try:
        rows = conn.execute(query, params).fetchall()
    except psycopg.errors.UndefinedTable:
        raise NotFound(f"layer {layer.id!r}: its table {layer.table} does not exist") from None
    data = {c: [_export_value(row[k]) for row in rows] for k, c in enumerate(columns)}
    geoms = shapely.from_wkb([bytes(row[-1]) for row in rows])
    frame = gpd.GeoDataFrame(
        pd.DataFrame(data, columns=columns),
        geometry=gpd.GeoSeries(geoms, crs=WGS84),
        crs=WGS84,
    )
    write_features(frame, path, layer_name=layer.id)
    return len(frame)
