"""The water watches ``changzhi up`` starts.

``water-quota`` (every minute): each permit's metered use against its quota. Reaching 90 % of
the annual quota and passing it are each noted once per permit and year
(``water.quota_notice``), and each notice raises one alarm in the platform's ledger under the
meter's device id (``water_meter.quota_warning``, ``water_meter.quota_exceeded``); a meter
corrected afterwards or use hovering at the mark raises nothing more that year. The alarms stay
open until an operator acknowledges them.

``water-watch`` (every ten minutes): the district drought grades (an alarm per grade a district
enters, cleared when it leaves) and the water-quality stations worse than their target class
(an alarm per station, cleared when it meets it again), the exceedance carrying the outfalls
upstream ranked by load.

Alarms are announced on their kind's alarm topic and every change as a live event on the
application's event topic: ``{"type": "quota"|"drought"|"exceedance", ...}``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import psycopg

from apps.water import quality, service
from gis_core.errors import PlatformError
from gis_core.settings import Settings
from realtime import rules, topics
from realtime.mqtt import BrokerAddress, make_client

log = logging.getLogger(__name__)
WARNING_RULE = "water_meter.quota_warning"
EXCEEDED_RULE = "water_meter.quota_exceeded"
EVENT_TOPIC = topics.event_topic("water")
ALARM_TOPIC = topics.alarm("water_meter")
CHECK_EVERY_S = 60.0
WATCH_EVERY_S = 600.0  # soil and water quality change over hours
WARNING_LEVEL = 90  # % of the annual quota
TARGET_RULE = "water_quality.target_exceeded"
TRACE_TOP = 5  # outfalls named in the exceedance event; the route gives them all


def _message(p: dict[str, Any], level: int) -> tuple[str, str]:
    used, quota, share = p["used_m3"], p["annual_quota_m3"], f"{p['ratio']:.0%}"
    if level == WARNING_LEVEL:
        return (
            f"{p['holder_name']} 取水量已达许可量的 {share}（{used:,.0f} / {quota:,.0f} m³）",
            f"{p['holder_name']} has used {share} of its permit ({used:,.0f} / {quota:,.0f} m³)",
        )
    return (
        f"{p['holder_name']} 取水超许可 {share}（{used:,.0f} / {quota:,.0f} m³）",
        f"{p['holder_name']} is over its permit: {share} ({used:,.0f} / {quota:,.0f} m³)",
    )


def levels_reached(p: dict[str, Any]) -> list[int]:
    """The quota levels (90, 100) a judged permit is at or past now; none for a permit with
    no reading or a meter fault."""
    if p["meter_id"] is None or p["state"] not in ("normal", "warning", "exceeded"):
        return []
    return {"normal": [], "warning": [WARNING_LEVEL], "exceeded": [WARNING_LEVEL, 100]}[p["state"]]


def check_quotas(
    conn: psycopg.Connection, year: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Judge every permit now, note each quota level newly reached this year and raise its
    one alarm (the caller commits); return the alarm events and the quota events."""
    judged = service.permits(conn, year)
    announced: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for p in judged["permits"]:
        for level in levels_reached(p):
            noted = conn.execute(
                "INSERT INTO water.quota_notice (permit_id, year, level, used_m3)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING permit_id",
                (p["permit_id"], judged["year"], level, p["used_m3"]),
            ).fetchone()
            if noted is None:
                continue  # this level was announced already this year
            rule = WARNING_RULE if level == WARNING_LEVEL else EXCEEDED_RULE
            zh, en = _message(p, level)
            severity, threshold = (2 if level == WARNING_LEVEL else 3), p["annual_quota_m3"]
            # A new alarm each year, even if last year's is still open: not rules.apply,
            # which would quietly reopen that one.
            row = conn.execute(
                """
                INSERT INTO iot.alarm (kind, rule, severity, device_id, message_zh, message_en,
                    value, threshold, geom)
                VALUES ('water_meter', %s, %s, %s, %s, %s, %s, %s,
                        ST_SetSRID(ST_MakePoint(%s, %s), 4326))
                RETURNING id, raised_at
                """,
                (rule, severity, p["meter_id"], zh, en, p["used_m3"],
                 threshold * level / 100, p["lon"], p["lat"]),
            ).fetchone()  # fmt: skip
            assert row is not None  # INSERT ... RETURNING gives its row
            alarm_id, raised_at = row
            conn.execute(
                "UPDATE water.quota_notice SET alarm_id = %s"
                " WHERE permit_id = %s AND year = %s AND level = %s",
                (alarm_id, p["permit_id"], judged["year"], level),
            )
            alarms = [
                {
                    "event": "raised",
                    "id": alarm_id,
                    "at": raised_at.isoformat(),
                    "kind": "water_meter",
                    "rule": rule,
                    "severity": severity,
                    "device_id": p["meter_id"],
                    "message_zh": zh,
                    "message_en": en,
                    "value": p["used_m3"],
                    "threshold": threshold * level / 100,
                    "lon": p["lon"],
                    "lat": p["lat"],
                }
            ]
            announced.extend(alarms)
            events.append(
                {
                    "type": "quota",
                    "event": "raised",
                    "rule": rule,
                    "level": level,
                    "year": judged["year"],
                    "permit_id": p["permit_id"],
                    "holder_name": p["holder_name"],
                    "state": p["state"],
                    "ratio": p["ratio"],
                    "alarm_id": alarm_id,
                    "lon": p["lon"],
                    "lat": p["lat"],
                }
            )
    return announced, events


def check_quality(
    conn: psycopg.Connection, now: datetime | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each water-quality station worse than its target class over the last 24 hours raises
    ``water_quality.target_exceeded`` (cleared when it meets the target again); a new one is
    announced with the outfalls upstream ranked by their load of the deciding factor."""
    from apps.water import tracing

    judged = service.station_classes(conn, None, now)["stations"]
    conditions = []
    for s in judged:
        if s["meets_target"] is None:
            continue  # no readings: no verdict
        deciding = ", ".join(s["deciding"])
        label, target = s["label"], quality.CLASS_LABELS[s["target_class"]]
        conditions.append(
            rules.Condition(
                "water_quality",
                TARGET_RULE,
                s["device_id"],
                not s["meets_target"],
                3 if s["water_class"] == 6 else 2,
                float(s["water_class"]),
                float(s["target_class"]),
                f"{s['name_zh']} 水质 {label} 类，劣于目标 {target} 类（{deciding}）",
                f"{s['name_zh']} water class {label}, worse than its target {target} ({deciding})",
                s["lon"],
                s["lat"],
            )
        )
    announced = rules.apply(conn, conditions)
    by_device = {s["device_id"]: s for s in judged}
    events = []
    for a in announced:
        s = by_device[a["device_id"]]
        event: dict[str, Any] = {
            "type": "exceedance",
            "event": a["event"],
            "rule": a["rule"],
            "alarm_id": a["id"],
            "station": s["station"],
            "device_id": s["device_id"],
            "name_zh": s["name_zh"],
            "water_class": s["water_class"],
            "target_class": s["target_class"],
            "deciding": s["deciding"],
            "lon": s["lon"],
            "lat": s["lat"],
        }
        if a["event"] == "raised":
            event["trace"] = _trace_summary(conn, tracing, s)
        events.append(event)
    return announced, events


def _trace_summary(conn: psycopg.Connection, tracing: Any, s: dict[str, Any]) -> dict[str, Any]:
    # the deciding factor the trace can follow (organic load first), else COD
    factor = next((f for f in tracing.FACTORS if f in s["deciding"]), "cod")
    route = f"/water/trace/{s['station']}?factor={factor}"
    try:
        trace = tracing.trace_station(conn, s["station"], factor, 0.0)
    except PlatformError as exc:
        return {"factor": factor, "route": route, "outlets": [], "error": str(exc)}
    return {
        "factor": factor,
        "route": route,
        "outlets": [
            {k: o[k] for k in ("rank", "outlet_id", "name_zh", "enterprise_zh", "load_g_s")}
            for o in trace["ranked"][:TRACE_TOP]
        ],
        "off_network": len(trace["off_network"]),
        "unknown_load": len(trace["unknown_load"]),
    }


def watch_once(
    database_url: str, publish: Callable[[str, bytes], object], now: datetime | None = None
) -> int:
    """One round of the drought and water-quality watch; returns how many events it sent."""
    from apps.water import drought_service

    sent = 0
    for check in (drought_service.check_districts, lambda c: check_quality(c, now)):
        try:
            with psycopg.connect(database_url, connect_timeout=5) as conn:
                announced, events = check(conn)
                conn.commit()
        except (psycopg.Error, PlatformError) as exc:
            log.warning("water watch: %s, retrying next round", exc)
            continue
        for alarm in announced:
            publish(topics.alarm(alarm["kind"]), orjson.dumps(alarm, default=str))
        for event in events:
            publish(EVENT_TOPIC, orjson.dumps(event, default=str))
        sent += len(events)
    return sent


def run_watch(settings: Settings | None = None, every_s: float = WATCH_EVERY_S) -> None:
    """The ``water-watch`` worker's main: a round every ``every_s`` until SIGTERM/SIGINT."""
    from gis_core.settings import get_settings

    settings = settings or get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client = make_client(settings.mqtt_url, "water-watch")
    broker = BrokerAddress.parse(settings.mqtt_url)
    client.connect_async(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        while True:
            watch_once(
                settings.database_url, lambda topic, body: client.publish(topic, body, qos=1)
            )
            if stop.wait(every_s):
                break
    finally:
        client.disconnect()
        client.loop_stop()


def spawn_watch() -> Callable[[], None]:
    """Start the drought and water-quality watch as a process; return what stops it."""
    from gis_core.processes import spawn

    return spawn(run_watch, name="water-watch")


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
