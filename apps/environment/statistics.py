"""Statistics of the environment bureau (统计分析): emission loads, exceedance rates and AQI days
by level, by outlet, enterprise, industry or district and by month, quarter or year.

- Loads: each outlet's clock-hour mean of concentration × flue-gas flow (mg/h) over one hour,
  summed: kg per pollutant. Hours without readings add nothing (the figure is of what was
  measured; ``hours`` says how many there were).
- Exceedance rate: the share of an outlet's measured hours whose mean concentration is above
  its permit limit (1-hour limits; the readings carry no O2, so no oxygen correction), and
  the exceedance events stored in the period.
- AQI days: daily AQI (:mod:`apps.environment.airquality`, the edition in force each day or the
  one asked for) counted by level I–VI.

Periods are local (China Standard Time) months, quarters and years.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import psycopg

from apps.environment import airquality
from apps.environment.attribution import EMITTED_AS
from gis_core.errors import InvalidParameter

GROUPS = {
    "outlet": ("o.id::text", "o.code || ' ' || o.name_zh"),
    "enterprise": ("coalesce(e.id::text, '')", "coalesce(e.name_zh, '')"),
    "industry": ("coalesce(e.industry_code, '')", "coalesce(e.industry_zh, '')"),
    "district": ("coalesce(e.district_code, '')", "coalesce(a.name_zh, '')"),
}
PERIODS = ("month", "quarter", "year")
FIELDS = tuple(dict.fromkeys(EMITTED_AS.values()))  # so2_mgm3, nox_mgm3, dust_mgm3
MAX_SPAN = timedelta(days=3 * 366 + 1)
LOCAL_TZ = airquality.LOCAL_TZ


def _check(by: str, period: str, start: date, end: date) -> None:
    if by not in GROUPS:
        raise InvalidParameter(f"by must be one of {', '.join(GROUPS)}, not {by!r}")
    if period not in PERIODS:
        raise InvalidParameter(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    if end < start:
        raise InvalidParameter(f"end {end} is before start {start}")
    if end - start > MAX_SPAN:
        raise InvalidParameter("statistics cover at most three years at once")


def _hourly(by: str) -> str:
    key, name = GROUPS[by]
    products = ", ".join(
        f"avg((t.reading->>'{f}')::float8 * (t.reading->>'flow_m3h')::float8) AS {f}"
        for f in FIELDS
    )
    means = ", ".join(f"avg((t.reading->>'{f}')::float8) AS {f}_mean" for f in FIELDS)
    return f"""
        SELECT {key} AS k, {name} AS name, o.id AS outlet_id,
               date_trunc('hour', t.ts AT TIME ZONE '{LOCAL_TZ}') AS h, {products}, {means}
        FROM iot.telemetry t
        JOIN env.outlet o ON o.device_id = t.device_id AND o.medium = 'air'
        JOIN env.pollution_source s ON s.id = o.source_id
        LEFT JOIN env.enterprise e ON e.id = s.enterprise_id
        LEFT JOIN ref.admin_area a ON a.code = e.district_code AND a.level = 'district'
        WHERE t.kind = 'emission'
          AND t.ts >= (%(start)s::timestamp AT TIME ZONE '{LOCAL_TZ}')
          AND t.ts < (%(end)s::timestamp AT TIME ZONE '{LOCAL_TZ}')
        GROUP BY 1, 2, 3, 4"""


def loads(
    conn: psycopg.Connection, *, by: str, period: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Emission loads, kg, of each group and period (local days ``start``..``end``)."""
    _check(by, period, start, end)
    sums = ", ".join(f"sum({f}) / 1e6" for f in FIELDS)
    rows = conn.execute(
        f"""
        SELECT k, name, date_trunc('{period}', h)::date, count(*), count(DISTINCT outlet_id),
               {sums}
        FROM ({_hourly(by)}) hourly
        GROUP BY 1, 2, 3 ORDER BY 3, 1
        """,
        {"start": start, "end": end + timedelta(days=1)},
    ).fetchall()
    return [
        {
            "key": r[0],
            "name": r[1],
            "period": r[2].isoformat(),
            "hours": int(r[3]),
            "outlets": int(r[4]),
            "load_kg": {
                f.removesuffix("_mgm3"): round(float(v or 0.0), 3)
                for f, v in zip(FIELDS, r[5:], strict=True)
            },
        }
        for r in rows
    ]


def exceedance_rates(
    conn: psycopg.Connection, *, by: str, period: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Per group, period and pollutant: measured outlet-hours, hours above the permit's
    1-hour limit, their share, and the emission exceedance events that began then."""
    _check(by, period, start, end)
    key, _ = GROUPS[by]
    unpivot = " UNION ALL ".join(
        f"SELECT k, name, outlet_id, h, '{f}' AS pollutant, {f}_mean AS mean FROM hourly"
        for f in FIELDS
    )
    params = {"start": start, "end": end + timedelta(days=1)}
    rows = conn.execute(
        f"""
        WITH hourly AS ({_hourly(by)}), long AS ({unpivot})
        SELECT l.k, l.name, date_trunc('{period}', l.h)::date, l.pollutant,
               count(*), count(*) FILTER (WHERE l.mean > ol.limit_value)
        FROM long l
        JOIN env.outlet_limit ol ON ol.outlet_id = l.outlet_id AND ol.pollutant = l.pollutant
        WHERE l.mean IS NOT NULL
        GROUP BY 1, 2, 3, 4 ORDER BY 3, 1, 4
        """,
        params,
    ).fetchall()
    events = conn.execute(
        f"""
        SELECT {key}, date_trunc('{period}', x.started_at AT TIME ZONE '{LOCAL_TZ}')::date,
               x.pollutant, count(*)
        FROM env.exceedance x
        JOIN env.outlet o ON o.id = x.outlet_id
        JOIN env.pollution_source s ON s.id = o.source_id
        LEFT JOIN env.enterprise e ON e.id = s.enterprise_id
        WHERE x.kind = 'emission'
          AND x.started_at >= (%(start)s::timestamp AT TIME ZONE '{LOCAL_TZ}')
          AND x.started_at < (%(end)s::timestamp AT TIME ZONE '{LOCAL_TZ}')
        GROUP BY 1, 2, 3
        """,
        params,
    ).fetchall()
    counted = {(r[0], r[1], r[2]): int(r[3]) for r in events}
    return [
        {
            "key": r[0],
            "name": r[1],
            "period": r[2].isoformat(),
            "pollutant": r[3],
            "hours": int(r[4]),
            "hours_over": int(r[5]),
            "rate": round(int(r[5]) / int(r[4]), 4),
            "events": counted.get((r[0], r[2], r[3]), 0),
        }
        for r in rows
    ]


def _period_start(day: date, period: str) -> date:
    if period == "year":
        return date(day.year, 1, 1)
    if period == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, day.month, 1)


def aqi_days(
    conn: psycopg.Connection,
    *,
    scope: str,
    period: str,
    start: date,
    end: date,
    standard: str = "auto",
) -> list[dict[str, Any]]:
    """Days at each AQI level (1–6) per station, district or the city and period, with the
    edition(s) each count was computed by; days without a daily AQI are ``no_data``."""
    if period not in PERIODS:
        raise InvalidParameter(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    airquality.check_request(standard, "daily", scope, start, end)
    report = airquality.report(
        conn, scope=scope, period="daily", standard=standard, start=start, end=end
    )
    counts: dict[tuple[str, date], dict[str, Any]] = {}
    for row in report["rows"]:
        day = date.fromisoformat(row["time"][:10])
        slot = counts.setdefault(
            (row["id"], _period_start(day, period)),
            {"levels": defaultdict(int), "no_data": 0, "standards": set(), "name": row["name"]},
        )
        if row["level"] is None:
            slot["no_data"] += 1
        else:
            slot["levels"][row["level"]] += 1
            slot["standards"].add(row["standard"])
    return [
        {
            "id": key,
            "name": slot["name"],
            "period": first.isoformat(),
            "days_by_level": {str(lv): slot["levels"].get(lv, 0) for lv in range(1, 7)},
            "good_days": slot["levels"].get(1, 0) + slot["levels"].get(2, 0),
            "no_data": slot["no_data"],
            "standards": sorted(slot["standards"]),
        }
        for (key, first), slot in sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]
