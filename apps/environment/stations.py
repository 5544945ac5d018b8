"""The environment application's simulated stations: ambient air monitors and stacks'
continuous emission monitors (the ``air`` and ``emission`` kinds' ``simulator``).

They are :class:`sensors.stations.StationModel` subclasses; the simulator builds them from the
kinds the installed applications define.
"""

from __future__ import annotations

import math
from typing import Any

from sensors.scenarios import Environment
from sensors.stations import StationModel
from sensors.world import StationSpec

__all__ = ["AirStation", "EmissionStation"]

# A stack's permit (mg/m³) where its registry entry names none.
DEFAULT_PERMIT = {"so2_mgm3": 35.0, "nox_mgm3": 50.0, "dust_mgm3": 10.0}


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
