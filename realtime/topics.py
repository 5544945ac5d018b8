"""The MQTT topic grammar, in one place.

Devices publish under ``cz/v1/{kind}/{device_id}/...`` (and OwnTracks under its own tree); the
platform publishes alarms, the ingest workers' live states and the applications' events; a
unit's terminal reads its orders on its own command topic. Words that name platform topic
families cannot be device kinds.

>>> telemetry("air", "AIR-1")
'cz/v1/air/AIR-1/telemetry'
>>> event_topic("dispatch")
'cz/v1/events/dispatch'
>>> app_of_event("cz/v1/events/flood")
'flood'
"""

from __future__ import annotations

from gis_core.application import RESERVED_KINDS as RESERVED_KINDS  # re-exported: the grammar

ROOT = "cz/v1"

# What the ingest workers subscribe to (under a shared subscription).
INGEST_SUBSCRIPTIONS = (f"{ROOT}/+/+/telemetry", f"{ROOT}/+/+/status", "owntracks/+/+")
# The ingest workers' announcements of new live states, for the API's live hub.
LIVE = f"{ROOT}/platform/live"
ALARMS = f"{ROOT}/alarms/#"
# Applications' live events for the consoles, forwarded by the hub without reading them.
EVENTS = f"{ROOT}/events/#"


def telemetry(kind: str, device_id: str) -> str:
    return f"{ROOT}/{kind}/{device_id}/telemetry"


def status(kind: str, device_id: str) -> str:
    return f"{ROOT}/{kind}/{device_id}/status"


def gateway(gateway_id: str) -> str:
    return f"{ROOT}/gateway/{gateway_id}/telemetry"


def command(kind: str, device_id: str) -> str:
    """A device's orders from the platform (retained, QoS 1); only that device may read it."""
    return f"{ROOT}/{kind}/{device_id}/command"


def alarm(kind: str) -> str:
    return f"{ROOT}/alarms/{kind}"


def event_topic(app: str) -> str:
    """Where application ``app`` publishes its live events (JSON objects with a ``type``)."""
    return f"{ROOT}/events/{app}"


def is_alarm(topic: str) -> bool:
    return topic.startswith(f"{ROOT}/alarms/")


def app_of_event(topic: str) -> str | None:
    prefix = f"{ROOT}/events/"
    return topic[len(prefix) :] if topic.startswith(prefix) else None


def parse_command(topic: str) -> tuple[str, str] | None:
    """(kind, device id) of a command topic, or None."""
    parts = topic.split("/")
    if len(parts) == 5 and f"{parts[0]}/{parts[1]}" == ROOT and parts[4] == "command":
        return parts[2], parts[3]
    return None
