"""The water application's simulated stations: soil-moisture probes and river-section
water-quality stations (the ``soil`` and ``water_quality`` kinds' ``simulator``).

They are :class:`sensors.stations.StationModel` subclasses; the simulator builds them from the
kinds the installed applications define.
"""

from __future__ import annotations

import math
from typing import Any

from sensors.scenarios import Environment

# _Catchment: the rain-runoff response the flood gauges use too; it follows them when
# they move (see the report of this change).
from sensors.stations import StationModel, _Catchment
from sensors.world import StationSpec

__all__ = ["SoilProbe", "WaterQualityStation"]


class SoilProbe(StationModel):
    """Volumetric water content drying slowly (fast in the drought scenario) and refilled by
    rain; soil temperature at 10 cm, a damped, lagged copy of the air's."""

    kind = "soil"
    FIELD_CAPACITY = 42.0

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        self.threshold = float(spec.thresholds.get("drought_vwc_pct", 12.0))
        if env.scenario == "drought":
            self.vwc = self.threshold + self.rng.uniform(1.5, 4.5)
        else:
            self.vwc = self.rng.uniform(max(self.threshold + 6, 18.0), 32.0)
        self.last_t = env.t0

    def read(self, t: float, dt: float) -> dict[str, Any]:
        env = self.env
        while self.last_t < t:
            step = min(600.0, t - self.last_t)
            mid = self.last_t + step / 2
            rain = env.rain_between(self.last_t, self.last_t + step, self.lon, self.lat)
            self.vwc += 0.25 * rain - env.drying_pct_per_h(mid) * step / 3600.0
            self.vwc = min(max(self.vwc, 3.0), self.FIELD_CAPACITY)
            self.last_t += step
        temp = env.temperature(t - 7200.0, diurnal=0.55) + 0.8 + self.rng.gauss(0, 0.1)
        vwc = self.vwc + self.rng.gauss(0, 0.15)
        return {"vwc_pct": round(min(max(vwc, 0.0), 100.0), 1), "temp_c": round(temp, 1)}


class WaterQualityStation(StationModel):
    """A river section's automatic station: mostly class III, worse after heavy rain."""

    kind = "water_quality"

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        r = self.rng
        self.ph0 = r.uniform(7.4, 8.1)
        self.cod0 = r.uniform(9.0, 16.0)
        self.nh3n0 = r.uniform(0.2, 0.65)
        self.catchment = _Catchment()
        self.last_t = env.t0

    def read(self, t: float, dt: float) -> dict[str, Any]:
        env, g = self.env, self.rng.gauss
        if t > self.last_t:
            self.catchment.advance(env, self.last_t, t, self.lon, self.lat)
            self.last_t = t
        runoff = min(self.catchment.s2 / 15.0, 2.0)  # first flush from the fields and streets
        h = env.local_hour(t)
        ph = self.ph0 + 0.2 * math.sin(2 * math.pi * (h - 9) / 24) - 0.25 * runoff + g(0, 0.03)
        temp = env.temperature(t, diurnal=0.3)
        do = 10.2 - 0.14 * temp + 0.9 * env.daylight(t) - 1.4 * runoff + g(0, 0.1)
        cod = self.cod0 * (1 + 0.9 * runoff) * (1 + g(0, 0.04))
        nh3n = self.nh3n0 * (1 + 1.4 * runoff) * (1 + g(0, 0.06))
        return {
            "ph": round(min(max(ph, 5.0), 10.0), 2),
            "do_mgl": round(max(do, 1.0), 2),
            "cod_mgl": round(max(cod, 1.0), 1),
            "nh3n_mgl": round(max(nh3n, 0.02), 3),
        }
