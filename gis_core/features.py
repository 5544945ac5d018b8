"""OGC API – Features queries, built whole in PostGIS.

Each function takes an explicit connection and a catalog layer. GeoJSON is assembled by the
database and returned as text, so a page of features is never parsed or re-serialized in
Python. Output coordinates follow RFC 7946 (lon/lat, exterior rings counter-clockwise) for
CRS84, and the axis order of the CRS for the others (OGC API – Features Part 2).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from gis_core.crs import UnknownCRSError, parse_crs
from gis_core.errors import InvalidParameter
from gis_core.layer import Layer
from gis_core.tiles import TRIGGER

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@dataclass(frozen=True)
class OutputCrs:
    uri: str
    srid: int
    flip: bool  # the CRS's first axis is northing/latitude
    decimals: int


_EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
OUTPUT_CRS: dict[int | str, OutputCrs] = {
    "CRS84": OutputCrs(CRS84, 4326, False, 7),
    4326: OutputCrs(_EPSG + "4326", 4326, True, 7),
    4490: OutputCrs(_EPSG + "4490", 4490, True, 7),
    4547: OutputCrs(_EPSG + "4547", 4547, True, 2),
    3857: OutputCrs(_EPSG + "3857", 3857, False, 2),
}
SUPPORTED_CRS = [c.uri for c in OUTPUT_CRS.values()]


def output_crs(value: str | None) -> OutputCrs:
    """The output CRS for a ``crs`` parameter (default CRS84)."""
    if value is None or value.strip().upper().endswith("CRS84"):
        return OUTPUT_CRS["CRS84"]
    try:
        code = parse_crs(value)
    except UnknownCRSError as exc:
        raise InvalidParameter(str(exc)) from None
    if code not in OUTPUT_CRS:
        raise InvalidParameter(
            f"crs {value!r} is not offered; use one of: {', '.join(SUPPORTED_CRS)}"
        )
    return OUTPUT_CRS[code]


@dataclass(frozen=True)
class BBox:
    minx: float
    miny: float
    maxx: float
    maxy: float
    srid: int = 4326

    @classmethod
    def parse(cls, text: str, crs: str | None = None) -> BBox:
        """Parse ``minx,miny,maxx,maxy`` (lon/lat for CRS84), refusing what cannot be meant."""
        parts = text.split(",")
        if len(parts) not in (4, 6):
            raise InvalidParameter("bbox: expected 4 numbers minx,miny,maxx,maxy")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InvalidParameter(f"bbox: not numbers: {text[:100]!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise InvalidParameter("bbox: numbers must be finite")
        if len(values) == 6:  # 3D bbox: drop the heights
            values = [values[0], values[1], values[3], values[4]]
        minx, miny, maxx, maxy = values
        target = output_crs(crs)
        if target.flip:
            # A bbox-crs whose first axis is northing/latitude: reorder to x/y.
            minx, miny, maxx, maxy = miny, minx, maxy, maxx
        geographic = target.srid in (4326, 4490)
        if geographic:
            if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
                raise InvalidParameter("bbox: longitudes must lie within -180..180")
            if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
                raise InvalidParameter(
                    "bbox: latitudes must lie within -90..90 (are longitude and latitude swapped?)"
                )
        if miny > maxy:
            raise InvalidParameter("bbox: the lower edge lies above the upper edge")
        if minx > maxx:
            raise InvalidParameter(
                "bbox: minx is greater than maxx (crossing the antimeridian is not supported)"
            )
        return cls(minx, miny, maxx, maxy, target.srid)


@dataclass(frozen=True)
class Interval:
    start: datetime | None
    end: datetime | None

    @classmethod
    def parse(cls, text: str) -> Interval:
        """An RFC 3339 instant or interval (``a/b``, ``../b``, ``a/..``)."""

        def instant(value: str) -> datetime | None:
            if value in ("", ".."):
                return None
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidParameter(
                    f"datetime: {value[:60]!r} is not an RFC 3339 time"
                ) from None
            if parsed.tzinfo is None:
                raise InvalidParameter(f"datetime: {value!r} needs a time zone (e.g. Z or +08:00)")
            return parsed

        if "/" in text:
            a, b = text.split("/", 1)
            start, end = instant(a), instant(b)
            if start and end and start > end:
                raise InvalidParameter("datetime: the interval ends before it starts")
            return cls(start, end)
        moment = instant(text)
        if moment is None:
            raise InvalidParameter("datetime: give an instant or an interval")
        return cls(moment, moment)


def _table(layer: Layer) -> sql.Composable:
    schema, name = layer.table.split(".", 1)
    return sql.Identifier(schema, name)


# A condition of the caller's (a CQL2 filter, see gis_core.queryables) and its parameters.
Condition = tuple[sql.Composable, dict[str, Any]]


def _filters(
    layer: Layer,
    bbox: BBox | None,
    interval: Interval | None,
    condition: Condition | None = None,
) -> tuple[sql.Composable, dict[str, Any]]:
    clauses: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if condition is not None:
        clauses.append(condition[0])
        params.update(condition[1])
    geom = sql.Identifier(layer.geom_column)
    if layer.where:
        # Catalog filters are code, written by us, never user input.
        clauses.append(sql.SQL("(" + layer.where + ")"))
    if bbox is not None:
        envelope: sql.Composable = sql.SQL(
            "ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, %(bsrid)s)"
        )
        if bbox.srid != layer.srid:
            envelope = sql.SQL("ST_Transform({}, %(lsrid)s)").format(envelope)
            params["lsrid"] = layer.srid
        clauses.append(sql.SQL("{} && {}").format(geom, envelope))
        clauses.append(sql.SQL("ST_Intersects({}, {})").format(geom, envelope))
        params.update(minx=bbox.minx, miny=bbox.miny, maxx=bbox.maxx, maxy=bbox.maxy)
        params["bsrid"] = bbox.srid
    if interval is not None:
        if layer.time_column is None:
            raise InvalidParameter(f"collection {layer.id!r} has no time: drop the datetime filter")
        column = sql.Identifier(layer.time_column)
        if interval.start is not None:
            clauses.append(sql.SQL("{} >= %(t0)s").format(column))
            params["t0"] = interval.start
        if interval.end is not None:
            clauses.append(sql.SQL("{} <= %(t1)s").format(column))
            params["t1"] = interval.end
    where = sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")
    return where, params


def _output_geometry(layer: Layer, crs: OutputCrs) -> sql.Composable:
    """The layer's geometry as GeoJSON wants it in ``crs``: right-hand rule, axis order."""
    g: sql.Composable = sql.Identifier("t", layer.geom_column)
    if layer.is_polygon:
        g = sql.SQL("ST_ForcePolygonCCW({})").format(g)
    if crs.srid != layer.srid:
        g = sql.SQL("ST_Transform({}, {})").format(g, sql.Literal(crs.srid))
    if crs.flip:
        g = sql.SQL("ST_FlipCoordinates({})").format(g)
    return g


def _property_pairs(layer: Layer) -> sql.Composable:
    """``'name', t.name, ...`` for json_build_object."""
    return sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(p), sql.Identifier("t", p)) for p in layer.properties
    )


def _feature_json(layer: Layer, crs: OutputCrs) -> sql.Composable:
    return sql.SQL(
        "json_build_object('type', 'Feature', 'id', {id},"
        " 'geometry', ST_AsGeoJSON({g}, {d})::json, 'properties', json_build_object({props}))"
    ).format(
        id=sql.Identifier("t", layer.id_column),
        g=_output_geometry(layer, crs),
        d=sql.Literal(crs.decimals),
        props=_property_pairs(layer),
    )


def _feature_text(layer: Layer, crs: OutputCrs) -> sql.Composable:
    """A feature as JSON text, concatenated: the geometry's GeoJSON is used as PostGIS writes
    it, never parsed back into json and printed again."""
    g = _output_geometry(layer, crs)
    props = _property_pairs(layer)
    return sql.SQL(
        """'{{"type":"Feature","id":' || to_json({id})::text"""
        """ || ',"geometry":' || coalesce(ST_AsGeoJSON({g}, {d}), 'null')"""
        """ || ',"properties":' || json_build_object({props})::text || '}}'"""
    ).format(id=sql.Identifier("t", layer.id_column), g=g, d=sql.Literal(crs.decimals), props=props)


@dataclass(frozen=True)
class Page:
    features_json: str  # a JSON array of GeoJSON features
    number_returned: int
    number_matched: int
    tracked: bool  # the table reports its changes (see gis_core.tiles); else counts expire


# The table's change version (None while it has no change trigger), read in the statement's
# own snapshot, so what a statement returns and the version it reports agree.
_VERSION = sql.SQL(
    "CASE WHEN EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = {rel} AND tgname = {trigger})"
    " THEN coalesce((SELECT max(version) FROM tiles.layer_version WHERE relid = {rel}), 0)"
    " END"
).format(rel=sql.SQL("%(relname)s::regclass"), trigger=sql.Literal(TRIGGER))


@dataclass(frozen=True)
class _Walk:
    """One ordered pass over the rows a filter matches, at one version of the table: how many
    there are, and the key at every ANCHOR_STEP-th position, so a page at any offset starts
    from a key and skips fewer than ANCHOR_STEP index entries instead of ``offset``."""

    version: int
    total: int
    anchors: tuple[Any, ...]


ANCHOR_STEP = 5000
# Walks by (layer, filter, parameters); each is valid only at its version and checked
# against the version every page query reports.
_walks: OrderedDict[tuple[str, str, str], _Walk] = OrderedDict()
_walks_lock = threading.Lock()
_MAX_WALKS = 256


def features_page(
    conn: psycopg.Connection,
    layer: Layer,
    *,
    limit: int,
    offset: int = 0,
    bbox: BBox | None = None,
    interval: Interval | None = None,
    crs: OutputCrs = OUTPUT_CRS["CRS84"],
    condition: Condition | None = None,
    order: sql.Composable | None = None,
) -> Page:
    """One page of features, ordered by id (or by ``order``, an ORDER BY list over the table
    aliased ``t``), with the number matched by the filters.

    One round trip in the steady state: the page is cut from the nearest anchor key of the
    filter's walk, and the walk's total answers ``numberMatched``; both are rebuilt when the
    table's change version moves. A page in another order is cut with OFFSET."""
    where, params = _filters(layer, bbox, interval, condition)
    params["relname"] = layer.table
    if order is not None:
        features, returned, version = _sorted_page(
            conn, layer, where, params, limit, offset, crs, order
        )
        if offset == 0 and returned < limit:
            matched = returned
        else:
            matched = _count(conn, layer, where, params)
        return Page(features, returned, matched, version is not None)
    walk_key = (layer.id, where.as_string(conn), repr(sorted(params.items())))
    with _walks_lock:
        walk = _walks.get(walk_key)
    features, returned, version = _page(conn, layer, where, params, limit, offset, crs, walk)
    if walk is not None and walk.version != version:
        with _walks_lock:
            _walks.pop(walk_key, None)
        if offset >= ANCHOR_STEP:  # cut from a stale anchor: cut again from the start
            features, returned, version = _page(
                conn, layer, where, params, limit, offset, crs, None
            )
        walk = None
    # When the whole answer fits in the first page there is nothing left to count.
    if offset == 0 and returned < limit:
        matched = returned
    elif version is None:
        matched = _count(conn, layer, where, params)
    else:
        if walk is None:
            walk = _walk(conn, layer, where, params)
            with _walks_lock:
                _walks[walk_key] = walk
                while len(_walks) > _MAX_WALKS:
                    _walks.popitem(last=False)
        matched = walk.total
    return Page(features, returned, matched, version is not None)


def _page(
    conn: psycopg.Connection,
    layer: Layer,
    where: sql.Composable,
    params: dict[str, Any],
    limit: int,
    offset: int,
    crs: OutputCrs,
    walk: _Walk | None,
) -> tuple[str, int, int | None]:
    key = sql.Identifier("t", layer.id_column)
    start: sql.Composable = sql.SQL("")
    skip = offset
    values = {**params, "limit": limit}
    if walk is not None and offset >= ANCHOR_STEP and walk.anchors:
        index = min(offset // ANCHOR_STEP, len(walk.anchors) - 1)
        start = sql.SQL(" AND {k} >= %(anchor)s").format(k=key)
        values["anchor"] = walk.anchors[index]
        skip = offset - index * ANCHOR_STEP
    values["offset"] = skip
    query = sql.SQL(
        """
        WITH keys AS (
            -- Keys first: rows skipped by OFFSET must not be turned into GeoJSON.
            SELECT {key} AS k
            FROM {table} AS t
            WHERE {where}{start}
            ORDER BY {key}
            LIMIT %(limit)s OFFSET %(offset)s
        ), page AS (
            SELECT {feature} AS f, t.{id} AS k
            FROM keys JOIN {table} AS t ON t.{id} = keys.k
        )
        SELECT coalesce(string_agg(f, ',' ORDER BY k), ''), count(*), {version} FROM page
        """
    ).format(
        key=key,
        feature=_feature_text(layer, crs),
        table=_table(layer),
        where=where,
        start=start,
        id=sql.Identifier(layer.id_column),
        version=_VERSION,
    )
    row = conn.execute(query, values).fetchone()
    assert row is not None
    return "[" + row[0] + "]", int(row[1]), row[2]


def _sorted_page(
    conn: psycopg.Connection,
    layer: Layer,
    where: sql.Composable,
    params: dict[str, Any],
    limit: int,
    offset: int,
    crs: OutputCrs,
    order: sql.Composable,
) -> tuple[str, int, int | None]:
    query = sql.SQL(
        """
        WITH keys AS (
            -- Keys and their places first: only the page's rows are turned into GeoJSON.
            SELECT t.{id} AS k, row_number() OVER (ORDER BY {order}) AS n
            FROM {table} AS t
            WHERE {where}
            ORDER BY {order}
            LIMIT %(limit)s OFFSET %(offset)s
        ), page AS (
            SELECT {feature} AS f, keys.n
            FROM keys JOIN {table} AS t ON t.{id} = keys.k
        )
        SELECT coalesce(string_agg(f, ',' ORDER BY n), ''), count(*), {version} FROM page
        """
    ).format(
        id=sql.Identifier(layer.id_column),
        feature=_feature_text(layer, crs),
        order=order,
        table=_table(layer),
        where=where,
        version=_VERSION,
    )
    row = conn.execute(query, {**params, "limit": limit, "offset": offset}).fetchone()
    assert row is not None
    return "[" + row[0] + "]", int(row[1]), row[2]


def _walk(
    conn: psycopg.Connection, layer: Layer, where: sql.Composable, params: dict[str, Any]
) -> _Walk:
    """Walk the matching keys in order with a server-side cursor, fetching one key every
    ANCHOR_STEP rows (the server skips the rest without sending them)."""
    key = sql.Identifier("t", layer.id_column)
    query = sql.SQL(
        "SELECT {key}, {version} FROM {table} AS t WHERE {where} ORDER BY {key}"
    ).format(key=key, version=_VERSION, table=_table(layer), where=where)
    anchors: list[Any] = []
    version = None
    total = 0
    with conn.cursor(name="changzhi_walk") as cursor:
        cursor.execute(query, params)
        while True:
            row = cursor.fetchone()
            if row is None:
                break
            anchors.append(row[0])
            version = row[1]
            total += 1
            moved = conn.execute(
                sql.SQL("MOVE FORWARD {n} IN changzhi_walk").format(n=sql.Literal(ANCHOR_STEP - 1))
            )
            total += moved.rowcount
    if version is None:  # no rows: the version still matters
        row = conn.execute(sql.SQL("SELECT {version}").format(version=_VERSION), params).fetchone()
        version = row[0] if row else None
    return _Walk(int(version or 0), total, tuple(anchors))


# numberMatched of an untracked table costs a scan per page; a client paging through it asks
# the same question each time. Counts are kept for COUNT_TTL_S seconds per layer and filter.
COUNT_TTL_S = 5.0
_count_cache: dict[tuple[str, str, str], tuple[float, int]] = {}


def _count(
    conn: psycopg.Connection, layer: Layer, where: sql.Composable, params: dict[str, Any]
) -> int:
    where_text = where.as_string(conn)
    key = (layer.id, where_text, repr(sorted(params.items())))
    cached = _count_cache.get(key)
    now = time.monotonic()
    if cached and now - cached[0] < COUNT_TTL_S:
        return cached[1]
    query = sql.SQL("SELECT count(*) FROM {table} AS t WHERE {where}").format(
        table=_table(layer), where=where
    )
    row = conn.execute(query, params).fetchone()
    matched = int(row[0]) if row else 0
    if len(_count_cache) > 1000:
        _count_cache.clear()
    _count_cache[key] = (now, matched)
    return matched


def feature(conn: psycopg.Connection, layer: Layer, feature_id: str, crs: OutputCrs) -> str | None:
    """One feature as GeoJSON text, or None."""
    key: int | str = feature_id
    if layer.id_type == "int":
        try:
            key = int(feature_id)
        except ValueError:
            return None
    where, params = _filters(layer, None, None)
    query = sql.SQL("SELECT {feature}::text FROM {table} AS t WHERE t.{id} = %(key)s AND {where}")
    row = conn.execute(
        query.format(
            feature=_feature_json(layer, crs),
            table=_table(layer),
            id=sql.Identifier(layer.id_column),
            where=where,
        ),
        {**params, "key": key},
    ).fetchone()
    return row[0] if row else None


_extent_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def extent(conn: psycopg.Connection, layer: Layer, ttl: float = 60.0) -> dict[str, Any]:
    """Spatial (CRS84) and temporal extent of a layer, cached briefly."""
    cached = _extent_cache.get(layer.id)
    if cached and time.monotonic() - cached[0] < ttl:
        return cached[1]
    where, params = _filters(layer, None, None)
    geom = sql.Identifier(layer.geom_column)
    box = sql.SQL("ST_Transform(ST_SetSRID(ST_Extent({g})::geometry, {s}), 4326)").format(
        g=geom, s=sql.Literal(layer.srid)
    )
    row = conn.execute(
        sql.SQL(
            "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM"
            " (SELECT {box} AS b FROM {table} AS t WHERE {where}) e"
        ).format(box=box, table=_table(layer), where=where),
        params,
    ).fetchone()
    result: dict[str, Any] = {}
    if row and row[0] is not None:
        result["spatial"] = {"bbox": [[round(v, 6) for v in row]], "crs": CRS84}
    if layer.time_column:
        column = sql.Identifier(layer.time_column)
        times = conn.execute(
            sql.SQL("SELECT min({c}), max({c}) FROM {table} AS t WHERE {where}").format(
                c=column, table=_table(layer), where=where
            ),
            params,
        ).fetchone()
        if times:
            result["temporal"] = {
                "interval": [[t.isoformat() if t else None for t in times]],
                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
            }
    _extent_cache[layer.id] = (time.monotonic(), result)
    return result
