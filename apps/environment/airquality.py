"""AQI of the air stations' telemetry, per station, district or the whole city.

Readings are averaged to clock hours of China Standard Time (a day is a local calendar day, as
HJ 633 reports it); a district's or the city's hourly concentration is the mean over its
stations (the practice of the national network: the area's AQI is indexed on the mean
concentrations, never the mean of station AQIs). The arrays are entities × hours and all
indexing is vectorized (:mod:`apps.environment.aqi`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from apps.environment import aqi
from gis_core.errors import InvalidParameter

POLLUTANTS = ("so2", "no2", "co", "o3", "pm10", "pm25")
SCOPES = ("station", "district", "city")
PERIODS = ("hourly", "daily")
STANDARDS = (aqi.HJ633_2012, aqi.HJ633_2026, "auto")
MAX_DAYS = {"hourly": 31, "daily": 366}
LOCAL_TZ = "Asia/Shanghai"
WARMUP_HOURS = 24  # the 2012 real-time report's 24-h moving averages look back a day

_MEANS = ", ".join(f"avg((t.reading->>'{p}')::float8)" for p in POLLUTANTS)
# The entity an hourly station mean belongs to, per scope (a column of the inner query).
_KEYS = {"station": "device_id", "district": "coalesce(district_code, '')", "city": "'city'"}
_NAMES = {
    "station": """SELECT d.id, coalesce(s.name_zh, d.id), s.district_code FROM iot.device d
                  LEFT JOIN iot.monitoring_site s ON s.id = d.site_id WHERE d.kind = 'air'""",
    "district": """SELECT code, name_zh, code FROM ref.admin_area WHERE level = 'district'""",
    "city": """SELECT 'city', name_zh, code FROM ref.admin_area WHERE level = 'city'""",
}


@dataclass(frozen=True)
class HourlySeries:
    """Hourly mean concentrations: ``values[pollutant]`` is entities × hours (NaN missing)."""

    entities: list[str]
    first_hour: np.datetime64  # local (CST) hour of column 0
    values: dict[str, NDArray[np.float64]]

    @property
    def hours(self) -> int:
        return next(iter(self.values.values())).shape[1]


def check_request(standard: str, period: str, scope: str, start: date, end: date) -> None:
    """Refuse what cannot be answered, naming the parameter."""
    if standard not in STANDARDS:
        raise InvalidParameter(f"standard must be one of {', '.join(STANDARDS)}, not {standard!r}")
    if period not in PERIODS:
        raise InvalidParameter(f"period must be hourly or daily, not {period!r}")
    if scope not in SCOPES:
        raise InvalidParameter(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if end < start:
        raise InvalidParameter(f"end {end} is before start {start}")
    days = (end - start).days + 1
    if days > MAX_DAYS[period]:
        raise InvalidParameter(f"{period} AQI covers at most {MAX_DAYS[period]} days, got {days}")


def fetch_hourly(conn: psycopg.Connection, scope: str, start: date, end: date) -> HourlySeries:
    """Hourly means of the air kind's readings over local days ``start``..``end`` (and the
    day before, for the moving averages)."""
    first = datetime.combine(start, datetime.min.time()) - timedelta(hours=WARMUP_HOURS)
    last = datetime.combine(end + timedelta(days=1), datetime.min.time())
    station_hours = f"""
        SELECT t.device_id, s.district_code,
               date_trunc('hour', t.ts AT TIME ZONE '{LOCAL_TZ}') AS h, {_MEANS}
        FROM iot.telemetry t
        JOIN iot.device d ON d.id = t.device_id
        LEFT JOIN iot.monitoring_site s ON s.id = d.site_id
        WHERE t.kind = 'air'
          AND t.ts >= (%(first)s::timestamp AT TIME ZONE '{LOCAL_TZ}')
          AND t.ts < (%(last)s::timestamp AT TIME ZONE '{LOCAL_TZ}')
        GROUP BY 1, 2, 3"""
    key = _KEYS[scope]
    means = ", ".join(f"avg(m{i})" for i in range(len(POLLUTANTS)))
    columns = ", ".join(f"m{i}" for i in range(len(POLLUTANTS)))
    sql = f"""
        SELECT {key} AS k, h, {means}
        FROM ({station_hours}) AS sh (device_id, district_code, h, {columns})
        GROUP BY 1, 2 ORDER BY 1, 2"""
    rows = conn.execute(sql, {"first": first, "last": last}).fetchall()
    hours = int((last - first).total_seconds() // 3600)
    entities = sorted({r[0] for r in rows})
    index = {e: i for i, e in enumerate(entities)}
    first_hour = np.datetime64(first, "h")
    values = {p: np.full((len(entities), hours), np.nan) for p in POLLUTANTS}
    if rows:
        ent = np.array([index[r[0]] for r in rows])
        col = (np.array([r[1] for r in rows], dtype="datetime64[h]") - first_hour).astype(int)
        data = np.array([r[2:] for r in rows], dtype=np.float64)
        for j, p in enumerate(POLLUTANTS):
            values[p][ent, col] = data[:, j]
    return HourlySeries(entities, first_hour, values)


def _trailing_mean(values: NDArray[np.float64], width: int, minimum: int) -> NDArray[np.float64]:
    """Mean of the `width` hours ending at each hour, NaN with fewer than `minimum` valid."""
    valid = ~np.isnan(values)
    pad = ((0, 0), (1, 0))  # sums[:, k] = sum of the first k hours
    sums = np.pad(np.cumsum(np.where(valid, values, 0.0), axis=1), pad)
    counts = np.pad(np.cumsum(valid, axis=1), pad)
    end = np.arange(1, values.shape[1] + 1)
    begin = np.maximum(end - width, 0)
    window_sum = sums[:, end] - sums[:, begin]
    window_count = counts[:, end] - counts[:, begin]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(window_count >= minimum, window_sum / window_count, np.nan)


def compute(series: HourlySeries, period: str, standard: str) -> tuple[Any, NDArray[Any]]:
    """AQI of the series (after its warm-up day) by one edition or by date (``auto``).

    Returns ``(results, times)``: ``results`` maps each edition used to its `AqiArrays`
    (entities × columns) and a boolean mask of the columns it rules; ``times`` are the
    columns' local start times.
    """
    v = {p: a[:, WARMUP_HOURS:] for p, a in series.values.items()}
    start = series.first_hour + np.timedelta64(WARMUP_HOURS, "h")
    if period == "hourly":
        times = start + np.arange(v["so2"].shape[1]).astype("timedelta64[h]")
        moving = {
            "so2_24h": _trailing_mean(series.values["so2"], 24, 20)[:, WARMUP_HOURS:],
            "o3_8h": _trailing_mean(series.values["o3"], 8, 6)[:, WARMUP_HOURS:],
            "pm10_24h": _trailing_mean(series.values["pm10"], 24, 20)[:, WARMUP_HOURS:],
            "pm25_24h": _trailing_mean(series.values["pm25"], 24, 20)[:, WARMUP_HOURS:],
        }

        def run(edition: str) -> aqi.AqiArrays:
            return aqi.hourly_aqi(
                so2=v["so2"],
                no2=v["no2"],
                co=v["co"],
                o3=v["o3"],
                pm10=v["pm10"],
                pm25=v["pm25"],
                standard=edition,
                so2_24h=moving["so2_24h"],
                o3_8h=moving["o3_8h"],
                pm10_24h=moving["pm10_24h"],
                pm25_24h=moving["pm25_24h"],
            )
    else:
        times = start.astype("datetime64[D]") + np.arange(v["so2"].shape[1] // 24).astype(
            "timedelta64[D]"
        )
        daily = {p: aqi.daily_means(v[p]) for p in ("so2", "no2", "co", "pm10", "pm25")}
        o3_8h = aqi.o3_daily_max_8h(v["o3"])
        o3_1h = aqi.o3_daily_max_1h(v["o3"])

        def run(edition: str) -> aqi.AqiArrays:
            return aqi.daily_aqi(
                so2=daily["so2"],
                no2=daily["no2"],
                co=daily["co"],
                pm10=daily["pm10"],
                pm25=daily["pm25"],
                o3_8h_max=o3_8h,
                o3_1h_max=o3_1h,
                standard=edition,
            )

    new = aqi.editions_for(times)
    if standard == "auto":
        wanted = [(e, m) for e, m in ((aqi.HJ633_2012, ~new), (aqi.HJ633_2026, new)) if m.any()]
    else:
        wanted = [(standard, np.ones(times.shape, dtype=bool))]
    return {edition: (run(edition), mask) for edition, mask in wanted}, times


def rows(
    series: HourlySeries, period: str, standard: str, names: dict[str, tuple[str, str | None]]
) -> list[dict[str, Any]]:
    """The report as rows: one per entity and hour (or day) that has an AQI."""
    results, times = compute(series, period, standard)
    out: list[dict[str, Any]] = []
    for edition, (result, mask) in results.items():
        ent, col = np.nonzero(~np.isnan(result.aqi) & mask[np.newaxis, :])
        primary = result.primary_mask()
        for e, c in zip(ent.tolist(), col.tolist(), strict=True):
            level = result.level_of((e, c))
            entity = series.entities[e]
            name, district = names.get(entity, (entity, None))
            out.append(
                {
                    "id": entity,
                    "name": name,
                    "district_code": district,
                    "time": str(times[c]),
                    "standard": edition,
                    "aqi": int(result.aqi[e, c]),
                    "level": level.number if level else None,
                    "level_zh": level.name_zh if level else None,
                    "level_en": level.name_en if level else None,
                    "colour": level.hex if level else None,
                    "primary": sorted(
                        {k.split("_")[0] for k, m in primary.items() if bool(m[e, c])}
                    ),
                    "iaqi": {
                        k: int(a[e, c]) for k, a in result.iaqi.items() if not np.isnan(a[e, c])
                    },
                    "complete": bool(result.complete[e, c]),
                    "publishable": bool(result.publishable[e, c]),
                }
            )
    out.sort(key=lambda r: (r["id"], r["time"]))
    return out


def report(
    conn: psycopg.Connection,
    *,
    scope: str,
    period: str,
    standard: str,
    start: date,
    end: date,
) -> dict[str, Any]:
    """The AQI report the API and the CLI give."""
    check_request(standard, period, scope, start, end)
    series = fetch_hourly(conn, scope, start, end)
    names = {r[0]: (r[1], r[2]) for r in conn.execute(_NAMES[scope]).fetchall()}
    return {
        "scope": scope,
        "period": period,
        "standard": standard,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": rows(series, period, standard, names),
    }
