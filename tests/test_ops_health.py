"""``GET /health``: 503 when the database, the broker or a worker is down; workers judged by
their heartbeat's age against CHANGZHI_OPS_STALE_AFTER_S (default 30 s)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gis_core.db import connect
from gis_core.heartbeat import Heartbeat
from gis_core.processes import spawn
from gis_core.settings import DatabaseSettings, MqttSettings, OpsSettings, Settings
from tests.ops_idle import idle_and_die_on_terminate as idle_and_die
from tests.ops_idle import idle_until_terminated
from web.app import create_app


def age(db_url: str, worker: str, seconds: float) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "UPDATE iot.worker_heartbeat SET beat_at = now() - make_interval(secs => %s)"
            " WHERE worker = %s",
            (seconds, worker),
        )
        conn.commit()


def row(db_url: str, worker: str) -> tuple[Any, ...] | None:
    with connect(db_url) as conn:
        return conn.execute(
            "SELECT role, pid FROM iot.worker_heartbeat WHERE worker = %s", (worker,)
        ).fetchone()


@pytest.fixture(autouse=True)
def no_workers_yet(db_url: str) -> None:
    """Each test starts with no heartbeat rows (another module's worker may have left one)."""
    with connect(db_url) as conn:
        conn.execute("DELETE FROM iot.worker_heartbeat")
        conn.commit()


@pytest.fixture
def monitor_beat(db_url: str) -> Iterator[Heartbeat]:
    beat = Heartbeat(db_url, "dispatch-monitor", "dispatch-monitor@ops-test")
    assert beat.beat()
    yield beat
    beat.leave()


def test_healthy_platform_answers_200_with_every_part(api: Any) -> None:
    response = api.get("/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok" and body["broker"]["status"] == "ok"
    # No worker runs in this test session: absent, which is not a failure of the API.
    assert body["ingest"]["status"] == "absent"
    assert body["workers"]["dispatch"]["dispatch-monitor"]["status"] == "absent"


@pytest.mark.parametrize(
    ("seconds", "code", "status"), [(0, 200, "ok"), (29, 200, "ok"), (31, 503, "stalled")]
)
def test_a_worker_is_stalled_once_its_beat_is_older_than_the_limit(
    api: Any, db_url: str, monitor_beat: Heartbeat, seconds: float, code: int, status: str
) -> None:
    age(db_url, monitor_beat.worker, seconds)
    response = api.get("/health")
    assert response.status_code == code, response.json()
    monitor = response.json()["workers"]["dispatch"]["dispatch-monitor"]
    assert monitor["status"] == status
    assert monitor["alive" if status == "ok" else "stalled"] == 1


def test_a_stalled_ingest_worker_makes_health_503_until_it_beats_again(
    api: Any, db_url: str
) -> None:
    beat = Heartbeat(db_url, "ingest", "ingest@ops-test-w0")
    try:
        assert beat.beat({"stored": 5})
        age(db_url, beat.worker, 120)
        body = api.get("/health")
        assert body.status_code == 503
        assert body.json()["ingest"]["status"] == "stalled"
        assert beat.beat({"stored": 6})  # it recovers
        assert api.get("/health").status_code == 200
    finally:
        beat.leave()


def test_a_long_stalled_worker_is_forgotten(api: Any, db_url: str) -> None:
    beat = Heartbeat(db_url, "ingest", "ingest@retired-host")
    assert beat.beat()
    age(db_url, beat.worker, 3601)  # past CHANGZHI_OPS_FORGET_AFTER_S's default hour
    assert api.get("/health").status_code == 200
    assert row(db_url, beat.worker) is None


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_broker_down_is_503(settings: Settings, db_url: str) -> None:
    away = Settings(
        platform=settings.platform,
        database=settings.database,
        mqtt=MqttSettings(url=f"mqtt://platform:x@127.0.0.1:{_closed_port()}"),
        auth=settings.auth,
    )
    with TestClient(create_app(away)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["broker"]["status"] == "unavailable" and body["database"]["status"] == "ok"


def test_database_down_is_503_and_workers_unknown(settings: Settings) -> None:
    away = Settings(
        platform=settings.platform,
        database=DatabaseSettings(url=f"postgresql://nobody:x@127.0.0.1:{_closed_port()}/none"),
        mqtt=settings.mqtt,
        auth=settings.auth,
    )
    with TestClient(create_app(away)) as client:
        response = client.get("/health")
        metrics = client.get("/metrics")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["status"] == "unavailable"
    assert body["ingest"]["status"] == "unknown"
    assert metrics.status_code == 200  # the rest is still worth scraping


def test_spawned_workers_beat_and_leave_on_a_clean_stop(settings: Settings, db_url: str) -> None:
    quick = Settings(
        platform=settings.platform,
        database=settings.database,
        mqtt=settings.mqtt,
        auth=settings.auth,
        ops=OpsSettings(heartbeat_s=0.2, stale_after_s=5),
    )
    name = "ops-test-idler"
    worker = f"{name}@{os.uname().nodename}"
    for target, row_after_stop in ((idle_until_terminated, False), (idle_and_die, True)):
        stop = spawn(target, quick, name=name)
        try:
            deadline = time.monotonic() + 30
            while row(db_url, worker) is None:
                assert time.monotonic() < deadline, "the spawned worker never beat"
                time.sleep(0.1)
            assert row(db_url, worker)[0] == name  # type: ignore[index]
        finally:
            stop()
        # A clean stop removes the row; a death leaves it to go stale, and /health says so.
        assert (row(db_url, worker) is not None) is row_after_stop
    with connect(db_url) as conn:
        conn.execute("DELETE FROM iot.worker_heartbeat WHERE worker = %s", (worker,))
        conn.commit()


def test_ops_settings_refuse_a_limit_below_the_beat() -> None:
    with pytest.raises(ValueError, match="STALE_AFTER_S must exceed"):
        OpsSettings(heartbeat_s=10, stale_after_s=10)
    with pytest.raises(ValueError, match="FORGET_AFTER_S"):
        OpsSettings(heartbeat_s=1, stale_after_s=60, forget_after_s=30)
