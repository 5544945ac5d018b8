"""The simulated vehicles' mobile data terminals: they obey the platform's orders.

The platform sends a unit's terminal a retained command on ``cz/v1/vehicle/{device_id}/command``
(see :mod:`apps.dispatch.terminals`). A ``dispatch`` sends the vehicle over the road network at
emergency pace to the scene, where it stops (GPS arrival detection then declares it on scene);
a ``release`` sends it back to its station and its normal behaviour.

Being retained, an order may arrive more than once (on every reconnect): a dispatch the vehicle
is already carrying out is not restarted, and a release for an assignment it is not on (an old
one, or none) changes nothing. An empty message is the platform withdrawing a retained order
the unit never had: nothing to do. A command that cannot be understood is logged and ignored.

Examples
--------
>>> parse_command("cz/v1/vehicle/VEH-1/command", b'{"cmd": "release", "assignment_id": 3}')
Command(device_id='VEH-1', cmd='release', incident_id=None, assignment_id=3, lon=None, lat=None)
>>> parse_command("cz/v1/vehicle/VEH-1/command", b'{"cmd": "dispatch", "lon": 500}')
Traceback (most recent call last):
...
sensors.terminal.BadCommand: dispatch: lon 500 is not a longitude
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

import orjson

from realtime import topics
from sensors.fleet import Fleet

__all__ = ["BadCommand", "Command", "Terminals", "parse_command"]

log = logging.getLogger(__name__)

COMMANDS = ("dispatch", "release")
MAX_PAYLOAD = 4096


class BadCommand(ValueError):
    """A command that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Command:
    device_id: str
    cmd: str
    incident_id: int | None = None
    assignment_id: int | None = None
    lon: float | None = None
    lat: float | None = None


def _identifier(body: dict[str, Any], key: str, cmd: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadCommand(f"{cmd}: {key} {value!r} is not an integer")
    return value


def _coordinate(body: dict[str, Any], key: str, limit: float, what: str) -> float:
    value = body.get(key)
    if value is None:
        raise BadCommand(f"dispatch: {key} is missing")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or abs(value) > limit
    ):
        raise BadCommand(f"dispatch: {key} {value!r} is not a {what}")
    return float(value)


def parse_command(topic: str, payload: bytes) -> Command:
    """A terminal's command from its topic and JSON payload.

    Raises
    ------
    BadCommand
        When the topic is not a command topic or the payload is not a valid command.
    """
    target = topics.parse_command(topic)
    if target is None or not target[1]:
        raise BadCommand(f"{topic!r} is not a command topic (cz/v1/KIND/DEVICE/command)")
    if len(payload) > MAX_PAYLOAD:
        raise BadCommand(f"the command is {len(payload)} bytes, more than {MAX_PAYLOAD}")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadCommand(f"the command is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadCommand("the command is not a JSON object")
    cmd = body.get("cmd")
    if cmd not in COMMANDS:
        raise BadCommand(f"cmd {cmd!r} is none of {', '.join(COMMANDS)}")
    incident_id = _identifier(body, "incident_id", cmd)
    assignment_id = _identifier(body, "assignment_id", cmd)
    if cmd == "release":
        return Command(target[1], cmd, incident_id, assignment_id)
    lon = _coordinate(body, "lon", 180.0, "longitude")
    lat = _coordinate(body, "lat", 90.0, "latitude")
    return Command(target[1], cmd, incident_id, assignment_id, lon, lat)


class Terminals:
    """The terminals of a fleet: each obeys the commands for its own device.

    Parameters
    ----------
    fleet
        The simulated vehicles; commands for devices not in it are ignored.
    """

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.lock = threading.Lock()
        # device id -> (incident_id, assignment_id) of the dispatch it is carrying out
        self.orders: dict[str, tuple[int | None, int | None]] = {}
        self.obeyed = 0
        self.ignored = 0
        self.bad = 0

    def handle(self, topic: str, payload: bytes) -> str:
        """Act on one message; returns what was done (``dispatched``, ``released``,
        ``repeated``, ``ignored`` or ``bad``), and never raises for what a message says."""
        if not payload:  # a retained order withdrawn
            with self.lock:
                self.ignored += 1
            return "ignored"
        try:
            command = parse_command(topic, payload)
        except BadCommand as exc:
            with self.lock:
                self.bad += 1
            log.warning("terminal: ignored a command on %s: %s", topic, exc)
            return "bad"
        if command.device_id not in self.fleet.by_device:
            # Only through the shared login's wildcard: another run's vehicle.
            log.debug("terminal: %s is not simulated here", command.device_id)
            return "ignored"
        try:
            outcome = self._obey(command)
        except ValueError as exc:  # no road network, no route to the scene
            outcome = "ignored"
            log.warning("terminal %s: cannot obey %s: %s", command.device_id, command.cmd, exc)
        with self.lock:
            if outcome in ("dispatched", "released"):
                self.obeyed += 1
            else:
                self.ignored += 1
        return outcome

    def _obey(self, command: Command) -> str:
        fleet = self.fleet
        device = command.device_id
        key = (command.incident_id, command.assignment_id)
        with self.lock:
            current = self.orders.get(device)
        if command.cmd == "dispatch":
            if current == key and fleet.state(device).mode in ("dispatch", "held"):
                return "repeated"  # the retained order again, after a reconnect
            assert command.lon is not None and command.lat is not None
            trip = fleet.send_to(device, command.lon, command.lat)
            with self.lock:
                self.orders[device] = key
            log.info(
                "terminal %s: dispatched to incident %s, %.0f m, about %.0f s",
                device,
                command.incident_id,
                trip.distance_m,
                trip.eta_s,
            )
            return "dispatched"
        # A release ends the order it names; one for another (older) assignment, or for a
        # vehicle that has no order, changes nothing.
        if current is None or (
            command.assignment_id is not None and current[1] != command.assignment_id
        ):
            return "ignored"
        fleet.release(device)
        with self.lock:
            self.orders.pop(device, None)
        log.info("terminal %s: released from incident %s", device, command.incident_id)
        return "released"
