"""Live fan-out to consoles: the committed changes the ingest workers announce, coalesced per
tick and filtered per client by kind and bounding box.

Each client holds at most one pending state per device (the latest), and a bounded queue of
alarm events, so a slow client costs bounded memory, gets fewer intermediate positions, and
never holds up ingest or other clients.

Two encodings of the states. JSON (the default): ``{"type": "states", "t", "items": [state,
...], "online": [...]}`` text messages, a state being ``[device_id, kind, lon, lat, ts_ms,
status, reading]``. Binary positions (``format=bin``), for consoles drawing many moving units:
a device's first state, and any state whose kind, status or reading (other than
``speed_kmh``/``heading_deg``) differs from the last one sent, still go as JSON, with
``"ix": [index, ...]`` giving each item's device index; every other state — a unit that only
moved — goes in one binary message per tick (little-endian), see :func:`encode_positions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from gis_core.application import device_kinds
from realtime import topics

log = logging.getLogger(__name__)

ALARM_QUEUE = 1000
# [device_id, kind, lon, lat, ts_ms, status, reading]
State = list[Any]
# Reading fields a binary position frame carries; any other change is sent as JSON.
MOVING = ("speed_kmh", "heading_deg")
NO_VALUE = 0xFFFF
POSITIONS_VERSION = 1
MAX_OFFSET_MS = 2_000_000_000  # an i32 of ms from the frame's base time (23 days)
MAX_SPEED = (NO_VALUE - 1) / 10


def encode_positions(base_ms: int, rows: list[tuple[int, float, float, int, Any, Any]]) -> bytes:
    """One binary frame of positions: a 16-byte header — ``u8`` version (1), 3 bytes zero,
    ``u32`` count n, ``f64`` base time (epoch ms) — then columns of n values each: ``u32``
    device index, ``i32`` longitude and ``i32`` latitude in 1e-7 degrees, ``i32`` ms after the
    base time, ``u16`` heading in 0.01 degrees and ``u16`` speed in 0.1 km/h (0xFFFF: none).
    Twenty bytes a unit, where the JSON state takes about 150.

    >>> frame = encode_positions(1_700_000_000_000, [(3, 113.1, 36.2, 1_700_000_000_250, 90, 42.5)])
    >>> len(frame), frame[0], int.from_bytes(frame[4:8], "little")
    (36, 1, 1)
    """
    n = len(rows)
    ix, lon, lat, ts, heading, speed = zip(*rows, strict=True) if rows else ((),) * 6
    head = np.zeros(1, dtype=[("v", "u1"), ("pad", "u1", 3), ("n", "<u4"), ("t", "<f8")])
    head["v"], head["n"], head["t"] = POSITIONS_VERSION, n, base_ms
    headings = np.array([NO_VALUE if h is None else round(h * 100) % 36000 for h in heading])
    speeds = np.array([NO_VALUE if v is None else min(round(v * 10), NO_VALUE - 1) for v in speed])
    return b"".join(
        (
            head.tobytes(),
            np.asarray(ix, dtype="<u4").tobytes(),
            np.rint(np.asarray(lon, dtype="f8") * 1e7).astype("<i4").tobytes(),
            np.rint(np.asarray(lat, dtype="f8") * 1e7).astype("<i4").tobytes(),
            (np.asarray(ts, dtype="i8") - base_ms).astype("<i4").tobytes(),
            headings.astype("<u2").tobytes(),
            speeds.astype("<u2").tobytes(),
        )
    )


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


@dataclass
class Filter:
    kinds: frozenset[str] | None = None  # None: every kind
    bbox: tuple[float, float, float, float] | None = None

    def admits(self, state: State) -> bool:
        if self.kinds is not None and state[1] not in self.kinds:
            return False
        if self.bbox is not None:
            lon, lat = state[2], state[3]
            if lon is None or lat is None:
                return False
            minx, miny, maxx, maxy = self.bbox
            return minx <= lon <= maxx and miny <= lat <= maxy
        return True

    def admits_event(self, event: dict[str, Any]) -> bool:
        # The kinds filter narrows device kinds; an event that is not about a device kind (an
        # incident, a dispatch escalation) is not filtered out by it.
        kind = event.get("kind")
        if self.kinds is not None and kind not in self.kinds and kind in device_kinds():
            return False
        if self.bbox is not None and event.get("lon") is not None:
            minx, miny, maxx, maxy = self.bbox
            return bool(minx <= event["lon"] <= maxx and miny <= event["lat"] <= maxy)
        return True


@dataclass(eq=False)  # identity: subscribers live in a set
class Subscriber:
    send: Callable[[bytes], Awaitable[None]]
    filter: Filter = field(default_factory=Filter)
    # format=bin: binary position frames (send_binary), and per device the (kind, status,
    # reading without MOVING) last sent as JSON, which a position-only state must match.
    send_binary: Callable[[bytes], Awaitable[None]] | None = None
    # Event types this client may not see (its user may not read their layer): never queued.
    hidden_events: frozenset[str] = frozenset()
    sent_rest: dict[str, tuple[Any, Any, dict[str, Any]]] = field(default_factory=dict)
    pending: dict[str, State] = field(default_factory=dict)
    online: dict[str, list[Any]] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ALARM_QUEUE))
    dropped_events: int = 0
    busy: bool = False
    sent_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer_event(self, event: dict[str, Any]) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped_events += 1
        self.events.append(event)


class LiveHub:
    """Collects announcements (from any thread) and fans them out every ``tick`` seconds."""

    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self.latest: dict[str, State] = {}
        self.index: dict[str, int] = {}  # device id -> its small number in binary frames
        self._dirty: dict[str, State] = {}
        self._online: dict[str, list[Any]] = {}
        self._events: list[dict[str, Any]] = []
        self.subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- input (any thread)

    def feed_threadsafe(self, topic: str, payload: bytes) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.feed, topic, payload)

    def feed(self, topic: str, payload: bytes) -> None:
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("live: unreadable announcement on %s", topic)
            return
        if topics.is_alarm(topic):
            self._events.append({"type": "alarm", **body})
            return
        app = topics.app_of_event(topic)
        if app is not None:
            # An application's event, forwarded as it is ({"type": ..., ...}) with its sender.
            if isinstance(body, dict):
                self._events.append({"app": app, **body})
            return
        for state in body.get("states", ()):
            self.remember(state)
            self._dirty[state[0]] = state
        for device_id, kind, online in body.get("online", ()):
            self._online[device_id] = [device_id, kind, online]

    def remember(self, state: State) -> None:
        """Keep a device's latest state (and give it its number in binary frames)."""
        if state[0] not in self.index:
            self.index[state[0]] = len(self.index)
        self.latest[state[0]] = state

    def publish_event(self, event: dict[str, Any]) -> None:
        """Platform events that do not come through MQTT (incident changes, acks)."""
        self._events.append(event)

    # ---------------------------------------------------------------- fan-out

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.flush()

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        online, self._online = self._online, {}
        events, self._events = self._events, []
        if not (dirty or online or events):
            return
        for sub in self.subscribers:
            for device_id, state in dirty.items():
                if sub.filter.admits(state):
                    sub.pending[device_id] = state
            for device_id, item in online.items():
                if sub.filter.kinds is None or item[1] in sub.filter.kinds:
                    sub.online[device_id] = item
            for event in events:
                if event.get("type") not in sub.hidden_events and sub.filter.admits_event(event):
                    sub.offer_event(event)
            sub.wake.set()

    def snapshot(self, flt: Filter) -> list[State]:
        return [s for s in self.latest.values() if flt.admits(s)]

    def hello(self, sub: Subscriber) -> bytes:
        """The first message (and the answer to a new filter): every admitted latest state."""
        items = self.snapshot(sub.filter)
        message: dict[str, Any] = {"type": "hello", "t": int(time.time() * 1000), "items": items}
        if sub.send_binary is not None:
            sub.sent_rest = {s[0]: self._rest(s) for s in items}
            message["ix"] = [self.index[s[0]] for s in items]
        return orjson.dumps(message)

    @staticmethod
    def _rest(state: State) -> tuple[Any, Any, dict[str, Any]]:
        reading = state[6] if isinstance(state[6], dict) else {}
        return (state[1], state[5], {k: v for k, v in reading.items() if k not in MOVING})

    def split(self, sub: Subscriber, states: list[State]) -> tuple[list[State], bytes | None]:
        """For a binary client: the states that must go as JSON, and a frame of the rest."""
        full: list[State] = []
        rows: list[tuple[int, float, float, int, Any, Any]] = []
        base = int(time.time() * 1000)
        for state in states:
            device_id, lon, lat, ts = state[0], state[2], state[3], state[4]
            reading = state[6] if isinstance(state[6], dict) else {}
            heading, speed = reading.get("heading_deg"), reading.get("speed_kmh")
            rest = self._rest(state)
            if (
                lon is None
                or lat is None
                or not isinstance(ts, int)
                or abs(ts - base) > MAX_OFFSET_MS
                or not (_number(heading) and _number(speed))
                or (speed is not None and not 0 <= speed < MAX_SPEED)
                or sub.sent_rest.get(device_id) != rest
            ):
                sub.sent_rest[device_id] = rest
                full.append(state)
            else:
                rows.append((self.index[device_id], lon, lat, ts, heading, speed))
        if not rows:
            return full, None
        return full, encode_positions(base, rows)

    async def serve(self, sub: Subscriber) -> None:
        """Send this subscriber what is pending whenever it has some, one message at a time."""
        self.subscribers.add(sub)
        try:
            while True:
                await sub.wake.wait()
                sub.wake.clear()
                if sub.pending or sub.online:
                    states, sub.pending = list(sub.pending.values()), {}
                    online, sub.online = list(sub.online.values()), {}
                    frame = None
                    message: dict[str, Any] = {"type": "states", "t": int(time.time() * 1000)}
                    if sub.send_binary is not None:
                        states, frame = self.split(sub, states)
                        message["ix"] = [self.index[s[0]] for s in states]
                    if states or online:
                        message["items"], message["online"] = states, online
                        data = orjson.dumps(message)
                        await sub.send(data)
                        sub.sent_bytes += len(data)
                    if frame is not None and sub.send_binary is not None:
                        await sub.send_binary(frame)
                        sub.sent_bytes += len(frame)
                while sub.events:
                    event = sub.events.popleft()
                    data = orjson.dumps(event)
                    await sub.send(data)
                    sub.sent_bytes += len(data)
                if sub.dropped_events:
                    dropped, sub.dropped_events = sub.dropped_events, 0
                    await sub.send(orjson.dumps({"type": "dropped", "events": dropped}))
        finally:
            self.subscribers.discard(sub)
