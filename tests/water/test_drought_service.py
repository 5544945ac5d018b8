"""Drought on the loaded reference dataset: SPI from the gauges' record and telemetry, the
outlook from the weather, 抗旱统计 by district and town, the grid, the district alarms."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg.types.json import Jsonb

from apps.water import drought, drought_service, service

pytestmark = pytest.mark.services


def _set_probes(conn: psycopg.Connection, vwc: float) -> list[str]:
    """Every soil probe's latest reading at ``vwc`` % (the caller rolls back)."""
    probes = [r[0] for r in conn.execute("SELECT id FROM iot.device WHERE kind = 'soil'")]
    conn.cursor().executemany(
        """
        INSERT INTO iot.device_state (device_id, kind, ts, reading) VALUES (%s, 'soil', now(), %s)
        ON CONFLICT (device_id) DO UPDATE SET ts = now(), reading = excluded.reading
        """,
        [(p, Jsonb({"vwc_pct": vwc})) for p in probes],
    )
    return probes


def test_uniform_moisture_gives_one_grade_everywhere(reference, db_url: str) -> None:
    # 18.9 % of a 42 % field capacity is R = 45 %: 中旱 on every cell, district and town
    with psycopg.connect(db_url) as conn:
        try:
            _set_probes(conn, 18.9)
            status = service.drought_status(conn)
            assert status["districts"] and status["towns"]
            for area in status["districts"] + status["towns"]:
                if area["cropland_km2"] == 0:
                    assert area["grade"] == -1 and area["mean_relative_pct"] is None
                    continue
                assert area["mean_relative_pct"] == pytest.approx(45.0, abs=0.05)
                assert (area["grade"], area["grade_zh"]) == (2, "中旱")
                assert area["km2"]["中旱"] == area["cropland_km2"] == area["drought_km2"]
            # the towns share out their districts' cropland, nothing lost or counted twice
            by_district = pd.DataFrame(status["towns"]).groupby("district_code")["cropland_km2"]
            for d in status["districts"]:
                if d["district_code"] in by_district.groups:
                    total = by_district.get_group(d["district_code"]).sum()
                    assert total == pytest.approx(d["cropland_km2"], abs=0.05)
            grid = service.drought_geojson(conn)
            assert {f["properties"]["grade"] for f in grid["features"]} == {2}
            km2 = sum(f["properties"]["km2"] for f in grid["features"])
            assert km2 == pytest.approx(sum(d["cropland_km2"] for d in status["districts"]), 1e-3)
            lon, lat = grid["features"][0]["geometry"]["coordinates"][0][0]
            assert 100 < lon < 125 and 20 < lat < 50  # WGS 84, not the metric plane
        finally:
            conn.rollback()


def test_district_alarms_follow_the_grade_entered(reference, db_url: str) -> None:
    def open_rules(conn: psycopg.Connection) -> set[str]:
        return {
            r[0]
            for r in conn.execute(
                "SELECT rule FROM iot.alarm WHERE kind = 'soil' AND cleared_at IS NULL"
                " AND rule LIKE 'soil.district_drought_%'"
            )
        }

    with psycopg.connect(db_url) as conn:
        try:
            _set_probes(conn, 27.0)  # R = 64.3: 无旱, no alarm
            _, events = drought_service.check_districts(conn)
            assert events == [] and open_rules(conn) == set()
            _set_probes(conn, 18.9)  # R = 45: enters 中旱, raising 轻旱 and 中旱
            _, events = drought_service.check_districts(conn)
            assert open_rules(conn) == {"soil.district_drought_1", "soil.district_drought_2"}
            assert {(e["type"], e["event"], e["grade"]) for e in events} == {
                ("drought", "raised", 2)
            }
            assert all(e["grade_zh"] == "中旱" and e["lon"] is not None for e in events)
            again, _ = drought_service.check_districts(conn)
            assert again == []  # still 中旱: nothing new to say
            _set_probes(conn, 23.1)  # R = 55: back to 轻旱, 中旱 cleared
            _, events = drought_service.check_districts(conn)
            assert open_rules(conn) == {"soil.district_drought_1"}
            assert {(e["event"], e["rule"]) for e in events} == {
                ("cleared", "soil.district_drought_2")
            }
        finally:
            conn.rollback()


def test_outlook_after_a_soaking_rain_by_hand(reference, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        try:
            _set_probes(conn, 12.6)  # R = 30
            now = datetime.now(UTC)
            result = drought_service.drought_outlook(
                conn, 2, [100.0, 0.0], "other", tmin_c=10.0, tmax_c=24.0, now=now
            )
        finally:
            conn.rollback()
    first = now.astimezone(service.LOCAL).date() + timedelta(days=1)
    lat = np.mean([p["lat"] for p in _probe_sites(db_url)])
    doy = np.array([first.timetuple().tm_yday, first.timetuple().tm_yday + 1])
    et0 = drought.hargreaves_et0(np.array([10.0, 10.0]), np.array([24.0, 24.0]), lat, doy)
    # 100 mm fills the 84 mm root zone (42 % of 200 mm), the rest drains; then ET at full rate
    day1 = 84.0 - et0[0]
    day2 = day1 - et0[1] * min(1.0, day1 / 63.0)
    probe = result["probes"][0]
    assert probe["today_pct"] == 30.0
    assert probe["relative_pct"] == [round(day1 / 84 * 100, 1), round(day2 / 84 * 100, 1)]
    assert result["weather"]["temperature"] == "given"
    assert result["dates"] == [first.isoformat(), (first + timedelta(days=1)).isoformat()]


def _probe_sites(db_url: str) -> list[dict[str, float]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT ST_Y(s.geom) FROM iot.monitoring_site s"
            " JOIN iot.device d ON d.site_id = s.id AND d.kind = 'soil'"
        ).fetchall()
    return [{"lat": r[0]} for r in rows]


def test_outlook_takes_the_observed_temperature_and_dries(reference, db_url: str) -> None:
    now = datetime.now(UTC)
    yesterday = now.astimezone(service.LOCAL).date() - timedelta(days=1)
    with psycopg.connect(db_url) as conn:
        try:
            _set_probes(conn, 23.1)  # R = 55, 轻旱
            others = conn.execute(
                "SELECT count(*) FROM iot.telemetry WHERE kind = 'weather' AND ts >= %s",
                (now - timedelta(days=7),),
            ).fetchone()[0]
            station = conn.execute(
                "SELECT id FROM iot.device ORDER BY kind = 'weather' DESC, id LIMIT 1"
            ).fetchone()[0]
            conn.cursor().executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, 'weather', %s, %s)",
                [
                    (
                        station,
                        datetime.combine(yesterday, datetime.min.time(), service.LOCAL)
                        + timedelta(hours=h),
                        Jsonb({"temp_c": t}),
                    )
                    for h, t in ((3, 14.0), (9, 22.0), (15, 30.0), (21, 18.0))
                ],
            )
            hot = drought_service.drought_outlook(conn, 7, None, "other", now=now)
        finally:
            conn.rollback()
    weather = hot["weather"]
    assert weather["temperature"].startswith("persistence")
    assert weather["rain_mm"] == [0.0] * 7
    if others == 0:  # alone in the window, the day's extremes are the forecast
        assert (weather["tmin_c"], weather["tmax_c"]) == (14.0, 30.0)
    assert hot["districts"]
    for d in hot["districts"]:
        assert d["relative_pct"] == sorted(d["relative_pct"], reverse=True)  # no rain: drying
        drier = [k for k, g in enumerate(d["grade"]) if g > d["today_grade"]]
        if drier:
            assert d["enters"] == {
                "date": hot["dates"][drier[0]],
                "grade": d["grade"][drier[0]],
                "grade_zh": drought.GRADE_NAMES[d["grade"][drier[0]]],
            }
        else:
            assert d["enters"] is None


@pytest.fixture
def known_gauges(reference, db_url: str) -> Iterator[tuple[str, str, np.ndarray, date]]:
    """The first gauge's record replaced by a known series whose last month comes from its
    telemetry; the second's cut to twelve months. Restored afterwards."""
    last = drought_service._last_complete_month()
    with psycopg.connect(db_url) as conn:
        # Gauges at a site: other modules add bare rain devices to the shared database.
        first, second = [
            r[0]
            for r in conn.execute(
                "SELECT d.id FROM iot.device d JOIN iot.monitoring_site s ON s.id = d.site_id"
                " WHERE d.kind = 'rain' ORDER BY d.id"
            )
        ][:2]
        saved = conn.execute(
            "SELECT gauge_id, month, mm, source FROM water.rain_month WHERE gauge_id = ANY(%s)",
            ([first, second],),
        ).fetchall()
        conn.execute("DELETE FROM water.rain_month WHERE gauge_id = ANY(%s)", ([first, second],))
        months = pd.date_range(date(last.year - 29, 1, 1), last, freq="MS")
        rng = np.random.default_rng(5)
        series = np.round(rng.gamma(1.5, 30.0, months.size), 1)
        conn.cursor().executemany(
            "INSERT INTO water.rain_month VALUES (%s, %s, %s, 'test')",
            [(first, m.date(), float(v)) for m, v in zip(months[:-1], series[:-1], strict=True)]
            + [(second, m.date(), 10.0) for m in months[-12:]],
        )
        # the last month from telemetry: two readings that add up to its total
        noon = datetime(last.year, last.month, 10, 12, tzinfo=service.LOCAL)
        conn.execute("SELECT iot.ensure_telemetry_partitions(%s, %s)", (noon.date(), noon.date()))
        conn.cursor().executemany(
            "INSERT INTO iot.telemetry (device_id, kind, ts, reading) VALUES (%s, 'rain', %s, %s)",
            [
                (first, noon, Jsonb({"mm": float(series[-1]) - 1.0})),
                (first, noon + timedelta(hours=1), Jsonb({"mm": 1.0})),
            ],
        )
        conn.commit()
    yield first, second, series, last
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM water.rain_month WHERE gauge_id = ANY(%s)", ([first, second],))
        conn.execute(
            "DELETE FROM iot.telemetry WHERE device_id = %s AND kind = 'rain' AND ts >= %s"
            " AND ts <= %s",
            (first, noon, noon + timedelta(hours=1)),
        )
        conn.cursor().executemany("INSERT INTO water.rain_month VALUES (%s, %s, %s, %s)", saved)
        conn.commit()


def test_spi_from_the_record_and_telemetry(api, admin_headers, known_gauges) -> None:
    first, second, series, last = known_gauges
    for scale in (1, 3, 6):
        response = api.get(f"/water/drought/spi?scale={scale}", headers=admin_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["month"] == f"{last:%Y-%m}"
        gauge = next(g for g in body["gauges"] if g["gauge"] == first)
        expected = drought.spi(series, scale, last.year - 29)[-1]
        assert gauge["spi"] == pytest.approx(expected, abs=1e-3)
        assert gauge["precip_mm"] == pytest.approx(series[-scale:].sum(), abs=0.05)
        assert gauge["months_of_record"] == series.size
        assert gauge["grade"] == int(drought.spi_grade(expected))
        short = next(x for x in body["left_out"] if x["gauge"] == second)
        assert short["reason"] == "12 months of record, SPI needs 24"
        code = gauge["district_code"]
        assert next(d for d in body["districts"] if d["district_code"] == code)["gauges"] >= 1


def test_drought_routes_refuse_bad_input(api, admin_headers) -> None:
    for url, status, expect in (
        ("/water/drought/spi?scale=2", 400, "scale must be one of 1, 3, 6"),
        ("/water/drought/spi?month=2026-13", 400, "is not a month"),
        ("/water/drought/spi?month=2999-01", 400, "is not complete yet"),
        ("/water/drought/outlook?days=3&rain_mm=1,2", 400, "rain_mm has 2 values for 3 days"),
        ("/water/drought/outlook?rain_mm=a,b", 400, "must be numbers"),
        ("/water/drought/outlook?rain_mm=1,1,1,-1,1,1,1", 400, "not negative"),
        ("/water/drought/outlook?tmin_c=20&tmax_c=10", 400, "below tmin_c"),
        ("/water/drought/grid?stage=winter", 400, "crop stage 'winter'"),
    ):
        response = api.get(url, headers=admin_headers)
        assert response.status_code == status, (url, response.text)
        assert expect in response.text, (url, response.text)


def test_drought_grid_route_is_geojson(api, admin_headers) -> None:
    response = api.get("/water/drought/grid?cell_m=2000", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["cell_m"] == 2000
