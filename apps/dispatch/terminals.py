"""Orders to the units' mobile data terminals, over MQTT.

When the platform dispatches a unit, or releases it (an operator clears it, the incident is
closed, or the GPS monitor sees it back at its station), the unit's in-vehicle terminal gets a
command on ``cz/v1/{kind}/{device_id}/command`` (QoS 1)::

    {"cmd": "dispatch", "incident_id": 12, "assignment_id": 31, "unit_id": "FIRE-E-001",
     "lon": 113.11, "lat": 36.19, "incident_type": "structure_fire", "priority": 1,
     "ts": "2026-11-24T21:40:00.123+00:00"}
    {"cmd": "release", "incident_id": 12, "assignment_id": 31, "unit_id": "FIRE-E-001",
     "reason": "closed", "ts": "..."}

Commands are *retained*: the broker keeps the last one per terminal, so a terminal that
reconnects (or boots) is told its current order at once, and a release, on the same topic,
replaces the dispatch it ends. A terminal acts on a release only for the assignment it is on.

The orders are read inside the caller's transaction (:func:`dispatch_orders`,
:func:`release_orders`) and sent only after it commits (:func:`send`): a terminal is never sent
somewhere the database does not record. What the broker retains is restated from the database
by :func:`standing_orders` whenever the dispatch monitor (re)connects, so an order lost between
a commit and its publish, or one the database no longer has (a reload of the dataset wipes the
incidents), does not outlive the next start of the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import psycopg

from realtime import topics

__all__ = [
    "COMMAND_QOS",
    "RETAIN",
    "Order",
    "dispatch_orders",
    "release_orders",
    "send",
    "standing_orders",
]

log = logging.getLogger(__name__)

COMMAND_QOS = 1
RETAIN = True  # the last order per terminal is its current order; see the module docstring
RELEASE_REASONS = frozenset({"cleared", "closed", "returned"})

ORDER_SQL = """
SELECT a.id, a.incident_id, a.unit_id, u.device_id, d.kind,
       ST_X(i.geom), ST_Y(i.geom), i.incident_type, i.priority
FROM ops.assignment a
JOIN ops.unit u ON u.id = a.unit_id
JOIN iot.device d ON d.id = u.device_id
JOIN ops.incident i ON i.id = a.incident_id
WHERE a.id = ANY(%s)
ORDER BY a.id
"""


class Publisher(Protocol):
    """What :func:`send` needs of an MQTT client (paho's ``Client``)."""

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> Any: ...


command_topic = topics.command


def is_command_topic(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 5 and parts[:2] == ["cz", "v1"] and parts[4] == "command"


@dataclass(frozen=True)
class Order:
    """One command for one terminal; no body: forget the retained one (the unit never had an
    order)."""

    topic: str
    body: dict[str, Any] | None

    @property
    def payload(self) -> bytes:
        return b"" if self.body is None else orjson.dumps(self.body)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dispatch_orders(conn: psycopg.Connection, assignment_ids: Iterable[int]) -> list[Order]:
    """``dispatch`` commands for these assignments (units without a terminal get none)."""
    ts = _now()
    return [
        Order(
            command_topic(kind, device_id),
            {
                "cmd": "dispatch",
                "incident_id": incident_id,
                "assignment_id": assignment_id,
                "unit_id": unit_id,
                "lon": round(float(lon), 7),
                "lat": round(float(lat), 7),
                "incident_type": incident_type,
                "priority": priority,
                "ts": ts,
            },
        )
        for (
            assignment_id,
            incident_id,
            unit_id,
            device_id,
            kind,
            lon,
            lat,
            incident_type,
            priority,
        ) in conn.execute(ORDER_SQL, (list(assignment_ids),)).fetchall()
    ]


def release_orders(
    conn: psycopg.Connection, assignment_ids: Iterable[int], reason: str
) -> list[Order]:
    """``release`` commands ending these assignments: ``reason`` is ``cleared`` (by an
    operator), ``closed`` (the incident) or ``returned`` (back at the station, seen by GPS)."""
    if reason not in RELEASE_REASONS:
        raise ValueError(f"release reason: one of {', '.join(sorted(RELEASE_REASONS))}")
    ts = _now()
    return [
        Order(
            command_topic(kind, device_id),
            {
                "cmd": "release",
                "incident_id": incident_id,
                "assignment_id": assignment_id,
                "unit_id": unit_id,
                "reason": reason,
                "ts": ts,
            },
        )
        for assignment_id, incident_id, unit_id, device_id, kind, *_ in conn.execute(
            ORDER_SQL, (list(assignment_ids),)
        ).fetchall()
    ]


LATEST_ASSIGNMENTS = """
SELECT DISTINCT ON (u.id) u.device_id, d.kind, a.id, a.cleared_at IS NULL,
       a.cleared_at IS NOT NULL AND a.cleared_at = i.closed_at
FROM ops.unit u
JOIN iot.device d ON d.id = u.device_id
LEFT JOIN ops.assignment a ON a.unit_id = u.id
LEFT JOIN ops.incident i ON i.id = a.incident_id
ORDER BY u.id, a.dispatched_at DESC NULLS LAST, a.id DESC
"""


def standing_orders(conn: psycopg.Connection) -> list[Order]:
    """The order every unit's terminal should have retained, from its latest assignment: the
    dispatch if it is live, the release if it ended, nothing if it never had one."""
    live: list[int] = []
    closed: list[int] = []
    cleared: list[int] = []
    orders: list[Order] = []
    for device_id, kind, assignment_id, is_live, by_closing in conn.execute(
        LATEST_ASSIGNMENTS
    ).fetchall():
        if assignment_id is None:
            orders.append(Order(command_topic(kind, device_id), None))
        elif is_live:
            live.append(assignment_id)
        else:
            (closed if by_closing else cleared).append(assignment_id)
    return (
        dispatch_orders(conn, live)
        + release_orders(conn, closed, "closed")
        + release_orders(conn, cleared, "cleared")
        + orders
    )


def send(client: Publisher | None, orders: Iterable[Order]) -> int:
    """Publish committed orders (QoS 1, retained); returns how many were handed to the client.

    With paho, a QoS 1 message published while the broker is away is queued and sent on
    reconnection; the call itself never blocks the request that made the order.
    """
    sent = 0
    for order in orders:
        if client is None:
            log.warning("no MQTT client: the order for %s was not sent", order.topic)
            continue
        client.publish(order.topic, order.payload, qos=COMMAND_QOS, retain=RETAIN)
        sent += 1
    return sent
