"""The ingest worker: MQTT in, PostGIS out, nothing lost.

- MQTT v5 shared subscriptions (``$share/<group>/...``): N workers — on one machine or many,
  against one broker or a cluster — split the stream.
- QoS 1 with a persistent session (``clean_start=False`` and a session expiry): what arrives
  while a worker is down waits for it at the broker.
- Manual acknowledgement: a message is acknowledged only after the batch that holds it is
  committed. A worker killed mid-batch leaves its messages unacknowledged, and the broker
  delivers them again; the writes are idempotent, so nothing is stored twice.
- Back-pressure: while the database is away, batches are retried and nothing is acknowledged;
  the broker stops sending once ``receive_maximum`` messages are in flight and queues the rest.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gis_core.application import device_kinds
from gis_core.heartbeat import INGEST_ROLE, Heartbeat
from gis_core.processes import spawn
from gis_core.settings import Settings
from realtime import rules, topics
from realtime.bulk_mqtt import BulkClient
from realtime.health import OFFLINE_AFTER_INTERVALS
from realtime.mqtt import BrokerAddress, make_client
from realtime.readings import Limits, Reading, dedupe, limits_for, parse_message
from realtime.store import DeadLetter, StateChange, write_batch

log = logging.getLogger(__name__)

SUBSCRIPTIONS = topics.INGEST_SUBSCRIPTIONS
LIVE_TOPIC = topics.LIVE
RECEIVE_MAXIMUM = 20_000
# Rejects a registry refresh may turn around (a device or gateway registered meanwhile).
REGISTRY_REASONS = frozenset({"unknown_device", "not_a_gateway", "not_behind_gateway"})
# Upper bounds (seconds) of the batch-latency histogram the heartbeat carries to /metrics.
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def sender(topic: str) -> str:
    """The login a message came from: the broker's ACL puts it in the topic (``cz/v1/{kind}/
    {id}/...``, ``owntracks/{id}/...``); ``?`` for a topic of neither family."""
    parts = topic.split("/")
    if len(parts) >= 4 and parts[0] == "cz":
        return parts[3]
    if len(parts) >= 2 and parts[0] == "owntracks":
        return parts[1]
    return "?"


@dataclass
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass
class Registry:
    """Device kinds and rule contexts, refreshed now and then (new devices appear)."""

    kinds: dict[str, str] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)  # device id -> its gateway's id
    contexts: dict[str, rules.DeviceContext] = field(default_factory=dict)
    fences: rules.Fences = field(default_factory=rules.Fences)
    loaded_at: float = 0.0

    def load(self, conn: psycopg.Connection) -> None:
        rows = conn.execute(
            """
            SELECT d.id, d.kind, coalesce(d.name_zh, s.name_zh, d.id),
                   coalesce(s.thresholds, '{}'::jsonb), coalesce(ps.limits, '{}'::jsonb),
                   d.gateway_id
            FROM iot.device d
            LEFT JOIN iot.monitoring_site s ON s.id = d.site_id
            LEFT JOIN env.pollution_source ps ON ps.id = s.pollution_source_id
            """
        ).fetchall()
        self.kinds = {r[0]: r[1] for r in rows}
        self.gateways = {r[0]: r[5] for r in rows if r[5] is not None}
        self.contexts = {r[0]: rules.DeviceContext(r[2], r[3], r[4]) for r in rows}
        self.fences = rules.load_fences(conn)
        self.loaded_at = time.monotonic()


@dataclass
class Counters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    statuses: int = 0  # online/offline messages taken
    batches: int = 0
    retries: int = 0
    # Dead letters by the login that sent them (the id in the topic): one device or gateway
    # sending what it may not stands out from the city's background of bad readings.
    refused_by_sender: Counter[str] = field(default_factory=Counter)
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)
    # Batches by latency bucket (BATCH_SECONDS_BUCKETS, then one for slower), and the sum.
    batch_seconds_buckets: list[int] = field(
        default_factory=lambda: [0] * (len(BATCH_SECONDS_BUCKETS) + 1)
    )
    batch_seconds_sum: float = 0.0

    def time_batch(self, seconds: float) -> None:
        self.batch_seconds_buckets[bisect.bisect_left(BATCH_SECONDS_BUCKETS, seconds)] += 1
        self.batch_seconds_sum += seconds

    def figures(self, queued: int) -> dict[str, Any]:
        """What the heartbeat carries: counters since the process started, the queue now."""
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dead_letters": dict(self.dead_letters_by_reason),
            "batches": self.batches,
            "retries": self.retries,
            "batch_seconds": {
                "le": list(BATCH_SECONDS_BUCKETS),
                "counts": list(self.batch_seconds_buckets),
                "sum": self.batch_seconds_sum,
            },
            "queued": queued,
        }


class IngestWorker:
    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        *,
        batch_max: int = 5000,
        batch_wait_s: float = 0.005,
        limits: Limits | None = None,
        registry_refresh_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.limits = limits or _city_limits(settings)
        self.kinds = device_kinds(settings.platform.apps)
        # New devices, thresholds and geofences take effect within this many seconds.
        self.registry_refresh_s = registry_refresh_s
        # Since when this worker has been hearing devices (broker and database both up): a
        # device counts as silent only for time the platform was listening, so a restart or
        # an outage of the platform does not raise an offline alarm for every device.
        self.listening_since = datetime.now(UTC)
        self.registry = Registry()
        self.counters = Counters()
        self._pending: list[Message] = []
        self._first_at = 0.0  # when the oldest pending message arrived
        self._lock = threading.Lock()
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self._unsubscribed = threading.Event()
        self._conn: psycopg.Connection | None = None
        self.client = self._client()
        self.heartbeat = Heartbeat(settings.database_url, INGEST_ROLE, f"ingest@{worker_id}")

    # ------------------------------------------------------------------ MQTT

    def _client(self) -> BulkClient:
        client = make_client(
            self.settings.mqtt_url,
            "ingest",
            client_id=f"cz-ingest-{self.worker_id}",
            client_class=BulkClient,
        )
        assert isinstance(client, BulkClient)
        client.manual_ack_set(True)
        # Mosquitto 2.0 does not restore a persistent session's shared subscription after a
        # broker restart: until a worker re-subscribes, what devices publish has no reader and
        # is dropped. Workers therefore come back quickly, ahead of devices' own back-off.
        client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_bulk_message = self._on_bulk_message
        client.on_unsubscribe = lambda *args: self._unsubscribed.set()
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        return client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("ingest %s: broker refused: %s", self.worker_id, reason)
            return
        group = self.settings.mqtt.share_group
        client.subscribe([(f"$share/{group}/{topic}", 1) for topic in SUBSCRIPTIONS])
        self.listening_since = datetime.now(UTC)
        log.info("ingest %s: connected, subscribed to $share/%s", self.worker_id, group)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._on_bulk_message(msg.topic, bytes(msg.payload), msg.mid, msg.qos)

    def _on_bulk_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        with self._lock:
            self._pending.append(Message(topic, payload, mid, qos))
            waiting = len(self._pending)
            if waiting == 1:
                self._first_at = time.monotonic()
                self._arrived.set()
            elif waiting == self.batch_max:
                self._arrived.set()

    def connect(self) -> None:
        broker = BrokerAddress.parse(self.settings.mqtt_url)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(
            broker.host, broker.port, keepalive=30, clean_start=False, properties=props
        )
        self.client.loop_start()

    # ------------------------------------------------------------------ database

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.settings.database_url, connect_timeout=5)
            self.listening_since = datetime.now(UTC)
            self._conn.execute("SET synchronous_commit = on")
            self._conn.commit()
            self.registry.load(self._conn)
            self._conn.commit()
        return self._conn

    def _drop_db(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        self.connect()
        last_maintenance = last_beat = 0.0
        try:
            while not self._stop.is_set():
                # A batch is what arrived while the last one was being written, or, when
                # traffic is light, what arrives within batch_wait_s of its first message:
                # big batches under load, little waiting when quiet.
                self._arrived.wait(0.5)
                self._arrived.clear()
                with self._lock:
                    waiting, first_at = len(self._pending), self._first_at
                linger = first_at + self.batch_wait_s - time.monotonic()
                if 0 < waiting < self.batch_max and linger > 0:
                    self._arrived.wait(linger)  # set early if the batch fills up
                    self._arrived.clear()
                with self._lock:
                    batch, self._pending = (
                        self._pending[: self.batch_max],
                        self._pending[self.batch_max :],
                    )
                    if self._pending:
                        self._first_at = time.monotonic()
                        self._arrived.set()  # more is waiting: no need to sleep
                if batch:
                    self._process_until_stored(batch)
                if time.monotonic() - last_maintenance > 15:
                    last_maintenance = time.monotonic()
                    self._maintain()
                # From the loop itself, so a worker stuck retrying a batch goes stale.
                if time.monotonic() - last_beat >= self.settings.ops.heartbeat_s:
                    last_beat = time.monotonic()
                    self._beat()
        finally:
            self._leave()
            self._drop_db()
            self.heartbeat.leave()

    def _beat(self) -> None:
        with self._lock:
            queued = len(self._pending)
        self.heartbeat.beat(self.counters.figures(queued))

    def _leave(self) -> None:
        """Leave the share cleanly: unsubscribe (the broker would otherwise keep dealing this
        worker's persistent session its share of messages while it is away), store and
        acknowledge what has already arrived, then disconnect."""
        group = self.settings.mqtt.share_group
        if self.client.is_connected():
            self.client.unsubscribe([f"$share/{group}/{t}" for t in SUBSCRIPTIONS])
            self._unsubscribed.wait(5)
            time.sleep(0.2)  # messages sent before the broker saw the unsubscribe
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                self._stop.clear()  # let the retry loop finish this last batch
                for start in range(0, len(batch), self.batch_max):
                    self._process_until_stored(batch[start : start + self.batch_max], tries=10)
                self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()

    def stop(self) -> None:
        self._stop.set()
        self._arrived.set()

    def _process_until_stored(self, batch: list[Message], tries: int = 0) -> None:
        """Store a batch, retrying while the database is away (``tries`` 0: for ever)."""
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                self.process(batch)
                return
            except psycopg.Error as exc:
                # Nothing was acknowledged: hold the batch and try again, backing off.
                self.counters.retries += 1
                log.warning(
                    "ingest %s: database error, retrying in %.1fs: %s",
                    self.worker_id,
                    delay,
                    str(exc).splitlines()[0] if str(exc) else exc,
                )
                self._drop_db()
                if (tries and attempt >= tries) or self._stop.wait(delay):
                    # Stopping: the broker will deliver these again to whoever comes next.
                    return
                delay = min(delay * 2, 5.0) * (0.8 + 0.4 * random.random())

    def process(self, batch: list[Message]) -> None:
        started = time.perf_counter()
        conn = self._db()
        if time.monotonic() - self.registry.loaded_at > self.registry_refresh_s:
            self.registry.load(conn)
        now = datetime.now(UTC)
        readings: list[Reading] = []
        dead: list[DeadLetter] = []
        statuses = []
        unknown_seen = False
        for message in batch:
            parsed = parse_message(
                message.topic,
                message.payload,
                kinds=self.registry.kinds.get,
                now=now,
                limits=self.limits,
                gateways=self.registry.gateways.get,
            )
            readings.extend(parsed.readings)
            statuses.extend(parsed.statuses)
            for reject in parsed.rejects:
                unknown_seen |= reject.reason in REGISTRY_REASONS
                raw = reject.raw if reject.raw is not None else message.payload
                dead.append(DeadLetter(message.topic, reject, raw))
        if unknown_seen and time.monotonic() - self.registry.loaded_at > 5:
            # A device registered since the last refresh: look again before refusing it.
            self.registry.load(conn)
            self.process(batch)
            return
        unique = dedupe(readings)
        result = write_batch(conn, unique, dead, statuses)
        conditions: list[rules.Condition] = []
        for change in result.changes:
            conditions += rules.evaluate(
                change, self.registry.contexts.get(change.device_id), self.kinds
            )
            conditions += rules.crossings(change, self.registry.fences)
            if not change.was_online:
                conditions.append(_offline_condition(change.device_id, change.kind, False))
        for device_id, kind, online in result.status_changes:
            conditions.append(_offline_condition(device_id, kind, not online))
        announced = rules.apply(conn, conditions)
        conn.commit()
        # Committed: now the world may know, and the broker may forget.
        self._announce(result.changes, result.status_changes, announced)
        self.client.ack_many(m.mid for m in batch if m.qos == 1)
        c = self.counters
        c.received += len(batch)
        c.stored += result.stored
        c.duplicates += len(readings) - result.stored
        c.dead_letters += result.dead_letters
        c.statuses += len(statuses)
        c.refused_by_sender.update(sender(d.topic) for d in dead)
        c.dead_letters_by_reason.update(d.reject.reason for d in dead)
        c.batches += 1
        c.time_batch(time.perf_counter() - started)

    def _announce(
        self,
        changes: list[StateChange],
        status_changes: list[tuple[str, str, bool]],
        alarms: list[dict[str, Any]],
    ) -> None:
        if changes or status_changes:
            live = {
                "states": [
                    [
                        c.device_id,
                        c.kind,
                        c.lon,
                        c.lat,
                        int(c.ts.timestamp() * 1000),
                        c.status,
                        c.reading,
                    ]
                    for c in changes
                ],
                "online": [[d, k, online] for d, k, online in status_changes],
            }
            self.client.publish(LIVE_TOPIC, orjson.dumps(live), qos=0)
        for alarm in alarms:
            self.client.publish(topics.alarm(alarm["kind"]), orjson.dumps(alarm), qos=1)

    def _maintain(self) -> None:
        """Partitions ahead, history and dead letters past retention, and devices gone
        silent — done by one worker at a time."""
        try:
            conn = self._db()
            got = conn.execute("SELECT pg_try_advisory_xact_lock(4404001)").fetchone()
            if not got or not got[0]:
                conn.rollback()
                return
            # Making or dropping a day's partition locks the whole history: never queue the
            # ingest behind this waiting for a long reader; give up and try next pass.
            conn.execute("SET LOCAL lock_timeout = '2s'")
            conn.execute(
                "SELECT iot.ensure_telemetry_partitions(current_date - 1, current_date + 7)"
            )
            dropped = conn.execute(
                "SELECT iot.drop_telemetry_partitions(current_date - %s)",
                (self.settings.database.telemetry_retention_days,),
            ).fetchone()
            if dropped and dropped[0]:
                log.info(
                    "ingest %s: dropped %d days of history past retention",
                    self.worker_id,
                    dropped[0],
                )
            # Dead letters age out too, a bounded number per pass (a flood of bad messages
            # must not make this one long delete).
            conn.execute(
                """
                DELETE FROM iot.dead_letter WHERE id IN (
                    SELECT id FROM iot.dead_letter
                    WHERE received_at < now() - make_interval(days => %s) LIMIT 50000)
                """,
                (self.settings.database.dead_letter_retention_days,),
            )
            silent = conn.execute(
                """
                UPDATE iot.device_state st SET online = false
                FROM iot.device d
                WHERE d.id = st.device_id AND st.online
                  AND greatest(st.received_at, %(since)s)
                      < now() - make_interval(secs => d.expected_interval_s * %(n)s)
                RETURNING st.device_id, st.kind
                """,
                {"since": self.listening_since, "n": OFFLINE_AFTER_INTERVALS},
            ).fetchall()
            announced = rules.apply(
                conn, [_offline_condition(device_id, kind, True) for device_id, kind in silent]
            )
            conn.commit()
            self._announce([], [(d, k, False) for d, k in silent], announced)
        except psycopg.Error as exc:
            log.warning("ingest %s: maintenance skipped: %s", self.worker_id, exc)
            self._drop_db()


def _offline_condition(device_id: str, kind: str, offline: bool) -> rules.Condition:
    return rules.Condition(
        kind,
        "device.offline",
        device_id,
        offline,
        2,
        None,
        None,
        f"{device_id} 离线",
        f"{device_id} offline",
    )


def _city_limits(settings: Settings) -> Limits:
    facts = orjson.loads((settings.platform.data_dir / "city.json").read_bytes())
    return limits_for(
        facts["bbox"],
        retention=timedelta(days=settings.database.telemetry_retention_days),
        kinds=device_kinds(settings.platform.apps),
    )


def run_worker(worker_id: str, settings: Settings | None = None) -> None:
    """A worker process's main: runs until SIGTERM/SIGINT."""
    from gis_core.logs import configure_logging
    from gis_core.settings import get_settings

    settings = settings or get_settings()
    configure_logging(settings.log)  # a spawned child starts with no logging set up
    worker = IngestWorker(settings, worker_id)

    def stop(signum: int, frame: object) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()


def spawn_workers(count: int, prefix: str = "w") -> list[Callable[[], None]]:
    """Start ``count`` worker processes; return one stop function per process."""
    host = os.uname().nodename
    return [
        spawn(run_worker, f"{host}-{prefix}{n}", name=f"ingest-{n}", heartbeat=False)
        for n in range(count)
    ]
