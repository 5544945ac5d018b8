"""The command console in a real browser: Debian's Chromium driven by Playwright (node).

The platform runs as a real uvicorn server on a free port with the console mounted. Live
states are published on the platform's live topic, alarm events on ``cz/v1/alarms/...``, both
as the platform's MQTT account — what the ingest workers announce after a committed batch.
Each scenario is one run of ``tests/browser/console.mjs``; when it needs the platform to do
something (publish, raise alarms) it prints ``STEP name`` and waits until we answer.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import orjson
import psycopg
import pytest
from starlette.websockets import WebSocketDisconnect

from apps.bench.console import LiveFeeder
from gis_core.db import connect
from gis_core.identity import create_user
from realtime import topics
from realtime.ingest import IngestWorker
from realtime.mqtt import BrokerAddress, make_client
from realtime.provision import device_credentials
from tests.support import run_browser_scenario, serve_app

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
    with serve_app(app) as base:
        yield base


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
    try:
        return run_browser_scenario(SCRIPT, CONSOLE_DIR, env, steps, timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


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
    # The live layer is drawn by its worker, and it is on screen (not only in memory).
    assert result["live_drawn_by"] == "worker"
    assert result["live_pixels"] > 200, result["live_pixels"]
    assert result["hospitals_after_toggle"] is False and result["schools_after_toggle"] is True
    assert result["schools_tiles_requested"] > 0
    assert result["english_title"] == "Changzhi City Operations Command"
    assert result["conn_text_en"] == "Live feed connected", result
    # Nothing spills out of its box in either language, nor on the 4K wall, where text and the
    # map's controls are twice the size (the wall is read from across the room).
    for name in ("layout_zh", "layout_en", "layout_wall"):
        assert result[name]["problems"] == [], (name, result[name])
    assert result["layout_zh"]["rem"] == pytest.approx(16, abs=0.1)
    assert result["layout_wall"]["rem"] == pytest.approx(32, abs=0.1)
    wall, desk = result["layout_wall"], result["layout_zh"]
    assert wall["title_px"] >= 1.9 * desk["title_px"]
    assert wall["zoom_button_px"] >= 1.9 * desk["zoom_button_px"] >= 1.9 * 25
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
    assert result["map_clustered"] >= 1000 and result["map_circles"] < 60, result
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
    # Without OffscreenCanvas the page draws the live layer itself, visibly.
    assert result["fallback"]["drawn_by"] == "page"
    assert result["fallback"]["pixels"] > 200, result["fallback"]


def test_layers_follow_the_role(console_url: str, artifacts: Path, platform: Platform) -> None:
    marker = f"INCIDENT-ONLY-FOR-DISPATCH-{time.monotonic_ns()}"

    def incident() -> dict[str, str]:
        # An incident change, announced as dispatch does; viewers may not read incidents.
        event = {"type": "incident", "event": "created", "id": 990001, "address": marker}
        platform.client.publish(topics.event_topic("dispatch"), orjson.dumps(event), qos=1)
        return {"marker": marker}

    result = run_scenario(
        "viewer", console_url, artifacts, {"incident": incident}, user="console-viewer"
    )
    # The dispatcher's console got the incident; the viewer's socket never carried it.
    assert result["incident_frames_dispatcher"] >= 1
    assert result["incident_frames_viewer"] == 0 and result["viewer_frames"] > 0
    assert "parcels" not in result["layers"] and "incidents" not in result["layers"]
    assert "districts" in result["layers"]
    assert result["restricted_requests"] == []
    assert result["ack_buttons"] == 0
    assert "无权" in result["incidents_text"]


# ------------------------------------------------------------------------ live feed encoding


def decode_positions(
    frame: bytes,
) -> list[tuple[int, float, float, int, float | None, float | None]]:
    """The binary frame of ``/ws/live?format=bin``, read by its documented layout."""
    version, n, base = struct.unpack_from("<B3xId", frame)
    assert version == 1 and len(frame) == 16 + 20 * n
    cols = [struct.unpack_from(f"<{n}{c}", frame, 16 + off * n) for c, off in
            (("I", 0), ("i", 4), ("i", 8), ("i", 12), ("H", 16), ("H", 18))]  # fmt: skip
    return [
        (ix, lon / 1e7, lat / 1e7, int(base) + dt,
         None if h == 0xFFFF else h / 100, None if v == 0xFFFF else v / 10)
        for ix, lon, lat, dt, h, v in zip(*cols, strict=True)
    ]  # fmt: skip


def test_binary_live_feed_sends_moves_as_frames_and_changes_as_json(
    api: Any, admin_headers: dict[str, str]
) -> None:
    from realtime.ingest import LIVE_TOPIC

    hub = api.app.state.live
    token = admin_headers["Authorization"].split()[1]
    # Far from the city, so the other tests' live units stay out of this bbox.
    bbox = "100,10,101,11"
    now = int(time.time() * 1000)

    def announce(*states: list[Any]) -> None:
        hub.feed_threadsafe(LIVE_TOPIC, orjson.dumps({"states": list(states), "online": []}))

    def receive(ws: Any) -> tuple[str, Any]:
        message = ws.receive()
        if message.get("bytes") is not None:
            return "bin", decode_positions(message["bytes"])
        return "json", orjson.loads(message["text"])

    reading = {"status": "en_route", "speed_kmh": 42.5, "heading_deg": 90, "battery_pct": 80}
    with (
        api.websocket_connect(f"/ws/live?token={token}&bbox={bbox}&format=bin") as binary,
        api.websocket_connect(f"/ws/live?token={token}&bbox={bbox}") as text,
    ):
        assert receive(binary)[1]["type"] == "hello" and receive(text)[1]["type"] == "hello"
        announce(["BIN-1", "vehicle", 100.5, 10.5, now, "en_route", reading])
        kind, first = receive(binary)
        assert kind == "json" and first["items"][0][0] == "BIN-1"  # first seen: in full
        index = first["ix"][0]
        # It only moves (and turns, and speeds up): a binary frame.
        moved = {**reading, "speed_kmh": 61.3, "heading_deg": 135.25}
        announce(["BIN-1", "vehicle", 100.5012345, 10.4987654, now + 1000, "en_route", moved])
        kind, rows = receive(binary)
        assert kind == "bin"
        position = (pytest.approx(100.5012345, abs=1e-7), pytest.approx(10.4987654, abs=1e-7))
        assert rows == [(index, *position, now + 1000, 135.25, 61.3)]
        # Its status changes: the whole state again, as JSON.
        announce(["BIN-1", "vehicle", 100.51, 10.5, now + 2000, "on_scene",
                  {**moved, "status": "on_scene"}])  # fmt: skip
        kind, changed = receive(binary)
        assert kind == "json" and changed["items"][0][5] == "on_scene"
        # The JSON client got every state in full, and nothing binary.
        seen = []
        while len(seen) < 3:
            kind, message = receive(text)
            assert kind == "json" and "ix" not in message
            seen += [item[2] for item in message.get("items", [])]
        assert seen == [100.5, 100.5012345, 100.51]
    # Bytes on the wire: a moving unit's frame row against its JSON state.
    frame_row = 20
    json_state = len(orjson.dumps(["BIN-1", "vehicle", 100.5012345, 10.4987654, now, "en_route",
                                   moved]))  # fmt: skip
    assert json_state > 5 * frame_row
    with (
        pytest.raises(WebSocketDisconnect),
        api.websocket_connect(f"/ws/live?token={token}&format=xml") as ws,
    ):
        ws.receive_text()


# ---------------------------------------------------------------------------------- replay


@pytest.fixture(scope="module")
def ingest(throwaway: Any, settings: Any, db_url: str, reference: object) -> Iterator[IngestWorker]:
    """A real ingest worker, and every reference device able to log in to the broker."""
    with psycopg.connect(db_url) as conn:
        creds = device_credentials(conn, settings.device_secret)
    throwaway.mosquitto.write_accounts(creds)
    throwaway.mosquitto.reload()
    worker = IngestWorker(settings, "console-test", batch_wait_s=0.02)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not worker.client.is_connected():
        assert time.monotonic() < deadline, "the ingest worker did not connect"
        time.sleep(0.05)
    time.sleep(0.3)  # its shared subscription settles
    worker.credentials = creds  # type: ignore[attr-defined]
    yield worker
    worker.stop()
    thread.join(10)


def drive_history(
    mqtt_url: str, creds: dict[str, str], vehicles: list[tuple[str, float, float]], seconds: int
) -> dict[str, Any]:
    """Vehicles report once a second for ``seconds`` s, each over MQTT with its own account,
    through the real ingest: the first drives east and speeds (an overspeed alarm is raised
    and later cleared), the others drive north. Returns the window and what was sent."""
    address = BrokerAddress.parse(mqtt_url)
    clients = {}
    for device_id, _, _ in vehicles:
        client = make_client(mqtt_url, "dev", client_id=f"replay-{device_id}-{time.monotonic_ns()}")
        client.username_pw_set(device_id, creds[device_id])
        client.connect(address.host, address.port)
        client.loop_start()
        clients[device_id] = client
    deadline = time.monotonic() + 10
    while not all(c.is_connected() for c in clients.values()):
        assert time.monotonic() < deadline, "vehicles could not log in to the broker"
        time.sleep(0.05)
    sent: dict[str, list[list[float]]] = {v[0]: [] for v in vehicles}
    start_ms = int(time.time() * 1000)
    try:
        for step in range(seconds):
            ts_ms = int(time.time() * 1000)
            for n, (device_id, lon0, lat0) in enumerate(vehicles):
                fast = n == 0 and 8 <= step < 16
                lon = lon0 + (0.0004 * step if n == 0 else 0.0)
                lat = lat0 + (0.0003 * step if n > 0 else 0.0)
                reading = {
                    "ts": ts_ms, "seq": step + 1, "lon": round(lon, 7), "lat": round(lat, 7),
                    "speed_kmh": 135.0 if fast else 90.0, "heading_deg": 90 if n == 0 else 0,
                    "status": "en_route",
                }  # fmt: skip
                info = clients[device_id].publish(
                    f"cz/v1/vehicle/{device_id}/telemetry", orjson.dumps(reading), qos=1
                )
                info.wait_for_publish(10)
                sent[device_id].append([ts_ms, reading["lon"], reading["lat"]])
            time.sleep(max(0.0, (start_ms + (step + 1) * 1000) / 1000 - time.time()))
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
    return {"start_ms": start_ms, "end_ms": int(time.time() * 1000), "sent": sent}


def test_replay_a_past_window_of_units_and_alarms(
    console_url: str,
    artifacts: Path,
    throwaway: Any,
    ingest: Any,
    fleet_units: list[Any],
    db_url: str,
    feeder: Any,
) -> None:
    vehicles = [(u[0], u[2], u[3]) for u in fleet_units if u[1] == "vehicle"][:3]
    history: dict[str, Any] = {}

    def make_history() -> dict[str, Any]:
        history.update(drive_history(throwaway.mosquitto.url, ingest.credentials, vehicles, 30))
        fast = vehicles[0][0]
        since = datetime.fromtimestamp(history["start_ms"] / 1000, UTC)
        deadline = time.monotonic() + 15
        while True:  # the overspeed alarm was raised and cleared by the rules, in the ledger
            with psycopg.connect(db_url) as conn:
                row = conn.execute(
                    """
                    SELECT id, raised_at, cleared_at FROM iot.alarm
                    WHERE device_id = %s AND rule = 'vehicle.overspeed' AND raised_at >= %s
                    ORDER BY id DESC LIMIT 1
                    """,
                    (fast, since),
                ).fetchone()
                stored = conn.execute(
                    "SELECT count(*) FROM iot.telemetry WHERE device_id = ANY(%s) AND ts >= %s",
                    ([v[0] for v in vehicles], since),
                ).fetchone()
            if row and row[2] and stored and stored[0] >= 90:
                break
            assert time.monotonic() < deadline, f"history not stored: alarm {row}, rows {stored}"
            time.sleep(0.2)
        history["alarm"] = {
            "id": row[0],
            "device_id": fast,
            "raised_ms": row[1].timestamp() * 1000,
            "cleared_ms": row[2].timestamp() * 1000,
        }
        return history

    result = run_scenario(
        "replay", console_url, artifacts, {"history": make_history, "publish": feeder.ensure},
        timeout=240,
    )  # fmt: skip
    alarm = history["alarm"]
    assert result["entered"] is True and result["live_canvas_hidden"] is True
    assert set(result["tracks"]) >= {v[0] for v in vehicles}, result["tracks"]
    # Scrubbing: every unit stands where its reports put it at the slider's time.
    for probe in result["probes"]:
        assert probe["error_m"] < 3.0, probe
        assert probe["drawn_error_px"] < 3.0, probe
    # The alarm is on the map and in the list only between its raising and its clearing.
    shown = {p["label"]: p for p in result["alarm_probes"]}
    assert not shown["before"]["in_list"] and not shown["before"]["on_map"]
    assert shown["during"]["in_list"] and shown["during"]["on_map"] and shown["during"]["halo"]
    assert shown["after"]["in_list"] and shown["after"]["cleared"] and not shown["after"]["on_map"]
    # At 60x the replay clock runs 60 times the wall clock, and the alarm appears on time.
    assert 45 <= result["rate_60x"] <= 75, result["rate_60x"]
    assert 0.7 <= result["rate_1x"] <= 1.3, result["rate_1x"]
    assert result["played_to_end"] is True
    # Frame by frame: the alarm shows on the map within two frames of its time (the list one
    # later), never before it; its marker goes within two frames of its clearing.
    frames = result["frames_60x"]
    due = next(i for i, f in enumerate(frames) if f[0] >= alarm["raised_ms"])
    marker = next(i for i, f in enumerate(frames) if f[2])
    listed = next(i for i, f in enumerate(frames) if f[1])
    assert 0 <= marker - due <= 2 and 0 <= listed - due <= 3, (due, marker, listed, frames)
    cleared = next(i for i, f in enumerate(frames) if f[0] >= alarm["cleared_ms"])
    assert not any(f[2] for f in frames[cleared + 2 :]), frames
    assert all(f[1] for f in frames[listed:]), "a cleared alarm stays in the replayed list"
    # Back to live: the live layer, the live alarm list and fresh states.
    assert result["after_exit"]["replay_active"] is False
    assert result["after_exit"]["live_canvas_visible"] is True
    assert result["after_exit"]["bar_hidden"] is True
    assert result["after_exit"]["messages_since"] > 0
    assert result["after_exit"]["list_mode"] == "live"
