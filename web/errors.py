"""Every error leaves the API as JSON ``{"detail": ...}`` with its status, mapped here once.

JSON request bodies are checked before any route sees them: text XML 1.0 cannot carry (a lone
surrogate, U+FFFE, a control character) is refused with a 422 naming where it is, so it never
reaches the database, a CAP alert or an export; and an error response echoing what a client
sent always encodes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gis_core.db import DatabaseUnavailable
from gis_core.errors import PlatformError
from gis_core.text import first_forbidden

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def encodable(value: Any) -> Any:
    """``value`` with every string made UTF-8-encodable (a lone surrogate becomes ``\\ud800``),
    walked without recursion: an echoed body may be nested deeper than the stack allows."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if not isinstance(value, dict | list | tuple):
        return value
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, item = stack.pop()
        if isinstance(item, str):
            parent[key] = item.encode("utf-8", "backslashreplace").decode("utf-8")
        elif isinstance(item, dict):
            copy: dict[Any, Any] = {
                encodable(k) if isinstance(k, str) else k: v for k, v in item.items()
            }
            parent[key] = copy
            stack.extend((copy, k, v) for k, v in copy.items())
        elif isinstance(item, list | tuple):
            items = list(item)
            parent[key] = items
            stack.extend((items, i, v) for i, v in enumerate(items))
    return root[0]


def body_text_problem(body: bytes) -> str | None:
    """Why a JSON body is refused before any route sees it, or None (including for bodies
    that are not JSON at all: the route's own validation says what is wrong with those)."""
    try:
        document = json.loads(body)  # the parser FastAPI uses: it accepts lone surrogates
    except RecursionError:
        return "the JSON body is nested too deeply"
    except ValueError:
        return None
    stack: list[tuple[str, Any]] = [("body", document)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            bad = first_forbidden(item)
            if bad is not None:
                return (
                    f"{where}: contains U+{ord(bad):04X}, a character XML 1.0 does not allow "
                    "(control characters, lone surrogates, U+FFFE and U+FFFF are refused)"
                )
        elif isinstance(item, dict):
            for key, value in item.items():
                stack.append((f"{where}: a key", key))
                stack.append((f"{where}.{encodable(key)}", value))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", value) for i, value in enumerate(item))
    return None


class JsonTextGuard:
    """ASGI middleware: a JSON write body with text XML cannot carry gets a 422 up front."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if content_type and "json" not in content_type:  # forms and uploads: not JSON text
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = body_text_problem(body) if body else None
        if problem is not None:
            await JSONResponse({"detail": problem}, status_code=422)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def install(app: FastAPI) -> None:
    app.add_middleware(JsonTextGuard)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # OGC APIs answer a bad query parameter with 400; JSON bodies keep FastAPI's 422.
        status = 400 if request.url.path.startswith("/collections") else 422
        detail = encodable(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(PlatformError)
    async def platform_error(_: Request, exc: PlatformError) -> JSONResponse:
        return JSONResponse({"detail": encodable(str(exc))}, status_code=exc.status)

    @app.exception_handler(psycopg.DataError)
    async def unusable_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value from the request the database cannot take (a NUL character, a number or a
        # time out of its range): the client's to correct, not a server failure.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.info("%s %s: unusable value: %s", request.method, request.url.path, first)
        return JSONResponse({"detail": f"a value in the request cannot be used: {first}"}, 400)

    @app.exception_handler(DatabaseUnavailable)
    @app.exception_handler(psycopg.OperationalError)
    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        # The service is alive but its database is not: say so and let the client retry.
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
