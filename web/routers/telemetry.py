"""Devices, history, alarms and dead letters for operators."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from psycopg.rows import dict_row

from gis_core.errors import Conflict, InvalidInput, InvalidParameter, NotFound
from gis_core.identity import Principal, audit
from realtime import health
from web.deps import ConnDep, CurrentUser, KindsDep, client_address, require_roles

router = APIRouter(tags=["telemetry"])

Operator = Annotated[
    Principal, Depends(require_roles("dispatcher", "supervisor", "inspector", "planner"))
]
MAX_WINDOW = timedelta(days=400)


# Times a query may name: nothing the platform holds is older or newer, and arithmetic on a
# window (a default start a day before ``end``) stays inside what datetime can represent.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _supported(name: str, value: datetime | None) -> None:
    """Refuse a time without a UTC offset or outside the supported range (422)."""
    if value is None:
        return
    if value.tzinfo is None:
        raise InvalidParameter(f"{name} needs a UTC offset (e.g. Z or +08:00)")
    try:
        inside = EARLIEST <= value < LATEST
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        inside = False
    if not inside:
        raise InvalidInput(
            f"{name}: {value.isoformat()} is outside the supported dates "
            f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d})"
        )


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    _supported("start", start)
    _supported("end", end)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=24)
    if start >= end:
        raise InvalidParameter("start must come before end")
    if end - start > MAX_WINDOW:
        raise InvalidParameter("the window may span at most 400 days")
    return start, end


@router.get("/devices")
def devices(
    _: CurrentUser,
    conn: ConnDep,
    kinds: KindsDep,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[dict[str, Any]]:
    if kind is not None and kind not in kinds:
        raise InvalidParameter(f"unknown kind {kind!r}; kinds: {', '.join(kinds)}")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT d.id, d.kind, d.name_zh, d.department_code, d.site_id, d.expected_interval_s,
                   s.ts, s.online, s.status, s.reading, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
                   s.received_at
            FROM iot.device d LEFT JOIN iot.device_state s ON s.device_id = d.id
            WHERE %(kind)s::text IS NULL OR d.kind = %(kind)s
            ORDER BY d.id LIMIT %(limit)s
            """,
            {"kind": kind, "limit": limit},
        )
        return cur.fetchall()


@router.get("/devices/{device_id}")
def device(device_id: str, _: CurrentUser, conn: ConnDep) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT d.id, d.kind, d.name_zh, d.department_code, d.site_id, d.expected_interval_s,
                   d.attributes, s.ts, s.seq, s.online, s.status, s.reading, s.received_at,
                   ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
                   u.id AS unit_id, u.call_sign, u.unit_type, u.status AS unit_status
            FROM iot.device d
            LEFT JOIN iot.device_state s ON s.device_id = d.id
            LEFT JOIN ops.unit u ON u.device_id = d.id
            WHERE d.id = %s
            """,
            (device_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no device {device_id!r}")
    return row


TRACK_SCAN = """
SELECT DISTINCT ON (b) ts, ST_X(geom), ST_Y(geom), (reading->>'speed_kmh')::float8
FROM (
    SELECT ts, geom, reading, date_bin(make_interval(secs => %(bucket)s), ts, %(start)s) AS b
    FROM iot.telemetry
    WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s AND geom IS NOT NULL
) t
ORDER BY b, ts
"""

TRACK_PROBE = """
SELECT f.ts, ST_X(f.geom), ST_Y(f.geom), (f.reading->>'speed_kmh')::float8
FROM generate_series(0, %(n)s - 1) AS k
CROSS JOIN LATERAL (
    SELECT ts, geom, reading FROM iot.telemetry
    WHERE device_id = %(device)s
      AND ts >= %(start)s + k * make_interval(secs => %(bucket)s)
      AND ts < least(%(start)s + (k + 1) * make_interval(secs => %(bucket)s), %(end)s)
      AND geom IS NOT NULL
    ORDER BY ts LIMIT 1
) f
"""


@router.get("/devices/{device_id}/track")
def track(
    device_id: str,
    _: CurrentUser,
    conn: ConnDep,
    start: datetime | None = None,
    end: datetime | None = None,
    max_points: Annotated[int, Query(ge=2, le=20_000)] = 2000,
) -> dict[str, Any]:
    """A device's positions in a window as a GeoJSON LineString, thinned to ``max_points``
    by time buckets (the first fix of each bucket), plus the times of the kept fixes."""
    start, end = _window(start, end)
    bucket_s = max(1.0, (end - start).total_seconds() / max_points)
    buckets = math.ceil((end - start).total_seconds() / bucket_s)
    interval = conn.execute(
        "SELECT expected_interval_s FROM iot.device WHERE id = %s", (device_id,)
    ).fetchone()
    expected = (end - start).total_seconds() / interval[0] if interval and interval[0] else 0
    # Many fixes per bucket (months of a vehicle): one index probe per bucket for its first
    # fix — 90 days of one-a-minute fixes in 15 ms instead of 175 reading all 129,600.
    # Few: read them all and keep the first of each bucket.
    query = TRACK_PROBE if expected > 4 * buckets else TRACK_SCAN
    rows = conn.execute(
        query,
        {"device": device_id, "start": start, "end": end, "bucket": bucket_s, "n": buckets},
    ).fetchall()
    return {
        "type": "Feature",
        "id": device_id,
        "geometry": {"type": "LineString", "coordinates": [[r[1], r[2]] for r in rows]},
        "properties": {
            "device_id": device_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "times": [r[0].isoformat() for r in rows],
            "speed_kmh": [r[3] for r in rows],
            "bucket_s": bucket_s,
        },
    }


@router.get("/devices/{device_id}/series")
def series(
    device_id: str,
    _: CurrentUser,
    conn: ConnDep,
    kinds: KindsDep,
    field: Annotated[str, Query(description="a reading field, e.g. pm25 or level_m")],
    start: datetime | None = None,
    end: datetime | None = None,
    bucket_s: Annotated[float | None, Query(ge=1)] = None,
    max_points: Annotated[int, Query(ge=2, le=20_000)] = 1000,
) -> dict[str, Any]:
    """A measurement over time, averaged in buckets (min/max/count kept)."""
    known = {f for k in kinds.values() for f in k.spec}
    if field not in known:
        raise InvalidParameter(f"unknown field {field!r}")
    start, end = _window(start, end)
    bucket = bucket_s or max(1.0, (end - start).total_seconds() / max_points)
    rows = conn.execute(
        """
        SELECT date_bin(make_interval(secs => %(bucket)s), ts, %(start)s) AS b,
               avg((reading->>%(field)s)::float8), min((reading->>%(field)s)::float8),
               max((reading->>%(field)s)::float8), count(*)
        FROM iot.telemetry
        WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s
          AND jsonb_typeof(reading->%(field)s) = 'number'
        GROUP BY b ORDER BY b
        """,
        {"device": device_id, "start": start, "end": end, "bucket": bucket, "field": field},
    ).fetchall()
    return {
        "device_id": device_id,
        "field": field,
        "bucket_s": bucket,
        "points": [
            {"t": r[0].isoformat(), "avg": r[1], "min": r[2], "max": r[3], "n": r[4]} for r in rows
        ],
    }


@router.get("/alarms")
def alarms(
    _: CurrentUser,
    conn: ConnDep,
    state: Annotated[str, Query(pattern="^(open|unacknowledged|all)$")] = "unacknowledged",
    kind: str | None = None,
    start: Annotated[datetime | None, Query(description="raised at or after")] = None,
    end: Annotated[datetime | None, Query(description="raised before")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """Alarms newest first, the most severe first within the same minute; ``start``/``end``
    keep those raised in a window (a console's replay asks for its window's alarms)."""
    _supported("start", start)
    _supported("end", end)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT id, kind, rule, severity, device_id, incident_id, message_zh, message_en,
                   value, threshold, raised_at, last_seen_at, occurrences, acknowledged_at,
                   acknowledged_by, cleared_at, ST_X(geom) AS lon, ST_Y(geom) AS lat
            FROM iot.alarm
            WHERE (%(state)s = 'all'
                   OR (%(state)s = 'open' AND cleared_at IS NULL)
                   OR (%(state)s = 'unacknowledged' AND acknowledged_at IS NULL))
              AND (%(kind)s::text IS NULL OR kind = %(kind)s)
              AND (%(start)s::timestamptz IS NULL OR raised_at >= %(start)s)
              AND (%(end)s::timestamptz IS NULL OR raised_at < %(end)s)
            ORDER BY date_trunc('minute', raised_at) DESC, severity DESC, id DESC
            LIMIT %(limit)s
            """,
            {"state": state, "kind": kind, "start": start, "end": end, "limit": limit},
        )
        return cur.fetchall()


@router.post("/alarms/{alarm_id}/ack")
def acknowledge(alarm_id: int, user: Operator, conn: ConnDep, request: Request) -> dict[str, Any]:
    """Acknowledge an alarm: recorded, audited, and removed from every console at once."""
    row = conn.execute(
        """
        UPDATE iot.alarm SET acknowledged_at = now(), acknowledged_by = %s
        WHERE id = %s AND acknowledged_at IS NULL
        RETURNING kind, acknowledged_at
        """,
        (user.username, alarm_id),
    ).fetchone()
    if row is None:
        exists = conn.execute("SELECT acknowledged_by FROM iot.alarm WHERE id = %s", (alarm_id,))
        found = exists.fetchone()
        if found is None:
            raise NotFound(f"no alarm {alarm_id}")
        raise Conflict(f"alarm {alarm_id} was already acknowledged by {found[0]}")
    client = client_address(request)
    audit(conn, user, "acknowledge", "alarm", str(alarm_id), None, client)
    conn.commit()
    event = {
        "type": "alarm",
        "event": "acknowledged",
        "id": alarm_id,
        "kind": row[0],
        "by": user.username,
        "at": row[1].isoformat(),
    }
    request.app.state.live.publish_event(event)
    return event


@router.get("/telemetry/dead-letters")
def dead_letters(
    _: Operator,
    conn: ConnDep,
    reason: str | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, Any]:
    """Rejected readings with their reason, and the counts by reason over the last day."""
    return {
        "counts_last_day": health.dead_letter_counts(conn, 24),
        "items": health.recent_dead_letters(conn, reason=reason, device_id=device_id, limit=limit),
    }


@router.get("/telemetry/health")
def device_health(
    _: Operator,
    conn: ConnDep,
    kinds: KindsDep,
    kind: Annotated[str | None, Query(description="only this kind in the offline list")] = None,
    department: Annotated[
        str | None, Query(max_length=32, description="only this department's devices")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, Any]:
    """Field devices by kind: online, offline, never reported; and the offline ones, those
    heard from last first (``offline_total`` says how many there are beyond ``limit``)."""
    if kind is not None and kind not in kinds:
        raise InvalidParameter(f"unknown kind {kind!r}; kinds: {', '.join(kinds)}")
    if department is not None:
        if "\x00" in department:  # PostgreSQL text cannot hold it: the client's error
            raise InvalidParameter("department must not contain NUL characters")
        known = conn.execute("SELECT 1 FROM auth.department WHERE code = %s", (department,))
        if known.fetchone() is None:
            raise InvalidParameter(f"unknown department {department!r}")
    return health.device_health(conn, kind=kind, department=department, limit=limit)
