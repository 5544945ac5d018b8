"""The foundation: embedded services, settings, migrations and the command line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from apps.platform.services import ServiceError, free_port, single_instance
from gis_core.db import DatabaseUnavailable, connect, head_revision, migrate
from gis_core.settings import (
    ApiSettings,
    AuthSettings,
    ConfigError,
    DatabaseSettings,
    Mode,
    PlatformSettings,
    Settings,
)
from tests.conftest import REPO, start_throwaway

CHANGZHI = str(Path(sys.executable).with_name("changzhi"))


def run_cli(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGZHI_")}
    full_env.update(env or {})
    return subprocess.run(
        [CHANGZHI, *args], capture_output=True, text=True, env=full_env, timeout=120, **kw
    )  # type: ignore[call-overload]


# --------------------------------------------------------------------------- services


def test_throwaway_services_have_postgis_pgrouting_and_auth(throwaway, db_url):
    with psycopg.connect(db_url) as conn:
        versions = conn.execute("SELECT postgis_lib_version(), pgr_version()").fetchone()
    assert versions[0].startswith("3.")
    assert versions[1]
    # The broker refuses anonymous clients and wrong passwords.
    mq = throwaway.mosquitto
    bad = subprocess.run(
        ["mosquitto_pub", "-p", str(mq.port), "-t", "x", "-m", "1", "-u", "platform", "-P", "no"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    good = subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(mq.port),
            "-t",
            "x",
            "-m",
            "1",
            "-u",
            "platform",
            "-P",
            mq.platform_password,
        ],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr


def test_stale_state_port_conflict_and_clean_stop():
    handle = start_throwaway("changzhi-stale-")
    pg, mq = handle.postgres, handle.mosquitto
    try:
        # A crash: kill both servers hard, leaving pid files behind.
        pg_pid = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pg_pid, signal.SIGKILL)
        mq_pid = mq.pid()
        assert mq_pid is not None
        os.kill(mq_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (Path(f"/proc/{pg_pid}").exists()):
            time.sleep(0.1)
        time.sleep(0.5)  # let the orphaned backends notice their postmaster is gone
        assert handle.services.start() == ["postgres", "mosquitto"]
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        # A port taken by someone else gets a clear message, not a traceback.
        handle.services.stop()
        blocker = socket.socket()
        # Connections the stopped server had accepted may sit in TIME_WAIT on the port: like
        # any server, the blocker may still listen there (it could not if one were listening).
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", pg.port))
        blocker.listen()
        try:
            with pytest.raises(ServiceError, match=f"port {pg.port} is in use"):
                pg.start()
        finally:
            blocker.close()
    finally:
        handle.services.stop()
        pids = subprocess.run(["pgrep", "-f", str(handle.root)], capture_output=True, text=True)
        shutil.rmtree(handle.root, ignore_errors=True)
    assert pids.stdout.strip() == "", "a server outlived stop()"


def test_single_instance_lock(tmp_path):
    lock = tmp_path / "up.lock"
    with (
        single_instance(lock, "changzhi up"),
        pytest.raises(ServiceError, match="already running"),
        single_instance(lock, "changzhi up"),
    ):
        pass
    with single_instance(lock, "changzhi up"):
        pass


# --------------------------------------------------------------------------- settings


def test_production_refuses_default_secrets(tmp_path):
    prod = PlatformSettings(mode=Mode.production, var_dir=tmp_path)
    for weak in (None, "secret", "short"):
        s = Settings(platform=prod, auth=AuthSettings(secret_key=weak))
        with pytest.raises(ConfigError):
            _ = s.jwt_secret
    strong = "x" * 8 + "Q7c9Vb2LmN4pR8sT1uW3yZ5aB6dE0fG"
    assert Settings(platform=prod, auth=AuthSettings(secret_key=strong)).jwt_secret == strong
    # Development generates one, keeps it private, and reuses it.
    dev = Settings(platform=PlatformSettings(var_dir=tmp_path))
    assert dev.jwt_secret == Settings(platform=PlatformSettings(var_dir=tmp_path)).jwt_secret
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0


def test_settings_invariants():
    with pytest.raises(ValueError, match="DEFAULT_LIMIT"):
        ApiSettings(default_limit=50_000, max_limit=100)
    with pytest.raises(ValueError, match="POOL_MIN"):
        DatabaseSettings(pool_min=20, pool_max=2)


# --------------------------------------------------------------------------- migrations


def test_migration_builds_the_schema(db_url, settings):
    before, after = migrate(settings.sqlalchemy_url)  # idempotent
    assert before == after == head_revision()
    with psycopg.connect(db_url) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
        assert {"auth", "ref", "iot", "ops", "env", "registry"} <= schemas
        partitioned = conn.execute(
            "SELECT partstrat FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
            " WHERE c.relname = 'telemetry'"
        ).fetchone()
        assert partitioned == ("r",)
        parts = conn.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE p.relname = 'telemetry'"
        ).fetchone()[0]
        assert parts >= 40  # 35 days back, a week ahead, and the default
        departments = {r[0] for r in conn.execute("SELECT code FROM auth.department")}
        assert {
            "fire",
            "medical",
            "police",
            "water",
            "environment",
            "land",
            "traffic",
        } <= departments


def test_telemetry_is_idempotent_and_days_move_out_of_default(db_url):
    with psycopg.connect(db_url) as conn:
        insert = (
            "INSERT INTO iot.telemetry (device_id, kind, ts, seq, reading)"
            " VALUES ('t-dev', 'air', %s, %s, '{}') ON CONFLICT DO NOTHING"
        )
        far = "2031-06-01T08:00:00+08:00"
        conn.execute(insert, (far, 1))
        conn.execute(insert, (far, 1))  # a retransmission
        conn.execute(insert, (far, None))
        conn.execute(insert, (far, None))  # no counter: device + ts
        own = "SELECT count(*) FROM iot.telemetry_default WHERE device_id = 't-dev'"
        assert conn.execute(own).fetchone()[0] == 2
        conn.execute("SELECT iot.ensure_telemetry_partitions('2031-05-31', '2031-06-01')")
        assert conn.execute(own).fetchone()[0] == 0
        assert (
            conn.execute("SELECT count(*) FROM iot.telemetry WHERE device_id = 't-dev'").fetchone()[
                0
            ]
            == 2
        )
        conn.rollback()


# --------------------------------------------------------------------------- command line


def test_cli_unreachable_database_is_one_clear_line():
    port = free_port()
    result = run_cli(
        "db", "migrate", env={"CHANGZHI_DATABASE_URL": f"postgresql://x:y@127.0.0.1:{port}/x"}
    )
    assert result.returncode == 1
    assert "cannot connect to the database" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_users_create_and_list(db_url):
    env = {"CHANGZHI_DATABASE_URL": db_url, "CHANGZHI_MQTT_URL": "mqtt://127.0.0.1:1"}
    made = run_cli(
        "users",
        "create",
        "fire-dispatcher",
        "-r",
        "dispatcher",
        "-d",
        "fire",
        "--password-stdin",
        env=env,
        input="a-long-password\n",
    )
    assert made.returncode == 0, made.stderr
    again = run_cli(
        "users",
        "create",
        "fire-dispatcher",
        "-r",
        "dispatcher",
        "--password-stdin",
        env=env,
        input="a-long-password\n",
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    bad_role = run_cli(
        "users",
        "create",
        "x-user",
        "-r",
        "emperor",
        "--password-stdin",
        env=env,
        input="a-long-password\n",
    )
    assert bad_role.returncode == 1 and "unknown role" in bad_role.stderr
    listed = run_cli("users", "list", env=env)
    assert "fire-dispatcher" in listed.stdout
    with connect(db_url) as conn:
        audited = conn.execute(
            "SELECT count(*) FROM auth.audit_log WHERE action = 'create' AND object_type = 'user'"
            " AND detail->>'username' = 'fire-dispatcher'"
        ).fetchone()[0]
    assert audited == 1


def test_database_unavailable_is_a_named_error():
    with (
        pytest.raises(DatabaseUnavailable, match="cannot connect"),
        connect(f"postgresql://x:y@127.0.0.1:{free_port()}/x", timeout=1),
    ):
        pass


def test_up_serves_health_and_ctrl_c_stops_everything():
    """`changzhi up` on embedded defaults, then Ctrl-C: nothing it started survives."""
    tmp_path = Path(tempfile.mkdtemp(prefix="changzhi-up-"))
    os.chmod(tmp_path, 0o755)
    api_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHANGZHI_")},
        "CHANGZHI_VAR_DIR": str(tmp_path / "var"),
        "CHANGZHI_EMBEDDED_PG_PORT": str(free_port()),
        "CHANGZHI_EMBEDDED_MQTT_PORT": str(free_port()),
        "CHANGZHI_API_PORT": str(api_port),
        # The whole platform, on a small city: data, devices, workers and simulator.
        "CHANGZHI_DATA_SCALE": "0.05",
        "CHANGZHI_DATA_DEM_RESOLUTION_M": "1000",
        "CHANGZHI_UP_SIMULATE_VEHICLES": "30",
    }
    proc = subprocess.Popen(
        [CHANGZHI, "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=2).json()
                if health["status"] == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert health is not None and health["status"] == "ok", (health, proc.stderr)
        assert health["database"]["postgis"].startswith("3.")
        # ...and stays so while the simulated devices stream in.
        for _ in range(6):
            time.sleep(1)
            again = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5).json()
            assert again["status"] == "ok", again
        second = run_cli(
            "up", "--skip-data", env={k: v for k, v in env.items() if k.startswith("CHANGZHI_")}
        )
        assert second.returncode == 1 and "already running" in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), stderr
    assert "Traceback" not in stderr
    assert "stopped: mosquitto, postgres" in stdout
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    assert (tmp_path / "var" / "admin-password").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_readme_names_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_cli_devices_status_and_dead_letters(db_url):
    """Operators read device health and what ingest refused from the command line; what a
    device sent is printed as text, not interpreted as terminal markup."""
    env = {"CHANGZHI_DATABASE_URL": db_url, "CHANGZHI_MQTT_URL": "mqtt://127.0.0.1:1"}

    def rain_counts() -> list[int]:
        status = run_cli("devices", "status", "--offline", env=env)
        assert status.returncode == 0, status.stderr
        rain = [line for line in status.stdout.splitlines() if " rain " in line]
        return [int(n) for n in rain[0].replace("│", " ").split()[1:]] if rain else [0, 0, 0]

    before = rain_counts()  # other tests' devices may share the database
    with connect(db_url) as conn:
        conn.execute(
            "INSERT INTO iot.device (id, kind, expected_interval_s) VALUES"
            " ('CLI-ON', 'rain', 300), ('CLI-OFF', 'rain', 300), ('CLI-NEVER', 'rain', 300)"
        )
        conn.execute(
            "INSERT INTO iot.device_state (device_id, kind, ts, online, reading) VALUES"
            " ('CLI-ON', 'rain', now(), true, '{}'), ('CLI-OFF', 'rain', now(), false, '{}')"
        )
        conn.execute(
            "INSERT INTO iot.dead_letter (topic, device_id, reason, detail, payload, payload_bytes)"
            " VALUES ('cz/v1/rain/CLI-OFF/telemetry', 'CLI-OFF', 'bad_json', 'broken',"
            " '[bold red]{oops', 16)"
        )
        conn.commit()
    assert [a - b for a, b in zip(rain_counts(), before, strict=True)] == [1, 1, 1]
    status = run_cli("devices", "status", "--offline", env=env)
    assert "CLI-OFF" in status.stdout and "CLI-ON" not in status.stdout
    dead = run_cli("devices", "dead-letters", "--device", "CLI-OFF", env=env)
    assert dead.returncode == 0, dead.stderr
    assert "bad_json" in dead.stdout and "[bold red]{oops" in dead.stdout
    bad = run_cli("devices", "dead-letters", "--limit", "0", env=env)
    assert bad.returncode == 1 and "--limit" in bad.stderr and "Traceback" not in bad.stderr
