"""What operators read about the field: device health and what ingest refused.

Shared by the API (``/telemetry/health``, ``/telemetry/dead-letters``), the console panel
behind them and the command line (``changzhi devices status``, ``changzhi devices
dead-letters``), so all of them count the same way.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

OFFLINE_AFTER_INTERVALS = 3  # a device silent this many expected intervals is offline

# Every device sorted into one of three, as the ingest workers' maintenance sees it: a device is
# offline once it said so, or once it has been silent for OFFLINE_AFTER_INTERVALS of its
# expected intervals (the maintenance marks it so at its next pass); never seen when it has no
# state at all. One statement: the per-kind counts and the newest offline devices, as JSON.
HEALTH_SQL = """
WITH d AS MATERIALIZED (
    SELECT d.id, d.kind, d.name_zh, d.department_code, d.expected_interval_s,
           s.ts, s.received_at, s.online, s.geom,
           CASE WHEN s.device_id IS NULL THEN 'never'
                WHEN NOT s.online
                  OR s.received_at < now() - make_interval(secs => d.expected_interval_s * %(n)s)
                THEN 'offline'
                ELSE 'online' END AS health
    FROM iot.device d LEFT JOIN iot.device_state s ON s.device_id = d.id
    WHERE (%(department)s::text IS NULL OR d.department_code = %(department)s)
)
SELECT
    (SELECT coalesce(jsonb_agg(k ORDER BY k.kind), '[]'::jsonb) FROM (
        SELECT kind, count(*) AS total,
               count(*) FILTER (WHERE health = 'online') AS online,
               count(*) FILTER (WHERE health = 'offline') AS offline,
               count(*) FILTER (WHERE health = 'never') AS never
        FROM d GROUP BY kind) k),
    (SELECT count(*) FROM d WHERE health = 'offline'
        AND (%(kind)s::text IS NULL OR kind = %(kind)s)),
    (SELECT coalesce(jsonb_agg(o ORDER BY o.received_at DESC, o.id), '[]'::jsonb) FROM (
        SELECT id, kind, name_zh, department_code, expected_interval_s, ts, received_at,
               online AS reported_online, ST_X(geom) AS lon, ST_Y(geom) AS lat
        FROM d WHERE health = 'offline' AND (%(kind)s::text IS NULL OR kind = %(kind)s)
        ORDER BY received_at DESC, id LIMIT %(limit)s) o),
    now()
"""


def device_health(
    conn: psycopg.Connection,
    *,
    kind: str | None = None,
    department: str | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Devices by kind (online, offline, never reported) and the offline ones, those heard
    from last first; ``offline_total`` counts them beyond ``limit``."""
    cur = conn.execute(
        HEALTH_SQL,
        {"n": OFFLINE_AFTER_INTERVALS, "kind": kind, "department": department, "limit": limit},
    )
    # Scalar subqueries without FROM: always exactly one row.
    by_kind, offline_total, offline, as_of = cur.fetchall()[0]
    totals = {
        key: sum(int(k[key]) for k in by_kind) for key in ("total", "online", "offline", "never")
    }
    return {
        "as_of": as_of,
        "offline_after_intervals": OFFLINE_AFTER_INTERVALS,
        "totals": totals,
        "kinds": by_kind,
        "offline_total": int(offline_total),
        "offline": offline,
    }


def dead_letter_counts(conn: psycopg.Connection, since_hours: float = 24) -> dict[str, int]:
    """Rejects by reason over the last ``since_hours``, most frequent first."""
    rows = conn.execute(
        "SELECT reason, count(*) FROM iot.dead_letter"
        " WHERE received_at > now() - make_interval(secs => %s) GROUP BY reason ORDER BY 2 DESC",
        (since_hours * 3600,),
    ).fetchall()
    return {reason: int(n) for reason, n in rows}


def recent_dead_letters(
    conn: psycopg.Connection,
    *,
    reason: str | None = None,
    device_id: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The latest rejects, newest first, optionally of one reason and/or one device."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT id, received_at, topic, device_id, reason, detail, payload, payload_bytes
            FROM iot.dead_letter
            WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
              AND (%(device)s::text IS NULL OR device_id = %(device)s)
            ORDER BY id DESC LIMIT %(limit)s
            """,
            {"reason": reason, "device": device_id, "limit": limit},
        )
        return cur.fetchall()
