"""The dispatch monitor: GPS-driven assignment lifecycle and escalation timers, as a process.

It subscribes (not shared: every fix of every unit) to the live topic the ingest workers
publish after each commit, feeds vehicle fixes to :class:`apps.dispatch.lifecycle.Tracker`,
and every ``monitor_tick_s`` seconds re-reads the live assignments and runs the timers. What
follows is written to the database (assignment steps, suspect fixes, alarms in the ledger of
``realtime.rules``) and then announced: alarms on ``cz/v1/alarms/dispatch`` (for supervisors),
lifecycle events on ``cz/v1/events/dispatch``. A unit seen back at its station is cleared, and
its terminal gets a retained ``release`` (:mod:`apps.dispatch.terminals`), so that the order
the broker keeps for it is no longer the finished dispatch; and on every connection to the
broker the monitor restates every terminal's standing order from the database.

:meth:`DispatchMonitor.process_fixes` and :meth:`DispatchMonitor.run_timers` take a
connection and (for the timers) the time, so tests drive them without a broker or a clock.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg

from apps.dispatch import incidents, lifecycle, terminals
from apps.dispatch.plans import DispatchSettings, dispatch_settings
from gis_core.errors import PlatformError
from gis_core.settings import Settings
from realtime import rules, topics
from realtime.mqtt import BrokerAddress, make_client

log = logging.getLogger(__name__)

ALARM_TOPIC = topics.alarm("dispatch")
EVENT_TOPIC = topics.event_topic("dispatch")
LIVE_TOPIC = topics.LIVE
AUDIENCE = ["supervisor"]

# (device_id, ts seconds, lon, lat, speed_kmh)
RawFix = tuple[str, float, float, float, float | None]

LIVE_ASSIGNMENTS = """
SELECT a.id, a.incident_id, a.unit_id,
       CASE WHEN a.on_scene_at IS NOT NULL THEN 'on_scene'
            WHEN a.en_route_at IS NOT NULL THEN 'en_route' ELSE 'dispatched' END,
       extract(epoch FROM a.dispatched_at), ST_X(i.geom), ST_Y(i.geom), ST_X(p.geom), ST_Y(p.geom)
FROM ops.assignment a
JOIN ops.incident i ON i.id = a.incident_id
JOIN ops.unit u ON u.id = a.unit_id
LEFT JOIN ref.poi p ON p.id = u.station_poi_id
WHERE a.cleared_at IS NULL
"""

OPEN_CLOCKS = """
SELECT i.id, i.priority, extract(epoch FROM i.created_at),
       extract(epoch FROM min(a.dispatched_at)), extract(epoch FROM min(a.on_scene_at)),
       coalesce(m.response_target_s, %(default_target)s), ST_X(i.geom), ST_Y(i.geom)
FROM ops.incident i
LEFT JOIN ops.incident_meta m ON m.incident_id = i.id
LEFT JOIN ops.assignment a ON a.incident_id = i.id
WHERE i.closed_at IS NULL
GROUP BY i.id, m.response_target_s
"""

OPEN_ALARMS = """
SELECT device_id, rule FROM iot.alarm WHERE kind = 'dispatch' AND cleared_at IS NULL
"""


def parse_live(payload: bytes) -> list[RawFix]:
    """Vehicle fixes out of a live announcement of the ingest workers."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return []
    out: list[RawFix] = []
    for state in body.get("states", ()):
        try:
            device_id, kind, lon, lat, ts_ms = state[:5]
            reading = state[6] if len(state) > 6 else None
        except (TypeError, ValueError):
            continue
        if kind != "vehicle" or lon is None or lat is None or ts_ms is None:
            continue
        speed = reading.get("speed_kmh") if isinstance(reading, dict) else None
        out.append(
            (
                str(device_id),
                float(ts_ms) / 1000.0,
                float(lon),
                float(lat),
                float(speed) if isinstance(speed, int | float) else None,
            )
        )
    return out


class DispatchMonitor:
    """GPS lifecycle and timers; the MQTT loop is optional (see :meth:`run`)."""

    def __init__(
        self,
        settings: Settings,
        dispatch: DispatchSettings | None = None,
        clock: Callable[[], float] = time.time,
        publish: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.dispatch = dispatch or dispatch_settings()
        self.clock = clock
        self.tracker = lifecycle.Tracker(self.dispatch)
        self.device_unit: dict[str, str] = {}
        self.devices_loaded_at = 0.0
        self._publish = publish
        self._queue: list[RawFix] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.client: mqtt.Client | None = None
        self._restate = threading.Event()  # set on connecting: restate the terminals' orders
        self.counters = {"fixes": 0, "transitions": 0, "jumps": 0, "alarms": 0, "orders": 0}

    # ---------------------------------------------------------------- announcing

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        if self._publish is not None:
            self._publish(topic, body)
        elif self.client is not None:
            # Orders to terminals are retained (see apps.dispatch.terminals); events are not.
            retain = terminals.RETAIN and terminals.is_command_topic(topic)
            self.client.publish(topic, orjson.dumps(body, default=str), qos=1, retain=retain)

    def _announce(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        for topic, body in messages:
            self.publish(topic, body)

    # ---------------------------------------------------------------- the core

    def load_devices(self, conn: psycopg.Connection) -> None:
        rows = conn.execute(
            "SELECT device_id, id FROM ops.unit WHERE device_id IS NOT NULL"
        ).fetchall()
        self.device_unit = {d: u for d, u in rows}
        self.devices_loaded_at = time.monotonic()

    def sync(self, conn: psycopg.Connection) -> None:
        """Adopt the live assignments (dispatches and operator steps since the last look)."""
        live = [
            lifecycle.Assignment(
                assignment_id=int(r[0]),
                incident_id=int(r[1]),
                unit_id=r[2],
                status=r[3],
                dispatched_ts=float(r[4]),
                scene_lon=float(r[5]),
                scene_lat=float(r[6]),
                station_lon=r[7],
                station_lat=r[8],
            )
            for r in conn.execute(LIVE_ASSIGNMENTS).fetchall()
        ]
        self.tracker.sync(live)

    def process_fixes(self, conn: psycopg.Connection, fixes: list[RawFix]) -> None:
        """Feed fixes to the tracker, write what follows, commit, announce."""
        if not self.device_unit or time.monotonic() - self.devices_loaded_at > 30:
            self.load_devices(conn)
        if not self.tracker.assignments:
            self.sync(conn)
        actions: list[lifecycle.Action] = []
        for device_id, ts, lon, lat, speed in sorted(fixes, key=lambda f: f[1]):
            unit_id = self.device_unit.get(device_id)
            if unit_id is None:
                continue
            self.counters["fixes"] += 1
            actions += self.tracker.feed(lifecycle.Fix(unit_id, ts, lon, lat, speed))
        messages = self.apply(conn, actions)
        conn.commit()
        self._announce(messages)

    def restate_orders(self, conn: psycopg.Connection) -> None:
        """Publish every terminal's standing order as the database has it (retained)."""
        orders = terminals.standing_orders(conn)
        conn.rollback()  # read only; no snapshot held open
        self.counters["orders"] += terminals.send(self.client, orders)
        log.info("dispatch monitor: restated the orders of %s terminals", len(orders))

    def run_timers(self, conn: psycopg.Connection, now: float | None = None) -> None:
        """Re-read the assignments, run the timers, write, commit, announce."""
        now = self.clock() if now is None else now
        self.sync(conn)
        actions: list[lifecycle.Action] = list(self.tracker.tick(now))
        clocks = [
            lifecycle.IncidentClock(
                int(r[0]),
                int(r[1]),
                float(r[2]),
                float(r[3]) if r[3] is not None else None,
                float(r[4]) if r[4] is not None else None,
                float(r[5]),
                float(r[6]),
                float(r[7]),
            )
            for r in conn.execute(
                OPEN_CLOCKS, {"default_target": self.dispatch.rural_target_s}
            ).fetchall()
        ]
        escalations = lifecycle.incident_escalations(clocks, now, self.dispatch)
        open_alarms = {(d, r) for d, r in conn.execute(OPEN_ALARMS).fetchall()}
        conditions: list[tuple[rules.Condition, int | None]] = []
        seen: set[tuple[str, str]] = set()
        for e in escalations:
            key = (f"incident:{e.incident_id}", e.rule)
            seen.add(key)
            if e.active != (key in open_alarms):
                conditions.append((_escalation_condition(e), e.incident_id))
        # Alarms whose reason is gone: the incident closed, the unit cleared or arrived.
        tracked = {
            f"unit:{u}" for u, a in self.tracker.assignments.items() if a.status != "on_scene"
        }
        for device_id, rule in open_alarms:
            gone_incident = device_id.startswith("incident:") and (device_id, rule) not in seen
            gone_unit = rule == "dispatch.stationary_en_route" and device_id not in tracked
            if gone_incident or gone_unit:
                conditions.append((rules.Condition("dispatch", rule, device_id, False), None))
        messages = self.apply(conn, actions, conditions)
        conn.commit()
        self._announce(messages)

    def apply(
        self,
        conn: psycopg.Connection,
        actions: list[lifecycle.Action],
        extra: list[tuple[rules.Condition, int | None]] | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Write the tracker's actions and the conditions; return the announcements."""
        messages: list[tuple[str, dict[str, Any]]] = []
        conditions: list[tuple[rules.Condition, int | None]] = list(extra or [])
        gps = incidents.Actor(None, "gps")
        for a in actions:
            if isinstance(a, lifecycle.Transition):
                at = datetime.fromtimestamp(a.ts, UTC)
                try:
                    with conn.transaction():
                        done = incidents.transition(conn, gps, a.assignment_id, a.status, at)
                except PlatformError as exc:
                    log.info(
                        "monitor: %s of assignment %s skipped: %s", a.status, a.assignment_id, exc
                    )
                    continue
                if done is None:
                    continue
                self.counters["transitions"] += 1
                if a.status == "cleared":
                    released = terminals.release_orders(conn, [a.assignment_id], "returned")
                    messages += [(o.topic, o.body) for o in released if o.body is not None]
                messages.append(
                    (
                        EVENT_TOPIC,
                        {
                            "type": "incident",
                            "event": "status",
                            "incident_id": a.incident_id,
                            "assignment_id": a.assignment_id,
                            "unit_id": a.unit_id,
                            "status": a.status,
                            "at": at.isoformat(),
                            "source": "gps",
                            "lon": a.lon,
                            "lat": a.lat,
                        },
                    )
                )
            elif isinstance(a, lifecycle.GpsJump):
                self.counters["jumps"] += 1
                conn.execute(
                    """
                    INSERT INTO ops.gps_suspect (unit_id, good_ts, good_geom, bad_geom)
                    VALUES (%(unit)s, %(good_ts)s,
                            ST_SetSRID(ST_MakePoint(%(glon)s, %(glat)s), 4326),
                            ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))
                    ON CONFLICT (unit_id) DO UPDATE SET jumps = ops.gps_suspect.jumps + 1,
                        flagged_at = now(), bad_geom = excluded.bad_geom
                    """,
                    {
                        "unit": a.unit_id,
                        "good_ts": datetime.fromtimestamp(a.good_ts, UTC),
                        "glon": a.good_lon,
                        "glat": a.good_lat,
                        "lon": a.lon,
                        "lat": a.lat,
                    },
                )
                conditions.append(
                    (
                        rules.Condition(
                            "dispatch",
                            "dispatch.gps_jump",
                            f"unit:{a.unit_id}",
                            True,
                            2,
                            round(a.implied_kmh, 1),
                            self.dispatch.jump_speed_kmh,
                            f"{a.unit_id} 定位跳变（{a.implied_kmh:,.0f} km/h），已忽略该定位",
                            f"{a.unit_id} GPS jumped ({a.implied_kmh:,.0f} km/h): fix ignored",
                            a.good_lon,
                            a.good_lat,
                            momentary=True,
                        ),
                        None,
                    )
                )
            elif isinstance(a, lifecycle.GpsRecovered):
                conn.execute("DELETE FROM ops.gps_suspect WHERE unit_id = %s", (a.unit_id,))
                conditions.append(
                    (
                        rules.Condition(
                            "dispatch", "dispatch.gps_jump", f"unit:{a.unit_id}", False
                        ),
                        None,
                    )
                )
            elif isinstance(a, lifecycle.Stationary):
                minutes = self.dispatch.stationary_en_route_s / 60
                conditions.append(
                    (
                        rules.Condition(
                            "dispatch",
                            "dispatch.stationary_en_route",
                            f"unit:{a.unit_id}",
                            a.active,
                            3,
                            None,
                            self.dispatch.stationary_en_route_s,
                            f"{a.unit_id} 出警途中静止超过 {minutes:g} 分钟"
                            f"（事件 {a.incident_id}）",
                            f"{a.unit_id} stationary en route for over {minutes:g} min "
                            f"(incident {a.incident_id})",
                            a.lon,
                            a.lat,
                        ),
                        a.incident_id,
                    )
                )
        if conditions:
            announced = rules.apply(conn, [c for c, _ in conditions])
            links = {c.device_id: i for c, i in conditions if i is not None}
            for alarm in announced:
                incident_id = links.get(alarm["device_id"])
                if incident_id is None and str(alarm["device_id"]).startswith("incident:"):
                    incident_id = int(str(alarm["device_id"]).split(":", 1)[1])
                if incident_id is not None and alarm["event"] == "raised":
                    conn.execute(
                        "UPDATE iot.alarm SET incident_id = %s WHERE id = %s",
                        (incident_id, alarm["id"]),
                    )
                alarm["incident_id"] = incident_id
                alarm["audience"] = AUDIENCE
                self.counters["alarms"] += 1
                messages.append((ALARM_TOPIC, alarm))
        return messages

    # ---------------------------------------------------------------- the process

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("dispatch monitor: broker refused: %s", reason)
            return
        client.subscribe([(LIVE_TOPIC, 0)])
        self._restate.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        fixes = parse_live(bytes(msg.payload))
        if fixes:
            with self._lock:
                self._queue.extend(fixes)

    def stop(self) -> None:
        self._stop.set()

    def run(self, batch_wait_s: float = 0.2) -> None:
        """Subscribe and loop until :meth:`stop`; survives the database going away."""
        client = make_client(self.settings.mqtt_url, "dispatch-monitor")
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        broker = BrokerAddress.parse(self.settings.mqtt_url)
        client.connect_async(broker.host, broker.port, keepalive=30)
        client.loop_start()
        conn: psycopg.Connection | None = None
        last_tick = 0.0
        try:
            while not self._stop.wait(batch_wait_s):
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.settings.database_url, connect_timeout=5)
                    if self._restate.is_set():
                        self._restate.clear()
                        try:
                            self.restate_orders(conn)
                        except psycopg.Error:
                            self._restate.set()  # again once the database is back
                            raise
                    with self._lock:
                        batch, self._queue = self._queue, []
                    if batch:
                        self.process_fixes(conn, batch)
                    if time.monotonic() - last_tick >= self.dispatch.monitor_tick_s:
                        last_tick = time.monotonic()
                        self.run_timers(conn)
                except psycopg.Error as exc:
                    log.warning("dispatch monitor: database error, retrying: %s", exc)
                    if conn is not None:
                        with contextlib.suppress(psycopg.Error):
                            conn.close()
                    conn = None
                    self._stop.wait(2.0)
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            client.disconnect()
            client.loop_stop()


def _escalation_condition(e: lifecycle.Escalation) -> rules.Condition:
    minutes = e.overdue_s / 60
    if e.rule == "dispatch.not_dispatched":
        zh = f"事件 {e.incident_id} 超时未派车（超出 {minutes:.1f} 分钟），请督办"
        en = f"incident {e.incident_id} not dispatched ({minutes:.1f} min over the deadline)"
    else:
        zh = f"事件 {e.incident_id} 超过响应时限仍无力量到场（超出 {minutes:.1f} 分钟）"
        en = f"incident {e.incident_id}: no unit on scene within the response target"
    return rules.Condition(
        "dispatch",
        e.rule,
        f"incident:{e.incident_id}",
        e.active,
        e.severity,
        round(e.overdue_s, 1),
        None,
        zh,
        en,
        e.lon,
        e.lat,
    )


def run_monitor(settings: Settings | None = None) -> None:
    """The monitor process's main: runs until SIGTERM/SIGINT."""
    from gis_core.settings import get_settings

    monitor = DispatchMonitor(settings or get_settings())

    def stop(signum: int, frame: object) -> None:
        monitor.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    monitor.run()


def spawn_monitor() -> Callable[[], None]:
    """Start the monitor as a process; return the function that stops it."""
    from gis_core.processes import spawn

    return spawn(run_monitor, name="dispatch-monitor")
