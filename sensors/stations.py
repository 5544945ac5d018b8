"""Fixed monitoring stations: what each kind measures, as a function of the environment.

Every model keeps its own state (a river's storage, the soil's moisture, a controller's fault)
and a private random stream seeded from the run's seed and the device id, so a run with the
same seed publishes the same values. ``read(t, dt)`` gives the measurement fields at simulated
epoch second ``t``, ``dt`` seconds after the previous reading.
"""

from __future__ import annotations

import importlib
import math
import random
from collections.abc import Sequence
from typing import Any

from gis_core.application import device_kinds
from sensors.scenarios import Environment
from sensors.world import StationSpec

__all__ = [
    "AirStation",
    "EmissionStation",
    "SignalController",
    "SoilProbe",
    "StationModel",
    "WaterQualityStation",
    "build_stations",
    "model_class",
]

DEFAULT_PERMIT = {"so2_mgm3": 35.0, "nox_mgm3": 50.0, "dust_mgm3": 10.0}
SIGNAL_FAULTS = (
    "lamp failure",
    "detector failure",
    "communication loss",
    "power failure",
    "conflict monitor",
)
_RESERVOIR_S = 900.0  # linear-reservoir time constant of a catchment's response to rain


class StationModel:
    """Base of the station models: identity, place, random stream."""

    kind = ""

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        self.spec = spec
        self.env = env
        self.rng = random.Random(f"{seed}-{spec.device_id}")
        lon0, lat0 = env.lon0, env.lat0
        self.lon = spec.lon if spec.lon is not None else lon0
        self.lat = spec.lat if spec.lat is not None else lat0

    def read(self, t: float, dt: float) -> dict[str, Any]:
        """The measurement fields at simulated epoch second ``t``."""
        raise NotImplementedError

    @classmethod
    def build_all(
        cls, specs: Sequence[StationSpec], env: Environment, seed: int
    ) -> list[StationModel]:
        """The models of every station of this kind (a kind may spread something among
        them, as the river gauges spread storm severities)."""
        return [cls(spec, env, seed) for spec in specs]

    def _ar(self, state: float, sigma: float, keep: float = 0.85) -> float:
        """Next value of an AR(1) process with stationary standard deviation ``sigma``."""
        return keep * state + math.sqrt(1 - keep * keep) * self.rng.gauss(0.0, sigma)


class _Catchment:
    """Two linear reservoirs in series: rain in (mm/h), a lagged, smoothed flow out (mm/h)."""

    def __init__(self) -> None:
        self.s1 = 0.0
        self.s2 = 0.0

    def step(self, rain_mm_h: float, dt: float) -> float:
        a = math.exp(-dt / _RESERVOIR_S)
        self.s1 = rain_mm_h + (self.s1 - rain_mm_h) * a
        self.s2 = self.s1 + (self.s2 - self.s1) * a
        return self.s2

    def advance(
        self, env: Environment, t_from: float, t_to: float, lon: float, lat: float
    ) -> float:
        span = t_to - t_from
        steps = max(1, math.ceil(span / 60.0))
        h = span / steps
        for k in range(steps):
            self.step(env.rain_rate(t_from + (k + 0.5) * h, lon, lat), h)
        return self.s2


class AirStation(StationModel):
    """Six pollutants of an ambient air station (µg/m³; CO mg/m³), HJ 663 style integers."""

    kind = "air"

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        self.factor = self.rng.uniform(0.85, 1.25)
        self.noise = dict.fromkeys(("pm", "coarse", "so2", "no2", "co", "o3"), 0.0)
        r = self.rng
        self.episode = {
            "pm25": r.uniform(150, 200),
            "so2": r.uniform(50, 110),
            "no2": r.uniform(35, 70),
            "co": r.uniform(1.2, 2.6),
        }

    def _n(self, name: str, sigma: float = 0.15) -> float:
        self.noise[name] = self._ar(self.noise[name], sigma)
        return math.exp(self.noise[name] - sigma * sigma / 2)

    def read(self, t: float, dt: float) -> dict[str, Any]:
        env = self.env
        h = env.local_hour(t)
        w, dust = env.winter(t), env.spring(t)
        dilution = min(1.7, 1.6 / (0.6 + 0.5 * env.wind(t)))
        washout = math.exp(-env.rain_rate(t, self.lon, self.lat) / 8.0)
        stagnant = env.stagnation(t) * dilution * washout * self.factor
        primary = (
            1
            + 0.28 * math.cos(2 * math.pi * (h - 1) / 24)
            + 0.12 * math.exp(-(((h - 8) / 1.5) ** 2))
        )
        traffic = 0.8 + 0.35 * (
            math.exp(-(((h - 8) / 1.6) ** 2)) + math.exp(-(((h - 19) / 2) ** 2))
        )
        pm25 = (32 + 48 * w + 10 * dust) * primary * stagnant * self._n("pm")
        pm10 = pm25 * (1.5 + 0.25 * w + 0.9 * dust) * self._n("coarse", 0.08)
        so2 = (10 + 30 * w) * (1 + 0.2 * math.cos(2 * math.pi * (h - 10) / 24)) * stagnant
        so2 *= self._n("so2")
        no2 = (22 + 20 * w) * traffic * stagnant * self._n("no2")
        co = (0.6 + 0.9 * w) * primary * stagnant * self._n("co", 0.1)
        inv = env.inversion(t)
        o3 = (45 + 75 * (1 - w)) * (0.35 + 1.1 * env.daylight(t)) * (1 - 0.5 * inv)
        o3 *= self._n("o3", 0.12)
        if inv > 0:
            wobble = 1 + 0.04 * self.rng.gauss(0, 1)
            pm25 += inv * self.episode["pm25"] * wobble
            pm10 += inv * 1.4 * self.episode["pm25"] * wobble
            so2 += inv * self.episode["so2"] * wobble
            no2 += inv * self.episode["no2"] * wobble
            co += inv * self.episode["co"] * wobble
        return {
            "pm25": round(pm25),
            "pm10": round(max(pm10, pm25)),
            "so2": round(so2),
            "no2": round(no2),
            "o3": round(o3),
            "co": round(co, 1),
        }


class EmissionStation(StationModel):
    """A stack's continuous emission monitor: mostly within the permit, rare exceedances."""

    kind = "emission"
    FIELDS = ("so2_mgm3", "nox_mgm3", "dust_mgm3")

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        permit = {k: v for k, v in spec.limits.items() if k in self.FIELDS and v > 0}
        self.permit = {**DEFAULT_PERMIT, **permit}
        self.level = {f: self.rng.uniform(0.35, 0.65) for f in self.FIELDS}
        self.noise = dict.fromkeys(self.FIELDS, 0.0)
        height = spec.stack_height_m or self.rng.uniform(40, 120)
        self.design_flow = 8000.0 * height * self.rng.uniform(0.8, 1.2)
        self.excursion: tuple[str, float, int] | None = None  # field, factor, readings left

    def read(self, t: float, dt: float) -> dict[str, Any]:
        h = self.env.local_hour(t)
        load = 0.93 + 0.07 * math.sin(2 * math.pi * (h - 8) / 24) + 0.02 * self.rng.gauss(0, 1)
        if self.excursion is None and self.rng.random() < 0.004 * max(dt, 1.0) / 600.0:
            # A desulphurizer trip, a burner fault, a torn bag filter: hours over the permit.
            field_name = self.rng.choice(self.FIELDS)
            self.excursion = (field_name, self.rng.uniform(1.08, 1.6), self.rng.randint(2, 6))
        out: dict[str, Any] = {}
        for f in self.FIELDS:
            self.noise[f] = self._ar(self.noise[f], 0.08, 0.7)
            value = self.permit[f] * self.level[f] * load * math.exp(self.noise[f])
            if self.excursion is not None and self.excursion[0] == f:
                value = self.permit[f] * self.excursion[1] * (1 + 0.03 * self.rng.gauss(0, 1))
            out[f] = round(max(value, 0.0), 2)
        if self.excursion is not None:
            field_name, factor, left = self.excursion
            self.excursion = (field_name, factor, left - 1) if left > 1 else None
        out["flow_m3h"] = round(self.design_flow * load)
        return out


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


class SignalController(StationModel):
    """A traffic-signal controller: its mode by time of day, the phase it is in, and faults
    that come now and then (more often in a storm) and are repaired."""

    kind = "signal"

    def __init__(self, spec: StationSpec, env: Environment, seed: int) -> None:
        super().__init__(spec, env, seed)
        r = self.rng
        self.cycle = float(r.choice((90, 100, 120, 140, 150)))
        self.offset = r.uniform(0, self.cycle)
        weights = [r.uniform(0.6, 1.4) for _ in range(4)]
        total = sum(weights)
        self.splits = [sum(weights[: k + 1]) / total for k in range(4)]
        self.night_flash = r.random() < 0.4
        self.adaptive = r.random() < 0.3
        self.fault: str | None = None
        self.fault_until = 0.0

    def _mode(self, h: float) -> str:
        if h < 5.0 or h >= 23.5:
            return "flash" if self.night_flash else "actuated"
        if self.adaptive:
            return "actuated"
        if 7.0 <= h < 9.5 or 17.0 <= h < 19.5:
            return "coordinated"
        return "fixed"

    def read(self, t: float, dt: float) -> dict[str, Any]:
        env = self.env
        if self.fault is not None and t >= self.fault_until:
            self.fault = None  # repaired
        elif self.fault is None:
            rate = 1.0 / (3 * 86400.0) * (1.0 + 12.0 * env.storm_activity(t))
            if self.rng.random() < rate * max(dt, 1.0):
                self.fault = self.rng.choice(SIGNAL_FAULTS)
                self.fault_until = t + self.rng.uniform(5, 60) * 60.0
        mode = self._mode(env.local_hour(t))
        if self.fault in ("power failure",):
            mode = "off"
        elif self.fault in ("conflict monitor", "communication loss"):
            mode = "flash"
        elif self.fault == "detector failure" and mode == "actuated":
            mode = "fixed"
        phase = 0
        if mode not in ("flash", "off"):
            where = ((t + self.offset) % self.cycle) / self.cycle
            phase = next(k + 1 for k, edge in enumerate(self.splits) if where < edge + 1e-12)
        return {"mode": mode, "phase": phase, "fault": self.fault}


def model_class(kind: str) -> type[StationModel] | None:
    """The simulator model an installed device kind names (``DeviceKind.simulator``)."""
    found = device_kinds().get(kind)
    if found is None or found.simulator is None:
        return None
    module_name, _, class_name = found.simulator.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, StationModel)):
        raise TypeError(f"kind {kind!r}: {found.simulator} is not a StationModel")
    return cls


def build_stations(specs: Sequence[StationSpec], env: Environment, seed: int) -> list[StationModel]:
    """A model per station of a kind that has one, each kind's built together (see
    :meth:`StationModel.build_all`)."""
    by_kind: dict[str, list[StationSpec]] = {}
    for spec in specs:
        by_kind.setdefault(spec.kind, []).append(spec)
    models: list[StationModel] = []
    for kind, group in by_kind.items():
        cls = model_class(kind)
        if cls is not None:
            models.extend(cls.build_all(group, env, seed))
    by_id = {m.spec.device_id: m for m in models}
    return [by_id[s.device_id] for s in specs if s.device_id in by_id]
