"""The water application's reference data: function zones on the rivers, station targets,
and water-use permits of the city's enterprises with their wells and meters.

Runs in the reference load's transaction after the core's tables are in (rivers, enterprises,
pollution sources, water-quality sites); reproducible from ``context.seed`` (the permit
dates follow the current year, so that the meters count this year's use).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from apps.water import WATER_METER, WELL
from apps.water.dem import elevation_at
from apps.water.resources import (
    Permit,
    PermitRegister,
    Sector,
    SourceType,
    WaterResourcesError,
    validate_uscc,
)
from gis_core.application import SynthContext
from gis_core.plane import degrees_for

# Target classes drawn for function zones, by what the zone is used for (the usual pairs of
# the water-function zoning: drinking water II, fishery/landscape III, industry IV, farms V).
ZONE_USES = (("饮用水源区", 2), ("渔业用水区", 3), ("景观娱乐用水区", 3), ("工业用水区", 4),
             ("农业用水区", 5))  # fmt: skip
ZONE_WEIGHTS = (0.15, 0.35, 0.15, 0.2, 0.15)
STATION_ZONE_M = 2000.0  # a station takes the target of a zone within this distance
DEFAULT_TARGET = 3  # else class III, the usual target of a river section
PERMITS_AT_FULL_SCALE = 120
GROUNDWATER_SHARE = 0.65


# The rain gauges' station record: a temperate monsoon climate's monthly means (mm, Jan..Dec;
# about 550 mm a year, most of it in summer), monthly totals gamma-distributed about them with
# a city-wide anomaly the gauges share. Synthetic, for SPI to have a record to stand on; a real
# deployment imports the meteorological bureau's (`changzhi water rain-record FILE.csv`).
RECORD_YEARS = 30
MONTHLY_MEAN_MM = np.array([4, 7, 15, 28, 45, 68, 130, 120, 62, 30, 12, 4], dtype=float)
MONTHLY_SHAPE = 1.6  # gamma shape: a coefficient of variation near 0.8, usual for months
RECORD_SOURCE = "synthetic record (reference dataset)"


def _rain_record(conn: psycopg.Connection, rng: np.random.Generator) -> int:
    """Monthly totals per rain gauge from January thirty years back to last month."""
    gauges = [r[0] for r in conn.execute("SELECT id FROM iot.device WHERE kind = 'rain'")]
    if not gauges:
        return 0
    today = date.today()
    months = [
        m.date()
        for m in pd.date_range(date(today.year - RECORD_YEARS, 1, 1), today, freq="MS")[:-1]
    ]
    mean = MONTHLY_MEAN_MM[[m.month - 1 for m in months]]
    common = rng.gamma(MONTHLY_SHAPE, 1.0 / MONTHLY_SHAPE, len(months))  # mean 1
    local = rng.gamma(8.0, 1.0 / 8.0, (len(gauges), len(months)))  # the gauge's own scatter
    totals = np.round(mean * common * local, 1)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO water.rain_month (gauge_id, month, mm, source) VALUES (%s, %s, %s, %s)",
            [
                (g, m, float(totals[i, k]), RECORD_SOURCE)
                for i, g in enumerate(sorted(gauges))
                for k, m in enumerate(months)
            ],
        )
    return totals.size


def _delete_previous(conn: psycopg.Connection) -> None:
    kinds = [WELL.name, WATER_METER.name]
    for sql in (
        "DELETE FROM water.quota_notice",
        "DELETE FROM water.rain_month",
        "DELETE FROM water.meter",
        "DELETE FROM water.permit",
        "DELETE FROM water.well",
        "DELETE FROM water.station_target",
        "DELETE FROM water.function_zone",
    ):
        conn.execute(sql)
    conn.execute(
        "DELETE FROM iot.device_state WHERE device_id IN"
        " (SELECT id FROM iot.device WHERE kind = ANY(%s))",
        (kinds,),
    )
    conn.execute("DELETE FROM iot.device WHERE kind = ANY(%s)", (kinds,))
    conn.execute("DELETE FROM iot.monitoring_site WHERE kind = ANY(%s)", (kinds,))


def _zones(conn: psycopg.Connection, rng: np.random.Generator) -> int:
    rivers = conn.execute(
        "SELECT id, coalesce(name_zh, '河流') FROM ref.river WHERE geom IS NOT NULL ORDER BY id"
    ).fetchall()
    rows = []
    for river_id, name in rivers:
        use, target = ZONE_USES[int(rng.choice(len(ZONE_USES), p=ZONE_WEIGHTS))]
        rows.append((f"WFZ-{river_id:05d}", f"{name}{use}", use, target, river_id))
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO water.function_zone
                (code, name_zh, use_zh, target_class, waterbody, river_id, geom)
            SELECT %s, %s, %s, %s, 'river', r.id, ST_Multi(r.geom)
            FROM ref.river r WHERE r.id = %s
            """,
            rows,
        )
    conn.execute(
        """
        INSERT INTO water.station_target (site_id, zone_id, target_class, waterbody)
        SELECT s.id, z.id, coalesce(z.target_class, %(default)s), coalesce(z.waterbody, 'river')
        FROM iot.monitoring_site s
        LEFT JOIN LATERAL (
            SELECT id, target_class, waterbody FROM water.function_zone f
            WHERE ST_DWithin(f.geom::geography, s.geom::geography, %(within)s)
            ORDER BY f.geom <-> s.geom LIMIT 1
        ) z ON true
        WHERE s.kind = 'water_quality'
        """,
        {"default": DEFAULT_TARGET, "within": STATION_ZONE_M},
    )
    return len(rows)


def _holders(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """Enterprises with a valid credit code, those with a wastewater outfall first (their
    permits give the trace a discharge estimate)."""
    rows = conn.execute(
        """
        SELECT e.credit_code, e.name_zh, e.district_code, e.industry_code,
               ST_X(e.geom), ST_Y(e.geom),
               EXISTS (SELECT 1 FROM env.pollution_source p
                       WHERE p.enterprise_id = e.id AND p.kind = 'outfall')
        FROM env.enterprise e ORDER BY e.id
        """
    ).fetchall()
    valid = []
    for row in rows:
        try:
            validate_uscc(row[0])
        except WaterResourcesError:
            continue  # not a holder we could register
        valid.append(row)
    return valid


def synthesize(conn: psycopg.Connection, context: SynthContext) -> dict[str, int]:
    """Insert the water application's reference rows; return the rows written per table."""
    rng = np.random.default_rng([context.seed, 17])
    _delete_previous(conn)
    zones = _zones(conn, rng)
    holders = _holders(conn)
    n_permits = min(len(holders), max(3, round(PERMITS_AT_FULL_SCALE * context.scale)))
    with_outfall = [h for h in holders if h[6]]
    others = [h for h in holders if not h[6]]
    order = rng.permutation(len(others))
    chosen = (with_outfall + [others[i] for i in order])[:n_permits]

    year = date.today().year
    register = PermitRegister()
    counters: dict[tuple[str, str], int] = {}
    sites: list[tuple[Any, ...]] = []
    devices: list[tuple[Any, ...]] = []
    permits: list[tuple[Any, ...]] = []
    wells: list[tuple[Any, ...]] = []
    meters: list[tuple[Any, ...]] = []

    def site_id(prefix: str, district: str) -> str:
        counters[(prefix, district)] = counters.get((prefix, district), 0) + 1
        return f"{prefix}-{district}-{counters[(prefix, district)]:03d}"

    positions = []
    for *_, lon, lat, _ in chosen:
        dlon, dlat = degrees_for(rng.uniform(60.0, 300.0), lat)
        angle = rng.uniform(0, 2 * np.pi)
        positions.append((lon + dlon * np.cos(angle), lat + dlat * np.sin(angle)))
    lons = np.array([p[0] for p in positions])
    lats = np.array([p[1] for p in positions])
    ground = (
        elevation_at(context.dem_path, lons, lats)
        if context.dem_path is not None and len(chosen)
        else np.zeros(len(chosen))
    )
    # Without a DEM the levels are relative to the ground (ground = 0).
    ground = np.where(np.isnan(ground), 0.0, ground)

    for k, (uscc, name, district, industry, _, _, _) in enumerate(chosen):
        district = district or "000000"
        lon, lat = float(lons[k]), float(lats[k])
        groundwater = bool(rng.random() < GROUNDWATER_SHARE)
        quota = float(np.clip(np.round(rng.lognormal(np.log(80_000), 0.8), -2), 5_000, 2e6))
        seasonal = bool(rng.random() < 0.2)
        months = list(range(3, 11)) if seasonal else list(range(1, 13))
        valid_from = date(year - int(rng.integers(0, 4)), 1, 1)
        valid_until = date(valid_from.year + 5, 12, 31)
        sector = Sector.DOMESTIC if str(industry).startswith("46") else Sector.INDUSTRY
        source = SourceType.GROUNDWATER if groundwater else SourceType.SURFACE

        meter_site = site_id(WATER_METER.id_prefix, district)
        source_site = meter_site
        if groundwater:
            source_site = site_id(WELL.id_prefix, district)
            depth = float(np.round(rng.uniform(80.0, 400.0), 0))
            static = float(np.round(ground[k] - rng.uniform(20.0, min(80.0, depth - 20)), 2))
            red_line = float(np.round(static - rng.uniform(2.0, 6.0), 2))
            sites.append(
                (source_site, WELL.name, f"{name}取水井", district,
                 {"static_level_m": static, "alarm_level_m": red_line}, lon, lat)
            )  # fmt: skip
            devices.append(
                (f"D-{source_site}", WELL.name, source_site, f"{name}取水井水位计",
                 WELL.interval_s, str(rng.choice(WELL.vendors)))
            )  # fmt: skip
            wells.append(
                (source_site, depth, "deep" if depth > 150 else "shallow",
                 float(np.round(ground[k], 2)))
            )  # fmt: skip
        permit_id = f"WP-{district}-{k + 1:04d}"
        register.add(
            Permit(permit_id, uscc, source_site, quota, frozenset(months), valid_from, valid_until)
        )
        year_start = float(np.round(rng.uniform(0.5, 5.0) * quota, 1))
        sites.append(
            (meter_site, WATER_METER.name, f"{name}取水计量点", district,
             {"annual_quota_m3": quota, "year_start_m3": year_start}, lon, lat)
        )  # fmt: skip
        meter_device = f"D-{meter_site}"
        devices.append(
            (meter_device, WATER_METER.name, meter_site, f"{name}取水计量仪",
             WATER_METER.interval_s, str(rng.choice(WATER_METER.vendors)))
        )  # fmt: skip
        permits.append(
            (permit_id, uscc, name, source.value, source_site, sector.value, quota, months,
             valid_from, valid_until, district, lon, lat)
        )  # fmt: skip
        meters.append((meter_device, permit_id, year_start, year))

    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO iot.monitoring_site (id, kind, name_zh, district_code, thresholds, geom)
            VALUES (%s, %s, %s, %s, %s::jsonb, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
            """,
            [(*s[:4], Jsonb(s[4]), *s[5:]) for s in sites],
        )
        cur.executemany(
            """
            INSERT INTO iot.device
                (id, kind, department_code, site_id, name_zh, expected_interval_s, attributes)
            VALUES (%s, %s, 'water', %s, %s, %s, jsonb_build_object('vendor', %s::text,
                    'crs', 'WGS84'))
            """,
            [(d[0], d[1], d[2], d[3], d[4], d[5]) for d in devices],
        )
        cur.executemany(
            """
            INSERT INTO water.permit (id, holder_uscc, holder_name, source_type, source_site_id,
                sector, annual_quota_m3, season_months, valid_from, valid_until, district_code,
                geom)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                    ST_SetSRID(ST_MakePoint(%s, %s), 4326))
            """,
            permits,
        )
        cur.executemany(
            "INSERT INTO water.well (site_id, depth_m, aquifer, ground_m) VALUES (%s, %s, %s, %s)",
            wells,
        )
        cur.executemany(
            "INSERT INTO water.meter (device_id, permit_id, year_start_m3, year)"
            " VALUES (%s, %s, %s, %s)",
            meters,
        )
    record = _rain_record(conn, rng)
    return {
        "water.rain_month": record,
        "water.function_zone": zones,
        "water.permit": len(permits),
        "water.well": len(wells),
        "water.meter": len(meters),
        "iot.monitoring_site (water)": len(sites),
        "iot.device (water)": len(devices),
    }
