"""``GET /health``: the API, the database (PostGIS version, schema revision) and the broker."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    state = request.app.state
    database: dict[str, Any]
    try:
        with state.pool.connection(timeout=3) as conn:
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()
            heads = conn.execute(
                "SELECT string_agg(version_num, ',' ORDER BY version_num)"
                " FROM public.alembic_version"
            ).fetchone()
            database = {
                "status": "ok",
                "postgis": postgis[0] if postgis else None,
                # The core's revision and each installed application's branch head.
                "schema_revision": heads[0] if heads else None,
            }
    except Exception as exc:  # any failure here is the answer, not a crash
        database = {"status": "unavailable", "error": str(exc).splitlines()[0][:200]}
    mqtt_client = state.mqtt
    broker = {"status": "ok" if mqtt_client.is_connected() else "unavailable"}
    ok = database["status"] == "ok" and broker["status"] == "ok"
    return {
        "status": "ok" if ok else "degraded",
        "api": {"status": "ok", "version": request.app.version},
        "database": database,
        "broker": broker,
    }
