"""The simulated environment: weather, rain fields and the scenarios that stress the platform.

An :class:`Environment` answers, for a simulated time and place, what the weather is: air
temperature, wind, rain rate, how stagnant the air is. The fixed stations read their values
from it, so stations near each other agree and a rain cell shows up on the rain gauges first
and on the river gauges after.

Scenarios
---------
normal
    Seasonal and diurnal weather for Changzhi (a Shanxi coal city: a heating season with high
    SO2 and particulates, summer ozone), the odd light shower, rare stagnation episodes.
storm
    A convective rain band sweeping across the area in about 30 simulated minutes; rain gauges
    spike, river gauges rise past their warning level (some past danger), then recede.
drought
    Hot, dry and windless: soil moisture falls through the drought threshold within hours.
pollution
    A temperature inversion: within the first hour PM2.5 climbs above 150 µg/m³ at the air
    stations, with SO2, NO2 and CO; ozone drops.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime

from gis_core.plane import M_PER_DEG_LAT, LocalPlane
from sensors.clock import CST

__all__ = ["SCENARIOS", "Environment", "StormBand"]

SCENARIOS = ("normal", "storm", "drought", "pollution")
_KM_PER_DEG_LAT = M_PER_DEG_LAT / 1000


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


class _Wobble:
    """Smooth pseudo-random variation in [-1, 1]: a few incommensurate sinusoids."""

    def __init__(self, rng: random.Random, min_period_h: float, max_period_h: float) -> None:
        self.terms = [
            (
                2 * math.pi / (rng.uniform(min_period_h, max_period_h) * 3600.0),
                rng.uniform(0, 2 * math.pi),
                rng.uniform(0.5, 1.0),
            )
            for _ in range(3)
        ]
        self.norm = sum(a for _, _, a in self.terms)

    def __call__(self, t: float) -> float:
        return sum(a * math.sin(w * t + p) for w, p, a in self.terms) / self.norm


@dataclass(frozen=True)
class StormBand:
    """A rain band moving across the area.

    Attributes
    ----------
    start_s
        Simulated seconds after the run's start when the band's leading edge enters.
    crossing_s
        Simulated seconds to cross the whole area.
    peak_mm_h
        Rain rate at the core of the band.
    bearing_deg
        Direction of motion (clockwise from north; 70 = towards east-north-east).
    """

    start_s: float = 120.0
    crossing_s: float = 1800.0
    peak_mm_h: float = 85.0
    bearing_deg: float = 70.0


@dataclass(frozen=True)
class _Shower:
    t_s: float  # simulated epoch seconds at its peak
    x_km: float
    y_km: float
    radius_km: float
    sigma_s: float
    peak_mm_h: float


class Environment:
    """Weather and scenario state as a function of simulated time and place.

    Parameters
    ----------
    scenario
        One of :data:`SCENARIOS`.
    t0
        Simulated epoch seconds at the start of the run.
    bbox
        lon/lat box of the simulated area (rain fields are laid out over it).
    seed
        Seeds every random choice.
    storm
        Shape of the storm scenario's rain band.
    """

    def __init__(
        self,
        scenario: str,
        t0: float,
        bbox: tuple[float, float, float, float],
        seed: int = 0,
        storm: StormBand | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; scenarios: {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.t0 = t0
        self.storm = storm or StormBand()
        rng = random.Random(f"env-{seed}")
        minx, miny, maxx, maxy = bbox
        self.lon0, self.lat0 = (minx + maxx) / 2, (miny + maxy) / 2
        self.kx = LocalPlane(self.lon0, self.lat0).kx / 1000  # km in a degree of longitude
        # Extent of the area along the storm's motion, in km, and its width across.
        b = math.radians(self.storm.bearing_deg)
        self.ux, self.uy = math.sin(b), math.cos(b)
        corners = [self._km(x, y) for x in (minx, maxx) for y in (miny, maxy)]
        along = [cx * self.ux + cy * self.uy for cx, cy in corners]
        self.u_min, self.u_max = min(along), max(along)
        extent = max(self.u_max - self.u_min, 1.0)
        self.band_km = max(0.25 * extent, 4.0)
        self.travel_km = extent + 5.0 * self.band_km
        self.cell_phase = rng.uniform(0, 2 * math.pi)
        self.temp_wobble = _Wobble(rng, 20, 90)
        self.wind_wobble = _Wobble(rng, 4, 30)
        self.stag_wobble = _Wobble(rng, 30, 120)
        half_x = max((maxx - minx) / 2 * self.kx, 1.0)
        half_y = max((maxy - miny) / 2 * _KM_PER_DEG_LAT, 1.0)
        # Light showers of ordinary weather: about one every two days, somewhere.
        self.showers = [
            _Shower(
                t_s=t0 + rng.uniform(-6, 30 * 24) * 3600.0,
                x_km=rng.uniform(-half_x, half_x),
                y_km=rng.uniform(-half_y, half_y),
                radius_km=rng.uniform(15, 45),
                sigma_s=rng.uniform(20, 50) * 60.0,
                peak_mm_h=rng.uniform(1.0, 6.0),
            )
            for _ in range(15)
        ]
        # Stagnation episodes of ordinary weather (mostly in the heating season).
        self.episodes = [
            (
                t0 + rng.uniform(-1, 30) * 86400.0,
                rng.uniform(12, 36) * 3600.0,
                rng.uniform(0.6, 1.4),
            )
            for _ in range(3)
        ]

    # ------------------------------------------------------------------ calendar

    def _km(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * _KM_PER_DEG_LAT

    @staticmethod
    def local_hour(t: float) -> float:
        """Hour of day in China Standard Time, fractional."""
        return ((t + 8 * 3600.0) % 86400.0) / 3600.0

    @staticmethod
    def winter(t: float) -> float:
        """1 in mid-January, 0 in mid-July: how deep into the cold (heating) season."""
        doy = datetime.fromtimestamp(t, CST).timetuple().tm_yday
        return (1.0 + math.cos(2 * math.pi * (doy - 15) / 365.25)) / 2.0

    @staticmethod
    def spring(t: float) -> float:
        """Peaks in April: the windy, dusty season."""
        doy = datetime.fromtimestamp(t, CST).timetuple().tm_yday
        return max(0.0, math.cos(2 * math.pi * (doy - 105) / 365.25)) ** 3

    @staticmethod
    def daylight(t: float) -> float:
        """0 at night, rising to 1 in the early afternoon."""
        h = Environment.local_hour(t)
        return max(0.0, math.sin(math.pi * (h - 6.5) / 13.0)) ** 1.3

    def since_start(self, t: float) -> float:
        return t - self.t0

    # ------------------------------------------------------------------ weather

    def temperature(self, t: float, diurnal: float = 1.0) -> float:
        """Air temperature (°C): Changzhi's climate (January -6, July 23), a diurnal swing
        scaled by ``diurnal`` (soil follows the air with a damped swing)."""
        h = self.local_hour(t)
        mean = 8.5 + 14.5 * (1.0 - 2.0 * self.winter(t))
        swing = 5.5 * diurnal * math.cos(2 * math.pi * (h - 15.0) / 24.0)
        value = mean + swing + 2.0 * self.temp_wobble(t)
        if self.scenario == "drought":
            value += 4.0
        elif self.scenario == "storm":
            value -= 6.0 * self.storm_activity(t)
        return value

    def wind(self, t: float) -> float:
        """Wind speed (m/s) near the ground."""
        v = 2.2 + 1.2 * self.wind_wobble(t) + 0.8 * self.daylight(t) + 1.2 * self.spring(t)
        if self.scenario == "pollution":
            v = v * (1.0 - 0.7 * self.inversion(t)) + 0.3 * self.inversion(t)
        elif self.scenario == "storm":
            v += 8.0 * self.storm_activity(t)
        return max(0.3, v)

    def storm_front_km(self, t: float) -> float:
        """Position of the storm band's core along its direction of motion."""
        f = (t - self.t0 - self.storm.start_s) / self.storm.crossing_s
        return self.u_min - 2.5 * self.band_km + f * self.travel_km

    def storm_activity(self, t: float) -> float:
        """0..1: how much of the storm is over the area now."""
        if self.scenario != "storm":
            return 0.0
        front, band = self.storm_front_km(t), self.band_km
        arriving = _smoothstep((front - (self.u_min - 2.0 * band)) / band)
        leaving = 1.0 - _smoothstep((front - (self.u_max + band)) / (2.0 * band))
        return arriving * leaving

    def rain_rate(self, t: float, lon: float, lat: float) -> float:
        """Rain rate (mm/h) at a place and time."""
        if self.scenario == "drought":
            return 0.0
        x, y = self._km(lon, lat)
        rate = 0.0
        for s in self.showers:
            dt = (t - s.t_s) / s.sigma_s
            if abs(dt) < 4:
                d2 = ((x - s.x_km) ** 2 + (y - s.y_km) ** 2) / s.radius_km**2
                rate += s.peak_mm_h * math.exp(-0.5 * (dt * dt + d2))
        if self.scenario == "storm":
            u = x * self.ux + y * self.uy
            v = -x * self.uy + y * self.ux
            d = (u - self.storm_front_km(t)) / self.band_km
            # A convective core, with lighter stratiform rain trailing behind it; cells along
            # the band make some places wetter than others.
            core = math.exp(-0.5 * d * d)
            trail = 0.22 * math.exp(-0.5 * ((d + 2.0) / 1.5) ** 2)
            cells = 0.75 + 0.25 * math.sin(v / 9.0 + self.cell_phase)
            rate += self.storm.peak_mm_h * (core + trail) * cells
        return rate

    def rain_between(self, t_from: float, t_to: float, lon: float, lat: float) -> float:
        """Rain (mm) that falls at a place between two times."""
        span = t_to - t_from
        if span <= 0:
            return 0.0
        steps = max(1, min(240, math.ceil(span / 30.0)))
        h = span / steps
        total = sum(self.rain_rate(t_from + (k + 0.5) * h, lon, lat) for k in range(steps))
        return total * h / 3600.0

    # ------------------------------------------------------------------ air

    def stagnation(self, t: float) -> float:
        """Multiplier (>= ~0.7) on ground-level primary pollutants from the weather."""
        factor = 1.0 + 0.25 * self.stag_wobble(t)
        for start, length, height in self.episodes:
            if start <= t <= start + length:
                factor += height * self.winter(t) * math.sin(math.pi * (t - start) / length)
        return factor

    def inversion(self, t: float) -> float:
        """0..1: strength of the pollution scenario's inversion (0 in other scenarios)."""
        if self.scenario != "pollution":
            return 0.0
        s = self.since_start(t)
        build = _smoothstep((s - 300.0) / 2400.0)
        clear = 1.0 - _smoothstep((s - 10 * 3600.0) / 7200.0)  # a cold front after ten hours
        return build * clear

    # ------------------------------------------------------------------ soil

    def drying_pct_per_h(self, t: float) -> float:
        """Loss of soil moisture (volumetric %, per hour) to evaporation."""
        warmth = max(0.15, (self.temperature(t) + 5.0) / 25.0)
        sun = 0.3 + 1.4 * self.daylight(t)
        if self.scenario == "drought":
            # A compressed drought: weeks of drying played in hours.
            return 3.0 * (0.6 + 0.8 * self.daylight(t))
        return 0.02 * sun * warmth

    def interval_override(self, kind: str) -> float | None:
        """Reporting interval a scenario imposes on a kind (intensified monitoring)."""
        if self.scenario == "drought" and kind == "soil":
            return 600.0
        return None
