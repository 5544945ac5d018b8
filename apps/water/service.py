"""What the water API and CLI ask of the database: station classes and trends, drought grades
and district statistics, permits and their metered use. Each function takes an explicit
psycopg connection and returns plain dicts; the domain core does the judging.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psycopg
import shapely
import shapely.geometry
from affine import Affine

from apps.water import drought, quality, resources
from apps.water.stations import SoilProbe
from gis_core.cache import PerDatabase, dataset_version
from gis_core.errors import Conflict, InvalidInput, InvalidParameter, NotFound
from gis_core.plane import LocalPlane

# China keeps one civil time; days of water-quality data and permit years are local days.
LOCAL = ZoneInfo("Asia/Shanghai")
# Telemetry field of the water_quality kind -> GB 3838 factor key of the domain core.
QUALITY_FIELDS = {"ph": "ph", "do_mgl": "do", "cod_mgl": "cod", "nh3n_mgl": "nh3n"}
EXPECTED_FACTORS = tuple(QUALITY_FIELDS.values())
# The probes' soil: field capacity as the simulated probes have it; saturation of a loam.
# A probe's site may set its own ("field_capacity_pct", "saturation_pct" in its thresholds).
FIELD_CAPACITY_PCT = SoilProbe.FIELD_CAPACITY
SATURATION_PCT = 50.0
PROBE_LAYER_BOTTOM_CM = 20.0  # the probes measure the 0-20 cm layer
CROPLAND_CODES = ("0101", "0102", "0103")  # GB/T 21010 paddy, irrigated, dry land


def _num(field: str) -> str:
    # a reading's number, NULL when the field is absent or not a number
    return (
        f"CASE WHEN jsonb_typeof(t.reading->'{field}') = 'number'"
        f" THEN (t.reading->>'{field}')::float8 END"
    )


def _day_window(day: date | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    if day is None:
        end = now or datetime.now(UTC)
        return end - timedelta(hours=24), end
    start = datetime(day.year, day.month, day.day, tzinfo=LOCAL)
    return start, start + timedelta(days=1)


# --------------------------------------------------------------------------- quality


def _stations(conn: psycopg.Connection, station: str | None = None) -> list[dict[str, Any]]:
    rows = conn.execute(
        """
        SELECT s.id, d.id, s.name_zh, s.district_code, ST_X(s.geom), ST_Y(s.geom),
               coalesce(t.target_class, 3), coalesce(t.waterbody, 'river'), z.name_zh
        FROM iot.monitoring_site s
        JOIN iot.device d ON d.site_id = s.id AND d.kind = 'water_quality'
        LEFT JOIN water.station_target t ON t.site_id = s.id
        LEFT JOIN water.function_zone z ON z.id = t.zone_id
        WHERE s.kind = 'water_quality' AND (%(station)s::text IS NULL
              OR s.id = %(station)s OR d.id = %(station)s)
        ORDER BY s.id
        """,
        {"station": station},
    ).fetchall()
    return [
        {
            "station": r[0],
            "device_id": r[1],
            "name_zh": r[2],
            "district_code": r[3],
            "lon": r[4],
            "lat": r[5],
            "target_class": r[6],
            "waterbody": r[7],
            "zone_zh": r[8],
        }
        for r in rows
    ]


def station(conn: psycopg.Connection, station_id: str) -> dict[str, Any]:
    found = _stations(conn, station_id)
    if not found:
        raise NotFound(f"no water-quality station {station_id!r} (a site or device id)")
    return found[0]


def station_classes(
    conn: psycopg.Connection, day: date | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Each water-quality station's GB 3838-2002 class by the worst single factor, from the
    means of the last 24 hours (or of local day ``day``), with the deciding factor, the
    factors it could not judge and whether it meets its target class."""
    start, end = _day_window(day, now)
    means = {
        r[0]: r[1:]
        for r in conn.execute(
            f"""
            SELECT t.device_id, count(*), {", ".join(f"avg({_num(f)})" for f in QUALITY_FIELDS)}
            FROM iot.telemetry t
            WHERE t.kind = 'water_quality' AND t.ts >= %s AND t.ts < %s
            GROUP BY t.device_id
            """,
            (start, end),
        ).fetchall()
    }
    out = []
    for s in _stations(conn):
        hours, *values = means.get(s["device_id"], (0, *([None] * len(QUALITY_FIELDS))))
        sample = {
            key: (None if v is None else float(v))
            for key, v in zip(QUALITY_FIELDS.values(), values, strict=True)
        }
        judged = quality.classify_sample(sample, s["waterbody"], expected=EXPECTED_FACTORS)
        out.append(
            {
                **s,
                "hours": int(hours),
                "water_class": judged.water_class,
                "label": judged.label,
                "deciding": list(judged.deciding),
                "missing": list(judged.missing),
                "factor_classes": dict(judged.factor_classes),
                "means": {k: (None if v is None else round(v, 4)) for k, v in sample.items()},
                "meets_target": (
                    None if judged.water_class is None else judged.water_class <= s["target_class"]
                ),
            }
        )
    judged_n = [o for o in out if o["meets_target"] is not None]
    return {
        "standard": quality.STANDARD,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "stations": out,
        "compliance_rate": (
            round(sum(o["meets_target"] for o in judged_n) / len(judged_n), 4) if judged_n else None
        ),
    }


def hourly_quality(
    conn: psycopg.Connection, device_ids: list[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """Hourly readings as the domain core's long table: station, ts and the factor keys."""
    rows = conn.execute(
        f"""
        SELECT t.device_id, t.ts, {", ".join(_num(f) for f in QUALITY_FIELDS)}
        FROM iot.telemetry t
        WHERE t.kind = 'water_quality' AND t.device_id = ANY(%s) AND t.ts >= %s AND t.ts < %s
        ORDER BY t.device_id, t.ts
        """,
        (device_ids, start, end),
    ).fetchall()
    frame = pd.DataFrame(rows, columns=["station", "ts", *QUALITY_FIELDS.values()])
    for key in QUALITY_FIELDS.values():
        frame[key] = pd.to_numeric(frame[key], errors="coerce")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def quality_trend(
    conn: psycopg.Connection, station_id: str, days: int = 30, now: datetime | None = None
) -> dict[str, Any]:
    """Daily classes of one station over ``days`` and the Mann–Kendall trend of each
    factor's daily means (a factor with too few days says so instead)."""
    if not 1 <= days <= 366:
        raise InvalidParameter(f"days must be within 1..366, got {days}")
    s = station(conn, station_id)
    end = now or datetime.now(UTC)
    frame = hourly_quality(conn, [s["device_id"]], end - timedelta(days=days), end)
    series: list[dict[str, Any]] = []
    trends: dict[str, Any] = {}
    if len(frame):
        daily = quality.daily_classes(frame, s["waterbody"])
        for row in daily.itertuples(index=False):
            cls = int(row.water_class)
            series.append(
                {
                    "date": pd.Timestamp(row.date).date().isoformat(),
                    "water_class": cls or None,
                    "label": quality.CLASS_LABELS.get(cls),
                    "hours": int(row.hours),
                    "means": {
                        k: (None if pd.isna(getattr(row, k)) else round(float(getattr(row, k)), 4))
                        for k in EXPECTED_FACTORS
                    },
                }
            )
        for key in EXPECTED_FACTORS:
            try:
                trend = quality.concentration_trend(daily[key].to_numpy(dtype=float))
            except quality.WaterQualityError as exc:
                trends[key] = {"trend": None, "reason": str(exc)}
                continue
            trends[key] = {
                "trend": trend.trend,
                "p_value": round(trend.p_value, 6),
                "tau": round(trend.tau, 6),
                "sen_slope_per_day": trend.sen_slope,
                "n": trend.n,
                "test": trend.test,
            }
    else:
        none = {"trend": None, "reason": "no readings in the period"}
        trends = dict.fromkeys(EXPECTED_FACTORS, none)
    return {"station": s, "days": days, "series": series, "trends": trends}


def compliance_window(days: int = 30, year: int | None = None) -> tuple[datetime, datetime]:
    """The period of a compliance question: local year ``year`` up to now, else the last
    ``days`` days."""
    now = datetime.now(UTC)
    if year is None:
        if not 1 <= days <= 366:
            raise InvalidParameter(f"days must be within 1..366, got {days}")
        return now - timedelta(days=days), now
    if not 2000 <= year <= datetime.now(LOCAL).year:
        raise InvalidParameter(f"year must be within 2000..{datetime.now(LOCAL).year}, got {year}")
    return _year_start(year), min(_year_start(year + 1), now)


def quality_compliance(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Days meeting the target class (daily GB 3838 classes) per station and per
    water-function zone between ``start`` and ``end``, and the overall compliance rate."""
    if end <= start:
        raise InvalidParameter("the period must end after it starts")
    stations = _stations(conn)
    frames = []
    for waterbody in sorted({s["waterbody"] for s in stations}):
        mine = [s for s in stations if s["waterbody"] == waterbody]
        hourly = hourly_quality(conn, [s["device_id"] for s in mine], start, end)
        if len(hourly):
            daily = quality.daily_classes(hourly, waterbody)
            frames.append(
                quality.compliance(daily, {s["device_id"]: s["target_class"] for s in mine})
            )
    table = pd.concat(frames).set_index("station") if frames else pd.DataFrame()
    out = []
    for s in stations:
        row = table.loc[s["device_id"]] if s["device_id"] in table.index else None
        judged = 0 if row is None else int(row["days_judged"])
        met = 0 if row is None else int(row["days_met"])
        worst = 0 if row is None or pd.isna(row["worst_class"]) else int(row["worst_class"])
        out.append(
            {
                **s,
                "days_judged": judged,
                "days_met": met,
                "rate": round(met / judged, 4) if judged else None,
                "worst_class": worst or None,
                "worst_label": quality.CLASS_LABELS.get(worst),
            }
        )
    zones: dict[str, dict[str, Any]] = {}
    for o in out:
        if o["zone_zh"] is None:
            continue
        z = zones.setdefault(
            o["zone_zh"],
            {"zone_zh": o["zone_zh"], "target_class": o["target_class"], "stations": 0,
             "days_judged": 0, "days_met": 0},
        )  # fmt: skip
        z["stations"] += 1
        z["days_judged"] += o["days_judged"]
        z["days_met"] += o["days_met"]
    for z in zones.values():
        z["rate"] = round(z["days_met"] / z["days_judged"], 4) if z["days_judged"] else None
    judged = sum(o["days_judged"] for o in out)
    met = sum(o["days_met"] for o in out)
    return {
        "standard": quality.STANDARD,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "stations": out,
        "zones": sorted(zones.values(), key=lambda z: z["zone_zh"]),
        "days_judged": judged,
        "days_met": met,
        "compliance_rate": round(met / judged, 4) if judged else None,
    }


# --------------------------------------------------------------------------- drought


def _metric_geoms(conn: psycopg.Connection) -> dict[str, Any]:
    """Cropland and district polygons on a local metric plane about the city (cached per
    dataset load: the parcels are many and rarely change)."""
    box = conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
        " FROM (SELECT ST_Extent(geom) AS e FROM ref.admin_area WHERE level = 'district') b"
    ).fetchone()
    if box is None or box[0] is None:
        raise InvalidInput("no districts are loaded: load the reference dataset first")
    plane = LocalPlane.about((box[0], box[1], box[2], box[3]))

    def to_plane(wkb: list[bytes]) -> np.ndarray:
        geoms = shapely.from_wkb(wkb)
        return shapely.transform(geoms, lambda xy: np.column_stack(plane.to_xy(xy[:, 0], xy[:, 1])))

    crops = conn.execute(
        "SELECT ST_AsBinary(geom) FROM registry.parcel"
        " WHERE land_use = ANY(%s) AND valid_to IS NULL",
        (list(CROPLAND_CODES),),
    ).fetchall()
    districts = conn.execute(
        "SELECT code, name_zh, ST_AsBinary(geom) FROM ref.admin_area"
        " WHERE level = 'district' ORDER BY code"
    ).fetchall()
    return {
        "plane": plane,
        "cropland": to_plane([r[0] for r in crops]),
        "district_codes": [r[0] for r in districts],
        "district_names": {r[0]: r[1] for r in districts},
        "districts": to_plane([r[2] for r in districts]),
    }


_GEOMS: PerDatabase[dict[str, Any]] = PerDatabase(dataset_version, _metric_geoms)


def drought_grid(
    conn: psycopg.Connection, stage: str = "other", cell_m: float = 1000.0
) -> dict[str, Any]:
    """The probes' relative moisture and grade (their latest readings), what was left out,
    and the interpolated map over cropland (``map`` None when no probe has a usable reading);
    what :func:`drought_status`, the drought grid and the district alarms share."""
    if not 100.0 <= cell_m <= 10_000.0:
        raise InvalidParameter(f"cell_m must be within 100..10000 m, got {cell_m:g}")
    rows = conn.execute(
        """
        SELECT s.id, s.name_zh, s.district_code, ST_X(s.geom), ST_Y(s.geom), st.ts,
               CASE WHEN jsonb_typeof(st.reading->'vwc_pct') = 'number'
                    THEN (st.reading->>'vwc_pct')::float8 END,
               (s.thresholds->>'field_capacity_pct')::float8,
               (s.thresholds->>'saturation_pct')::float8
        FROM iot.monitoring_site s
        JOIN iot.device d ON d.site_id = s.id AND d.kind = 'soil'
        LEFT JOIN iot.device_state st ON st.device_id = d.id
        WHERE s.kind = 'soil' ORDER BY s.id
        """
    ).fetchall()
    geoms = _GEOMS.get(conn)
    vwc = np.array([np.nan if r[6] is None else r[6] for r in rows], dtype=float)
    fc = np.array([r[7] or FIELD_CAPACITY_PCT for r in rows], dtype=float)
    sat = np.array([r[8] or max(SATURATION_PCT, r[7] or 0.0) for r in rows], dtype=float)
    try:
        rel = drought.relative_moisture(
            vwc[:, None], [PROBE_LAYER_BOTTOM_CM], fc[:, None], sat[:, None], stage
        )
    except drought.DroughtError as exc:
        raise InvalidParameter(str(exc)) from None
    percent = rel.percent if len(rows) else np.array([])
    grades = drought.moisture_grade(percent)
    probes, left_out = [], []
    for k, r in enumerate(rows):
        flagged = bool(rel.flagged[k, 0]) if len(rows) else False
        entry = {
            "station": r[0],
            "name_zh": r[1],
            "district_code": r[2],
            "lon": r[3],
            "lat": r[4],
            "ts": r[5].isoformat() if r[5] else None,
            "vwc_pct": r[6],
            "field_capacity_pct": float(fc[k]),
            "relative_pct": None if math.isnan(percent[k]) else round(float(percent[k]), 1),
            "grade": int(grades[k]),
            "grade_zh": drought.GRADE_NAMES[grades[k]] if grades[k] >= 0 else None,
        }
        probes.append(entry)
        if r[6] is None:
            left_out.append({"station": r[0], "reason": "no reading"})
        elif flagged:
            left_out.append(
                {"station": r[0], "reason": f"{r[6]:g}% is below 0 or above saturation {sat[k]:g}%"}
            )
    result: drought.DroughtMap | None = None
    if np.isfinite(percent).any():
        plane = geoms["plane"]
        px, py = plane.to_xy(np.array([r[3] for r in rows]), np.array([r[4] for r in rows]))
        x0, y0, x1, y1 = shapely.total_bounds(geoms["districts"])
        cols, nrows = max(1, math.ceil((x1 - x0) / cell_m)), max(1, math.ceil((y1 - y0) / cell_m))
        transform = Affine(cell_m, 0, x0, 0, -cell_m, y1)
        result = drought.drought_map(
            px,
            py,
            percent,
            transform,
            (nrows, cols),
            list(geoms["cropland"]),
            dict(zip(geoms["district_codes"], geoms["districts"], strict=True)),
        )
    return {
        "stage": rel.stage.value,
        "probes": probes,
        "left_out": left_out,
        "map": result,
        "geoms": geoms,
    }


def _area_rows(areas: pd.DataFrame) -> list[dict[str, Any]]:
    # one row of 抗旱统计: km² per grade, the graded cropland, the drought share, the mean R
    out = []
    for code, row in areas.iterrows():
        graded = float(row["graded_km2"])
        dry = graded - float(row[drought.GRADE_NAMES[0]])
        mean = float(row["mean_percent"])
        grade = int(row["grade"])
        out.append(
            {
                "code": str(code),
                "km2": {g: round(float(row[g]), 2) for g in drought.GRADE_NAMES},
                "cropland_km2": round(graded, 2),
                "drought_km2": round(dry, 2),
                "drought_share": round(dry / graded, 4) if graded else None,
                "mean_relative_pct": None if math.isnan(mean) else round(mean, 1),
                "grade": grade,
                "grade_zh": drought.GRADE_NAMES[grade] if grade >= 0 else None,
            }
        )
    return out


def _town_areas(conn: psycopg.Connection, grid: dict[str, Any]) -> list[dict[str, Any]]:
    """抗旱统计 by town: each graded cell goes to the nearest town seat of its district."""
    result: drought.DroughtMap = grid["map"]
    geoms = grid["geoms"]
    towns = conn.execute(
        "SELECT id, name_zh, district_code, ST_X(geom), ST_Y(geom) FROM ref.town"
        " WHERE district_code = ANY(%s) ORDER BY id",
        (geoms["district_codes"],),
    ).fetchall()
    if not towns:
        return []
    index = {code: i for i, code in enumerate(geoms["district_codes"])}
    tx, ty = geoms["plane"].to_xy(np.array([t[3] for t in towns]), np.array([t[4] for t in towns]))
    cx, cy = result.cell_centres()
    graded = result.grade >= 0
    town_of = np.full(result.grade.shape, -1, dtype=np.int64)
    town_of[graded] = drought.nearest_in_zone(
        cx[graded],
        cy[graded],
        result.district[graded],
        tx,
        ty,
        np.array([index[t[2]] for t in towns]),
    )
    t = result.transform
    areas = drought.zone_areas(
        town_of, [str(t[0]) for t in towns], result.grade, result.moisture, abs(t.a * t.e)
    )
    rows = _area_rows(areas)
    for row, town in zip(rows, towns, strict=True):
        row.update(town_id=town[0], name_zh=town[1], district_code=town[2])
        del row["code"]
    return rows


def drought_status(
    conn: psycopg.Connection, stage: str = "other", cell_m: float = 1000.0
) -> dict[str, Any]:
    """Relative soil moisture and GB/T 32136 grade at each probe (its latest reading), the
    interpolated grade over cropland, and 抗旱统计: km² per grade, the drought share and the
    grade of the mean relative moisture, per district and per town."""
    grid = drought_grid(conn, stage, cell_m)
    districts: list[dict[str, Any]] = []
    towns: list[dict[str, Any]] = []
    if grid["map"] is not None:
        names = grid["geoms"]["district_names"]
        for row in _area_rows(grid["map"].areas):
            code = row.pop("code")
            districts.append({"district_code": code, "name_zh": names.get(code), **row})
        towns = _town_areas(conn, grid)
    return {
        "standard": drought.AGRICULTURAL_STANDARD,
        "stage": grid["stage"],
        "cell_m": cell_m,
        "probes": grid["probes"],
        "left_out": grid["left_out"],
        "districts": districts,
        "towns": towns,
    }


def drought_geojson(
    conn: psycopg.Connection, stage: str = "other", cell_m: float = 1000.0
) -> dict[str, Any]:
    """The drought map as GeoJSON (WGS 84): the graded cropland cells merged into one polygon
    per connected patch of equal grade (``grade``, ``grade_zh``, ``km2``)."""
    from rasterio import features

    grid = drought_grid(conn, stage, cell_m)
    result: drought.DroughtMap | None = grid["map"]
    out: list[dict[str, Any]] = []
    if result is not None:
        plane = grid["geoms"]["plane"]
        grade = result.grade.astype(np.int16)
        for patch, value in features.shapes(grade, mask=grade >= 0, transform=result.transform):
            polygon = shapely.geometry.shape(patch)
            km2 = polygon.area / 1e6
            lonlat = shapely.transform(
                polygon, lambda xy: np.column_stack(plane.to_lonlat(xy[:, 0], xy[:, 1]))
            )
            g = int(value)
            out.append(
                {
                    "type": "Feature",
                    "geometry": shapely.geometry.mapping(lonlat),
                    "properties": {
                        "grade": g,
                        "grade_zh": drought.GRADE_NAMES[g],
                        "km2": round(km2, 3),
                    },
                }
            )
    return {
        "type": "FeatureCollection",
        "standard": drought.AGRICULTURAL_STANDARD,
        "stage": grid["stage"],
        "cell_m": cell_m,
        "features": out,
        "left_out": grid["left_out"],
    }


# --------------------------------------------------------------------------- permits


def _year_start(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=LOCAL)


def _permit_rows(conn: psycopg.Connection, permit_id: str | None, year: int) -> list[Any]:
    return conn.execute(
        """
        SELECT p.id, p.holder_uscc, p.holder_name, p.source_type, p.source_site_id, p.sector,
               p.annual_quota_m3, p.season_months, p.valid_from, p.valid_until,
               p.district_code, ST_X(p.geom), ST_Y(p.geom),
               m.device_id, m.year_start_m3, m.year, st.ts,
               CASE WHEN jsonb_typeof(st.reading->'volume_m3') = 'number'
                    THEN (st.reading->>'volume_m3')::float8 END
        FROM water.permit p
        LEFT JOIN water.meter m ON m.permit_id = p.id AND m.year = %(year)s
        LEFT JOIN iot.device_state st ON st.device_id = m.device_id
        WHERE %(id)s::text IS NULL OR p.id = %(id)s
        ORDER BY p.id
        """,
        {"id": permit_id, "year": year},
    ).fetchall()


def _judge(
    row: Any, used: float | None, fault: str | None, tariff: resources.Tariff
) -> dict[str, Any]:
    permit = {
        "permit_id": row[0],
        "holder_uscc": row[1],
        "holder_name": row[2],
        "source_type": row[3],
        "source_site_id": row[4],
        "sector": row[5],
        "annual_quota_m3": row[6],
        "season_months": list(row[7]),
        "valid_from": row[8].isoformat(),
        "valid_until": row[9].isoformat(),
        "district_code": row[10],
        "lon": row[11],
        "lat": row[12],
        "meter_id": row[13],
        "used_m3": None,
        "ratio": None,
        "state": "no_reading",
        "fee_yuan": None,
        "fault": fault,
    }
    if fault is not None:
        permit["state"] = "meter_fault"
    elif used is not None:
        status = resources.quota_status(_permit(row), used)
        permit.update(
            used_m3=round(used, 1),
            ratio=round(status.ratio, 4),
            state=status.state.value,
            fee_yuan=resources.water_fee(used, row[6], tariff),
        )
    return permit


def _permit(row: Any) -> resources.Permit:
    return resources.Permit(
        row[0], row[1], row[4], float(row[6]), frozenset(row[7]), row[8], row[9]
    )


def _tariff(base_rate: float | None) -> resources.Tariff:
    try:
        return resources.Tariff() if base_rate is None else resources.Tariff(base_rate)
    except resources.WaterResourcesError as exc:
        raise InvalidParameter(str(exc)) from None


def permits(
    conn: psycopg.Connection, year: int | None = None, base_rate: float | None = None
) -> dict[str, Any]:
    """Every permit with this year's metered use (latest reading less the year's opening
    reading), its state against the quota and the fee by the tariff."""
    year = year or datetime.now(LOCAL).year
    tariff = _tariff(base_rate)
    out = []
    for row in _permit_rows(conn, None, year):
        used: float | None = None
        fault = None
        if row[17] is not None and row[16] is not None and row[16] >= _year_start(year):
            used = row[17] - row[14]
            if used < 0:
                fault = (
                    f"meter {row[13]} reads {row[17]:g} m³, below the year's opening "
                    f"reading {row[14]:g} m³: it ran backwards or was replaced"
                )
        out.append(_judge(row, used, fault, tariff))
    states = pd.Series([p["state"] for p in out], dtype=object).value_counts().to_dict()
    return {
        "year": year,
        "tariff": {
            "base_rate_yuan_m3": tariff.base_rate_yuan_m3,
            "over_quota_tiers": [[b, m] for b, m in tariff.over_quota_tiers],
        },
        "permits": out,
        "states": {str(k): int(v) for k, v in states.items()},
    }


def permit_use(
    conn: psycopg.Connection,
    permit_id: str,
    year: int | None = None,
    base_rate: float | None = None,
) -> dict[str, Any]:
    """One permit's metered use this year, day by day from the meter's telemetry; a meter
    that ran backwards is reported (``fault``), not summed."""
    year = year or datetime.now(LOCAL).year
    rows = _permit_rows(conn, permit_id, year)
    if not rows:
        raise NotFound(f"no water-use permit {permit_id!r}")
    row = rows[0]
    tariff = _tariff(base_rate)
    if row[13] is None:
        return {
            **_judge(row, None, None, tariff),
            "year": year,
            "before_readings_m3": None,
            "daily": [],
        }
    readings = conn.execute(
        f"""
        SELECT t.ts, {_num("volume_m3")} FROM iot.telemetry t
        WHERE t.device_id = %s AND t.ts >= %s AND t.ts < %s ORDER BY t.ts
        """,
        (row[13], _year_start(year), _year_start(year + 1)),
    ).fetchall()
    readings = [(ts, v) for ts, v in readings if v is not None]
    times = [_year_start(year), *(ts for ts, _ in readings)]
    volumes = [float(row[14]), *(v for _, v in readings)]
    fault = None
    used = None
    before_readings = None
    daily: list[dict[str, Any]] = []
    try:
        steps = resources.metered_use(times, volumes, meter_id=row[13])
    except resources.WaterResourcesError as exc:
        fault = str(exc)
    else:
        if readings:
            used = float(steps.sum())
            # The first step runs from the opening reading to the first telemetry: not a day's.
            before_readings = float(steps[0])
            frame = pd.DataFrame(
                {
                    "ts": pd.to_datetime(times[2:], utc=True),
                    "used": steps[1:],
                    "volume": volumes[2:],
                }
            )
            frame["date"] = frame["ts"].dt.tz_convert(LOCAL).dt.date
            by_day = frame.groupby("date").agg(used=("used", "sum"), volume=("volume", "last"))
            daily = [
                {"date": str(d), "used_m3": round(float(r.used), 1), "volume_m3": float(r.volume)}
                for d, r in by_day.iterrows()
            ]
    return {
        **_judge(row, used, fault, tariff),
        "year": year,
        "before_readings_m3": None if before_readings is None else round(before_readings, 1),
        "daily": daily,
    }


def register_permit(conn: psycopg.Connection, permit: dict[str, Any]) -> dict[str, Any]:
    """Register a water-use permit; refuse a malformed one (InvalidInput) or one overlapping a
    permit the holder already has on the same source (Conflict). The caller commits."""
    try:
        source = resources.SourceType(permit["source_type"]).value
        sector = resources.Sector(permit["sector"]).value
        new = resources.Permit(
            permit["permit_id"],
            permit["holder_uscc"],
            permit["source_site_id"],
            float(permit["annual_quota_m3"]),
            frozenset(permit["season_months"]),
            permit["valid_from"],
            permit["valid_until"],
        )
    except ValueError as exc:  # WaterResourcesError, or an unknown source type or sector
        raise InvalidInput(str(exc)) from None
    site = conn.execute(
        "SELECT ST_X(geom), ST_Y(geom), district_code FROM iot.monitoring_site WHERE id = %s",
        (new.source_id,),
    ).fetchone()
    if site is None:
        raise InvalidInput(f"source site {new.source_id!r} is not a registered monitoring site")
    register = resources.PermitRegister()
    for row in conn.execute(
        "SELECT id, holder_uscc, source_site_id, annual_quota_m3, season_months, valid_from,"
        " valid_until FROM water.permit WHERE holder_uscc = %s AND source_site_id = %s"
        " FOR UPDATE",
        (new.holder_uscc, new.source_id),
    ).fetchall():
        register.permits[row[0]] = resources.Permit(
            row[0], row[1], row[2], float(row[3]), frozenset(row[4]), row[5], row[6]
        )
    try:
        register.add(new)
    except resources.WaterResourcesError as exc:
        raise Conflict(str(exc)) from None
    conn.execute(
        """
        INSERT INTO water.permit (id, holder_uscc, holder_name, source_type, source_site_id,
            sector, annual_quota_m3, season_months, valid_from, valid_until, district_code, geom)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                ST_SetSRID(ST_MakePoint(%s, %s), 4326))
        """,
        (
            new.permit_id,
            new.holder_uscc,
            permit["holder_name"],
            source,
            new.source_id,
            sector,
            new.annual_quota_m3,
            sorted(new.season_months),
            new.valid_from,
            new.valid_until,
            site[2],
            site[0],
            site[1],
        ),
    )
    return permit_use(conn, new.permit_id)


def water_balance(conn: psycopg.Connection, year: int | None = None) -> dict[str, Any]:
    """The year's water balance per district from the meters: supply by source type and use
    by sector (each permit's metered use counts under its source and its sector), with the
    permitted quotas beside them.

    A permit's use is its meter's last reading within the year (telemetry, else the latest
    state if it falls in the year) less the year's opening reading. Permits without a meter
    or a reading that year, or whose meter reads below the opening, are left out and listed.
    The supply/use difference (conveyance losses, unmetered use) is zero by construction when
    both sides come from the same meters: it shows only once other sources are recorded.
    """
    this_year = datetime.now(LOCAL).year
    year = year or this_year
    if not 2000 <= year <= this_year:
        raise InvalidParameter(f"year must be within 2000..{this_year}, got {year}")
    start, end = _year_start(year), _year_start(year + 1)
    rows = conn.execute(
        """
        SELECT p.id, p.holder_name, p.source_type, p.sector, p.district_code,
               p.annual_quota_m3, m.device_id, m.year_start_m3,
               coalesce(
                   (SELECT (t.reading->>'volume_m3')::float8 FROM iot.telemetry t
                    WHERE t.device_id = m.device_id AND t.kind = 'water_meter'
                      AND t.ts >= %(start)s AND t.ts < %(end)s
                      AND jsonb_typeof(t.reading->'volume_m3') = 'number'
                    ORDER BY t.ts DESC LIMIT 1),
                   CASE WHEN st.ts >= %(start)s AND st.ts < %(end)s
                         AND jsonb_typeof(st.reading->'volume_m3') = 'number'
                        THEN (st.reading->>'volume_m3')::float8 END)
        FROM water.permit p
        LEFT JOIN water.meter m ON m.permit_id = p.id AND m.year = %(year)s
        LEFT JOIN iot.device_state st ON st.device_id = m.device_id
        WHERE p.valid_from < %(end)s::date AND p.valid_until >= %(start)s::date
        ORDER BY p.id
        """,
        {"start": start, "end": end, "year": year},
    ).fetchall()
    supply, use, left_out, metered = [], [], [], []
    quotas: dict[str, float] = {}
    for pid, holder, source, sector, district, quota, meter, opening, latest in rows:
        code = district or "unknown"
        quotas[code] = quotas.get(code, 0.0) + float(quota)
        if meter is None or latest is None:
            left_out.append({"permit_id": pid, "holder_name": holder, "reason": "no reading"})
            continue
        volume = float(latest) - float(opening)
        if volume < 0:
            left_out.append(
                {
                    "permit_id": pid,
                    "holder_name": holder,
                    "reason": f"meter {meter} reads below its opening reading",
                }
            )
            continue
        supply.append(resources.SupplyRecord(code, source, volume))
        use.append(resources.UseRecord(code, sector, volume))
        metered.append(
            {
                "permit_id": pid,
                "holder_name": holder,
                "district_code": code,
                "source_type": source,
                "sector": sector,
                "annual_quota_m3": float(quota),
                "used_m3": round(volume, 1),
                "ratio": round(volume / float(quota), 4),
            }
        )
    table = resources.water_balance(supply, use)
    table = table.reindex(sorted(set(table.index) | set(quotas)), fill_value=0.0)
    names: dict[str, str] = dict(
        conn.execute("SELECT code, name_zh FROM ref.admin_area WHERE level = 'district'").fetchall()
    )
    districts = []
    for code, row in table.iterrows():
        quota = quotas.get(str(code), 0.0)
        districts.append(
            {
                "district_code": str(code),
                "name_zh": names.get(code),
                "supply_m3": {s.value: round(float(row[f"supply_{s}_m3"]), 1)
                              for s in resources.SourceType},
                "use_m3": {s.value: round(float(row[f"use_{s}_m3"]), 1) for s in resources.Sector},
                "supply_total_m3": round(float(row["supply_total_m3"]), 1),
                "use_total_m3": round(float(row["use_total_m3"]), 1),
                "difference_m3": round(float(row["difference_m3"]), 1),
                "permitted_m3": round(quota, 1),
            }
        )  # fmt: skip
    totals = table.sum()
    return {
        "year": year,
        "districts": districts,
        "total": {
            "supply_m3": {s.value: round(float(totals[f"supply_{s}_m3"]), 1)
                          for s in resources.SourceType},
            "use_m3": {s.value: round(float(totals[f"use_{s}_m3"]), 1) for s in resources.Sector},
            "supply_total_m3": round(float(totals["supply_total_m3"]), 1),
            "use_total_m3": round(float(totals["use_total_m3"]), 1),
            "permitted_m3": round(sum(quotas.values()), 1),
        },
        "permits": metered,
        "left_out": left_out,
    }  # fmt: skip
