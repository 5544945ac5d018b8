"""High-resolution signal controller event logs, in a compact columnar form.

Event codes are the *Indiana Traffic Signal Hi-Resolution Data Logger Enumerations*
(Sturdevant et al., 2012, INDOT/Purdue University, doi:10.4231/K4RN35SH). An event is one row
of a numpy structured array :data:`EVENT_DTYPE`: timestamp (µs since the Unix epoch, UTC),
junction (the controller), code (the enumeration) and parameter (a phase, a detector channel,
a pattern number... depending on the code).

Examples
--------
>>> log = event_log([2_000_000, 1_000_000, 1_000_000], [7, 7, 7], [8, 1, 1], [2, 2, 2])
>>> log.events["code"].tolist(), log.duplicates_removed, log.out_of_order
([1, 8], 1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DETECTOR_DTYPE",
    "EVENT_DTYPE",
    "EventCode",
    "EventLog",
    "EventLogError",
    "event_log",
    "from_dataframe",
    "normalize",
    "to_dataframe",
]

#: One controller event: µs since the epoch (UTC), controller, enumeration code, parameter.
EVENT_DTYPE: Final = np.dtype(
    [("ts", "<i8"), ("junction", "<i4"), ("code", "<i2"), ("param", "<i2")]
)

#: A detector's wiring: junction, input channel (the event parameter), phase it serves, and
#: its function: "advance" (upstream, counts arrivals), "presence" (stop bar, occupancy) or
#: "count" (a counting-only input).
DETECTOR_DTYPE: Final = np.dtype(
    [("junction", "<i4"), ("channel", "<i2"), ("phase", "<i2"), ("function", "U8")]
)

US_PER_S: Final = 1_000_000


class EventCode(IntEnum):
    """The enumerations this application reads (Sturdevant et al. 2012, tables 2-10)."""

    PHASE_ON = 0
    PHASE_BEGIN_GREEN = 1
    PHASE_CHECK = 2
    PHASE_MIN_COMPLETE = 3
    PHASE_GAP_OUT = 4
    PHASE_MAX_OUT = 5
    PHASE_FORCE_OFF = 6
    PHASE_GREEN_TERMINATION = 7
    PHASE_BEGIN_YELLOW_CLEARANCE = 8
    PHASE_END_YELLOW_CLEARANCE = 9
    PHASE_BEGIN_RED_CLEARANCE = 10
    PHASE_END_RED_CLEARANCE = 11
    PHASE_INACTIVE = 12
    PED_BEGIN_WALK = 21
    PED_BEGIN_CLEARANCE = 22
    PED_BEGIN_SOLID_DONT_WALK = 23
    PED_DARK = 24
    PHASE_CALL_REGISTERED = 43
    PHASE_CALL_DROPPED = 44
    PED_CALL_REGISTERED = 45
    PHASE_HOLD_ACTIVE = 41
    PHASE_OMIT_ON = 46
    DETECTOR_OFF = 81
    DETECTOR_ON = 82
    DETECTOR_RESTORED = 83
    DETECTOR_FAULT_OTHER = 84
    DETECTOR_FAULT_WATCHDOG = 85
    DETECTOR_FAULT_OPEN_LOOP = 86
    DETECTOR_FAULT_SHORTED_LOOP = 87
    DETECTOR_FAULT_EXCESSIVE_CHANGE = 88
    PED_DETECTOR_OFF = 89
    PED_DETECTOR_ON = 90
    PED_DETECTOR_FAILED = 91
    PREEMPT_ADVANCE_WARNING_INPUT = 101
    PREEMPT_CALL_INPUT_ON = 102
    PREEMPT_GATE_DOWN_INPUT = 103
    PREEMPT_CALL_INPUT_OFF = 104
    PREEMPT_ENTRY_STARTED = 105
    PREEMPT_BEGIN_TRACK_CLEARANCE = 106
    PREEMPT_BEGIN_DWELL_SERVICE = 107
    PREEMPT_BEGIN_EXIT_INTERVAL = 111
    TSP_CHECK_IN = 112
    TSP_ADJUSTMENT_EARLY_SERVICE = 113
    TSP_ADJUSTMENT_EXTEND_SERVICE = 114
    TSP_CHECK_OUT = 115
    COORD_PATTERN_CHANGE = 131
    CYCLE_LENGTH_CHANGE = 132
    OFFSET_LENGTH_CHANGE = 133
    SPLIT_1_CHANGE = 134
    COORD_CYCLE_STATE_CHANGE = 150
    COORDINATED_PHASE_YIELD_POINT = 151
    UNIT_FLASH_STATUS_CHANGE = 173
    POWER_FAILURE_DETECTED = 182
    POWER_RESTORED = 184


class EventLogError(ValueError):
    """An event log that cannot be read: wrong columns, lengths, or values out of range."""


@dataclass(frozen=True)
class EventLog:
    """Events sorted by junction, timestamp, code and parameter, without exact duplicates.

    ``out_of_order`` counts rows that came before their predecessor in that order;
    ``duplicates_removed`` the exact repeats that were dropped.
    """

    events: npt.NDArray[Any]
    out_of_order: int = 0
    duplicates_removed: int = 0

    def __len__(self) -> int:
        return len(self.events)

    def junctions(self) -> npt.NDArray[np.int32]:
        """The junctions present, ascending."""
        j = self.events["junction"]
        if len(j) == 0:
            return np.zeros(0, np.int32)
        return j[np.r_[True, j[1:] != j[:-1]]]

    def window(self, junction: int, start_us: int, end_us: int) -> npt.NDArray[Any]:
        """Events of one junction with ``start_us <= ts < end_us`` (a view, by bisection)."""
        e = self.events
        lo = np.searchsorted(e["junction"], junction, "left")
        hi = np.searchsorted(e["junction"], junction, "right")
        ts = e["ts"][lo:hi]
        a = lo + np.searchsorted(ts, start_us, "left")
        b = lo + np.searchsorted(ts, end_us, "left")
        return e[a:b]


def _sort_key_order(events: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    return np.lexsort((events["param"], events["code"], events["ts"], events["junction"]))


def _is_sorted(events: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """For each row after the first: is it at or after its predecessor in the log's order?"""
    j, t = events["junction"], events["ts"]
    cp = events["code"].astype(np.int32) * 65536 + events["param"].astype(np.int32)
    dj, dt, dcp = np.diff(j), np.diff(t), np.diff(cp)
    return (dj > 0) | ((dj == 0) & ((dt > 0) | ((dt == 0) & (dcp >= 0))))


def normalize(events: npt.NDArray[Any]) -> EventLog:
    """Sort an event array and drop exact duplicates, counting both.

    A controller that buffers events or a collector that retries uploads produces both;
    every measure here assumes the order, so it is restored once, up front.
    """
    if events.dtype != EVENT_DTYPE:
        raise EventLogError(f"events must have dtype {EVENT_DTYPE}, not {events.dtype}")
    if len(events) < 2:
        return EventLog(events.copy())
    in_order = _is_sorted(events)
    out_of_order = int(np.count_nonzero(~in_order))
    ordered = events if out_of_order == 0 else events[_sort_key_order(events)]
    same = (
        (ordered["ts"][1:] == ordered["ts"][:-1])
        & (ordered["junction"][1:] == ordered["junction"][:-1])
        & (ordered["code"][1:] == ordered["code"][:-1])
        & (ordered["param"][1:] == ordered["param"][:-1])
    )
    n_dup = int(np.count_nonzero(same))
    if n_dup:
        ordered = ordered[np.r_[True, ~same]]
    elif ordered is events:
        ordered = events.copy()
    return EventLog(ordered, out_of_order=out_of_order, duplicates_removed=n_dup)


def event_log(
    ts_us: npt.ArrayLike,
    junction: npt.ArrayLike,
    code: npt.ArrayLike,
    param: npt.ArrayLike,
) -> EventLog:
    """Build a normalized :class:`EventLog` from four equal-length columns.

    Parameters
    ----------
    ts_us
        Timestamps, integer microseconds since the Unix epoch (UTC).
    junction
        Controller ids (int32).
    code
        Indiana enumeration codes, 0-255.
    param
        Event parameters, 0-32767.
    """
    cols = [np.asarray(c) for c in (ts_us, junction, code, param)]
    names = ("ts_us", "junction", "code", "param")
    n = len(cols[0])
    for name, col in zip(names, cols, strict=True):
        if col.ndim != 1:
            raise EventLogError(f"{name} must be one-dimensional, got shape {col.shape}")
        if len(col) != n:
            raise EventLogError(f"{name} has {len(col)} values, ts_us has {n}")
        if n and not np.issubdtype(col.dtype, np.integer):
            raise EventLogError(f"{name} must hold integers, got {col.dtype}")
    if n:
        if cols[2].min() < 0 or cols[2].max() > 255:
            raise EventLogError("code must be an enumeration between 0 and 255")
        if cols[3].min() < 0 or cols[3].max() > 32767:
            raise EventLogError("param must be between 0 and 32767")
        if cols[1].min() < 0 or cols[1].max() > np.iinfo(np.int32).max:
            raise EventLogError("junction must be a non-negative int32")
    events = np.empty(n, EVENT_DTYPE)
    events["ts"], events["junction"], events["code"], events["param"] = cols
    return normalize(events)


def from_dataframe(frame: Any) -> EventLog:
    """Read the usual ATSPM table (``TimeStamp``, ``DeviceId``, ``EventId``, ``Parameter``)."""
    missing = {"TimeStamp", "DeviceId", "EventId", "Parameter"} - set(frame.columns)
    if missing:
        raise EventLogError(f"the event table lacks column(s) {sorted(missing)}")
    stamps = frame["TimeStamp"].to_numpy()
    if np.issubdtype(stamps.dtype, np.datetime64):
        ts = stamps.astype("datetime64[us]").astype(np.int64)
    else:
        raise EventLogError("TimeStamp must be a datetime column")
    return event_log(
        ts,
        frame["DeviceId"].to_numpy().astype(np.int64),
        frame["EventId"].to_numpy().astype(np.int64),
        frame["Parameter"].to_numpy().astype(np.int64),
    )


def to_dataframe(log: EventLog) -> Any:
    """The log as the ATSPM table (naive UTC timestamps), for tools that read that shape."""
    import pandas as pd

    e = log.events
    return pd.DataFrame(
        {
            "TimeStamp": e["ts"].astype("datetime64[us]"),
            "DeviceId": e["junction"].astype(np.int32),
            "EventId": e["code"].astype(np.int16),
            "Parameter": e["param"].astype(np.int16),
        }
    )
