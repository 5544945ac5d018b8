"""What the simulators simulate, read from the registry: vehicles, stations and the roads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from gis_core.application import device_kinds
from sensors.roads import RoadNetwork, load_roads

__all__ = ["StationSpec", "VehicleSpec", "World", "load_world"]


def station_kinds() -> list[str]:
    """The installed fixed-device kinds the simulator has a model of."""
    return [k.name for k in device_kinds().values() if k.simulator and not k.mobile]


def default_interval_s(kind: str) -> float:
    """A kind's reporting interval when the registry does not say (seconds)."""
    found = device_kinds().get(kind)
    return float(found.interval_s) if found is not None else 60.0


@dataclass(frozen=True)
class VehicleSpec:
    """An in-vehicle terminal and the unit it rides with."""

    device_id: str
    unit_id: str | None
    unit_type: str | None
    crs: str  # "WGS84" or "GCJ02": the datum the terminal reports in
    interval_s: float
    station: tuple[float, float] | None  # lon/lat of the unit's station
    status: str  # the unit's status in the registry when the run starts


@dataclass(frozen=True)
class StationSpec:
    """A fixed monitoring device at its registered site."""

    device_id: str
    kind: str
    site_id: str | None
    name: str
    lon: float | None
    lat: float | None
    interval_s: float
    thresholds: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)  # permit limits of the watched stack
    stack_height_m: float | None = None
    district_code: str | None = None
    gateway_id: str | None = None  # the gateway it is registered behind, if any


@dataclass
class World:
    """Everything a run needs from the database, loaded once."""

    vehicles: list[VehicleSpec]
    stations: list[StationSpec]
    roads: RoadNetwork | None

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        """lon/lat box of the roads and stations."""
        xs: list[float] = []
        ys: list[float] = []
        if self.roads is not None:
            x0, y0, x1, y1 = self.roads.bbox
            xs += [x0, x1]
            ys += [y0, y1]
        for s in self.stations:
            if s.lon is not None and s.lat is not None:
                xs.append(s.lon)
                ys.append(s.lat)
        if not xs:
            return None
        return min(xs), min(ys), max(xs), max(ys)


def load_world(conn: psycopg.Connection, *, roads: bool = True) -> World:
    """Vehicles (units with their terminals, and unbound vehicle devices), stations and roads.

    Parameters
    ----------
    conn
        An open connection to the platform database.
    roads
        Load the road network too (vehicles need it).
    """
    vehicles = [
        VehicleSpec(
            device_id=r[0],
            unit_id=r[1],
            unit_type=r[2],
            crs="GCJ02"
            if str((r[3] or {}).get("crs", "")).upper() in ("GCJ02", "GCJ-02")
            else "WGS84",
            interval_s=float(r[4] or default_interval_s("vehicle")),
            station=(float(r[5]), float(r[6])) if r[5] is not None else None,
            status=r[7] or "available",
        )
        for r in conn.execute(
            """
            SELECT d.id, u.id, u.unit_type, d.attributes, d.expected_interval_s,
                   ST_X(p.geom), ST_Y(p.geom), u.status
            FROM iot.device d
            LEFT JOIN LATERAL (
                SELECT * FROM ops.unit u WHERE u.device_id = d.id ORDER BY u.id LIMIT 1
            ) u ON true
            LEFT JOIN ref.poi p ON p.id = u.station_poi_id
            WHERE d.kind = 'vehicle'
            ORDER BY (u.id IS NULL), d.id
            """
        ).fetchall()
    ]
    stations = [
        StationSpec(
            device_id=r[0],
            kind=r[1],
            site_id=r[2],
            name=r[3] or r[0],
            lon=r[4],
            lat=r[5],
            interval_s=float(r[6] or default_interval_s(r[1])),
            thresholds=dict(r[7] or {}),
            limits={k: float(v) for k, v in (r[8] or {}).items() if isinstance(v, int | float)},
            stack_height_m=r[9],
            district_code=r[10],
            gateway_id=r[11],
        )
        for r in conn.execute(
            """
            SELECT d.id, d.kind, d.site_id, coalesce(d.name_zh, s.name_zh),
                   ST_X(s.geom), ST_Y(s.geom), d.expected_interval_s, s.thresholds,
                   src.limits, src.stack_height_m, s.district_code, d.gateway_id
            FROM iot.device d
            LEFT JOIN iot.monitoring_site s ON s.id = d.site_id
            LEFT JOIN env.pollution_source src ON src.id = s.pollution_source_id
            WHERE d.kind = ANY(%s)
            ORDER BY d.kind, d.id
            """,
            (station_kinds(),),
        ).fetchall()
    ]
    network = load_roads(conn) if roads and vehicles else None
    return World(vehicles, stations, network)
