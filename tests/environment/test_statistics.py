"""Statistics and the monthly report against hand-computed figures.

One test outlet (industry T999, nobody else's) measures every 10 minutes, 15 Jan 2025 10:00 to
13:00 CST: SO2 100, NOx 20, dust 5 mg/m³ at 10,000 m³/h, i.e. 1 kg SO2, 0.2 kg NOx and 0.05 kg
dust an hour: 3 kg, 0.6 kg, 0.15 kg in January; then 1 Feb 2025 00:00–01:00 CST (still 31 Jan
in UTC) SO2 40 mg/m³: 0.4 kg in February. Its permit: SO2 50, NOx 100 mg/m³ (1 h), so January
has 3 of 3 SO2 hours over, 0 of 3 NOx hours, February 0 of 1.

One test air station has PM2.5 35, 75 and 115 µg/m³ all day on 10, 11 and 12 Jan 2025 (CST):
by HJ 633-2012 IAQI 50, 100, 150 (levels I, II, III); by HJ 633-2026 (PM2.5 100 at 60)
50, ⌈100 + 50·15/55⌉ = 114, 150 (levels I, III, III).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from gis_core.db import connect

pytestmark = pytest.mark.services

CST = timezone(timedelta(hours=8))
EMS, AIR = "EMS-STATS-T999", "AIR-STATS-T999"


@pytest.fixture(scope="module")
def measured(db_url: str, reference: object) -> Iterator[dict[str, Any]]:
    with connect(db_url) as conn:
        district = conn.execute(
            "SELECT code FROM ref.admin_area WHERE level = 'district' ORDER BY code LIMIT 1"
        ).fetchone()[0]
        for device, kind in ((EMS, "emission"), (AIR, "air")):
            conn.execute("DELETE FROM iot.telemetry WHERE device_id = %s", (device,))
            conn.execute("DELETE FROM iot.device WHERE id = %s", (device,))
            conn.execute("INSERT INTO iot.device (id, kind) VALUES (%s, %s)", (device, kind))
        conn.execute("DELETE FROM env.enterprise WHERE credit_code = '91140400T99900001X'")
        enterprise = conn.execute(
            "INSERT INTO env.enterprise (credit_code, name_zh, industry_code, industry_zh,"
            " district_code, geom) VALUES ('91140400T99900001X', '统计测试厂', 'T999', '测试行业',"
            " %s, ST_SetSRID(ST_MakePoint(113.1, 36.2), 4326)) RETURNING id",
            (district,),
        ).fetchone()[0]
        source = conn.execute(
            "INSERT INTO env.pollution_source (enterprise_id, kind, name_zh, stack_height_m, geom)"
            " VALUES (%s, 'stack', '统计测试烟囱', 40, ST_SetSRID(ST_MakePoint(113.1, 36.2), 4326))"
            " RETURNING id",
            (enterprise,),
        ).fetchone()[0]
        outlet = conn.execute(
            "INSERT INTO env.outlet (source_id, code, name_zh, medium, standard, mn, pw_hash,"
            " device_id, geom) VALUES (%s, 'DA001', '统计测试排口', 'air', 'GB 13223-2011',"
            " 'STATST999000001', 'x', %s, ST_SetSRID(ST_MakePoint(113.1, 36.2), 4326))"
            " RETURNING id",
            (source, EMS),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO env.outlet_limit (outlet_id, pollutant, limit_value, unit, standard)"
            " VALUES (%s, 'so2_mgm3', 50, 'mg/m3', 'GB 13223-2011'),"
            " (%s, 'nox_mgm3', 100, 'mg/m3', 'GB 13223-2011')",
            (outlet, outlet),
        )
        rows = []
        january = datetime(2025, 1, 15, 10, tzinfo=CST)
        for k in range(18):
            reading = {"so2_mgm3": 100, "nox_mgm3": 20, "dust_mgm3": 5, "flow_m3h": 10000}
            rows.append((EMS, "emission", january + timedelta(minutes=10 * k), reading))
        february = datetime(2025, 2, 1, 0, tzinfo=CST)
        for k in range(6):
            reading = {"so2_mgm3": 40, "nox_mgm3": 20, "dust_mgm3": 5, "flow_m3h": 10000}
            rows.append((EMS, "emission", february + timedelta(minutes=10 * k), reading))
        for day, pm25 in ((10, 35), (11, 75), (12, 115)):
            for hour in range(24):
                at = datetime(2025, 1, day, hour, 30, tzinfo=CST)
                rows.append((AIR, "air", at, {"pm25": pm25}))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, %s, %s, %s::jsonb)",
                [(d, k, t, orjson.dumps(r).decode()) for d, k, t, r in rows],
            )
        conn.execute(
            "INSERT INTO env.exceedance (kind, device_id, outlet_id, pollutant, averaging,"
            " limit_value, standard, peak_value, started_at, hours)"
            " VALUES ('emission', %s, %s, 'so2_mgm3', '1h', 50, 'GB 13223-2011', 100, %s, 3)",
            (EMS, outlet, january),
        )
        conn.commit()
    yield {"outlet": outlet, "district": district}
    with connect(db_url) as conn:
        conn.execute("DELETE FROM iot.telemetry WHERE device_id = ANY(%s)", ([EMS, AIR],))
        conn.execute("DELETE FROM env.exceedance WHERE device_id = %s", (EMS,))
        conn.execute("DELETE FROM env.pollution_source WHERE id = %s", (source,))
        conn.execute("DELETE FROM env.enterprise WHERE id = %s", (enterprise,))
        conn.execute("DELETE FROM iot.device WHERE id = ANY(%s)", ([EMS, AIR],))
        conn.commit()


def _get(api: Any, headers: dict[str, str], path: str, **params: Any) -> Any:
    r = api.get(f"/environment/stats/{path}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_loads_by_month_quarter_and_group(
    api: Any, admin_headers: dict[str, str], measured: dict[str, Any]
) -> None:
    span = {"start": "2025-01-01", "end": "2025-03-31"}
    monthly = _get(api, admin_headers, "loads", by="industry", period="month", **span)
    mine = {r["period"]: r for r in monthly if r["key"] == "T999"}
    assert mine["2025-01-01"]["load_kg"] == {"so2": 3.0, "nox": 0.6, "dust": 0.15}
    assert mine["2025-01-01"]["hours"] == 3 and mine["2025-01-01"]["outlets"] == 1
    assert mine["2025-02-01"]["load_kg"]["so2"] == 0.4  # local month, not UTC's 31 January
    quarter = _get(api, admin_headers, "loads", by="outlet", period="quarter", **span)
    outlet = next(r for r in quarter if r["key"] == str(measured["outlet"]))
    assert outlet["period"] == "2025-01-01" and outlet["hours"] == 4
    assert outlet["load_kg"]["so2"] == pytest.approx(3.4)
    district = _get(api, admin_headers, "loads", by="district", period="year", **span)
    assert next(r for r in district if r["key"] == measured["district"])["load_kg"]["so2"] >= 3.4
    bad = api.get("/environment/stats/loads", params={**span, "by": "colour"},
                  headers=admin_headers)  # fmt: skip
    assert bad.status_code == 400 and "by must be one of" in bad.json()["detail"]


def test_exceedance_rates(
    api: Any, admin_headers: dict[str, str], measured: dict[str, Any]
) -> None:
    rows = _get(api, admin_headers, "exceedance-rates", by="industry", period="month",
                start="2025-01-01", end="2025-02-28")  # fmt: skip
    mine = {(r["period"], r["pollutant"]): r for r in rows if r["key"] == "T999"}
    jan_so2 = mine[("2025-01-01", "so2_mgm3")]
    assert (jan_so2["hours"], jan_so2["hours_over"], jan_so2["rate"]) == (3, 3, 1.0)
    assert jan_so2["events"] == 1
    assert mine[("2025-01-01", "nox_mgm3")]["rate"] == 0.0
    assert mine[("2025-02-01", "so2_mgm3")]["hours_over"] == 0
    assert ("2025-01-01", "dust_mgm3") not in mine  # no permit limit for dust


def test_aqi_days_by_level_both_editions(
    api: Any, admin_headers: dict[str, str], measured: dict[str, Any]
) -> None:
    span = {"start": "2025-01-10", "end": "2025-01-12", "scope": "station", "period": "month"}
    by_2012 = next(r for r in _get(api, admin_headers, "aqi-days", **span) if r["id"] == AIR)
    assert by_2012["days_by_level"] == {"1": 1, "2": 1, "3": 1, "4": 0, "5": 0, "6": 0}
    assert by_2012["good_days"] == 2 and by_2012["standards"] == ["HJ 633-2012"]
    rows = _get(api, admin_headers, "aqi-days", standard="HJ 633-2026", **span)
    by_2026 = next(r for r in rows if r["id"] == AIR)
    assert by_2026["days_by_level"] == {"1": 1, "2": 0, "3": 2, "4": 0, "5": 0, "6": 0}


def test_monthly_pdf(api: Any, admin_headers: dict[str, str], measured: dict[str, Any]) -> None:
    r = api.get("/environment/reports/monthly.pdf?month=2025-01", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and b"CJK" in r.content  # the Chinese font embedded
    assert r.content.count(b"/Type /Page") - r.content.count(b"/Type /Pages") == 2
    bad = api.get("/environment/reports/monthly.pdf?month=2025-13", headers=admin_headers)
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["detail"]


def test_last_month_archived_once(db_url: str, measured: dict[str, Any], tmp_path: Any) -> None:
    from datetime import date

    from apps.environment.monthly import archive_dir, archive_last_month

    with connect(db_url) as conn:
        written = archive_last_month(conn, tmp_path, date(2025, 2, 10))
        assert written == archive_dir(tmp_path) / "2025-01.pdf"
        assert written.read_bytes().startswith(b"%PDF")
        assert archive_last_month(conn, tmp_path, date(2025, 2, 28)) is None
        january = archive_last_month(conn, tmp_path, date(2025, 1, 1))  # December 2024
    assert january is not None and january.name == "2024-12.pdf"
