"""The command console in a real browser: Debian's Chromium driven by Playwright (node).

The platform runs as a real uvicorn server on a free port with the console mounted. Live
states are published on the platform's live topic, alarm events on ``cz/v1/alarms/...``, both
as the platform's MQTT account — what the ingest workers announce after a committed batch.
Each scenario is one run of ``tests/browser/console.mjs``; when it needs the platform to do
something (publish, raise alarms) it prints ``STEP name`` and waits until we answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import psycopg
import pytest
import uvicorn

from apps.bench.console import LiveFeeder
from apps.platform.services import free_port
from gis_core.db import connect
from gis_core.identity import create_user
from realtime.mqtt import BrokerAddress, make_client

pytestmark = [pytest.mark.services, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "browser" / "console.mjs"
CONSOLE_DIR = REPO / "web" / "console"
USERS = {
    "console-disp": ("dispatch-pass-1", ["dispatcher"], "fire"),
    "console-disp2": ("dispatch-pass-2", ["dispatcher"], "medical"),
    "console-viewer": ("viewer-pass-1", ["viewer"], None),
}


@pytest.fixture(scope="module")
def console_users(db_url: str, reference: object) -> dict[str, int]:
    ids = {}
    with connect(db_url) as conn:
        for name, (password, roles, dept) in USERS.items():
            row = conn.execute("SELECT id FROM auth.app_user WHERE username = %s", (name,))
            found = row.fetchone()
            ids[name] = (
                found[0]
                if found
                else create_user(
                    conn, username=name, password=password, roles=roles, department=dept
                )
            )
        conn.commit()
    return ids


@pytest.fixture(scope="module")
def console_url(settings: Any, console_users: dict[str, int]) -> Iterator[str]:
    from web.app import create_app
    from web.routers import console

    app = create_app(settings)
    console.install(app)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code < 500:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def fleet_units(db_url: str, reference: object) -> list[tuple[str, str, float, float]]:
    """The reference city's vehicles at their stations, and its air stations."""
    with psycopg.connect(db_url) as conn:
        vehicles = conn.execute(
            """
            SELECT d.id, d.kind, ST_X(p.geom), ST_Y(p.geom) FROM iot.device d
            JOIN ops.unit u ON u.device_id = d.id JOIN ref.poi p ON p.id = u.station_poi_id
            ORDER BY d.id
            """
        ).fetchall()
        sensors = conn.execute(
            """
            SELECT d.id, d.kind, ST_X(s.geom), ST_Y(s.geom) FROM iot.device d
            JOIN iot.monitoring_site s ON s.id = d.site_id WHERE d.kind IN ('air', 'water_level')
            ORDER BY d.id
            """
        ).fetchall()
    assert vehicles, "the reference dataset has units with vehicle terminals"
    return [tuple(v) for v in vehicles + sensors]


@pytest.fixture(scope="module")
def feeder(throwaway: Any, fleet_units: list[Any]) -> Iterator[LiveFeeder]:
    """Moving units, published lazily: the first scenario that asks starts it."""
    feed = LiveFeeder(throwaway.mosquitto.url, fleet_units, slices=2)
    started = False

    def start() -> None:
        nonlocal started
        if not started:
            feed.start()
            started = True

    feed.ensure = start  # type: ignore[attr-defined]
    yield feed
    if started:
        feed.stop()


class Platform:
    """Publishing as the ingest workers do, and the alarm ledger they write."""

    def __init__(self, mqtt_url: str, db_url: str) -> None:
        self.db_url = db_url
        address = BrokerAddress.parse(mqtt_url)
        self.client = make_client(mqtt_url, "console-test")
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self.client.is_connected():
            assert time.monotonic() < deadline, "platform MQTT account could not connect"
            time.sleep(0.05)

    def raise_alarms(self, n: int, *, kind: str = "water_level", severity: int = 3) -> list[int]:
        """Write ``n`` alarms to the ledger and announce each, as rules.apply + ingest do."""
        with psycopg.connect(self.db_url) as conn:
            rows = conn.execute(
                """
                INSERT INTO iot.alarm (kind, rule, severity, device_id, message_zh, message_en,
                                       value, threshold, geom)
                SELECT %(kind)s, 'test.burst', %(sev)s, 'TEST-GAUGE-' || i,
                       '测试水位站' || i || ' 水位超警戒', 'test gauge ' || i || ' above warning',
                       3.5, 3.0,
                       ST_SetSRID(ST_MakePoint(113.0 + mod(i, 50) * 0.01,
                                               36.1 + (i / 50) * 0.01), 4326)
                FROM generate_series(1, %(n)s) AS i
                RETURNING id, raised_at, device_id, message_zh, message_en,
                          ST_X(geom), ST_Y(geom)
                """,
                {"kind": kind, "sev": severity, "n": n},
            ).fetchall()
            conn.commit()
        for alarm_id, at, device_id, zh, en, lon, lat in rows:
            event = {
                "event": "raised",
                "id": alarm_id,
                "at": at.isoformat(),
                "kind": kind,
                "rule": "test.burst",
                "severity": severity,
                "device_id": device_id,
                "message_zh": zh,
                "message_en": en,
                "value": 3.5,
                "threshold": 3.0,
                "lon": lon,
                "lat": lat,
            }
            self.client.publish(f"cz/v1/alarms/{kind}", orjson.dumps(event), qos=1)
        return [r[0] for r in rows]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def platform(throwaway: Any, db_url: str) -> Iterator[Platform]:
    p = Platform(throwaway.mosquitto.url, db_url)
    yield p
    p.close()


def run_scenario(
    scenario: str,
    base: str,
    artifacts: Path,
    steps: dict[str, Callable[[], Any]] | None = None,
    *,
    user: str = "console-disp",
    extra: dict[str, str] | None = None,
    timeout: float = 150.0,
) -> dict[str, Any]:
    """Run one browser scenario; answer its STEP requests; return its RESULT."""
    assert (CONSOLE_DIR / "node_modules" / "playwright-core").is_dir(), (
        "run `npm ci` in web/console (make test does it)"
    )
    profile = tempfile.mkdtemp(prefix="cz-chromium-")
    env = {
        **os.environ,
        "CONSOLE_URL": f"{base}/console",
        "CONSOLE_USER": user,
        "CONSOLE_PASSWORD": USERS[user][0],
        "CONSOLE_USER2": "console-disp2",
        "CONSOLE_PASSWORD2": USERS["console-disp2"][0],
        "SCENARIO": scenario,
        "ARTIFACTS": str(artifacts),
        "CHROMIUM_USER_DATA": profile,
        **(extra or {}),
    }
    proc = subprocess.Popen(
        ["node", str(SCRIPT)],
        cwd=CONSOLE_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    result: dict[str, Any] = {}
    log: list[str] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            log.append(line.rstrip())
            if line.startswith("STEP "):
                name = line[5:].strip()
                answer = (steps or {})[name]()
                proc.stdin.write(json.dumps(answer if answer is not None else True) + "\n")
                proc.stdin.flush()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        code = proc.wait(30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    err = proc.stderr.read() if proc.stderr else ""
    assert code == 0, f"scenario {scenario} failed:\n{err[-3000:]}\n" + "\n".join(log[-30:])
    assert not result.get("external"), f"requests left the machine: {result['external']}"
    return result


def test_log_in_map_live_units_details_layers(
    console_url: str, artifacts: Path, feeder: Any
) -> None:
    result = run_scenario("main", console_url, artifacts, {"publish": feeder.ensure})
    assert result["wrong_password_message"] in ("用户名或密码错误", "Wrong user name or password")
    assert result["map_colours"] > 50, "the map screenshot is blank"
    assert result["units_drawn"] >= 10
    assert result["moved_px"] > 0.5, "live markers did not move"
    assert result["details_id"].startswith("VEH-")
    assert result["details_text"], "the details card is empty"
    assert result["hospitals_after_toggle"] is False and result["schools_after_toggle"] is True
    assert result["schools_tiles_requested"] > 0
    assert result["english_title"] == "Changzhi City Operations Command"
    assert (artifacts / "console-1920.png").stat().st_size > 50_000
    assert (artifacts / "console-3840.png").exists()


def test_acknowledge_removes_alarm_on_every_console(
    console_url: str, artifacts: Path, platform: Platform, feeder: Any
) -> None:
    raised: list[int] = []

    def raise_one() -> dict[str, Any]:
        raised.extend(platform.raise_alarms(1, severity=4))
        return {"id": raised[-1]}

    result = run_scenario("ack", console_url, artifacts, {"raise": raise_one})
    assert result["seen_on_both"] is True
    assert result["gone_on_a"] is True and result["gone_on_b"] is True
    assert result["flew_to_alarm"] is True
    with psycopg.connect(platform.db_url) as conn:
        row = conn.execute(
            "SELECT acknowledged_by FROM iot.alarm WHERE id = %s", (raised[0],)
        ).fetchone()
    assert row == ("console-disp",)


def test_a_burst_of_1000_alarms_keeps_the_page_responsive(
    console_url: str, artifacts: Path, platform: Platform, feeder: Any
) -> None:
    result = run_scenario(
        "burst", console_url, artifacts, {"burst": lambda: platform.raise_alarms(1000)}
    )
    assert result["count"] >= 1000
    assert result["rows_in_dom"] < 80, "the alarm list must not render every row"
    assert result["eval_ms"] < 1000
    assert result["worst_frame_ms"] < 1500


def test_expired_token_goes_back_to_log_in_with_a_message(
    console_url: str, artifacts: Path, settings: Any, console_users: dict[str, int]
) -> None:
    now = datetime.now(UTC)
    token = jwt.encode(
        {"sub": str(console_users["console-disp"]), "iat": now - timedelta(hours=13),
         "exp": now - timedelta(minutes=5)},
        settings.jwt_secret,
        algorithm=settings.auth.algorithm,
    )  # fmt: skip
    result = run_scenario("expired", console_url, artifacts, extra={"EXPIRED_TOKEN": token})
    assert result["login_visible"] is True
    assert "过期" in result["message"]


def test_dropped_websocket_reconnects_and_says_so(
    console_url: str, artifacts: Path, feeder: Any
) -> None:
    result = run_scenario("drop", console_url, artifacts, {"publish": feeder.ensure})
    assert "中断" in result["banner_when_down"]
    assert result["state_after"] in ("restored", "open")
    assert result["banner_after"] == "实时连接已恢复"
    assert result["sockets_opened"] >= 2
    assert result["messages_after_reconnect"] > 0


def test_layers_follow_the_role(console_url: str, artifacts: Path) -> None:
    result = run_scenario("viewer", console_url, artifacts, user="console-viewer")
    assert "parcels" not in result["layers"] and "incidents" not in result["layers"]
    assert "districts" in result["layers"]
    assert result["restricted_requests"] == []
    assert result["ack_buttons"] == 0
    assert "无权" in result["incidents_text"]
