"""Dispatch through the API and the monitor: incidents, geocoding, recommendations,
assignments (with the race), multi-agency rules, GPS lifecycle, escalations, CAP, coverage,
the 12345 import, and every kind of bad input answered with a clear 4xx."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from apps.dispatch import cap, coverage, gazetteer, incidents
from apps.dispatch.monitor import ALARM_TOPIC, EVENT_TOPIC, DispatchMonitor, parse_live
from apps.dispatch.plans import DispatchSettings
from gis_core.errors import Conflict
from gis_core.identity import Principal, create_user

pytestmark = pytest.mark.services

OUTSIDE = (116.397, 39.909)  # Beijing


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dapi(api: Any, reference: object) -> Any:
    """The API (which serves dispatch) once the reference data is loaded."""
    return api


@pytest.fixture(scope="module")
def users(dapi: Any, db_url: str) -> dict[str, dict[str, str]]:
    """Bearer headers of a fire dispatcher, a 120 dispatcher, a supervisor and a viewer."""
    suffix = secrets.token_hex(3)
    specs = {
        "fire": (["dispatcher"], "fire"),
        "medical": (["dispatcher"], "medical"),
        "supervisor": (["supervisor"], "command"),
        "viewer": (["viewer"], "hotline"),
    }
    out: dict[str, dict[str, str]] = {}
    with psycopg.connect(db_url) as conn:
        for name, (roles, dept) in specs.items():
            create_user(
                conn,
                username=f"dsp-{name}-{suffix}",
                password="dispatch-pass-1",
                roles=roles,
                department=dept,
            )
        conn.commit()
    for name in specs:
        r = dapi.post(
            "/auth/token",
            data={"username": f"dsp-{name}-{suffix}", "password": "dispatch-pass-1"},
        )
        assert r.status_code == 200, r.text
        out[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out


@pytest.fixture(scope="module")
def stations(reference: object, db_url: str) -> dict[str, tuple[float, float]]:
    """Each unit's station position."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT u.id, ST_X(p.geom), ST_Y(p.geom) FROM ops.unit u"
            " JOIN ref.poi p ON p.id = u.station_poi_id"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.fixture
def clean(reference: object, db_url: str, stations) -> Iterator[psycopg.Connection]:
    """No incidents, every unit available and live at its station."""
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE ops.incident CASCADE")
        conn.execute("TRUNCATE ops.gps_suspect")
        conn.execute("DELETE FROM iot.alarm WHERE kind = 'dispatch'")
        conn.execute("UPDATE ops.unit SET status = 'available'")
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO iot.device_state (device_id, kind, ts, geom, reading, online)
                SELECT u.device_id, 'vehicle', now(),
                       ST_SetSRID(ST_MakePoint(%s, %s), 4326), '{}', true
                FROM ops.unit u WHERE u.id = %s
                ON CONFLICT (device_id) DO UPDATE SET ts = now(), geom = excluded.geom,
                    online = true
                """,
                [(lon, lat, unit) for unit, (lon, lat) in stations.items()],
            )
        conn.commit()
        yield conn
        # Leave nothing live behind: silent vehicles would look offline to later tests.
        conn.rollback()
        conn.execute("TRUNCATE ops.incident CASCADE")
        conn.execute("TRUNCATE ops.gps_suspect")
        conn.execute("DELETE FROM iot.alarm WHERE kind = 'dispatch'")
        conn.execute("UPDATE ops.unit SET status = 'available'")
        conn.execute(
            "DELETE FROM iot.device_state WHERE device_id IN (SELECT device_id FROM ops.unit)"
        )
        conn.commit()


def scene_near(conn: psycopg.Connection, category: str = "fire_station") -> tuple[float, float]:
    """A place in town: 600 m east of the first station of a kind."""
    row = conn.execute(
        "SELECT ST_X(geom) + 0.0066, ST_Y(geom) FROM ref.poi WHERE category = %s"
        " AND district_code = '140403' ORDER BY id LIMIT 1",
        (category,),
    ).fetchone()
    return float(row[0]), float(row[1])


def new_incident(dapi: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = dapi.post("/dispatch/incidents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def boss(users: dict[str, dict[str, str]], db_url: str) -> Principal:
    """The supervisor as a principal, for calling the domain directly."""
    from gis_core.identity import load_principal

    with psycopg.connect(db_url) as conn:
        user_id = conn.execute(
            "SELECT id FROM auth.app_user WHERE username LIKE 'dsp-supervisor-%%'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        found = load_principal(conn, user_id)
    assert found is not None
    return found


# --------------------------------------------------------------------------- gazetteer


def test_gazetteer_strategies(clean: psycopg.Connection) -> None:
    gaz = gazetteer.gazetteer_for(clean)
    poi, address = clean.execute(
        "SELECT name_zh, address FROM ref.poi WHERE category = 'hospital' ORDER BY id LIMIT 1"
    ).fetchone()
    exact = gazetteer.geocode(gaz, poi)
    assert exact["method"] == "exact" and exact["confidence"] == 1.0 and exact["kind"] == "poi"
    # Full-width digits and spaces are normalised away.
    spaced = gazetteer.geocode(gaz, " ".join(address).replace("1", "１"))
    assert spaced["kind"] == "poi"
    road, district = clean.execute(
        """
        SELECT r.name_zh, a.name_zh
        FROM ref.road r JOIN ref.admin_area a ON a.code = r.district_code
        WHERE r.name_zh ~ '[路街]$' GROUP BY 1, 2 HAVING count(*) > 2 ORDER BY 1 LIMIT 1
        """
    ).fetchone()
    numbered = gazetteer.geocode(gaz, f"{district}{road}88号附近")
    assert numbered["match"] == road and numbered["kind"] == "road"
    assert numbered["confidence"] >= 0.9
    typo = gazetteer.geocode(gaz, poi[:-1] + "阮")
    assert typo["match"] == poi and typo["method"] == "fuzzy" and 0.5 < typo["confidence"] < 1
    prefix = gazetteer.geocode(gaz, poi[:-1])
    assert prefix["match"] == poi
    crossing = clean.execute(
        """
        SELECT a.name_zh, b.name_zh FROM ref.road a
        JOIN ref.road b ON b.source = a.target AND a.name_zh <> b.name_zh
        WHERE a.name_zh ~ '[路街]$' AND b.name_zh ~ '[路街]$' ORDER BY a.id LIMIT 1
        """
    ).fetchone()
    at = gazetteer.geocode(gaz, f"{crossing[0]}与{crossing[1]}交叉口")
    assert at["method"] == "intersection" and at["confidence"] >= 0.8
    village = clean.execute("SELECT name_zh FROM ref.village ORDER BY id LIMIT 1").fetchone()[0]
    assert gazetteer.geocode(gaz, village)["kind"] == "village"
    with pytest.raises(gazetteer.Unmatched) as exc:
        gazetteer.geocode(gaz, "火星基地")
    assert exc.value.suggestions


def test_geocode_endpoint_and_unmatched_suggestions(dapi, users, clean) -> None:
    poi = clean.execute("SELECT name_zh FROM ref.poi ORDER BY id LIMIT 1").fetchone()[0]
    r = dapi.get("/dispatch/geocode", params={"q": poi}, headers=users["viewer"])
    assert r.status_code == 200 and r.json()["match"] == poi
    r = dapi.get("/dispatch/geocode", params={"q": "月球背面环形山"}, headers=users["viewer"])
    assert r.status_code == 422
    assert r.json()["suggestions"] and "detail" in r.json()


# --------------------------------------------------------------------------- incidents


def test_create_by_coordinates_any_crs_and_by_address(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    made = new_incident(
        dapi, users["fire"], incident_type="structure_fire", lon=lon, lat=lat, caller="张三"
    )
    assert made["status"] == "new" and made["district_code"] == "140403"
    assert made["area_class"] in ("urban", "rural") and made["response_target_s"] > 0
    assert made["geocode"]["method"] == "coordinates"
    assert made["priority"] == 1  # the type's default
    from gis_core.crs import transform

    x, y = transform(lon, lat, "WGS84", 4547)
    metric = new_incident(dapi, users["fire"], incident_type="fire", lon=x, lat=y, crs="EPSG:4547")
    assert metric["lon"] == pytest.approx(lon, abs=1e-6)
    gx, gy = transform(lon, lat, "WGS84", "GCJ02")
    gcj = new_incident(dapi, users["fire"], incident_type="fire", lon=gx, lat=gy, crs="GCJ02")
    assert gcj["lon"] == pytest.approx(lon, abs=1e-5)
    poi = clean.execute(
        "SELECT name_zh FROM ref.poi WHERE category = 'school' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    by_address = new_incident(dapi, users["medical"], incident_type="medical", address=poi)
    assert by_address["geocode"]["match"] == poi
    assert by_address["geocode"]["confidence"] == 1.0
    detail = dapi.get(f"/dispatch/incidents/{made['id']}", headers=users["viewer"]).json()
    assert detail["timeline"][0]["event"] == "created"
    listed = dapi.get("/dispatch/incidents", headers=users["viewer"]).json()
    assert {i["id"] for i in listed} >= {made["id"], by_address["id"]}
    audit = clean.execute(
        "SELECT count(*) FROM auth.audit_log WHERE object_type = 'incident' AND object_id = %s",
        (str(made["id"]),),
    ).fetchone()[0]
    assert audit == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"incident_type": "alien_invasion", "lon": 113.1, "lat": 36.2}, "unknown incident type"),
        ({"incident_type": "fire", "lon": OUTSIDE[0], "lat": OUTSIDE[1]}, "outside"),
        ({"incident_type": "fire", "lon": 113.1, "lat": 36.2, "crs": "EPSG:999999"}, "CRS"),
        ({"incident_type": "fire", "lon": 113.1, "lat": 36.2, "crs": "bogus"}, "CRS"),
        ({"incident_type": "fire"}, "location"),
        ({"incident_type": "fire", "lon": 113.1}, "both"),
        ({"incident_type": "fire", "lon": 500.0, "lat": 36.2}, "not a place"),
    ],
)
def test_bad_incidents_are_clear_422(dapi, users, clean, body, needle) -> None:
    r = dapi.post("/dispatch/incidents", json=body, headers=users["fire"])
    assert r.status_code == 422, r.text
    assert needle.lower() in str(r.json()["detail"]).lower()


def test_unmatched_address_is_422_with_suggestions(dapi, users, clean) -> None:
    r = dapi.post(
        "/dispatch/incidents",
        json={"incident_type": "fire", "address": "火星基地第九号发射塔"},
        headers=users["fire"],
    )
    assert r.status_code == 422
    body = r.json()
    assert "matches nothing" in body["detail"] or "confidence" in body["detail"]
    assert body["suggestions"] and all("name" in s for s in body["suggestions"])


def test_roles(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    r = dapi.post(
        "/dispatch/incidents",
        json={"incident_type": "fire", "lon": lon, "lat": lat},
        headers=users["viewer"],
    )
    assert r.status_code == 403
    r = dapi.post("/dispatch/incidents", json={"incident_type": "fire", "lon": lon, "lat": lat})
    assert r.status_code == 401


# --------------------------------------------------------------------------- recommend, assign


def test_recommend_assign_and_lifecycle(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    inc = new_incident(dapi, users["supervisor"], incident_type="structure_fire", lon=lon, lat=lat)
    r = dapi.get(
        f"/dispatch/incidents/{inc['id']}/recommendations",
        params={"k": 3},
        headers=users["supervisor"],
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    assert [p["unit_type"] for p in rec["plan"]] == ["engine", "ladder", "ambulance"]
    assert rec["hidden"] == []
    by_type: dict[str, list[dict[str, Any]]] = {}
    for c in rec["candidates"]:
        by_type.setdefault(c["unit_type"], []).append(c)
    for t, ranked in by_type.items():
        etas = [c["eta_s"] for c in ranked if c["eta_s"] is not None]
        assert etas == sorted(etas), t
        assert len(ranked) <= 3
    top = by_type["engine"][0]
    assert top["route"]["type"] == "LineString" and len(top["route"]["coordinates"]) >= 2
    assert top["distance_m"] >= 0 and top["snap"]["edge_id"] is not None
    assert len(rec["proposal"]) == 4  # 2 engines, 1 ladder, 1 ambulance
    # One click: the proposal.
    r = dapi.post(
        f"/dispatch/incidents/{inc['id']}/assignments",
        json={"unit_ids": rec["proposal"]},
        headers=users["supervisor"],
    )
    assert r.status_code == 201, r.text
    made = r.json()["assignments"]
    assert all(m["eta_s"] is not None for m in made)
    status = dict(
        clean.execute(
            "SELECT id, status FROM ops.unit WHERE id = ANY(%s)", (rec["proposal"],)
        ).fetchall()
    )
    assert set(status.values()) == {"dispatched"}
    # Assigned units are no longer recommended.
    again = dapi.get(
        f"/dispatch/incidents/{inc['id']}/recommendations", headers=users["supervisor"]
    ).json()
    assert not set(rec["proposal"]) & {c["unit_id"] for c in again["candidates"]}
    assert again["proposal"] == []
    # The lifecycle by operator action, each step stamped.
    aid = made[0]["assignment_id"]
    for step in ("en_route", "on_scene"):
        r = dapi.post(
            f"/dispatch/assignments/{aid}/status",
            json={"status": step},
            headers=users["supervisor"],
        )
        assert r.status_code == 200, r.text
    r = dapi.post(
        f"/dispatch/assignments/{aid}/status",
        json={"status": "en_route"},
        headers=users["supervisor"],
    )
    assert r.status_code == 409  # no going back
    r = dapi.post(
        f"/dispatch/assignments/{aid}/status",
        json={"status": "teleported"},
        headers=users["supervisor"],
    )
    assert r.status_code == 422
    detail = dapi.get(f"/dispatch/incidents/{inc['id']}", headers=users["viewer"]).json()
    assert detail["status"] == "on_scene"
    first = next(a for a in detail["assignments"] if a["id"] == aid)
    assert first["en_route_at"] and first["on_scene_at"] and first["unit_status"] == "on_scene"
    events = [e["event"] for e in detail["timeline"]]
    assert events[:4] == ["created", "dispatched", "en_route", "on_scene"]
    # Closing clears everyone and frees the units.
    r = dapi.post(f"/dispatch/incidents/{inc['id']}/close", json={}, headers=users["supervisor"])
    assert r.status_code == 200 and r.json()["status"] == "closed"
    freed = clean.execute(
        "SELECT count(*) FROM ops.unit WHERE id = ANY(%s) AND status = 'available'",
        (rec["proposal"],),
    ).fetchone()[0]
    assert freed == len(rec["proposal"])
    r = dapi.post(f"/dispatch/incidents/{inc['id']}/close", json={}, headers=users["supervisor"])
    assert r.status_code == 409
    r = dapi.get(f"/dispatch/incidents/{inc['id']}/recommendations", headers=users["supervisor"])
    assert r.status_code == 422


def test_unavailable_and_unknown_units(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    a = new_incident(dapi, users["fire"], incident_type="fire", lon=lon, lat=lat)
    b = new_incident(dapi, users["fire"], incident_type="fire", lon=lon, lat=lat)
    unit = clean.execute(
        "SELECT id FROM ops.unit WHERE unit_type = 'engine' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    r = dapi.post(
        f"/dispatch/incidents/{a['id']}/assignments",
        json={"unit_ids": [unit]},
        headers=users["fire"],
    )
    assert r.status_code == 201
    r = dapi.post(
        f"/dispatch/incidents/{b['id']}/assignments",
        json={"unit_ids": [unit]},
        headers=users["fire"],
    )
    assert r.status_code == 409 and f"incident {a['id']}" in r.json()["detail"]
    clean.execute("UPDATE ops.unit SET status = 'out_of_service' WHERE id = 'FIRE-E-002'")
    clean.commit()
    r = dapi.post(
        f"/dispatch/incidents/{b['id']}/assignments",
        json={"unit_ids": ["FIRE-E-002"]},
        headers=users["fire"],
    )
    assert r.status_code == 409 and "out_of_service" in r.json()["detail"]
    r = dapi.post(
        f"/dispatch/incidents/{b['id']}/assignments",
        json={"unit_ids": ["NO-SUCH-UNIT"]},
        headers=users["fire"],
    )
    assert r.status_code == 404
    r = dapi.post(
        "/dispatch/incidents/999999/assignments", json={"unit_ids": [unit]}, headers=users["fire"]
    )
    assert r.status_code == 404
    r = dapi.post(
        f"/dispatch/incidents/{b['id']}/assignments", json={"unit_ids": []}, headers=users["fire"]
    )
    assert r.status_code == 422


def test_departments_see_and_assign_only_their_units_unless_joint(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    inc = new_incident(dapi, users["fire"], incident_type="traffic_accident", lon=lon, lat=lat)
    rec = dapi.get(f"/dispatch/incidents/{inc['id']}/recommendations", headers=users["fire"]).json()
    assert {c["department_code"] for c in rec["candidates"]} == {"fire"}
    assert {h["unit_type"] for h in rec["hidden"]} == {"patrol", "ambulance"}
    ambulance = clean.execute(
        "SELECT id FROM ops.unit WHERE unit_type = 'ambulance' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    r = dapi.post(
        f"/dispatch/incidents/{inc['id']}/assignments",
        json={"unit_ids": [ambulance]},
        headers=users["fire"],
    )
    assert r.status_code == 403 and "joint" in r.json()["detail"]
    units = dapi.get("/dispatch/units", headers=users["fire"]).json()
    assert {u["department_code"] for u in units} == {"fire"}
    # Declared joint (by a supervisor: tests/test_security_dispatch.py): every agency's
    # units, for every dispatcher.
    r = dapi.patch(
        f"/dispatch/incidents/{inc['id']}", json={"joint": True}, headers=users["supervisor"]
    )
    assert r.status_code == 200 and r.json()["joint"] is True
    rec = dapi.get(f"/dispatch/incidents/{inc['id']}/recommendations", headers=users["fire"]).json()
    assert rec["hidden"] == []
    assert {"fire", "medical", "police"} <= {c["department_code"] for c in rec["candidates"]}
    r = dapi.post(
        f"/dispatch/incidents/{inc['id']}/assignments",
        json={"unit_ids": [ambulance]},
        headers=users["fire"],
    )
    assert r.status_code == 201


def test_two_dispatchers_one_unit_exactly_one_wins(dapi, users, clean, db_url, boss) -> None:
    lon, lat = scene_near(clean)
    ids = []
    for _ in range(2):
        ids.append(
            incidents.create_incident(
                clean, incidents.Actor(boss), incident_type="medical", lon=lon, lat=lat
            )["id"]
        )
    clean.commit()
    unit = clean.execute(
        "SELECT id FROM ops.unit WHERE unit_type = 'ambulance' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def dispatcher(incident_id: int) -> None:
        with psycopg.connect(db_url) as conn:
            barrier.wait()
            try:
                incidents.assign(conn, incidents.Actor(boss), incident_id, [unit])
                time.sleep(0.3)  # hold the row while the other one tries
                conn.commit()
                results.append("won")
            except Conflict:
                conn.rollback()
                results.append("409")

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["409", "won"]
    live = clean.execute(
        "SELECT count(*) FROM ops.assignment WHERE unit_id = %s AND cleared_at IS NULL", (unit,)
    ).fetchone()[0]
    assert live == 1
    # The same through the API, both requests at once.
    other = clean.execute(
        "SELECT id FROM ops.unit WHERE unit_type = 'ambulance' AND status = 'available'"
        " ORDER BY id LIMIT 1"
    ).fetchone()[0]
    codes: list[int] = []
    go = threading.Barrier(2)

    def post(incident_id: int) -> None:
        go.wait()
        r = dapi.post(
            f"/dispatch/incidents/{incident_id}/assignments",
            json={"unit_ids": [other]},
            headers=users["supervisor"],
        )
        codes.append(r.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(codes) == [201, 409]


# --------------------------------------------------------------------------- the monitor


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _offset(lon: float, lat: float, east_m: float) -> tuple[float, float]:
    import math

    return lon + east_m / (111_320.0 * math.cos(math.radians(lat))), lat


def test_monitor_gps_lifecycle_escalations_and_jumps(dapi, users, clean, settings, db_url, boss):
    lon, lat = scene_near(clean)
    s = DispatchSettings()
    published: list[tuple[str, dict[str, Any]]] = []
    clock = FakeClock()
    monitor = DispatchMonitor(
        settings, s, clock=clock, publish=lambda t, b: published.append((t, b))
    )
    waiting = incidents.create_incident(
        clean, incidents.Actor(boss), incident_type="medical", lon=lon, lat=lat
    )
    clean.commit()
    created = waiting["created_at"].timestamp()
    # Not dispatched within 60 s: an escalation for supervisors, once.
    monitor.run_timers(clean, now=created + 30)
    assert not [p for p in published if p[0] == ALARM_TOPIC]
    monitor.run_timers(clean, now=created + 61)
    monitor.run_timers(clean, now=created + 70)
    raised = [b for t, b in published if t == ALARM_TOPIC and b["event"] == "raised"]
    assert [b["rule"] for b in raised] == ["dispatch.not_dispatched"]
    assert raised[0]["incident_id"] == waiting["id"] and raised[0]["audience"] == ["supervisor"]
    row = clean.execute(
        "SELECT incident_id, cleared_at FROM iot.alarm WHERE rule = 'dispatch.not_dispatched'"
    ).fetchone()
    assert row == (waiting["id"], None)
    # Dispatching clears it.
    unit = clean.execute(
        "SELECT id FROM ops.unit WHERE unit_type = 'ambulance' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    device = clean.execute("SELECT device_id FROM ops.unit WHERE id = %s", (unit,)).fetchone()[0]
    incidents.assign(clean, incidents.Actor(boss), waiting["id"], [unit])
    clean.commit()
    monitor.run_timers(clean, now=created + 75)
    assert clean.execute(
        "SELECT cleared_at IS NOT NULL FROM iot.alarm WHERE rule = 'dispatch.not_dispatched'"
    ).fetchone()[0]
    # A unit that does not move while en route.
    t0 = clock.now = created + 80
    start = _offset(lon, lat, -3000)
    monitor.process_fixes(clean, [(device, t0, *start, 0.0)])
    monitor.run_timers(clean, now=t0 + s.stationary_en_route_s + 5)
    rules = [b["rule"] for t, b in published if t == ALARM_TOPIC and b["event"] == "raised"]
    assert "dispatch.stationary_en_route" in rules
    # A 50 km jump in a second: ignored and flagged.
    t1 = t0 + s.stationary_en_route_s + 10
    monitor.process_fixes(clean, [(device, t1, *_offset(lon, lat, 50_000), 0.0)])
    suspect = clean.execute(
        "SELECT ST_X(good_geom) FROM ops.gps_suspect WHERE unit_id = %s", (unit,)
    ).fetchone()
    assert suspect is not None and suspect[0] == pytest.approx(start[0])
    jump = clean.execute(
        "SELECT count(*) FROM iot.alarm WHERE rule = 'dispatch.gps_jump' AND cleared_at IS NULL"
    ).fetchone()[0]
    assert jump == 1
    # The drive to the scene, 1 Hz, then a stop inside the geofence.
    fixes = []
    ts = t1 + 1
    for k in range(0, 2961, 11):
        fixes.append((device, ts, *_offset(lon, lat, -3000 + k), 40.0))
        ts += 1
    for _ in range(40):
        fixes.append((device, ts, *_offset(lon, lat, -30), 0.0))
        ts += 1
    monitor.process_fixes(clean, fixes)
    a = clean.execute(
        "SELECT en_route_at, on_scene_at FROM ops.assignment WHERE unit_id = %s", (unit,)
    ).fetchone()
    assert a[0] is not None and a[1] is not None and a[0] < a[1]
    assert clean.execute("SELECT status FROM ops.unit WHERE id = %s", (unit,)).fetchone()[0] == (
        "on_scene"
    )
    assert (
        clean.execute(
            "SELECT count(*) FROM ops.gps_suspect WHERE unit_id = %s", (unit,)
        ).fetchone()[0]
        == 0
    )
    moved = [b for t, b in published if t == EVENT_TOPIC]
    assert [b["status"] for b in moved] == ["en_route", "on_scene"]
    assert all(b["source"] == "gps" and b["type"] == "incident" for b in moved)
    timeline = clean.execute(
        "SELECT event, actor FROM ops.incident_event WHERE incident_id = %s ORDER BY at, id",
        (waiting["id"],),
    ).fetchall()
    assert ("on_scene", "gps") in timeline
    monitor.run_timers(clean, now=ts)
    open_rules = {
        r[0]
        for r in clean.execute(
            "SELECT rule FROM iot.alarm WHERE kind = 'dispatch' AND cleared_at IS NULL"
        )
    }
    assert "dispatch.stationary_en_route" not in open_rules
    # Response target: an incident with a unit dispatched but never arriving.
    late = incidents.create_incident(
        clean, incidents.Actor(boss), incident_type="police", lon=lon, lat=lat
    )
    patrol = clean.execute(
        "SELECT id FROM ops.unit WHERE unit_type = 'patrol' ORDER BY id LIMIT 1"
    ).fetchone()[0]
    incidents.assign(clean, incidents.Actor(boss), late["id"], [patrol])
    clean.commit()
    monitor.run_timers(clean, now=late["created_at"].timestamp() + late["response_target_s"] + 1)
    overdue = clean.execute(
        "SELECT incident_id FROM iot.alarm WHERE rule = 'dispatch.response_overdue'"
        " AND cleared_at IS NULL"
    ).fetchall()
    assert (late["id"],) in overdue


def test_recommendation_uses_last_good_fix_of_a_jumped_unit(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    unit, device = clean.execute(
        "SELECT id, device_id FROM ops.unit WHERE unit_type = 'patrol' ORDER BY id LIMIT 1"
    ).fetchone()
    clean.execute(
        """
        INSERT INTO ops.gps_suspect (unit_id, good_ts, good_geom, bad_geom)
        VALUES (%s, now(), ST_SetSRID(ST_MakePoint(%s, %s), 4326),
                ST_SetSRID(ST_MakePoint(%s, %s), 4326))
        """,
        (unit, lon, lat, OUTSIDE[0], OUTSIDE[1]),
    )
    clean.execute(
        "UPDATE iot.device_state SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326)"
        " WHERE device_id = %s",
        (*OUTSIDE, device),
    )
    clean.commit()
    inc = new_incident(dapi, users["supervisor"], incident_type="police", lon=lon, lat=lat)
    rec = dapi.get(
        f"/dispatch/incidents/{inc['id']}/recommendations", headers=users["supervisor"]
    ).json()
    top = rec["candidates"][0]
    assert top["unit_id"] == unit
    assert top["position_source"] == "last_good" and "gps_jump" in top["flags"]


def test_parse_live_takes_vehicle_fixes_only() -> None:
    import orjson

    payload = orjson.dumps(
        {
            "states": [
                ["VEH-1", "vehicle", 113.1, 36.2, 1_700_000_000_000, "ok", {"speed_kmh": 12}],
                ["D-AIR", "air", 113.1, 36.2, 1_700_000_000_000, "ok", {"pm25": 3}],
                ["VEH-2", "vehicle", None, None, 1_700_000_000_000, "ok", {}],
            ],
            "online": [],
        }
    )
    assert parse_live(payload) == [("VEH-1", 1_700_000_000.0, 113.1, 36.2, 12.0)]
    assert parse_live(b"not json") == []


def test_monitor_over_mqtt(clean, settings, db_url, boss) -> None:
    """The monitor process loop: a live announcement on the broker moves an assignment."""
    import orjson

    from realtime.ingest import LIVE_TOPIC
    from realtime.mqtt import BrokerAddress, make_client

    lon, lat = scene_near(clean)
    inc = incidents.create_incident(
        clean, incidents.Actor(boss), incident_type="medical", lon=lon, lat=lat
    )
    unit, device = clean.execute(
        "SELECT id, device_id FROM ops.unit WHERE unit_type = 'ambulance' ORDER BY id LIMIT 1"
    ).fetchone()
    incidents.assign(clean, incidents.Actor(boss), inc["id"], [unit])
    clean.commit()
    monitor = DispatchMonitor(settings, DispatchSettings(monitor_tick_s=0.2))
    runner = threading.Thread(target=monitor.run, kwargs={"batch_wait_s": 0.05}, daemon=True)
    runner.start()
    pub = make_client(settings.mqtt_url, "test-live")
    broker = BrokerAddress.parse(settings.mqtt_url)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        deadline = time.time() + 5
        while (monitor.client is None or not monitor.client.is_connected()) and (
            time.time() < deadline
        ):
            time.sleep(0.05)
        time.sleep(0.3)
        ts = time.time() - 60
        states = [
            [device, "vehicle", *_offset(lon, lat, -20), int((ts + k) * 1000), "ok", {}]
            for k in range(40)
        ]
        pub.publish(LIVE_TOPIC, orjson.dumps({"states": states, "online": []}), qos=1)
        deadline = time.time() + 10
        on_scene = None
        while time.time() < deadline and on_scene is None:
            time.sleep(0.2)
            with psycopg.connect(db_url) as c:
                on_scene = c.execute(
                    "SELECT on_scene_at FROM ops.assignment WHERE unit_id = %s", (unit,)
                ).fetchone()[0]
        assert on_scene is not None
    finally:
        monitor.stop()
        runner.join(10)
        pub.loop_stop()
        pub.disconnect()


# --------------------------------------------------------------------------- CAP


def test_cap_validates_against_the_oasis_schema(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    inc = new_incident(
        dapi,
        users["fire"],
        incident_type="hazmat",
        lon=lon,
        lat=lat,
        # Markup characters are escaped; control characters are refused where text enters
        # (tests/test_security_text.py).
        description="液氨泄漏 <&>",
    )
    r = dapi.get(f"/dispatch/incidents/{inc['id']}/cap", headers=users["viewer"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    assert r.headers["X-CAP-Valid"] == "true"
    assert cap.validate(r.content) == []
    from lxml import etree

    doc = etree.fromstring(r.content)
    ns = {"c": cap.CAP_NS}
    assert doc.findtext("c:msgType", namespaces=ns) == "Alert"
    assert doc.findtext("c:info/c:category", namespaces=ns) == "CBRNE"
    polygon = doc.findtext("c:info/c:area/c:polygon", namespaces=ns).split()
    assert polygon[0] == polygon[-1] and len(polygon) >= 4
    circle = doc.findtext("c:info/c:area/c:circle", namespaces=ns)
    assert circle.startswith(f"{lat:.6f},{lon:.6f} ")
    dapi.post(f"/dispatch/incidents/{inc['id']}/close", json={}, headers=users["fire"])
    r = dapi.get(f"/dispatch/incidents/{inc['id']}/cap", headers=users["viewer"])
    assert cap.validate(r.content) == []
    assert b"<msgType>Cancel</msgType>" in r.content and b"<references>" in r.content
    # The schema does reject a broken alert (the check is not vacuous).
    broken = r.content.replace(b"<status>Actual</status>", b"<status>Maybe</status>")
    assert cap.validate(broken)
    assert dapi.get("/dispatch/incidents/424242/cap", headers=users["viewer"]).status_code == 404


# --------------------------------------------------------------------------- coverage


def test_coverage_numbers_add_up(dapi, users, clean) -> None:
    total = clean.execute("SELECT sum(population) FROM ref.population_cell").fetchone()[0]
    cov = coverage.compute(clean, "fire_station", (5, 10, 15))
    table = cov.table()
    city = table["rows"][-1]
    assert city["district_code"] is None
    assert city["grid_population"] == round(total)
    for m in (5, 10, 15):
        assert city[f"inside_{m}min"] + city[f"outside_{m}min"] == city["grid_population"]
        per_district = sum(r[f"inside_{m}min"] for r in table["rows"][:-1])
        assert abs(per_district - city[f"inside_{m}min"]) <= len(table["rows"])
    assert city["inside_5min"] <= city["inside_10min"] <= city["inside_15min"]
    assert 0 < city["inside_15min"] < city["grid_population"]
    census = clean.execute(
        "SELECT sum(population_2020) FROM ref.admin_area WHERE level = 'district'"
    ).fetchone()[0]
    assert city["census_population"] == census
    r = dapi.get("/dispatch/coverage", params={"minutes": "5,10"}, headers=users["viewer"])
    assert r.status_code == 200
    areas = [f for f in r.json()["features"] if f["properties"]["kind"] == "drive_time_area"]
    assert [f["properties"]["minutes"] for f in areas] == [10, 5]
    for f in areas:
        p = f["properties"]
        assert p["population_inside"] + p["population_outside"] == p["population_total"]
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
    r = dapi.get(
        "/dispatch/coverage/table", params={"category": "hospital"}, headers=users["viewer"]
    )
    assert r.status_code == 200 and r.json()["category"] == "hospital"
    r = dapi.get("/dispatch/coverage", params={"minutes": "abc"}, headers=users["viewer"])
    assert r.status_code == 400
    r = dapi.get("/dispatch/coverage", params={"category": "bakery"}, headers=users["viewer"])
    assert r.status_code == 422
    r = dapi.get(
        "/dispatch/coverage/suggestions",
        params={"minutes": 10, "count": 2},
        headers=users["viewer"],
    )
    picks = r.json()["suggestions"]
    assert 1 <= len(picks) <= 2
    assert picks[0]["population_newly_covered"] >= picks[-1]["population_newly_covered"] > 0
    assert picks[0]["uncovered_after_all"] < picks[0]["uncovered_before"]
    assert picks[0]["uncovered_before"] == city["outside_10min"]


# --------------------------------------------------------------------------- 12345


def test_hotline_import(dapi, users, clean) -> None:
    poi, address = clean.execute(
        "SELECT name_zh, address FROM ref.poi WHERE category = 'school' ORDER BY id LIMIT 1"
    ).fetchone()
    village = clean.execute("SELECT name_zh FROM ref.village ORDER BY id LIMIT 1").fetchone()[0]
    rows = [
        "工单编号,来电时间,来电人,联系电话,诉求类别,事发地址,诉求内容",
        f"T001,2024-06-01 08:00,王,13800000000,城市管理,{address},路灯不亮",
        f"T002,2024-06-01 08:05,李,13900000000,安全隐患,{village},燃气泄漏有异味",
        "T003,2024-06-01 08:10,赵,13700000000,其他,火星基地九号塔,噪音扰民",
        "T004,2024-06-01 08:11,钱,13600000000,其他,,无地址",
        f'T005,2024-06-01 08:12,孙,13500000000,"交通","{poi}附近","两车追尾，有人受伤"',
    ]
    data = ("\n".join(rows) + "\n").encode("gb18030")
    r = dapi.post(
        "/dispatch/hotline/import",
        files={"file": ("12345.csv", data, "text/csv")},
        headers=users["supervisor"],
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["rows"] == 5 and report["created"] == 3 and report["unplaced"] == 2
    kinds = {i["ticket_id"]: i["incident_type"] for i in report["incidents"]}
    assert kinds == {"T001": "public_service", "T002": "hazmat", "T005": "traffic_accident"}
    unplaced = {u["ticket_id"]: u for u in report["unplaced_rows"]}
    assert set(unplaced) == {"T003", "T004"}
    assert unplaced["T003"]["suggestions"]
    assert all(i["confidence"] is not None for i in report["incidents"])
    again = dapi.post(
        "/dispatch/hotline/import",
        files={"file": ("12345.csv", data, "text/csv")},
        headers=users["supervisor"],
    ).json()
    assert again["created"] == 0 and again["duplicates"] == 3
    source = clean.execute(
        "SELECT DISTINCT source FROM ops.incident i JOIN ops.incident_meta m"
        " ON m.incident_id = i.id WHERE m.ticket_id IS NOT NULL"
    ).fetchall()
    assert source == [("hotline",)]
    bad = dapi.post(
        "/dispatch/hotline/import",
        files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")},
        headers=users["supervisor"],
    )
    assert bad.status_code == 422 and "address" in bad.json()["detail"]
    for junk in (b"\x00\x01\x02,\x00\n", b""):
        r = dapi.post(
            "/dispatch/hotline/import",
            files={"file": ("x.csv", junk, "text/csv")},
            headers=users["supervisor"],
        )
        assert r.status_code == 422, r.text


def test_hotline_cli(clean, tmp_path, settings, monkeypatch) -> None:
    import typer
    from typer.testing import CliRunner

    from apps.dispatch.cli import register

    village = clean.execute("SELECT name_zh FROM ref.village ORDER BY id DESC LIMIT 1").fetchone()[
        0
    ]
    path = tmp_path / "tickets.csv"
    path.write_text(f"ticket_id,address,description\nC1,{village},积水\nC2,无此地,?\n")
    monkeypatch.setenv("CHANGZHI_DATABASE_URL", settings.database_url)
    from gis_core.settings import get_settings

    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    try:
        result = CliRunner().invoke(app, ["dispatch", "import-hotline", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "1 incidents created" in result.output and "1 not placed" in result.output


def test_openapi_documents_dispatch(dapi) -> None:
    paths = dapi.get("/openapi.json").json()["paths"]
    for p in (
        "/dispatch/incidents",
        "/dispatch/incidents/{incident_id}/recommendations",
        "/dispatch/incidents/{incident_id}/assignments",
        "/dispatch/incidents/{incident_id}/cap",
        "/dispatch/coverage",
        "/dispatch/hotline/import",
    ):
        assert p in paths


def test_incident_created_at_is_recent(dapi, users, clean) -> None:
    lon, lat = scene_near(clean)
    inc = new_incident(dapi, users["fire"], incident_type="fire", lon=lon, lat=lat)
    created = datetime.fromisoformat(inc["created_at"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
