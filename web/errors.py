"""Every error leaves the API as JSON ``{"detail": ...}`` with its status, mapped here once."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gis_core.db import DatabaseUnavailable
from gis_core.errors import PlatformError

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # OGC APIs answer a bad query parameter with 400; JSON bodies keep FastAPI's 422.
        status = 400 if request.url.path.startswith("/collections") else 422
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=status)

    @app.exception_handler(PlatformError)
    async def platform_error(_: Request, exc: PlatformError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

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
