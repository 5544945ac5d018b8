"""Workers' heartbeats: each long-running worker beats a row of ``iot.worker_heartbeat``.

The API's ``/health`` and ``/metrics`` read these rows. They live in the database, not in
files or a Prometheus multiprocess directory, because the workers of a real deployment run as
their own services, often on other hosts than the API: the database is the one place they all
reach. A worker beats every ``CHANGZHI_OPS_HEARTBEAT_S`` seconds with its figures (counters,
queue depth); one whose last beat is older than ``CHANGZHI_OPS_STALE_AFTER_S`` is stalled, or
died without a word; a clean stop deletes its row.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

from gis_core.settings import OpsSettings

log = logging.getLogger(__name__)

INGEST_ROLE = "ingest"

_BEAT_SQL = """
INSERT INTO iot.worker_heartbeat AS h (worker, role, host, pid, started_at, beat_at, figures)
VALUES (%(worker)s, %(role)s, %(host)s, %(pid)s, now(), now(), %(figures)s::jsonb)
ON CONFLICT (worker) DO UPDATE SET
    role = excluded.role, host = excluded.host, pid = excluded.pid, beat_at = now(),
    figures = excluded.figures,
    -- a new process under the same name started afresh
    started_at = CASE WHEN h.pid = excluded.pid THEN h.started_at ELSE now() END
"""

# Rows stalled past forget_after_s are gone for good (a retired host); the rest are judged
# against the database's clock, the one clock every host shares.
_STATUS_SQL = """
WITH forgotten AS (
    DELETE FROM iot.worker_heartbeat
    WHERE beat_at < now() - make_interval(secs => %(forget)s)
)
SELECT worker, role, host, pid, started_at, beat_at,
       extract(epoch FROM now() - beat_at)::float8 AS age_s,
       beat_at >= now() - make_interval(secs => %(stale)s) AS alive,
       figures
FROM iot.worker_heartbeat
-- the SELECT sees the rows as they were before the DELETE above
WHERE beat_at >= now() - make_interval(secs => %(forget)s)
ORDER BY role, worker
"""


class HeartbeatError(ValueError):
    """A heartbeat named wrongly (empty role or worker name)."""


class Heartbeat:
    """The row of one worker: :meth:`beat` with its figures, :meth:`leave` on a clean stop.

    Keeps its own connection, separate from the worker's work, and never raises on a database
    error: a worker that cannot beat goes stale, which is the truth ``/health`` must tell.
    """

    def __init__(self, database_url: str, role: str, worker: str) -> None:
        if not role.strip() or not worker.strip():
            raise HeartbeatError(
                f"a heartbeat needs a role and a worker name, not {role!r}, {worker!r}"
            )
        self.database_url = database_url
        self.role = role
        self.worker = worker
        self.host = os.uname().nodename
        self._conn: psycopg.Connection | None = None

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, connect_timeout=5, autocommit=True)
            self._conn.execute("SET statement_timeout = 5000")
        return self._conn

    def beat(self, figures: Mapping[str, Any] | None = None) -> bool:
        """Record that this worker is alive now, with its ``figures``; False if it could not."""
        params = {
            "worker": self.worker,
            "role": self.role,
            "host": self.host,
            "pid": os.getpid(),
            "figures": orjson.dumps(dict(figures or {})).decode(),
        }
        try:
            self._db().execute(_BEAT_SQL, params)
        except psycopg.Error as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("heartbeat %s: not recorded: %s", self.worker, reason)
            self.close()
            return False
        return True

    def leave(self) -> None:
        """A clean stop: the row goes, so the worker is not reported stalled."""
        try:
            self._db().execute(
                "DELETE FROM iot.worker_heartbeat WHERE worker = %s AND pid = %s",
                (self.worker, os.getpid()),
            )
        except psycopg.Error as exc:
            log.warning("heartbeat %s: could not leave: %s", self.worker, exc)
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None


class BackgroundHeartbeat:
    """Beats from a thread every ``interval_s``, for a worker whose loop we do not own (an
    application's worker started through :func:`gis_core.processes.spawn`). It proves the
    process is alive and can reach the database; a frozen process or one cut off from the
    database goes stale."""

    def __init__(
        self,
        heartbeat: Heartbeat,
        interval_s: float,
        figures: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.heartbeat = heartbeat
        self.interval_s = interval_s
        self.figures = figures
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{heartbeat.worker}", daemon=True
        )

    def start(self) -> BackgroundHeartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            self.heartbeat.beat(self.figures() if self.figures else None)
            if self._stop.wait(self.interval_s):
                return

    def stop(self, leave: bool = True) -> None:
        self._stop.set()
        self._thread.join(self.interval_s + 10)
        if leave:
            self.heartbeat.leave()
        else:
            self.heartbeat.close()


@dataclass(frozen=True)
class WorkerStatus:
    worker: str
    role: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    age_s: float
    alive: bool
    figures: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "host": self.host,
            "pid": self.pid,
            "status": "ok" if self.alive else "stalled",
            "started_at": self.started_at.isoformat(),
            "last_beat_s": round(self.age_s, 1),
        }


def worker_statuses(conn: psycopg.Connection, ops: OpsSettings) -> list[WorkerStatus]:
    """Every worker with a heartbeat row, alive or stalled (forgetting the long-stalled)."""
    rows = conn.execute(
        _STATUS_SQL, {"stale": ops.stale_after_s, "forget": ops.forget_after_s}
    ).fetchall()
    conn.commit()
    return [WorkerStatus(*row) for row in rows]
