"""Ingest end to end: devices publish to the real broker with their own credentials, the worker
stores into PostGIS, alarms are raised and announced, consoles get live states."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from starlette.websockets import WebSocketDisconnect

from gis_core.crs import wgs84_to_gcj02
from realtime.ingest import IngestWorker
from realtime.mqtt import BrokerAddress, make_client
from realtime.provision import device_credentials, device_password, register_gateway
from realtime.readings import Limits
from tests.support import listen, wait_until

LIMITS = Limits((111.5, 35.3, 114.2, 37.6))
SITE_LON, SITE_LAT = 113.12, 36.21


@pytest.fixture(scope="module")
def devices(db_url, settings, throwaway) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """
            INSERT INTO iot.monitoring_site (id, kind, name_zh, thresholds, geom) VALUES
              ('T-AIR-SITE', 'air', '测试空气站', NULL, ST_SetSRID(ST_MakePoint(%s, %s), 4326)),
              ('T-WL-SITE', 'water_level', '测试水位站',
               '{"warning_m": 3.0, "danger_m": 4.0}', ST_SetSRID(ST_MakePoint(113.2, 36.3), 4326))
            ON CONFLICT DO NOTHING
            """,
            (SITE_LON, SITE_LAT),
        )
        conn.execute(
            """
            INSERT INTO iot.device (id, kind, site_id, name_zh, expected_interval_s) VALUES
              ('T-AIR-1', 'air', 'T-AIR-SITE', '测试空气1', 600),
              ('T-WL-1', 'water_level', 'T-WL-SITE', '测试水位1', 300),
              ('T-VEH-1', 'vehicle', NULL, '测试救护车', 5),
              ('T-VEH-2', 'vehicle', NULL, '测试消防车', 5),
              ('T-SIG-1', 'signal', NULL, '测试信号机', 60)
            ON CONFLICT DO NOTHING
            """
        )
        conn.commit()
        creds = device_credentials(conn, settings.device_secret)
    throwaway.mosquitto.write_accounts(creds)
    throwaway.mosquitto.reload()
    time.sleep(0.3)
    return creds


@pytest.fixture(scope="module")
def worker(devices, settings) -> Iterator[IngestWorker]:
    w = IngestWorker(settings, "test-0", limits=LIMITS, batch_wait_s=0.02)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    wait_until(w.client.is_connected, what="worker connected")
    time.sleep(0.3)  # subscriptions settle
    yield w
    w.stop()
    thread.join(10)


class Device:
    """A field device: its own MQTT login, QoS 1 publishes confirmed by the broker."""

    def __init__(self, url: str, device_id: str, password: str) -> None:
        address = BrokerAddress.parse(url)
        self.client = make_client(url, "dev", client_id=f"dev-{device_id}-{time.monotonic_ns()}")
        self.client.username_pw_set(device_id, password)
        self.refused: list[int] = []
        self.client.on_publish = self._on_publish
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, what=f"{device_id} connected")

    def _on_publish(self, client, userdata, mid, reason, props):
        if reason.is_failure:
            self.refused.append(mid)

    def send(self, topic: str, body: object, raw: bytes | None = None) -> int:
        info = self.client.publish(topic, raw if raw is not None else orjson.dumps(body), qos=1)
        info.wait_for_publish(10)
        return info.mid

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def connect_device(throwaway, devices) -> Iterator[Callable[[str], Device]]:
    opened: list[Device] = []

    def open_device(device_id: str, password: str | None = None) -> Device:
        device = Device(throwaway.mosquitto.url, device_id, password or devices.get(device_id, "x"))
        opened.append(device)
        return device

    yield open_device
    for device in opened:
        device.close()


def now_iso(delta_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat()


def rows(db_url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchall()


def test_fixed_station_reading_lands_at_its_site(worker, connect_device, db_url):
    air = connect_device("T-AIR-1")
    air.send("cz/v1/air/T-AIR-1/telemetry", {"ts": now_iso(-1), "seq": 1, "pm25": 41.5, "o3": 60})
    got = wait_until(
        lambda: rows(
            db_url,
            "SELECT ST_X(geom), ST_Y(geom), reading FROM iot.telemetry WHERE device_id = %s",
            "T-AIR-1",
        ),
        what="air reading stored",
    )
    lon, lat, reading = got[0]
    assert (lon, lat) == pytest.approx((SITE_LON, SITE_LAT))
    assert reading == {"pm25": 41.5, "o3": 60.0}
    state = rows(
        db_url, "SELECT online, reading FROM iot.device_state WHERE device_id = %s", "T-AIR-1"
    )
    assert state == [(True, {"pm25": 41.5, "o3": 60.0})]


def test_vehicle_gcj02_out_of_order_and_duplicates(worker, connect_device, db_url):
    car = connect_device("T-VEH-1")
    glon, glat = wgs84_to_gcj02(113.10, 36.18)
    newer = {
        "ts": now_iso(-2),
        "seq": 11,
        "lon": glon,
        "lat": glat,
        "crs": "GCJ02",
        "speed_kmh": 40,
        "status": "en_route",
    }
    older = {"ts": now_iso(-30), "seq": 10, "lon": 113.0, "lat": 36.1, "speed_kmh": 30}
    car.send("cz/v1/vehicle/T-VEH-1/telemetry", newer)
    car.send("cz/v1/vehicle/T-VEH-1/telemetry", newer)  # a retransmission
    wait_until(
        lambda: rows(db_url, "SELECT 1 FROM iot.device_state WHERE device_id = %s", "T-VEH-1")
    )
    car.send("cz/v1/vehicle/T-VEH-1/telemetry", older)  # arrives late
    # sent in the same millisecond as the newest but before it (a lower counter), arriving last
    car.send("cz/v1/vehicle/T-VEH-1/telemetry", {**newer, "seq": 9, "status": "available"})
    wait_until(
        lambda: (
            len(rows(db_url, "SELECT 1 FROM iot.telemetry WHERE device_id = %s", "T-VEH-1")) == 3
        ),
        what="all three readings in history",
    )
    time.sleep(0.3)
    history = rows(
        db_url, "SELECT seq FROM iot.telemetry WHERE device_id = %s ORDER BY seq", "T-VEH-1"
    )
    assert history == [(9,), (10,), (11,)]  # stored once each
    state = rows(
        db_url,
        "SELECT seq, status, ST_X(geom), ST_Y(geom) FROM iot.device_state WHERE device_id = %s",
        "T-VEH-1",
    )[0]
    assert state[0] == 11 and state[1] == "en_route"  # the late reading did not roll it back
    assert state[2:] == pytest.approx((113.10, 36.18), abs=1e-6)


def test_bad_input_goes_to_dead_letters_and_neighbours_survive(worker, connect_device, db_url):
    car = connect_device("T-VEH-2")
    car.send("cz/v1/vehicle/T-VEH-2/telemetry", None, raw=b'{"ts": oops')
    car.send(
        "cz/v1/vehicle/T-VEH-2/telemetry",
        [
            {"ts": now_iso(), "seq": 1, "lon": 113.2, "lat": 36.2},
            {"ts": now_iso(), "seq": 2, "lon": "east", "lat": 36.2},
            {"ts": now_iso(), "seq": 3, "lon": 36.2, "lat": 113.2},
            {"ts": now_iso(), "seq": 4, "lon": 113.3, "lat": 36.3, "speed_kmh": "fast"},
            {
                "ts": now_iso(),
                "seq": 5,
                "lon": 113.3,
                "lat": 36.3,
                "x'); DROP TABLE iot.device;--": 1,
            },
            {"ts": now_iso(600), "seq": 6, "lon": 113.3, "lat": 36.3},
            {"ts": now_iso(), "seq": 7, "lon": 113.4, "lat": 36.4},
            # NUL, which PostgreSQL text and jsonb refuse, in a value and in a field's name
            {"ts": now_iso(), "seq": 8, "lon": 113.4, "lat": 36.4, "status": "on\u0000duty"},
            {"ts": now_iso(), "seq": 9, "lon": 113.4, "lat": 36.4, "x\u0000": 1},
        ],
    )
    car.send("cz/v1/vehicle/T-VEH-2/telemetry", None, raw=b"x" * (300 * 1024))
    reasons = wait_until(
        lambda: (
            [
                r[0]
                for r in rows(
                    db_url,
                    "SELECT reason FROM iot.dead_letter WHERE device_id = %s ORDER BY id",
                    "T-VEH-2",
                )
            ]
            if len(rows(db_url, "SELECT 1 FROM iot.dead_letter WHERE device_id = %s", "T-VEH-2"))
            >= 9
            else None
        ),
        what="dead letters",
    )
    assert sorted(reasons) == sorted(
        [
            "bad_json",
            "bad_position",
            "out_of_area",
            "bad_value",
            "bad_value",
            "unknown_field",
            "unknown_field",
            "bad_ts",
            "too_large",
        ]
    )
    stored = rows(
        db_url, "SELECT seq FROM iot.telemetry WHERE device_id = %s ORDER BY seq", "T-VEH-2"
    )
    assert stored == [(1,), (7,)]
    assert rows(db_url, "SELECT count(*) FROM iot.device")[0][0] >= 5  # still there
    big = rows(
        db_url,
        "SELECT payload_bytes, length(payload) FROM iot.dead_letter"
        " WHERE reason = 'too_large' AND device_id = %s",
        "T-VEH-2",
    )[0]
    assert big[0] == 300 * 1024 and big[1] < 5000  # capped
    east = rows(
        db_url,
        "SELECT payload FROM iot.dead_letter WHERE device_id = %s AND payload LIKE %s",
        "T-VEH-2",
        '%"east"%',
    )
    assert len(east) == 1 and orjson.loads(east[0][0])["seq"] == 2  # that reading, not all 9


def test_acl_keeps_devices_in_their_own_topics(worker, connect_device, db_url, devices, throwaway):
    car = connect_device("T-VEH-1")
    car.send("cz/v1/air/T-AIR-1/telemetry", {"ts": now_iso(), "pm25": 999})  # not its topic
    car.send(
        "cz/v1/vehicle/T-VEH-1/telemetry", {"ts": now_iso(), "seq": 50, "lon": 113.0, "lat": 36.0}
    )
    wait_until(
        lambda: rows(
            db_url, "SELECT 1 FROM iot.telemetry WHERE device_id = %s AND seq = 50", "T-VEH-1"
        )
    )
    assert not rows(
        db_url,
        "SELECT 1 FROM iot.telemetry WHERE device_id = 'T-AIR-1'"
        " AND (reading->>'pm25')::float = 999",
    )
    assert car.refused, "the broker should refuse a publish outside the device's topics"
    with pytest.raises(AssertionError):
        connect_device("T-VEH-1", password="wrong-password")
    # Nor does a device read what is not its own: the city's alarms, other terminals' orders.
    heard: list[str] = []
    car.client.on_message = lambda c, u, m: heard.append(m.topic)
    car.client.subscribe([("cz/v1/alarms/#", 1), ("cz/v1/vehicle/T-VEH-2/command", 1)])
    car.client.subscribe("cz/v1/vehicle/T-VEH-1/command", 1)
    time.sleep(0.3)
    platform = make_client(throwaway.mosquitto.url, "acl-check")
    address = BrokerAddress.parse(throwaway.mosquitto.url)
    platform.connect(address.host, address.port)
    platform.loop_start()
    for topic in (
        "cz/v1/alarms/air",
        "cz/v1/vehicle/T-VEH-2/command",
        "cz/v1/vehicle/T-VEH-1/command",
    ):
        platform.publish(topic, b"{}", qos=1).wait_for_publish(5)
    wait_until(lambda: "cz/v1/vehicle/T-VEH-1/command" in heard, what="its own orders")
    time.sleep(0.3)
    platform.disconnect()
    platform.loop_stop()
    assert heard == ["cz/v1/vehicle/T-VEH-1/command"]


def test_water_level_alarm_debounced_published_and_cleared(
    worker, connect_device, db_url, throwaway
):
    listener, heard = listen(throwaway.mosquitto.url, "cz/v1/alarms/#")
    time.sleep(0.3)
    gauge = connect_device("T-WL-1")
    try:
        for seq, level in enumerate([2.0, 3.4, 3.5, 3.6], start=1):
            gauge.send(
                "cz/v1/water_level/T-WL-1/telemetry",
                {"ts": now_iso(-10 + seq), "seq": seq, "level_m": level},
            )
            time.sleep(0.15)
        alarm = wait_until(
            lambda: rows(
                db_url,
                "SELECT id, occurrences, severity FROM iot.alarm WHERE device_id = %s AND"
                " rule = 'water_level.warning' AND cleared_at IS NULL",
                "T-WL-1",
            ),
            what="alarm",
        )
        wait_until(lambda: any(h.get("rule") == "water_level.warning" for h in heard))
        raised = [h for h in heard if h.get("rule") == "water_level.warning"]
        assert len(raised) == 1 and raised[0]["event"] == "raised"
        assert alarm[0][2] == 3
        wait_until(
            lambda: (
                rows(db_url, "SELECT occurrences FROM iot.alarm WHERE id = %s", alarm[0][0])[0][0]
                >= 3
            ),
            what="debounced occurrences",
        )
        gauge.send(
            "cz/v1/water_level/T-WL-1/telemetry", {"ts": now_iso(-1), "seq": 9, "level_m": 2.9}
        )  # inside the hysteresis band
        time.sleep(0.4)
        assert (
            rows(db_url, "SELECT cleared_at FROM iot.alarm WHERE id = %s", alarm[0][0])[0][0]
            is None
        )
        gauge.send(
            "cz/v1/water_level/T-WL-1/telemetry", {"ts": now_iso(0), "seq": 10, "level_m": 2.0}
        )
        wait_until(
            lambda: (
                rows(db_url, "SELECT cleared_at FROM iot.alarm WHERE id = %s", alarm[0][0])[0][0]
                is not None
            ),
            what="cleared",
        )
        wait_until(lambda: any(h.get("event") == "cleared" for h in heard))
        # flapping back within the window reopens the same alarm, quietly
        gauge.send(
            "cz/v1/water_level/T-WL-1/telemetry", {"ts": now_iso(1), "seq": 11, "level_m": 3.3}
        )
        wait_until(
            lambda: rows(
                db_url, "SELECT cleared_at IS NULL FROM iot.alarm WHERE id = %s", alarm[0][0]
            )[0][0],
            what="reopened",
        )
        assert (
            len(
                rows(
                    db_url,
                    "SELECT 1 FROM iot.alarm WHERE device_id = 'T-WL-1' AND"
                    " rule = 'water_level.warning'",
                )
            )
            == 1
        )
    finally:
        listener.disconnect()
        listener.loop_stop()


def test_gateway_owntracks_and_status(worker, connect_device, db_url, devices, throwaway, settings):
    with psycopg.connect(db_url) as conn:
        register_gateway(conn, "T-GW-1", ["T-AIR-1", "T-SIG-1"])
        conn.commit()
    worker.registry.loaded_at = 0.0  # a gateway registered just now
    gateway_password = device_password(settings.device_secret, "T-GW-1")
    accounts = {**devices, "T-GW-1": gateway_password}
    throwaway.mosquitto.write_accounts(accounts, ["T-GW-1"])
    throwaway.mosquitto.reload()
    time.sleep(0.3)
    gateway = connect_device("T-GW-1", password=gateway_password)
    gateway.send(
        "cz/v1/gateway/T-GW-1/telemetry",
        {
            "T-AIR-1": [{"ts": now_iso(-3), "seq": 100, "pm10": 70}],
            "T-SIG-1": [
                {"ts": now_iso(-3), "seq": 1, "mode": "actuated", "phase": 2, "fault": None}
            ],
        },
    )
    wait_until(lambda: rows(db_url, "SELECT 1 FROM iot.telemetry WHERE device_id = 'T-SIG-1'"))
    phone = connect_device("T-VEH-2")
    phone.send(
        "owntracks/T-VEH-2/phone",
        {
            "_type": "location",
            "lat": 36.25,
            "lon": 113.05,
            "tst": int(time.time()),
            "vel": 20,
            "batt": 80,
        },
    )
    wait_until(
        lambda: rows(
            db_url,
            "SELECT 1 FROM iot.telemetry WHERE device_id = 'T-VEH-2'"
            " AND (reading->>'battery_pct')::float = 80",
        ),
        what="owntracks",
    )
    signal = connect_device("T-SIG-1")
    signal.client.publish("cz/v1/signal/T-SIG-1/status", b"offline", qos=1, retain=True)
    wait_until(
        lambda: rows(
            db_url, "SELECT 1 FROM iot.device_state WHERE device_id = 'T-SIG-1' AND NOT online"
        ),
        what="offline state",
    )
    wait_until(
        lambda: rows(
            db_url,
            "SELECT 1 FROM iot.alarm WHERE device_id = 'T-SIG-1' AND"
            " rule = 'device.offline' AND cleared_at IS NULL",
        ),
        what="offline alarm",
    )
    signal.send(
        "cz/v1/signal/T-SIG-1/telemetry",
        {"ts": now_iso(), "seq": 2, "mode": "fixed", "phase": 1, "fault": None},
    )
    wait_until(
        lambda: rows(
            db_url,
            "SELECT 1 FROM iot.alarm WHERE device_id = 'T-SIG-1' AND"
            " rule = 'device.offline' AND cleared_at IS NOT NULL",
        ),
        what="back online clears it",
    )


def test_consoles_get_live_states_over_websocket(worker, connect_device, api, admin_headers):
    token = admin_headers["Authorization"].split()[1]
    with api.websocket_connect(f"/ws/live?token={token}&kinds=vehicle") as ws:
        hello = orjson.loads(ws.receive_text())
        assert hello["type"] == "hello"
        car = connect_device("T-VEH-1")
        car.send(
            "cz/v1/vehicle/T-VEH-1/telemetry",
            {"ts": now_iso(), "seq": 77, "lon": 113.111, "lat": 36.222, "speed_kmh": 12},
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = orjson.loads(ws.receive_text())
            if message["type"] == "states" and any(
                item[0] == "T-VEH-1" and item[2] == pytest.approx(113.111)
                for item in message["items"]
            ):
                break
        else:
            raise AssertionError("no live state arrived")
        assert all(item[1] == "vehicle" for item in message["items"])
        # a client sending nonsense is told why and stays connected
        for nonsense in (
            b"\x00\x01",
            '{"type": "filter", "kinds": [[1]]}',
            '{"type": "filter", "bbox": 5}',
        ):
            ws.send_bytes(nonsense) if isinstance(nonsense, bytes) else ws.send_text(nonsense)
            while (reply := orjson.loads(ws.receive_text()))["type"] == "states":
                pass
            assert reply["type"] == "error" and reply["detail"], reply
        ws.send_text('{"type": "filter", "kinds": ["vehicle"]}')
        while (reply := orjson.loads(ws.receive_text()))["type"] == "states":
            pass
        assert reply["type"] == "hello"
    with pytest.raises(WebSocketDisconnect), api.websocket_connect("/ws/live?token=bogus") as ws:
        ws.receive_text()


def test_history_track_and_series_apis(worker, connect_device, api, admin_headers, db_url):
    car = connect_device("T-VEH-2")
    base = datetime.now(UTC) - timedelta(minutes=20)
    fixes = [
        {
            "ts": (base + timedelta(seconds=10 * i)).isoformat(),
            "seq": 1000 + i,
            "lon": 113.0 + i * 0.001,
            "lat": 36.0,
            "speed_kmh": 36.0,
        }
        for i in range(60)
    ]
    car.send("cz/v1/vehicle/T-VEH-2/telemetry", fixes)
    params = {"start": base.isoformat(), "end": (base + timedelta(minutes=11)).isoformat()}

    def full_track() -> dict | None:
        body = api.get("/devices/T-VEH-2/track", params=params, headers=admin_headers).json()
        return body if len(body["geometry"]["coordinates"]) == 60 else None

    wait_until(full_track, what="track stored")
    thin = api.get(
        "/devices/T-VEH-2/track", params={**params, "max_points": 10}, headers=admin_headers
    ).json()
    # 11 minutes in 10 buckets of 66 s: the first fix of each (fixes every 10 s, for 590 s).
    # With 132 fixes expected at the device's 5 s interval, this is the index-probe path.
    firsts = [next(i for i in range(60) if 10 * i >= 66 * k) for k in range(9)]
    assert thin["geometry"]["coordinates"] == [[113.0 + i * 0.001, 36.0] for i in firsts]
    times = thin["properties"]["times"]
    assert times == sorted(times)
    from web.routers.telemetry import TRACK_PROBE, TRACK_SCAN

    with psycopg.connect(db_url) as conn:
        args = {
            "device": "T-VEH-2",
            "start": base,
            "end": base + timedelta(minutes=11),
            "bucket": 66.0,
            "n": 10,
        }
        assert (
            conn.execute(TRACK_PROBE, args).fetchall() == conn.execute(TRACK_SCAN, args).fetchall()
        )
    series = api.get(
        "/devices/T-VEH-2/series",
        params={**params, "field": "speed_kmh", "bucket_s": 300},
        headers=admin_headers,
    ).json()
    assert sum(p["n"] for p in series["points"]) == 60
    assert all(p["avg"] == pytest.approx(36.0) for p in series["points"])
    assert (
        api.get(
            "/devices/T-VEH-2/series", params={"field": "colour"}, headers=admin_headers
        ).status_code
        == 400
    )
    assert (
        api.get(
            "/devices/T-VEH-2/track",
            params={"start": params["end"], "end": params["start"]},
            headers=admin_headers,
        ).status_code
        == 400
    )
    assert api.get("/devices/T-VEH-2/track").status_code == 401


def test_acknowledging_an_alarm_reaches_every_console(api, admin_headers, db_url):
    with psycopg.connect(db_url) as conn:
        alarm_id = conn.execute(
            "INSERT INTO iot.alarm (kind, rule, severity, device_id, message_zh, message_en)"
            " VALUES ('air', 'air.pm25', 3, 'T-AIR-1', '测试', 'test') RETURNING id"
        ).fetchone()[0]
        conn.commit()
    token = admin_headers["Authorization"].split()[1]
    listed = api.get("/alarms", headers=admin_headers).json()
    assert alarm_id in [a["id"] for a in listed]
    with (
        api.websocket_connect(f"/ws/live?token={token}") as one,
        api.websocket_connect(f"/ws/live?token={token}") as two,
    ):
        one.receive_text(), two.receive_text()  # hello
        done = api.post(f"/alarms/{alarm_id}/ack", headers=admin_headers)
        assert done.status_code == 200 and done.json()["by"] == "root-admin"
        for ws in (one, two):
            while True:
                message = orjson.loads(ws.receive_text())
                if message.get("event") == "acknowledged":
                    assert message["id"] == alarm_id
                    break
    again = api.post(f"/alarms/{alarm_id}/ack", headers=admin_headers)
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]
    assert api.post("/alarms/999999999/ack", headers=admin_headers).status_code == 404
    assert alarm_id not in [a["id"] for a in api.get("/alarms", headers=admin_headers).json()]
    audit = api.get(
        "/admin/audit",
        params={"object_type": "alarm", "object_id": str(alarm_id)},
        headers=admin_headers,
    ).json()
    assert audit[0]["action"] == "acknowledge"


def test_dead_letters_are_visible_to_operators(worker, api, admin_headers):
    body = api.get(
        "/telemetry/dead-letters", params={"device_id": "T-VEH-2"}, headers=admin_headers
    ).json()
    assert body["counts_last_day"].get("bad_json", 0) >= 1
    assert {item["reason"] for item in body["items"]} >= {"bad_json", "out_of_area"}


def _retaining(settings, db_url: str, days: int):
    """The test settings with telemetry kept ``days`` days."""
    from gis_core.settings import DatabaseSettings, Settings

    return Settings(
        platform=settings.platform,
        database=DatabaseSettings(url=db_url, telemetry_retention_days=days),
        mqtt=settings.mqtt,
        auth=settings.auth,
        data=settings.data,
    )


def test_history_past_retention_is_refused_and_dropped(settings, db_url, devices):
    """CHANGZHI_DATABASE_TELEMETRY_RETENTION_DAYS: the workers refuse readings older than it
    (bad_ts, see test_readings) and their maintenance drops the daily partitions past it;
    dead letters go after CHANGZHI_DATABASE_DEAD_LETTER_RETENTION_DAYS."""
    from realtime.ingest import _city_limits

    # Days past the 35 the migration makes: the other tests' partitions stay untouched.
    short = _retaining(settings, db_url, 38)
    assert _city_limits(short).retention == timedelta(days=38)
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT iot.ensure_telemetry_partitions(current_date - 40, current_date - 37)")
        conn.commit()

    def days_kept() -> set[int]:
        got = rows(
            db_url,
            "SELECT current_date - to_date(substr(c.relname, 11), 'YYYYMMDD') FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'iot.telemetry'::regclass AND c.relname ~ '^telemetry_[0-9]{8}$'",
        )
        return {int(r[0]) for r in got}

    assert {40, 39, 38, 37} <= days_kept()
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO iot.dead_letter (topic, reason, detail, payload, payload_bytes,"
            " received_at) VALUES ('t/old', 'bad_json', 'old', 'x', 1, now() - interval '31 days'),"
            " ('t/recent', 'bad_json', 'recent', 'x', 1, now() - interval '29 days')"
        )
        conn.commit()
    idle = IngestWorker(short, "test-retention")
    try:
        idle._maintain()
    finally:
        idle._drop_db()
    kept = days_kept()
    assert not {40, 39} & kept  # past the 38 days
    assert {38, 37, 35, 0} <= kept  # inside them, and today
    topics = {
        r[0]
        for r in rows(db_url, "SELECT topic FROM iot.dead_letter WHERE detail IN ('old', 'recent')")
    }
    assert topics == {"t/recent"}  # dead letters: 30 days by default


def test_maintenance_never_waits_long_behind_a_reader_of_the_history(settings, db_url):
    """Dropping a day past retention needs an exclusive lock on the history; with a long
    query reading it, the maintenance gives up after its lock timeout (ingest would queue
    behind a waiting exclusive lock) and drops the day on a later pass."""
    short = _retaining(settings, db_url, 44)

    def has_day(n: int) -> bool:
        name = (datetime.now(UTC).date() - timedelta(days=n)).strftime("telemetry_%Y%m%d")
        return bool(rows(db_url, "SELECT to_regclass(%s) IS NOT NULL", f"iot.{name}")[0][0])

    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT iot.ensure_telemetry_partitions(current_date - 46, current_date - 46)")
        conn.commit()
    assert has_day(46)
    idle = IngestWorker(short, "test-locks")
    with psycopg.connect(db_url) as reader:
        reader.execute("SELECT count(*) FROM iot.telemetry").fetchone()  # holds its lock
        started = time.monotonic()
        idle._maintain()
        assert time.monotonic() - started < 6
        assert has_day(46)  # not dropped while the reader holds the history
    idle._maintain()  # reader gone
    idle._drop_db()
    assert not has_day(46)


def test_silence_counts_only_while_the_platform_listens(settings, db_url):
    """A device silent for three expected intervals goes offline with an alarm — but time the
    platform itself was down (a restart, a broker or database outage) is not the device's
    silence: after a restart, devices get three intervals to be heard again."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO iot.device (id, kind, expected_interval_s) VALUES ('T-SIL-1', 'rain', 5)"
        )
        conn.execute(
            "INSERT INTO iot.device_state (device_id, kind, ts, online, reading, received_at)"
            " VALUES ('T-SIL-1', 'rain', now() - interval '1 hour', true, '{}',"
            " now() - interval '1 hour')"
        )
        conn.commit()

    def state() -> tuple[bool, int]:
        online = rows(db_url, "SELECT online FROM iot.device_state WHERE device_id = 'T-SIL-1'")
        alarms = rows(
            db_url,
            "SELECT count(*) FROM iot.alarm WHERE device_id = 'T-SIL-1'"
            " AND rule = 'device.offline' AND cleared_at IS NULL",
        )
        return online[0][0], alarms[0][0]

    restarted = IngestWorker(settings, "test-silence", limits=LIMITS)
    try:
        restarted._maintain()  # just started: an hour of silence was the platform's
        assert state() == (True, 0)
        restarted.listening_since -= timedelta(seconds=16)  # listening for 3+ intervals
        restarted._maintain()
        assert state() == (False, 1)
    finally:
        restarted._drop_db()
