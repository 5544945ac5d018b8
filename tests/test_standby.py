"""Hot standby (双机热备): a primary with a synchronous streaming replica. Killing the primary
under MQTT ingest load and promoting the standby loses no reading the broker acknowledged to
a device and stores none twice; the ingest worker, the API's pool and the migration engine
carry on against the promoted standby by themselves. Promotion refuses while the primary is
up. These start their own clusters, since they kill one."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from apps.platform.services import Throwaway, free_port, port_in_use, start_throwaway
from apps.platform.standby import PromoteError, promote, survey
from gis_core.db import current_revision, migrate
from gis_core.settings import (
    AuthSettings,
    DatabaseSettings,
    MqttSettings,
    PlatformSettings,
    Settings,
)
from realtime.ingest import IngestWorker
from tests.support import wait_until
from tests.test_ingest_faults import DEVICES, LIMITS, Publisher, wait_for_all

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Throwaway, Settings]]:
    handle = start_throwaway("changzhi-standby-", standby=True)
    primary, standby = handle.postgres, handle.standby
    url = (
        f"postgresql://changzhi:{primary.password}@{primary.host}:{primary.port},"
        f"{standby.host}:{standby.port}/changzhi"
    )
    settings = Settings(
        platform=PlatformSettings(var_dir=tmp_path_factory.mktemp("standby-var")),
        database=DatabaseSettings(url=url, pool_min=1, pool_max=4),
        mqtt=MqttSettings(url=handle.mosquitto.url),
        auth=AuthSettings(secret_key=secrets.token_urlsafe(48)),
    )
    migrate(settings.sqlalchemy_url)  # SQLAlchemy, through the multi-host URL
    with psycopg.connect(settings.database_url) as conn:
        for device_id in DEVICES:
            conn.execute("INSERT INTO iot.device (id, kind) VALUES (%s, 'vehicle')", (device_id,))
        conn.commit()
    try:
        yield handle, settings
    finally:
        handle.services.stop()
        shutil.rmtree(handle.root, ignore_errors=True)


def _cli(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGZHI_")}
    env |= {"COLUMNS": "300", **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "apps.platform.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def test_multi_host_urls_keep_every_host_and_the_password() -> None:
    from sqlalchemy import make_url

    from gis_core.settings import ConfigError, pg_hosts, read_write, sqlalchemy_url

    url = "postgresql://cz:p%40ss%2Fw@db1:5432,db2:5433/city"
    rw = read_write(url)
    assert rw == url + "?target_session_attrs=read-write"
    assert pg_hosts(rw) == [("db1", 5432), ("db2", 5433)]
    single = "postgresql://cz:x@db1:5432/city"
    assert read_write(single) == single  # one host: nothing to choose between
    assert read_write(url + "?target_session_attrs=any").endswith("?target_session_attrs=any")
    parsed = make_url(sqlalchemy_url(rw))
    assert parsed.query["host"] == ("db1:5432", "db2:5433")
    assert parsed.query["target_session_attrs"] == "read-write"
    assert (parsed.username, parsed.password, parsed.database) == ("cz", "p@ss/w", "city")
    assert sqlalchemy_url(single) == "postgresql+psycopg://cz:x@db1:5432/city"
    with pytest.raises(ConfigError, match="3 hosts but 2 ports"):
        pg_hosts("postgresql://cz@a,b,c/city?port=1,2")


def test_the_url_asks_for_the_primary(pair: tuple[Throwaway, Settings]) -> None:
    handle, settings = pair
    assert settings.database_url.endswith("?target_session_attrs=read-write")
    roles = {m.port: m.role for m in survey(settings.database_url)}
    assert roles == {handle.postgres.port: "primary", handle.standby.port: "standby"}

    def replication() -> list[tuple[str, str]]:
        with psycopg.connect(handle.postgres.url) as conn:
            return conn.execute(
                "SELECT application_name, sync_state FROM pg_stat_replication"
            ).fetchall()

    wait_until(lambda: replication() == [("changzhi_standby", "sync")], 30, "a sync standby")


def test_promote_refuses_while_the_primary_is_up(pair: tuple[Throwaway, Settings]) -> None:
    handle, settings = pair
    with pytest.raises(PromoteError, match="still up and takes writes"):
        promote(settings.database_url)
    done = _cli(
        {
            "CHANGZHI_DATABASE_URL": settings.database_url,
            "CHANGZHI_MQTT_URL": handle.mosquitto.url,
            "CHANGZHI_VAR_DIR": str(settings.platform.var_dir),
        },
        "db",
        "promote",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "still up and takes writes" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with psycopg.connect(handle.standby.url) as conn:  # nothing was promoted
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_primary_killed_under_load_loses_no_acknowledged_reading(
    pair: tuple[Throwaway, Settings],
) -> None:
    from fastapi.testclient import TestClient

    from web.app import create_app

    handle, settings = pair
    worker = IngestWorker(settings, f"standby-{secrets.token_hex(3)}", limits=LIMITS)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait_until(worker.client.is_connected, 10, "the ingest worker's broker connection")
    time.sleep(0.5)  # subscribed
    lo, n = 5_000_000, 6000
    publisher = Publisher(settings.mqtt_url, "standby")
    try:
        with TestClient(create_app(settings)) as api:
            assert api.get("/health").json()["database"]["status"] == "ok"
            for i in range(n):
                publisher.send(*publisher.reading(lo + i))
                if i == n // 3:
                    # Committed readings are on the standby's disk too before they are
                    # acknowledged: wait until some are in, then cut the power.
                    wait_until(
                        lambda: worker.counters.stored > 500, 60, "readings stored before the kill"
                    )
                    handle.postgres.kill()
                    wait_until(
                        lambda: not port_in_use(handle.postgres.host, handle.postgres.port),
                        10,
                        "the primary to be gone",
                    )
                    promoted = promote(settings.database_url)
                    assert promoted.port == handle.standby.port
                if i > n // 3 and i % 500 == 0:
                    time.sleep(0.2)  # keep publishing through the failover
            publisher.flush()
            rows, distinct = wait_for_all(settings.database_url, lo, lo + n)
            # The API's pool dropped its connections to the dead primary and found the new one.
            health = wait_until(
                lambda: (h := api.get("/health").json())["database"]["status"] == "ok" and h,
                30,
                "the API's database after the failover",
            )
            assert health["database"]["status"] == "ok"
        assert worker.counters.retries > 0, "the worker never noticed the failover"
        assert current_revision(settings.sqlalchemy_url)  # SQLAlchemy's engine, too
    finally:
        publisher.close()
        worker.stop()
        thread.join(30)
    assert publisher.acked == n
    assert (rows, distinct) == (n, n), (
        f"stored {distinct} distinct of {n} acknowledged ({rows} rows)"
    )
    # Every row sits on the promoted standby (the only server left).
    with psycopg.connect(handle.standby.url) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        on_standby = conn.execute(
            "SELECT count(*) FROM iot.telemetry WHERE seq >= %s AND seq < %s", (lo, lo + n)
        ).fetchone()
    assert on_standby == (n,)
    # The old primary's data is stale: the services refuse to start it beside the new one.
    with pytest.raises(Exception, match="was promoted"):
        handle.services.start()


def test_services_start_standby_from_the_command_line() -> None:
    from apps.platform.services import embedded_services
    from gis_core.settings import EmbeddedSettings

    root = Path(tempfile.mkdtemp(prefix="changzhi-standby-cli-"))
    os.chmod(root, 0o755)  # the unprivileged server account must reach it
    ports = free_port(), free_port()
    env = {
        "CHANGZHI_VAR_DIR": str(root / "var"),
        "CHANGZHI_EMBEDDED_PG_PORT": str(ports[0]),
        "CHANGZHI_EMBEDDED_STANDBY_PORT": str(ports[1]),
        "CHANGZHI_MQTT_URL": "mqtt://platform:x@127.0.0.1:1",  # no broker needed here
    }
    # What every other command sees with CHANGZHI_EMBEDDED_STANDBY=1 (in-process: each
    # command line costs seconds of imports on a loaded machine).
    settings = Settings(
        platform=PlatformSettings(var_dir=root / "var"),
        embedded=EmbeddedSettings(pg_port=ports[0], standby=True, standby_port=ports[1]),
        mqtt=MqttSettings(url=env["CHANGZHI_MQTT_URL"]),
    )
    try:
        started = _cli(env, "services", "start", "--standby")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "standby" in started.stdout and started.stdout.count("running") == 2
        assert "CHANGZHI_EMBEDDED_STANDBY=1" in started.stdout  # the note to set it
        roles = [m.role for m in survey(settings.database_url)]
        assert roles == ["primary", "standby"]
        with pytest.raises(PromoteError, match="still up"):
            promote(settings.database_url)
    finally:
        stopped = embedded_services(settings).stop()
        services = (root / "var" / "services").resolve()
        shutil.rmtree(services, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    assert sorted(stopped) == ["postgres", "standby"]  # the broker is external here
