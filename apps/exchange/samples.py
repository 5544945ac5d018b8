"""Sample sources of the statistics bureau's indicator system.

``census_2020`` is real: the Seventh National Population Census (2020) by district, as the
reference dataset holds it (``ref.admin_area.population_2020``, Shanxi statistics bureau
figures). ``stats_indicators`` (GDP, grain output, registered population for five years) is
synthesized with a fixed seed and registered as such (``synthesized``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from openpyxl import Workbook

from apps.exchange import service
from apps.exchange.divisions import synthesize_divisions
from gis_core.application import SynthContext

STATS_DEPARTMENT = "stats"
YEARS = (2019, 2020, 2021, 2022, 2023)
ELEMENTS: tuple[dict[str, Any], ...] = (
    {"code": "area_code", "name_zh": "行政区划代码", "name_en": "Division code (GB/T 2260)",
     "type": "str"},
    {"code": "indicator", "name_zh": "指标代码", "name_en": "Indicator", "type": "code",
     "code_list": ["population", "gdp", "grain_output", "resident_population"]},
    {"code": "year", "name_zh": "年份", "name_en": "Year", "type": "int", "min": 1949,
     "max": 2100},
    {"code": "value", "name_zh": "指标值", "name_en": "Value", "type": "num"},
    {"code": "population", "name_zh": "常住人口", "name_en": "Resident population",
     "type": "int", "unit": "人", "min": 0},
    {"code": "resident_population", "name_zh": "户籍人口", "name_en": "Registered population",
     "type": "int", "unit": "人", "min": 0},
    {"code": "gdp", "name_zh": "地区生产总值", "name_en": "GDP", "type": "num",
     "unit": "亿元", "min": 0},
    {"code": "grain_output", "name_zh": "粮食产量", "name_en": "Grain output", "type": "num",
     "unit": "吨", "min": 0},
    {"code": "credit_code", "name_zh": "统一社会信用代码", "name_en": "Unified social credit code",
     "type": "str"},
    {"code": "address", "name_zh": "地址", "name_en": "Address", "type": "str"},
    {"code": "lon", "name_zh": "经度", "name_en": "Longitude", "type": "num", "min": -180,
     "max": 180},
    {"code": "lat", "name_zh": "纬度", "name_en": "Latitude", "type": "num", "min": -90,
     "max": 90},
    {"code": "name_zh", "name_en": "Name", "type": "str"},
)  # fmt: skip
STAT_MAPPING = {"indicator": "indicator", "area_code": "area_code", "year": "year",
                "value": "value"}  # fmt: skip


def synthesize(conn: psycopg.Connection, context: SynthContext) -> dict[str, int]:
    """The reference data of the application: divisions and the shared data elements."""
    del context  # the divisions follow the villages the core wrote with the same seed
    divisions = synthesize_divisions(conn)
    for element in ELEMENTS:
        service.save_element(conn, None, {"name_zh": element.get("name_zh", "名称"), **element})
    return {"exchange.division": divisions, "exchange.element": len(ELEMENTS)}


def _stats_department(conn: psycopg.Connection) -> str:
    conn.execute(
        "INSERT INTO auth.department (code, name_zh, name_en) VALUES (%s, '市统计局',"
        " 'Statistics bureau') ON CONFLICT (code) DO NOTHING",
        (STATS_DEPARTMENT,),
    )
    return STATS_DEPARTMENT


def write_samples(conn: psycopg.Connection, folder: Path, seed: int = 19) -> dict[str, Path]:
    """Write the sample files and register their sources (shared, daily); return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    owner = _stats_department(conn)
    districts = conn.execute(
        "SELECT code, population_2020 FROM ref.admin_area WHERE level = 'district'"
        " AND population_2020 IS NOT NULL ORDER BY code"
    ).fetchall()
    census = folder / "census_2020.csv"
    with census.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["indicator", "area_code", "year", "value"])
        for code, population in districts:
            w.writerow(["population", code, 2020, population])
    rng = np.random.default_rng(seed)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "indicators"
    sheet.append(["indicator", "area_code", "year", "value"])
    for code, population in districts:
        per_head = rng.uniform(4.5, 9.0)  # 10k yuan per resident
        grain = rng.uniform(0.05, 0.6)  # t per resident
        for k, year in enumerate(YEARS):
            growth = (1 + rng.normal(0.05, 0.02)) ** k
            sheet.append(["gdp", code, year, round(population * per_head * growth / 1e4, 2)])
            sheet.append(["grain_output", code, year, round(population * grain * growth, 0)])
            sheet.append(["resident_population", code, year,
                          int(population * (1.03 - 0.006 * k))])  # fmt: skip
    indicators = folder / "stats_indicators.xlsx"
    book.save(indicators)
    common = {"kind": "csv", "key_column": "key", "owner": owner, "shared": True,
              "schedule_s": 86400, "mapping": STAT_MAPPING}  # fmt: skip
    for name, path, kind, title_zh, title_en, synthesized, description in (
        ("census_2020", census, "csv", "第七次全国人口普查（区县）", "2020 census by district",
         False, "Real: Seventh National Population Census, Shanxi statistics bureau figures"),
        ("stats_indicators", indicators, "excel", "国民经济主要指标", "Main economic indicators",
         True, "Synthesized (fixed seed) for lack of an offline registry"),
    ):  # fmt: skip
        service.save_source(
            conn,
            None,
            {
                **common,
                "name": name,
                "kind": kind,
                "title_zh": title_zh,
                "title_en": title_en,
                "location": str(path),
                "key_column": "key",
                "synthesized": synthesized,
                "description": description,
                "options": {"key_from": ["indicator", "area_code", "year"]},
            },
        )
    return {"census_2020": census, "stats_indicators": indicators}
