"""The FastAPI application. Its lifespan owns the database pool and the MQTT client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from gis_core.settings import Settings, get_settings
from realtime.mqtt import BrokerAddress, make_client
from web import errors
from web.routers import admin, auth, health

VERSION = "0.1.0"


def _configure(conn: object) -> None:
    # Sessions of the API never hang on a lock forever.
    conn.execute("SET statement_timeout = 30000")  # type: ignore[attr-defined]
    conn.commit()  # type: ignore[attr-defined]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ConnectionPool(
            settings.database_url,
            min_size=settings.database.pool_min,
            max_size=settings.database.pool_max,
            configure=_configure,
            open=False,
            name="api",
        )
        pool.open(wait=False)  # the API comes up even while the database is still starting
        broker = BrokerAddress.parse(settings.mqtt_url)
        mqtt_client = make_client(settings.mqtt_url, "api")
        # Asynchronous connect: the API serves (and /health reports) while the broker is away.
        mqtt_client.connect_async(broker.host, broker.port, keepalive=30)
        mqtt_client.loop_start()
        app.state.settings = settings
        app.state.pool = pool
        app.state.mqtt = mqtt_client
        try:
            yield
        finally:
            mqtt_client.disconnect()
            mqtt_client.loop_stop()
            pool.close()

    app = FastAPI(
        title="Changzhi command and monitoring platform",
        version=VERSION,
        description=(
            "City command and monitoring: live telemetry, emergency dispatch, flood, "
            "environment and land registries over OGC APIs."
        ),
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    return app
