"""The environment application on the platform: reference data, AQI, sources, plume,
exceedances and the inspection workflow, through the HTTP API of the whole platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from apps.environment import inspection
from gis_core.db import connect
from gis_core.identity import create_user

pytestmark = pytest.mark.services

CST = timedelta(hours=8)


def _token(api: Any, username: str, password: str) -> dict[str, str]:
    r = api.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def people(api: Any, db_url: str, reference: object) -> dict[str, dict[str, str]]:
    with connect(db_url) as conn:
        for name, roles in (("env-insp", ["inspector"]), ("env-boss", ["supervisor"])):
            conn.execute("DELETE FROM auth.app_user WHERE username = %s", (name,))
            create_user(conn, username=name, password="pw-" + name * 2, roles=roles,
                        department="environment")  # fmt: skip
        conn.commit()
    return {n: _token(api, n, "pw-" + n * 2) for n in ("env-insp", "env-boss")}


def _write_air(
    conn: psycopg.Connection, device: str, start: datetime, hours: int, **v: float
) -> None:
    rows = [
        (device, "air", start + timedelta(minutes=10 * k), orjson.dumps(v).decode())
        for k in range(hours * 6)
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
            " VALUES (%s, %s, %s, %s::jsonb)"
            " ON CONFLICT DO NOTHING",
            rows,
        )


def test_reference_has_outlets_limits_and_weather_stations(db_url: str, reference: object) -> None:
    with connect(db_url) as conn:
        outlets = conn.execute(
            "SELECT count(*), count(device_id), count(DISTINCT mn) FROM env.outlet"
        ).fetchone()
        stacks = conn.execute(
            "SELECT count(*) FROM env.pollution_source WHERE kind IN ('stack', 'outfall')"
        ).fetchone()
        emission = conn.execute(
            "SELECT count(*) FROM iot.device WHERE kind = 'emission'"
        ).fetchone()
        weather = conn.execute(
            "SELECT count(*) FROM iot.device d JOIN iot.monitoring_site s ON s.id = d.site_id"
            " WHERE d.kind = 'weather' AND d.expected_interval_s = 600"
        ).fetchone()
        districts = conn.execute(
            "SELECT count(*) FROM ref.admin_area WHERE level = 'district'"
        ).fetchone()
        so2 = conn.execute(
            "SELECT min(limit_value), max(limit_value) FROM env.outlet_limit"
            " WHERE pollutant = 'so2_mgm3'"
        ).fetchone()
    assert outlets and stacks and emission and weather and districts and so2
    assert outlets[0] == stacks[0] > 0
    assert outlets[2] == outlets[0]  # every MN unique
    assert outlets[1] == emission[0]  # every stack's monitor is its outlet's device
    assert weather[0] == districts[0] > 0
    assert 30.0 <= so2[0] <= so2[1] <= 50.0  # the permits of the reference stacks


def test_aqi_by_station_district_city_both_standards(
    api: Any, admin_headers: dict[str, str], db_url: str
) -> None:
    # One station, three local days at constant concentrations. Daily PM2.5 70 µg/m³ is IAQI
    # 50 + 50·(70−35)/(75−35) = 93.75 → 94 by HJ 633-2012 and 100 + 50·(70−60)/(115−60) =
    # 109.09 → 110 (rounded up) by HJ 633-2026, whose level II ends at 60 µg/m³.
    with connect(db_url) as conn:
        device = conn.execute(
            "SELECT id FROM iot.device WHERE kind = 'air' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        day = datetime(2026, 11, 2, tzinfo=UTC) - CST  # local midnight
        conn.execute("DELETE FROM iot.telemetry WHERE kind = 'air'")
        _write_air(
            conn,
            device,
            day - timedelta(days=1),
            72,
            pm25=70,
            pm10=90,
            so2=10,
            no2=20,
            o3=40,
            co=0.5,
        )
        conn.commit()
    params = {"scope": "station", "period": "daily", "start": "2026-11-02", "end": "2026-11-02"}
    both = {}
    for standard in ("HJ 633-2012", "HJ 633-2026"):
        r = api.get(
            "/environment/aqi", params={**params, "standard": standard}, headers=admin_headers
        )
        assert r.status_code == 200, r.text
        rows = [x for x in r.json()["rows"] if x["id"] == device]
        assert len(rows) == 1 and rows[0]["standard"] == standard
        both[standard] = rows[0]
    assert both["HJ 633-2012"]["aqi"] == 94 and both["HJ 633-2012"]["primary"] == ["pm25"]
    assert both["HJ 633-2026"]["aqi"] == 110 and both["HJ 633-2026"]["level"] == 3
    hourly = api.get(
        "/environment/aqi",
        params={"scope": "city", "period": "hourly", "standard": "auto", "start": "2026-11-02"},
        headers=admin_headers,
    )
    assert hourly.status_code == 200
    rows = hourly.json()["rows"]
    assert len(rows) == 24 and {r["standard"] for r in rows} == {"HJ 633-2026"}
    bad = api.get("/environment/aqi", params={"standard": "HJ 633-2099"}, headers=admin_headers)
    assert bad.status_code == 400 and "standard" in bad.json()["detail"]


def test_sources_with_outlets_and_limits(
    api: Any, admin_headers: dict[str, str], reference: object
) -> None:
    r = api.get("/environment/sources", params={"limit": 5}, headers=admin_headers)
    assert r.status_code == 200, r.text
    sources = r.json()
    assert sources and all(s["outlets"] for s in sources if s["kind"] in ("stack", "outfall"))
    one = api.get(f"/environment/sources/{sources[0]['id']}", headers=admin_headers).json()
    outlet = one["outlets"][0]
    assert outlet["standard"].startswith("GB") and outlet["limits"]
    assert api.get("/environment/sources/999999", headers=admin_headers).status_code == 404


def test_plume_contours_and_affected(api: Any, admin_headers: dict[str, str], db_url: str) -> None:
    with connect(db_url) as conn:
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) c FROM ref.admin_area"
            " WHERE level = 'city') x"
        ).fetchone()
    body = {"lon": lon, "lat": lat, "emission_gs": 500, "wind_ms": 2.0, "wind_from_deg": 0,
            "temp_c": 15, "stability": "D", "thresholds": [10, 100, 1000]}  # fmt: skip
    r = api.post("/environment/plume", json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [f["properties"]["threshold_ugm3"] for f in out["features"]] == [10, 100, 1000]
    pops = [f["properties"]["population"] for f in out["features"]]
    assert pops[0] >= pops[1] >= pops[2] >= 0
    assert out["peak"]["lat"] < lat  # a north wind carries the plume south
    calm = api.post("/environment/plume", json={**body, "wind_ms": 0}, headers=admin_headers)
    assert calm.status_code == 422 and "calm" in calm.json()["detail"]
    away = api.post(
        "/environment/plume", json={**body, "lon": 100.0, "lat": 30.0}, headers=admin_headers
    )
    assert away.status_code == 422 and "outside" in away.json()["detail"]


def test_exceedance_opens_task_and_workflow(
    api: Any, db_url: str, people: dict[str, dict[str, str]]
) -> None:
    with connect(db_url) as conn:
        device, limit = conn.execute(
            "SELECT o.device_id, l.limit_value FROM env.outlet o JOIN env.outlet_limit l"
            " ON l.outlet_id = o.id AND l.pollutant = 'so2_mgm3'"
            " WHERE o.device_id IS NOT NULL ORDER BY o.id LIMIT 1"
        ).fetchone()
        conn.execute("DELETE FROM env.exceedance")
        start = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
        values = [limit * 0.5] * 6 + [limit * 1.5] * 12 + [limit * 0.5] * 18  # 10-min readings
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, 'emission', %s, %s::jsonb)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        device,
                        start + timedelta(minutes=10 * k),
                        orjson.dumps({"so2_mgm3": v}).decode(),
                    )
                    for k, v in enumerate(values)
                ],
            )
        conn.commit()
    boss, insp = people["env-boss"], people["env-insp"]
    r = api.post("/environment/exceedances/scan", json={"hours": 8}, headers=insp)
    assert r.status_code == 200, r.text
    new = [n for n in r.json()["new"] if n["device_id"] == device]
    assert len(new) == 1 and new[0]["peak"] == pytest.approx(limit * 1.5)
    again = api.post("/environment/exceedances/scan", json={"hours": 8}, headers=insp).json()
    assert not [n for n in again["new"] if n["device_id"] == device]  # stored once
    # A window that begins inside the event continues it rather than storing a second one.
    later = api.post("/environment/exceedances/scan", json={"hours": 5}, headers=insp).json()
    assert not [n for n in later["new"] if n["device_id"] == device]
    listed = api.get("/environment/exceedances", params={"kind": "emission"}, headers=insp).json()
    assert len([e for e in listed if e["device_id"] == device]) == 1
    event = next(e for e in listed if e["device_id"] == device)
    assert event["hours"] == 2 and event["ended_at"] is not None
    task_id = event["task_id"]
    # The workflow: the inspector cannot assign; the supervisor assigns; the assignee works.
    step = lambda who, state, **kw: api.post(  # noqa: E731
        f"/environment/tasks/{task_id}/transition", json={"state": state, **kw}, headers=who
    )
    assert step(insp, "assigned", assignee="env-insp").status_code == 403
    assert step(boss, "closed").status_code == 409
    assert step(boss, "assigned", assignee="nobody-here").status_code == 422
    assert step(boss, "assigned", assignee="env-insp").json()["state"] == "assigned"
    assert step(insp, "inspecting").json()["state"] == "inspecting"
    assert step(insp, "reported", note="脱硫塔故障，已整改").json()["state"] == "reported"
    assert step(boss, "closed").json()["state"] == "closed"
    with connect(db_url) as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM auth.audit_log WHERE object_type = 'env.inspection_task'"
            " AND object_id = %s ORDER BY id", (str(task_id),)).fetchall()]  # fmt: skip
    assert actions == [
        "create",
        "transition:open->assigned",
        "transition:assigned->inspecting",
        "transition:inspecting->reported",
        "transition:reported->closed",
    ]


def test_task_create_and_overdue(api: Any, people: dict[str, dict[str, str]]) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = api.post(
        "/environment/tasks", json={"title": "信访核查", "due_at": past}, headers=people["env-insp"]
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "open" and r.json()["overdue"] is True
    overdue = api.get(
        "/environment/tasks", params={"overdue": True}, headers=people["env-insp"]
    ).json()
    assert r.json()["id"] in [t["id"] for t in overdue]
    naive = api.post("/environment/tasks", json={"title": "x", "due_at": "2026-12-08T17:00:00"},
                     headers=people["env-insp"])  # fmt: skip
    assert naive.status_code == 422


def test_transitions_table_is_closed() -> None:
    for state, nexts in inspection.TRANSITIONS.items():
        assert set(nexts) <= set(inspection.TASK_STATES), state


def test_watcher_round_stores_opens_a_task_and_announces(db_url: str, reference: object) -> None:
    from apps.environment.watch import watch_once

    with connect(db_url) as conn:
        device, limit = conn.execute(
            "SELECT o.device_id, l.limit_value FROM env.outlet o JOIN env.outlet_limit l"
            " ON l.outlet_id = o.id AND l.pollutant = 'nox_mgm3'"
            " WHERE o.device_id IS NOT NULL ORDER BY o.id DESC LIMIT 1"
        ).fetchone()
        start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, reading)"
                " VALUES (%s, 'emission', %s, %s::jsonb) ON CONFLICT DO NOTHING",
                [
                    (device, start + timedelta(minutes=10 * k),
                     orjson.dumps({"nox_mgm3": limit * 2}).decode())
                    for k in range(6)
                ],
            )  # fmt: skip
        late = inspection.create_task(
            conn, None, title="overdue", due_at=datetime.now(UTC) - timedelta(hours=1)
        )
        conn.commit()
    published: list[bytes] = []
    assert watch_once(db_url, published.append) >= 1
    events = [orjson.loads(p) for p in published]
    mine = [e for e in events if e["type"] == "exceedance" and
            e["exceedance"]["device_id"] == device]  # fmt: skip
    assert len(mine) == 1
    assert mine[0]["exceedance"]["pollutant"] == "nox_mgm3" and mine[0]["exceedance"]["task_id"]
    escalated = [e for e in events if e["type"] == "task" and e["task_id"] == late["id"]]
    assert len(escalated) == 1 and escalated[0]["event"] == "escalated"
    published.clear()
    assert watch_once(db_url, published.append) == 0  # the next round finds nothing new
    assert not [e for e in map(orjson.loads, published) if e.get("task_id") == late["id"]]
