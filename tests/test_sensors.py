"""Field-sensor simulators against the real throwaway broker and the reference dataset.

Each simulated device logs in with its own provisioned account; a listener with the platform
account records everything published, and every reading must pass the platform's validator.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
import typer
from typer.testing import CliRunner

from apps.platform.services import free_port
from gis_core.crs import gcj02_to_wgs84
from gis_core.settings import get_settings
from realtime.mqtt import BrokerAddress, make_client
from realtime.provision import device_credentials, gateway_ids, register_gateway
from realtime.readings import Parsed, limits_for, parse_message
from sensors.cli import register
from sensors.clock import SimClock
from sensors.replay import load_replay
from sensors.run import SimConfig, Simulator
from sensors.scenarios import Environment
from sensors.stations import StationModel, build_stations, model_class
from sensors.world import World, load_world, station_kinds
from tests.support import wait_until

REPO = Path(__file__).resolve().parents[1]
CITY = json.loads((REPO / "data" / "changzhi" / "city.json").read_text())
LIMITS = limits_for(CITY)


@dataclass
class City:
    world: World
    kinds: dict[str, str]  # device id -> kind, the registry
    url: str
    secret: str
    stations_poi: list[tuple[float, float]] = field(default_factory=list)

    def simulator(self, **options: Any) -> Simulator:
        return Simulator(
            self.world, SimConfig(**options), mqtt_url=self.url, device_secret=self.secret
        )


@pytest.fixture(scope="module")
def city(reference, db_url, settings, throwaway) -> City:
    with psycopg.connect(db_url) as conn:
        # The storm's gauges report through a gateway, registered with them behind it.
        gauges = conn.execute(
            "SELECT id FROM iot.device WHERE kind IN ('rain', 'water_level')"
        ).fetchall()
        register_gateway(conn, "GW-1", [g for (g,) in gauges])
        conn.commit()
        world = load_world(conn)
        kinds = dict(conn.execute("SELECT id, kind FROM iot.device").fetchall())
        accounts = device_credentials(conn, settings.device_secret)
        gateways = gateway_ids(conn)
        stations = conn.execute(
            "SELECT ST_X(p.geom), ST_Y(p.geom) FROM ref.poi p"
            " WHERE p.id IN (SELECT station_poi_id FROM ops.unit)"
        ).fetchall()
    assert world.roads is not None and world.vehicles and world.stations
    throwaway.mosquitto.write_accounts(accounts, gateways)
    throwaway.mosquitto.reload()
    # Earlier tests wiped incidents behind the platform's back: their retained orders to the
    # terminals must not steer these vehicles.
    platform = make_client(throwaway.mosquitto.url, "test-orders")
    address = BrokerAddress.parse(throwaway.mosquitto.url)
    platform.connect(address.host, address.port)
    platform.loop_start()
    sent = [
        platform.publish(f"cz/v1/vehicle/{v.device_id}/command", b"", qos=1, retain=True)
        for v in world.vehicles
    ]
    for info in sent:
        info.wait_for_publish(10)
    platform.disconnect()
    platform.loop_stop()
    time.sleep(0.3)
    return City(world, kinds, throwaway.mosquitto.url, settings.device_secret, stations)


class Recorder:
    """The platform's view: everything published under the given filters."""

    def __init__(self, url: str, *filters: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = make_client(url, "test-listen")
        self.client.on_message = self._on_message
        address = BrokerAddress.parse(url)
        self.client.connect(address.host, address.port)
        for f in filters or ("cz/v1/#", "owntracks/#"):
            self.client.subscribe(f, qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def settle(self, quiet_s: float = 0.4, timeout: float = 10.0) -> None:
        """Wait until nothing has arrived for ``quiet_s``: the broker has delivered it all."""
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline and count != len(self.messages):
            count = len(self.messages)
            time.sleep(quiet_s)

    def live(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p, retained in self.messages if not retained]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def recorder(city: City) -> Iterator[Recorder]:
    rec = Recorder(city.url)
    yield rec
    rec.close()


def run(sim: Simulator, recorder: Recorder) -> None:
    """Run to the end of its duration, then let the last acknowledged messages arrive."""
    sim.start()
    assert sim.join(60), "the run did not end"
    recorder.settle()
    assert sim.stats.failed == 0, "the broker refused publishes (ACL)"
    assert sim.stats.dropped == 0
    assert not sim.stats.refused_logins


def parse(city: City, topic: str, payload: bytes) -> Parsed:
    behind = {s.device_id: s.gateway_id for s in city.world.stations if s.gateway_id}
    return parse_message(
        topic,
        payload,
        kinds=lambda d: "gateway" if d in behind.values() else city.kinds.get(d),
        now=datetime.now(UTC),
        limits=LIMITS,
        gateways=behind.get,
    )


def readings_by_device(city: City, messages: list[tuple[str, bytes]]) -> dict[str, list[Any]]:
    """Every telemetry message validated; the readings per device in arrival order."""
    out: dict[str, list[Any]] = defaultdict(list)
    for topic, payload in messages:
        if topic.endswith("/status"):
            continue
        parsed = parse(city, topic, payload)
        assert not parsed.rejects, (topic, payload[:300], parsed.rejects)
        assert parsed.readings, topic
        for reading in parsed.readings:
            out[reading.device_id].append(reading)
    return out


def metres(city: City, lon: float, lat: float) -> tuple[float, float]:
    assert city.world.roads is not None
    x, y = city.world.roads.proj.to_xy(lon, lat)
    return float(x), float(y)


# --------------------------------------------------------------------------- pure parts


def test_each_kind_names_its_model_and_sensors_holds_none_of_the_applications() -> None:
    """A kind's ``simulator`` resolves to a StationModel of that kind in its own application's
    folder; the ones the applications brought are no longer in the shared package."""
    import sensors.stations
    from gis_core.application import installed

    apps = installed("all")
    where = {kind.name: kind.simulator for kind in apps.kinds.values() if kind.simulator}
    assert {"air", "emission", "soil", "water_quality", "signal"} <= set(where)
    for kind, spec in where.items():
        cls = model_class(kind)
        assert cls is not None and issubclass(cls, StationModel) and cls.kind == kind, spec
    moved = {
        "air": "apps.environment.stations",
        "emission": "apps.environment.stations",
        "soil": "apps.water.stations",
        "water_quality": "apps.water.stations",
        "signal": "apps.traffic.stations",
    }
    assert {k: model_class(k).__module__ for k in moved} == moved  # type: ignore[union-attr]
    for name in ("AirStation", "EmissionStation", "SoilProbe", "WaterQualityStation"):
        assert not hasattr(sensors.stations, name)
    assert not hasattr(sensors.stations, "SignalController")
    assert model_class("no_such_kind") is None


def test_sped_up_clock_never_runs_ahead_of_the_wall() -> None:
    wall = [1_000_000.0]
    clock = SimClock(speedup=60, horizon_s=10, wall=lambda: wall[0])
    assert clock.sim0 == pytest.approx(1_000_000 - 590)
    wall[0] += 5
    assert clock.now() == pytest.approx(1_000_000 - 590 + 300)
    wall[0] += 100  # past the horizon: real time from here on
    assert clock.now() == pytest.approx(wall[0])
    assert clock.wall_at(clock.sim0 + 300) == pytest.approx(1_000_005)


def test_storm_band_passes_and_other_scenarios_stay_dry() -> None:
    bbox = tuple(CITY["bbox"])
    storm = Environment("storm", 0.0, bbox, seed=1)  # type: ignore[arg-type]
    lon, lat = CITY["center"]
    rain = [storm.rain_rate(t, lon, lat) for t in range(0, 4 * 3600, 60)]
    assert max(rain) > 30 and rain[-1] < 0.5 and rain[0] < 0.5
    total = storm.rain_between(0, 4 * 3600, lon, lat)
    assert 5 < total < 80
    drought = Environment("drought", 0.0, bbox, seed=1)  # type: ignore[arg-type]
    assert drought.rain_between(0, 86400, lon, lat) == 0
    with pytest.raises(ValueError, match="unknown scenario"):
        Environment("hurricane", 0.0, bbox)  # type: ignore[arg-type]


def test_drought_dries_the_soil_and_an_inversion_fouls_the_air(city: City) -> None:
    t0 = time.time() - 86400.0
    bbox = city.world.bbox
    assert bbox is not None
    for scenario, kind, check in (
        ("drought", "soil", lambda m, v: v["vwc_pct"] < m.threshold),
        ("pollution", "air", lambda m, v: v["pm25"] > 150),
        ("normal", "air", lambda m, v: v["pm25"] > 150),
    ):
        env = Environment(scenario, t0, bbox, seed=5)
        models = [m for m in build_stations(city.world.stations, env, 5) if m.kind == kind]
        assert models
        hits = 0
        for model in models:
            # Two simulated hours, a reading every ten minutes.
            values = [model.read(t0 + k * 600.0, 600.0) for k in range(1, 13)]
            hits += check(model, values[-1])
        if scenario == "normal":
            assert hits < len(models) / 2  # a heavy episode is rare in ordinary weather
        else:
            assert hits == len(models), (scenario, hits, len(models))


# --------------------------------------------------------------------------- runs


def test_normal_run_validates_and_vehicles_drive_on_roads(city: City, recorder: Recorder) -> None:
    sim = city.simulator(speedup=10, duration_s=5, moving_fraction=0.5, seed=7)
    run(sim, recorder)
    by_device = readings_by_device(city, recorder.live())
    # Every installed kind the simulator has a model of, and the vehicles.
    assert {city.kinds[d] for d in by_device} == {"vehicle", *station_kinds()}
    assert {"air", "emission", "water_level", "rain", "soil", "water_quality", "signal"} <= set(
        station_kinds()
    )
    # ts are simulated time with the China offset, seq counts up per device
    for topic, payload in recorder.live():
        if topic.endswith("/telemetry"):
            assert orjson.loads(payload)["ts"].endswith("+08:00")
    for device_id, readings in by_device.items():
        seqs = [r.seq for r in readings]
        assert seqs == sorted(set(seqs)), device_id
    # GCJ-02 terminals say so; their positions convert back onto the roads
    crs = {v.device_id: v.crs for v in city.world.vehicles}
    raw: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for topic, payload in recorder.live():
        parts = topic.split("/")
        if parts[2] == "vehicle" and parts[4] == "telemetry":
            raw[parts[3]].append(orjson.loads(payload))
    assert any(crs[d] == "GCJ02" for d in raw) and any(crs[d] == "WGS84" for d in raw)
    for device_id, fixes in raw.items():
        expected = "GCJ02" if crs[device_id] == "GCJ02" else None
        assert {f.get("crs") for f in fixes} == {expected}, device_id
    roads = city.world.roads
    assert roads is not None
    stations = [metres(city, lon, lat) for lon, lat in city.stations_poi]
    off_road: list[float] = []
    implied: list[float] = []
    moving = 0
    for fixes in raw.values():
        previous = None
        for fix in fixes:
            lon, lat = fix["lon"], fix["lat"]
            if fix.get("crs") == "GCJ02":
                lon, lat = gcj02_to_wgs84(lon, lat)
            x, y = metres(city, lon, lat)
            t = datetime.fromisoformat(fix["ts"]).timestamp()
            assert 0 <= fix["speed_kmh"] <= 130 and 0 <= fix["heading_deg"] < 360
            if fix["speed_kmh"] > 0:
                moving += 1
                # Yards and access tracks at the stations are off the network.
                if min(math.hypot(x - sx, y - sy) for sx, sy in stations) > 150:
                    off_road.append(roads.distance_to_road(x, y))
            if previous is not None and t > previous[2]:
                implied.append(math.hypot(x - previous[0], y - previous[1]) / (t - previous[2]))
            previous = (x, y, t)
    assert moving > 100
    assert max(off_road) < 60 and float(np.median(off_road)) < 10
    assert max(implied) * 3.6 < 160  # km/h between consecutive fixes, GPS noise included
    assert float(np.percentile(implied, 90)) * 3.6 > 20  # and they do drive
    # The Last Will was not triggered by the clean stop: the retained status stays online.
    device = sorted(by_device)[0]
    later = Recorder(city.url, f"cz/v1/+/{device}/status")
    try:
        wait_until(lambda: later.messages, 5, "the retained status")
        assert later.messages == [(f"cz/v1/{city.kinds[device]}/{device}/status", b"online", True)]
    finally:
        later.close()
    statuses = [p for t, p in recorder.live() if t.endswith("/status")]
    assert statuses and set(statuses) == {b"online"}


def test_storm_through_a_gateway_takes_gauges_past_warning(city: City, recorder: Recorder) -> None:
    sim = city.simulator(
        scenario="storm",
        speedup=900,
        duration_s=5,
        vehicles=0,
        kinds=frozenset({"rain", "water_level"}),
        gateway=True,
        seed=3,
    )
    run(sim, recorder)
    live = recorder.live()
    telemetry = [t for t, _ in live if t.endswith("/telemetry")]
    assert telemetry and set(telemetry) == {"cz/v1/gateway/GW-1/telemetry"}
    by_device = readings_by_device(city, live)
    thresholds = {s.device_id: s.thresholds for s in city.world.stations}
    rain = [r.values["mm"] for d, rs in by_device.items() for r in rs if city.kinds[d] == "rain"]
    assert max(rain) >= 2.0  # a five-minute gauge in the core of the band
    above_warning = above_danger = 0
    for device_id, readings in by_device.items():
        if city.kinds[device_id] != "water_level":
            continue
        levels = [r.values["level_m"] for r in readings]
        warning, danger = thresholds[device_id]["warning_m"], thresholds[device_id]["danger_m"]
        assert levels[0] < warning  # a normal river before the storm
        above_warning += max(levels) > warning
        above_danger += max(levels) > danger
        assert levels[-1] < max(levels)  # and it recedes
    assert above_warning >= 1 and above_danger >= 1


def test_send_to_drives_over_the_network_and_stops_by_the_point(
    city: City, recorder: Recorder
) -> None:
    sim = city.simulator(speedup=60, duration_s=0, vehicles=4, stations=False, moving_fraction=0)
    roads = city.world.roads
    assert roads is not None and sim.fleet is not None
    sim.start()
    try:
        vehicle = sim.fleet.vehicles[0]
        unit = vehicle.spec.unit_id or vehicle.spec.device_id
        # A junction 1.5-2.5 km from the station, with a point 20 m off the road by it.
        d = np.hypot(*(roads.node_xy - np.array(vehicle.home)).T)
        near = np.flatnonzero((d > 1500) & (d < 2500))
        assert len(near)
        target_xy = roads.node_xy[int(near[0])] + np.array([0.0, 20.0])
        lon, lat = roads.proj.to_lonlat(*target_xy)
        trip = sim.fleet.send_to(unit, lon, lat)
        assert trip.distance_m > 1000 and trip.eta_s > 30
        wait_until(lambda: sim.fleet.state(unit).mode == "held", 30, "the vehicle to stop")  # type: ignore[union-attr]
        time.sleep(0.5)  # a few fixes at the scene
    finally:
        sim.stop()
        assert sim.join(10)
    recorder.settle()
    device = vehicle.spec.device_id
    fixes = [
        orjson.loads(p) for t, p in recorder.live() if t == f"cz/v1/vehicle/{device}/telemetry"
    ]
    readings_by_device(city, [(f"cz/v1/vehicle/{device}/telemetry", orjson.dumps(fixes))])
    statuses = [f.get("status") for f in fixes]
    assert "en_route" in statuses
    assert statuses[-1] is None  # at the scene: on_scene is the platform's call
    last = fixes[-1]
    lon_l, lat_l = (
        gcj02_to_wgs84(last["lon"], last["lat"])
        if last.get("crs") == "GCJ02"
        else (last["lon"], last["lat"])
    )
    gap = math.hypot(*(np.array(metres(city, lon_l, lat_l)) - target_xy))
    assert gap < 30 and last["speed_kmh"] == 0
    en_route = [f for f in fixes if f.get("status") == "en_route" and f["speed_kmh"] > 10]
    assert max(f["speed_kmh"] for f in en_route) > 25


def test_shared_login_publishes_for_each_device(city: City, recorder: Recorder) -> None:
    sim = city.simulator(
        speedup=5, duration_s=2, vehicles=3, kinds=frozenset({"air"}), shared_login=True
    )
    run(sim, recorder)
    assert sim.pool.counts() == {"closed": 4}  # four platform connections, no device login
    by_device = readings_by_device(city, recorder.live())
    assert sum(city.kinds[d] == "vehicle" for d in by_device) == 3
    assert any(city.kinds[d] == "air" for d in by_device)


def test_replay_publishes_in_order_and_reports_bad_rows(
    city: City, recorder: Recorder, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    air = next(s.device_id for s in city.world.stations if s.kind == "air")
    signal = next(s.device_id for s in city.world.stations if s.kind == "signal")
    car = city.world.vehicles[0].device_id
    t0 = datetime(2024, 7, 1, 8, 0)  # long ago: --retime brings it to now
    lines = [
        "ts,device_id,kind,pm25,pm10,lon,lat,speed_kmh,mode,phase,fault",
        f"{(t0 + timedelta(seconds=60)).isoformat()},{car},vehicle,,,113.1,36.2,35,,,",
        f"{t0.isoformat()},{air},air,41,77,,,,,,",
        f"{(t0 + timedelta(seconds=90)).isoformat()},{air},air,lots,80,,,,,,",
        f"{(t0 + timedelta(seconds=120)).isoformat()},{signal},signal,,,,,,fixed,2,",
        "yesterday,D-NOPE,air,1,2,,,,,,",
        f"{(t0 + timedelta(seconds=180)).isoformat()},{air},air,44,80,,,,,,",
        f"{(t0 + timedelta(seconds=240)).isoformat()},{car},vehicle,,,113.101,36.201,20,,,",
    ]
    path = tmp_path / "recorded.csv"
    path.write_text("\n".join(lines) + "\n")
    plan = load_replay(path)
    assert [b.line for b in plan.bad] == [4, 6]
    assert plan.bad[0].reason.startswith("pm25: 'lots' is not a number")
    assert "ts 'yesterday' is neither ISO 8601" in plan.bad[1].reason
    result = invoke(cli_env, "--replay", str(path), "--speedup", "60", "--retime")
    assert result.exit_code == 0, result.output
    assert "skipped line 4: pm25: 'lots' is not a number" in result.output
    assert "skipped line 6: ts 'yesterday'" in result.output
    recorder.settle()
    published = [
        (t.split("/")[3], orjson.loads(p)) for t, p in recorder.live() if t.endswith("/telemetry")
    ]
    readings_by_device(
        city, [(f"cz/v1/{city.kinds[d]}/{d}/telemetry", orjson.dumps(b)) for d, b in published]
    )
    assert [d for d, _ in published] == [air, car, signal, air, car]
    stamps = [datetime.fromisoformat(b["ts"]) for _, b in published]
    assert stamps == sorted(stamps)
    assert (stamps[-1] - stamps[0]).total_seconds() == pytest.approx(240, abs=0.01)
    assert abs((datetime.now(UTC) - stamps[-1]).total_seconds()) < 60  # retimed to now
    assert published[2][1] == {
        "ts": published[2][1]["ts"], "seq": 1, "mode": "fixed", "phase": 2, "fault": None
    }  # fmt: skip
    assert [b["seq"] for d, b in published if d == air] == [1, 2]


# --------------------------------------------------------------------------- the command


@pytest.fixture
def cli_env(city: City, db_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        "CHANGZHI_DATABASE_URL": db_url,
        "CHANGZHI_MQTT_URL": city.url,
        "CHANGZHI_AUTH_DEVICE_SECRET": city.secret,
        "CHANGZHI_VAR_DIR": str(tmp_path),
    }
    get_settings.cache_clear()  # the command reads its settings from these
    yield env
    get_settings.cache_clear()


def invoke(env: dict[str, str], *args: str) -> Any:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app.command("noop")(lambda: None)  # a group, so "simulate" stays a subcommand
    return CliRunner().invoke(app, ["simulate", *args], env=env)


def test_command_runs_and_reports(cli_env: dict[str, str], recorder: Recorder) -> None:
    result = invoke(
        cli_env, "--duration", "2", "--speedup", "60", "--vehicles", "2", "--kinds", "signal"
    )
    assert result.exit_code == 0, result.output
    recorder.settle()
    assert "vehicle" in result.output and "signal" in result.output
    assert any(t.startswith("cz/v1/signal/") for t, _ in recorder.live())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "hurricane"], "unknown scenario 'hurricane'"),
        (["--replay", "/nonexistent/recorded.csv"], "cannot read the replay file"),
        (["--kinds", "air,radar"], "unknown station kind radar"),
        (["--speedup", "0"], "--speedup must be positive"),
        (["--vehicles", "1", "--no-stations", "--broker", "down"], "cannot reach the MQTT broker"),
    ],
)
def test_command_refuses_bad_options_in_one_line(
    cli_env: dict[str, str], args: list[str], message: str
) -> None:
    if args[-2:] == ["--broker", "down"]:
        cli_env = {**cli_env, "CHANGZHI_MQTT_URL": f"mqtt://x:y@127.0.0.1:{free_port()}"}
        args = args[:-2]
    result = invoke(cli_env, *args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("changzhi: ") and message in result.output, result.output
