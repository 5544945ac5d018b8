"""Data elements, sources, sharing by approval, joins onto the map and statistics.

Every function takes an explicit connection and works in the caller's transaction; writes are
audited (``auth.audit_log``) and every read of a source by a user outside its owning
department is logged (``exchange.read_log``). Who may read a source: its own department, an
admin, or a department whose application the owner's supervisor approved.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from apps.exchange.models import ELEMENT_TYPES, SOURCE_KINDS
from apps.exchange.sync import PG_TYPES, live_table
from gis_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis_core.identity import Principal, audit
from layers.reference.codes import is_valid_credit_code

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ELEMENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_COLUMNS = frozenset({"key", "changed_at"})
JOIN_KEYS = ("division", "credit_code", "address", "coordinates")
UNJOINED_LISTED = 1000
ADDRESS_ROWS = 5000  # geocoding is per row: address joins are for registries, not censuses
# Codes of a division's 12-digit form whose tail is zeros name the level above.
NORMALIZED = """CASE WHEN length(c) = 12 AND right(c, 6) = '000000' THEN left(c, 6)
                     WHEN length(c) = 12 AND right(c, 3) = '000' THEN left(c, 9)
                     ELSE c END"""


# --------------------------------------------------------------------------- elements


def save_element(conn: psycopg.Connection, actor: Principal | None, e: dict[str, Any]) -> None:
    """Create or replace a data element."""
    if not ELEMENT_RE.match(e["code"]) or e["code"] in RESERVED_COLUMNS:
        raise InvalidInput(
            f"element code {e['code']!r}: lower-case letters, digits and '_', starting with a"
            " letter (not key or changed_at)"
        )
    if e["type"] not in ELEMENT_TYPES:
        raise InvalidInput(f"element type {e['type']!r}: one of {', '.join(ELEMENT_TYPES)}")
    if e["type"] == "code" and not e.get("code_list"):
        raise InvalidInput(f"element {e['code']!r} of type code needs a code_list")
    _known_department(conn, e.get("owner"))
    conn.execute(
        """
        INSERT INTO exchange.element (code, name_zh, name_en, type, unit, code_list, min, max,
                                      owner)
        VALUES (%(code)s, %(name_zh)s, %(name_en)s, %(type)s, %(unit)s, %(code_list)s, %(min)s,
                %(max)s, %(owner)s)
        ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en,
            type = EXCLUDED.type, unit = EXCLUDED.unit, code_list = EXCLUDED.code_list,
            min = EXCLUDED.min, max = EXCLUDED.max, owner = EXCLUDED.owner
        """,
        {"unit": "", "code_list": None, "min": None, "max": None, "owner": None, **e},
    )
    audit(conn, actor, "save", "exchange.element", e["code"], e)


def list_elements(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM exchange.element ORDER BY code").fetchall()


def _known_department(conn: psycopg.Connection, code: str | None) -> None:
    if (
        code is not None
        and not conn.execute("SELECT 1 FROM auth.department WHERE code = %s", (code,)).fetchone()
    ):
        raise InvalidInput(f"unknown department {code!r}")


# --------------------------------------------------------------------------- sources


def save_source(conn: psycopg.Connection, actor: Principal | None, s: dict[str, Any]) -> int:
    """Register a source, or change one (its loaded table stays until the next full run)."""
    if not NAME_RE.match(s["name"]):
        raise InvalidInput(
            f"source name {s['name']!r}: lower-case letters, digits and '_' (up to 40)"
        )
    if s["kind"] not in SOURCE_KINDS:
        raise InvalidInput(f"source kind {s['kind']!r}: one of {', '.join(SOURCE_KINDS)}")
    if not s.get("mapping"):
        raise InvalidInput("mapping: map at least one source column onto a data element")
    known = {r[0] for r in conn.execute("SELECT code FROM exchange.element").fetchall()}
    unknown = sorted(set(s["mapping"].values()) - known)
    if unknown:
        raise InvalidInput(f"mapping names unknown data element(s): {', '.join(unknown)}")
    if len(set(s["mapping"].values())) != len(s["mapping"]):
        raise InvalidInput("mapping: two columns are mapped onto the same data element")
    if s.get("schedule_s") is not None and not 60 <= s["schedule_s"] <= 31 * 86400:
        raise InvalidInput("schedule_s: between 60 s and 31 days")
    _known_department(conn, s["owner"])
    if actor is not None and not actor.has_any("admin") and actor.department != s["owner"]:
        raise Forbidden("a department registers its own sources only")
    row = conn.execute(
        """
        INSERT INTO exchange.source (name, title_zh, title_en, kind, location, query, key_column,
            changed_column, deleted_column, mapping, options, owner, shared, synthesized,
            schedule_s, description)
        VALUES (%(name)s, %(title_zh)s, %(title_en)s, %(kind)s, %(location)s, %(query)s,
            %(key_column)s, %(changed_column)s, %(deleted_column)s, %(mapping)s::jsonb,
            %(options)s::jsonb, %(owner)s, %(shared)s, %(synthesized)s, %(schedule_s)s,
            %(description)s)
        ON CONFLICT (name) DO UPDATE SET title_zh = EXCLUDED.title_zh,
            title_en = EXCLUDED.title_en, kind = EXCLUDED.kind, location = EXCLUDED.location,
            query = EXCLUDED.query, key_column = EXCLUDED.key_column,
            changed_column = EXCLUDED.changed_column, deleted_column = EXCLUDED.deleted_column,
            mapping = EXCLUDED.mapping, options = EXCLUDED.options, shared = EXCLUDED.shared,
            synthesized = EXCLUDED.synthesized, schedule_s = EXCLUDED.schedule_s,
            description = EXCLUDED.description,
            -- a changed mapping or place starts again from a full run
            watermark = NULL
        RETURNING id
        """,
        {
            "title_en": "",
            "query": None,
            "changed_column": None,
            "deleted_column": None,
            "options": {},
            "shared": False,
            "synthesized": False,
            "schedule_s": None,
            "description": "",
            **s,
        }
        | {
            "mapping": orjson.dumps(s["mapping"]).decode(),
            "options": orjson.dumps(s.get("options") or {}).decode(),
        },
    ).fetchone()
    assert row is not None
    audit(conn, actor, "save", "exchange.source", s["name"], s)
    return int(row[0])


def source(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("SELECT * FROM exchange.source WHERE name = %s", (name,)).fetchone()
    if found is None:
        raise NotFound(f"no source {name!r}")
    return found


def list_sources(conn: psycopg.Connection, user: Principal | None) -> list[dict[str, Any]]:
    """Every source with its sync state (the catalog is open; the rows are not)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT s.id, s.name, s.title_zh, s.title_en, s.kind, s.owner, s.shared,
                   s.synthesized, s.schedule_s, s.state, s.rows, s.last_run_at, s.last_ok_at,
                   s.description, s.mapping, s.key_column, s.changed_column,
                   r.error AS last_error, r.rows_refused AS last_refused
            FROM exchange.source s
            LEFT JOIN LATERAL (SELECT error, rows_refused FROM exchange.sync_run
                               WHERE source_id = s.id ORDER BY id DESC LIMIT 1) r ON true
            ORDER BY s.name
            """
        ).fetchall()
        approved = {
            r["source_id"]
            for r in cur.execute(
                "SELECT source_id FROM exchange.access WHERE state = 'approved'"
                " AND department = %s",
                (user.department if user else None,),
            ).fetchall()
        }
    for r in rows:
        r["readable"] = user is not None and (
            "admin" in user.roles or user.department == r["owner"] or r["id"] in approved
        )
    return rows


def runs(conn: psycopg.Connection, name: str, limit: int = 20) -> list[dict[str, Any]]:
    src = source(conn, name)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM exchange.sync_run WHERE source_id = %s ORDER BY id DESC LIMIT %s",
            (src["id"], limit),
        ).fetchall()


def refusals(conn: psycopg.Connection, run_id: int, limit: int = 500) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            'SELECT row_no, key, "column", value, reason FROM exchange.refusal'
            " WHERE run_id = %s ORDER BY row_no, id LIMIT %s",
            (run_id, limit),
        ).fetchall()


# --------------------------------------------------------------------------- sharing


def readable(conn: psycopg.Connection, src: dict[str, Any], user: Principal) -> bool:
    if "admin" in user.roles or (user.department and user.department == src["owner"]):
        return True
    return bool(
        conn.execute(
            "SELECT 1 FROM exchange.access WHERE source_id = %s AND department = %s"
            " AND state = 'approved'",
            (src["id"], user.department),
        ).fetchone()
    )


def open_for_reading(
    conn: psycopg.Connection, name: str, user: Principal, what: str
) -> dict[str, Any]:
    """The source if ``user`` may read it (else 403); raises 409 before its first sync."""
    src = source(conn, name)
    if not readable(conn, src, user):
        raise Forbidden(
            f"the department {user.department or '(none)'} has no approved access to "
            f"{name!r}, which {src['owner']} owns: apply for it first"
        )
    if src["last_ok_at"] is None:
        raise Conflict(f"source {name!r} has not been synced yet")
    return src


def log_read(
    conn: psycopg.Connection, src: dict[str, Any], user: Principal, what: str, rows: int
) -> None:
    if user.department != src["owner"]:
        conn.execute(
            "INSERT INTO exchange.read_log (source_id, username, department, what, rows)"
            " VALUES (%s, %s, %s, %s, %s)",
            (src["id"], user.username, user.department, what, rows),
        )


def publish(conn: psycopg.Connection, name: str, user: Principal, shared: bool) -> None:
    src = source(conn, name)
    _owner_supervisor(src, user)
    conn.execute("UPDATE exchange.source SET shared = %s WHERE id = %s", (shared, src["id"]))
    audit(conn, user, "publish" if shared else "withdraw", "exchange.source", name)


def _owner_supervisor(src: dict[str, Any], user: Principal) -> None:
    if "admin" in user.roles:
        return
    if not ("supervisor" in user.roles and user.department == src["owner"]):
        raise Forbidden(f"only a supervisor of {src['owner']} may decide on {src['name']!r}")


def apply_for(conn: psycopg.Connection, name: str, user: Principal, purpose: str) -> dict[str, Any]:
    """A department applies to read a published source."""
    src = source(conn, name)
    if not src["shared"]:
        raise Forbidden(f"{name!r} is not published for sharing")
    if not user.department:
        raise InvalidInput("your account belongs to no department: ask an admin")
    if user.department == src["owner"]:
        raise Conflict(f"{name!r} is your own department's")
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """
            INSERT INTO exchange.access (source_id, department, purpose, requested_by)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (source_id, department) DO UPDATE SET
                state = 'requested', purpose = EXCLUDED.purpose,
                requested_by = EXCLUDED.requested_by, requested_at = now(),
                decided_by = NULL, decided_at = NULL, note = NULL
            WHERE exchange.access.state IN ('refused', 'revoked')
            RETURNING *
            """,
            (src["id"], user.department, purpose, user.username),
        ).fetchone()
    if row is None:
        raise Conflict(f"{user.department} has already applied for {name!r}")
    audit(conn, user, "apply", "exchange.access", str(row["id"]), {"source": name})
    return row


def decide(
    conn: psycopg.Connection, access_id: int, user: Principal, decision: str, note: str | None
) -> dict[str, Any]:
    """The owner's supervisor approves or refuses an application, or revokes an approval."""
    allowed = {
        "approve": ("requested", "approved"),
        "refuse": ("requested", "refused"),
        "revoke": ("approved", "revoked"),
    }
    if decision not in allowed:
        raise InvalidInput(f"decision {decision!r}: approve, refuse or revoke")
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT a.*, s.name, s.owner FROM exchange.access a"
            " JOIN exchange.source s ON s.id = a.source_id WHERE a.id = %s FOR UPDATE OF a",
            (access_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no access application {access_id}")
        _owner_supervisor(row, user)
        before, after = allowed[decision]
        if row["state"] != before:
            raise Conflict(f"application {access_id} is {row['state']}, not {before}")
        done = cur.execute(
            "UPDATE exchange.access SET state = %s, decided_by = %s, decided_at = now(),"
            " note = %s WHERE id = %s RETURNING *",
            (after, user.username, note, access_id),
        ).fetchone()
    audit(conn, user, decision, "exchange.access", str(access_id), {"source": row["name"]})
    assert done is not None
    done["source"] = row["name"]
    return done


def list_access(conn: psycopg.Connection, user: Principal) -> list[dict[str, Any]]:
    """Applications of the user's department and those for its sources (all, for admins)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT a.*, s.name AS source, s.owner
            FROM exchange.access a JOIN exchange.source s ON s.id = a.source_id
            WHERE %(admin)s OR a.department = %(dept)s OR s.owner = %(dept)s
            ORDER BY a.id DESC
            """,
            {"admin": "admin" in user.roles, "dept": user.department},
        ).fetchall()


def read_log(conn: psycopg.Connection, name: str, user: Principal) -> list[dict[str, Any]]:
    src = source(conn, name)
    if "admin" not in user.roles and user.department != src["owner"]:
        raise Forbidden("the read log of a source is its owner's")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT username, department, what, rows, at FROM exchange.read_log"
            " WHERE source_id = %s ORDER BY id DESC LIMIT 500",
            (src["id"],),
        ).fetchall()


def rows(
    conn: psycopg.Connection, name: str, user: Principal, limit: int, offset: int
) -> dict[str, Any]:
    src = open_for_reading(conn, name, user, "rows")
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            sql.SQL("SELECT * FROM {} ORDER BY key LIMIT %s OFFSET %s").format(live_table(name)),
            (limit, offset),
        ).fetchall()
    log_read(conn, src, user, "rows", len(found))
    return {"source": name, "total": src["rows"], "rows": found}


# --------------------------------------------------------------------------- joins


def _column(src: dict[str, Any], element: str | None, role: str) -> sql.Identifier:
    if element is None or element not in src["mapping"].values():
        mapped = ", ".join(sorted(src["mapping"].values()))
        raise InvalidInput(f"{role}: {element!r} is not an element of this source ({mapped})")
    return sql.Identifier(element)


def join(
    conn: psycopg.Connection,
    name: str,
    user: Principal,
    *,
    by: str,
    key: str | None,
    value: str | None = None,
    level: str | None = None,
    lon: str | None = None,
    lat: str | None = None,
) -> dict[str, Any]:
    """Join a source onto the map by one of :data:`JOIN_KEYS`; GeoJSON plus what failed.

    ``division``: ``key`` holds GB/T 2260 codes; rows are summed (``value``, or counted) per
    division at ``level`` (district or town; default the codes' own), a choropleth.
    ``credit_code``: ``key`` holds unified social credit codes (GB 32100, check character
    verified) matched in the enterprise registry (``env.enterprise``): points.
    ``address``: ``key`` holds addresses placed with the local gazetteer: points.
    ``coordinates``: ``lon`` and ``lat`` elements (WGS84): points.
    """
    if by not in JOIN_KEYS:
        raise InvalidInput(f"by {by!r}: one of {', '.join(JOIN_KEYS)}")
    src = open_for_reading(conn, name, user, "join")
    table = live_table(name)
    val = _column(src, value, "value") if value else None
    if by == "division":
        result = _join_division(conn, table, _column(src, key, "key"), val, level)
    elif by == "coordinates":
        result = _join_coordinates(
            conn, table, _column(src, lon, "lon"), _column(src, lat, "lat"), val
        )
    else:
        result = _join_points(conn, table, by, _column(src, key, "key"), val)
    result.update({"source": name, "by": by})
    log_read(conn, src, user, "join", result["joined"])
    return result


def _join_division(
    conn: psycopg.Connection,
    table: sql.Composable,
    key: sql.Identifier,
    value: sql.Identifier | None,
    level: str | None,
) -> dict[str, Any]:
    if level not in (None, "district", "town", "village"):
        raise InvalidInput(f"level {level!r}: district, town or village")
    # A code below the level is summed into its parent; one above it cannot be split.
    cut = {
        None: "c",
        "district": "CASE WHEN length(c) >= 6 THEN left(c, 6) END",
        "town": "CASE WHEN length(c) >= 9 THEN left(c, 9) END",
        "village": "CASE WHEN length(c) = 12 THEN c END",
    }[level]
    # Group the rows by their raw code first (one hash aggregate over the table), then
    # normalise and cut the few distinct codes, so no string work is done per row.
    query = sql.SQL(
        """
        WITH raw AS (
            SELECT {key}::text AS raw, {measure} AS value, count(*) AS n FROM {table} GROUP BY 1
        ), coded AS (
            SELECT raw, {cut} AS area, value, n
            FROM (SELECT raw, {norm} AS c, value, n
                  FROM (SELECT raw, btrim(raw) AS c, value, n FROM raw) r) x
        )
        SELECT a.area, a.raws, d.code, d.name_zh, d.level, d.synthesized,
               a.value::float8 AS value, a.n,
               ST_AsGeoJSON(coalesce(d.area, d.point), 6) AS geometry
        FROM (SELECT area, array_agg(raw) AS raws, sum(value) AS value, sum(n)::bigint AS n
              FROM coded GROUP BY area) a
        LEFT JOIN exchange.division d ON d.code = a.area
        ORDER BY d.code
        """
    ).format(
        key=key,
        measure=sql.SQL("sum({})").format(value) if value else sql.SQL("count(*)"),
        table=table,
        cut=sql.SQL(cut),
        norm=sql.SQL(NORMALIZED),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        grouped = cur.execute(query).fetchall()
        areas = [a for a in grouped if a["code"] is not None]
        lost = [a for a in grouped if a["code"] is None]
        raws = [r for a in lost for r in a["raws"]]
        unjoined = (
            cur.execute(
                sql.SQL(
                    "SELECT key, {k}::text AS value FROM {t} WHERE {k}::text = ANY(%s)"
                    " OR (%s AND {k} IS NULL) ORDER BY key LIMIT %s"
                ).format(k=key, t=table),
                ([r for r in raws if r is not None], None in raws, UNJOINED_LISTED),
            ).fetchall()
            if lost
            else []
        )
    total_unjoined = sum(int(a["n"]) for a in lost)
    features = [
        {
            "type": "Feature",
            "id": a["code"],
            "geometry": orjson.loads(a["geometry"]),
            "properties": {
                k: a[k] for k in ("code", "name_zh", "level", "synthesized", "value", "n")
            },
        }
        for a in areas
    ]
    values = [a["value"] for a in areas if a["value"] is not None]
    return {
        "type": "FeatureCollection",
        "kind": "choropleth",
        "features": features,
        "breaks": breaks(values),
        "joined": sum(int(a["n"]) for a in areas),
        "unjoined_count": total_unjoined,
        "unjoined": [
            {"key": u["key"], "value": u["value"], "reason": f"no such {level or 'division'} code"}
            for u in unjoined
        ],
    }


def breaks(values: list[float], classes: int = 5) -> list[float]:
    """Quantile class breaks of a choropleth (the upper bound of each class but the last).

    >>> breaks([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    [2.8, 4.6, 6.4, 8.2]
    """
    import numpy as np

    if len(values) < 2:
        return []
    qs = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, classes + 1)[1:-1])
    return [round(float(q), 6) for q in qs]


def _points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "Feature",
            "id": r["key"],
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {k: v for k, v in r.items() if k not in ("lon", "lat")},
        }
        for r in rows
    ]


def _join_coordinates(
    conn: psycopg.Connection,
    table: sql.Composable,
    lon: sql.Identifier,
    lat: sql.Identifier,
    value: sql.Identifier | None,
) -> dict[str, Any]:
    query = sql.SQL(
        """
        SELECT t.key, {lon}::float8 AS lon, {lat}::float8 AS lat, {val} AS value,
               d.code AS district_code, d.name_zh AS district_zh
        FROM {table} t
        LEFT JOIN exchange.division d ON d.level = 'district' AND ST_Intersects(d.area,
            ST_SetSRID(ST_MakePoint({lon}::float8, {lat}::float8), 4326))
        ORDER BY t.key
        """
    ).format(lon=lon, lat=lat, val=value if value else sql.SQL("NULL"), table=table)
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(query).fetchall()
    inside = [r for r in found if r["district_code"] is not None]
    outside = [r for r in found if r["district_code"] is None]
    return {
        "type": "FeatureCollection",
        "kind": "points",
        "features": _points(inside),
        "joined": len(inside),
        "unjoined_count": len(outside),
        "unjoined": [
            {
                "key": r["key"],
                "value": f"{r['lon']},{r['lat']}",
                "reason": "no position"
                if r["lon"] is None or r["lat"] is None
                else "outside the city",
            }
            for r in outside[:UNJOINED_LISTED]
        ],
    }


def _join_points(
    conn: psycopg.Connection,
    table: sql.Composable,
    by: str,
    key: sql.Identifier,
    value: sql.Identifier | None,
) -> dict[str, Any]:
    limit = ADDRESS_ROWS if by == "address" else None
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            sql.SQL(
                "SELECT key, {k}::text AS k, {v} AS value FROM {t} ORDER BY key LIMIT %s"
            ).format(k=key, v=value if value else sql.SQL("NULL"), t=table),
            (limit,),
        ).fetchall()
    joined: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    if by == "credit_code":
        if conn.execute("SELECT to_regclass('env.enterprise')").fetchone() == (None,):
            raise Conflict("the enterprise registry (env.enterprise) is not installed")
        good = [r for r in found if r["k"] and is_valid_credit_code(r["k"].upper())]
        bad = [r for r in found if not (r["k"] and is_valid_credit_code(r["k"].upper()))]
        failed += [
            {
                "key": r["key"],
                "value": r["k"],
                "reason": "not a valid unified social credit code (GB 32100 check character)",
            }
            for r in bad
        ]
        places = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT credit_code, name_zh, ST_X(geom), ST_Y(geom), district_code"
                " FROM env.enterprise WHERE credit_code = ANY(%s)",
                ([r["k"].upper() for r in good],),
            ).fetchall()
        }
        for r in good:
            hit = places.get(r["k"].upper())
            if hit is None:
                failed.append(
                    {"key": r["key"], "value": r["k"], "reason": "not in the enterprise registry"}
                )
            else:
                joined.append(
                    {
                        "key": r["key"],
                        "credit_code": r["k"],
                        "name_zh": hit[0],
                        "lon": hit[1],
                        "lat": hit[2],
                        "district_code": hit[3],
                        "value": r["value"],
                    }
                )
    else:
        gazetteer = Places.load(conn)
        for r in found:
            place = gazetteer.locate(r["k"] or "")
            if place is None:
                failed.append(
                    {
                        "key": r["key"],
                        "value": r["k"],
                        "reason": "no division name of the gazetteer in the address",
                    }
                )
                continue
            joined.append({"key": r["key"], "address": r["k"], "match": place[0],
                           "level": place[1], "division_code": place[2], "lon": place[3],
                           "lat": place[4], "value": r["value"]})  # fmt: skip
    return {
        "type": "FeatureCollection",
        "kind": "points",
        "features": _points(joined),
        "joined": len(joined),
        "unjoined_count": len(failed),
        "unjoined": failed[:UNJOINED_LISTED],
    }


class Places:
    """The local gazetteer of divisions for addresses: ``潞州区某某镇某某村12号`` is placed at
    its village (or town, or district) by the longest division name it contains, inside the
    district it names when it names one. (The dispatch application's richer street gazetteer
    is not used: applications do not import each other.)"""

    def __init__(self, rows: list[tuple[str, str, str, str, float, float]]) -> None:
        self.districts = {r[0]: r[2] for r in rows if r[1] == "district"}
        # Longest names first: 南关村 before 关村.
        self.names = sorted(
            ((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows if r[1] != "district"),
            key=lambda r: -len(r[0]),
        )
        self.points = {r[2]: (r[4], r[5]) for r in rows if r[1] == "district"}

    @classmethod
    def load(cls, conn: psycopg.Connection) -> Places:
        return cls(
            conn.execute(
                "SELECT name_zh, level, code, district_code, ST_X(point), ST_Y(point)"
                " FROM exchange.division"
            ).fetchall()
        )

    def locate(self, address: str) -> tuple[str, str, str, float, float] | None:
        text = re.sub(r"\s+", "", address).removeprefix("山西省").removeprefix("长治市")
        district = next((c for n, c in self.districts.items() if text.startswith(n)), None)
        for name, level, code, district_code, lon, lat in self.names:
            if len(name) >= 2 and name in text and district in (None, district_code):
                return name, level, code, lon, lat
        if district is not None:
            lon, lat = self.points[district]
            return (
                next(n for n, c in self.districts.items() if c == district),
                "district",
                district,
                lon,
                lat,
            )
        return None


# --------------------------------------------------------------------------- statistics

STAT_ELEMENTS = ("indicator", "area_code", "year", "value")


def statistics(
    conn: psycopg.Connection,
    name: str,
    user: Principal,
    *,
    indicators: list[str],
    areas: list[str] | None,
    years: list[int] | None,
) -> dict[str, Any]:
    """Indicators x areas x years of a statistics source (elements ``indicator``,
    ``area_code``, ``year``, ``value``): the table, chart series and a choropleth of the
    first indicator in the last year."""
    src = open_for_reading(conn, name, user, "statistics")
    lacking = [e for e in STAT_ELEMENTS if e not in src["mapping"].values()]
    if lacking:
        raise InvalidInput(f"{name!r} is not a statistics source: it lacks {', '.join(lacking)}")
    if not indicators:
        raise InvalidInput("indicators: name at least one")
    with conn.cursor(row_factory=dict_row) as cur:
        table = cur.execute(
            sql.SQL(
                """
                SELECT t.indicator, i.name_zh AS indicator_zh, i.name_en AS indicator_en,
                       i.unit, t.area_code, d.name_zh AS area_zh, t.year::int AS year,
                       t.value::float8 AS value
                FROM {t} t
                LEFT JOIN exchange.element i ON i.code = t.indicator
                LEFT JOIN exchange.division d ON d.code = t.area_code
                WHERE t.indicator = ANY(%(ind)s)
                  AND (%(areas)s::text[] IS NULL OR t.area_code = ANY(%(areas)s))
                  AND (%(years)s::int[] IS NULL OR t.year = ANY(%(years)s))
                ORDER BY t.indicator, t.area_code, t.year
                """
            ).format(t=live_table(name)),
            {"ind": indicators, "areas": areas, "years": years},
        ).fetchall()
        if not table:
            raise NotFound("no figures for those indicators, areas and years")
        last = max(r["year"] for r in table)
        first = table[0]["indicator"]
        shapes = {
            r["code"]: orjson.loads(r["g"])
            for r in cur.execute(
                "SELECT code, ST_AsGeoJSON(area, 6) AS g FROM exchange.division"
                " WHERE code = ANY(%s) AND area IS NOT NULL",
                (sorted({r["area_code"] for r in table}),),
            ).fetchall()
        }
    area_codes = sorted({r["area_code"] for r in table})
    year_list = sorted({r["year"] for r in table})
    names = {r["area_code"]: r["area_zh"] or r["area_code"] for r in table}
    cell = {(r["indicator"], r["area_code"], r["year"]): r["value"] for r in table}
    series = [
        {
            "indicator": ind,
            "year": y,
            "name": f"{ind} {y}",
            "data": [cell.get((ind, a, y)) for a in area_codes],
        }
        for ind in dict.fromkeys(r["indicator"] for r in table)
        for y in year_list
    ]
    trend = [
        {
            "indicator": ind,
            "area_code": a,
            "name": f"{names[a]} {ind}",
            "data": [cell.get((ind, a, y)) for y in year_list],
        }
        for ind in dict.fromkeys(r["indicator"] for r in table)
        for a in area_codes
    ]
    choro = [r for r in table if r["indicator"] == first and r["year"] == last]
    log_read(conn, src, user, "statistics", len(table))
    return {
        "source": name,
        "synthesized": src["synthesized"],
        "table": table,
        "chart": {
            "areas": area_codes,
            "area_names": [names[a] for a in area_codes],
            "years": year_list,
            "by_area": series,  # bar/pie: one series per indicator and year
            "by_year": trend,  # line: one series per indicator and area
        },
        "choropleth": {
            "type": "FeatureCollection",
            "indicator": first,
            "year": last,
            "breaks": breaks([r["value"] for r in choro if r["value"] is not None]),
            "features": [
                {
                    "type": "Feature",
                    "id": r["area_code"],
                    "geometry": shapes[r["area_code"]],
                    "properties": {
                        "code": r["area_code"],
                        "name_zh": r["area_zh"],
                        "value": r["value"],
                    },
                }
                for r in choro
                if r["area_code"] in shapes
            ],
        },
    }


EXPORT_COLUMNS = ("indicator", "indicator_zh", "unit", "area_code", "area_zh", "year", "value")


def export_csv(table: list[dict[str, Any]]) -> bytes:
    """UTF-8 with a BOM: Excel on a Chinese desktop opens it without garbling."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for r in table:
        writer.writerow([r[c] for c in EXPORT_COLUMNS])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def export_xlsx(table: list[dict[str, Any]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("statistics")
    sheet.append(list(EXPORT_COLUMNS))
    for r in table:
        sheet.append([r[c] for c in EXPORT_COLUMNS])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def pg_type(element_type: str) -> str:
    return PG_TYPES[element_type]
