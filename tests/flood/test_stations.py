"""The simulator's river gauges: levels that follow from the rain over their real catchments."""

from __future__ import annotations

import math
import time

import numpy as np
import psycopg
import pytest

from apps.flood.runoff import Rating
from apps.flood.stations import (
    REAL_STORM_CROSSING_S,
    SOIL_CAPACITY_MM,
    SOIL_INITIAL_MM,
    GaugeBasin,
    RoutedCatchment,
    WaterLevelGauge,
    load_basins,
)
from sensors.scenarios import Environment, StormBand
from sensors.stations import build_stations
from sensors.world import StationSpec, load_world


def _one_point(travel_s: float) -> GaugeBasin:
    return GaugeBasin(
        3.6, np.array([113.1]), np.array([36.2]), np.array([travel_s]), Rating(10, 0.2, 1.5), "dem"
    )


def test_flow_arrives_after_the_travel_time_and_keeps_the_water() -> None:
    routing = RoutedCatchment(_one_point(1800.0), step_s=60.0)
    rain = np.r_[np.full(10, 60.0), np.zeros(2000)]  # 10 mm in ten minutes, then dry
    flow = np.array([routing.step(np.array([r])) for r in rain])
    # Nothing reaches the gauge before 30 minutes; something does in the step after.
    assert (flow[:30] == 0).all() and flow[30] > 0
    # Every millimetre the soil did not keep comes out: 3.6 km² and mm/h -> 1 m³/s a mm/h.
    kept = routing.soil[0] - SOIL_INITIAL_MM
    out_mm = flow.sum() * 60.0 / 3600.0  # m³/s over 3.6 km² is mm/h
    on_the_way = routing.ring.sum() * 60.0 / 3600.0
    assert out_mm + on_the_way == pytest.approx(10.0 - kept - routing.store[0], rel=1e-9)
    # The wetter the soil, the more of the rain runs off (saturation excess).
    assert 0 < out_mm < 10.0 and routing.soil[0] < SOIL_CAPACITY_MM


def test_a_gauge_without_a_basin_stands_for_a_disc_and_stays_put_in_a_drought() -> None:
    spec = StationSpec("WL-X", "water_level", "S-X", "x", 113.1, 36.2, 300.0,
                       {"warning_m": 3.0, "danger_m": 4.0})  # fmt: skip
    env = Environment("drought", 0.0, (112.9, 36.0, 113.3, 36.4), seed=1)
    (gauge,) = WaterLevelGauge.build_all([spec], env, 1, basins={})
    assert isinstance(gauge, WaterLevelGauge) and gauge.basin.source == "disc"
    levels = [gauge.level_at(k * 600.0) for k in range(1, 30)]
    assert max(levels) - min(levels) < 1e-9 and levels[0] < 3.0


@pytest.mark.services
def test_storm_levels_rise_after_the_catchment_rain_with_its_lag(prepared, db_url) -> None:
    with psycopg.connect(db_url) as conn:
        basins = load_basins(conn)
        world = load_world(conn, roads=False)
        catchments = dict(conn.execute("SELECT site_id, area_km2 FROM flood.catchment"))
    assert basins and set(basins) == set(catchments)
    for site_id, basin in basins.items():
        assert basin.source == "dem" and basin.area_km2 == pytest.approx(catchments[site_id])
        assert np.isfinite(basin.travel_s).all() and (basin.travel_s >= 0).all()
    specs = [s for s in world.stations if s.kind == "water_level" and s.site_id in basins]
    assert specs and world.bbox is not None
    t0 = math.floor(time.time() / 3600) * 3600.0
    # build_stations goes through the kind's registered simulator: this module's class. The
    # live demo's storm (half an hour across the city) runs the rivers 16 times as fast.
    demo = build_stations(specs, Environment("storm", t0, world.bbox, seed=3), 3)
    assert {type(m) for m in demo} == {WaterLevelGauge}
    assert {m.time_scale for m in demo if isinstance(m, WaterLevelGauge)} == {16.0}
    # A storm at a real pace: its rivers run in real time.
    band = StormBand(start_s=3600.0, crossing_s=REAL_STORM_CROSSING_S, peak_mm_h=40.0)
    env = Environment("storm", t0, world.bbox, seed=3, storm=band)
    gauges = WaterLevelGauge.build_all(specs, env, 3, basins=basins)
    step = 300.0
    times = t0 + step * np.arange(1, 24 * 12 + 1)
    rose = 0
    for gauge in gauges:
        assert isinstance(gauge, WaterLevelGauge)
        b = gauge.basin
        levels = np.array([gauge.level_at(t) for t in times])
        points = list(zip(b.lon, b.lat, strict=True))
        rain = np.array([np.mean([env.rain_rate(t, x, y) for x, y in points]) for t in times])
        assert levels[0] == pytest.approx(gauge.base, abs=1e-3)  # baseflow before the rain
        if rain.max() < 5.0 or levels.max() - gauge.base < 0.05:
            continue
        rose += 1
        wet = times[np.argmax(rain > 0.5)]
        # The river does not move before the nearest point's water can arrive...
        first = float(b.travel_s.min())
        assert (levels[times < wet + first - step] - gauge.base < 1e-3).all()
        # ...and peaks after the catchment's rain does, by about its travel times.
        lag = times[np.argmax(levels)] - times[np.argmax(rain)]
        assert first <= lag + step <= b.travel_s.max() + 4 * 3600.0, (gauge.spec.site_id, lag)
        if wet + b.travel_s.max() + 6 * 3600.0 < times[-1]:
            assert levels[-1] < levels.max()  # and recedes once all its water has passed
    assert rose >= 1
