"""Devices, their history, alarms and dead letters: the queries behind
``web/routers/telemetry.py``."""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gis_core.errors import Conflict, InvalidInput, InvalidParameter, NotFound
from gis_core.identity import Principal, audit
from realtime import health

MAX_WINDOW = timedelta(days=400)
# Times a query may name: nothing the platform holds is older or newer, and arithmetic on a
# window (a default start a day before ``end``) stays inside what datetime can represent.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def supported(name: str, value: datetime | None) -> None:
    """Refuse a time without a UTC offset or outside the supported range."""
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


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The window a history query reads: default the day before ``end`` (default now)."""
    supported("start", start)
    supported("end", end)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=24)
    if start >= end:
        raise InvalidParameter("start must come before end")
    if end - start > MAX_WINDOW:
        raise InvalidParameter("the window may span at most 400 days")
    return start, end


def known_kind(kind: str | None, kinds: Collection[str]) -> None:
    """Refuse a device kind no installed application defines."""
    if kind is not None and kind not in kinds:
        raise InvalidParameter(f"unknown kind {kind!r}; kinds: {', '.join(kinds)}")


def devices(conn: psycopg.Connection, *, kind: str | None, limit: int) -> list[dict[str, Any]]:
    """Registered devices with their last state, by id."""
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


def device(conn: psycopg.Connection, device_id: str) -> dict[str, Any]:
    """One device, its last state and the unit it rides in, if any."""
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


def track(
    conn: psycopg.Connection,
    device_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    max_points: int,
) -> dict[str, Any]:
    """A device's positions in a window as a GeoJSON LineString feature, thinned to
    ``max_points`` by time buckets (the first fix of each bucket), with the kept fixes' times."""
    start, end = window(start, end)
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


def series(
    conn: psycopg.Connection,
    device_id: str,
    *,
    field: str,
    fields: Collection[str],
    start: datetime | None,
    end: datetime | None,
    bucket_s: float | None,
    max_points: int,
) -> dict[str, Any]:
    """A reading field over time, averaged in buckets (min, max and count kept); ``fields``
    are the fields the installed kinds define."""
    if field not in fields:
        raise InvalidParameter(f"unknown field {field!r}")
    start, end = window(start, end)
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


def alarms(
    conn: psycopg.Connection,
    *,
    state: str,
    kind: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Alarms newest first, the most severe first within the same minute."""
    supported("start", start)
    supported("end", end)
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


def acknowledge(
    conn: psycopg.Connection, alarm_id: int, user: Principal, client: str | None
) -> dict[str, Any]:
    """Acknowledge an alarm, audited and committed; returns the live event announcing it."""
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
    audit(conn, user, "acknowledge", "alarm", str(alarm_id), None, client)
    conn.commit()
    return {
        "type": "alarm",
        "event": "acknowledged",
        "id": alarm_id,
        "kind": row[0],
        "by": user.username,
        "at": row[1].isoformat(),
    }


def dead_letters(
    conn: psycopg.Connection, *, reason: str | None, device_id: str | None, limit: int
) -> dict[str, Any]:
    """Rejected readings with their reason, and the counts by reason over the last day."""
    return {
        "counts_last_day": health.dead_letter_counts(conn, 24),
        "items": health.recent_dead_letters(conn, reason=reason, device_id=device_id, limit=limit),
    }


def device_health(
    conn: psycopg.Connection, *, kind: str | None, department: str | None, limit: int
) -> dict[str, Any]:
    """Field devices by kind and the offline ones (see :func:`realtime.health.device_health`),
    refusing a department the platform does not know."""
    if department is not None:
        if "\x00" in department:  # PostgreSQL text cannot hold it: the client's error
            raise InvalidParameter("department must not contain NUL characters")
        known = conn.execute("SELECT 1 FROM auth.department WHERE code = %s", (department,))
        if known.fetchone() is None:
            raise InvalidParameter(f"unknown department {department!r}")
    return health.device_health(conn, kind=kind, department=department, limit=limit)
