"""A simulation run: the devices, their logins, their schedule, and the loop that publishes.

One thread does all the work: it keeps a heap of the next reading due from every device (in
simulated time), produces each reading when it falls due, publishes it through the device's
login (or a gateway's, or the shared platform account's), and between readings drives the
MQTT sockets (:mod:`sensors.transport`). Each vehicle's login also listens to its own command
topic, and its terminal (:mod:`sensors.terminal`) obeys the platform's dispatch and release
orders; in-process code may steer vehicles too, through :attr:`Simulator.fleet`.

Examples
--------
>>> config = SimConfig(scenario="storm", speedup=60, duration_s=120)  # doctest: +SKIP
>>> sim = Simulator.from_settings(get_settings(), config)  # doctest: +SKIP
>>> sim.start(); sim.join()  # doctest: +SKIP
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from realtime.provision import device_password
from sensors.clock import SimClock, iso
from sensors.fleet import Fleet, Vehicle
from sensors.replay import ReplayPlan, ReplayRow, load_replay
from sensors.roads import Projection
from sensors.scenarios import SCENARIOS, Environment, StormBand
from sensors.stations import StationModel, build_stations
from sensors.terminal import Terminals
from sensors.transport import BrokerUnreachable, Link, Pool
from sensors.world import World, load_world

__all__ = ["SimConfig", "Simulator", "SimulatorError", "Stats", "start_simulator"]

log = logging.getLogger(__name__)

# The platform keeps 30 days; a sped-up run must not start further back than that.
MAX_LOOKBACK_S = 29 * 86400.0
DEFAULT_HORIZON_S = 3600.0
BATCH_PER_TURN = 2000  # readings produced before the sockets get a turn
GATEWAY_FLUSH_S = 1.0
GATEWAY_MAX_READINGS = 500
CHANGZHI_BBOX = (111.978457, 35.822762, 113.730044, 37.124709)


class SimulatorError(RuntimeError):
    """A run that cannot start; the message says why, in one line."""


@dataclass
class SimConfig:
    """Options of a run (the ``changzhi simulate`` options).

    Attributes
    ----------
    scenario
        ``normal``, ``storm``, ``drought`` or ``pollution``.
    speedup
        Simulated seconds per wall second.
    vehicles
        Use the first N vehicle terminals (None: all; 0: none).
    stations
        Simulate the fixed stations.
    kinds
        Only these station kinds (None: all).
    rate_hz
        Reports per wall second per device instead of each device's registered interval.
    duration_s
        Wall seconds to run (0: until stopped).
    gateway
        Publish the readings of the stations registered behind a gateway in batches through
        that gateway's login (the others on their own).
    shared_login
        Load-test mode: publish everything through a few connections with the platform
        account instead of one login per device (no per-device ACL, no Last Will).
    moving_fraction
        Share of the vehicles that patrol; the rest stand at their stations.
    seed
        Seeds every random choice.
    qos
        MQTT QoS of telemetry (status messages are always QoS 1).
    start
        Simulated start time (default: chosen so the run never runs ahead of the wall clock).
    devices
        Only these device ids (vehicles and stations).
    replay
        Publish this recorded CSV instead of simulating.
    retime
        Shift a replay's times so that it ends about now.
    """

    scenario: str = "normal"
    speedup: float = 1.0
    vehicles: int | None = None
    stations: bool = True
    kinds: frozenset[str] | None = None
    rate_hz: float | None = None
    duration_s: float = 0.0
    gateway: bool = False
    shared_login: bool = False
    shared_clients: int = 4
    moving_fraction: float = 0.2
    seed: int = 1
    qos: int = 1
    start: datetime | None = None
    devices: frozenset[str] | None = None
    replay: Path | None = None
    retime: bool = False
    storm: StormBand | None = None

    def check(self) -> None:
        """Raise ValueError naming the first bad option."""
        if self.scenario not in SCENARIOS:
            raise ValueError(
                f"unknown scenario {self.scenario!r}; scenarios: {', '.join(SCENARIOS)}"
            )
        if not self.speedup > 0:
            raise ValueError("--speedup must be positive")
        if self.vehicles is not None and self.vehicles < 0:
            raise ValueError("--vehicles must be 0 or more")
        if self.rate_hz is not None and not self.rate_hz > 0:
            raise ValueError("--rate must be positive (reports per second per device)")
        if self.duration_s < 0:
            raise ValueError("--duration must be 0 (until Ctrl-C) or more seconds")
        if not 0 <= self.moving_fraction <= 1:
            raise ValueError("--moving must be between 0 and 1")
        if self.qos not in (0, 1):
            raise ValueError("--qos must be 0 or 1")
        if self.shared_clients < 1:
            raise ValueError("shared_clients must be at least 1")
        if (self.speedup - 1.0) * self.duration_s > MAX_LOOKBACK_S:
            raise ValueError(
                "--speedup × --duration would start the simulated clock more than 29 days ago,"
                " beyond what the platform keeps; shorten --duration or lower --speedup"
            )

    def horizon_s(self) -> float:
        """Planned wall duration the sped-up clock is anchored to."""
        horizon = self.duration_s if self.duration_s > 0 else DEFAULT_HORIZON_S
        if self.speedup > 1:
            horizon = min(horizon, MAX_LOOKBACK_S / (self.speedup - 1.0))
        return horizon


@dataclass
class Stats:
    """What a run has done so far (read from any thread; updated by the run's thread)."""

    devices: dict[str, int] = field(default_factory=dict)  # kind -> simulated devices
    messages: dict[str, int] = field(default_factory=dict)  # kind -> MQTT messages sent
    readings: dict[str, int] = field(default_factory=dict)  # kind -> readings sent
    acked: int = 0
    failed: int = 0  # refused by the broker (ACL)
    dropped: int = 0  # not sent: the login was down or backed up
    refused_logins: list[str] = field(default_factory=list)
    commands: int = 0  # orders received by the vehicles' terminals
    bad_commands: int = 0  # of which could not be understood (logged and ignored)
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    sim_time: float = 0.0
    started: float = field(default_factory=time.monotonic)
    done: bool = False

    def total(self) -> int:
        return sum(self.messages.values())


@dataclass(eq=False)
class _Source:
    """A device on the schedule."""

    kind: str
    device_id: str
    interval: float  # simulated seconds
    produce: Callable[[float, float], dict[str, Any]]
    link: Link | None = None
    gateway: int | None = None  # index of the gateway that carries it
    seq: int = 0
    prev_t: float = 0.0


class Simulator:
    """A run of simulated field devices publishing over MQTT.

    Parameters
    ----------
    world
        Devices and roads (from :func:`sensors.world.load_world`); unused for a replay.
    config
        The run's options.
    mqtt_url
        The broker; its credentials are used only in shared-login mode.
    device_secret
        The platform's device secret, from which each device's password derives.
    """

    def __init__(
        self, world: World | None, config: SimConfig, *, mqtt_url: str, device_secret: str
    ) -> None:
        config.check()
        self.config = config
        self.secret = device_secret
        self.stats = Stats()
        self.run_id = uuid.uuid4().hex[:6]
        self.pool = Pool(mqtt_url, on_ack=self._on_ack, on_message=self._on_message)
        self.terminals: Terminals | None = None
        self.plan: ReplayPlan | None = None
        self.sources: list[_Source] = []
        self.station_models: list[StationModel] = []
        self.fleet: Fleet | None = None
        self.env: Environment | None = None
        self._rows: list[ReplayRow] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: str | None = None
        self.failure: str | None = None  # why a started run ended early, if it did
        self._thread: threading.Thread | None = None
        self._gateway_links: list[Link] = []
        self._gateway_buffers: list[dict[str, list[dict[str, Any]]]] = []
        if config.replay is not None:
            self.plan = load_replay(config.replay)
            self.stats.bad_rows = [(b.line, b.reason) for b in self.plan.bad]
            horizon = self.plan.span_s / config.speedup if config.retime else 0.0
            self.clock = SimClock(config.speedup, horizon, config.start)
            self._setup_replay(self.plan)
        else:
            if world is None:
                raise ValueError("a simulation needs the registry's devices")
            self.clock = SimClock(config.speedup, config.horizon_s(), config.start)
            self._setup_simulation(world)

    @classmethod
    def from_settings(cls, settings: Any, config: SimConfig) -> Simulator:
        """A run against the platform's database and broker (``gis_core.settings``)."""
        from gis_core.db import connect

        world = None
        if config.replay is None:
            with connect(settings.database_url) as conn:
                world = load_world(conn, roads=config.vehicles != 0)
        return cls(world, config, mqtt_url=settings.mqtt_url, device_secret=settings.device_secret)

    # ------------------------------------------------------------------ set-up

    def _interval(self, registered: float, kind: str, env: Environment | None) -> float:
        if self.config.rate_hz is not None:
            return self.config.speedup / self.config.rate_hz
        override = env.interval_override(kind) if env is not None else None
        return max(float(override or registered), 0.05)

    def _device_link(self, kind: str, device_id: str, *, listens: bool = False) -> Link:
        """The login a device publishes through; ``listens``: its terminal takes orders.

        A vehicle's own login subscribes to its own command topic, which the broker's ACL
        lets it read and nobody else's, as a real terminal would. In shared-login mode one
        platform connection listens to every vehicle's commands for the run instead.
        """
        status = f"cz/v1/{kind}/{device_id}/status"
        if self.config.shared_login:
            shared = [link for link in self.pool.links if link.shared]
            orders: tuple[str, ...] = ()
            if listens and not any(link.subscriptions for link in shared):
                orders = (f"cz/v1/{kind}/+/command",)
            if len(shared) < self.config.shared_clients:
                addr = self.pool.address
                return self.pool.add(
                    f"shared{len(shared) + 1}",
                    addr.username or "",
                    addr.password,
                    shared=True,
                    run_id=self.run_id,
                    subscriptions=orders,
                )
            link = shared[len(self.sources) % len(shared)]
            if orders:
                link.subscriptions = orders
            return link
        return self.pool.add(
            device_id,
            device_id,
            device_password(self.secret, device_id),
            status_topic=status,
            run_id=self.run_id,
            subscriptions=(f"cz/v1/{kind}/{device_id}/command",) if listens else (),
        )

    def _setup_simulation(self, world: World) -> None:
        config = self.config
        only = config.devices
        bbox = world.bbox or CHANGZHI_BBOX
        env = Environment(config.scenario, self.clock.sim0, bbox, config.seed, config.storm)
        self.env = env
        vehicles = [v for v in world.vehicles if only is None or v.device_id in only]
        if config.vehicles is not None:
            vehicles = vehicles[: config.vehicles]
        stations = []
        if config.stations:
            stations = [
                s
                for s in world.stations
                if (only is None or s.device_id in only)
                and (config.kinds is None or s.kind in config.kinds)
            ]
        self.fleet = Fleet(
            vehicles,
            world.roads,
            self.clock.now,
            seed=config.seed,
            moving_fraction=config.moving_fraction,
            projection=Projection(env.lon0, env.lat0),
        )
        self.terminals = Terminals(self.fleet)
        self.station_models = build_stations(stations, env, config.seed)
        # A gateway may carry only the devices registered behind it (ingest refuses the
        # rest): each station goes through its own gateway, or on its own login if it has none.
        carried: dict[str, int] = {}
        if config.gateway:
            for gw in sorted({m.spec.gateway_id or "" for m in self.station_models} - {""}):
                carried[gw] = len(self._gateway_links)
                self._gateway_links.append(
                    self.pool.add(gw, gw, device_password(self.secret, gw), run_id=self.run_id)
                )
                self._gateway_buffers.append({})
            if self.station_models and not carried:
                raise ValueError(
                    "--gateway: none of these stations is registered behind a gateway "
                    "(realtime.provision.register_gateway)"
                )
            self.stats.devices["gateway"] = len(self._gateway_links)
        fleet = self.fleet
        for vehicle in fleet.vehicles:
            source = _Source(
                "vehicle",
                vehicle.spec.device_id,
                self._interval(vehicle.spec.interval_s, "vehicle", env),
                self._vehicle_reader(fleet, vehicle),
            )
            source.link = self._device_link("vehicle", source.device_id, listens=True)
            self.sources.append(source)
        for model in self.station_models:
            source = _Source(
                model.kind,
                model.spec.device_id,
                self._interval(model.spec.interval_s, model.kind, env),
                model.read,
            )
            if model.spec.gateway_id in carried:
                source.gateway = carried[model.spec.gateway_id]
            else:
                source.link = self._device_link(model.kind, source.device_id)
            self.sources.append(source)
        self._count_devices()

    def _count_devices(self) -> None:
        # Every key exists before the run starts: readers on other threads never see the
        # dictionaries grow.
        for source in self.sources:
            self.stats.devices[source.kind] = self.stats.devices.get(source.kind, 0) + 1
        for kind in list(self.stats.devices):
            self.stats.messages[kind] = 0
            self.stats.readings.setdefault(kind, 0)
        self.stats.readings.pop("gateway", None)

    @staticmethod
    def _vehicle_reader(fleet: Fleet, vehicle: Vehicle) -> Callable[[float, float], dict[str, Any]]:
        return lambda t, dt: fleet.report(vehicle, t)

    def _setup_replay(self, plan: ReplayPlan) -> None:
        by_device: dict[str, _Source] = {}
        for device_id, kind in plan.devices.items():
            source = _Source(kind, device_id, 0.0, lambda t, dt: {})
            source.link = self._device_link(kind, device_id)
            by_device[device_id] = source
            self.sources.append(source)
        self._count_devices()
        self._replay_sources = by_device
        self._rows = plan.rows

    # ------------------------------------------------------------------ control

    def start(self, timeout: float = 30.0) -> None:
        """Connect every login and start publishing on a background thread.

        Raises
        ------
        SimulatorError
            When the broker cannot be reached or refuses every login.
        """
        if self._thread is not None:
            raise RuntimeError("this run has already been started")
        if not self.pool.links:
            raise SimulatorError("nothing to simulate: no devices match the options")
        try:
            self.pool.check_reachable()
        except BrokerUnreachable as exc:
            raise SimulatorError(str(exc)) from exc
        self._thread = threading.Thread(target=self._main, name="sensors-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise SimulatorError("the broker did not answer the logins in time")
        if self._error is not None:
            self.join(5)
            raise SimulatorError(self._error)

    def stop(self) -> None:
        """Ask the run to finish: it stops publishing and disconnects every login cleanly."""
        self._stop.set()
        self.pool.wake()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ the loop

    def _on_ack(self, link: Link, ok: bool) -> None:
        if ok:
            self.stats.acked += 1
        else:
            self.stats.failed += 1

    def _on_message(self, link: Link, topic: str, payload: bytes) -> None:
        if self.terminals is None:
            return
        self.stats.commands += 1
        if self.terminals.handle(topic, payload) == "bad":
            self.stats.bad_commands += 1

    def _main(self) -> None:
        try:
            self._connect_and_run()
        except Exception as exc:
            log.exception("the simulation stopped on an error")
            self.failure = f"the simulation stopped on an error: {exc}"
            if not self._ready.is_set():
                self._error = self.failure
                self._ready.set()
        finally:
            self.pool.close()
            self.stats.done = True

    def _connect_and_run(self) -> None:
        try:
            self.pool.connect_all(should_stop=self._stop.is_set)
        except BrokerUnreachable as exc:
            self._error = str(exc)
            self._ready.set()
            return
        refused = [link for link in self.pool.links if link.state == "refused"]
        self.stats.refused_logins = [link.name for link in refused]
        up = [link for link in self.pool.links if link.state == "up"]
        if not up:
            reason = refused[0].refusal if refused else "no answer"
            self._error = (
                f"the broker refused all {len(self.pool.links)} logins ({reason});"
                " are the device accounts provisioned on the broker?"
                if refused
                else f"the broker did not accept any of {len(self.pool.links)} logins ({reason})"
            )
            self._ready.set()
            return
        if self.config.shared_login:
            for source in self.sources:
                assert source.link is not None
                self.pool.publish(
                    source.link,
                    f"cz/v1/{source.kind}/{source.device_id}/status",
                    b"online",
                    qos=1,
                )
        self.stats.started = time.monotonic()
        self._ready.set()
        if self.plan is not None:
            self._replay_loop()
        else:
            self._simulation_loop()

    def _deadline(self) -> float | None:
        d = self.config.duration_s
        return time.monotonic() + d if d > 0 else None

    def _simulation_loop(self) -> None:
        clock, rng = self.clock, random.Random(f"{self.config.seed}-schedule")
        t0 = clock.now()
        heap: list[tuple[float, int]] = []
        for k, source in enumerate(self.sources):
            # Every device reports within two wall seconds of power-up (spread out, not all at
            # once), then on its interval.
            first = min(source.interval, 2.0 * self.config.speedup)
            heapq.heappush(heap, (t0 + rng.uniform(0, first), k))
            source.prev_t = t0 - source.interval
        deadline = self._deadline()
        next_flush = time.monotonic() + GATEWAY_FLUSH_S
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            now = clock.now()
            self.stats.sim_time = now
            done = 0
            while heap and heap[0][0] <= now and done < BATCH_PER_TURN:
                t, k = heapq.heappop(heap)
                source = self.sources[k]
                if source.link is not None and source.link.state == "refused":
                    continue  # no login: this device is out of the run
                self._emit(source, t, source.produce(t, t - source.prev_t))
                source.prev_t = t
                heapq.heappush(heap, (t + source.interval * rng.uniform(0.99, 1.01), k))
                done += 1
            if self._gateway_links and time.monotonic() >= next_flush:
                self._flush_gateways()
                next_flush = time.monotonic() + GATEWAY_FLUSH_S
            if done >= BATCH_PER_TURN:
                timeout = 0.0
            elif heap:
                timeout = min(0.25, clock.wall_at(heap[0][0]) - clock.wall())
            else:
                timeout = 0.25
            self.pool.poll(timeout)
        if self._gateway_links:
            self._flush_gateways()

    def _replay_loop(self) -> None:
        rows = self._rows
        speedup = self.config.speedup
        ts0 = rows[0].ts
        wall0 = time.time()
        shift = (self.clock.sim0 - ts0) if self.config.retime else 0.0
        deadline = self._deadline()
        i = 0
        while not self._stop.is_set() and i < len(rows):
            if deadline is not None and time.monotonic() >= deadline:
                break
            due_ts = ts0 + (time.time() - wall0) * speedup
            self.stats.sim_time = due_ts + shift
            done = 0
            while i < len(rows) and rows[i].ts <= due_ts and done < BATCH_PER_TURN:
                row = rows[i]
                source = self._replay_sources[row.device_id]
                if source.link is None or source.link.state != "refused":
                    if row.seq is not None:
                        source.seq = row.seq - 1
                    self._emit(source, row.ts + shift, dict(row.fields))
                i += 1
                done += 1
            if i < len(rows):
                wait = (rows[i].ts - ts0) / speedup - (time.time() - wall0)
                self.pool.poll(0.0 if done >= BATCH_PER_TURN else min(0.25, max(wait, 0.0)))
        self.pool.poll(0.0)

    def _emit(self, source: _Source, t: float, fields: dict[str, Any]) -> None:
        source.seq += 1
        reading = {"ts": iso(t), "seq": source.seq, **fields}
        kind = source.kind
        if source.gateway is not None:
            buffer = self._gateway_buffers[source.gateway]
            buffer.setdefault(source.device_id, []).append(reading)
            self.stats.readings[kind] = self.stats.readings.get(kind, 0) + 1
            if sum(len(v) for v in buffer.values()) >= GATEWAY_MAX_READINGS:
                self._flush_gateway(source.gateway)
            return
        assert source.link is not None
        topic = f"cz/v1/{kind}/{source.device_id}/telemetry"
        if self.pool.publish(source.link, topic, orjson.dumps(reading), self.config.qos):
            self.stats.messages[kind] = self.stats.messages.get(kind, 0) + 1
            self.stats.readings[kind] = self.stats.readings.get(kind, 0) + 1
        else:
            self.stats.dropped += 1

    def _flush_gateway(self, k: int) -> None:
        buffer = self._gateway_buffers[k]
        if not buffer:
            return
        link = self._gateway_links[k]
        topic = f"cz/v1/gateway/{link.name}/telemetry"
        if self.pool.publish(link, topic, orjson.dumps(buffer), self.config.qos):
            self.stats.messages["gateway"] = self.stats.messages.get("gateway", 0) + 1
        else:
            self.stats.dropped += sum(len(v) for v in buffer.values())
        self._gateway_buffers[k] = {}

    def _flush_gateways(self) -> None:
        for k in range(len(self._gateway_links)):
            self._flush_gateway(k)


def start_simulator(settings: Any, config: SimConfig) -> Simulator:
    """Load the registry, connect and start publishing; the caller stops and joins it."""
    sim = Simulator.from_settings(settings, config)
    sim.start()
    return sim
