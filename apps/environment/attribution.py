"""Which sources are to blame (溯源): for a pollutant at an air station at one moment, the
registered stacks ranked by their modelled contribution there.

Each stack's emission rate is its outlet monitor's reading at that moment (concentration ×
flue-gas flow, the latest reading of the two hours before); the weather is the nearest weather
station's reading at that moment (or the caller's). The Gaussian plume of every stack is
evaluated at the station in one vectorized call (:func:`contributions`).

Limits: the registry holds a stack's height but not its diameter, exit velocity or
temperature, so the plume is released at the stack top with no rise (Briggs rise needs those):
tall hot stacks are over-weighted near, under-weighted far. NO2 is credited with the stacks'
NOx (as NO2, no chemistry) and PM10/PM2.5 with their total particulates: an upper bound of
each stack's share. CO and O3 have no registered emitter (O3 is not emitted at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import psycopg
from numpy.typing import ArrayLike, NDArray

from apps.environment import plume
from apps.environment.weather import stability_from_weather
from gis_core.errors import InvalidInput, NotFound
from gis_core.plane import LocalPlane

# Ambient pollutant → the outlet monitor's field that emits it.
EMITTED_AS = {"so2": "so2_mgm3", "no2": "nox_mgm3", "pm10": "dust_mgm3", "pm25": "dust_mgm3"}
READING_WINDOW = timedelta(hours=2)  # an emission reading older than this is not "at that time"
WEATHER_WINDOW = timedelta(hours=1)
DEFAULT_STACK_M = 15.0  # GB 16297's minimum stack height, for a stack registered without one
MAX_RADIUS_M = 50_000.0
MG_M3_TIMES_M3_H_TO_G_S = 1.0 / 3.6e6


def contributions(
    monitor_east_m: float,
    monitor_north_m: float,
    source_east_m: ArrayLike,
    source_north_m: ArrayLike,
    height_m: ArrayLike,
    emission_gs: ArrayLike,
    *,
    wind_ms: float,
    wind_from_deg: float,
    stability: str,
    terrain: str = "rural",
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Ground-level µg/m³ each source adds at the monitor, with the monitor's downwind and
    crosswind distance from each (the plume frames of all sources at once).

    >>> c, x, y = contributions(0, 0, [0, 1500], [3000, 3000], [50, 50], [10, 30],
    ...                         wind_ms=3, wind_from_deg=0, stability="D")
    >>> c.round(1).tolist(), x.tolist(), y.tolist()
    ([53.1, 0.0], [3000.0, 3000.0], [0.0, -1500.0])
    """
    east = np.asarray(source_east_m, dtype=np.float64)
    north = np.asarray(source_north_m, dtype=np.float64)
    # The monitor seen from each source (the frame only needs receptor minus source).
    downwind, crosswind = plume.plume_frame(
        monitor_east_m - east, monitor_north_m - north, 0.0, 0.0, wind_from_deg
    )
    unit = plume.concentration(
        1.0,
        wind_ms,
        downwind,
        crosswind,
        np.asarray(height_m, dtype=np.float64),
        stability,
        terrain=terrain,
    )
    return unit * np.asarray(emission_gs, dtype=np.float64), downwind, crosswind


@dataclass(frozen=True)
class Weather:
    wind_ms: float
    wind_from_deg: float
    stability: str
    station: dict[str, Any] | None


def _monitor(conn: psycopg.Connection, device_id: str) -> tuple[str, float, float]:
    row = conn.execute(
        """
        SELECT coalesce(d.name_zh, s.name_zh, d.id), ST_X(s.geom), ST_Y(s.geom), d.kind
        FROM iot.device d LEFT JOIN iot.monitoring_site s ON s.id = d.site_id WHERE d.id = %s
        """,
        (device_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no device {device_id!r}")
    if row[3] != "air":
        raise InvalidInput(f"{device_id!r} is a {row[3]} device, not an air station")
    if row[1] is None:
        raise InvalidInput(f"air station {device_id!r} has no site: where it stands is unknown")
    return str(row[0]), float(row[1]), float(row[2])


def weather_at(
    conn: psycopg.Connection,
    lon: float,
    lat: float,
    at: datetime,
    *,
    wind_ms: float | None = None,
    wind_from_deg: float | None = None,
    stability: str | None = None,
) -> Weather:
    """The wind and stability at a place and moment: the caller's, else the reading of the
    nearest weather station closest to that moment (within an hour before it)."""
    station = None
    if wind_ms is None or wind_from_deg is None or stability is None:
        row = conn.execute(
            """
            SELECT d.id, t.ts, t.reading::text
            FROM iot.device d
            JOIN iot.monitoring_site s ON s.id = d.site_id
            JOIN LATERAL (
                SELECT ts, reading FROM iot.telemetry
                WHERE device_id = d.id AND ts > %(at)s - %(window)s AND ts <= %(at)s
                ORDER BY ts DESC LIMIT 1) t ON true
            WHERE d.kind = 'weather'
            ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)
            LIMIT 1
            """,
            {"at": at, "window": WEATHER_WINDOW, "lon": lon, "lat": lat},
        ).fetchone()
        if row is None:
            raise InvalidInput(
                f"no weather station reported in the hour before {at.isoformat()}: give "
                "wind_ms, wind_from_deg and stability"
            )
        reading = orjson.loads(row[2])
        station = {"device_id": row[0], "ts": row[1].isoformat()}
        wind_ms = wind_ms if wind_ms is not None else reading.get("wind_ms")
        if wind_from_deg is None:
            wind_from_deg = reading.get("wind_dir_deg")
        if wind_ms is None or wind_from_deg is None:
            raise InvalidInput(f"weather station {row[0]} sent no wind at {row[1].isoformat()}")
        if stability is None:
            stability = stability_from_weather(
                row[1], lon, lat, wind_ms=wind_ms, cloud_oktas=reading.get("cloud_oktas", 4.0)
            )
    assert wind_ms is not None and wind_from_deg is not None and stability is not None
    return Weather(float(wind_ms), float(wind_from_deg), stability, station)


SOURCES = """
SELECT s.id, s.name_zh, e.id, e.name_zh, s.stack_height_m, o.id, o.code,
       ST_X(o.geom), ST_Y(o.geom), r.ts, r.reading ->> %(field)s, r.reading ->> 'flow_m3h'
FROM env.outlet o
JOIN env.pollution_source s ON s.id = o.source_id
LEFT JOIN env.enterprise e ON e.id = s.enterprise_id
LEFT JOIN LATERAL (
    SELECT ts, reading FROM iot.telemetry
    WHERE device_id = o.device_id AND ts > %(at)s - %(window)s AND ts <= %(at)s
      AND reading ? %(field)s AND reading ? 'flow_m3h'
    ORDER BY ts DESC LIMIT 1) r ON true
WHERE o.medium = 'air'
  AND ST_DWithin(o.geom::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography,
                 %(radius)s)
ORDER BY o.id
"""


def upwind_sources(
    conn: psycopg.Connection,
    device_id: str,
    pollutant: str,
    at: datetime,
    *,
    wind_ms: float | None = None,
    wind_from_deg: float | None = None,
    stability: str | None = None,
    terrain: str = "rural",
    radius_m: float = 20_000.0,
    limit: int = 20,
) -> dict[str, Any]:
    """The stacks within ``radius_m`` of an air station ranked by their modelled contribution
    to ``pollutant`` there at ``at``.

    Returns
    -------
    dict
        ``monitor``, ``weather`` (and its station), ``sources`` (rank, source, enterprise,
        outlets, emission g/s, distance, downwind/crosswind metres, µg/m³, share of the
        modelled total), ``modelled_ugm3`` (all stacks) and ``observed_ugm3`` (the station's
        mean over the hour before, when it reported), ``unmeasured`` (stacks without a reading).
    """
    field = EMITTED_AS.get(pollutant)
    if field is None:
        raise InvalidInput(
            f"no registered source emits {pollutant!r}: ask for one of {', '.join(EMITTED_AS)}"
        )
    if at.tzinfo is None:
        raise InvalidInput("the time needs its offset, e.g. 2026-12-01T08:00:00+08:00")
    if terrain not in ("rural", "urban"):
        raise InvalidInput(f"terrain must be rural or urban, not {terrain!r}")
    if not 100 <= radius_m <= MAX_RADIUS_M:
        raise InvalidInput(f"radius_m must be 100..{MAX_RADIUS_M:g}, got {radius_m}")
    name, lon, lat = _monitor(conn, device_id)
    weather = weather_at(
        conn, lon, lat, at, wind_ms=wind_ms, wind_from_deg=wind_from_deg, stability=stability
    )
    rows = conn.execute(
        SOURCES,
        {"field": field, "at": at, "window": READING_WINDOW, "lon": lon, "lat": lat,
         "radius": radius_m},
    ).fetchall()  # fmt: skip
    measured = [r for r in rows if r[10] is not None and r[11] is not None]
    unmeasured = sorted({int(r[0]) for r in rows if r[10] is None or r[11] is None})
    plane = LocalPlane(lon, lat)
    east, north = plane.to_xy(
        np.array([r[7] for r in measured], dtype=np.float64),
        np.array([r[8] for r in measured], dtype=np.float64),
    )
    heights = np.array(
        [r[4] if r[4] is not None and r[4] > 0 else DEFAULT_STACK_M for r in measured],
        dtype=np.float64,
    )
    conc = np.array([float(r[10]) for r in measured], dtype=np.float64)
    flow = np.array([float(r[11]) for r in measured], dtype=np.float64)
    if np.any(conc < 0) or np.any(flow < 0):
        bad = [r[6] for r, c, f in zip(measured, conc, flow, strict=True) if c < 0 or f < 0]
        raise InvalidInput(f"negative emission readings at outlets {', '.join(bad)}")
    emission = conc * flow * MG_M3_TIMES_M3_H_TO_G_S
    try:
        added, downwind, crosswind = contributions(
            0.0, 0.0, east, north, heights, emission,
            wind_ms=weather.wind_ms, wind_from_deg=weather.wind_from_deg,
            stability=weather.stability, terrain=terrain,
        )  # fmt: skip
    except plume.PlumeInputError as exc:
        raise InvalidInput(str(exc)) from None

    by_source: dict[int, dict[str, Any]] = {}
    for i, r in enumerate(measured):
        item = by_source.setdefault(
            int(r[0]),
            {
                "source_id": int(r[0]),
                "source": r[1],
                "enterprise_id": r[2],
                "enterprise": r[3],
                "stack_height_m": float(heights[i]),
                "lon": float(r[7]),
                "lat": float(r[8]),
                "distance_m": round(float(np.hypot(east[i], north[i])), 1),
                "downwind_m": round(float(downwind[i]), 1),
                "crosswind_m": round(float(crosswind[i]), 1),
                "emission_gs": 0.0,
                "contribution_ugm3": 0.0,
                "outlets": [],
            },
        )
        item["emission_gs"] += float(emission[i])
        item["contribution_ugm3"] += float(added[i])
        item["outlets"].append(
            {"outlet_id": int(r[5]), "code": r[6], "reading_ts": r[9].isoformat(),
             field: float(conc[i]), "flow_m3h": float(flow[i]),
             "emission_gs": round(float(emission[i]), 4),
             "contribution_ugm3": round(float(added[i]), 4)}
        )  # fmt: skip
    total = float(added.sum())
    ranked = sorted(
        (s for s in by_source.values() if s["contribution_ugm3"] > 0),
        key=lambda s: (-s["contribution_ugm3"], s["source_id"]),
    )
    for rank, s in enumerate(ranked, start=1):
        s["rank"] = rank
        s["share"] = round(s["contribution_ugm3"] / total, 4)
        s["emission_gs"] = round(s["emission_gs"], 4)
        s["contribution_ugm3"] = round(s["contribution_ugm3"], 4)
    observed = conn.execute(
        "SELECT avg((reading ->> %s)::float8) FROM iot.telemetry"
        " WHERE device_id = %s AND ts > %s - interval '1 hour' AND ts <= %s AND reading ? %s",
        (pollutant, device_id, at, at, pollutant),
    ).fetchone()
    return {
        "monitor": {"device_id": device_id, "name": name, "lon": lon, "lat": lat},
        "pollutant": pollutant,
        "emitted_as": field,
        "at": at.astimezone(UTC).isoformat(),
        "weather": {
            "wind_ms": weather.wind_ms,
            "wind_from_deg": weather.wind_from_deg,
            "stability": weather.stability,
            "terrain": terrain,
            "station": weather.station,
        },
        "modelled_ugm3": round(total, 4),
        "observed_ugm3": None if observed is None or observed[0] is None else float(observed[0]),
        "sources": ranked[:limit],
        "downwind_of": len(ranked),
        "measured": len(by_source),
        "unmeasured": unmeasured,
    }


def for_exceedance(conn: psycopg.Connection, exceedance_id: int, **options: Any) -> dict[str, Any]:
    """`upwind_sources` for an ambient exceedance, at the middle of its first exceeding hour."""
    row = conn.execute(
        "SELECT kind, device_id, pollutant, started_at FROM env.exceedance WHERE id = %s",
        (exceedance_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no exceedance {exceedance_id}")
    if row[0] != "ambient":
        raise InvalidInput(
            f"exceedance {exceedance_id} is an outlet's own ({row[0]}): its source is known"
        )
    found = upwind_sources(conn, row[1], row[2], row[3] + timedelta(minutes=30), **options)
    return {"exceedance_id": exceedance_id, **found}
