"""``WS /ws/live``: live positions, sensor states, alarms and incident changes.

Query parameters: ``token`` (the bearer JWT; browsers cannot set headers on a WebSocket),
``kinds`` (comma-separated device kinds), ``bbox`` (minx,miny,maxx,maxy, CRS84) and
``format`` (``json``, the default, or ``bin``). The client may send ``{"type": "filter",
"kinds": [...], "bbox": [...]}`` at any time to change the filter.

Every message is a JSON text message — ``hello`` (the current states), ``states``, ``alarm``,
``incident``, ``dropped``, ``error`` — except, with ``format=bin``, one binary message per tick
holding the positions of the units that only moved: 20 bytes a unit instead of about 150, for
consoles drawing thousands of moving units. With it, ``hello`` and ``states`` carry ``"ix"``,
each item's device index, which the binary frames refer to. The frame layout is documented in
:func:`realtime.live.encode_positions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from gis_core.application import device_kinds
from gis_core.errors import NotFound
from gis_core.identity import Principal
from layers.catalog import installed_catalog
from realtime.live import Filter, LiveHub, Subscriber
from web.deps import principal_from_token

router = APIRouter(tags=["live"])
# The layer whose readers may receive each kind of event; the others never get it.
EVENT_LAYERS = {"alarm": "alarms", "incident": "incidents"}


def hidden_events(principal: Principal) -> frozenset[str]:
    """The event types this user may not see: what a layer hides is not sent either."""
    catalog = installed_catalog()
    hidden = set()
    for event_type, layer_id in EVENT_LAYERS.items():
        try:
            catalog.get(layer_id, principal)
        except NotFound:
            hidden.add(event_type)
    return frozenset(hidden)


def parse_filter(kinds: Any, bbox: Any) -> Filter:
    """A filter from query text or JSON values; raises ValueError with the reason."""
    kind_set = None
    if kinds:
        names = kinds.split(",") if isinstance(kinds, str) else kinds
        if not isinstance(names, list) or not all(isinstance(k, str) for k in names):
            raise ValueError("kinds: device kinds, as text a,b or a list of strings")
        unknown = [k for k in names if k not in device_kinds()]
        if unknown:
            raise ValueError(f"unknown kinds: {', '.join(unknown)[:200]}")
        kind_set = frozenset(names)
    box = None
    if bbox:
        values = bbox.split(",") if isinstance(bbox, str) else bbox
        try:
            if not isinstance(values, list) or any(isinstance(v, bool) for v in values):
                raise TypeError
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError("bbox: four numbers minx,miny,maxx,maxy") from None
        if (
            len(numbers) != 4
            or not all(math.isfinite(n) for n in numbers)
            or numbers[0] > numbers[2]
            or numbers[1] > numbers[3]
        ):
            raise ValueError("bbox: four finite numbers minx,miny,maxx,maxy with min <= max")
        box = (numbers[0], numbers[1], numbers[2], numbers[3])
    return Filter(kind_set, box)


def _authenticate(ws: WebSocket, token: str) -> Principal:
    with ws.app.state.pool.connection() as conn:
        return principal_from_token(token, ws.app.state.settings, conn)


@router.websocket("/ws/live")
async def live(ws: WebSocket) -> None:
    hub: LiveHub = ws.app.state.live
    token = ws.query_params.get("token")
    if not token:
        await ws.close(code=4401, reason="log in first: /ws/live?token=<bearer token>")
        return
    try:
        principal = await run_in_threadpool(_authenticate, ws, token)
    except HTTPException as exc:
        await ws.close(code=4401, reason=str(exc.detail)[:120])
        return
    except Exception:  # the database is away: tell the console to retry
        await ws.close(code=1013, reason="service unavailable, retry shortly")
        return
    try:
        flt = parse_filter(ws.query_params.get("kinds"), ws.query_params.get("bbox"))
    except ValueError as exc:
        await ws.close(code=4400, reason=str(exc)[:120])
        return
    encoding = ws.query_params.get("format", "json")
    if encoding not in ("json", "bin"):
        await ws.close(code=4400, reason="format: json or bin")
        return
    await ws.accept()

    async def send(data: bytes) -> None:
        await ws.send_text(data.decode())

    async def send_binary(data: bytes) -> None:
        await ws.send_bytes(data)

    sub = Subscriber(
        send=send,
        filter=flt,
        send_binary=send_binary if encoding == "bin" else None,
        hidden_events=hidden_events(principal),
    )
    await send(hub.hello(sub))
    sender = asyncio.create_task(hub.serve(sub))
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(frame.get("code", 1000))
            try:
                if frame.get("text") is None:
                    raise ValueError("send filters as JSON text, not binary frames")
                message = orjson.loads(frame["text"])
                if not isinstance(message, dict) or message.get("type") != "filter":
                    raise ValueError('send {"type": "filter", "kinds": [...], "bbox": [...]}')
                sub.filter = parse_filter(message.get("kinds"), message.get("bbox"))
                await send(hub.hello(sub))
            except (ValueError, orjson.JSONDecodeError) as exc:
                await send(orjson.dumps({"type": "error", "detail": str(exc)[:200]}))
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
