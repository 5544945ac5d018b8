"""The FastAPI application. Its lifespan owns the database pool and the MQTT client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from gis_core.application import Installed, installed
from gis_core.db import check_alive
from gis_core.logs import configure_logging
from gis_core.settings import Settings, get_settings
from layers.catalog import builtin_catalog
from realtime import topics
from realtime.live import LiveHub
from realtime.mqtt import BrokerAddress, make_client
from web import errors
from web.observability import HttpMetrics, RequestObserver
from web.routers import (
    admin,
    applications,
    auth,
    basemap,
    console,
    geofences,
    health,
    live,
    metrics,
    ogc,
    telemetry,
)

VERSION = "0.1.0"


def _configure(conn: object) -> None:
    # Sessions of the API never hang on a lock forever.
    conn.execute("SET statement_timeout = 30000")  # type: ignore[attr-defined]
    conn.commit()  # type: ignore[attr-defined]


def load_snapshot(pool: ConnectionPool, hub: LiveHub) -> None:
    try:
        with pool.connection(timeout=5) as conn:
            rows = conn.execute(
                "SELECT device_id, kind, ST_X(geom), ST_Y(geom),"
                " (extract(epoch FROM ts) * 1000)::bigint, status, reading::text"
                " FROM iot.device_state"
            ).fetchall()
    except Exception:  # no database yet: the hub fills as readings arrive
        return
    for row in rows:
        hub.remember([*row[:6], orjson.loads(row[6])])


def create_app(settings: Settings | None = None, apps: Installed | None = None) -> FastAPI:
    """The API with the installed applications (``apps``, default: the settings' list)."""
    settings = settings or get_settings()
    apps = apps or installed(settings.platform.apps)
    catalog = builtin_catalog(apps.layers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Here, not earlier: uvicorn sets up its loggers before it starts the application.
        configure_logging(settings.log)
        pool = ConnectionPool(
            settings.database_url,
            min_size=settings.database.pool_min,
            max_size=settings.database.pool_max,
            configure=_configure,
            # A connection is tried before it is lent: after a failover the pooled ones point
            # at a dead primary, and fresh ones find the promoted standby (read-write URL).
            check=check_alive,
            open=False,
            name="api",
        )
        pool.open(wait=False)  # the API comes up even while the database is still starting
        hub = LiveHub()
        hub.start()
        broker = BrokerAddress.parse(settings.mqtt_url)
        mqtt_client = make_client(settings.mqtt_url, "api")

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                client.subscribe([(topics.LIVE, 0), (topics.ALARMS, 1), (topics.EVENTS, 1)])

        mqtt_client.on_connect = on_connect
        mqtt_client.on_message = lambda client, userdata, msg: hub.feed_threadsafe(
            msg.topic, bytes(msg.payload)
        )
        # Asynchronous connect: the API serves (and /health reports) while the broker is away.
        mqtt_client.connect_async(broker.host, broker.port, keepalive=30)
        mqtt_client.loop_start()
        app.state.settings = settings
        app.state.catalog = catalog
        app.state.apps = apps
        app.state.pool = pool
        app.state.mqtt = mqtt_client
        app.state.live = hub
        # Consoles that connect before any new reading still see every device's last state.
        await run_in_threadpool(load_snapshot, pool, hub)
        try:
            yield
        finally:
            await hub.stop()
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
    app.state.http_metrics = HttpMetrics()
    app.add_middleware(
        RequestObserver, metrics=app.state.http_metrics, log_requests=settings.log.log_requests
    )
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(ogc.router)
    app.include_router(basemap.router)
    app.include_router(live.router)
    app.include_router(telemetry.router)
    app.include_router(geofences.router)
    app.include_router(applications.router)
    for application in apps:
        if application.router is not None:
            app.include_router(application.router(), prefix=f"/{application.name}")
    console.install(app, apps)
    return app
