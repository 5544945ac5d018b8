"""Air quality index (AQI) by HJ 633-2012 and HJ 633-2026, vectorized over numpy arrays.

Both editions share the formula (HJ 633-2012 eq. 1 / HJ 633-2026 eq. 1): the individual index
of a pollutant is the linear interpolation between the two breakpoints around its
concentration, rounded *up* to an integer (HJ 633-2012 §6.2, HJ 633-2026 §4.2.6); the AQI is
the largest individual index; the primary pollutant(s) are those whose index equals the AQI
when the AQI is above 50.

What changed in HJ 633-2026 (published 2026-02-14, in force 2026-03-01; read from the
standard's own text, Foreword and Table 3):

* PM10 daily breakpoint for IAQI 100 is 120 µg/m³ (was 150) and PM2.5's is 60 µg/m³ (was 75),
  following the GB 3095-2026 transitional grade II daily limits; every other breakpoint is
  unchanged.
* Past the last breakpoint: SO2 1-h above 800 µg/m³ counts as IAQI 200 and O3 8-h above
  800 µg/m³ as IAQI 300 (2012: use the SO2 24-h index, resp. the O3 1-h index).
* The hourly (real-time) report has six 1-h indicators; PM10/PM2.5 1-h values are indexed
  against the daily breakpoints (§4.2.4). The 2012 real-time report also carried the O3 8-h
  moving average and the PM 24-h moving averages (9 indicators).
* The daily report has six indicators (O3: daily maximum 8-h); 2012 also carried the O3
  daily maximum 1-h value (7 indicators).
* Concentrations are rounded before indexing (µg/m³ to integers, CO mg/m³ to one decimal,
  GB/T 8170, §4.2.2).
* "Non-attainment pollutant" is gone; a report with a missing pollutant is published only if
  the AQI of the others exceeds 100 (§5.3.1), which `AqiArrays.publishable` expresses.

Examples
--------
>>> import numpy as np
>>> r = hourly_aqi(so2=np.array([10.0]), no2=np.array([30.0]), co=np.array([0.5]),
...                o3=np.array([120.0]), pm10=np.array([130.0]), pm25=np.array([70.0]),
...                standard=HJ633_2026)
>>> int(r.aqi[0]), r.primary_pollutants(0), r.standard
(110, ['pm25'], 'HJ 633-2026')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

HJ633_2012: Final = "HJ 633-2012"
HJ633_2026: Final = "HJ 633-2026"
EDITIONS: Final = (HJ633_2012, HJ633_2026)
HJ633_2026_IN_FORCE: Final = date(2026, 3, 1)

# The IAQI column shared by both editions' breakpoint tables.
IAQI_STEPS: Final = np.array([0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0])


class AqiInputError(ValueError):
    """Concentrations or options that the standard cannot index."""


@dataclass(frozen=True)
class Breakpoints:
    """One column of the breakpoint table: concentrations at IAQI 0, 50, 100, ...

    Attributes
    ----------
    indicator : str
        Platform name, e.g. ``"pm25_24h"``.
    concentrations : tuple of float
        Breakpoints in µg/m³ (CO: mg/m³); as many as the standard lists (5 to 8).
    source : str
        Where the column comes from, edition and table.
    """

    indicator: str
    concentrations: tuple[float, ...]
    source: str


def _column(indicator: str, values: tuple[float, ...], source: str) -> Breakpoints:
    return Breakpoints(indicator, values, source)


_T2012 = "HJ 633-2012 Table 1"
_T2026 = "HJ 633-2026 Table 3"
_T2026_CHANGED = "HJ 633-2026 Table 3 (changed from 2012: IAQI-100 breakpoint)"

_SO2_24H = (0.0, 50.0, 150.0, 475.0, 800.0, 1600.0, 2100.0, 2620.0)
_SO2_1H = (0.0, 150.0, 500.0, 650.0, 800.0)
_NO2_24H = (0.0, 40.0, 80.0, 180.0, 280.0, 565.0, 750.0, 940.0)
_NO2_1H = (0.0, 100.0, 200.0, 700.0, 1200.0, 2340.0, 3090.0, 3840.0)
_CO_24H = (0.0, 2.0, 4.0, 14.0, 24.0, 36.0, 48.0, 60.0)
_CO_1H = (0.0, 5.0, 10.0, 35.0, 60.0, 90.0, 120.0, 150.0)
_O3_1H = (0.0, 160.0, 200.0, 300.0, 400.0, 800.0, 1000.0, 1200.0)
_O3_8H = (0.0, 100.0, 160.0, 215.0, 265.0, 800.0)

BREAKPOINTS: Final[Mapping[str, Mapping[str, Breakpoints]]] = {
    HJ633_2012: {
        "so2_24h": _column("so2_24h", _SO2_24H, _T2012),
        "so2_1h": _column("so2_1h", _SO2_1H, _T2012),
        "no2_24h": _column("no2_24h", _NO2_24H, _T2012),
        "no2_1h": _column("no2_1h", _NO2_1H, _T2012),
        "co_24h": _column("co_24h", _CO_24H, _T2012),
        "co_1h": _column("co_1h", _CO_1H, _T2012),
        "o3_1h": _column("o3_1h", _O3_1H, _T2012),
        "o3_8h": _column("o3_8h", _O3_8H, _T2012),
        "pm10_24h": _column(
            "pm10_24h", (0.0, 50.0, 150.0, 250.0, 350.0, 420.0, 500.0, 600.0), _T2012
        ),
        "pm25_24h": _column(
            "pm25_24h", (0.0, 35.0, 75.0, 115.0, 150.0, 250.0, 350.0, 500.0), _T2012
        ),
    },
    HJ633_2026: {
        "so2_24h": _column("so2_24h", _SO2_24H, _T2026),
        "so2_1h": _column("so2_1h", _SO2_1H, _T2026),
        "no2_24h": _column("no2_24h", _NO2_24H, _T2026),
        "no2_1h": _column("no2_1h", _NO2_1H, _T2026),
        "co_24h": _column("co_24h", _CO_24H, _T2026),
        "co_1h": _column("co_1h", _CO_1H, _T2026),
        "o3_1h": _column("o3_1h", _O3_1H, _T2026),
        "o3_8h": _column("o3_8h", _O3_8H, _T2026),
        "pm10_24h": _column(
            "pm10_24h", (0.0, 50.0, 120.0, 250.0, 350.0, 420.0, 500.0, 600.0), _T2026_CHANGED
        ),
        "pm25_24h": _column(
            "pm25_24h", (0.0, 35.0, 60.0, 115.0, 150.0, 250.0, 350.0, 500.0), _T2026_CHANGED
        ),
    },
}

# PM 1-h values have no column of their own: both editions index them on the daily column
# (2026 says so in §4.2.4; 2012 has no other PM column).
_ALIASES: Final = {"pm10_1h": "pm10_24h", "pm25_1h": "pm25_24h"}

# What the interpolation cannot reach: "past the last breakpoint" rules per edition.
_CAPPED_2026: Final = {"so2_1h": 200.0, "o3_8h": 300.0}


@dataclass(frozen=True)
class AqiLevel:
    """A level of HJ 633 Table 2 (2012) / Table 1 (2026), with Appendix A colours."""

    number: int
    roman: str
    low: int
    high: int | None
    name_zh: str
    name_en: str
    colour_zh: str
    colour_en: str
    rgb: tuple[int, int, int]
    cmyk: tuple[int, int, int, int]

    @property
    def hex(self) -> str:
        """The RGB colour as ``#RRGGBB``."""
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)


# Names and colours are the same in both editions (Appendix A, Table A.1 in each); 2026 only
# starts level I at 1 instead of 0, which changes nothing for rounded-up indices above 0.
LEVELS: Final = (
    AqiLevel(1, "I", 0, 50, "优", "Excellent", "绿色", "green", (0, 228, 0), (40, 0, 100, 0)),
    AqiLevel(2, "II", 51, 100, "良", "Good", "黄色", "yellow", (255, 255, 0), (0, 0, 100, 0)),
    AqiLevel(
        3,
        "III",
        101,
        150,
        "轻度污染",
        "Lightly polluted",
        "橙色",
        "orange",
        (255, 126, 0),
        (0, 52, 100, 0),
    ),
    AqiLevel(
        4,
        "IV",
        151,
        200,
        "中度污染",
        "Moderately polluted",
        "红色",
        "red",
        (255, 0, 0),
        (0, 100, 100, 0),
    ),
    AqiLevel(
        5,
        "V",
        201,
        300,
        "重度污染",
        "Heavily polluted",
        "紫色",
        "purple",
        (153, 0, 76),
        (10, 100, 40, 30),
    ),
    AqiLevel(
        6,
        "VI",
        301,
        None,
        "严重污染",
        "Severely polluted",
        "褐红色",
        "maroon",
        (126, 0, 35),
        (30, 100, 100, 30),
    ),
)
_LEVEL_UPPER: Final = np.array([50.0, 100.0, 150.0, 200.0, 300.0])


def edition_for(moment: date | datetime) -> str:
    """The HJ 633 edition in force on a date: 2012 before 2026-03-01, 2026 from then on.

    >>> edition_for(date(2026, 2, 28)), edition_for(date(2026, 3, 1))
    ('HJ 633-2012', 'HJ 633-2026')
    """
    day = moment.date() if isinstance(moment, datetime) else moment
    return HJ633_2026 if day >= HJ633_2026_IN_FORCE else HJ633_2012


def editions_for(times: ArrayLike) -> NDArray[np.bool_]:
    """Vectorized `edition_for`: True where HJ 633-2026 applies (times as datetime64, local)."""
    stamps = np.asarray(times, dtype="datetime64[s]")
    return stamps >= np.datetime64(HJ633_2026_IN_FORCE.isoformat(), "s")


def _check_edition(standard: str) -> None:
    if standard not in EDITIONS:
        raise AqiInputError(f"unknown AQI standard {standard!r}; expected one of {EDITIONS}")


def breakpoints(indicator: str, standard: str) -> Breakpoints:
    """The breakpoint column of an indicator (``so2_1h``, ``pm25_24h``, ...) in an edition."""
    _check_edition(standard)
    key = _ALIASES.get(indicator, indicator)
    try:
        return BREAKPOINTS[standard][key]
    except KeyError:
        known = sorted([*BREAKPOINTS[standard], *_ALIASES])
        raise AqiInputError(
            f"unknown AQI indicator {indicator!r}; expected one of {known}"
        ) from None


def _as_concentrations(values: ArrayLike, indicator: str) -> NDArray[np.float64]:
    c = np.asarray(values, dtype=np.float64)
    if np.any(c < 0):
        raise AqiInputError(f"{indicator}: negative concentration")
    return c


def round_concentration(values: ArrayLike, indicator: str) -> NDArray[np.float64]:
    """Round as HJ 633-2026 §4.2.2 asks: µg/m³ to integers, CO (mg/m³) to one decimal.

    GB/T 8170 rounds a trailing exact 5 to the even digit, which is numpy's rounding.
    """
    decimals = 1 if indicator.startswith("co") else 0
    return np.asarray(np.round(np.asarray(values, dtype=np.float64), decimals), dtype=np.float64)


def iaqi(
    indicator: str,
    concentration: ArrayLike,
    standard: str,
    *,
    round_input: bool | None = None,
) -> NDArray[np.float64]:
    """Individual AQI of one indicator, element-wise; NaN where the concentration is NaN.

    Parameters
    ----------
    indicator : str
        ``so2_24h``, ``so2_1h``, ``no2_24h``, ``no2_1h``, ``co_24h``, ``co_1h``, ``o3_1h``,
        ``o3_8h``, ``pm10_24h``, ``pm25_24h``, ``pm10_1h`` or ``pm25_1h``.
    concentration : array_like
        µg/m³ (CO: mg/m³), not negative.
    standard : str
        `HJ633_2012` or `HJ633_2026`.
    round_input : bool, optional
        Round concentrations first (`round_concentration`). Default: what the edition says,
        i.e. on for 2026 (§4.2.2), off for 2012 (which says nothing).

    Returns
    -------
    ndarray of float
        Integer-valued indices, rounded up. Past the last breakpoint the index is 500, except
        for the rules of the edition: under 2026, SO2 1-h above 800 is 200 and O3 8-h above 800
        is 300; under 2012 those two are NaN here, because the standard replaces them with
        another indicator's index (see `hourly_aqi` and `daily_aqi`).
    """
    column = breakpoints(indicator, standard)
    c = _as_concentrations(concentration, indicator)
    if round_input if round_input is not None else standard == HJ633_2026:
        c = round_concentration(c, indicator)
    bp = np.asarray(column.concentrations)
    top = bp.size - 1
    # Segment k spans (bp[k-1], bp[k]]; at a breakpoint both neighbours give the same value.
    # NaN sorts past the end and stays NaN through the arithmetic.
    k = np.clip(np.searchsorted(bp, c, side="left"), 1, top)
    slope = np.diff(IAQI_STEPS[: top + 1]) / np.diff(bp)
    offset = IAQI_STEPS[:top] - slope * bp[:top]
    raw = np.take(slope, k - 1) * c + np.take(offset, k - 1)
    # The small tolerance keeps 50.000000000001 (float noise) from becoming 51.
    index = np.ceil(raw - 1e-9)
    beyond = c > bp[top]
    if not beyond.any():
        return index
    key = _ALIASES.get(indicator, indicator)
    if standard == HJ633_2026 and key in _CAPPED_2026:
        return np.where(beyond, _CAPPED_2026[key], index)
    if standard == HJ633_2012 and key in ("so2_1h", "o3_8h"):
        return np.where(beyond, np.nan, index)
    return np.where(beyond, 500.0, index)


@dataclass(frozen=True)
class AqiArrays:
    """AQI of many rows (stations × hours, flattened or not), with the edition used.

    Attributes
    ----------
    standard : str
        The edition every figure here was computed by.
    report : str
        ``"hourly"`` (real-time report) or ``"daily"``.
    iaqi : dict of str to ndarray
        Individual indices by indicator, NaN where missing.
    aqi : ndarray of float
        The AQI, NaN where no indicator was available.
    level : ndarray of int8
        1..6, 0 where the AQI is NaN.
    complete : ndarray of bool
        Every indicator of the report was available.
    publishable : ndarray of bool
        2026 §5.3.1: complete, or incomplete with an AQI above 100. 2012 has no such rule:
        publishable wherever an AQI exists.
    """

    standard: str
    report: str
    iaqi: dict[str, NDArray[np.float64]]
    aqi: NDArray[np.float64]
    level: NDArray[np.int8]
    complete: NDArray[np.bool_]
    publishable: NDArray[np.bool_]

    def primary_mask(self) -> dict[str, NDArray[np.bool_]]:
        """Per indicator: is it a primary pollutant (AQI > 50 and its index equals the AQI)."""
        over = self.aqi > 50
        return {name: over & (values == self.aqi) for name, values in self.iaqi.items()}

    def primary_pollutants(self, row: int | tuple[int, ...]) -> list[str]:
        """Primary pollutants of one row, as pollutant names (``o3_8h`` and ``o3`` both → o3)."""
        names: list[str] = []
        for name, mask in self.primary_mask().items():
            pollutant = name.split("_")[0]
            if bool(mask[row]) and pollutant not in names:
                names.append(pollutant)
        return names

    def level_of(self, row: int | tuple[int, ...]) -> AqiLevel | None:
        """The level (names, colours) of one row, None where no AQI."""
        number = int(self.level[row])
        return LEVELS[number - 1] if number else None


def level_numbers(aqi: ArrayLike) -> NDArray[np.int8]:
    """AQI level 1..6 for integer AQIs (0 where NaN)."""
    values = np.asarray(aqi, dtype=np.float64)
    numbers = (np.searchsorted(_LEVEL_UPPER, values, side="left") + 1).astype(np.int8)
    return np.where(np.isnan(values), np.int8(0), numbers).astype(np.int8)


def level(aqi: float) -> AqiLevel:
    """The level of one AQI value.

    >>> level(151).name_zh, level(151).rgb
    ('中度污染', (255, 0, 0))
    """
    if not np.isfinite(aqi) or aqi < 0:
        raise AqiInputError(f"AQI must be a finite number ≥ 0, got {aqi!r}")
    return LEVELS[int(level_numbers(np.array([aqi]))[0]) - 1]


def _combine(
    standard: str, report: str, indices: dict[str, NDArray[np.float64]], required: int
) -> AqiArrays:
    values = list(indices.values())
    # fmax skips NaN; a row with nothing at all stays NaN.
    aqi = values[0]
    for more in values[1:]:
        aqi = np.fmax(aqi, more)
    any_available = ~np.isnan(aqi)
    complete = np.ones(aqi.shape, dtype=bool)
    for more in values[:required]:
        complete &= ~np.isnan(more)
    # 2026 §5.3.1: an incomplete report is published only when the AQI still exceeds 100.
    publishable = np.asarray(
        complete | (aqi > 100) if standard == HJ633_2026 else any_available, dtype=bool
    )
    return AqiArrays(standard, report, indices, aqi, level_numbers(aqi), complete, publishable)


def _optional(values: ArrayLike | None, like: NDArray[np.float64]) -> NDArray[np.float64] | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.shape != like.shape:
        raise AqiInputError(f"shape {array.shape} differs from the pollutants' {like.shape}")
    return array


def hourly_aqi(
    *,
    so2: ArrayLike,
    no2: ArrayLike,
    co: ArrayLike,
    o3: ArrayLike,
    pm10: ArrayLike,
    pm25: ArrayLike,
    standard: str,
    so2_24h: ArrayLike | None = None,
    o3_8h: ArrayLike | None = None,
    pm10_24h: ArrayLike | None = None,
    pm25_24h: ArrayLike | None = None,
    round_input: bool | None = None,
) -> AqiArrays:
    """Real-time (hourly) AQI from 1-h averages; arrays of any one shape, NaN = missing.

    Parameters
    ----------
    so2, no2, co, o3, pm10, pm25 : array_like
        1-h averages, µg/m³ (CO mg/m³).
    standard : str
        `HJ633_2012` or `HJ633_2026` (see `edition_for`, `hourly_aqi_by_time`).
    so2_24h : array_like, optional
        24-h SO2 average; HJ 633-2012 reports the SO2 index from it when the 1-h value is above
        800 µg/m³, and refuses to index such hours without it.
    o3_8h, pm10_24h, pm25_24h : array_like, optional
        2012 only: the O3 8-h and PM 24-h moving averages, extra indicators of its real-time
        report. Ignored under 2026, whose real-time report has the six 1-h indicators only.
    round_input : bool, optional
        See `iaqi`.
    """
    _check_edition(standard)
    so2_1h = _as_concentrations(so2, "so2_1h")
    indices = {
        "so2_1h": iaqi("so2_1h", so2_1h, standard, round_input=round_input),
        "no2_1h": iaqi("no2_1h", no2, standard, round_input=round_input),
        "co_1h": iaqi("co_1h", co, standard, round_input=round_input),
        "o3_1h": iaqi("o3_1h", o3, standard, round_input=round_input),
        "pm10_1h": iaqi("pm10_1h", pm10, standard, round_input=round_input),
        "pm25_1h": iaqi("pm25_1h", pm25, standard, round_input=round_input),
    }
    shape = so2_1h.shape
    for name, values in indices.items():
        if values.shape != shape:
            raise AqiInputError(f"{name}: shape {values.shape} differs from so2's {shape}")
    if standard == HJ633_2012:
        above = so2_1h > 800
        if np.any(above):
            daily = _optional(so2_24h, so2_1h)
            if daily is None:
                raise AqiInputError(
                    "HJ 633-2012: SO2 1-h above 800 µg/m³ is indexed by its 24-h average; "
                    "pass so2_24h"
                )
            indices["so2_1h"] = np.where(
                above, iaqi("so2_24h", daily, standard, round_input=round_input), indices["so2_1h"]
            )
        moving = (("o3_8h", o3_8h), ("pm10_24h", pm10_24h), ("pm25_24h", pm25_24h))
        for name, given in moving:
            extra = _optional(given, so2_1h)
            if extra is None:
                continue
            index = iaqi(name, extra, standard, round_input=round_input)
            if name == "o3_8h":
                # 2012 note (3): past 800 the O3 index is the 1-h one, already counted.
                index = np.where(extra > 800, indices["o3_1h"], index)
            indices[name] = index
    return _combine(standard, "hourly", indices, required=6)


def daily_aqi(
    *,
    so2: ArrayLike,
    no2: ArrayLike,
    co: ArrayLike,
    o3_8h_max: ArrayLike,
    pm10: ArrayLike,
    pm25: ArrayLike,
    standard: str,
    o3_1h_max: ArrayLike | None = None,
    round_input: bool | None = None,
) -> AqiArrays:
    """Daily AQI from daily means and the O3 daily maximum 8-h average.

    Parameters
    ----------
    so2, no2, co, pm10, pm25 : array_like
        Daily (24-h) averages, µg/m³ (CO mg/m³); see `daily_means`.
    o3_8h_max : array_like
        Daily maximum 8-h moving average of O3 (see `o3_daily_max_8h`).
    standard : str
        `HJ633_2012` or `HJ633_2026`.
    o3_1h_max : array_like, optional
        Daily maximum 1-h O3. A seventh indicator of the 2012 daily report, and the index it
        reports for O3 when the 8-h value is above 800 µg/m³ (2012 note 3): required then.
        Ignored under 2026.
    """
    _check_edition(standard)
    o3_8h = _as_concentrations(o3_8h_max, "o3_8h")
    indices = {
        "so2_24h": iaqi("so2_24h", so2, standard, round_input=round_input),
        "no2_24h": iaqi("no2_24h", no2, standard, round_input=round_input),
        "co_24h": iaqi("co_24h", co, standard, round_input=round_input),
        "o3_8h": iaqi("o3_8h", o3_8h, standard, round_input=round_input),
        "pm10_24h": iaqi("pm10_24h", pm10, standard, round_input=round_input),
        "pm25_24h": iaqi("pm25_24h", pm25, standard, round_input=round_input),
    }
    for name, values in indices.items():
        if values.shape != o3_8h.shape:
            raise AqiInputError(f"{name}: shape {values.shape} differs from o3_8h's")
    if standard == HJ633_2012:
        o3_1h = _optional(o3_1h_max, o3_8h)
        if o3_1h is None:
            if np.any(o3_8h > 800):
                raise AqiInputError(
                    "HJ 633-2012: O3 8-h above 800 µg/m³ is indexed by the 1-h maximum; "
                    "pass o3_1h_max"
                )
        else:
            one_hour = iaqi("o3_1h", o3_1h, standard, round_input=round_input)
            indices["o3_8h"] = np.where(o3_8h > 800, one_hour, indices["o3_8h"])
            indices["o3_1h"] = one_hour
    return _combine(standard, "daily", indices, required=6)


def hourly_aqi_by_time(times: ArrayLike, **pollutants: ArrayLike | None) -> tuple[AqiArrays, ...]:
    """Hourly AQI of rows that may straddle 2026-03-01: each row by the edition of its time.

    Returns one `AqiArrays` per edition present, each over the rows of that edition only
    (in order), with ``rows`` of each recoverable by `editions_for`.
    """
    new = editions_for(times)
    results = []
    for standard, mask in ((HJ633_2012, ~new), (HJ633_2026, new)):
        if not mask.any():
            continue
        subset = {
            name: (None if values is None else np.asarray(values, dtype=np.float64)[mask])
            for name, values in pollutants.items()
        }
        results.append(hourly_aqi(standard=standard, **subset))  # type: ignore[arg-type]
    return tuple(results)


# -- averaging (GB 3095 §6 / Table 4 validity: a day needs 20 valid hours, 8 h needs 6) --------


def _window_mean(values: NDArray[np.float64], width: int, minimum: int) -> NDArray[np.float64]:
    """Means over trailing windows along the last axis, NaN where fewer than `minimum` valid."""
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    pad = [(0, 0)] * (values.ndim - 1) + [(1, 0)]
    sums = np.pad(np.cumsum(filled, axis=-1), pad)
    counts = np.pad(np.cumsum(valid, axis=-1), pad)
    window_sum = sums[..., width:] - sums[..., :-width]
    window_count = counts[..., width:] - counts[..., :-width]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(window_count >= minimum, window_sum / window_count, np.nan)


def o3_8h_moving(hourly_o3: ArrayLike) -> NDArray[np.float64]:
    """O3 8-h moving average ending at each hour (last axis = hours; NaN = missing).

    GB 3095 3.8 and Table 4: the mean of the 8 hours ending at that hour, valid with at least
    6 valid hours; the first 7 hours of the series have no complete window and are NaN.
    """
    values = np.asarray(hourly_o3, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    out[..., 7:] = _window_mean(values, 8, 6)
    return out


def _by_day(hourly: ArrayLike) -> NDArray[np.float64]:
    values = np.asarray(hourly, dtype=np.float64)
    if values.shape[-1] % 24:
        raise AqiInputError(f"hours on the last axis must be whole days, got {values.shape[-1]}")
    return values.reshape(*values.shape[:-1], values.shape[-1] // 24, 24)


def daily_means(hourly: ArrayLike) -> NDArray[np.float64]:
    """Daily means of hourly values (last axis: hours from local midnight, whole days).

    Valid with at least 20 valid hours (GB 3095-2012 and GB 3095-2026 Table 4), else NaN.
    """
    days = _by_day(hourly)
    valid = ~np.isnan(days)
    count = valid.sum(axis=-1)
    total = np.where(valid, days, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 20, total / np.maximum(count, 1), np.nan)


def o3_daily_max_8h(hourly_o3: ArrayLike) -> NDArray[np.float64]:
    """O3 daily maximum 8-h average (last axis: hours from local midnight, whole days).

    The 8-h windows lying inside the day (00-08 .. 16-24, 17 windows; GB 3095 3.9 "within a
    natural day"); valid when at least 14 of them are valid (HJ 663-2013 §5.1), else NaN.
    """
    days = _by_day(hourly_o3)
    windows = _window_mean(days, 8, 6)
    valid = ~np.isnan(windows)
    best = np.fmax.reduce(np.where(valid, windows, -np.inf), axis=-1)
    return np.where(valid.sum(axis=-1) >= 14, best, np.nan)


def o3_daily_max_1h(hourly_o3: ArrayLike) -> NDArray[np.float64]:
    """O3 daily maximum 1-h value (the 2012 daily report's seventh indicator); NaN when the
    day has fewer than 20 valid hours."""
    days = _by_day(hourly_o3)
    valid = ~np.isnan(days)
    best = np.fmax.reduce(np.where(valid, days, -np.inf), axis=-1)
    return np.where(valid.sum(axis=-1) >= 20, best, np.nan)
