"""The simulator's weather station: wind, temperature, cloud and sunshine over the city.

Every station reads the shared :class:`sensors.scenarios.Environment` (so the wind that dilutes
the air stations' pollutants is the wind the weather stations report) plus a station's own
exposure and noise. The wind blows mostly from the north-west in the heating season and from
the south-east in summer (the monsoon over the Shangdang basin); clouds drift as an AR(1)
process, full whenever it rains; global radiation is the clear-sky value dimmed by cloud
(Kasten & Czeplak 1980: ``1 − 0.75 (N/8)^3.4``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from apps.environment.weather import solar_elevation_deg
from sensors.scenarios import Environment
from sensors.stations import StationModel
from sensors.world import StationSpec

SOLAR_CONSTANT_CLEAR_WM2 = 1000.0  # clear-sky global radiation with the sun overhead


class WeatherStation(StationModel):
    """A 10 m automatic weather station (wind, temperature, cloud, global radiation)."""

    kind = "weather"

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        self.exposure = self.rng.uniform(0.8, 1.15)  # sheltered valley .. open ridge
        self.warmth = self.rng.uniform(-1.0, 0.6)  # altitude and siting offset, °C
        self.turn = 0.0  # this station's deviation from the regional wind direction, °
        self.cloud = self.rng.uniform(0.0, 4.0)

    def read(self, t: float, dt: float) -> dict[str, Any]:
        env = self.env
        rain = env.rain_rate(t, self.lon, self.lat)
        wind = max(0.0, env.wind(t) * self.exposure * (1 + 0.1 * self.rng.gauss(0, 1)))
        # North-west (315°) in deep winter, south-east (135°) in midsummer.
        regional = 135.0 + 180.0 * env.winter(t)
        self.turn = self._ar(self.turn, 25.0, 0.9)
        keep = math.exp(-max(dt, 1.0) / 7200.0)  # clouds persist for hours
        self.cloud = keep * self.cloud + (1 - keep) * self.rng.uniform(0.0, 8.0)
        cloud = 8.0 if rain > 0.5 else min(8.0, max(0.0, self.cloud))
        when = datetime.fromtimestamp(t, UTC)
        elevation = solar_elevation_deg(when, self.lon, self.lat)
        clear = SOLAR_CONSTANT_CLEAR_WM2 * max(0.0, math.sin(math.radians(elevation)))
        radiation = clear * (1 - 0.75 * (cloud / 8.0) ** 3.4)
        return {
            "wind_ms": round(wind, 1),
            "wind_dir_deg": round((regional + self.turn) % 360.0),
            "temp_c": round(env.temperature(t) + self.warmth, 1),
            "cloud_oktas": round(cloud),
            "radiation_wm2": round(radiation),
        }
