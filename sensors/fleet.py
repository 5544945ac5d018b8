"""Emergency vehicles driving the road network, as their GPS terminals report them.

Most units stand at their stations; a fraction patrols, driving quickest paths between random
destinations at realistic speeds (a share of the posted speed, less in town; slowing for sharp
turns and to stop), now and then returning to the station for a break. The dispatch app can
send a unit to a point (:meth:`Fleet.send_to`): it drives there over the network with
emergency speed, slows, stops by the point and waits until released.

A terminal reports its position with GPS noise (about 5 m, sometimes much worse), its speed,
its heading from the direction of travel and its status; terminals registered with
``{"crs": "GCJ02"}`` report GCJ-02 coordinates, as many Chinese in-vehicle units do.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gis_core.crs import wgs84_to_gcj02
from sensors.roads import Path, Projection, RoadNetwork
from sensors.world import VehicleSpec

__all__ = ["Fleet", "Trip", "Vehicle", "VehicleState"]

ACCEL = 1.5  # m/s², a loaded ambulance or patrol car
ACCEL_HEAVY = 0.9  # fire engines and ladders
PLAN_DECEL = 2.0  # m/s² the driver plans to brake with
MAX_DECEL = 4.5
HEAVY_TYPES = frozenset({"engine", "ladder", "hazmat", "rescue", "tanker"})
STATUSES = frozenset({"available", "dispatched", "en_route", "on_scene", "out_of_service"})
# A destination farther from every road than this is outside the network's area: refused.
MAX_OFF_ROAD_M = 5000.0


@dataclass(frozen=True)
class Trip:
    """A planned drive: its length and the time it takes at the posted speeds."""

    unit_id: str
    device_id: str
    distance_m: float
    eta_s: float


@dataclass(frozen=True)
class VehicleState:
    """Where a vehicle truly is (no GPS noise), for dispatch and tests."""

    device_id: str
    unit_id: str | None
    lon: float
    lat: float
    speed_kmh: float
    heading_deg: float
    mode: str  # parked, patrol, returning, dispatch, held
    status: str | None


class Vehicle:
    """One vehicle's kinematic and behavioural state."""

    def __init__(self, spec: VehicleSpec, home: tuple[float, float], seed: int) -> None:
        self.spec = spec
        self.rng = random.Random(f"{seed}-{spec.device_id}")
        self.home = home
        self.x, self.y = home
        self.heading = self.rng.uniform(0, 360)
        self.v = 0.0
        self.path: Path | None = None
        self.s = 0.0
        self.node: int | None = None  # the road node it stands at, if any
        self.goal_node: int | None = None
        self.mode = "parked"
        self.patrols = False
        self.status: str | None = (
            "out_of_service" if spec.status == "out_of_service" else "available"
        )
        self.dwell_until = 0.0
        self.last_t = 0.0
        self.trips = 0
        self.accel = ACCEL_HEAVY if (spec.unit_type or "") in HEAVY_TYPES else ACCEL
        self.f_town = 0.7
        self.f_rural = 0.9

    def new_trip_pace(self, emergency: bool) -> None:
        """How this driver takes this trip: a share of the posted speed, less in town."""
        self.f_town = self.rng.uniform(0.6, 0.85)
        self.f_rural = self.rng.uniform(0.75, 1.0)
        if emergency:  # lights and sirens
            self.f_town = min(self.f_town * 1.2, 1.0)
            self.f_rural = min(self.f_rural * 1.12, 1.08)


class Fleet:
    """All simulated vehicles; thread-safe, so the dispatch app may steer them while a run
    publishes their positions.

    Parameters
    ----------
    specs
        The vehicles' terminals (and units).
    roads
        The road network; without one every vehicle stays at its station.
    now
        Simulated epoch seconds now (the run's clock).
    seed
        Seeds every random choice.
    moving_fraction
        Share of the (serviceable) vehicles that patrol; patrol cars are likelier to.
    projection
        The local metric plane when there are no roads.
    """

    def __init__(
        self,
        specs: Sequence[VehicleSpec],
        roads: RoadNetwork | None,
        now: Callable[[], float],
        *,
        seed: int = 0,
        moving_fraction: float = 0.2,
        projection: Projection | None = None,
    ) -> None:
        if not 0.0 <= moving_fraction <= 1.0:
            raise ValueError("--moving must be between 0 and 1")
        self.roads = roads
        self.now = now
        self.lock = threading.RLock()
        if roads is not None:
            self.proj = roads.proj
        elif projection is not None:
            self.proj = projection
        else:
            stations = [s.station for s in specs if s.station is not None]
            lon0 = float(np.mean([p[0] for p in stations])) if stations else 113.1
            lat0 = float(np.mean([p[1] for p in stations])) if stations else 36.2
            self.proj = Projection(lon0, lat0)
        rng = random.Random(f"{seed}-fleet")
        t0 = now()
        self.vehicles: list[Vehicle] = []
        for spec in specs:
            if spec.station is not None:
                hx, hy = self.proj.to_xy(*spec.station)
                home = (float(hx), float(hy))
            elif roads is not None:
                node = rng.randrange(roads.n_nodes)
                home = (float(roads.node_xy[node, 0]), float(roads.node_xy[node, 1]))
            else:
                continue  # nowhere to put it
            vehicle = Vehicle(spec, home, seed)
            vehicle.last_t = t0
            self.vehicles.append(vehicle)
        self.by_unit = {v.spec.unit_id: v for v in self.vehicles if v.spec.unit_id}
        self.by_device = {v.spec.device_id: v for v in self.vehicles}
        if roads is not None:
            able = [v for v in self.vehicles if v.status != "out_of_service"]
            keyed = sorted(
                able,
                key=lambda v: rng.random() / (3.0 if v.spec.unit_type == "patrol" else 1.0),
            )
            for vehicle in keyed[: round(moving_fraction * len(able))]:
                self._start_patrol(vehicle, t0)

    # ------------------------------------------------------------------ public API

    def find(self, unit_or_device: str) -> Vehicle:
        """A vehicle by unit id or device id."""
        vehicle = self.by_unit.get(unit_or_device) or self.by_device.get(unit_or_device)
        if vehicle is None:
            raise KeyError(f"no simulated vehicle for unit or device {unit_or_device!r}")
        return vehicle

    def send_to(self, unit_id: str, lon: float, lat: float, *, status: str = "en_route") -> Trip:
        """Send a unit to a point (WGS84): it drives there over the network and stops by it.

        Parameters
        ----------
        unit_id
            The unit (or its terminal's device id).
        lon, lat
            The destination, WGS84.
        status
            What the terminal reports while driving there.

        Returns
        -------
        Trip
            Distance and time at the posted speeds.

        Raises
        ------
        KeyError
            When the unit is not simulated.
        ValueError
            When there is no road network, the point is far from every road (not in the area
            this network covers), or there is no route to it.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self.lock:
            vehicle = self.find(unit_id)
            if self.roads is None:
                raise ValueError("no road network loaded: vehicles cannot drive")
            gx, gy = self.proj.to_xy(lon, lat)
            off_road = self.roads.distance_to_road(float(gx), float(gy))
            if not off_road <= MAX_OFF_ROAD_M:
                raise ValueError(
                    f"{lon:.5f},{lat:.5f} is {off_road / 1000:,.1f} km from the nearest road"
                )
            self.advance(vehicle, self.now())
            path = self._plan_from_here(vehicle, (float(gx), float(gy)))
            if path is None:
                raise ValueError(f"no route for {unit_id} to {lon:.5f},{lat:.5f}")
            vehicle.new_trip_pace(emergency=True)
            self._set_path(vehicle, path, "dispatch")
            vehicle.status = status
            return Trip(
                vehicle.spec.unit_id or "",
                vehicle.spec.device_id,
                float(path.length),
                float(path.cost_s),
            )

    def release(self, unit_id: str) -> Trip | None:
        """Send a unit back to its station, available again (None if it is already there)."""
        with self.lock:
            vehicle = self.find(unit_id)
            self.advance(vehicle, self.now())
            vehicle.status = "available"
            if (
                self.roads is None
                or math.hypot(vehicle.x - vehicle.home[0], vehicle.y - vehicle.home[1]) < 5.0
            ):
                self._park(vehicle, self.now())
                return None
            path = self._plan_from_here(vehicle, vehicle.home)
            if path is None:
                return None
            vehicle.new_trip_pace(emergency=False)
            self._set_path(vehicle, path, "returning")
            return Trip(
                vehicle.spec.unit_id or "",
                vehicle.spec.device_id,
                float(path.length),
                float(path.cost_s),
            )

    def set_status(self, unit_id: str, status: str | None) -> None:
        """What the terminal reports as its status from now on (None: report none)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self.lock:
            self.find(unit_id).status = status

    def state(self, unit_id: str) -> VehicleState:
        """Where a vehicle is now, without GPS noise."""
        with self.lock:
            vehicle = self.find(unit_id)
            self.advance(vehicle, self.now())
            lon, lat = self.proj.to_lonlat(vehicle.x, vehicle.y)
            return VehicleState(
                vehicle.spec.device_id,
                vehicle.spec.unit_id,
                lon,
                lat,
                vehicle.v * 3.6,
                vehicle.heading,
                vehicle.mode,
                vehicle.status,
            )

    # ------------------------------------------------------------------ reporting

    def report(self, vehicle: Vehicle, t: float) -> dict[str, Any]:
        """The terminal's reading at simulated time ``t`` (without ts and seq)."""
        with self.lock:
            self.advance(vehicle, t)
            rng = vehicle.rng
            if vehicle.v < 0.3 and vehicle.path is None:
                sigma, accuracy = 2.0, 3.0  # standing still: the fix wanders a little
            elif rng.random() < 0.03:
                sigma, accuracy = 12.0, float(rng.choice((15, 20, 25)))  # multipath, canyons
            else:
                sigma, accuracy = 3.5, 5.0
            lon, lat = self.proj.to_lonlat(
                vehicle.x + rng.gauss(0.0, sigma), vehicle.y + rng.gauss(0.0, sigma)
            )
            moving = vehicle.v >= 0.3
            speed = max(0.0, vehicle.v * 3.6 + rng.gauss(0.0, 0.4)) if moving else 0.0
            heading = round(vehicle.heading % 360.0, 1)
            status = vehicle.status
        reading: dict[str, Any] = {}
        if vehicle.spec.crs == "GCJ02":
            glon, glat = wgs84_to_gcj02(lon, lat)
            reading.update(lon=round(float(glon), 6), lat=round(float(glat), 6), crs="GCJ02")  # type: ignore[arg-type]
        else:
            reading.update(lon=round(lon, 6), lat=round(lat, 6))
        reading["speed_kmh"] = round(speed, 1)
        reading["heading_deg"] = 0.0 if heading >= 360.0 else heading
        reading["accuracy_m"] = accuracy
        if status is not None:
            reading["status"] = status
        return reading

    # ------------------------------------------------------------------ behaviour

    def advance(self, vehicle: Vehicle, t: float) -> None:
        """Move a vehicle forward to simulated time ``t`` (one-second steps while driving)."""
        while vehicle.last_t < t - 1e-6:
            if vehicle.path is None:
                if vehicle.patrols and vehicle.mode in ("patrol", "parked"):
                    if vehicle.last_t >= vehicle.dwell_until:
                        self._next_patrol_leg(vehicle, vehicle.last_t)
                        if vehicle.path is None:
                            vehicle.dwell_until = vehicle.last_t + 300.0
                        continue
                    vehicle.last_t = min(t, vehicle.dwell_until)
                    continue
                vehicle.last_t = t
                break
            dt = min(1.0, t - vehicle.last_t)
            self._drive(vehicle, dt)
            vehicle.last_t += dt

    def _drive(self, vehicle: Vehicle, dt: float) -> None:
        path = vehicle.path
        assert path is not None
        s, length = vehicle.s, path.length
        i = path.segment(s)
        limit = path.limit[i] * (vehicle.f_town if path.town[i] else vehicle.f_rural)
        corner_s, corner_v = path.next_corner(s)
        target = min(
            limit,
            math.sqrt(corner_v * corner_v + 2 * PLAN_DECEL * max(0.0, corner_s - s)),
            math.sqrt(2 * PLAN_DECEL * max(0.0, length - s)),
        )
        target = max(target, 1.0)  # creep rather than stall short of the goal
        if vehicle.v < target:
            vehicle.v = min(target, vehicle.v + vehicle.accel * dt)
        else:
            vehicle.v = max(target, vehicle.v - MAX_DECEL * dt)
        s = min(length, s + vehicle.v * dt)
        vehicle.s = s
        vehicle.x, vehicle.y, vehicle.heading = path.at(s)
        if length - s < 0.5:
            self._arrive(vehicle, vehicle.last_t + dt)

    def _arrive(self, vehicle: Vehicle, t: float) -> None:
        vehicle.v = 0.0
        vehicle.path = None
        vehicle.node = vehicle.goal_node
        if vehicle.mode == "dispatch":
            # At the scene: the platform, not the terminal, declares on_scene.
            vehicle.mode = "held"
            vehicle.status = None
        elif vehicle.mode == "returning":
            self._park(vehicle, t)
        elif vehicle.mode == "patrol":
            vehicle.trips += 1
            vehicle.dwell_until = t + vehicle.rng.uniform(20.0, 240.0)

    def _park(self, vehicle: Vehicle, t: float) -> None:
        vehicle.mode = "parked"
        vehicle.path = None
        vehicle.v = 0.0
        vehicle.node = None
        vehicle.x, vehicle.y = vehicle.home
        # A break at the station before patrolling again.
        vehicle.dwell_until = t + vehicle.rng.uniform(600.0, 2400.0)

    def _set_path(self, vehicle: Vehicle, path: Path, mode: str) -> None:
        vehicle.path = path
        vehicle.s = 0.0
        vehicle.mode = mode
        vehicle.goal_node = (
            path.nodes[-1][1] if path.nodes and path.nodes[-1][0] >= (path.length - 0.5) else None
        )
        vehicle.node = None

    def _start_patrol(self, vehicle: Vehicle, t: float) -> None:
        """Put a patrolling vehicle somewhere on its beat, about to drive on."""
        roads = self.roads
        assert roads is not None
        vehicle.patrols = True
        origin = roads.nearest_node(*vehicle.home)
        dist, _ = roads.reachable(origin, 600.0)
        near = np.flatnonzero(np.isfinite(dist) & (dist >= 60.0))
        if len(near):
            node = int(near[vehicle.rng.randrange(len(near))])
            vehicle.x, vehicle.y = (float(c) for c in roads.node_xy[node])
            vehicle.node = node
            vehicle.mode = "patrol"
        vehicle.dwell_until = t + vehicle.rng.uniform(0.0, 30.0)

    def _next_patrol_leg(self, vehicle: Vehicle, t: float) -> None:
        roads = self.roads
        assert roads is not None
        vehicle.new_trip_pace(emergency=False)
        if vehicle.mode == "patrol" and vehicle.trips >= 2 and vehicle.rng.random() < 0.12:
            path = self._plan_from_here(vehicle, vehicle.home)
            if path is not None:
                vehicle.trips = 0
                self._set_path(vehicle, path, "returning")
                return
        origin = (
            vehicle.node if vehicle.node is not None else roads.nearest_node(vehicle.x, vehicle.y)
        )
        dist, pred = roads.reachable(origin, 1500.0)
        ok = np.isfinite(dist)
        cands = np.flatnonzero(ok & (dist >= 240.0))
        if len(cands) == 0:
            cands = np.flatnonzero(ok & (dist >= 20.0))
        if len(cands) == 0:
            return
        goal = int(cands[vehicle.rng.randrange(len(cands))])
        if vehicle.node is not None:
            path = roads.path_to_node((vehicle.x, vehicle.y), pred, origin, goal)
        else:
            gx, gy = roads.node_xy[goal]
            path = roads.route((vehicle.x, vehicle.y), (float(gx), float(gy)))
        if path is not None:
            self._set_path(vehicle, path, "patrol")
            vehicle.goal_node = goal

    def _plan_from_here(self, vehicle: Vehicle, goal: tuple[float, float]) -> Path | None:
        """A path to ``goal`` that continues smoothly from what the vehicle is doing."""
        roads = self.roads
        assert roads is not None
        path = vehicle.path
        if path is not None and vehicle.v > 0.5:
            ahead = path.next_node(vehicle.s + 0.01)
            if ahead is not None:
                prefix = path.slice(vehicle.s, ahead[0]) if ahead[0] - vehicle.s > 0.5 else None
                return roads.route((vehicle.x, vehicle.y), goal, prefix=prefix, from_node=ahead[1])
        if vehicle.node is not None and vehicle.path is None:
            return roads.route((vehicle.x, vehicle.y), goal, from_node=vehicle.node)
        return roads.route((vehicle.x, vehicle.y), goal)
