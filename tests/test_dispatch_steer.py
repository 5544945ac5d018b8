"""Dispatched units really drive: the platform's orders reach the vehicles' terminals over MQTT.

Everything is real: the throwaway broker with its ACL, the API, an ingest worker, the dispatch
monitor and the simulator with per-device logins. The simulator runs sped up (its clock starts
in the past and runs faster until it meets the wall clock), so a drive of a few minutes of
simulated time takes seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest

from apps.dispatch.monitor import DispatchMonitor
from apps.dispatch.plans import DispatchSettings
from realtime.ingest import IngestWorker
from realtime.mqtt import BrokerAddress, make_client
from realtime.provision import device_credentials, device_password
from sensors.run import SimConfig, Simulator
from sensors.terminal import BadCommand, Terminals, parse_command
from sensors.world import VehicleSpec, World, load_world
from tests.support import wait_until

pytestmark = pytest.mark.services


# --------------------------------------------------------------------------- fixtures


@dataclass
class Fleetside:
    world: World
    url: str
    secret: str
    log_file: Any
    acl_file: Any


@pytest.fixture(scope="module")
def fleetside(reference, db_url, settings, throwaway) -> Fleetside:
    """The reference city with every device's account (and the ACL) on the broker."""
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE ops.incident CASCADE")
        conn.execute("TRUNCATE ops.gps_suspect")
        conn.execute("UPDATE ops.unit SET status = 'available'")
        conn.commit()
        world = load_world(conn)
        accounts = device_credentials(conn, settings.device_secret)
    assert world.roads is not None
    throwaway.mosquitto.write_accounts(accounts)
    throwaway.mosquitto.reload()
    time.sleep(0.3)
    return Fleetside(
        world,
        throwaway.mosquitto.url,
        settings.device_secret,
        throwaway.mosquitto.dir / "mosquitto.log",
        throwaway.mosquitto.acl_file,
    )


class Client:
    """An MQTT login that records what it receives and what the broker answers."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None):
        address = BrokerAddress.parse(url)
        self.client = make_client(url, "test-steer")
        if username is not None:
            self.client.username_pw_set(username, password)
        self.messages: list[tuple[str, bytes, bool]] = []
        self.granted: dict[int, list[Any]] = {}
        self.acks: dict[int, Any] = {}
        self.lock = threading.Lock()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, 5, f"{username or 'platform'} to connect")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any):
        self.granted[mid] = list(reasons)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any):
        self.acks[mid] = reason

    def subscribe(self, topic: str) -> list[Any]:
        _, mid = self.client.subscribe(topic, qos=1)
        return wait_until(lambda: self.granted.get(mid), 5, f"SUBACK for {topic}")  # type: ignore[no-any-return]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> Any:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return wait_until(lambda: self.acks.get(info.mid), 5, f"PUBACK on {topic}")

    def received(self, topic: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def orders(self, topic: str, cmd: str) -> list[dict[str, Any]]:
        """The well-formed commands ``cmd`` received on ``topic``."""
        out = []
        for payload, _ in self.received(topic):
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(body, dict) and body.get("cmd") == cmd and "incident_id" in body:
                out.append(body)
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def topic_of(device_id: str) -> str:
    return f"cz/v1/vehicle/{device_id}/command"


# --------------------------------------------------------------------------- the ACL


def test_a_terminal_reads_its_own_orders_and_nobody_elses(fleetside: Fleetside) -> None:
    own, other = (v.device_id for v in fleetside.world.vehicles[:2])
    platform = Client(fleetside.url)
    device = Client(fleetside.url, own, device_password(fleetside.secret, own))
    try:
        for device_id in (own, other):  # retained orders, waiting for whoever may read them
            reason = platform.publish(topic_of(device_id), b'{"cmd": "release"}', retain=True)
            assert not reason.is_failure
        granted = device.subscribe(topic_of(own))
        assert [r.value for r in granted] == [1]
        wait_until(lambda: device.received(topic_of(own)), 5, "its own retained order")
        # Mosquitto's ACL file does not refuse a SUBSCRIBE; it checks read access on every
        # delivery. Whatever the SUBACK says, nothing of another terminal's reaches this one:
        # neither its retained order nor a new one, and a wildcard does not help.
        device.subscribe(topic_of(other))
        device.subscribe("cz/v1/vehicle/+/command")
        assert not platform.publish(topic_of(other), b'{"cmd": "release", "n": 2}').is_failure
        assert not platform.publish(topic_of(own), b'{"cmd": "release", "n": 3}').is_failure
        wait_until(lambda: len(device.received(topic_of(own))) >= 3, 5, "its own new order")
        time.sleep(0.3)
        assert device.received(topic_of(other)) == []
        assert {t for t, _, _ in device.messages} == {topic_of(own)}
        # A terminal cannot give orders, not even to itself.
        forged = device.publish(topic_of(other), b'{"cmd": "dispatch", "lon": 113, "lat": 36}')
        assert forged.is_failure
        assert device.publish(topic_of(own), b'{"cmd": "release"}').is_failure
    finally:
        for device_id in (own, other):
            platform.publish(topic_of(device_id), b"", retain=True)  # clears the retained order
        device.close()
        platform.close()
    # The broker took the pattern without complaint (it warns of patterns it finds suspect).
    acl = fleetside.acl_file.read_text()
    assert "pattern read cz/v1/+/%u/command" in acl.splitlines()
    warnings = [
        line
        for line in fleetside.log_file.read_text(errors="replace").splitlines()
        if "Warning" in line or "Error" in line
    ]
    assert not [line for line in warnings if "command" in line], warnings


# --------------------------------------------------------------------------- the terminal


def test_parse_command_names_what_is_wrong() -> None:
    topic = topic_of("VEH-1")
    good = parse_command(topic, b'{"cmd": "dispatch", "incident_id": 4, "lon": 113.1, "lat": 36.2}')
    assert (good.device_id, good.cmd, good.incident_id, good.lon, good.lat) == (
        "VEH-1", "dispatch", 4, 113.1, 36.2
    )  # fmt: skip
    for payload, reason in (
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"cmd": "explode"}', "cmd 'explode' is none of dispatch, release"),
        (b'{"cmd": "dispatch", "lat": 36.2}', "lon is missing"),
        (b'{"cmd": "dispatch", "lon": "113", "lat": 36.2}', "lon '113' is not a longitude"),
        (b'{"cmd": "dispatch", "lon": 113, "lat": 95}', "lat 95 is not a latitude"),
        (b'{"cmd": "release", "assignment_id": "7"}', "assignment_id '7' is not an integer"),
        (b'{"cmd": "release", "incident_id": true}', "incident_id True is not an integer"),
        (b"{" + b" " * 5000 + b"}", "more than 4096"),
    ):
        with pytest.raises(BadCommand, match=reason):
            parse_command(topic, payload)
    with pytest.raises(BadCommand, match="not a command topic"):
        parse_command("cz/v1/vehicle/VEH-1/telemetry", b'{"cmd": "release"}')


def test_steps_are_never_recorded_before_the_dispatch() -> None:
    """A sped-up simulator's fixes carry earlier times than the platform's dispatch."""
    from apps.dispatch import lifecycle

    tracker = lifecycle.Tracker(DispatchSettings())
    t0 = 1_700_000_000.0
    tracker.sync([lifecycle.Assignment(1, 2, "U1", "dispatched", t0, 113.1, 36.2)])
    steps: list[lifecycle.Action] = []
    for k in range(60):  # ten minutes behind: drives 600 m east, then waits by the scene
        x = min(k, 30) * 20.0 - 600.0
        lon = 113.1 + x / (111_320.0 * math.cos(math.radians(36.2)))
        steps += tracker.feed(lifecycle.Fix("U1", t0 - 600 + k * 2, lon, 36.2))
    moved = [s for s in steps if isinstance(s, lifecycle.Transition)]
    assert [s.status for s in moved] == ["en_route", "on_scene"]
    assert all(s.ts == t0 for s in moved)


def scene_from(world: World, spec: VehicleSpec, near_m: float, far_m: float) -> tuple[float, float]:
    """A point 20 m off a junction between ``near_m`` and ``far_m`` from the unit's station."""
    roads = world.roads
    assert roads is not None and spec.station is not None
    home = np.array(roads.proj.to_xy(*spec.station), dtype=float)
    d = np.hypot(*(roads.node_xy - home).T)
    near = np.flatnonzero((d > near_m) & (d < far_m))
    assert len(near), "no junction at that distance"
    x, y = roads.node_xy[int(near[len(near) // 2])] + np.array([0.0, 20.0])
    lon, lat = roads.proj.to_lonlat(float(x), float(y))
    return float(lon), float(lat)


def test_terminal_obeys_once_and_only_its_own_release(fleetside: Fleetside) -> None:
    """Retained orders come again on every reconnect: a repeat changes nothing, and a release of
    an older assignment does not end the current one."""
    sim = Simulator(
        fleetside.world,
        SimConfig(vehicles=3, stations=False, moving_fraction=0.0),
        mqtt_url=fleetside.url,
        device_secret=fleetside.secret,
    )
    assert sim.fleet is not None and sim.terminals is not None
    terminals: Terminals = sim.terminals
    spec = next(v.spec for v in sim.fleet.vehicles if v.spec.station is not None)
    lon, lat = scene_from(fleetside.world, spec, 800, 1500)
    topic = topic_of(spec.device_id)
    order = {"cmd": "dispatch", "incident_id": 5, "assignment_id": 9, "lon": lon, "lat": lat}
    assert terminals.handle(topic, orjson.dumps(order)) == "dispatched"
    assert sim.fleet.state(spec.device_id).mode == "dispatch"
    assert sim.fleet.state(spec.device_id).status == "en_route"
    assert terminals.handle(topic, orjson.dumps(order)) == "repeated"
    stale = {"cmd": "release", "incident_id": 2, "assignment_id": 3}
    assert terminals.handle(topic, orjson.dumps(stale)) == "ignored"
    assert sim.fleet.state(spec.device_id).mode == "dispatch"
    assert terminals.handle(topic, b"\xff\xfe") == "bad"
    assert terminals.handle(topic, b"") == "ignored"  # a withdrawn retained order
    release = {"cmd": "release", "incident_id": 5, "assignment_id": 9}
    assert terminals.handle(topic, orjson.dumps(release)) == "released"
    assert sim.fleet.state(spec.device_id).mode in ("returning", "parked")
    assert sim.fleet.state(spec.device_id).status == "available"
    assert terminals.handle(topic, orjson.dumps(release)) == "ignored"  # nothing left to end
    outside = {**order, "assignment_id": 10, "lon": 0.0, "lat": 0.0}  # no road goes there
    assert terminals.handle(topic, orjson.dumps(outside)) == "ignored"
    assert terminals.handle(topic_of("NOT-SIMULATED"), orjson.dumps(order)) == "ignored"
    assert (terminals.obeyed, terminals.bad) == (2, 1)
    sim.pool.close(drain_s=0.0)


# --------------------------------------------------------------------------- end to end


@dataclass
class Platform:
    sim: Simulator
    monitor: DispatchMonitor
    worker: IngestWorker
    spec: VehicleSpec
    scene: tuple[float, float]
    watcher: Client


@pytest.fixture
def platform(fleetside: Fleetside, settings, db_url) -> Iterator[Platform]:
    """An ingest worker, the dispatch monitor and a sped-up simulator of one ambulance."""
    world = fleetside.world
    spec = next(v for v in world.vehicles if v.unit_type == "ambulance" and v.station is not None)
    scene = scene_from(world, spec, 900, 1400)
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE ops.incident CASCADE")
        conn.execute("UPDATE ops.unit SET status = 'available' WHERE id = %s", (spec.unit_id,))
        # Its live state must come from this run's fixes (which carry simulated, earlier times).
        conn.execute("DELETE FROM iot.device_state WHERE device_id = %s", (spec.device_id,))
        conn.commit()
    watcher = Client(fleetside.url)
    watcher.publish(topic_of(spec.device_id), b"", retain=True)  # no order left from before
    watcher.subscribe(topic_of(spec.device_id))
    worker = IngestWorker(settings, f"steer-{time.monotonic_ns()}", batch_wait_s=0.02)
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    worker_thread.start()
    monitor = DispatchMonitor(settings, DispatchSettings(monitor_tick_s=0.2))
    monitor_thread = threading.Thread(
        target=monitor.run, kwargs={"batch_wait_s": 0.05}, daemon=True
    )
    monitor_thread.start()
    # Fifteen minutes of simulated time at 20x: it meets the wall clock after about 47 s.
    sim = Simulator(
        world,
        SimConfig(
            speedup=20,
            start=datetime.now(UTC) - timedelta(minutes=15),
            devices=frozenset({spec.device_id}),
            stations=False,
            moving_fraction=0.0,
            seed=11,
        ),
        mqtt_url=fleetside.url,
        device_secret=fleetside.secret,
    )
    try:
        wait_until(worker.client.is_connected, 10, "the ingest worker")
        wait_until(lambda: monitor.client and monitor.client.is_connected(), 10, "the monitor")
        sim.start()
        link = sim.sources[0].link
        assert link is not None
        wait_until(lambda: link.subscribed, 5, "the terminal to subscribe to its orders")
        yield Platform(sim, monitor, worker, spec, scene, watcher)
    finally:
        sim.stop()
        sim.join(15)
        monitor.stop()
        worker.stop()
        monitor_thread.join(10)
        worker_thread.join(10)
        watcher.publish(topic_of(spec.device_id), b"", retain=True)
        watcher.close()
        with psycopg.connect(db_url) as conn:
            conn.execute("TRUNCATE ops.incident CASCADE")
            conn.execute("UPDATE ops.unit SET status = 'available'")
            conn.execute("DELETE FROM iot.device_state WHERE device_id = %s", (spec.device_id,))
            conn.commit()


def assignment_row(db_url: str, unit_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT a.id, a.dispatched_at, a.en_route_at, a.on_scene_at, a.cleared_at, u.status"
            " FROM ops.assignment a JOIN ops.unit u ON u.id = a.unit_id"
            " WHERE a.unit_id = %s ORDER BY a.id DESC LIMIT 1",
            (unit_id,),
        ).fetchone()


def test_a_dispatched_unit_drives_arrives_and_goes_home(
    platform: Platform, api, admin_headers, db_url, fleetside: Fleetside
) -> None:
    sim, spec = platform.sim, platform.spec
    fleet = sim.fleet
    assert fleet is not None and spec.unit_id is not None
    device = spec.device_id
    started = time.monotonic()
    # The unit is seen at its station by the platform.
    wait_until(
        lambda: assignment_row(db_url, spec.unit_id) is None and _has_state(db_url, device),
        15,
        "the first stored fix of the unit",
    )
    # Malformed orders are logged and ignored; the terminal keeps reporting.
    for bad in (b"not json", b"[]", b'{"cmd": "explode"}', b'{"cmd": "dispatch", "lon": "x"}'):
        platform.watcher.publish(topic_of(device), bad)
    wait_until(lambda: sim.stats.bad_commands == 4, 5, "the malformed orders to arrive")
    assert sim.running and fleet.state(device).mode == "parked"
    sent = sim.stats.messages["vehicle"]
    wait_until(lambda: sim.stats.messages["vehicle"] > sent + 3, 5, "more fixes")

    lon, lat = platform.scene
    r = api.post(
        "/dispatch/incidents",
        json={"incident_type": "medical", "lon": lon, "lat": lat},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    incident_id = r.json()["id"]
    r = api.post(
        f"/dispatch/incidents/{incident_id}/assignments",
        json={"unit_ids": [spec.unit_id]},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    assignment_id = r.json()["assignments"][0]["assignment_id"]
    # The order, retained, as the terminal and anyone with the right to read it sees it.
    order = wait_until(lambda: platform.watcher.orders(topic_of(device), "dispatch"), 5, "order")
    body = order[-1]
    assert body["cmd"] == "dispatch" and body["incident_id"] == incident_id
    assert body["assignment_id"] == assignment_id and body["unit_id"] == spec.unit_id
    assert body["incident_type"] == "medical" and body["priority"] in (1, 2, 3, 4)
    assert math.isclose(body["lon"], lon, abs_tol=1e-6)
    assert math.isclose(body["lat"], lat, abs_tol=1e-6)
    wait_until(lambda: fleet.state(device).mode == "dispatch", 5, "the terminal to obey")

    # Nobody touches the assignment again: GPS alone moves it en route, then on scene.
    row = wait_until(
        lambda: (a := assignment_row(db_url, spec.unit_id)) and a[2] is not None and a,
        30,
        "en route from GPS",
    )
    assert row[3] is None and row[2] >= row[1]
    row = wait_until(
        lambda: (a := assignment_row(db_url, spec.unit_id)) and a[3] is not None and a,
        40,
        "on scene from GPS",
    )
    assert row[5] == "on_scene" and row[4] is None
    state = fleet.state(device)
    assert state.mode == "held"
    roads = fleetside.world.roads
    assert roads is not None
    gap = math.dist(roads.proj.to_xy(state.lon, state.lat), roads.proj.to_xy(lon, lat))
    assert gap < 150  # inside the scene's geofence
    with psycopg.connect(db_url) as conn:
        actors = conn.execute(
            "SELECT event, actor FROM ops.incident_event WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        ).fetchall()
    assert ("en_route", "gps") in actors and ("on_scene", "gps") in actors

    # Closing releases it: the retained order becomes the release, and it drives home.
    r = api.post(f"/dispatch/incidents/{incident_id}/close", json={}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["cleared_assignments"] == [assignment_id]
    release = wait_until(
        lambda: platform.watcher.orders(topic_of(device), "release"), 5, "the release"
    )
    assert release[-1] | {"ts": None} == {
        "cmd": "release",
        "incident_id": incident_id,
        "assignment_id": assignment_id,
        "unit_id": spec.unit_id,
        "reason": "closed",
        "ts": None,
    }
    wait_until(lambda: fleet.state(device).mode == "returning", 5, "the unit to head home")
    wait_until(lambda: fleet.state(device).mode == "parked", 30, "the unit back at its station")
    home = roads.proj.to_xy(*spec.station)  # type: ignore[misc]
    back = fleet.state(device)
    assert math.dist(roads.proj.to_xy(back.lon, back.lat), home) < 5
    assert back.status == "available"
    late = Client(fleetside.url)  # a terminal that reconnects now is told it is released
    try:
        late.subscribe(topic_of(device))
        retained = wait_until(lambda: late.received(topic_of(device)), 5, "the retained order")
        assert orjson.loads(retained[0][0])["cmd"] == "release" and retained[0][1] is True
    finally:
        late.close()
    assert sim.stats.failed == 0 and not sim.stats.refused_logins
    assert time.monotonic() - started < 60


def _has_state(db_url: str, device_id: str) -> bool:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT 1 FROM iot.device_state WHERE device_id = %s", (device_id,)
        ).fetchone()
    return row is not None


# --------------------------------------------------------------------------- other releases


def test_operator_clearing_and_gps_return_release_the_terminal(
    fleetside: Fleetside, api, admin_headers, db_url, settings
) -> None:
    """No simulator here: what the broker keeps for the terminal after each kind of release."""
    from apps.dispatch import incidents, lifecycle

    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE ops.incident CASCADE")
        conn.execute("UPDATE ops.unit SET status = 'available'")
        conn.commit()
    spec = next(v for v in fleetside.world.vehicles if v.unit_type == "patrol" and v.station)
    assert spec.unit_id is not None
    topic = topic_of(spec.device_id)
    lon, lat = scene_from(fleetside.world, spec, 500, 1000)

    def dispatch() -> int:
        r = api.post(
            "/dispatch/incidents",
            json={"incident_type": "medical", "lon": lon, "lat": lat},
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        r = api.post(
            f"/dispatch/incidents/{r.json()['id']}/assignments",
            json={"unit_ids": [spec.unit_id]},
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        return int(r.json()["assignments"][0]["assignment_id"])

    def retained() -> dict[str, Any]:
        """What a terminal connecting now is told first."""
        late = Client(
            fleetside.url, spec.device_id, device_password(fleetside.secret, spec.device_id)
        )
        try:
            late.subscribe(topic)
            payload, was_retained = wait_until(lambda: late.received(topic), 5, "retained")[0]
            assert was_retained
            return orjson.loads(payload)  # type: ignore[no-any-return]
        finally:
            late.close()

    platform = Client(fleetside.url)
    try:
        first = dispatch()
        assert retained()["cmd"] == "dispatch" and retained()["assignment_id"] == first
        r = api.post(
            f"/dispatch/assignments/{first}/status",
            json={"status": "cleared"},
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text
        order = retained()
        assert (order["cmd"], order["reason"], order["assignment_id"]) == (
            "release", "cleared", first
        )  # fmt: skip
        # An operator's other steps send nothing; a refused step sends nothing either.
        second = dispatch()
        r = api.post(
            f"/dispatch/assignments/{second}/status",
            json={"status": "on_scene"},
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text
        r = api.post(
            f"/dispatch/assignments/{second}/status",
            json={"status": "en_route"},
            headers=admin_headers,
        )
        assert r.status_code == 409, r.text
        assert retained()["cmd"] == "dispatch" and retained()["assignment_id"] == second
        # Back at the station, seen by GPS: the monitor clears it and releases the terminal.
        monitor = DispatchMonitor(settings)
        monitor.client = platform.client
        with psycopg.connect(db_url) as conn:
            incident_id = conn.execute(
                "SELECT incident_id FROM ops.assignment WHERE id = %s", (second,)
            ).fetchone()[0]
            step = lifecycle.Transition(
                second, incident_id, spec.unit_id, "cleared", time.time(), lon, lat
            )
            messages = monitor.apply(conn, [step])
            conn.commit()
        monitor._announce(messages)
        order = retained()
        assert (order["cmd"], order["reason"], order["assignment_id"]) == (
            "release", "returned", second
        )  # fmt: skip
        with psycopg.connect(db_url) as conn:
            assert incidents.get_incident(conn, incident_id)["closed_at"] is None
    finally:
        platform.publish(topic, b"", retain=True)
        platform.close()
        with psycopg.connect(db_url) as conn:
            conn.execute("TRUNCATE ops.incident CASCADE")
            conn.execute("UPDATE ops.unit SET status = 'available'")
            conn.commit()


def test_the_monitor_restates_every_terminals_order_when_it_connects(
    fleetside: Fleetside, db_url, settings, boss_actor
) -> None:
    """Orders the database no longer has (the incidents were wiped) are withdrawn; orders it
    has that the broker lost are published again."""
    from apps.dispatch import incidents

    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE ops.incident CASCADE")
        conn.execute("UPDATE ops.unit SET status = 'available'")
        conn.commit()
    patrols = [v for v in fleetside.world.vehicles if v.unit_type == "patrol" and v.station]
    wiped, live, ended = patrols[:3]
    lon, lat = scene_from(fleetside.world, live, 500, 1000)
    platform = Client(fleetside.url)
    monitor = DispatchMonitor(settings, DispatchSettings(monitor_tick_s=0.2))
    thread = threading.Thread(target=monitor.run, kwargs={"batch_wait_s": 0.05}, daemon=True)
    try:
        stale = {"cmd": "dispatch", "incident_id": 999999, "assignment_id": 999999}
        platform.publish(topic_of(wiped.device_id), orjson.dumps(stale), retain=True)
        platform.publish(topic_of(live.device_id), b"", retain=True)
        platform.publish(topic_of(ended.device_id), b"", retain=True)
        with psycopg.connect(db_url) as conn:  # behind the broker's back: nothing published
            actor = incidents.Actor(boss_actor)
            inc = incidents.create_incident(conn, actor, incident_type="medical", lon=lon, lat=lat)
            made = incidents.assign(conn, actor, inc["id"], [live.unit_id, ended.unit_id])
            by_unit = {m["unit_id"]: m["assignment_id"] for m in made}
            incidents.transition(conn, actor, by_unit[ended.unit_id], "cleared")
            conn.commit()
        thread.start()
        wait_until(lambda: monitor.counters["orders"] > 0, 10, "the monitor to restate orders")
        listener = Client(fleetside.url)
        try:
            for spec in (wiped, live, ended):
                listener.subscribe(topic_of(spec.device_id))
            time.sleep(0.5)
            assert listener.received(topic_of(wiped.device_id)) == []  # withdrawn
            got = listener.orders(topic_of(live.device_id), "dispatch")
            assert [o["assignment_id"] for o in got] == [by_unit[live.unit_id]]
            got = listener.orders(topic_of(ended.device_id), "release")
            assert [(o["assignment_id"], o["reason"]) for o in got] == [
                (by_unit[ended.unit_id], "cleared")
            ]
        finally:
            listener.close()
    finally:
        monitor.stop()
        thread.join(10)
        for spec in (wiped, live, ended):
            platform.publish(topic_of(spec.device_id), b"", retain=True)
        platform.close()
        with psycopg.connect(db_url) as conn:
            conn.execute("TRUNCATE ops.incident CASCADE")
            conn.execute("UPDATE ops.unit SET status = 'available'")
            conn.commit()


@pytest.fixture(scope="module")
def boss_actor(db_url: str, fleetside: Fleetside) -> Any:
    """A supervisor, for calling the dispatch domain directly."""
    import secrets

    from gis_core.identity import create_user, load_principal

    with psycopg.connect(db_url) as conn:
        user_id = create_user(
            conn,
            username=f"steer-boss-{secrets.token_hex(3)}",
            password="steer-pass-1",
            roles=["supervisor"],
            department="command",
        )
        conn.commit()
        principal = load_principal(conn, user_id)
    assert principal is not None
    return principal


def test_shared_login_runs_take_orders_through_the_platform_account(fleetside: Fleetside) -> None:
    sim = Simulator(
        fleetside.world,
        SimConfig(vehicles=3, stations=False, moving_fraction=0.0, shared_login=True),
        mqtt_url=fleetside.url,
        device_secret=fleetside.secret,
    )
    assert sim.fleet is not None
    listening = [link for link in sim.pool.links if link.subscriptions]
    assert [link.subscriptions for link in listening] == [("cz/v1/vehicle/+/command",)]
    spec = next(v.spec for v in sim.fleet.vehicles if v.spec.station is not None)
    lon, lat = scene_from(fleetside.world, spec, 800, 1500)
    platform = Client(fleetside.url)
    sim.start()
    try:
        wait_until(lambda: listening[0].subscribed, 5, "the shared login to subscribe")
        order = {"cmd": "dispatch", "incident_id": 1, "assignment_id": 1, "lon": lon, "lat": lat}
        platform.publish(topic_of(spec.device_id), orjson.dumps(order))
        # Another run's vehicle: not simulated here, ignored without a fuss.
        platform.publish(topic_of("VEH-OF-ANOTHER-RUN"), orjson.dumps(order))
        wait_until(lambda: sim.stats.commands == 2, 5, "both orders")
        assert sim.fleet.state(spec.device_id).mode == "dispatch"
        assert sim.stats.bad_commands == 0 and sim.running
    finally:
        sim.stop()
        assert sim.join(10)
        platform.close()


def test_a_simulate_process_boots_into_its_retained_order(
    fleetside: Fleetside, db_url: str, tmp_path: Any
) -> None:
    """`changzhi simulate` as its own process (as `changzhi up` runs it): a terminal that boots
    is told its standing order by the broker, drives there, and goes home when released."""
    import subprocess
    import sys

    from gis_core.crs import gcj02_to_wgs84

    spec = fleetside.world.vehicles[0]
    assert spec.station is not None
    roads = fleetside.world.roads
    assert roads is not None
    lon, lat = scene_from(fleetside.world, spec, 800, 1300)
    topic = topic_of(spec.device_id)
    platform = Client(fleetside.url)
    platform.subscribe(f"cz/v1/vehicle/{spec.device_id}/telemetry")
    order = {"cmd": "dispatch", "incident_id": 77, "assignment_id": 78, "lon": lon, "lat": lat}
    platform.publish(topic, orjson.dumps(order), retain=True)  # before the terminal boots
    env = {
        "PATH": "/usr/bin:/bin",
        "CHANGZHI_DATABASE_URL": db_url,
        "CHANGZHI_MQTT_URL": fleetside.url,
        "CHANGZHI_AUTH_DEVICE_SECRET": fleetside.secret,
        "CHANGZHI_VAR_DIR": str(tmp_path),
    }
    args = ["--vehicles", "1", "--no-stations", "--moving", "0", "--speedup", "20"]
    with (tmp_path / "simulate.out").open("w") as out, (tmp_path / "simulate.err").open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "apps.platform.cli", "simulate", *args, "--duration", "40"],
            env=env,
            stdout=out,
            stderr=err,
        )

    def fixes() -> list[dict[str, Any]]:
        return [
            orjson.loads(p)
            for p, _ in platform.received(f"cz/v1/vehicle/{spec.device_id}/telemetry")
        ]

    def metres_from(fix: dict[str, Any], lon0: float, lat0: float) -> float:
        flon, flat = fix["lon"], fix["lat"]
        if fix.get("crs") == "GCJ02":
            flon, flat = gcj02_to_wgs84(flon, flat)
        return math.dist(roads.proj.to_xy(flon, flat), roads.proj.to_xy(lon0, lat0))

    try:
        wait_until(lambda: any(f.get("status") == "en_route" for f in fixes()), 30, "it to set off")
        stopped = wait_until(
            lambda: [
                f for f in fixes()[-3:] if f["speed_kmh"] == 0 and metres_from(f, lon, lat) < 60
            ],
            30,
            "it to stop at the scene",
        )
        assert "status" not in stopped[-1]  # on scene is the platform's call, not the terminal's
        release = {"cmd": "release", "incident_id": 77, "assignment_id": 78}
        platform.publish(topic, orjson.dumps(release), retain=True)
        wait_until(
            lambda: [f for f in fixes()[-2:] if metres_from(f, *spec.station) < 20],  # type: ignore[misc]
            30,
            "it to be back at its station",
        )
        assert fixes()[-1]["status"] == "available"
    finally:
        process.terminate()
        process.wait(20)
        platform.publish(topic, b"", retain=True)
        platform.close()
    assert process.returncode in (0, -15), (tmp_path / "simulate.err").read_text()
