"""Live segment speeds, congestion index, and typical speeds by time of day.

Live speed of a segment is the *space-mean* speed of the vehicles matched onto it: total
distance driven over total time (the harmonic mean of their speeds, weighted by distance),
which is the speed that sets travel time. The congestion index is live speed over free-flow
speed (1 = free flow, 0.5 = half the free speed). Typical speeds are kept per segment in
15-minute bins of the local day, separately for weekdays and weekends, and learnt with an
exponentially weighted mean so that the table follows slow change (new roadworks, a new
school) without storing history.

Limits: public holidays and the swapped working weekends of the Chinese calendar are not
known here and count as what their weekday says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BINS_PER_DAY",
    "SegmentSpeeds",
    "SpeedError",
    "TypicalSpeeds",
    "live_speeds",
    "time_bin",
]

BINS_PER_DAY: Final = 96  # 15-minute bins
_US_PER_DAY: Final = 86_400_000_000
_US_PER_BIN: Final = _US_PER_DAY // BINS_PER_DAY

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class SpeedError(ValueError):
    """Observations that cannot be used: unknown segments, negative times, length mismatch."""


@dataclass(frozen=True)
class SegmentSpeeds:
    """Per segment seen: space-mean speed (km/h), congestion index, observations used."""

    segment_id: IntArray
    speed_kmh: FloatArray
    congestion_index: FloatArray
    observations: IntArray


def _index_of(known: IntArray, ids: IntArray) -> IntArray:
    pos = np.searchsorted(known, ids)
    pos = np.minimum(pos, len(known) - 1)
    bad = known[pos] != ids
    if bad.any():
        raise SpeedError(f"unknown segment id(s) {np.unique(ids[bad])[:10].tolist()}")
    return pos.astype(np.int64)


def live_speeds(
    segment_id: npt.ArrayLike,
    distance_m: npt.ArrayLike,
    duration_s: npt.ArrayLike,
    free_segment_id: npt.ArrayLike,
    free_speed_kmh: npt.ArrayLike,
) -> SegmentSpeeds:
    """Space-mean speed and congestion index per segment from matched traversals.

    Parameters
    ----------
    segment_id, distance_m, duration_s
        One row per traversal (e.g. a pair of consecutive matched fixes on the segment).
    free_segment_id, free_speed_kmh
        Every segment's free-flow speed (the road class speed or a night-time measurement).

    Examples
    --------
    >>> s = live_speeds([7, 7], [100.0, 100.0], [10.0, 30.0], [7], [60.0])
    >>> float(s.speed_kmh[0]), float(s.congestion_index[0])
    (18.0, 0.3)
    """
    seg = np.asarray(segment_id, np.int64)
    dist = np.asarray(distance_m, np.float64)
    dur = np.asarray(duration_s, np.float64)
    if not (len(seg) == len(dist) == len(dur)):
        raise SpeedError("segment_id, distance_m and duration_s must have equal lengths")
    if (dur <= 0).any() or (dist < 0).any() or not np.isfinite(dist).all():
        raise SpeedError("durations must be positive and distances non-negative and finite")
    fid = np.asarray(free_segment_id, np.int64)
    fspeed = np.asarray(free_speed_kmh, np.float64)
    if len(fid) != len(fspeed) or (fspeed <= 0).any():
        raise SpeedError("free speeds must be positive, one per segment id")
    order = np.argsort(fid)
    fid, fspeed = fid[order], fspeed[order]
    ids, inverse, counts = np.unique(seg, return_inverse=True, return_counts=True)
    total_d = np.bincount(inverse, dist, len(ids))
    total_t = np.bincount(inverse, dur, len(ids))
    speed = total_d / total_t * 3.6
    free = fspeed[_index_of(fid, ids)] if len(ids) else np.zeros(0)
    return SegmentSpeeds(ids, speed, speed / free, counts.astype(np.int64))


def time_bin(ts_us: npt.ArrayLike, utc_offset_h: float = 8.0) -> tuple[IntArray, IntArray]:
    """(day type, bin) of UTC µs timestamps in local time: 0 weekday / 1 weekend, 0-95.

    >>> time_bin([0])  # 1970-01-01 08:00 China time, a Thursday
    (array([0]), array([32]))
    """
    local = np.asarray(ts_us, np.int64) + int(utc_offset_h * 3_600_000_000)
    day, in_day = np.divmod(local, _US_PER_DAY)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return (weekday >= 5).astype(np.int64), (in_day // _US_PER_BIN).astype(np.int64)


@dataclass
class TypicalSpeeds:
    """Typical speed per segment × day type × 15-minute bin, learnt incrementally.

    Each :meth:`update` makes one exponentially weighted step per cell it touches, toward
    the mean of that batch's observations in the cell (so a batch of a thousand probes on
    one segment counts as one step, not a thousand): ``typical += alpha * (batch - typical)``.
    A cell's first batch sets it.
    """

    segment_id: IntArray
    alpha: float = 0.1
    utc_offset_h: float = 8.0
    speed_kmh: FloatArray = field(init=False)
    batches: IntArray = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise SpeedError(f"alpha must be in (0, 1], got {self.alpha}")
        ids = np.asarray(self.segment_id, np.int64)
        if len(np.unique(ids)) != len(ids):
            raise SpeedError("segment ids must be unique")
        self.segment_id = np.sort(ids)
        self.speed_kmh = np.full((len(ids), 2, BINS_PER_DAY), np.nan)
        self.batches = np.zeros((len(ids), 2, BINS_PER_DAY), np.int64)

    def _cells(self, segment_id: npt.ArrayLike, ts_us: npt.ArrayLike) -> IntArray:
        seg = _index_of(self.segment_id, np.asarray(segment_id, np.int64))
        daytype, tbin = time_bin(ts_us, self.utc_offset_h)
        if len(daytype) != len(seg):
            raise SpeedError("segment_id and ts_us must have equal lengths")
        return np.asarray((seg * 2 + daytype) * BINS_PER_DAY + tbin, np.int64)

    def update(
        self, segment_id: npt.ArrayLike, ts_us: npt.ArrayLike, speed_kmh: npt.ArrayLike
    ) -> None:
        """Fold one batch of observed speeds (km/h) at UTC µs timestamps into the table."""
        cells = self._cells(segment_id, ts_us)
        speed = np.asarray(speed_kmh, np.float64)
        if len(speed) != len(cells) or (speed < 0).any() or not np.isfinite(speed).all():
            raise SpeedError("speeds must be finite, non-negative, one per observation")
        touched, inverse = np.unique(cells, return_inverse=True)
        mean = np.bincount(inverse, speed) / np.bincount(inverse)
        flat = self.speed_kmh.reshape(-1)
        old = flat[touched]
        flat[touched] = np.where(np.isnan(old), mean, old + self.alpha * (mean - old))
        self.batches.reshape(-1)[touched] += 1

    def typical(self, segment_id: npt.ArrayLike, ts_us: npt.ArrayLike) -> FloatArray:
        """Typical speed for each (segment, instant); NaN where nothing was learnt yet."""
        return self.speed_kmh.reshape(-1)[self._cells(segment_id, ts_us)]
