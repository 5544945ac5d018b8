"""The /water routes on the loaded reference dataset, with readings written for the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from apps.water.resources import water_fee

pytestmark = pytest.mark.services
CST = ZoneInfo("Asia/Shanghai")
DAY = datetime.now(CST).date() - timedelta(days=3)


def _ts(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST)


@pytest.fixture(scope="module")
def wq_devices(reference, db_url: str) -> Iterator[list[str]]:
    """Two stations' readings on DAY: the first at exactly class III COD, the second without
    its ammonia."""
    with psycopg.connect(db_url) as conn:
        devices = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM iot.device WHERE kind = 'water_quality' ORDER BY site_id"
            ).fetchall()
        ]
        rows = []
        for h in range(24):
            # COD 19..21 averages 20.0 (the class III limit); DO 6 is class II; pH 7.5 is I
            rows.append((devices[0], _ts(DAY, h), {"ph": 7.5, "do_mgl": 6.0,
                         "cod_mgl": 19.0 if h % 2 else 21.0, "nh3n_mgl": 0.5}))  # fmt: skip
            rows.append((devices[1], _ts(DAY, h), {"ph": 7.2, "do_mgl": 7.6, "cod_mgl": 12.0}))
        conn.cursor().executemany(
            "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
            " VALUES (%s, 'water_quality', %s, %s)",
            [(d, ts, Jsonb(r)) for d, ts, r in rows],
        )
        conn.commit()
    yield devices
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "DELETE FROM iot.telemetry WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s",
            (devices[:2], _ts(DAY, 0), _ts(DAY, 0) + timedelta(days=1)),
        )
        conn.commit()


def test_daily_classes_by_the_worst_factor(api, admin_headers, wq_devices) -> None:
    response = api.get(f"/water/quality/classes?date={DAY}", headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    by_device = {s["device_id"]: s for s in body["stations"]}
    first, second = by_device[wq_devices[0]], by_device[wq_devices[1]]
    assert first["hours"] == 24
    assert (first["water_class"], first["label"], first["deciding"]) == (3, "III", ["cod"])
    assert first["factor_classes"] == {"ph": 1, "do": 2, "cod": 3, "nh3n": 2}
    assert first["meets_target"] == (first["target_class"] >= 3)
    # DO 7.6 and COD 12 are class I; the missing ammonia is said, not taken as clean
    assert (second["water_class"], second["missing"]) == (1, ["nh3n"])
    others = [s for d, s in by_device.items() if d not in wq_devices[:2]]
    assert all(s["water_class"] is None and s["hours"] == 0 for s in others)


def test_trend_of_one_station(api, admin_headers, wq_devices) -> None:
    response = api.get(f"/water/quality/trend/{wq_devices[0]}?days=10", headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    day = next(d for d in body["series"] if d["date"] == str(DAY))
    assert day["water_class"] == 3 and day["means"]["cod"] == 20.0
    # one day of data: too few for Mann-Kendall, and it says so
    assert body["trends"]["cod"]["trend"] is None and "at least" in body["trends"]["cod"]["reason"]


def test_unknown_station_and_bad_parameters_are_4xx(api, admin_headers, reference) -> None:
    assert api.get("/water/quality/trend/NOPE", headers=admin_headers).status_code == 404
    assert api.get("/water/trace/NOPE", headers=admin_headers).status_code == 404
    assert (
        api.get("/water/quality/classes?date=2026-13-01", headers=admin_headers).status_code == 422
    )
    assert api.get("/water/drought?stage=winter", headers=admin_headers).status_code == 400
    assert api.get("/water/quality/classes").status_code == 401


def test_trace_ranks_upstream_outlets(api, admin_headers, wq_devices) -> None:
    traced, ranked = 0, 0
    for device in wq_devices:
        response = api.get(f"/water/trace/{device}?factor=nh3n", headers=admin_headers)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            assert "off the river network" in response.json()["detail"]
            continue
        traced += 1
        body = response.json()
        loads = [o["load_at_station_g_s"] for o in body["ranked"]]
        assert loads == sorted(loads, reverse=True)
        assert all(o["distance_m"] >= 0 for o in body["ranked"])
        assert body["rivers"]["type"] == "MultiLineString" and body["rivers"]["coordinates"]
        assert [o["rank"] for o in body["ranked"]] == list(range(1, len(loads) + 1))
        assert all(0 <= o["receiving_m"] <= 5000 for o in body["ranked"])
        ranked += len(loads)
    assert traced > 0 and ranked > 0, "no outfall upstream of any station"


def test_a_station_off_the_rivers_is_refused_clearly(api, admin_headers, reference, db_url) -> None:
    with psycopg.connect(db_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) c"
            " FROM ref.admin_area) a"
        ).fetchone()
        # the point of the city farthest from every river within a coarse grid
        far = conn.execute(
            """
            SELECT ST_X(p), ST_Y(p) FROM (
              SELECT ST_SetSRID(ST_MakePoint(%s + dx * 0.05, %s + dy * 0.05), 4326) p
              FROM generate_series(-8, 8) dx, generate_series(-8, 8) dy) g
            ORDER BY (SELECT min(ST_Distance(r.geom::geography, g.p::geography))
                      FROM ref.river r) DESC LIMIT 1
            """,
            (lon, lat),
        ).fetchone()
        conn.execute(
            "INSERT INTO iot.monitoring_site (id, kind, name_zh, geom)"
            " VALUES ('WQ-TEST-OFF', 'water_quality', '离河测试站',"
            " ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            far,
        )
        conn.execute(
            "INSERT INTO iot.device (id, kind, site_id) VALUES"
            " ('D-WQ-TEST-OFF', 'water_quality', 'WQ-TEST-OFF')"
        )
        conn.commit()
    try:
        response = api.get("/water/trace/WQ-TEST-OFF", headers=admin_headers)
        assert response.status_code == 422, response.text
        assert "WQ-TEST-OFF is off the river network" in response.json()["detail"]
    finally:
        with psycopg.connect(db_url) as conn:
            conn.execute("DELETE FROM iot.device WHERE id = 'D-WQ-TEST-OFF'")
            conn.execute("DELETE FROM iot.monitoring_site WHERE id = 'WQ-TEST-OFF'")
            conn.commit()


def _state(conn: psycopg.Connection, device: str, kind: str, reading: dict) -> None:
    conn.execute(
        """
        INSERT INTO iot.device_state (device_id, kind, ts, reading) VALUES (%s, %s, now(), %s)
        ON CONFLICT (device_id) DO UPDATE SET ts = now(), reading = excluded.reading
        """,
        (device, kind, Jsonb(reading)),
    )


def test_drought_grades_at_the_boundary_and_a_faulty_probe(
    api, admin_headers, reference, db_url
) -> None:
    with psycopg.connect(db_url) as conn:
        probes = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM iot.device WHERE kind = 'soil' ORDER BY site_id"
            ).fetchall()
        ]
        # field capacity 42 %: 25.2 % is R = 60 exactly (轻旱), 25.3 % is above (无旱);
        # 60 % is above saturation (50 %): left out; the rest dry at R = 35 (重旱)
        values = [25.2, 25.3, 60.0, *([14.7] * (len(probes) - 3))]
        for device, vwc in zip(probes, values, strict=True):
            _state(conn, device, "soil", {"vwc_pct": vwc, "temp_c": 15.0})
        conn.commit()
    try:
        response = api.get("/water/drought?cell_m=2000", headers=admin_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        grades = [p["grade"] for p in body["probes"]]
        assert grades[:3] == [1, 0, -1] and set(grades[3:]) <= {3}
        assert body["probes"][0]["relative_pct"] == 60.0
        assert [x["station"] for x in body["left_out"]] == [body["probes"][2]["station"]]
        assert "above saturation" in body["left_out"][0]["reason"]
        assert body["districts"] and sum(d["cropland_km2"] for d in body["districts"]) > 0
        for d in body["districts"]:
            assert sum(d["km2"].values()) == pytest.approx(d["cropland_km2"], abs=0.05)
    finally:
        with psycopg.connect(db_url) as conn:
            conn.execute("DELETE FROM iot.device_state WHERE device_id = ANY(%s)", (probes,))
            conn.commit()


def test_permit_use_quota_fee_and_a_meter_running_backwards(
    api, admin_headers, reference, db_url
) -> None:
    with psycopg.connect(db_url) as conn:
        permit, device, start, quota = conn.execute(
            "SELECT p.id, m.device_id, m.year_start_m3, p.annual_quota_m3 FROM water.permit p"
            " JOIN water.meter m ON m.permit_id = p.id ORDER BY p.id LIMIT 1"
        ).fetchone()
        used = 0.95 * quota  # past the 90 % warning, within the quota
        now = datetime.now(UTC)
        readings = [(now - timedelta(hours=2), start + 0.5 * quota), (now, start + used)]
        conn.cursor().executemany(
            "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
            " VALUES (%s, 'water_meter', %s, %s)",
            [(device, ts, Jsonb({"volume_m3": v})) for ts, v in readings],
        )
        _state(conn, device, "water_meter", {"volume_m3": start + used})
        conn.commit()
    try:
        listed = api.get("/water/permits", headers=admin_headers)
        assert listed.status_code == 200, listed.text
        mine = next(p for p in listed.json()["permits"] if p["permit_id"] == permit)
        assert mine["state"] == "warning" and mine["used_m3"] == round(used, 1)
        assert mine["fee_yuan"] == water_fee(used, quota)
        detail = api.get(f"/water/permits/{permit}/use?base_rate=1.0", headers=admin_headers)
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert body["used_m3"] == pytest.approx(used, abs=0.1)
        assert body["before_readings_m3"] == pytest.approx(0.5 * quota, abs=0.1)
        assert sum(d["used_m3"] for d in body["daily"]) == pytest.approx(0.45 * quota, abs=0.2)
        assert body["fee_yuan"] == pytest.approx(used * 1.0, abs=0.01)  # within quota: base
        # a reading below the last: the meter ran backwards; reported, not summed
        with psycopg.connect(db_url) as conn:
            conn.execute(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, 'water_meter', now() + interval '1 second', %s)",
                (device, Jsonb({"volume_m3": start + 0.9 * quota})),
            )
            conn.commit()
        body = api.get(f"/water/permits/{permit}/use", headers=admin_headers).json()
        assert body["state"] == "meter_fault" and "ran backwards" in body["fault"]
        assert body["used_m3"] is None
        assert api.get("/water/permits/NOPE/use", headers=admin_headers).status_code == 404
    finally:
        with psycopg.connect(db_url) as conn:
            conn.execute("DELETE FROM iot.telemetry WHERE device_id = %s", (device,))
            conn.execute("DELETE FROM iot.device_state WHERE device_id = %s", (device,))
            conn.commit()


def test_the_application_is_described_and_its_panel_served(api, admin_headers) -> None:
    apps = api.get("/apps").json()
    water = next(a for a in apps["applications"] if a["name"] == "water")
    assert water["prefix"] == "/water"
    assert water["kinds"] == ["soil", "water_quality", "well", "water_meter"]
    well = next(k for k in apps["kinds"] if k["name"] == "well")
    assert well["thresholds"][0]["rule"] == "well.overdraft"
    page = api.get("/console").text
    static = page.split('src="', 1)[1].split("/app.js", 1)[0]
    panel = api.get(f"{static}/{water['panels'][0]['module']}")
    assert panel.status_code == 200 and "export function mount" in panel.text
    assert ".innerHTML" not in panel.text  # DOM from ctx.el only
    strings = api.get(f"{static}/{water['panels'][0]['strings']}").json()
    assert strings["zh"].keys() == strings["en"].keys()
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/water/quality/classes", "/water/trace/{station}", "/water/drought",
                 "/water/permits", "/water/permits/{permit_id}/use"):  # fmt: skip
        assert path in paths


def test_registering_permits_refuses_overlaps_and_bad_codes(
    api, admin_headers, reference, db_url
) -> None:
    with psycopg.connect(db_url) as conn:
        uscc, site = conn.execute(
            "SELECT holder_uscc, source_site_id FROM water.permit ORDER BY id LIMIT 1"
        ).fetchone()
    body = {
        "permit_id": "WP-TEST-0001",
        "holder_uscc": uscc,
        "holder_name": "测试取水户",
        "source_type": "groundwater",
        "source_site_id": site,
        "sector": "agriculture",
        "annual_quota_m3": 12_000,
        "season_months": [3, 4, 5],
        "valid_from": "2040-01-01",
        "valid_until": "2044-12-31",
    }
    try:
        created = api.post("/water/permits", json=body, headers=admin_headers)
        assert created.status_code == 201, created.text
        assert created.json()["state"] == "no_reading"
        # the same holder and source, May in common, validity overlapping: refused
        clash = {**body, "permit_id": "WP-TEST-0002", "season_months": [5, 6],
                 "valid_from": "2044-06-01", "valid_until": "2048-12-31"}  # fmt: skip
        response = api.post("/water/permits", json=clash, headers=admin_headers)
        assert response.status_code == 409 and "overlaps WP-TEST-0001" in response.json()["detail"]
        # June on: no month in common, accepted
        apart = {**clash, "season_months": [6, 7]}
        assert api.post("/water/permits", json=apart, headers=admin_headers).status_code == 201
        for change, words in (
            ({"holder_uscc": uscc[:-1] + ("0" if uscc[-1] != "0" else "1")}, "check character"),
            ({"source_site_id": "NOPE"}, "not a registered monitoring site"),
            ({"sector": "mining"}, "mining"),
            ({"season_months": [13]}, "within 1..12"),
        ):
            bad = {**body, "permit_id": "WP-TEST-0009", **change}
            response = api.post("/water/permits", json=bad, headers=admin_headers)
            assert response.status_code == 422, response.text
            assert words in response.json()["detail"]
    finally:
        with psycopg.connect(db_url) as conn:
            conn.execute("DELETE FROM water.permit WHERE id LIKE 'WP-TEST-%'")
            conn.commit()


def test_zones_and_permits_are_catalog_layers(api, admin_headers, reference) -> None:
    zones = api.get("/collections/water_function_zones/items?limit=5", headers=admin_headers)
    assert zones.status_code == 200, zones.text
    feature = zones.json()["features"][0]
    assert feature["geometry"]["type"] == "MultiLineString"
    assert 1 <= feature["properties"]["target_class"] <= 5
    permits = api.get("/collections/water_permits/items?limit=5", headers=admin_headers)
    assert permits.status_code == 200, permits.text
    first = permits.json()["features"][0]
    assert first["id"].startswith("WP-") and first["properties"]["annual_quota_m3"] > 0
