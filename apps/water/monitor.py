"""The quota watch (``water-quota`` worker): each permit's metered use against its quota, an
alarm before (from 90 %) and when the quota is passed, cleared when the state goes back (a new
year, a corrected meter).

Alarms go to the platform's ledger (``realtime.rules.apply``) under the meter's device id and
are announced on the ``water_meter`` alarm topic; every change of a permit's state is also a
live event ``{"type": "quota", ...}`` on the application's event topic.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import orjson
import psycopg

from apps.water import service
from gis_core.settings import Settings
from realtime import rules, topics
from realtime.mqtt import BrokerAddress, make_client

log = logging.getLogger(__name__)
WARNING_RULE = "water_meter.quota_warning"
EXCEEDED_RULE = "water_meter.quota_exceeded"
EVENT_TOPIC = topics.event_topic("water")
ALARM_TOPIC = topics.alarm("water_meter")
CHECK_EVERY_S = 60.0


def quota_conditions(permits: list[dict[str, Any]]) -> list[rules.Condition]:
    """Both quota rules' verdicts for every metered permit (inactive ones clear alarms)."""
    out = []
    for p in permits:
        if p["meter_id"] is None or p["state"] not in ("normal", "warning", "exceeded"):
            continue  # no reading yet, or a meter fault: nothing to judge
        used, quota, ratio = p["used_m3"], p["annual_quota_m3"], p["ratio"]
        share = f"{ratio:.0%}"
        for rule, active, severity, zh, en in (
            (WARNING_RULE, p["state"] == "warning", 2,
             f"{p['holder_name']} 取水量已达许可量的 {share}（{used:,.0f} / {quota:,.0f} m³）",
             f"{p['holder_name']} has used {share} of its permit ({used:,.0f} / {quota:,.0f} m³)"),
            (EXCEEDED_RULE, p["state"] == "exceeded", 3,
             f"{p['holder_name']} 取水超许可 {share}（{used:,.0f} / {quota:,.0f} m³）",
             f"{p['holder_name']} is over its permit: {share} ({used:,.0f} / {quota:,.0f} m³)"),
        ):  # fmt: skip
            out.append(
                rules.Condition(
                    "water_meter",
                    rule,
                    p["meter_id"],
                    active,
                    severity,
                    used,
                    quota,
                    zh,
                    en,
                    p["lon"],
                    p["lat"],
                )
            )
    return out


def check_quotas(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Judge every permit now and record the alarms (the caller commits); return the alarm
    events and the quota events worth announcing."""
    permits = service.permits(conn)["permits"]
    announced = rules.apply(conn, quota_conditions(permits))
    by_meter = {p["meter_id"]: p for p in permits}
    events = [
        {
            "type": "quota",
            "event": a["event"],
            "rule": a["rule"],
            "permit_id": by_meter[a["device_id"]]["permit_id"],
            "holder_name": by_meter[a["device_id"]]["holder_name"],
            "state": by_meter[a["device_id"]]["state"],
            "ratio": by_meter[a["device_id"]]["ratio"],
            "lon": a["lon"],
            "lat": a["lat"],
        }
        for a in announced
    ]
    return announced, events


def run_quota_watch(settings: Settings | None = None, every_s: float = CHECK_EVERY_S) -> None:
    """The worker's main: checks every ``every_s`` until SIGTERM/SIGINT; survives the database
    or the broker going away."""
    from gis_core.settings import get_settings

    settings = settings or get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client = make_client(settings.mqtt_url, "water-quota")
    broker = BrokerAddress.parse(settings.mqtt_url)
    client.connect_async(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        while True:
            try:
                with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                    announced, events = check_quotas(conn)
                    conn.commit()
                for alarm in announced:
                    client.publish(ALARM_TOPIC, orjson.dumps(alarm, default=str), qos=1)
                for event in events:
                    client.publish(EVENT_TOPIC, orjson.dumps(event, default=str), qos=1)
            except psycopg.Error as exc:
                log.warning("water quota watch: database error, retrying: %s", exc)
            if stop.wait(every_s):
                break
    finally:
        client.disconnect()
        client.loop_stop()


def spawn_quota_watch() -> Callable[[], None]:
    """Start the quota watch as a process; return the function that stops it."""
    from gis_core.processes import spawn

    return spawn(run_quota_watch, name="water-quota")
