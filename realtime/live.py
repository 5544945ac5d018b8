"""Live fan-out to consoles: the committed changes the ingest workers announce, coalesced per
tick and filtered per client by kind and bounding box.

Each client holds at most one pending state per device (the latest), and a bounded queue of
alarm events, so a slow client costs bounded memory, gets fewer intermediate positions, and
never holds up ingest or other clients.
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

import orjson

log = logging.getLogger(__name__)

ALARM_QUEUE = 1000
# [device_id, kind, lon, lat, ts_ms, status, reading]
State = list[Any]


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
        if self.kinds is not None and event.get("kind") not in self.kinds:
            return False
        if self.bbox is not None and event.get("lon") is not None:
            minx, miny, maxx, maxy = self.bbox
            return bool(minx <= event["lon"] <= maxx and miny <= event["lat"] <= maxy)
        return True


@dataclass(eq=False)  # identity: subscribers live in a set
class Subscriber:
    send: Callable[[bytes], Awaitable[None]]
    filter: Filter = field(default_factory=Filter)
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
        if topic.startswith("cz/v1/alarms/"):
            self._events.append({"type": "alarm", **body})
            return
        if topic.startswith("cz/v1/dispatch/"):
            self._events.append(body)  # already {"type": "incident", ...}
            return
        for state in body.get("states", ()):
            self.latest[state[0]] = state
            self._dirty[state[0]] = state
        for device_id, kind, online in body.get("online", ()):
            self._online[device_id] = [device_id, kind, online]

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
                if sub.filter.admits_event(event):
                    sub.offer_event(event)
            sub.wake.set()

    def snapshot(self, flt: Filter) -> list[State]:
        return [s for s in self.latest.values() if flt.admits(s)]

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
                    data = orjson.dumps(
                        {
                            "type": "states",
                            "t": int(time.time() * 1000),
                            "items": states,
                            "online": online,
                        }
                    )
                    await sub.send(data)
                    sub.sent_bytes += len(data)
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
