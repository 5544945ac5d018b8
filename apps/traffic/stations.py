"""The traffic application's simulated traffic-signal controllers (the ``signal`` kind's
``simulator``): a :class:`sensors.stations.StationModel` subclass the simulator builds from the
kinds the installed applications define.
"""

from __future__ import annotations

from typing import Any

from sensors.scenarios import Environment
from sensors.stations import StationModel
from sensors.world import StationSpec

__all__ = ["SignalController"]

SIGNAL_FAULTS = (
    "lamp failure",
    "detector failure",
    "communication loss",
    "power failure",
    "conflict monitor",
)


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
