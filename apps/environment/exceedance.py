"""Exceedances: stack emissions against permit limits, ambient air against GB 3095.

Emissions (continuous emission monitoring, CEMS):

* Hourly averages are the means of the valid minute values of each clock hour; an hour is
  valid with at least 45 valid minutes (HJ 75-2017, data validity of hourly averages; the same
  45-minute rule as GB 3095 Table 4 for ambient 1-h averages). A minute is valid when its
  HJ 212 data flag is ``N`` (normal); ``F`` stopped, ``M`` maintenance, ``D`` fault, ``C``
  calibration, ``T`` over range, ``B`` lost communication and ``S`` manual entries are not.
* Limits given at a reference oxygen content (GB 13223: 6 % coal-fired, 3 % gas/oil; GB 13271
  boilers: 9 % coal) are compared with oxygen-corrected values, each minute corrected as
  C × (21 − O2_ref) / (21 − O2) before averaging (what a logger sends as ZsRtd/ZsAvg).
* An hour exceeds when its average is above the limit. An exceedance *event* opens after
  `open_after` consecutive exceeding valid hours and closes after `close_after` consecutive
  valid hours at or below the limit (de-bouncing, so one noisy hour neither opens nor closes
  an event). Invalid hours break a run of exceeding hours and do not count as clean.

Ambient air: GB 3095-2012 and GB 3095-2026 concentration limits (grades I and II) for 1-h,
daily and O3 8-h averages. GB 3095-2026 has transitional limits from 2026-03-01 to
2030-12-31 and its final limits from 2031-01-01 (its §4.4); `ambient_limit` picks by date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

VALID_MINUTES_PER_HOUR: Final = 45
VALID_FLAGS: Final = frozenset({"N"})

GB3095_2012: Final = "GB 3095-2012"
GB3095_2026_TRANSITIONAL: Final = "GB 3095-2026 (transitional limits)"
GB3095_2026: Final = "GB 3095-2026"
GB3095_2026_IN_FORCE: Final = date(2026, 3, 1)
GB3095_2026_FINAL: Final = date(2031, 1, 1)

# (pollutant, averaging) → (grade I, grade II), µg/m³ (CO mg/m³); GB 3095-2012 Table 1,
# GB 3095-2026 Table 1 (transitional and final columns).
_LIMITS: Final[dict[str, dict[tuple[str, str], tuple[float, float]]]] = {
    GB3095_2012: {
        ("so2", "annual"): (20, 60),
        ("so2", "24h"): (50, 150),
        ("so2", "1h"): (150, 500),
        ("no2", "annual"): (40, 40),
        ("no2", "24h"): (80, 80),
        ("no2", "1h"): (200, 200),
        ("co", "24h"): (4, 4),
        ("co", "1h"): (10, 10),
        ("o3", "8h"): (100, 160),
        ("o3", "1h"): (160, 200),
        ("pm10", "annual"): (40, 70),
        ("pm10", "24h"): (50, 150),
        ("pm25", "annual"): (15, 35),
        ("pm25", "24h"): (35, 75),
    },
    GB3095_2026_TRANSITIONAL: {
        ("so2", "annual"): (20, 60),
        ("so2", "24h"): (50, 150),
        ("so2", "1h"): (150, 500),
        ("no2", "annual"): (40, 40),
        ("no2", "24h"): (80, 80),
        ("no2", "1h"): (200, 200),
        ("co", "24h"): (4, 4),
        ("co", "1h"): (10, 10),
        ("o3", "8h"): (100, 160),
        ("o3", "1h"): (160, 200),
        ("pm10", "annual"): (40, 60),
        ("pm10", "24h"): (50, 120),
        ("pm25", "annual"): (15, 30),
        ("pm25", "24h"): (35, 60),
    },
    GB3095_2026: {
        ("so2", "annual"): (20, 20),
        ("so2", "24h"): (50, 50),
        ("so2", "1h"): (150, 150),
        ("no2", "annual"): (30, 30),
        ("no2", "24h"): (50, 50),
        ("no2", "1h"): (200, 200),
        ("co", "24h"): (4, 4),
        ("co", "1h"): (10, 10),
        ("o3", "8h"): (100, 160),
        ("o3", "1h"): (160, 200),
        ("pm10", "annual"): (20, 50),
        ("pm10", "24h"): (50, 100),
        ("pm25", "annual"): (10, 25),
        ("pm25", "24h"): (25, 50),
    },
}


class ExceedanceInputError(ValueError):
    """Inputs that cannot be assessed (names what is wrong)."""


@dataclass(frozen=True)
class AmbientLimit:
    """One concentration limit of GB 3095 and where it comes from."""

    pollutant: str
    averaging: str
    grade: int
    value: float
    unit: str
    standard: str


def ambient_standard_for(day: date | datetime) -> str:
    """GB 3095 limits in force on a day: 2012 before 2026-03-01, then 2026 transitional until
    2030-12-31, then 2026 final."""
    moment = day.date() if isinstance(day, datetime) else day
    if moment < GB3095_2026_IN_FORCE:
        return GB3095_2012
    return GB3095_2026_TRANSITIONAL if moment < GB3095_2026_FINAL else GB3095_2026


def ambient_limit(
    pollutant: str,
    averaging: str,
    *,
    on: date | datetime | None = None,
    standard: str | None = None,
    grade: int = 2,
) -> AmbientLimit:
    """A GB 3095 limit by pollutant (so2, no2, co, o3, pm10, pm25) and averaging (1h, 8h, 24h,
    annual), for a date (`on`) or a named `standard`; grade 2 (residential, commercial,
    industrial and rural areas) unless told.

    >>> ambient_limit("pm25", "24h", on=date(2026, 3, 1)).value
    60.0
    """
    if standard is None:
        if on is None:
            raise ExceedanceInputError("give the date (on=) or the standard")
        standard = ambient_standard_for(on)
    if standard not in _LIMITS:
        raise ExceedanceInputError(f"unknown standard {standard!r}; expected {list(_LIMITS)}")
    if grade not in (1, 2):
        raise ExceedanceInputError(f"grade must be 1 or 2, got {grade}")
    try:
        pair = _LIMITS[standard][(pollutant, averaging)]
    except KeyError:
        known = sorted({f"{p}/{a}" for p, a in _LIMITS[standard]})
        raise ExceedanceInputError(
            f"no {standard} limit for {pollutant}/{averaging}; known: {known}"
        ) from None
    unit = "mg/m³" if pollutant == "co" else "µg/m³"
    return AmbientLimit(pollutant, averaging, grade, float(pair[grade - 1]), unit, standard)


def ambient_exceeds(values: ArrayLike, limit: AmbientLimit) -> NDArray[np.bool_]:
    """Where averages are above the limit (GB 3095: 超过, strictly above); NaN never exceeds."""
    return np.asarray(np.asarray(values, dtype=np.float64) > limit.value, dtype=bool)


# -- emissions ----------------------------------------------------------------------------


def oxygen_corrected(
    concentration: ArrayLike, o2_pct: ArrayLike, o2_reference_pct: float
) -> NDArray[np.float64]:
    """C × (21 − O2_ref) / (21 − O2), element-wise; NaN where O2 is not below 21 %."""
    if not 0 <= o2_reference_pct < 21:
        raise ExceedanceInputError(f"reference O2 must be 0..21 %, got {o2_reference_pct}")
    c = np.asarray(concentration, dtype=np.float64)
    o2 = np.asarray(o2_pct, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corrected = c * (21.0 - o2_reference_pct) / (21.0 - o2)
    return np.where((o2 >= 0) & (o2 < 21.0), corrected, np.nan)


@dataclass(frozen=True)
class HourlyAverages:
    """Hourly averages of one outlet and one pollutant.

    Attributes
    ----------
    hour_start : ndarray of datetime64[h]
    value : ndarray of float
        Mean of the valid minutes (oxygen-corrected when asked), NaN for invalid hours.
    valid_minutes : ndarray of int
    valid : ndarray of bool
        At least 45 valid minutes (HJ 75-2017).
    """

    hour_start: NDArray[np.datetime64]
    value: NDArray[np.float64]
    valid_minutes: NDArray[np.int64]
    valid: NDArray[np.bool_]


def hourly_averages(
    minute_times: ArrayLike,
    concentration: ArrayLike,
    *,
    flags: ArrayLike | None = None,
    o2_pct: ArrayLike | None = None,
    o2_reference_pct: float | None = None,
    min_valid_minutes: int = VALID_MINUTES_PER_HOUR,
) -> HourlyAverages:
    """Clock-hour averages of minute data (vectorized with bincount).

    Parameters
    ----------
    minute_times : array_like of datetime64
        Time of each minute value (any order; duplicates count once each).
    concentration : array_like
        mg/m³ as measured; NaN = missing.
    flags : array_like of str, optional
        HJ 212 data flags per minute; only ``N`` is valid. Default: all valid.
    o2_pct, o2_reference_pct : optional
        Measured O2 per minute and the limit's reference O2: correct each minute first.
    """
    times = np.asarray(minute_times, dtype="datetime64[m]")
    c = np.asarray(concentration, dtype=np.float64)
    if times.shape != c.shape or times.ndim != 1:
        raise ExceedanceInputError("minute_times and concentration must be 1-D and alike")
    if times.size == 0:
        raise ExceedanceInputError("no minute data")
    if (o2_pct is None) != (o2_reference_pct is None):
        raise ExceedanceInputError("oxygen correction needs both o2_pct and o2_reference_pct")
    if o2_pct is not None and o2_reference_pct is not None:
        o2 = np.asarray(o2_pct, dtype=np.float64)
        if o2.shape != c.shape:
            raise ExceedanceInputError("o2_pct must have one value per minute")
        c = oxygen_corrected(c, o2, o2_reference_pct)
    valid = ~np.isnan(c)
    if flags is not None:
        flag_array = np.asarray(flags, dtype=str)
        if flag_array.shape != c.shape:
            raise ExceedanceInputError("flags must have one value per minute")
        valid &= np.isin(flag_array, list(VALID_FLAGS))
    hours = times.astype("datetime64[h]")
    first = hours.min()
    index = (hours - first).astype(np.int64)
    span = int(index.max()) + 1
    count = np.bincount(index, weights=valid, minlength=span).astype(np.int64)
    total = np.bincount(index, weights=np.where(valid, c, 0.0), minlength=span)
    hour_valid = count >= min_valid_minutes
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(hour_valid, total / np.maximum(count, 1), np.nan)
    starts = first + np.arange(span).astype("timedelta64[h]")
    return HourlyAverages(starts, value, count, hour_valid)


@dataclass(frozen=True)
class ExceedanceEvent:
    """An exceedance of one outlet and pollutant, hour-resolved.

    ``end`` is the start of the first clean hour that closed it (None: still open); ``peak``
    the highest hourly average in it; ``exceeding_hours`` how many of its hours exceeded.
    """

    start: np.datetime64
    end: np.datetime64 | None
    peak: float
    exceeding_hours: int
    limit: float


def exceedance_events(
    hourly: HourlyAverages, limit: float, *, open_after: int = 1, close_after: int = 1
) -> list[ExceedanceEvent]:
    """De-bounced exceedance events of hourly averages against a limit.

    An event opens at the first hour of a run of `open_after` consecutive exceeding valid
    hours and closes at the first hour of a run of `close_after` consecutive clean valid hours.
    """
    if open_after < 1 or close_after < 1:
        raise ExceedanceInputError("open_after and close_after must be ≥ 1")
    if not np.isfinite(limit) or limit < 0:
        raise ExceedanceInputError(f"limit must be a finite value ≥ 0, got {limit}")
    # +1 exceeding, 0 clean, -1 invalid; walk the runs, not the hours.
    state = np.where(~hourly.valid, -1, np.where(hourly.value > limit, 1, 0))
    edges = np.flatnonzero(np.diff(state)) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [state.size]]))
    events: list[ExceedanceEvent] = []
    open_at: int | None = None
    for run_start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        kind = state[run_start]
        if open_at is None and kind == 1 and length >= open_after:
            open_at = run_start
        elif open_at is not None and kind == 0 and length >= close_after:
            events.append(_event(hourly, limit, open_at, run_start))
            open_at = None
    if open_at is not None:
        events.append(_event(hourly, limit, open_at, None))
    return events


def _event(hourly: HourlyAverages, limit: float, first: int, end: int | None) -> ExceedanceEvent:
    window = hourly.value[first:end]
    exceeding = int(np.sum(window > limit))
    return ExceedanceEvent(
        start=hourly.hour_start[first],
        end=None if end is None else hourly.hour_start[end],
        peak=float(np.nanmax(window)),
        exceeding_hours=exceeding,
        limit=limit,
    )
