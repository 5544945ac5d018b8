"""Issue 12 over MQTT: no login writes another device's data, and every message that reaches
ingest is stored or dead-lettered — never both, never neither — over every topic family.

Devices log in with their own accounts on the session's broker, so the broker's ACL is part
of what is tested; where the ACL already refuses a message, the same message is also sent
through the platform's account to check that ingest refuses it on its own (an external broker
may have a looser ACL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from realtime.ingest import IngestWorker
from realtime.mqtt import BrokerAddress, make_client
from realtime.provision import device_credentials, gateway_ids, register_gateway
from tests.support import wait_until
from tests.test_ingest import LIMITS, Device, now_iso, rows


@pytest.fixture(scope="module")
def accounts(db_url, settings, throwaway) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """
            INSERT INTO iot.device (id, kind, name_zh, expected_interval_s) VALUES
              ('S-VEH-1', 'vehicle', '安全测试车1', 5),
              ('S-VEH-2', 'vehicle', '安全测试车2', 5),
              ('S-AIR-1', 'air', '安全测试空气1', 600),
              ('S-AIR-2', 'air', '安全测试空气2', 600)
            ON CONFLICT DO NOTHING
            """
        )
        register_gateway(conn, "S-GW-1", ["S-AIR-1"])
        conn.commit()
        creds = device_credentials(conn, settings.device_secret)
        gateways = gateway_ids(conn)
    throwaway.mosquitto.write_accounts(creds, gateways)
    throwaway.mosquitto.reload()
    time.sleep(0.3)
    return creds


@pytest.fixture(scope="module")
def worker(accounts, settings) -> Iterator[IngestWorker]:
    w = IngestWorker(settings, "sec-0", limits=LIMITS, batch_wait_s=0.01)
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    wait_until(w.client.is_connected, what="worker connected")
    time.sleep(0.3)
    yield w
    w.stop()
    thread.join(10)


@pytest.fixture(scope="module")
def logins(throwaway, accounts) -> Iterator[dict[str, Device]]:
    url = throwaway.mosquitto.url
    opened = {d: Device(url, d, accounts[d]) for d in ("S-VEH-1", "S-AIR-1", "S-GW-1")}
    yield opened
    for device in opened.values():
        device.close()


@pytest.fixture(scope="module")
def platform(throwaway) -> Iterator[Any]:
    client = make_client(throwaway.mosquitto.url, "sec-platform")
    address = BrokerAddress.parse(throwaway.mosquitto.url)
    client.connect(address.host, address.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def outcome(worker: IngestWorker, publish: Any) -> tuple[int, int, int]:
    """(readings stored, dead letters, statuses) that one published message came to."""
    c = worker.counters
    before = (c.received, c.stored + c.duplicates, c.dead_letters, c.statuses)
    publish()
    wait_until(lambda: worker.counters.received > before[0], 10, "ingest of the message")
    return (
        c.stored + c.duplicates - before[1],
        c.dead_letters - before[2],
        c.statuses - before[3],
    )


def reading(seq: int, **values: Any) -> dict[str, Any]:
    return {"ts": now_iso(-1), "seq": seq, **values}


def test_a_device_cannot_write_another_devices_readings(worker, logins, platform, db_url):
    """Issue 12.1: a vehicle publishing a gateway batch for another vehicle."""
    forged = {"S-VEH-2": [reading(7, lon=113.2, lat=36.3, speed_kmh=99)]}
    vehicle = logins["S-VEH-1"]
    mid = vehicle.send("cz/v1/gateway/S-VEH-1/telemetry", forged)
    assert mid in vehicle.refused  # the broker: a vehicle may not publish gateway batches
    # Through a broker that let it pass, ingest refuses it: S-VEH-1 is no gateway.
    got = outcome(
        worker,
        lambda: platform.publish(
            "cz/v1/gateway/S-VEH-1/telemetry", orjson.dumps(forged), qos=1
        ).wait_for_publish(5),
    )
    assert got == (0, 1, 0)
    assert rows(db_url, "SELECT 1 FROM iot.telemetry WHERE device_id = 'S-VEH-2'") == []
    assert rows(
        db_url,
        "SELECT 1 FROM iot.dead_letter WHERE topic = 'cz/v1/gateway/S-VEH-1/telemetry'"
        " AND reason = 'not_a_gateway' AND device_id = 'S-VEH-1'",
    )
    assert worker.counters.refused_by_sender["S-VEH-1"] >= 1


def test_a_gateway_speaks_only_for_the_devices_behind_it(worker, logins, db_url):
    gateway = logins["S-GW-1"]
    batch = {"S-AIR-1": [reading(1, pm25=12)], "S-AIR-2": [reading(1, pm25=999)]}
    got = outcome(worker, lambda: gateway.send("cz/v1/gateway/S-GW-1/telemetry", batch))
    assert got == (1, 1, 0)
    assert rows(db_url, "SELECT 1 FROM iot.telemetry WHERE device_id = 'S-AIR-1' AND seq = 1")
    assert rows(db_url, "SELECT 1 FROM iot.telemetry WHERE device_id = 'S-AIR-2'") == []
    letter = rows(
        db_url,
        "SELECT payload FROM iot.dead_letter WHERE reason = 'not_behind_gateway'"
        " AND device_id = 'S-AIR-2'",
    )
    assert letter and "999" in letter[-1][0] and "S-AIR-1" not in letter[-1][0]
    assert worker.counters.refused_by_sender["S-GW-1"] >= 1
    # Another gateway's topic is not this gateway's to use.
    mid = gateway.send("cz/v1/gateway/S-GW-2/telemetry", {"S-AIR-1": [reading(2, pm25=1)]})
    assert mid in gateway.refused


@pytest.mark.parametrize(
    "topic, body, sender",
    [
        ("cz/v1/air/S-AIR-1/telemetry", [], "S-AIR-1"),
        ("cz/v1/gateway/S-GW-1/telemetry", {}, "S-GW-1"),
        ("cz/v1/gateway/S-GW-1/telemetry", {"S-AIR-1": []}, "S-GW-1"),
    ],
)
def test_a_message_with_nothing_in_it_leaves_a_dead_letter(
    worker, logins, db_url, topic, body, sender
):
    """Issue 12.2: these were dropped with neither a reading nor a dead letter."""
    got = outcome(worker, lambda: logins[sender].send(topic, body))
    assert got == (0, 1, 0)
    payload = orjson.dumps(body).decode()
    assert rows(
        db_url,
        "SELECT 1 FROM iot.dead_letter WHERE topic = %s AND reason = 'empty' AND payload = %s",
        topic,
        payload,
    )


def hostile_corpus(seq: int) -> list[tuple[str, str, Any, int]]:
    """(login, topic, payload, readings in it) over every family the ingest reads."""
    ok_fix = {"lon": 113.1, "lat": 36.2}
    owntracks = {"_type": "location", "lat": 36.2, "lon": 113.1, "tst": int(time.time())}
    return [
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", reading(seq, **ok_fix), 1),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", [reading(seq + 1, **ok_fix)] * 2, 2),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", b"", 1),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", b"\xff\xfe", 1),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", b'"\\ud800"', 1),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", {"ts": "x\u0000"}, 1),
        (
            "S-VEH-1",
            "cz/v1/vehicle/S-VEH-1/telemetry",
            reading(seq + 2, status="\ufffe", **ok_fix),
            1,
        ),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", [None, 1, "x"], 3),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/telemetry", b"[" * 5000 + b"]" * 5000, 1),
        ("S-VEH-1", "cz/v1/air/S-VEH-1/telemetry", reading(seq + 3, pm25=5), 1),
        ("S-VEH-1", "cz/v1/nosuchkind/S-VEH-1/telemetry", reading(seq + 4), 1),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/status", b"online", 0),
        ("S-VEH-1", "cz/v1/vehicle/S-VEH-1/status", b"\x00maybe", 1),
        ("S-VEH-1", "owntracks/S-VEH-1/phone", owntracks, 1),
        ("S-VEH-1", "owntracks/S-VEH-1/phone", {"_type": "waypoint"}, 1),
        ("S-VEH-1", "owntracks/S-VEH-1/phone", {**owntracks, "lat": "north"}, 1),
        ("S-AIR-1", "cz/v1/air/S-AIR-1/telemetry", reading(seq, pm25=10), 1),
        ("S-AIR-1", "cz/v1/air/S-AIR-1/telemetry", reading(seq + 1, pm25=-5), 1),
        ("S-AIR-1", "cz/v1/air/S-AIR-1/telemetry", {"S-AIR-1": [reading(seq + 2, pm25=1)]}, 1),
        ("S-GW-1", "cz/v1/gateway/S-GW-1/telemetry", {"S-AIR-1": [reading(seq + 3, pm25=3)]}, 1),
        ("S-GW-1", "cz/v1/gateway/S-GW-1/telemetry", {"S-VEH-1": [reading(seq + 5)]}, 1),
        ("S-GW-1", "cz/v1/gateway/S-GW-1/telemetry", {"NOPE": [reading(seq)]}, 1),
        ("S-GW-1", "cz/v1/gateway/S-GW-1/telemetry", [reading(seq)], 1),
        ("S-GW-1", "cz/v1/gateway/S-GW-1/telemetry", {"S-AIR-1": "x"}, 1),
        ("S-GW-1", "cz/v1/gateway/S-GW-1/telemetry", {"S-AIR-1": [1, 2]}, 2),
    ]


def test_every_message_is_stored_or_dead_lettered_never_both_never_neither(worker, logins):
    done = []
    for login, topic, payload, parts in hostile_corpus(seq=1000):
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        device = logins[login]
        got = outcome(worker, lambda d=device, t=topic, r=raw: d.send(t, None, raw=r))
        stored, dead, statuses = got
        if parts == 0:  # a status: taken as a status, nothing else
            assert got == (0, 0, 1), (topic, payload)
        else:  # each reading of the message either stored or refused, exactly once
            assert stored + dead == parts and statuses == 0, (topic, payload, got)
        done.append(topic)
    assert len(done) == len(hostile_corpus(0))


@pytest.mark.parametrize(
    "topic",
    [
        "cz/v1/vehicle/S-VEH-2/telemetry",  # another device's topic
        "cz/v1/vehicle/S-VEH-2/status",
        "owntracks/S-VEH-2/phone",
        "owntracks/S-VEH-1/phone/deeper",  # read by nobody: neither stored nor refused
        "cz/v1/gateway/S-GW-1/telemetry",  # the gateway's topic
        "cz/v1/gateway/S-VEH-1/telemetry",  # a gateway topic of its own
        "cz/v1/gateway/S-VEH-1/status",
        "cz/v1/vehicle/S-VEH-1/command",  # orders come from the platform only
        "cz/v1/vehicle/S-VEH-2/command",
        "cz/v1/alarms/vehicle",
        "cz/v1/platform/live",
    ],
)
def test_the_broker_refuses_what_a_login_may_not_publish(logins, topic, db_url):
    vehicle = logins["S-VEH-1"]
    body = {"S-VEH-2": [reading(99, lon=113.2, lat=36.3)]} if "gateway" in topic else reading(99)
    mid = vehicle.send(topic, body)
    assert mid in vehicle.refused, topic
    assert rows(db_url, "SELECT 1 FROM iot.telemetry WHERE device_id = 'S-VEH-2'") == []
