"""The scheduler (``exchange-sync`` worker): runs each source when its schedule says, raises
``exchange.sync_late`` for sources two periods behind, announces every run as a live event
``{"type": "sync", ...}`` on the application's event topic and its alarms on
``cz/v1/alarms/exchange``."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

import orjson
import psycopg

from apps.exchange.sync import due_sources, late_conditions, run_sync
from gis_core.settings import Settings
from realtime import rules, topics
from realtime.mqtt import BrokerAddress, make_client

log = logging.getLogger(__name__)
EVENT_TOPIC = topics.event_topic("exchange")
ALARM_TOPIC = topics.alarm("exchange")
CHECK_EVERY_S = 30.0


def run_scheduler(settings: Settings | None = None, every_s: float = CHECK_EVERY_S) -> None:
    """The worker's main: until SIGTERM/SIGINT; survives the database or broker going away."""
    from gis_core.settings import get_settings

    settings = settings or get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client = make_client(settings.mqtt_url, "exchange-sync")
    broker = BrokerAddress.parse(settings.mqtt_url)
    client.connect_async(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        while not stop.is_set():
            try:
                with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                    due = due_sources(conn)
                for name in due:
                    if stop.is_set():
                        break
                    run = run_sync(settings.database_url, name, "auto", actor="schedule")
                    event = {
                        "type": "sync",
                        "app": "exchange",
                        **{k: run[k] for k in ("source", "state", "mode", "error")},
                        **{k: run[k] for k in ("rows_loaded", "rows_refused")},
                    }
                    client.publish(EVENT_TOPIC, orjson.dumps(event, default=str), qos=1)
                    for alarm in run["alarms"]:
                        client.publish(ALARM_TOPIC, orjson.dumps(alarm, default=str), qos=1)
                with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                    announced = rules.apply(conn, late_conditions(conn))
                    conn.commit()
                for alarm in announced:
                    client.publish(ALARM_TOPIC, orjson.dumps(alarm, default=str), qos=1)
            except psycopg.Error as exc:
                log.warning("exchange scheduler: database error, retrying: %s", exc)
            stop.wait(every_s)
    finally:
        client.disconnect()
        client.loop_stop()


def spawn_scheduler() -> Callable[[], None]:
    """Start the scheduler as a process; return the function that stops it."""
    from gis_core.processes import spawn

    return spawn(run_scheduler, name="exchange-sync")
