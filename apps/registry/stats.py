"""Register statistics: land use by district and class, the change matrix between two
dates (土地利用变更), and mining rights by mineral, status and expiry.

Land use reads the cadastre (``registry.parcel``, one row per parcel version with its
``valid_from``/``valid_to``), so any date can be asked; classes are GB/T 21010-2017's, both
the second-level code the parcel carries and its first-level class (表1 一级类). Areas are
the parcels' registered ``area_m2``, given in hectares and mu (1 mu = 10,000/15 m²).
Rights read the bitemporal register as it is known now.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import psycopg

from gis_core.errors import InvalidParameter

#: GB/T 21010-2017 Table 1, first-level classes (一级类).
FIRST_LEVEL: Final = {
    "01": ("耕地", "Cropland"),
    "02": ("园地", "Garden land"),
    "03": ("林地", "Forest land"),
    "04": ("草地", "Grassland"),
    "05": ("商服用地", "Commercial and service land"),
    "06": ("工矿仓储用地", "Industrial, mining and storage land"),
    "07": ("住宅用地", "Residential land"),
    "08": ("公共管理与公共服务用地", "Public administration and service land"),
    "09": ("特殊用地", "Special-use land"),
    "10": ("交通运输用地", "Transport land"),
    "11": ("水域及水利设施用地", "Water and water-conservancy land"),
    "12": ("其他土地", "Other land"),
}
MU_PER_M2: Final = 15.0 / 10_000.0
LEVELS: Final = ("first", "second")


def _class_expr(level: str) -> str:
    if level not in LEVELS:
        raise InvalidParameter(f"level must be 'first' or 'second', got {level!r}")
    return "left(p.land_use, 2)" if level == "first" else "p.land_use"


def _class_name(code: str, level: str, name_zh: str | None) -> tuple[str, str | None]:
    if level == "first":
        zh, en = FIRST_LEVEL.get(code, (code, None))
        return zh, en
    return name_zh or code, FIRST_LEVEL.get(code[:2], (None, None))[1]


_AT: Final = "p.valid_from <= %(at)s AND (p.valid_to IS NULL OR p.valid_to > %(at)s)"


def land_use(conn: psycopg.Connection, at: dt.datetime, level: str = "first") -> dict[str, Any]:
    """Area of each land-use class in each district at ``at``, and the city's totals."""
    cls = _class_expr(level)
    rows = conn.execute(
        f"""
        SELECT p.district_code, a.name_zh, {cls} AS cls, min(p.land_use_zh),
               sum(p.area_m2), count(*)
        FROM registry.parcel p
        LEFT JOIN ref.admin_area a ON a.code = p.district_code AND a.level = 'district'
        WHERE {_AT}
        GROUP BY p.district_code, a.name_zh, cls
        ORDER BY p.district_code, cls
        """,
        {"at": at},
    ).fetchall()
    out = []
    totals: dict[str, float] = {}
    for district, name, code, name_zh, area, n in rows:
        zh, en = _class_name(code, level, name_zh)
        out.append(
            {
                "district_code": district,
                "district": name,
                "class": code,
                "class_zh": zh,
                "class_en": en,
                "parcels": n,
                "hectares": round(area / 10_000.0, 4),
                "mu": round(area * MU_PER_M2, 2),
            }
        )
        totals[code] = totals.get(code, 0.0) + area
    city = [
        {
            "class": code,
            "class_zh": _class_name(code, level, None)[0] if level == "first" else None,
            "hectares": round(a / 10_000.0, 4),
            "mu": round(a * MU_PER_M2, 2),
        }
        for code, a in sorted(totals.items())
    ]
    return {"at": at, "level": level, "rows": out, "city": city}


def change_matrix(
    conn: psycopg.Connection, start: dt.datetime, end: dt.datetime, level: str = "first"
) -> dict[str, Any]:
    """Hectares that were class *from* at ``start`` and class *to* at ``end``
    (土地利用变更矩阵), by parcel code; parcels registered or cancelled in between are
    counted as ``new`` / ``gone``."""
    if end <= start:
        raise InvalidParameter("the end date must come after the start date")
    cls = _class_expr(level)
    rows = conn.execute(
        f"""
        WITH a AS (SELECT p.parcel_code, {cls} AS c, p.area_m2 FROM registry.parcel p
                   WHERE {_AT.replace("%(at)s", "%(start)s")}),
             b AS (SELECT p.parcel_code, {cls} AS c, p.area_m2 FROM registry.parcel p
                   WHERE {_AT.replace("%(at)s", "%(end)s")})
        SELECT coalesce(a.c, 'new'), coalesce(b.c, 'gone'), sum(coalesce(b.area_m2, a.area_m2))
        FROM a FULL JOIN b USING (parcel_code)
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        {"start": start, "end": end},
    ).fetchall()
    cells = [
        {
            "from": f,
            "to": t,
            "hectares": round(area / 10_000.0, 4),
            "mu": round(area * MU_PER_M2, 2),
        }
        for f, t, area in rows
    ]
    changed = sum(c["hectares"] for c in cells if c["from"] != c["to"])
    return {"start": start, "end": end, "level": level, "cells": cells, "changed_hectares": changed}


def rights_summary(
    conn: psycopg.Connection, at: dt.datetime, expiring_months: int = 6
) -> dict[str, Any]:
    """Rights by mineral and type in force at ``at``, how many expired or not yet valid, and
    the ones whose term ends within ``expiring_months`` months, soonest first."""
    if not 1 <= expiring_months <= 120:
        raise InvalidParameter("expiring_months must be between 1 and 120")
    horizon = at + dt.timedelta(days=round(expiring_months * 30.4375))
    latest = """
        SELECT DISTINCT ON (object_id) object_id, attrs, valid_from, valid_to, geom
        FROM registry.registry_version
        WHERE recorded_to IS NULL AND object_kind = 'mining_right' AND valid_from <= %(at)s
        ORDER BY object_id, valid_from DESC
    """
    by_mineral = conn.execute(
        f"""
        SELECT attrs->>'mineral', coalesce(attrs->>'right_type', 'mining'), count(*),
               sum(ST_Area(geom)) / 1e6
        FROM ({latest}) r WHERE valid_to IS NULL OR valid_to > %(at)s
        GROUP BY 1, 2 ORDER BY 3 DESC, 1
        """,
        {"at": at},
    ).fetchall()
    status = conn.execute(
        f"""
        SELECT count(*) FILTER (WHERE valid_to IS NULL OR valid_to > %(at)s),
               count(*) FILTER (WHERE valid_to <= %(at)s)
        FROM ({latest}) r
        """,
        {"at": at},
    ).fetchone()
    pending = conn.execute(
        """SELECT count(DISTINCT object_id) FROM registry.registry_version
           WHERE recorded_to IS NULL AND object_kind = 'mining_right' AND valid_from > %(at)s
             AND object_id NOT IN (SELECT object_id FROM registry.registry_version
                                   WHERE recorded_to IS NULL AND valid_from <= %(at)s)""",
        {"at": at},
    ).fetchone()
    expiring = conn.execute(
        f"""
        SELECT object_id, attrs->>'holder', attrs->>'mineral', valid_to
        FROM ({latest}) r WHERE valid_to > %(at)s AND valid_to <= %(horizon)s
        ORDER BY valid_to, object_id
        """,
        {"at": at, "horizon": horizon},
    ).fetchall()
    assert status is not None and pending is not None
    return {
        "at": at,
        "by_mineral": [
            {"mineral": m, "right_type": t, "rights": n, "area_km2": round(float(a or 0), 4)}
            for m, t, n, a in by_mineral
        ],
        "in_force": status[0],
        "expired": status[1],
        "not_yet_valid": pending[0],
        "expiring_within_months": expiring_months,
        "expiring": [
            {"license_no": o, "holder": h, "mineral": m, "valid_to": v} for o, h, m, v in expiring
        ],
    }
