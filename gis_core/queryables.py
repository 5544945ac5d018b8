"""What a layer may be filtered and sorted by, and CQL2 filters turned into SQL.

OGC API – Features Part 3 (queryables, filter) and CQL2 (OGC 21-065). A filter is parsed and
checked by ``cql2`` (developmentseed's CQL2 implementation, which passes the standard's own
examples) in either encoding, text or JSON, into the canonical CQL2 JSON tree; this module
walks that tree into a PostgreSQL condition whose every value is a bound parameter and whose
every property is one of the layer's queryables (an identifier, never text from the request).

pygeofilter was tried first: its CQL2-text grammar does not read the standard's
``T_AFTER(a, TIMESTAMP(...))`` or open intervals, and its SQLAlchemy backend mixes up the
corners of a ``BBOX`` and fails on ``BETWEEN`` read from CQL2 JSON; ``cql2``'s own SQL writes
values into the text. Hence a library for the language and a short walk for the SQL.

>>> parse_filter("name_zh = '潞州区' AND population_2020 > 300000", "cql2-text")["op"]
'and'
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import cql2
import psycopg
from psycopg import sql

from gis_core.errors import InvalidParameter
from gis_core.layer import Layer

Kind = Literal["string", "integer", "number", "boolean", "date-time", "date", "geometry"]

# PostgreSQL types by what JSON Schema calls them; anything else (json, arrays, ranges) is
# shown in the features but not offered for filtering: a comparison would not mean much.
_PG_KINDS: dict[str, Kind] = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "numeric": "number",
    "real": "number",
    "double precision": "number",
    "boolean": "boolean",
    "text": "string",
    "character varying": "string",
    "character": "string",
    "citext": "string",
    "timestamp with time zone": "date-time",
    "timestamp without time zone": "date-time",
    "date": "date",
}
GEOMETRY = "geometry"  # the queryable name of a layer's geometry (as in OGC API examples)
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

FILTER_LANGS = ("cql2-text", "cql2-json", "cql-text")


@dataclass(frozen=True)
class Queryable:
    """One property a filter may name: its column and what kind of value it holds."""

    name: str
    column: str
    kind: Kind
    enum: tuple[str, ...] = ()

    def schema(self, layer: Layer) -> dict[str, Any]:
        """The JSON Schema of this property (OGC API – Features Part 3, queryables)."""
        if self.kind == "geometry":
            return {
                "title": "geometry",
                "format": "geometry-" + layer.geometry_type.lower(),
                "x-ogc-role": "primary-geometry",
            }
        body: dict[str, Any]
        if self.kind in ("date-time", "date"):
            body = {"type": "string", "format": self.kind}
        else:
            body = {"type": self.kind}
        if self.enum:
            body["enum"] = list(self.enum)
        if self.column == layer.time_column:
            body["x-ogc-role"] = "primary-instant"
        if self.column == layer.id_column:
            body["x-ogc-role"] = "id"
        return {"title": self.name, **body}


_cache: dict[tuple[str, str], tuple[float, dict[str, Queryable]]] = {}
_cache_lock = threading.Lock()
CACHE_TTL_S = 60.0


def queryables(conn: psycopg.Connection, layer: Layer) -> dict[str, Queryable]:
    """The layer's queryables by name: its scalar properties (types read from the table) and
    its geometry, cached for a minute per layer."""
    key = (layer.id, layer.table)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
    if cached and now - cached[0] < CACHE_TTL_S:
        return cached[1]
    rows = conn.execute(
        """
        SELECT a.attname, format_type(a.atttypid, NULL), t.typtype,
               CASE WHEN t.typtype = 'e' THEN
                   array(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = t.oid
                         ORDER BY enumsortorder) END
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        """,
        (layer.table,),
    ).fetchall()
    columns = {name: (pg_type, typtype, labels) for name, pg_type, typtype, labels in rows}
    found: dict[str, Queryable] = {}
    wanted = list(dict.fromkeys([*layer.properties, *filter(None, [layer.time_column])]))
    for name in wanted:
        if name not in columns:
            continue
        pg_type, typtype, labels = columns[name]
        if typtype == "e":
            found[name] = Queryable(name, name, "string", tuple(labels or ()))
        elif pg_type in _PG_KINDS:
            found[name] = Queryable(name, name, _PG_KINDS[pg_type])
    found[GEOMETRY] = Queryable(GEOMETRY, layer.geom_column, "geometry")
    with _cache_lock:
        _cache[key] = (now, found)
    return found


def schema_document(layer: Layer, found: dict[str, Queryable], href: str) -> dict[str, Any]:
    """The queryables resource: a JSON Schema (2020-12) of what a filter may name.

    ``queryables`` repeats the names as the drafts of Part 3 listed them; GDAL up to 3.6
    reads only that list to decide which ``-where`` clauses it may send to the server."""
    return {
        "$schema": JSON_SCHEMA,
        "$id": href,
        "type": "object",
        "title": layer.title_zh,
        "description": layer.title_en,
        "properties": {name: q.schema(layer) for name, q in found.items()},
        "additionalProperties": False,
        "queryables": [{"id": name, "title": name} for name in found],
    }


def parse_filter(text: str, lang: str) -> dict[str, Any]:
    """A filter in CQL2 text or JSON as the canonical CQL2 JSON tree; 400 with the parser's
    own words when it does not parse."""
    if lang not in FILTER_LANGS:
        raise InvalidParameter(
            f"filter-lang must be one of {', '.join(FILTER_LANGS)}, not {lang!r}"
        )
    if not text.strip():
        raise InvalidParameter("filter is empty")
    try:
        # cql-text, the name the drafts gave the text encoding, is read as CQL2 text.
        source = json.loads(text) if lang == "cql2-json" else text
        expr = cql2.Expr(source)
        expr.validate()  # against the standard's JSON Schema: operators and their arities
        tree = expr.to_json()
    except Exception as exc:  # the parsers raise plain exceptions; their text is the message
        message = " ".join(str(exc).split())[:400]
        raise InvalidParameter(f"filter does not parse as {lang}: {message}") from None
    if not isinstance(tree, dict | bool):
        raise InvalidParameter("filter must be a boolean expression")
    return tree if isinstance(tree, dict) else {"op": "=", "args": [tree, True]}


@dataclass(frozen=True)
class FilterCrs:
    """The CRS a filter's geometries are written in (``filter-crs``)."""

    srid: int
    flip: bool  # latitude/northing first


@dataclass
class _Walk:
    layer: Layer
    found: dict[str, Queryable]
    crs: FilterCrs
    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any) -> sql.Composable:
        name = f"cql_{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)


# A scalar expression: its SQL and the kind of value it yields ("null" for NULL literals).
_Scalar = tuple[sql.Composable, str]

_COMPARE = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_equals": "ST_Equals",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_within": "ST_Within",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
    "s_contains": "ST_Contains",
}
_TEMPORAL = {"t_after", "t_before", "t_intersects", "t_disjoint", "t_equals", "t_during"}
_NUMERIC = ("integer", "number")


def to_sql(
    tree: dict[str, Any], layer: Layer, found: dict[str, Queryable], crs: FilterCrs
) -> tuple[sql.Composable, dict[str, Any]]:
    """The condition a CQL2 JSON tree stands for, over the table aliased ``t``, with its
    parameters (named ``cql_0``, ``cql_1``, ...)."""
    walk = _Walk(layer, found, crs)
    condition = _predicate(walk, tree)
    return sql.SQL("({})").format(condition), walk.params


def _predicate(walk: _Walk, node: Any) -> sql.Composable:
    if isinstance(node, bool):
        return sql.SQL("true" if node else "false")
    if not isinstance(node, dict) or "op" not in node:
        raise InvalidParameter(f"filter: expected a condition, found {_short(node)}")
    op = str(node["op"]).lower()
    args = node.get("args") or []
    if op in ("and", "or"):
        parts = [_predicate(walk, a) for a in args]
        joiner = sql.SQL(" AND " if op == "and" else " OR ")
        return joiner.join(sql.SQL("({})").format(p) for p in parts)
    if op == "not":
        return sql.SQL("NOT ({})").format(_predicate(walk, args[0]))
    if op in _COMPARE:
        left, right = _scalar(walk, args[0]), _scalar(walk, args[1])
        _comparable(op, left, right, args)
        return sql.SQL("{} {} {}").format(left[0], sql.SQL(_COMPARE[op]), right[0])
    if op == "like":
        left, pattern = _scalar(walk, args[0]), _scalar(walk, args[1])
        if left[1] != "string" or pattern[1] != "string":
            raise InvalidParameter(f"filter: LIKE compares text; {_name(args[0])} is not text")
        return sql.SQL("{}::text LIKE {}").format(left[0], pattern[0])
    if op == "between":
        value, low, high = (_scalar(walk, a) for a in args[:3])
        _comparable(op, value, low, args)
        _comparable(op, value, high, args)
        return sql.SQL("{} BETWEEN {} AND {}").format(value[0], low[0], high[0])
    if op == "in":
        value = _scalar(walk, args[0])
        options = args[1] if len(args) > 1 and isinstance(args[1], list) else []
        if not options:
            raise InvalidParameter("filter: IN needs a list of values")
        bound = [_scalar(walk, o) for o in options]
        for option in bound:
            _comparable(op, value, option, args)
        listed = sql.SQL(", ").join(option[0] for option in bound)
        return sql.SQL("{} IN ({})").format(value[0], listed)
    if op == "isnull":
        return sql.SQL("{} IS NULL").format(_scalar(walk, args[0])[0])
    if op in _SPATIAL:
        if len(args) != 2:
            raise InvalidParameter(f"filter: {op.upper()} takes two geometries")
        first, second = (_geometry(walk, x) for x in args)
        return sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL[op]), first, second)
    if op in _TEMPORAL:
        return _temporal(walk, op, args)
    raise InvalidParameter(f"filter: {node['op']!r} is not supported here")


def _short(node: Any) -> str:
    return json.dumps(node, ensure_ascii=False, default=str)[:80]


def _name(node: Any) -> str:
    return repr(node["property"]) if isinstance(node, dict) and "property" in node else _short(node)


def _queryable(walk: _Walk, name: str) -> Queryable:
    found = walk.found.get(name)
    if found is None:
        raise InvalidParameter(
            f"filter: {name!r} is not a queryable of {walk.layer.id!r};"
            f" queryables: {', '.join(walk.found)}"
        )
    return found


def _scalar(walk: _Walk, node: Any) -> _Scalar:
    """A value-yielding expression: a property, a literal or CASEI/ACCENTI of one."""
    if isinstance(node, dict) and "property" in node:
        q = _queryable(walk, str(node["property"]))
        if q.kind == "geometry":
            raise InvalidParameter(f"filter: {q.name!r} is a geometry: use S_INTERSECTS etc.")
        return sql.Identifier("t", q.column), q.kind
    if node is None:
        return sql.SQL("NULL"), "null"
    if isinstance(node, bool):
        return walk.bind(node), "boolean"
    if isinstance(node, int | float):
        if not math.isfinite(node):
            raise InvalidParameter("filter: numbers must be finite")
        number: int | float = int(node) if float(node).is_integer() and abs(node) < 2**53 else node
        return walk.bind(number), "number"
    if isinstance(node, str):
        return walk.bind(node), "string"
    if isinstance(node, dict) and "timestamp" in node:
        return walk.bind(_instant(node["timestamp"])), "date-time"
    if isinstance(node, dict) and "date" in node:
        return walk.bind(_day(node["date"])), "date"
    if isinstance(node, dict) and str(node.get("op", "")).lower() in ("casei", "accenti"):
        inner = _scalar(walk, (node.get("args") or [None])[0])
        if inner[1] != "string":
            raise InvalidParameter(f"filter: {node['op'].upper()} applies to text")
        # ACCENTI is read as CASEI: the platform's text is Chinese and pinyin without accents.
        return sql.SQL("lower({}::text)").format(inner[0]), "string"
    raise InvalidParameter(f"filter: cannot compare {_short(node)}")


def _comparable(op: str, left: _Scalar, right: _Scalar, args: list[Any]) -> None:
    kinds = {left[1], right[1]}
    if "null" in kinds:
        raise InvalidParameter("filter: compare with NULL using IS NULL")
    if len(kinds) == 1 or kinds <= {"integer", "number"}:
        return
    # A text literal compared with a time is read as an RFC 3339 time by the database.
    if "string" in kinds and kinds & {"date-time", "date"}:
        return
    if kinds <= {"date-time", "date"}:
        return
    raise InvalidParameter(
        f"filter: {op.upper()} of {_name(args[0])} ({left[1]}) with {right[1]} values"
    )


def _instant(text: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"filter: {text!r} is not an RFC 3339 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(text: Any) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise InvalidParameter(f"filter: {text!r} is not a date (YYYY-MM-DD)") from None


def _geometry(walk: _Walk, node: Any) -> sql.Composable:
    """A geometry operand in the layer's SRID: the layer's geometry, a GeoJSON geometry or
    a BBOX, the literals read in ``filter-crs``."""
    if isinstance(node, dict) and "property" in node:
        q = _queryable(walk, str(node["property"]))
        if q.kind != "geometry":
            raise InvalidParameter(f"filter: {q.name!r} is not a geometry")
        return sql.Identifier("t", q.column)
    crs = walk.crs
    literal: sql.Composable
    if isinstance(node, dict) and "bbox" in node:
        box = node["bbox"]
        if len(box) == 6:
            box = [box[0], box[1], box[3], box[4]]
        if len(box) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in box):
            raise InvalidParameter("filter: BBOX takes 4 finite numbers")
        x0, y0, x1, y1 = (box[1], box[0], box[3], box[2]) if crs.flip else box
        literal = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})").format(
            walk.bind(float(x0)),
            walk.bind(float(y0)),
            walk.bind(float(x1)),
            walk.bind(float(y1)),
            sql.Literal(crs.srid),
        )
    elif isinstance(node, dict) and ("coordinates" in node or "geometries" in node):
        literal = sql.SQL("ST_SetSRID(ST_GeomFromGeoJSON({}), {})").format(
            walk.bind(json.dumps(node)), sql.Literal(crs.srid)
        )
        if crs.flip:
            literal = sql.SQL("ST_FlipCoordinates({})").format(literal)
    else:
        raise InvalidParameter(f"filter: expected a geometry, found {_short(node)}")
    if crs.srid != walk.layer.srid:
        literal = sql.SQL("ST_Transform({}, {})").format(literal, sql.Literal(walk.layer.srid))
    return literal


def _temporal(walk: _Walk, op: str, args: list[Any]) -> sql.Composable:
    """Temporal predicates of an instant property (the layers' times are instants) against
    an instant, a day or an interval (open ends as '..')."""
    subject = args[0] if args else None
    if not (isinstance(subject, dict) and "property" in subject):
        raise InvalidParameter(f"filter: {op.upper()} takes a time property first")
    q = _queryable(walk, str(subject["property"]))
    if q.kind not in ("date-time", "date"):
        raise InvalidParameter(f"filter: {q.name!r} is not a time")
    start, end, instant = _period(args[1] if len(args) > 1 else None)
    column = sql.Identifier("t", q.column)

    def at(value: datetime | None) -> sql.Composable:
        return walk.bind(value)

    if op == "t_after":
        return sql.SQL("{} > {}").format(column, at(end)) if end else sql.SQL("false")
    if op == "t_before":
        return sql.SQL("{} < {}").format(column, at(start)) if start else sql.SQL("false")
    if op == "t_equals":
        if instant:
            return sql.SQL("{} = {}").format(column, at(start))
        raise InvalidParameter(f"filter: {q.name!r} is an instant; T_EQUALS needs an instant")
    if op == "t_during":
        clauses = [sql.SQL("{} IS NOT NULL").format(column)]
        if start:
            clauses.append(sql.SQL("{} > {}").format(column, at(start)))
        if end:
            clauses.append(sql.SQL("{} < {}").format(column, at(end)))
        return sql.SQL(" AND ").join(clauses)
    # t_intersects / t_disjoint: a day is half-open [00:00, next 00:00), an interval closed.
    clauses = [sql.SQL("{} IS NOT NULL").format(column)]
    if start:
        clauses.append(sql.SQL("{} >= {}").format(column, at(start)))
    if end:
        upper = "<" if isinstance(args[1], dict) and "date" in args[1] else "<="
        clauses.append(sql.SQL("{} {} {}").format(column, sql.SQL(upper), at(end)))
    inside = sql.SQL(" AND ").join(clauses)
    if op == "t_disjoint":
        return sql.SQL("{} IS NOT NULL AND NOT ({})").format(column, inside)
    return inside


def _period(node: Any) -> tuple[datetime | None, datetime | None, bool]:
    """(start, end, is an instant) of a temporal literal."""
    if isinstance(node, dict) and "timestamp" in node:
        moment = _instant(node["timestamp"])
        return moment, moment, True
    if isinstance(node, dict) and "date" in node:
        day = _day(node["date"])
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start, start + timedelta(days=1), False
    if isinstance(node, dict) and "interval" in node and len(node["interval"]) == 2:
        ends: list[datetime | None] = []
        for end in node["interval"]:
            if end in ("..", None):
                ends.append(None)
            elif isinstance(end, dict):
                ends.append(_period(end)[0])
            elif len(str(end)) == 10:
                ends.append(_period({"date": end})[0])
            else:
                ends.append(_instant(end))
        if ends[0] and ends[1] and ends[0] > ends[1]:
            raise InvalidParameter("filter: the interval ends before it starts")
        return ends[0], ends[1], False
    raise InvalidParameter(f"filter: expected a TIMESTAMP, DATE or INTERVAL, found {_short(node)}")


def order_by(sortby: str, layer: Layer, found: dict[str, Queryable]) -> sql.Composable:
    """``sortby=+a,-b`` (OGC API – Features Part 8) as an ORDER BY list ending on the id, so
    that pages never overlap."""
    keys: list[sql.Composable] = []
    for part in (p.strip() for p in sortby.split(",")):
        if not part:
            raise InvalidParameter("sortby: an empty property name")
        descending = part.startswith("-")
        name = part.lstrip("+-").strip()
        q = found.get(name)
        if q is None or q.kind == "geometry":
            sortable = [n for n, v in found.items() if v.kind != "geometry"]
            raise InvalidParameter(
                f"sortby: {name!r} is not a sortable property of {layer.id!r};"
                f" sortables: {', '.join(sortable)}"
            )
        keys.append(
            sql.SQL("{} {}").format(
                sql.Identifier("t", q.column),
                sql.SQL("DESC NULLS LAST" if descending else "ASC NULLS LAST"),
            )
        )
    keys.append(sql.Identifier("t", layer.id_column))
    return sql.SQL(", ").join(keys)
