"""``GET /health``: the API, the database (PostGIS version, schema revision), the broker, the
ingest workers and each application's workers; 503 when any of them is down."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gis_core.heartbeat import INGEST_ROLE, WorkerStatus, worker_statuses
from web.routers.metrics import expected_roles
from web.services.health import database_status

router = APIRouter(tags=["health"])


class StatusOut(BaseModel):
    status: str


class ApiHealth(StatusOut):
    version: str


class DatabaseHealth(BaseModel):
    """``ok`` with the PostGIS version and schema revisions, or ``unavailable`` with the
    first line of the error (then only ``status`` and ``error`` are present)."""

    status: Literal["ok", "unavailable"]
    postgis: str | None = None
    schema_revision: str | None = None
    error: str | None = None


class WorkerOut(BaseModel):
    worker: str
    host: str
    pid: int
    status: Literal["ok", "stalled"]
    started_at: str
    last_beat_s: float


class WorkersHealth(BaseModel):
    """One kind of worker: ``ok``, ``stalled`` or ``absent`` with counts and the workers; or
    ``unknown`` with a ``detail`` (and nothing else) while the database is away."""

    status: Literal["ok", "stalled", "absent", "unknown"]
    alive: int | None = None
    stalled: int | None = None
    workers: list[WorkerOut] | None = None
    detail: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    api: ApiHealth
    database: DatabaseHealth
    broker: StatusOut
    ingest: WorkersHealth
    workers: dict[str, dict[str, WorkersHealth]]


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
    response_model=HealthOut,
    responses={
        503: {"model": HealthOut, "description": "the database, the broker or a worker is down"}
    },
)
def health(request: Request) -> JSONResponse:
    """Each part's status. The body is sent as built (parts that are absent in one state stay
    absent rather than null), so :class:`HealthOut` documents it and is not re-applied."""
    state = request.app.state
    database: dict[str, Any]
    workers: list[WorkerStatus] | None = None
    try:
        with state.pool.connection(timeout=3) as conn:
            database = database_status(conn)
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
