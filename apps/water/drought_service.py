"""Drought on the platform database beyond today's grades: SPI from the rain gauges, the
7-day soil-moisture outlook driven by the weather stations, and the district grade alarms.

The rain gauges (kind ``rain``) and weather stations (kind ``weather``) belong to other
applications (flood, environment); this module reads their telemetry by kind name only, so the
water application installs and runs without them (it then says what it lacks).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from apps.water import drought
from apps.water.service import LOCAL, PROBE_LAYER_BOTTOM_CM, drought_grid
from gis_core.errors import InvalidInput, InvalidParameter
from realtime import rules

SPI_SCALES = (1, 3, 6)
SPI_MIN_MONTHS = 24  # what the domain core accepts; WMO asks for 30 years of record
OUTLOOK_WEATHER_DAYS = 7  # days of observed temperature the persistence forecast averages
DISTRICT_RULE = "soil.district_drought_{grade}"  # one rule per grade: entering each is news
DISTRICT_SEVERITY = {1: 1, 2: 2, 3: 3, 4: 3}


def _month_start(d: date) -> date:
    return date(d.year, d.month, 1)


def _last_complete_month(now: datetime | None = None) -> date:
    today = (now or datetime.now(UTC)).astimezone(LOCAL).date()
    return _month_start(_month_start(today) - timedelta(days=1))


def rain_gauges(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        """
        SELECT d.id, s.name_zh, s.district_code, ST_X(s.geom), ST_Y(s.geom)
        FROM iot.device d JOIN iot.monitoring_site s ON s.id = d.site_id
        WHERE d.kind = 'rain' ORDER BY d.id
        """
    ).fetchall()
    return [
        {"gauge": r[0], "name_zh": r[1], "district_code": r[2], "lon": r[3], "lat": r[4]}
        for r in rows
    ]


def monthly_rain(conn: psycopg.Connection, until: date) -> dict[str, dict[date, float]]:
    """Monthly totals (mm) per gauge up to and including month ``until``: the station record
    (``water.rain_month``) where it has the month, else the sum of the gauge's telemetry."""
    end = datetime(until.year, until.month, 1, tzinfo=LOCAL) + pd.offsets.MonthBegin(1)
    totals: dict[str, dict[date, float]] = {}
    for gauge, month, mm in conn.execute(
        """
        SELECT t.device_id, date_trunc('month', t.ts AT TIME ZONE 'Asia/Shanghai')::date,
               sum((t.reading->>'mm')::float8)
        FROM iot.telemetry t
        WHERE t.kind = 'rain' AND t.ts < %s AND jsonb_typeof(t.reading->'mm') = 'number'
        GROUP BY 1, 2
        """,
        (end.to_pydatetime(),),
    ).fetchall():
        totals.setdefault(gauge, {})[month] = float(mm)
    for gauge, month, mm in conn.execute(
        "SELECT gauge_id, month, mm FROM water.rain_month WHERE month <= %s", (until,)
    ).fetchall():
        totals.setdefault(gauge, {})[month] = float(mm)  # the record wins over telemetry
    return totals


def spi_status(
    conn: psycopg.Connection, scale: int = 3, month: date | None = None
) -> dict[str, Any]:
    """SPI of ``scale`` months ending with ``month`` (default: the last complete month) at
    every rain gauge, its GB/T 20481 grade, and per district the mean of its gauges' SPI.

    A gauge whose record is shorter than 24 months, or lacks the month itself, is listed in
    ``left_out`` with the reason, never given a value.
    """
    if scale not in SPI_SCALES:
        raise InvalidParameter(f"scale must be one of {', '.join(map(str, SPI_SCALES))}")
    last = _last_complete_month()
    month = _month_start(month) if month else last
    if month > last:
        raise InvalidParameter(f"month {month:%Y-%m} is not complete yet (last: {last:%Y-%m})")
    gauges = rain_gauges(conn)
    totals = monthly_rain(conn, month)
    out, left_out = [], []
    for g in gauges:
        record = totals.get(g["gauge"], {})
        if not record:
            left_out.append({"gauge": g["gauge"], "reason": "no monthly totals"})
            continue
        if month not in record:
            left_out.append({"gauge": g["gauge"], "reason": f"no total for {month:%Y-%m}"})
            continue
        first = min(record)
        index = pd.date_range(date(first.year, 1, 1), month, freq="MS")
        series = pd.Series(record, dtype=float)
        series.index = pd.DatetimeIndex(series.index)
        series = series.reindex(index)
        months = int(series.notna().sum())
        if months < SPI_MIN_MONTHS:
            left_out.append(
                {
                    "gauge": g["gauge"],
                    "reason": f"{months} months of record, SPI needs {SPI_MIN_MONTHS}",
                }
            )
            continue
        values = series.to_numpy()
        try:
            index_values = drought.spi(values, scale, first.year)
        except drought.DroughtError as exc:
            left_out.append({"gauge": g["gauge"], "reason": str(exc)})
            continue
        value = float(index_values[-1])
        if math.isnan(value):
            left_out.append(
                {"gauge": g["gauge"], "reason": f"SPI-{scale} undefined (months missing)"}
            )
            continue
        grade = int(drought.spi_grade(value))
        out.append(
            {
                **g,
                "months_of_record": months,
                "first_month": first.isoformat(),
                "precip_mm": round(float(series.iloc[-scale:].sum()), 1),
                "spi": round(value, 3),
                "grade": grade,
                "grade_zh": drought.GRADE_NAMES[grade],
            }
        )
    districts = []
    if out:
        frame = pd.DataFrame(out)
        for code, group in frame.groupby("district_code", dropna=True):
            mean = float(group["spi"].mean())
            grade = int(drought.spi_grade(mean))
            districts.append(
                {
                    "district_code": str(code),
                    "gauges": len(group),
                    "spi": round(mean, 3),
                    "grade": grade,
                    "grade_zh": drought.GRADE_NAMES[grade],
                }
            )
    return {
        "standard": drought.METEOROLOGICAL_STANDARD,
        "scale_months": scale,
        "month": f"{month:%Y-%m}",
        "gauges": out,
        "left_out": left_out,
        "districts": districts,
    }


def observed_temperature(
    conn: psycopg.Connection, now: datetime | None = None, days: int = OUTLOOK_WEATHER_DAYS
) -> pd.DataFrame:
    """Daily minimum and maximum air temperature over the last ``days`` local days, the mean
    over the weather stations that reported (kind ``weather``, field ``temp_c``)."""
    end = now or datetime.now(UTC)
    rows = conn.execute(
        """
        SELECT (t.ts AT TIME ZONE 'Asia/Shanghai')::date, t.device_id,
               min((t.reading->>'temp_c')::float8), max((t.reading->>'temp_c')::float8)
        FROM iot.telemetry t
        WHERE t.kind = 'weather' AND t.ts >= %s AND t.ts < %s
          AND jsonb_typeof(t.reading->'temp_c') = 'number'
        GROUP BY 1, 2
        """,
        (end - timedelta(days=days), end),
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["date", "station", "tmin", "tmax"])
    return frame.groupby("date")[["tmin", "tmax"]].mean().sort_index()


def drought_outlook(
    conn: psycopg.Connection,
    days: int = 7,
    rain_mm: list[float] | None = None,
    stage: str = "other",
    tmin_c: float | None = None,
    tmax_c: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The next ``days`` of relative moisture and grade at each probe and district, from the
    probes' latest readings and a soil water balance (:func:`drought.outlook`).

    The weather ahead: rain as given (default none, the dry case), temperature as given or
    else persistence, the mean daily minimum and maximum the weather stations measured over
    the last seven days.
    """
    if not 1 <= days <= 14:
        raise InvalidParameter(f"days must be within 1..14, got {days}")
    rain = [0.0] * days if rain_mm is None else list(rain_mm)
    if len(rain) != days:
        raise InvalidParameter(f"rain_mm has {len(rain)} values for {days} days")
    if any(not math.isfinite(r) or r < 0 for r in rain):
        raise InvalidParameter("rain_mm must be finite and not negative")
    start = now or datetime.now(UTC)
    basis = "given"
    if tmin_c is None or tmax_c is None:
        observed = observed_temperature(conn, start)
        if observed.empty:
            raise InvalidInput(
                "no weather station reported temp_c in the last 7 days: give tmin_c and tmax_c"
            )
        tmin_c = float(observed["tmin"].mean()) if tmin_c is None else tmin_c
        tmax_c = float(observed["tmax"].mean()) if tmax_c is None else tmax_c
        basis = f"persistence: mean of {len(observed)} observed days"
    if tmax_c < tmin_c:
        raise InvalidParameter(f"tmax_c {tmax_c:g} is below tmin_c {tmin_c:g}")
    grid = drought_grid(conn, stage)
    rule = drought._stage_rule(grid["stage"], drought.DEFAULT_STAGE_RULES)
    probes = [p for p in grid["probes"] if p["relative_pct"] is not None]
    first = start.astimezone(LOCAL).date() + timedelta(days=1)
    dates = [(first + timedelta(days=k)).isoformat() for k in range(days)]
    out_probes: list[dict[str, Any]] = []
    districts: list[dict[str, Any]] = []
    if probes:
        today = np.array([p["relative_pct"] for p in probes]) / rule.coefficient
        fc = np.array([p["field_capacity_pct"] for p in probes]) / 100.0
        try:
            result = drought.outlook(
                today,
                fc,
                PROBE_LAYER_BOTTOM_CM * 10.0,
                rain,
                [tmin_c] * days,
                [tmax_c] * days,
                float(np.mean([p["lat"] for p in probes])),
                first.timetuple().tm_yday,
                stage_coefficient=rule.coefficient,
            )
        except drought.DroughtError as exc:
            raise InvalidParameter(str(exc)) from None
        percent = result.percent * rule.coefficient
        for k, p in enumerate(probes):
            out_probes.append(
                {
                    "station": p["station"],
                    "district_code": p["district_code"],
                    "today_pct": p["relative_pct"],
                    "today_grade": p["grade"],
                    "relative_pct": [round(float(v), 1) for v in percent[k]],
                    "grade": [int(v) for v in result.grade[k]],
                    "worsening": bool(result.worsening[k]),
                }
            )
        frame = pd.DataFrame(percent, columns=dates)
        frame["today"] = [p["relative_pct"] for p in probes]
        frame["district"] = [p["district_code"] for p in probes]
        for code, group in frame.groupby("district", dropna=True):
            now_mean = float(group["today"].mean())
            daily = group[dates].mean().to_numpy()
            grades = drought.moisture_grade(daily)
            now_grade = int(drought.moisture_grade(now_mean))
            worse = np.flatnonzero(grades > now_grade)
            districts.append(
                {
                    "district_code": str(code),
                    "probes": len(group),
                    "today_pct": round(now_mean, 1),
                    "today_grade": now_grade,
                    "relative_pct": [round(float(v), 1) for v in daily],
                    "grade": [int(g) for g in grades],
                    "enters": (
                        None
                        if worse.size == 0
                        else {
                            "date": dates[worse[0]],
                            "grade": int(grades[worse[0]]),
                            "grade_zh": drought.GRADE_NAMES[grades[worse[0]]],
                        }
                    ),
                }
            )
    return {
        "standard": drought.AGRICULTURAL_STANDARD,
        "stage": grid["stage"],
        "dates": dates,
        "weather": {
            "rain_mm": rain,
            "tmin_c": round(tmin_c, 2),
            "tmax_c": round(tmax_c, 2),
            "temperature": basis,
        },
        "probes": out_probes,
        "left_out": grid["left_out"],
        "districts": districts,
    }


def district_conditions(conn: psycopg.Connection) -> tuple[list[rules.Condition], dict[str, Any]]:
    """Each district's grade now (of the mean relative moisture over its cropland) as one
    condition per grade 轻旱..特旱, active while the district is at that grade or drier: a
    district entering 中旱 raises the 中旱 alarm, one going back clears it."""
    grid = drought_grid(conn)
    result: drought.DroughtMap | None = grid["map"]
    if result is None:
        return [], {}
    where = {
        r[0]: (r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT code, name_zh, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))"
            " FROM ref.admin_area WHERE level = 'district'"
        ).fetchall()
    }
    out, state = [], {}
    for code, row in result.areas.iterrows():
        grade = int(row["grade"])
        if grade < 0:
            continue  # no graded cropland: no verdict
        name, lon, lat = where.get(str(code), (str(code), None, None))
        mean = float(row["mean_percent"])
        state[str(code)] = {"name_zh": name, "grade": grade, "mean_relative_pct": round(mean, 1)}
        for g in range(1, len(drought.GRADE_NAMES)):
            zh = drought.GRADE_NAMES[g]
            out.append(
                rules.Condition(
                    "soil",
                    DISTRICT_RULE.format(grade=g),
                    str(code),
                    grade >= g,
                    DISTRICT_SEVERITY[g],
                    round(mean, 1),
                    float(drought._MOISTURE_BOUNDS[::-1][g - 1]),
                    f"{name} 农业干旱达{zh}（耕地平均相对湿度 {mean:.0f}%）",
                    f"{name} agricultural drought reached grade {g} ({zh}), mean relative"
                    f" moisture {mean:.0f}%",
                    lon,
                    lat,
                )
            )
    return out, state


def check_districts(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Record the district drought alarms (the caller commits); return the alarm events and
    the live events ``{"type": "drought", ...}`` worth announcing."""
    conditions, state = district_conditions(conn)
    announced = rules.apply(conn, conditions)
    events = [
        {
            "type": "drought",
            "event": a["event"],
            "rule": a["rule"],
            "district_code": a["device_id"],
            **state[a["device_id"]],
            "grade_zh": drought.GRADE_NAMES[state[a["device_id"]]["grade"]],
            "lon": a["lon"],
            "lat": a["lat"],
        }
        for a in announced
    ]
    return announced, events


def import_rain_record(
    conn: psycopg.Connection, rows: list[dict[str, str]], source: str
) -> dict[str, Any]:
    """Store monthly totals of rain gauges (``gauge``, ``month`` as YYYY-MM, ``mm``), all or
    nothing: any bad row refuses the whole file, naming the first few. A month already
    recorded is replaced. The caller commits."""
    gauges = {g["gauge"] for g in rain_gauges(conn)}
    good: list[tuple[str, date, float]] = []
    bad: list[str] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        gauge = (row.get("gauge") or "").strip()
        try:
            month = date.fromisoformat(f"{(row.get('month') or '').strip()}-01")
            mm = float(row.get("mm") or "nan")
        except ValueError:
            bad.append(f"line {line}: month must be YYYY-MM and mm a number")
            continue
        if gauge not in gauges:
            bad.append(f"line {line}: {gauge!r} is not a rain gauge")
        elif not math.isfinite(mm) or mm < 0:
            bad.append(f"line {line}: mm {row.get('mm')!r} must be a number, not negative")
        else:
            good.append((gauge, month, mm))
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise InvalidInput("; ".join(bad[:3]) + more)
    if not good:
        raise InvalidInput("no rows: the file needs the columns gauge, month, mm")
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO water.rain_month (gauge_id, month, mm, source) VALUES (%s, %s, %s, %s)
            ON CONFLICT (gauge_id, month) DO UPDATE SET mm = excluded.mm, source = excluded.source
            """,
            [(g, m, mm, source) for g, m, mm in good],
        )
    return {"months": len(good), "gauges": len({g for g, _, _ in good})}
