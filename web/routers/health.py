"""``GET /health``: the API, the database (PostGIS version, schema revision), the broker, the
ingest workers and each application's workers; 503 when any of them is down."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gis_core.heartbeat import INGEST_ROLE, WorkerStatus, worker_statuses
from web.routers.metrics import expected_roles

router = APIRouter(tags=["health"])


def workers_health(role: str, workers: list[WorkerStatus]) -> dict[str, Any]:
    """One kind of worker: ``ok`` (all beating), ``stalled`` (one or more gone stale: frozen,
    cut off from the database, or dead without stopping) or ``absent`` (none running: never
    started here, or stopped cleanly)."""
    mine = [w for w in workers if w.role == role]
    stalled = sum(not w.alive for w in mine)
    return {
        "status": "stalled" if stalled else ("ok" if mine else "absent"),
        "alive": len(mine) - stalled,
        "stalled": stalled,
        "workers": [w.describe() for w in mine],
    }


@router.get(
    "/health",
    responses={503: {"description": "the database, the broker or a worker is down"}},
)
def health(request: Request) -> JSONResponse:
    state = request.app.state
    database: dict[str, Any]
    workers: list[WorkerStatus] | None = None
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
            workers = worker_statuses(conn, state.settings.ops)
    except Exception as exc:  # any failure here is the answer, not a crash
        database = {"status": "unavailable", "error": str(exc).splitlines()[0][:200]}
    mqtt_client = state.mqtt
    broker = {"status": "ok" if mqtt_client.is_connected() else "unavailable"}
    roles = expected_roles(request)
    if workers is None:
        unknown = {"status": "unknown", "detail": "the database is unavailable"}
        ingest: dict[str, Any] = unknown
        applications: dict[str, dict[str, Any]] = {
            app: {role: unknown for role, owner in roles.items() if owner == app}
            for app in sorted(set(roles.values()) - {"platform"})
        }
    else:
        ingest = workers_health(INGEST_ROLE, workers)
        applications = {}
        for role, app in sorted(roles.items()):
            if role != INGEST_ROLE:
                applications.setdefault(app, {})[role] = workers_health(role, workers)
    parts = [database, broker, ingest, *(w for a in applications.values() for w in a.values())]
    ok = database["status"] == "ok" and broker["status"] == "ok"
    ok = ok and all(part["status"] != "stalled" for part in parts)
    body = {
        "status": "ok" if ok else "degraded",
        "api": {"status": "ok", "version": request.app.version},
        "database": database,
        "broker": broker,
        "ingest": ingest,
        "workers": applications,
    }
    return JSONResponse(body, status_code=200 if ok else 503)
