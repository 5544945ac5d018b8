"""Simulated time: a clock that can run faster than the wall clock without running ahead of it.

Readings carry simulated time, and the platform refuses readings from the future. A clock
sped up ``speedup`` times therefore starts in the past, far enough back that it reaches the
wall clock only at the end of the planned run; should the run last longer, it continues at
the wall clock's pace from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

__all__ = ["CST", "SimClock", "iso"]

#: China Standard Time: every simulated timestamp is written with this offset.
CST = timezone(timedelta(hours=8), "CST")


def iso(epoch_s: float) -> str:
    """An epoch time in seconds as ISO 8601 with the +08:00 offset, to the millisecond.

    Examples
    --------
    >>> iso(0.0)
    '1970-01-01T08:00:00.000+08:00'
    """
    return datetime.fromtimestamp(epoch_s, CST).isoformat(timespec="milliseconds")


class SimClock:
    """Simulated epoch seconds as a function of the wall clock.

    Parameters
    ----------
    speedup
        Simulated seconds per wall second (1 = real time).
    horizon_s
        Planned wall duration of the run; the clock starts ``(speedup - 1) * horizon_s`` in the
        past so that it meets the wall clock when the horizon ends.
    start
        Simulated start time instead of the computed one; it must not be in the future.
    wall
        The wall-clock function (epoch seconds), replaceable in tests.
    """

    def __init__(
        self,
        speedup: float = 1.0,
        horizon_s: float = 600.0,
        start: datetime | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if speedup <= 0:
            raise ValueError("--speedup must be positive")
        self._wall = wall
        self.speedup = float(speedup)
        self.wall0 = self._wall()
        if start is not None:
            if start.tzinfo is None:
                start = start.replace(tzinfo=CST)
            self.sim0 = start.timestamp()
            if self.sim0 > self.wall0 + 1:
                raise ValueError("the simulated start time is in the future")
        else:
            self.sim0 = self.wall0 - max(0.0, self.speedup - 1.0) * max(0.0, horizon_s)

    def sim_at(self, wall_s: float) -> float:
        """Simulated epoch seconds at a wall time; never later than that wall time."""
        fast = self.sim0 + (wall_s - self.wall0) * self.speedup
        return min(fast, max(wall_s, self.sim0))

    def wall_at(self, sim_s: float) -> float:
        """The wall time at which the simulated clock shows ``sim_s`` (inverse of sim_at)."""
        # Past the meeting point the clock is the wall clock itself.
        return max(self.wall0 + (sim_s - self.sim0) / self.speedup, sim_s)

    def now(self) -> float:
        """Simulated epoch seconds now."""
        return self.sim_at(self._wall())

    def elapsed(self) -> float:
        """Simulated seconds since the start."""
        return self.now() - self.sim0

    def wall(self) -> float:
        """The wall clock (epoch seconds)."""
        return self._wall()
