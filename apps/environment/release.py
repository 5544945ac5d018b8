"""A release on the map: the Gaussian plume of a stack or an accidental release at a point,
its concentration contours in lon/lat, and the people, schools and hospitals inside each.

The weather is the caller's, or the latest reading of the nearest weather station; the
stability class follows from it (:mod:`apps.environment.weather`) unless given. The receptor
grid is laid on the local metric plane about the source (:mod:`gis_core.plane`): over the
few kilometres of a plume its error is far below the model's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import psycopg
import shapely
from shapely.geometry import MultiPolygon, mapping

from apps.environment import plume
from apps.environment.weather import stability_from_weather
from gis_core.errors import InvalidInput
from gis_core.plane import LocalPlane

KELVIN = 273.15
DEFAULT_THRESHOLDS = (50.0, 150.0, 500.0)  # µg/m³
MAX_CELLS = 400
COUNTED_POI = ("school", "hospital")


@dataclass(frozen=True)
class Release:
    """What is released, where, and (optionally) in what weather."""

    lon: float
    lat: float
    emission_gs: float
    height_m: float = 1.0
    diameter_m: float = 0.5
    exit_velocity_ms: float = 0.0
    exit_temp_c: float | None = None  # None: at ambient temperature (no buoyancy)
    duration_s: float | None = None  # a finite (accidental) release; None: continuous
    elapsed_s: float | None = None
    wind_ms: float | None = None
    wind_from_deg: float | None = None
    temp_c: float | None = None
    cloud_oktas: float | None = None
    stability: str | None = None
    terrain: str = "rural"
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    half_width_m: float = 5000.0
    cells: int = 200
    at: datetime | None = None  # the moment the weather is for (default: now)
    weather_from: dict[str, Any] = field(default_factory=dict)


def _check(release: Release) -> None:
    if not (-180 <= release.lon <= 180 and -90 <= release.lat <= 90):
        raise InvalidInput(f"release position {release.lon},{release.lat} is not a lon/lat")
    if release.terrain not in ("rural", "urban"):
        raise InvalidInput(f"terrain must be rural or urban, not {release.terrain!r}")
    if not 2 <= release.cells <= MAX_CELLS:
        raise InvalidInput(f"cells must be 2..{MAX_CELLS}, got {release.cells}")
    if not 100 <= release.half_width_m <= 50_000:
        raise InvalidInput(f"half_width_m must be 100..50000, got {release.half_width_m}")
    if not release.thresholds or any(not t > 0 for t in release.thresholds):
        raise InvalidInput("thresholds must be one or more concentrations > 0 µg/m³")
    if release.duration_s is not None and release.elapsed_s is None:
        raise InvalidInput("a release with duration_s needs elapsed_s (when to look)")


def inside_city(conn: psycopg.Connection, lon: float, lat: float) -> bool | None:
    """Whether a point lies in the city's boundary (None: no boundary loaded)."""
    row = conn.execute(
        "SELECT bool_or(ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)))"
        " FROM ref.admin_area WHERE level = 'city'",
        (lon, lat),
    ).fetchone()
    return None if row is None else row[0]


def nearest_weather(conn: psycopg.Connection, lon: float, lat: float) -> dict[str, Any] | None:
    """The latest reading of the weather station nearest to a point, with its id and time."""
    row = conn.execute(
        """
        SELECT st.device_id, st.ts, st.reading::text
        FROM iot.device_state st
        JOIN iot.device d ON d.id = st.device_id
        JOIN iot.monitoring_site s ON s.id = d.site_id
        WHERE st.kind = 'weather'
        ORDER BY s.geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326)
        LIMIT 1
        """,
        (lon, lat),
    ).fetchone()
    if row is None:
        return None
    return {"device_id": row[0], "ts": row[1], **orjson.loads(row[2])}


def with_weather(conn: psycopg.Connection, release: Release) -> Release:
    """Fill the weather the caller left out from the nearest weather station."""
    if None not in (release.wind_ms, release.wind_from_deg, release.temp_c) and (
        release.stability is not None or release.cloud_oktas is not None
    ):
        return release
    found = nearest_weather(conn, release.lon, release.lat)
    if found is None:
        raise InvalidInput(
            "no weather station has reported yet: give wind_ms, wind_from_deg, temp_c and "
            "cloud_oktas (or stability)"
        )

    def pick(given: float | None, name: str) -> float | None:
        return given if given is not None else found.get(name)

    return replace(
        release,
        wind_ms=pick(release.wind_ms, "wind_ms"),
        wind_from_deg=pick(release.wind_from_deg, "wind_dir_deg"),
        temp_c=pick(release.temp_c, "temp_c"),
        cloud_oktas=pick(release.cloud_oktas, "cloud_oktas"),
        at=release.at or found["ts"],
        weather_from={"device_id": found["device_id"], "ts": found["ts"].isoformat()},
    )


@dataclass(frozen=True)
class PlumeResult:
    grid: plume.ReceptorGrid
    values: np.ndarray
    stability: str
    areas: dict[float, MultiPolygon]  # in lon/lat
    release: Release
    compute_ms: float


def model(release: Release) -> PlumeResult:
    """The concentration grid and contour areas (no database)."""
    _check(release)
    if release.wind_ms is None or release.wind_from_deg is None or release.temp_c is None:
        raise InvalidInput("the weather is incomplete: wind_ms, wind_from_deg and temp_c")
    started = time.perf_counter()
    try:
        stability = release.stability or stability_from_weather(
            release.at or datetime.now(UTC),
            release.lon,
            release.lat,
            wind_ms=release.wind_ms,
            cloud_oktas=release.cloud_oktas if release.cloud_oktas is not None else 4.0,
        )
        ambient_k = release.temp_c + KELVIN
        stack = plume.Stack(
            height_m=release.height_m,
            diameter_m=release.diameter_m,
            exit_velocity_ms=release.exit_velocity_ms,
            exit_temp_k=(release.exit_temp_c + KELVIN)
            if release.exit_temp_c is not None
            else ambient_k,
        )
        grid = plume.ReceptorGrid.around(0.0, 0.0, release.half_width_m, release.cells, "local")
        values = plume.ground_concentration_grid(
            grid,
            source_east_m=0.0,
            source_north_m=0.0,
            emission_gs=release.emission_gs,
            stack=stack,
            wind_ms=release.wind_ms,
            wind_from_deg=release.wind_from_deg,
            ambient_temp_k=ambient_k,
            stability=stability,
            terrain=release.terrain,
            stack_tip_downwash=release.exit_velocity_ms > 0,
            duration_s=release.duration_s,
            elapsed_s=release.elapsed_s,
        )
        metric = plume.contours(grid, values, sorted(release.thresholds))
    except plume.PlumeInputError as exc:
        raise InvalidInput(str(exc)) from None
    plane = LocalPlane(release.lon, release.lat)

    def to_lonlat(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [plane.lon0 + xy[:, 0] / plane.kx, plane.lat0 + xy[:, 1] / 110_574.0]
        )

    areas = {t: shapely.transform(a, to_lonlat) for t, a in metric.items()}
    elapsed = (time.perf_counter() - started) * 1000
    return PlumeResult(grid, values, stability, areas, release, elapsed)


AFFECTED = """
WITH a AS (SELECT ST_GeomFromWKB(%(wkb)s, 4326) AS g)
SELECT
  (SELECT coalesce(sum(c.population * ST_Area(ST_Intersection(c.geom, a.g))
                       / nullif(ST_Area(c.geom), 0)), 0)
   FROM ref.population_cell c WHERE ST_Intersects(c.geom, a.g)),
  (SELECT coalesce(jsonb_agg(jsonb_build_object('id', p.id, 'category', p.category,
                                                'name_zh', p.name_zh) ORDER BY p.id), '[]')
   FROM ref.poi p WHERE p.category = ANY(%(categories)s) AND ST_Intersects(p.geom, a.g))::text
FROM a
"""


def affected(conn: psycopg.Connection, area: MultiPolygon) -> dict[str, Any]:
    """Residents (area-weighted population cells), schools and hospitals inside an area."""
    if area.is_empty:
        return {"population": 0, "schools": 0, "hospitals": 0, "places": []}
    row = conn.execute(
        AFFECTED, {"wkb": shapely.to_wkb(area), "categories": list(COUNTED_POI)}
    ).fetchone()
    places = orjson.loads(row[1]) if row else []
    return {
        "population": round(float(row[0])) if row else 0,
        "schools": sum(p["category"] == "school" for p in places),
        "hospitals": sum(p["category"] == "hospital" for p in places),
        "places": places,
    }


def simulate(conn: psycopg.Connection, release: Release) -> dict[str, Any]:
    """The whole answer: contours as GeoJSON with the affected counts of each."""
    return simulate_areas(conn, release)[0]


def simulate_areas(
    conn: psycopg.Connection, release: Release
) -> tuple[dict[str, Any], PlumeResult]:
    """`simulate`'s answer and the model result it came from (its areas as shapely)."""
    _check(release)
    if inside_city(conn, release.lon, release.lat) is False:
        raise InvalidInput(
            f"the release at {release.lon},{release.lat} is outside the city's boundary"
        )
    started = time.perf_counter()
    result = model(with_weather(conn, release))
    features = []
    for threshold, area in sorted(result.areas.items()):
        counts = affected(conn, area)
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(area) if not area.is_empty else None,
                "properties": {"threshold_ugm3": threshold, **counts},
            }
        )
    peak = int(np.argmax(result.values))
    row, col = np.unravel_index(peak, result.values.shape)
    plane = LocalPlane(release.lon, release.lat)
    peak_lon, peak_lat = plane.to_lonlat(
        float(result.grid.east_m[col]), float(result.grid.north_m[row])
    )
    used = result.release
    return {
        "type": "FeatureCollection",
        "features": features,
        "stability": result.stability,
        "weather": {
            "wind_ms": used.wind_ms,
            "wind_from_deg": used.wind_from_deg,
            "temp_c": used.temp_c,
            "cloud_oktas": used.cloud_oktas,
            "station": used.weather_from or None,
        },
        "peak": {
            "ugm3": float(result.values.max()),
            "lon": peak_lon,
            "lat": peak_lat,
        },
        "model_ms": round(result.compute_ms, 2),
        "total_ms": round((time.perf_counter() - started) * 1000, 2),
    }, result
