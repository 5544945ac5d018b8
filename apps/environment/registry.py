"""The pollution-source registry as the API shows it: sources with their enterprise, outlets,
permit limits and the outlets' latest readings, and the HJ 212 logins of the outlets."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
import psycopg

from gis_core.errors import InvalidParameter, NotFound
from gis_core.identity import Principal, audit, hash_password

MAX_SOURCES = 2000

SOURCE_COLUMNS = """
SELECT s.id, s.kind, s.name_zh, s.stack_height_m, ST_X(s.geom), ST_Y(s.geom),
       e.id, e.name_zh, e.credit_code, e.industry_code, e.industry_zh, e.district_code
FROM env.pollution_source s LEFT JOIN env.enterprise e ON e.id = s.enterprise_id
"""

OUTLETS = """
SELECT o.id, o.source_id, o.code, o.name_zh, o.medium, o.standard, o.mn, o.device_id,
       ST_X(o.geom), ST_Y(o.geom),
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'pollutant', l.pollutant, 'limit', l.limit_value, 'unit', l.unit,
                    'averaging', l.averaging, 'o2_reference_pct', l.o2_reference_pct,
                    'standard', l.standard) ORDER BY l.pollutant)
                 FROM env.outlet_limit l WHERE l.outlet_id = o.id), '[]'::jsonb)::text,
       st.ts, st.online, st.reading::text
FROM env.outlet o LEFT JOIN iot.device_state st ON st.device_id = o.device_id
WHERE o.source_id = ANY(%s)
ORDER BY o.source_id, o.code
"""


def _source(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "kind": row[1],
        "name_zh": row[2],
        "stack_height_m": row[3],
        "lon": row[4],
        "lat": row[5],
        "enterprise": None
        if row[6] is None
        else {
            "id": row[6],
            "name_zh": row[7],
            "credit_code": row[8],
            "industry_code": row[9],
            "industry_zh": row[10],
            "district_code": row[11],
        },
        "outlets": [],
    }


def _outlet(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "code": row[2],
        "name_zh": row[3],
        "medium": row[4],
        "standard": row[5],
        "mn": row[6],
        "device_id": row[7],
        "lon": row[8],
        "lat": row[9],
        "limits": orjson.loads(row[10]),
        "live": None
        if row[11] is None
        else {"ts": row[11].isoformat(), "online": row[12], "reading": orjson.loads(row[13])},
    }


def _with_outlets(conn: psycopg.Connection, sources: list[dict[str, Any]]) -> None:
    by_id = {s["id"]: s for s in sources}
    for row in conn.execute(OUTLETS, (list(by_id),)).fetchall():
        by_id[row[1]]["outlets"].append(_outlet(row))


def list_sources(
    conn: psycopg.Connection,
    *,
    district: str | None = None,
    industry: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Sources (with outlets and live data), filtered by district and industry code."""
    if not 1 <= limit <= MAX_SOURCES:
        raise InvalidParameter(f"limit must be 1..{MAX_SOURCES}, got {limit}")
    sql = (
        SOURCE_COLUMNS
        + """
        WHERE (%(district)s::text IS NULL OR e.district_code = %(district)s)
          AND (%(industry)s::text IS NULL OR e.industry_code = %(industry)s)
        ORDER BY s.id LIMIT %(limit)s OFFSET %(offset)s"""
    )
    params = {"district": district, "industry": industry, "limit": limit, "offset": offset}
    sources = [_source(r) for r in conn.execute(sql, params).fetchall()]
    _with_outlets(conn, sources)
    return sources


def get_source(conn: psycopg.Connection, source_id: int) -> dict[str, Any]:
    row = conn.execute(SOURCE_COLUMNS + " WHERE s.id = %s", (source_id,)).fetchone()
    if row is None:
        raise NotFound(f"pollution source {source_id} does not exist")
    source = _source(row)
    _with_outlets(conn, [source])
    return source


def set_logger_password(
    conn: psycopg.Connection, outlet: str, actor: Principal | None, password: str | None = None
) -> tuple[str, str]:
    """Give an outlet's HJ 212 data logger a new password (by outlet id or MN); return
    ``(mn, password)``. The password is stored hashed only; the change is audited."""
    # An MN has 14 to 24 characters (often all digits); an outlet id is a short number.
    column = "id" if outlet.isdigit() and len(outlet) < 10 else "mn"
    new = password or f"{secrets.randbelow(10**6):06d}"
    if not 1 <= len(new) <= 9 or any(c in new for c in ";=&\r\n,"):
        raise InvalidParameter("an HJ 212 password is 1..9 characters without ; = & , or breaks")
    row = conn.execute(
        f"UPDATE env.outlet SET pw_hash = %s WHERE {column} = %s RETURNING id, mn",
        (hash_password(new), int(outlet) if column == "id" else outlet),
    ).fetchone()
    if row is None:
        raise NotFound(f"no outlet with {column} {outlet!r}")
    audit(conn, actor, "set_logger_password", "env.outlet", str(row[0]), {"mn": row[1]})
    return row[1], new
