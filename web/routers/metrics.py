"""``GET /metrics``: the platform in the Prometheus text format."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gis_core.heartbeat import INGEST_ROLE, WorkerStatus, worker_statuses
from web.observability import PlatformSnapshot

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


def expected_roles(request: Request) -> dict[str, str]:
    """Every kind of worker this installation runs, and who brings it."""
    roles = {INGEST_ROLE: "platform"}
    for application in request.app.state.apps:
        for worker in application.workers:
            roles[worker.name] = application.name
    return roles


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics(request: Request) -> Response:
    """HTTP requests and latency by route, ingest figures per worker, dead letters by reason,
    live clients, the database pool and each application's workers."""
    state = request.app.state
    workers: list[WorkerStatus] = []
    try:
        with state.pool.connection(timeout=3) as conn:
            workers = worker_statuses(conn, state.settings.ops)
    except Exception as exc:  # the database away: the rest is still worth scraping
        log.warning("metrics: workers unknown, database unavailable: %s", exc)
    snapshot = CollectorRegistry(auto_describe=True)
    snapshot.register(
        PlatformSnapshot(
            state.pool.get_stats(), len(state.live.subscribers), workers, expected_roles(request)
        )
    )
    body = generate_latest(state.http_metrics.registry) + generate_latest(snapshot)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
