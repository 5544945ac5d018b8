"""The exceedance watcher ``changzhi up`` starts: every few minutes it scans the recent
telemetry (:func:`apps.environment.inspection.scan`), so each new emission exceedance opens an
inspection task without anyone asking; it escalates overdue tasks and takes in the 12345
hotline tickets about the environment as complaints; it writes last month's report once
(``var/environment/reports/YYYY-MM.pdf``); and it tells the consoles on the
application's event topic (the live hub forwards it as it is)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from apps.environment.casework import escalate_overdue, import_hotline
from apps.environment.inspection import scan
from apps.environment.monthly import archive_last_month
from gis_core.db import connect
from gis_core.settings import get_settings
from realtime.mqtt import BrokerAddress, make_client
from realtime.topics import event_topic

log = logging.getLogger("changzhi.environment.watch")

EVERY = timedelta(minutes=10)
CST_OFFSET = timedelta(hours=8)  # months are China Standard Time's
LOOK_BACK = timedelta(hours=6)  # long enough for a late data logger's backlog


def run_watch() -> None:
    """The watcher process's main: runs until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    client = make_client(settings.mqtt_url, "env-watch")
    broker = BrokerAddress.parse(settings.mqtt_url)
    client.connect_async(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        while not stop.is_set():
            watch_once(
                settings.database_url,
                lambda body: client.publish(event_topic("environment"), body, qos=1),
                var_dir=settings.platform.var_dir,
            )
            stop.wait(EVERY.total_seconds())
    finally:
        client.loop_stop()
        client.disconnect()


def watch_once(
    database_url: str, publish: Callable[[bytes], object], *, var_dir: Path | None = None
) -> int:
    """One round: scan, escalate the overdue tasks, take in the new 12345 tickets about the
    environment as complaints (each opening a task when an enterprise is near), commit, then
    announce; returns how many new exceedance events."""
    until = datetime.now(UTC)
    try:
        with connect(database_url) as conn:
            found = scan(conn, until - LOOK_BACK, until, None)
            conn.commit()
    except Exception as exc:  # the database away for a while: try again next round
        log.warning("exceedance scan failed: %s", exc)
        return 0
    # Each later step on its own: one failing must not keep the others' news unannounced.
    escalated: list[dict[str, Any]] = []
    hotline: dict[str, Any] = {"complaints": []}
    try:
        with connect(database_url) as conn:
            escalated = escalate_overdue(conn, until)
            conn.commit()
            hotline = import_hotline(conn, None)
            conn.commit()
    except Exception as exc:
        log.warning("escalation or hotline intake failed: %s", exc)
    for item in found["new"]:
        publish(orjson.dumps({"type": "exceedance", "exceedance": item}))
    for e in escalated:
        publish(orjson.dumps({"type": "task", "event": "escalated", **e}))
    for c in hotline["complaints"]:
        if c["task_id"] is not None:
            publish(orjson.dumps({"type": "task", "event": "created", "task_id": c["task_id"]}))
    if var_dir is not None:  # last month's report, once, early in the month
        try:
            with connect(database_url) as conn:
                written = archive_last_month(conn, var_dir, (until + CST_OFFSET).date())
            if written is not None:
                log.info("monthly report written: %s", written)
        except Exception as exc:  # no CJK font, database away: the rest of the round stands
            log.warning("monthly report not written: %s", exc)
    return len(found["new"])


def spawn_watch() -> Callable[[], None]:
    """Start the watcher as a process; return the function that stops it."""
    from gis_core.processes import spawn

    return spawn(run_watch, name="environment-watch")
