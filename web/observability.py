"""What operators watch: a request id and log line per request, and ``GET /metrics``.

HTTP figures are counted in this process by :class:`RequestObserver`, labelled by the route's
template (``/collections/{collection_id}/items``, never the raw path, so the label set stays
bounded). Everything else ``/metrics`` shows is read when it is scraped: the database pool's
statistics, the live hub's clients, and the workers' figures from their heartbeat rows
(``gis_core.heartbeat``: workers run as other processes, often on other hosts).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis_core.heartbeat import INGEST_ROLE, WorkerStatus
from gis_core.logs import bind

log = logging.getLogger("web.request")

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept only if it is short and plain: it goes into every log line.
_GOOD_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"

# psycopg_pool's get_stats(): gauges always present, counters present once non-zero.
POOL_GAUGES = ("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting")
POOL_COUNTERS = (
    "requests_num",
    "requests_queued",
    "requests_errors",
    "requests_wait_ms",
    "usage_ms",
    "connections_num",
    "connections_errors",
    "connections_lost",
    "returns_bad",
)
INGEST_COUNTERS = {
    "received": "messages taken from the broker",
    "stored": "readings stored",
    "duplicates": "readings already stored (resent), not stored again",
    "batches": "batches committed",
    "retries": "batches retried after a database error",
}


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` when it is plain enough to log, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _GOOD_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class HttpMetrics:
    """This process's HTTP figures, in a registry of its own (one per application object)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "changzhi_http_requests",
            "HTTP requests answered, by method, route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "changzhi_http_request_duration_seconds",
            "time to answer an HTTP request, by method and route template",
            ("method", "route"),
            registry=self.registry,
        )


class RequestObserver:
    """ASGI middleware: a request id (``X-Request-ID`` echoed or made) bound to every log
    record of the request, the HTTP metrics, and one log line per request naming its user."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        status = 500  # what it is if the application raises before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with bind(request_id=request_id) as fields:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                method = scope.get("method", "?")
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.latency.labels(method, route).observe(elapsed)
                if self.log_requests:
                    user = fields.get("user")
                    log.info(
                        "%s %s %d %.1f ms id=%s user=%s",
                        method,
                        scope.get("path", ""),
                        status,
                        elapsed * 1000,
                        request_id,
                        user or "-",
                        extra={
                            "method": method,
                            "path": scope.get("path", ""),
                            "route": route,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                            "client": (scope.get("client") or ("", 0))[0],
                            "user": user,
                        },
                    )


class PlatformSnapshot(Collector):
    """The figures read at scrape time: pool, live clients, workers and their ingest."""

    def __init__(
        self,
        pool_stats: dict[str, int],
        live_clients: int,
        workers: Sequence[WorkerStatus],
        expected_roles: dict[str, str],
    ) -> None:
        self.pool_stats = pool_stats
        self.live_clients = live_clients
        self.workers = workers
        # role -> who brings it ("platform" for ingest, else the application's name)
        self.expected_roles = expected_roles

    def collect(self) -> Iterable[Metric]:
        yield from self._pool()
        live = GaugeMetricFamily("changzhi_live_clients", "consoles connected to WS /ws/live")
        live.add_metric([], self.live_clients)
        yield live
        yield from self._workers()
        yield from self._ingest([w for w in self.workers if w.role == INGEST_ROLE])

    def _pool(self) -> Iterator[Metric]:
        for key in POOL_GAUGES:
            name = f"changzhi_db_pool_{key.removeprefix('pool_')}"
            gauge = GaugeMetricFamily(name, f"API database pool: {key}")
            gauge.add_metric([], self.pool_stats.get(key, 0))
            yield gauge
        for key in POOL_COUNTERS:
            counter = CounterMetricFamily(f"changzhi_db_pool_{key}", f"API database pool: {key}")
            counter.add_metric([], self.pool_stats.get(key, 0))
            yield counter

    def _workers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "changzhi_worker_up",
            "1 while a worker's heartbeat is fresh, 0 once it is stalled",
            labels=("app", "role", "worker", "host"),
        )
        alive = GaugeMetricFamily(
            "changzhi_workers_alive",
            "workers of each kind with a fresh heartbeat",
            labels=("app", "role"),
        )
        stalled = GaugeMetricFamily(
            "changzhi_workers_stalled",
            "workers of each kind whose heartbeat went stale (frozen, cut off or died)",
            labels=("app", "role"),
        )
        roles = dict(self.expected_roles)
        for w in self.workers:
            roles.setdefault(w.role, "unknown")
        for role, app in sorted(roles.items()):
            mine = [w for w in self.workers if w.role == role]
            for w in mine:
                up.add_metric([app, role, w.worker, w.host], 1 if w.alive else 0)
            alive.add_metric([app, role], sum(w.alive for w in mine))
            stalled.add_metric([app, role], sum(not w.alive for w in mine))
        yield from (up, alive, stalled)

    def _ingest(self, workers: list[WorkerStatus]) -> Iterator[Metric]:
        for key, meaning in INGEST_COUNTERS.items():
            counter = CounterMetricFamily(
                f"changzhi_ingest_{key}", f"ingest: {meaning}", labels=("worker",)
            )
            for w in workers:
                counter.add_metric([w.worker], float(w.figures.get(key, 0)))
            yield counter
        dead = CounterMetricFamily(
            "changzhi_ingest_dead_letters",
            "ingest: readings refused and kept with their reason",
            labels=("worker", "reason"),
        )
        queued = GaugeMetricFamily(
            "changzhi_ingest_queue_depth",
            "ingest: messages taken from the broker, waiting for the next batch",
            labels=("worker",),
        )
        batch = HistogramMetricFamily(
            "changzhi_ingest_batch_duration_seconds",
            "ingest: time to validate, store and commit one batch",
            labels=("worker",),
        )
        for w in workers:
            for reason, count in sorted(w.figures.get("dead_letters", {}).items()):
                dead.add_metric([w.worker, reason], float(count))
            queued.add_metric([w.worker], float(w.figures.get("queued", 0)))
            seconds = w.figures.get("batch_seconds")
            if seconds:
                batch.add_metric([w.worker], *_cumulative(seconds))
        yield from (dead, queued, batch)


def _cumulative(seconds: dict[str, Any]) -> tuple[list[tuple[str, float]], float]:
    """Per-bucket counts as the worker keeps them, to Prometheus's cumulative ``le`` buckets."""
    bounds = [*map(str, seconds["le"]), "+Inf"]
    total = 0.0
    buckets = []
    for bound, count in zip(bounds, seconds["counts"], strict=True):
        total += count
        buckets.append((bound, total))
    return buckets, float(seconds["sum"])
