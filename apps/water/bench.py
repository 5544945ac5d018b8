"""``changzhi bench water``: drought map, daily classes with trends, upstream trace.

- ``drought_map_ms``: every soil probe's latest reading to relative moisture, grades, the
  interpolated grade over the city's cropland and the km² per district and grade, through the
  same service the API calls (the cropland and districts cached, as in a running server; the
  first, uncached call is ``drought_map_cold_ms``).
- ``classes_ms``: a year of hourly water-quality data for ``stations`` stations (in memory) to
  daily classes and, per station and factor, the Mann–Kendall trend of the monthly means;
  ``peer_classes_ms`` is the plain pandas row-wise peer of the same daily classes.
- ``spi_ms`` (SPI-3 at every rain gauge from its 30-year monthly record), ``outlook_ms`` (the
  7-day outlook at every probe), ``drought_grid_ms`` (the map as GeoJSON patches) and
  ``report_ms`` (the annual report's PDF), each the median of three warm runs.
- ``trace_ms``: an upstream trace from a water-quality station to ranked outlets, through the
  service (network cached; its build is ``river_network_build_ms``), median over stations.

The reference city is loaded into a throwaway PostGIS (full scale of synthetic objects, a
coarser DEM than production so the load stays within minutes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from apps.bench.common import bench_services, median

Log = Callable[[str], None]
TARGET_MS = 1000.0


def _year_of_readings(stations: int, seed: int = 11) -> pd.DataFrame:
    """Hourly pH, DO, COD and ammonia for a year: seasonal, diurnal, noisy, a few gaps."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-01-01", periods=365 * 24, freq="h", tz="Asia/Shanghai")
    n = len(ts)
    doy = ts.dayofyear.to_numpy()
    hour = ts.hour.to_numpy()
    frames = []
    for k in range(stations):
        season = np.cos(2 * np.pi * (doy - 200) / 365.25)
        cod = rng.uniform(10, 22) * (1 + 0.2 * season) * rng.lognormal(0, 0.12, n)
        nh3n = rng.uniform(0.2, 1.2) * (1 + 0.3 * season) * rng.lognormal(0, 0.2, n)
        do = 9.0 - 2.0 * (1 - season) / 2 + 0.6 * np.sin(2 * np.pi * (hour - 9) / 24)
        ph = rng.uniform(7.2, 8.2) + 0.1 * np.sin(2 * np.pi * (hour - 9) / 24)
        frame = pd.DataFrame(
            {"station": f"WQ-{k:03d}", "ts": ts, "ph": ph, "do": do + rng.normal(0, 0.2, n),
             "cod": cod, "nh3n": nh3n}
        )  # fmt: skip
        gaps = rng.random(n) < 0.02  # an analyser offline now and then
        frame.loc[gaps, "nh3n"] = np.nan
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _classes_and_trends(readings: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    from apps.water.quality import concentration_trend, daily_classes

    daily = daily_classes(readings)
    month = pd.DatetimeIndex(daily["date"]).to_period("M")
    monthly = daily.groupby([daily["station"], month])[["do", "cod", "nh3n"]].mean()
    trends = 0
    for _, group in monthly.groupby(level=0):
        for factor in ("do", "cod", "nh3n"):
            concentration_trend(group[factor].to_numpy())
            trends += 1
    return daily, trends


def _drought_extras(conn: Any) -> dict[str, Any]:
    """SPI-3 at every gauge from its 30-year record, the 7-day outlook, the drought grid as
    GeoJSON and the annual report, each timed once warm (median of three)."""
    from datetime import datetime

    from apps.water import drought_service, report, service

    year = datetime.now(service.LOCAL).year
    work: dict[str, Callable[[], Any]] = {
        "spi_ms": lambda: drought_service.spi_status(conn, 3),
        "outlook_ms": lambda: drought_service.drought_outlook(conn, 7, None, "other", 8.0, 22.0),
        "drought_grid_ms": lambda: service.drought_geojson(conn),
        "report_ms": lambda: report.render(conn, year),
    }
    out: dict[str, Any] = {}
    for name, run in work.items():
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            result = run()
            runs.append((time.perf_counter() - t) * 1000)
        out[name] = round(median(runs), 1)
        if name == "spi_ms":
            out["spi_gauges"] = len(result["gauges"])
        if name == "drought_grid_ms":
            out["drought_grid_patches"] = len(result["features"])
    return out


def bench_water(log: Log, stations: int = 50, scale: float = 1.0) -> dict[str, Any]:
    from apps.water import service, tracing
    from apps.water.quality import daily_classes_rowwise
    from gis_core.db import connect
    from gis_core.errors import InvalidInput
    from gis_core.settings import (
        AuthSettings,
        DatabaseSettings,
        DataSettings,
        MqttSettings,
        PlatformSettings,
        Settings,
    )
    from layers.reference.load import load_dataset

    notes: list[str] = []
    log(f"a year of hourly readings for {stations} stations")
    readings = _year_of_readings(stations)
    t = time.perf_counter()
    daily, trends = _classes_and_trends(readings)
    classes_ms = (time.perf_counter() - t) * 1000
    log("the row-wise pandas peer")
    t = time.perf_counter()
    peer = daily_classes_rowwise(readings)
    peer_ms = (time.perf_counter() - t) * 1000
    if not np.array_equal(peer["water_class"].to_numpy(), daily["water_class"].to_numpy()):
        notes.append("the row-wise peer disagrees with the vectorized classes")

    with bench_services("water") as env:
        log(f"loading the reference city (scale {scale:g}, 500 m DEM)")
        settings = Settings(
            platform=PlatformSettings(var_dir=env.var_dir),
            database=DatabaseSettings(url=env.database_url),
            mqtt=MqttSettings(url=env.mqtt_url),
            auth=AuthSettings(secret_key=env.jwt_secret),
            data=DataSettings(scale=scale, dem_resolution_m=500.0),
        )
        load_dataset(settings, force=True)
        with connect(env.database_url) as conn:
            # every probe reports: moisture from wet to very dry
            conn.execute(
                """
                INSERT INTO iot.device_state (device_id, kind, ts, reading)
                SELECT d.id, 'soil', now(), jsonb_build_object(
                    'vwc_pct', round((8 + 30 * random())::numeric, 1), 'temp_c', 15)
                FROM iot.device d WHERE d.kind = 'soil'
                """
            )
            conn.commit()
            probes = conn.execute("SELECT count(*) FROM iot.device WHERE kind = 'soil'").fetchone()
            t = time.perf_counter()
            service.drought_status(conn)
            cold_ms = (time.perf_counter() - t) * 1000
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                result = service.drought_status(conn)
                runs.append((time.perf_counter() - t) * 1000)
            drought_ms = median(runs)
            districts = len(result["districts"])
            towns = len(result["towns"])
            extra = _drought_extras(conn)

            wq = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM iot.monitoring_site WHERE kind = 'water_quality' ORDER BY id"
                ).fetchall()
            ]
            t = time.perf_counter()
            tracing._RIVERS.get(conn)
            build_ms = (time.perf_counter() - t) * 1000
            trace_runs, ranked, off = [], [], 0
            for site in wq:
                t = time.perf_counter()
                try:
                    found = tracing.trace_station(conn, site)
                except InvalidInput:  # a station off the river network: counted, not timed
                    off += 1
                    continue
                trace_runs.append((time.perf_counter() - t) * 1000)
                ranked.append(len(found["ranked"]))
    trace_ms = median(trace_runs) if trace_runs else None
    if trace_ms is None:
        notes.append("no water-quality station lies on the river network: trace not timed")
    if off:
        notes.append(f"{off} of {len(wq)} stations are off the river network (not timed)")
    notes.append(
        "classes_ms is computed on readings in memory; reading a year of telemetry from the "
        "database is not included"
    )
    return {
        "bench": "water",
        "stations": stations,
        "drought_map_ms": round(drought_ms, 1),
        "classes_ms": round(classes_ms, 1),
        "trace_ms": None if trace_ms is None else round(trace_ms, 1),
        "peer_classes_ms": round(peer_ms, 1),
        "drought_map_cold_ms": round(cold_ms, 1),
        **extra,
        "towns": towns,
        "river_network_build_ms": round(build_ms, 1),
        "probes": probes[0] if probes else 0,
        "districts": districts,
        "station_days": len(daily),
        "trends": trends,
        "traced_stations": len(trace_runs),
        "outlets_ranked_median": float(np.median(ranked)) if ranked else None,
        "target_ms": TARGET_MS,
        "notes": notes,
    }
