"""Faults under load: each ends with every valid reading stored exactly once, the service up,
and every reject in the dead letters with its reason. These run on their own throwaway
PostGIS and Mosquitto, since they stop and kill them."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.platform.services import Throwaway, start_throwaway
from gis_core.db import migrate
from gis_core.settings import (
    AuthSettings,
    DatabaseSettings,
    MqttSettings,
    PlatformSettings,
    Settings,
)
from realtime.ingest import IngestWorker
from realtime.mqtt import BrokerAddress, make_client
from realtime.readings import Limits

LIMITS = Limits((111.5, 35.3, 114.2, 37.6))
DEVICES = [f"F-{i:03d}" for i in range(50)]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> Iterator[tuple[Throwaway, Settings]]:
    handle = start_throwaway("changzhi-faults-")
    settings = Settings(
        platform=PlatformSettings(var_dir=tmp_path_factory.mktemp("faults-var")),
        database=DatabaseSettings(url=handle.postgres.url),
        mqtt=MqttSettings(url=handle.mosquitto.url),
        auth=AuthSettings(secret_key=secrets.token_urlsafe(48)),
    )
    migrate(settings.sqlalchemy_url)
    with psycopg.connect(handle.postgres.url) as conn:
        for device_id in DEVICES:
            conn.execute("INSERT INTO iot.device (id, kind) VALUES (%s, 'vehicle')", (device_id,))
        conn.commit()
    try:
        yield handle, settings
    finally:
        handle.services.stop()
        shutil.rmtree(handle.root, ignore_errors=True)


class Publisher:
    """A QoS 1 publisher with a persistent session: it rides out broker restarts.

    Like any MQTT v5 device that must not lose readings, it sends a reading again when the
    broker's PUBACK says "No matching subscribers" (0x10): after a broker restart Mosquitto
    does not restore shared subscriptions, so until the ingest workers have re-subscribed
    (a fraction of a second) a reading has nobody to go to, and the broker says so."""

    NO_MATCHING_SUBSCRIBERS = 0x10

    def __init__(self, url: str, name: str) -> None:
        address = BrokerAddress.parse(url)
        self.client = make_client(url, "fault", client_id=f"fault-pub-{name}")
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.sent = 0
        self.acked = 0
        self.resent = 0
        self._lock = threading.Lock()
        self._unacked: dict[int, tuple[str, bytes]] = {}
        self._early: dict[int, object] = {}
        self.client.on_publish = self._on_publish
        self.client.connect(address.host, address.port, clean_start=False, properties=props)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)

    def reading(self, seq: int) -> tuple[str, bytes]:
        device = DEVICES[seq % len(DEVICES)]
        body = {
            "ts": int(time.time() * 1000),
            "seq": seq,
            "lon": 113.0 + (seq % 100) * 1e-3,
            "lat": 36.0,
            "speed_kmh": 20,
        }
        return f"cz/v1/vehicle/{device}/telemetry", orjson.dumps(body)

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object
    ) -> None:
        # paho calls this holding its own locks: never call into paho under self._lock.
        with self._lock:
            message = self._unacked.pop(mid, None)
            if message is None:  # acknowledged before _publish recorded it
                self._early[mid] = reason
                return
        self._settle(reason, message)

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._unacked[info.mid] = (topic, payload)
                return
        self._settle(early, (topic, payload))

    def _settle(self, reason: object, message: tuple[str, bytes]) -> None:
        if getattr(reason, "value", 0) == self.NO_MATCHING_SUBSCRIBERS:
            self.resent += 1
            threading.Timer(0.2, self._publish, message).start()
        else:
            self.acked += 1

    def send(self, topic: str, payload: bytes) -> None:
        # Messages published while disconnected are queued by paho and sent on reconnect.
        self._publish(topic, payload)
        self.sent += 1

    def flush(self, timeout: float = 120) -> None:
        """Wait until the broker has acknowledged every message sent."""
        deadline = time.monotonic() + timeout
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                raise AssertionError(f"broker acknowledged {self.acked} of {self.sent}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def count_seq_range(url: str, lo: int, hi: int) -> tuple[int, int]:
    """(rows, distinct (device, seq)) for seq in [lo, hi)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM iot.telemetry"
            " WHERE seq >= %s AND seq < %s",
            (lo, hi),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_for_all(url: str, lo: int, hi: int, timeout: float = 120) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    got = (0, 0)
    while time.monotonic() < deadline:
        try:
            got = count_seq_range(url, lo, hi)
        except psycopg.OperationalError:
            got = (0, 0)
        if got[1] >= hi - lo:
            return got
        time.sleep(0.25)
    return got


@pytest.fixture
def thread_worker(faulty) -> Iterator[IngestWorker]:
    _, settings = faulty
    worker = IngestWorker(settings, f"faults-{secrets.token_hex(3)}", limits=LIMITS)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not worker.client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    yield worker
    worker.stop()
    thread.join(15)
    assert not thread.is_alive()


def test_database_outage_of_20_seconds_under_load(faulty, thread_worker):
    handle, settings = faulty
    lo, n = 1_000_000, 6000
    publisher = Publisher(settings.mqtt_url, "db")
    try:
        for i in range(n):
            publisher.send(*publisher.reading(lo + i))
            if i == 1000:
                handle.postgres.stop()  # the database goes away mid-stream
                outage_started = time.monotonic()
            if i > 1000 and i % 250 == 0:
                time.sleep(0.8)  # keep publishing through the outage
        publisher.flush()
        time.sleep(max(0.0, 20 - (time.monotonic() - outage_started)))
        assert thread_worker.counters.retries > 0, "the worker never noticed the outage"
        handle.postgres.start()
        rows, distinct = wait_for_all(settings.database_url, lo, lo + n)
    finally:
        publisher.close()
    assert (rows, distinct) == (n, n)


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(faulty):
    _, settings = faulty
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHANGZHI_")},
        "CHANGZHI_DATABASE_URL": settings.database_url,
        "CHANGZHI_MQTT_URL": settings.mqtt_url,
        "CHANGZHI_AUTH_SECRET_KEY": "k" * 48,
        "CHANGZHI_VAR_DIR": str(settings.platform.var_dir),
    }
    code = "from realtime.ingest import run_worker; run_worker('kill-me')"
    repo = Path(__file__).resolve().parents[1]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=repo)

    worker = start()
    time.sleep(2.5)  # connected, subscribed with its persistent session
    lo, n = 2_000_000, 20_000
    publisher = Publisher(settings.mqtt_url, "kill")
    try:
        for i in range(n):
            publisher.send(*publisher.reading(lo + i))
            if i == n // 3:
                os.kill(worker.pid, signal.SIGKILL)  # mid-stream, mid-batch
                worker.wait(10)
        publisher.flush()
        time.sleep(1.0)
        assert count_seq_range(settings.database_url, lo, lo + n)[1] < n  # something waits
        worker = start()  # same id: the broker hands it the unacknowledged messages
        rows, distinct = wait_for_all(settings.database_url, lo, lo + n)
    finally:
        publisher.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    assert (rows, distinct) == (n, n)
    assert worker.returncode == 0


def test_broker_restart_loses_nothing(faulty, thread_worker):
    handle, settings = faulty
    lo, n = 3_000_000, 6000
    publisher = Publisher(settings.mqtt_url, "broker")
    try:
        for i in range(n):
            publisher.send(*publisher.reading(lo + i))
            if i == n // 2:
                publisher.flush()
                handle.mosquitto.stop()
                time.sleep(1.0)
                handle.mosquitto.start()
        publisher.flush()
        rows, distinct = wait_for_all(settings.database_url, lo, lo + n)
    finally:
        publisher.close()
    assert (rows, distinct) == (n, n), (
        f"stored {distinct} of {n}; publisher acked {publisher.acked}/{publisher.sent} "
        f"(resent {publisher.resent}); "
        f"worker {thread_worker.counters}"
    )
    assert thread_worker.client.is_connected()


HOSTILE = [
    ("cz/v1/vehicle/F-001/telemetry", b'{"ts": 1, "seq": ', "bad_json"),
    ("cz/v1/vehicle/F-001/telemetry", b'{"ts": 1700000000000, "lat": NaN, "lon": 1}', "bad_json"),
    ("cz/v1/vehicle/F-002/telemetry", orjson.dumps({"ts": "now", "lon": 113, "lat": 36}), "bad_ts"),
    ("cz/v1/vehicle/F-003/telemetry", orjson.dumps({"ts": 1, "lon": "113", "lat": 36}), "bad_ts"),
    ("cz/v1/vehicle/F-004/telemetry", b"x" * (1024 * 1024), "too_large"),
    (
        "cz/v1/vehicle/GHOST/telemetry",
        orjson.dumps({"ts": 1, "lon": 113, "lat": 36}),
        "unknown_device",
    ),
    ("cz/v1/air/F-005/telemetry", orjson.dumps({"ts": 1, "pm25": 1}), "wrong_kind"),
    ("cz/v1/teapot/F-005/telemetry", b"{}", "bad_topic"),
    ("cz/v1/vehicle/F-006/status", b"DROP TABLE iot.device", "bad_status"),
]


def _hostile(i: int) -> tuple[str, bytes, str]:
    topic, payload, reason = HOSTILE[i % len(HOSTILE)]
    if reason == "too_large" and i % 500 != 4:
        # A thousand 1 MB payloads would only test the loopback; some are enough.
        return (
            "cz/v1/vehicle/F-007/telemetry",
            orjson.dumps(
                {
                    "ts": int(time.time() * 1000),
                    "seq": i,
                    "lon": 113.1,
                    "lat": 36.1,
                    "speed_kmh": "'; DELETE FROM iot.telemetry; --",
                }
            ),
            "bad_value",
        )
    if reason in ("bad_ts",) and payload.startswith(b'{"ts": 1,'):
        return (
            topic,
            orjson.dumps({"ts": int(time.time() * 1000), "seq": i, "lon": 913.0, "lat": 36.0}),
            "out_of_area",
        )
    return topic, payload, reason


def test_ten_thousand_hostile_messages_among_valid_traffic(faulty, thread_worker):
    _, settings = faulty
    lo, n_valid, n_hostile = 4_000_000, 10_000, 10_000
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("TRUNCATE iot.dead_letter")
        conn.commit()
    expected: dict[str, int] = {}
    publisher = Publisher(settings.mqtt_url, "hostile")
    try:
        for i in range(max(n_valid, n_hostile)):
            if i < n_valid:
                publisher.send(*publisher.reading(lo + i))
            if i < n_hostile:
                topic, payload, reason = _hostile(i)
                expected[reason] = expected.get(reason, 0) + 1
                publisher.send(topic, payload)
        publisher.flush()
        rows, distinct = wait_for_all(settings.database_url, lo, lo + n_valid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with psycopg.connect(settings.database_url) as conn:
                counted = dict(
                    conn.execute(
                        "SELECT reason, count(*) FROM iot.dead_letter GROUP BY reason"
                    ).fetchall()
                )
            if sum(counted.values()) >= n_hostile:
                break
            time.sleep(0.25)
    finally:
        publisher.close()
    assert (rows, distinct) == (n_valid, n_valid)
    assert counted == expected
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM iot.device").fetchone()[0] == len(DEVICES)
        biggest = conn.execute("SELECT max(length(payload)) FROM iot.dead_letter").fetchone()[0]
    assert biggest < 5000
    assert thread_worker.client.is_connected()
