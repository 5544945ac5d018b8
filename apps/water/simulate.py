"""Simulator models of the water application's new kinds: groundwater wells and meters.

Both read what the synthesizer put on their site (``iot.monitoring_site.thresholds``): a well
its static level and red line, a meter its permit's annual quota and the year's opening
reading, so the published figures agree with the permits they are judged against.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sensors.scenarios import Environment
from sensors.stations import StationModel
from sensors.world import StationSpec

CST = ZoneInfo("Asia/Shanghai")
YEAR_S = 365.25 * 86400.0
_CONE_TAU_S = 3 * 3600.0  # how fast a pumping cone forms and recovers


def _pumping(env: Environment, t: float) -> float:
    """Pumping intensity, 0.3 or 1.5, mean 1 over a day: pumps run in working hours."""
    h = env.local_hour(t)
    return 1.5 if 7.0 <= h < 21.0 else 0.3


def _year_fraction(t: float) -> float:
    """Share of the local calendar year elapsed at epoch second ``t``."""
    now = datetime.fromtimestamp(t, CST)
    start = datetime(now.year, 1, 1, tzinfo=CST)
    return (now - start).total_seconds() / YEAR_S


class GroundwaterWell(StationModel):
    """A pumped well's level (m a.s.l.): a slow decline with abstraction, a pumping cone by
    day that recovers by night, and a little noise; the water temperature barely moves."""

    kind = "well"

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        th = spec.thresholds
        self.static = float(th.get("static_level_m", 0.0))
        self.cone_max = self.rng.uniform(0.4, 2.5)
        # decline, m per year: 0.2-1.5 in over-drawn aquifers; a drought year pumps harder
        decline = self.rng.uniform(0.2, 1.5)
        self.decline_m_s = decline * (3.0 if env.scenario == "drought" else 1.0) / YEAR_S
        self.cone = 0.0
        self.temp = self.rng.uniform(12.0, 16.0)
        self.last_t = env.t0

    def read(self, t: float, dt: float) -> dict[str, Any]:
        env = self.env
        while self.last_t < t:
            step = min(600.0, t - self.last_t)
            target = self.cone_max * _pumping(env, self.last_t) / 1.5
            self.cone += (target - self.cone) * (1.0 - math.exp(-step / _CONE_TAU_S))
            self.last_t += step
        level = self.static - self.decline_m_s * env.since_start(t) - self.cone
        level += self.rng.gauss(0.0, 0.005)
        return {"level_m": round(level, 3), "temp_c": round(self.temp + self.rng.gauss(0, 0.05), 2)}


class WaterMeter(StationModel):
    """A cumulative abstraction meter: it only counts up, at the rate that uses its permit's
    quota by a share of its own (some holders stay well within it, some pass it)."""

    kind = "water_meter"

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        th = spec.thresholds
        quota = float(th.get("annual_quota_m3", 50_000.0))
        self.use_ratio = float(th.get("use_ratio", self.rng.uniform(0.6, 1.15)))
        self.mean_m3_s = quota * self.use_ratio / YEAR_S
        start = float(th.get("year_start_m3", 0.0))
        # Where the meter stands when the run starts: the year's opening reading plus what
        # the holder has taken since New Year at its mean rate.
        self.volume = start + self.mean_m3_s * _year_fraction(env.t0) * YEAR_S
        self.last_t = env.t0

    def read(self, t: float, dt: float) -> dict[str, Any]:
        env = self.env
        while self.last_t < t:
            step = min(600.0, t - self.last_t)
            rate = self.mean_m3_s * _pumping(env, self.last_t + step / 2)
            self.volume += rate * step * max(0.0, 1.0 + 0.05 * self.rng.gauss(0.0, 1.0))
            self.last_t += step
        return {"volume_m3": round(self.volume, 1)}
