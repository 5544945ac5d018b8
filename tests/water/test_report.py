"""The water balance from known meter readings, and the annual report's PDF read back."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb
from pypdf import PdfReader

from apps.water import report, service
from apps.water.resources import water_fee

pytestmark = pytest.mark.services


def _known_readings(conn: psycopg.Connection) -> dict:
    """Only three meters read this year (the caller rolls back): A uses 12,345.6 m³, B 110 %
    of its quota, C reads below its opening (left out)."""
    year = datetime.now(service.LOCAL).year
    conn.execute(
        "DELETE FROM iot.device_state WHERE device_id IN (SELECT device_id FROM water.meter)"
    )
    conn.execute(
        "DELETE FROM iot.telemetry WHERE kind = 'water_meter' AND ts >= %s",
        (service._year_start(year),),
    )
    rows = conn.execute(
        "SELECT p.id, p.district_code, p.source_type, p.sector, p.annual_quota_m3,"
        " m.device_id, m.year_start_m3 FROM water.permit p"
        " JOIN water.meter m ON m.permit_id = p.id AND m.year = %s ORDER BY p.id LIMIT 3",
        (year,),
    ).fetchall()
    a, b, c = rows
    used = {a[0]: 12_345.6, b[0]: round(1.1 * b[4], 1)}
    at = datetime.now(UTC) - timedelta(minutes=5)
    conn.cursor().executemany(
        "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
        " VALUES (%s, 'water_meter', %s, %s)",
        [
            (a[5], at, Jsonb({"volume_m3": a[6] + used[a[0]]})),
            (b[5], at, Jsonb({"volume_m3": b[6] + used[b[0]]})),
            (c[5], at, Jsonb({"volume_m3": c[6] - 5.0})),
        ],
    )
    # one station two days: class I, then COD 35 (class V), worse than its target
    conn.execute(
        "DELETE FROM iot.telemetry WHERE kind = 'water_quality' AND ts >= %s",
        (service._year_start(year),),
    )
    station = conn.execute(
        "SELECT d.id, d.site_id FROM iot.device d"
        " LEFT JOIN water.station_target t ON t.site_id = d.site_id"
        " WHERE d.kind = 'water_quality' AND coalesce(t.target_class, 3) < 5 ORDER BY d.id"
    ).fetchone()
    clean = {"ph": 7.5, "do_mgl": 8.0, "cod_mgl": 10.0, "nh3n_mgl": 0.1}
    conn.cursor().executemany(
        "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
        " VALUES (%s, 'water_quality', %s, %s)",
        [
            (station[0], at - timedelta(hours=24), Jsonb(clean)),
            (station[0], at, Jsonb({**clean, "cod_mgl": 35.0})),
        ],
    )
    return {"year": year, "a": a, "b": b, "c": c, "used": used, "station": station}


def test_compliance_by_station_and_zone(reference, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        try:
            known = _known_readings(conn)
            result = service.quality_compliance(
                conn, service._year_start(known["year"]), datetime.now(UTC)
            )
        finally:
            conn.rollback()
    mine = next(s for s in result["stations"] if s["device_id"] == known["station"][0])
    assert (mine["days_judged"], mine["days_met"], mine["rate"]) == (2, 1, 0.5)
    assert (mine["worst_class"], mine["worst_label"]) == (5, "V")
    others = [s for s in result["stations"] if s is not mine]
    assert all(s["days_judged"] == 0 and s["rate"] is None for s in others)
    assert (result["days_judged"], result["days_met"], result["compliance_rate"]) == (2, 1, 0.5)
    if mine["zone_zh"]:
        zone = next(z for z in result["zones"] if z["zone_zh"] == mine["zone_zh"])
        assert (zone["days_judged"], zone["days_met"]) == (2, 1)


def test_balance_by_source_and_sector(reference, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        try:
            known = _known_readings(conn)
            balance = service.water_balance(conn)
        finally:
            conn.rollback()
    a, b, c, used = known["a"], known["b"], known["c"], known["used"]
    assert {p["permit_id"]: p["used_m3"] for p in balance["permits"]} == used
    assert [x["permit_id"] for x in balance["left_out"] if "below" in x["reason"]] == [c[0]]
    total = sum(used.values())
    assert balance["total"]["use_total_m3"] == pytest.approx(total, abs=0.05)
    assert balance["total"]["supply_total_m3"] == pytest.approx(total, abs=0.05)
    expected: dict[tuple[str, str, str], float] = {}
    for p in (a, b):
        for side, kind in (("supply_m3", p[2]), ("use_m3", p[3])):
            key = (p[1], side, kind)
            expected[key] = expected.get(key, 0.0) + used[p[0]]
    rows = {d["district_code"]: d for d in balance["districts"]}
    for (district, side, kind), volume in expected.items():
        assert rows[district][side][kind] == pytest.approx(volume, abs=0.05)
    assert all(d["difference_m3"] == 0 for d in balance["districts"])


def test_the_report_prints_the_figures(reference, db_url: str, artifacts) -> None:
    with psycopg.connect(db_url) as conn:
        try:
            known = _known_readings(conn)
            balance = service.water_balance(conn)
            quality = service.quality_compliance(
                conn, service._year_start(known["year"]), datetime.now(UTC)
            )
            pdf = report.render(conn, known["year"])
        finally:
            conn.rollback()
    (artifacts / "water-report.pdf").write_bytes(pdf)  # to look at
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 4
    pages = [p.extract_text() for p in reader.pages]
    assert f"{known['year']}年水资源年报" in pages[0]
    a, b, used = known["a"], known["b"], known["used"]
    total = balance["total"]
    # 表1/表2 totals, in 万m³
    assert report.wan(total["supply_total_m3"]) in pages[0]
    assert report.wan(total["use_total_m3"]) in pages[0]
    assert report.wan(total["permitted_m3"]) in pages[0]
    # 表3: two metered permits, one past its quota, and their fees
    fee = water_fee(used[a[0]], a[4]) + water_fee(used[b[0]], b[4])
    assert f"{fee:,.0f}" in pages[1]
    assert "计量 2 个" in pages[1]
    total_row = next(line for line in pages[1].splitlines() if line.startswith("合计"))
    assert total_row.split()[1:6] == [
        "2",
        report.wan(a[4] + b[4]),
        report.wan(sum(used.values())),
        "0",
        "1",
    ]
    assert "表4" in pages[2]
    name = next(s["name_zh"] for s in quality["stations"] if s["device_id"] == known["station"][0])
    row = next(line for line in pages[2].splitlines() if line.startswith(name))
    assert row.split()[-4:] == ["2", "1", "50.0%", "V"]
    total_row = next(line for line in pages[2].splitlines() if line.startswith("合计"))
    assert total_row.split()[1:] == ["2", "1", "50.0%"]


def test_report_and_balance_routes(api, admin_headers) -> None:
    year = datetime.now(service.LOCAL).year
    response = api.get(f"/water/report/{year}.pdf", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    title = PdfReader(io.BytesIO(response.content)).metadata.title
    assert title.endswith(f"{year}年水资源年报")
    for url, status, expect in (
        ("/water/report/1999.pdf", 400, "year must be within 2000..2100"),
        ("/water/report/last.pdf", 422, "year"),
        (f"/water/balance?year={year + 1}", 400, f"year must be within 2000..{year}"),
    ):
        response = api.get(url, headers=admin_headers)
        assert response.status_code == status, (url, response.text)
        assert expect in response.text
    response = api.get("/water/quality/compliance?days=7", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert api.get("/water/quality/compliance?days=0", headers=admin_headers).status_code == 422
    response = api.get("/water/balance", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["year"] == year
