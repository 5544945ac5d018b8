"""The environment application's reference data: outlets of the registered pollution sources,
their permit limits, and the weather stations the plume model reads.

Runs in the reference load's transaction after the core's tables are in (which made the
enterprises, pollution sources and their emission monitors). Reproducible from the seed, except
the HJ 212 passwords: those are secrets, drawn fresh and stored hashed; an operator gives a
logger its password with ``changzhi environment logger-password``.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import orjson
import psycopg

from gis_core.application import SynthContext
from gis_core.identity import hash_password

# Emission standards by industry (GB/T 4754 code) for stacks, and their reference O2 (%), the
# oxygen content concentrations are corrected to: GB 13223 coal-fired units 6 %, GB 13271
# coal-fired boilers 9 %, GB 4915 cement kilns 10 %; None where the standard measures as is.
AIR_STANDARDS: dict[str, tuple[str, float | None]] = {
    "4411": ("GB 13223-2011", 6.0),
    "4412": ("GB 13223-2011", 6.0),
    "4430": ("GB 13271-2014", 9.0),
    "0610": ("GB 13271-2014", 9.0),
    "2521": ("GB 16171-2012", None),
    "3110": ("GB 28662-2012", None),
    "3120": ("GB 28664-2012", None),
    "3140": ("GB 28666-2012", None),
    "3011": ("GB 4915-2013", 10.0),
    "2614": ("GB 31571-2015", None),
    "2621": ("GB 31573-2015", None),
    "2710": ("GB 37823-2019", None),
    "3216": ("GB 25465-2010", None),
}
WATER_STANDARDS: dict[str, str] = {
    "0610": "GB 20426-2006",
    "2521": "GB 16171-2012",
    "4620": "GB 18918-2002",
}
DEFAULT_AIR_STANDARD = ("GB 16297-1996", None)
DEFAULT_WATER_STANDARD = "GB 8978-1996"
UNITS = {"mgm3": "mg/m³", "mgl": "mg/L"}

SOURCES = """
SELECT s.id, s.kind, s.name_zh, s.limits, s.enterprise_id, e.industry_code,
       coalesce(e.district_code, ''), ST_AsBinary(s.geom),
       (SELECT d.id FROM iot.monitoring_site m JOIN iot.device d ON d.site_id = m.id
        WHERE m.pollution_source_id = s.id AND d.kind = 'emission' ORDER BY d.id LIMIT 1)
FROM env.pollution_source s LEFT JOIN env.enterprise e ON e.id = s.enterprise_id
WHERE s.kind IN ('stack', 'outfall')
ORDER BY s.enterprise_id NULLS LAST, s.id
"""


def synthesize(conn: psycopg.Connection, context: SynthContext) -> dict[str, int]:
    """Replace the outlets, their limits and the weather stations; return rows per table."""
    from apps.environment import WEATHER

    rng = np.random.default_rng([context.seed, 15])
    conn.execute("DELETE FROM env.outlet")  # their limits go with them (ON DELETE CASCADE)
    weather_devices = "SELECT id FROM iot.device WHERE kind = %s"
    conn.execute(
        f"DELETE FROM iot.device_state WHERE device_id IN ({weather_devices})", (WEATHER.name,)
    )
    conn.execute("DELETE FROM iot.device WHERE kind = %s", (WEATHER.name,))
    conn.execute("DELETE FROM iot.monitoring_site WHERE kind = %s", (WEATHER.name,))

    outlets: list[tuple[Any, ...]] = []
    limits: list[tuple[Any, ...]] = []
    numbers: dict[tuple[int | None, str], int] = {}
    password_hash = hash_password(secrets.token_urlsafe(12))  # nobody's: set one per logger
    for row in conn.execute(SOURCES).fetchall():
        source_id, kind, name_zh, source_limits, enterprise_id, industry, district, wkb = row[:8]
        medium = "air" if kind == "stack" else "water"
        key = (enterprise_id, medium)
        numbers[key] = numbers.get(key, 0) + 1
        code = f"{'DA' if medium == 'air' else 'DW'}{numbers[key]:03d}"
        if medium == "air":
            standard, o2_ref = AIR_STANDARDS.get(industry or "", DEFAULT_AIR_STANDARD)
        else:
            standard, o2_ref = WATER_STANDARDS.get(industry or "", DEFAULT_WATER_STANDARD), None
        mn = f"{district[:6]:0>6}{'A' if medium == 'air' else 'W'}{source_id:08d}"
        outlets.append(
            (
                source_id,
                code,
                f"{name_zh}排放口",
                medium,
                standard,
                mn,
                password_hash,
                row[8] if medium == "air" else None,
                wkb,
            )
        )
        for pollutant, value in sorted((source_limits or {}).items()):
            unit = UNITS.get(pollutant.rsplit("_", 1)[-1], "")
            limits.append((mn, pollutant, float(value), unit, o2_ref, standard))
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO env.outlet (source_id, code, name_zh, medium, standard, mn, pw_hash,
                                    device_id, geom)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326))
            """,
            outlets,
        )
        cur.executemany(
            """
            INSERT INTO env.outlet_limit (outlet_id, pollutant, limit_value, unit,
                                          o2_reference_pct, standard)
            SELECT id, %s, %s, %s, %s, %s FROM env.outlet WHERE mn = %s
            """,
            [(p, v, u, o2, s, mn) for mn, p, v, u, o2, s in limits],
        )
    stations = _weather_stations(conn, rng, WEATHER)
    return {"env.outlet": len(outlets), "env.outlet_limit": len(limits), "weather": stations}


def _weather_stations(conn: psycopg.Connection, rng: np.random.Generator, kind: Any) -> int:
    """One automatic weather station per district, inside it, near its middle."""
    districts = conn.execute(
        "SELECT code, name_zh, ST_X(p), ST_Y(p) FROM ("
        " SELECT code, name_zh, ST_PointOnSurface(geom) AS p FROM ref.admin_area"
        " WHERE level = 'district' ORDER BY code) d"
    ).fetchall()
    with conn.cursor() as cur:
        for code, name_zh, lon, lat in districts:
            site_id = f"{kind.id_prefix}-{code}-001"
            cur.execute(
                "INSERT INTO iot.monitoring_site (id, kind, name_zh, district_code, geom)"
                " VALUES (%s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                (site_id, kind.name, f"{name_zh}自动气象站", code, lon, lat),
            )
            attributes = {
                "vendor": str(rng.choice(kind.vendors)),
                "model": f"{kind.id_prefix}-{int(rng.integers(1, 9)) * 100}",
                "crs": "WGS84",
                "height_m": 10,
            }
            cur.execute(
                "INSERT INTO iot.device (id, kind, department_code, site_id, name_zh,"
                " expected_interval_s, attributes) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
                (
                    f"D-{site_id}",
                    kind.name,
                    kind.department,
                    site_id,
                    f"{name_zh}自动气象站数据采集仪",
                    kind.interval_s,
                    orjson.dumps(attributes).decode(),
                ),
            )
    return len(districts)
