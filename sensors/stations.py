"""Fixed monitoring stations: what each kind measures, as a function of the environment.

:class:`StationModel` is the base of every station model; an application brings the models of
its kinds (e.g. ``apps/environment/stations.py``) and names each in its kind's ``simulator``
(``"module:Class"``), which :func:`model_class` resolves. ``_Catchment`` (a two-reservoir
response to rain) stays here for the models that share it.

Every model keeps its own state (a river's storage, the soil's moisture, a controller's fault)
and a private random stream seeded from the run's seed and the device id, so a run with the
same seed publishes the same values. ``read(t, dt)`` gives the measurement fields at simulated
epoch second ``t``, ``dt`` seconds after the previous reading.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from gis_core.application import SeamError, device_kinds, target
from sensors.scenarios import Environment
from sensors.world import StationSpec

__all__ = [
    "StationModel",
    "build_stations",
    "model_class",
]

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


def model_class(kind: str) -> type[StationModel] | None:
    """The simulator model an installed device kind names (``DeviceKind.simulator``)."""
    found = device_kinds().get(kind)
    if found is None or found.simulator is None:
        return None
    cls = target(found.simulator)
    if not (isinstance(cls, type) and issubclass(cls, StationModel)):
        raise SeamError(f"kind {kind!r}: {found.simulator} is not a StationModel")
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
