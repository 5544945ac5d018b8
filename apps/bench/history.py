"""bench history: a device's track and a sensor's series over months of stored telemetry.

Ninety days of readings, one a minute, from vehicles and air monitors (interleaved in time,
as ingest writes them, into daily partitions), generated in the database. Timed through the
HTTP API, as the console asks: a vehicle's last hour (replay), its 30-day and 90-day tracks
thinned to 2,000 points, and an air monitor's 90-day pm25 series in 1,000 buckets. Beside
each, the physical limit of the same run: counting that window's rows of that device on the
server (the rows any answer has to read), as the ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from apps.bench.common import (
    BenchEnv,
    admin_token,
    bench_services,
    median,
    percentile,
    serve_api,
)

Log = Callable[[str], None]

GENERATE = """
INSERT INTO iot.telemetry (device_id, kind, ts, seq, geom, reading)
SELECT d.id, d.kind, t.ts, t.n,
       CASE WHEN d.kind = 'vehicle' THEN ST_SetSRID(ST_MakePoint(
           113.0 + 0.2 * sin(t.n / 500.0 + d.k), 36.1 + 0.15 * cos(t.n / 700.0 + d.k)), 4326)
       ELSE ST_SetSRID(ST_MakePoint(113.1 + d.k / 100.0, 36.2), 4326) END,
       CASE WHEN d.kind = 'vehicle'
            THEN jsonb_build_object('speed_kmh', 30 + (t.n + d.k) %% 50, 'heading_deg', t.n %% 360)
            ELSE jsonb_build_object('pm25', 20 + (t.n * 7 + d.k) %% 80, 'pm10', 40 + t.n %% 90)
       END
FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz, interval '1 minute')
     WITH ORDINALITY AS t(ts, n)
CROSS JOIN (SELECT id, kind, row_number() OVER (ORDER BY id) AS k FROM iot.device
            WHERE id LIKE 'H-%%') d
ORDER BY t.ts, d.id
"""

COUNT_WINDOW = """
SELECT count(*) FROM iot.telemetry WHERE device_id = %s AND ts >= %s AND ts < %s
"""


def _load(env: BenchEnv, log: Log, days: int, devices: int) -> datetime:
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    start = end - timedelta(days=days)
    with psycopg.connect(env.database_url) as conn:
        conn.execute(
            "SELECT iot.ensure_telemetry_partitions(%s::date - 1, current_date + 1)",
            (start.date(),),
        )
        with conn.cursor().copy("COPY iot.device (id, kind, expected_interval_s) FROM STDIN") as cp:
            for i in range(devices):
                cp.write_row((f"H-V{i:03d}", "vehicle", 60))
                cp.write_row((f"H-A{i:03d}", "air", 60))
        conn.commit()
        t0 = time.perf_counter()
        # a day at a time: one statement per partition, as ingest would have filled them
        day = start
        while day < end:
            stop = min(day + timedelta(days=1), end)
            conn.execute(GENERATE, {"start": day, "end": stop - timedelta(minutes=1)})
            conn.commit()
            day = stop
        rows = conn.execute("SELECT count(*) FROM iot.telemetry").fetchone()
        conn.execute("ANALYZE iot.telemetry")
        conn.commit()
    log(f"  {rows[0] if rows else 0:,} rows over {days} days in {time.perf_counter() - t0:.0f} s")
    return end


def _time(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bench_history(log: Log, days: int = 90, devices: int = 10, repeat: int = 15) -> dict[str, Any]:
    with bench_services("history") as env:
        log(f"history: {days} days, one reading a minute, {devices} vehicles + {devices} monitors")
        end = _load(env, log, days, devices)
        cases: list[tuple[str, str, str, timedelta, dict[str, Any]]] = [
            ("track_1h", "H-V003", "track", timedelta(hours=1), {}),
            ("track_30d", "H-V003", "track", timedelta(days=30), {"max_points": 2000}),
            ("track_90d", "H-V003", "track", timedelta(days=days), {"max_points": 2000}),
            (
                "series_90d",
                "H-A004",
                "series",
                timedelta(days=days),
                {"field": "pm25", "max_points": 1000},
            ),
        ]
        figures: dict[str, Any] = {}
        with serve_api(env) as api, psycopg.connect(env.database_url) as conn:
            token = admin_token(env, api)
            client = httpx.Client(
                base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=120
            )
            for name, device, what, span, params in cases:
                start = end - span
                query = {"start": start.isoformat(), "end": end.isoformat(), **params}

                def ask(device: str = device, what: str = what, query: Any = query) -> Any:
                    r = client.get(f"/devices/{device}/{what}", params=query)
                    r.raise_for_status()
                    return r.json()

                body = ask()  # warm: plans and pages cached, as for a console's second look
                points = (
                    len(body["geometry"]["coordinates"]) if what == "track" else len(body["points"])
                )
                api_ms = _time(ask, repeat)
                rows = conn.execute(COUNT_WINDOW, (device, start, end)).fetchone()
                scan_ms = _time(
                    lambda device=device, start=start: conn.execute(
                        COUNT_WINDOW, (device, start, end)
                    ).fetchone(),
                    repeat,
                )
                figures[name] = {
                    "rows_in_window": int(rows[0]) if rows else 0,
                    "points_returned": points,
                    "p50_ms": round(median(api_ms), 1),
                    "p95_ms": round(percentile(api_ms, 95), 1),
                    "count_rows_p50_ms": round(median(scan_ms), 1),
                    "ratio_to_count_rows": round(median(api_ms) / max(median(scan_ms), 1e-3), 2),
                }
                log(f"  {name}: {figures[name]}")
            client.close()
            with psycopg.connect(env.database_url) as c2:
                total = c2.execute("SELECT count(*) FROM iot.telemetry").fetchone()
                parts = c2.execute(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = 'iot.telemetry'::regclass"
                ).fetchone()
    return {
        "bench": "history",
        "days": days,
        "rows_stored": int(total[0]) if total else 0,
        "partitions": int(parts[0]) if parts else 0,
        "devices": 2 * devices,
        "repeat": repeat,
        **figures,
        "note": "API time through HTTP incl. JSON; count_rows = the server counting the"
        " window's rows of that device (the least any answer must read)",
    }
