"""Geofences end to end: made through the API (validated, audited, role-checked), shown as a
layer, picked up by a running ingest worker, and a vehicle driving in and out raises enter and
leave alarms that are stored and published; a deleted fence raises nothing more."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest
from shapely.geometry import Point

from gis_core.identity import create_user
from realtime.ingest import IngestWorker
from realtime.provision import device_credentials
from realtime.rules import Fence, Fences, crossings
from realtime.store import StateChange
from tests.support import listen, wait_until
from tests.test_ingest import LIMITS, Device, now_iso, rows

SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[113.10, 36.18], [113.12, 36.18], [113.12, 36.20], [113.10, 36.20], [113.10, 36.18]]
    ],
}
OUTSIDE, INSIDE, BEYOND = (113.05, 36.19), (113.11, 36.19), (113.16, 36.19)


@pytest.fixture(scope="module")
def car(db_url: str, settings: Any, throwaway: Any, reference: object) -> Iterator[Device]:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO iot.device (id, kind, name_zh, expected_interval_s)"
            " VALUES ('T-GEO-1', 'vehicle', '围栏测试车', 5) ON CONFLICT DO NOTHING"
        )
        conn.commit()
        creds = device_credentials(conn, settings.device_secret)
    throwaway.mosquitto.write_accounts(creds)
    throwaway.mosquitto.reload()
    time.sleep(0.3)
    device = Device(throwaway.mosquitto.url, "T-GEO-1", creds["T-GEO-1"])
    yield device
    device.close()


@pytest.fixture(scope="module")
def worker(car: Device, settings: Any) -> Iterator[IngestWorker]:
    w = IngestWorker(settings, "test-geo", limits=LIMITS, batch_wait_s=0.02, registry_refresh_s=0.3)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    wait_until(w.client.is_connected, what="worker connected")
    time.sleep(0.3)
    yield w
    w.stop()
    thread.join(10)


@pytest.fixture(scope="module")
def viewer_headers(api: Any, db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        create_user(
            conn,
            username="geo-viewer",
            password="geo-viewer-pass",
            roles=["viewer"],
            department=None,
        )
        conn.commit()
    r = api.post("/auth/token", data={"username": "geo-viewer", "password": "geo-viewer-pass"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def fence_body(**over: Any) -> dict[str, Any]:
    return {"name_zh": "测试围栏", "kinds": ["vehicle"], "geometry": SQUARE, **over}


def test_bad_geofences_are_refused_clearly(
    api: Any, admin_headers: Any, viewer_headers: Any, reference: object
):
    assert api.post("/geofences", json=fence_body(), headers=viewer_headers).status_code == 403
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[113.1, 36.1], [113.2, 36.2], [113.2, 36.1], [113.1, 36.2], [113.1, 36.1]]
        ],
    }
    cases = [
        (fence_body(geometry=bowtie), "not valid"),
        (
            fence_body(geometry={"type": "LineString", "coordinates": [[113, 36], [114, 37]]}),
            "Polygon",
        ),
        (fence_body(geometry={"type": "Polygon", "coordinates": [[[1, 2]]]}), "polygon"),
        (fence_body(geometry={"type": "Polygon", "coordinates": "x"}), "polygon"),
        (
            fence_body(
                geometry={
                    "type": "Polygon",
                    "coordinates": [[[200, 36], [201, 36], [201, 37], [200, 36]]],
                }
            ),
            "lon/lat",
        ),
        (
            fence_body(
                geometry={
                    **SQUARE,
                    "coordinates": [[[c[0] + 10, c[1]] for c in SQUARE["coordinates"][0]]],
                }
            ),
            "nowhere near",
        ),
        (fence_body(kinds=["submarine"]), "unknown device kinds"),
        (fence_body(name_zh="  "), "name"),
    ]
    for body, says in cases:
        r = api.post("/geofences", json=body, headers=admin_headers)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert says in r.text, (says, r.text)
    assert api.get("/geofences/999999", headers=admin_headers).status_code == 404
    assert api.delete("/geofences/999999", headers=admin_headers).status_code == 404


def test_driving_in_and_out_raises_enter_and_leave_alarms(
    api: Any, admin_headers: Any, worker: IngestWorker, car: Device, db_url: str, throwaway: Any
):
    listener, heard = listen(throwaway.mosquitto.url, "cz/v1/alarms/vehicle")
    made = api.post("/geofences", json=fence_body(name_zh="医院禁停区"), headers=admin_headers)
    assert made.status_code == 201, made.text
    fence = made.json()
    assert (
        fence["properties"]["kinds"] == ["vehicle"] and fence["geometry"]["type"] == "MultiPolygon"
    )
    listed = api.get("/geofences", headers=admin_headers).json()["features"]
    assert fence["id"] in [f["id"] for f in listed]
    layer = api.get("/collections/geofences/items", headers=admin_headers)
    assert layer.status_code == 200 and fence["id"] in [f["id"] for f in layer.json()["features"]]
    time.sleep(0.5)  # past the worker's registry refresh: the next batch loads the fence
    try:
        enter, leave = f"geofence.{fence['id']}.enter", f"geofence.{fence['id']}.leave"
        for seq, (lon, lat) in enumerate([OUTSIDE, INSIDE, BEYOND], start=1):
            car.send(
                "cz/v1/vehicle/T-GEO-1/telemetry",
                {"ts": now_iso(-10 + seq), "seq": seq, "lon": lon, "lat": lat},
            )
            time.sleep(0.3)
        stored = wait_until(
            lambda: (
                got
                if len(
                    got := rows(
                        db_url,
                        "SELECT rule, message_zh FROM iot.alarm"
                        " WHERE device_id = 'T-GEO-1' ORDER BY id",
                    )
                )
                >= 2
                else None
            ),
            what="enter and leave alarms",
        )
        assert [r[0] for r in stored] == [enter, leave]
        assert "进入 医院禁停区" in stored[0][1] and "离开 医院禁停区" in stored[1][1]
        wait_until(lambda: {enter, leave} <= {h.get("rule") for h in heard}, what="published")
        # deleted: audited, and driving in again raises nothing new
        assert api.delete(f"/geofences/{fence['id']}", headers=admin_headers).status_code == 204
        time.sleep(0.5)  # past the worker's registry refresh: the next batch reloads it
        car.send(
            "cz/v1/vehicle/T-GEO-1/telemetry",
            {"ts": now_iso(-1), "seq": 4, "lon": INSIDE[0], "lat": INSIDE[1]},
        )
        wait_until(
            lambda: rows(
                db_url, "SELECT 1 FROM iot.device_state WHERE device_id = 'T-GEO-1' AND seq = 4"
            ),
            what="the last reading stored",
        )
        time.sleep(0.3)
        assert len(rows(db_url, "SELECT 1 FROM iot.alarm WHERE device_id = 'T-GEO-1'")) == 2
        assert len(worker.registry.fences) == 0
        audited = rows(
            db_url,
            "SELECT action FROM auth.audit_log"
            " WHERE object_type = 'geofence' AND object_id = %s ORDER BY id",
            str(fence["id"]),
        )
        assert [a[0] for a in audited] == ["create", "delete"]
    finally:
        listener.disconnect()
        listener.loop_stop()


def test_crossings_test_many_fences_through_the_index():
    """Only the fences whose inside changed between two positions count, of any number."""
    squares = [
        Fence(
            i,
            f"f{i}",
            Point(113 + i * 0.01, 36.0).buffer(0.004),
            frozenset({"vehicle"}),
            True,
            True,
        )
        for i in range(500)
    ]
    squares.append(
        Fence(
            999,
            "signals only",
            Point(113.05, 36.0).buffer(0.004),
            frozenset({"signal"}),
            True,
            True,
        )
    )
    fences = Fences(squares)

    def change(lon: float, before: float) -> StateChange:
        return StateChange("V", "vehicle", None, 1, None, {}, lon, 36.0, before, 36.0, True)  # type: ignore[arg-type]

    moved = crossings(change(113.05, 113.02), fences)  # from fence 2 into fence 5
    assert sorted(c.rule for c in moved) == ["geofence.2.leave", "geofence.5.enter"]
    assert crossings(change(113.051, 113.05), fences) == []  # inside the same fence


def test_geofences_can_be_imported_in_bulk(tmp_path: Any, db_url: str, reference: object):
    """`changzhi import zones.geojson --layer geofences`: a planner's existing zones become
    geofences watched for vehicles (the default)."""
    from gis_core.db import connect
    from gis_core.io import read_features
    from layers.catalog import installed_catalog
    from layers.user_layers import import_layer

    zones = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name_zh": f"学校周边{i}", "on_leave": False},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [113.1 + i * 0.01, 36.2],
                            [113.105 + i * 0.01, 36.2],
                            [113.105 + i * 0.01, 36.205],
                            [113.1 + i * 0.01, 36.2],
                        ]
                    ],
                },
            }
            for i in range(3)
        ],
    }
    path = tmp_path / "zones.geojson"
    path.write_bytes(orjson.dumps(zones))
    with connect(db_url) as conn:
        report = import_layer(conn, read_features(path), "geofences", catalog=installed_catalog())
        conn.commit()
    assert report.builtin and report.rows == 3
    got = rows(
        db_url,
        "SELECT name_zh, kinds, on_enter, on_leave, GeometryType(geom) FROM iot.geofence"
        " WHERE name_zh LIKE '学校周边%%' ORDER BY name_zh",
    )
    assert got == [(f"学校周边{i}", ["vehicle"], True, False, "MULTIPOLYGON") for i in range(3)]
