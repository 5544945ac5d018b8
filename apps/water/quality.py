"""Surface water quality classes by GB 3838-2002, Table 1 (basic items).

A sample's class is the worst class among its single factors (单因子评价法). Each factor's
class is the best class whose limit it meets: for an upper limit a value equal to the limit is
within the class (value ≤ limit); for dissolved oxygen, a "not less than" factor, a value equal
to the limit is within the class (value ≥ limit). pH has one range, 6–9, for all classes: inside
it (both ends included) the factor is class I, outside it worse than class V (劣V).

Total phosphorus has separate, tighter limits for lakes and reservoirs; total nitrogen is a
lake and reservoir factor only and is not judged for rivers.

Classes are numbered 1..6 where 6 is 劣V (worse than class V).

Examples
--------
>>> result = classify_sample({"ph": 7.2, "do": 5.8, "cod": 18.0, "nh3n": 0.4})
>>> result.water_class, result.label, result.deciding
(3, 'III', ('do', 'cod'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
import pymannkendall

STANDARD = "GB 3838-2002"

WORSE_THAN_V = 6
CLASS_LABELS = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "劣V"}


class WaterQualityError(ValueError):
    """A sample, series or target the classifier cannot judge as given."""


class WaterbodyType(StrEnum):
    """Table 1 distinguishes rivers from lakes and reservoirs (湖、库) for TP and TN."""

    RIVER = "river"
    LAKE = "lake"  # lakes and reservoirs


@dataclass(frozen=True)
class Factor:
    """One Table 1 item: its limits for classes I..V, in mg/L unless ``unit`` says otherwise.

    ``lower_bound`` marks a "not less than" factor (dissolved oxygen).
    """

    key: str
    name: str
    limits: tuple[float, float, float, float, float]
    lower_bound: bool = False
    unit: str = "mg/L"


# GB 3838-2002 Table 1, items 3-24 (item 1, water temperature, is a change limit against the
# natural temperature and item 2, pH, a range; both are handled apart).
_TABLE_1: tuple[Factor, ...] = (
    # class I is "saturation 90 % (or 7.5)"; the concentration form is used here
    Factor("do", "溶解氧", (7.5, 6.0, 5.0, 3.0, 2.0), lower_bound=True),
    Factor("codmn", "高锰酸盐指数", (2.0, 4.0, 6.0, 10.0, 15.0)),
    Factor("cod", "化学需氧量", (15.0, 15.0, 20.0, 30.0, 40.0)),
    Factor("bod5", "五日生化需氧量", (3.0, 3.0, 4.0, 6.0, 10.0)),
    Factor("nh3n", "氨氮", (0.15, 0.5, 1.0, 1.5, 2.0)),
    Factor("tp", "总磷", (0.02, 0.1, 0.2, 0.3, 0.4)),
    Factor("cu", "铜", (0.01, 1.0, 1.0, 1.0, 1.0)),
    Factor("zn", "锌", (0.05, 1.0, 1.0, 2.0, 2.0)),
    Factor("fluoride", "氟化物", (1.0, 1.0, 1.0, 1.5, 1.5)),
    Factor("se", "硒", (0.01, 0.01, 0.01, 0.02, 0.02)),
    Factor("as", "砷", (0.05, 0.05, 0.05, 0.1, 0.1)),
    Factor("hg", "汞", (0.00005, 0.00005, 0.0001, 0.001, 0.001)),
    Factor("cd", "镉", (0.001, 0.005, 0.005, 0.005, 0.01)),
    Factor("cr6", "铬(六价)", (0.01, 0.05, 0.05, 0.05, 0.1)),
    Factor("pb", "铅", (0.01, 0.01, 0.05, 0.05, 0.1)),
    Factor("cn", "氰化物", (0.005, 0.05, 0.2, 0.2, 0.2)),
    Factor("phenol", "挥发酚", (0.002, 0.002, 0.005, 0.01, 0.1)),
    Factor("oil", "石油类", (0.05, 0.05, 0.05, 0.5, 1.0)),
    Factor("las", "阴离子表面活性剂", (0.2, 0.2, 0.2, 0.3, 0.3)),
    Factor("sulfide", "硫化物", (0.05, 0.1, 0.2, 0.5, 1.0)),
    Factor("fecal_coliform", "粪大肠菌群", (200.0, 2000.0, 10000.0, 20000.0, 40000.0), unit="个/L"),
)
_LAKE_TP = Factor("tp", "总磷(湖、库)", (0.01, 0.025, 0.05, 0.1, 0.2))
_LAKE_TN = Factor("tn", "总氮(湖、库)", (0.2, 0.5, 1.0, 1.5, 2.0))

PH_RANGE = (6.0, 9.0)

# What an automatic station usually reports; a factor in this set but absent from a sample is
# reported as missing (not judged), never silently treated as clean.
DEFAULT_FACTORS = ("ph", "do", "codmn", "cod", "nh3n", "tp")


def factors_for(waterbody: WaterbodyType | str = WaterbodyType.RIVER) -> dict[str, Factor]:
    """The Table 1 factors (except pH) that apply to a waterbody type, by key."""
    kind = _waterbody(waterbody)
    table = {f.key: f for f in _TABLE_1}
    if kind is WaterbodyType.LAKE:
        table["tp"] = _LAKE_TP
        table["tn"] = _LAKE_TN
    return table


def _waterbody(waterbody: WaterbodyType | str) -> WaterbodyType:
    try:
        return WaterbodyType(waterbody)
    except ValueError:
        choices = ", ".join(w.value for w in WaterbodyType)
        raise WaterQualityError(f"waterbody type {waterbody!r} is not one of: {choices}") from None


def _known_keys(waterbody: WaterbodyType) -> set[str]:
    return {"ph", *factors_for(waterbody)}


def factor_classes(
    key: str, values: np.ndarray | float, waterbody: WaterbodyType | str = WaterbodyType.RIVER
) -> np.ndarray:
    """Class 1..6 of each value of one factor; 0 where the value is missing (NaN).

    Parameters
    ----------
    key
        Factor key (``"ph"``, ``"do"``, ``"cod"``, ... see :func:`factors_for`).
    values
        Concentrations in the factor's unit; NaN means not measured.
    waterbody
        ``"river"`` or ``"lake"`` (lakes and reservoirs).

    Examples
    --------
    >>> factor_classes("nh3n", np.array([0.15, 0.1501, 2.0, 2.01])).tolist()
    [1, 2, 5, 6]
    """
    kind = _waterbody(waterbody)
    arr = np.asarray(values, dtype=float)
    missing = np.isnan(arr)
    if key == "ph":
        inside = (arr >= PH_RANGE[0]) & (arr <= PH_RANGE[1])
        classes = np.where(inside, 1, WORSE_THAN_V)
    else:
        table = factors_for(kind)
        if key not in table:
            raise WaterQualityError(
                f"factor {key!r} is not a GB 3838-2002 Table 1 factor for a {kind.value}; "
                f"known: {', '.join(sorted(_known_keys(kind)))}"
            )
        factor = table[key]
        limits = np.asarray(factor.limits)
        if np.any(arr[~missing] < 0):
            raise WaterQualityError(f"factor {key!r} has a negative concentration")
        # searchsorted 'left' returns the first class whose limit is >= the value, so a value
        # equal to a limit falls in that class (and in the best of equal limits, e.g. COD 15).
        if factor.lower_bound:
            classes = np.searchsorted(-limits, -arr, side="left") + 1
        else:
            classes = np.searchsorted(limits, arr, side="left") + 1
    return np.where(missing, 0, classes).astype(np.int8)


@dataclass(frozen=True)
class SampleClass:
    """The class of one sample and why."""

    water_class: int | None  # 1..6 (6 = 劣V); None when no factor could be judged
    deciding: tuple[str, ...]  # factors at the sample's class
    missing: tuple[str, ...]  # expected factors absent or NaN: not judged
    factor_classes: Mapping[str, int]
    standard: str = STANDARD

    @property
    def label(self) -> str | None:
        return None if self.water_class is None else CLASS_LABELS[self.water_class]


def classify_sample(
    sample: Mapping[str, float | None],
    waterbody: WaterbodyType | str = WaterbodyType.RIVER,
    expected: Sequence[str] = DEFAULT_FACTORS,
) -> SampleClass:
    """Class of one sample by the worst single factor.

    Parameters
    ----------
    sample
        Factor key to concentration (mg/L; pH unitless; fecal coliform per litre). ``None``
        or NaN means not measured.
    waterbody
        ``"river"`` or ``"lake"``. Total nitrogen given for a river is ignored (Table 1 sets
        it for lakes and reservoirs only).
    expected
        Factors the sample should carry; any of them absent is listed in ``missing``.

    Raises
    ------
    WaterQualityError
        An unknown factor key or a negative concentration.
    """
    kind = _waterbody(waterbody)
    known = _known_keys(kind)
    unknown = sorted(set(sample) - known - {"tn"})
    if unknown:
        raise WaterQualityError(
            f"unknown factor(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    classes: dict[str, int] = {}
    missing: list[str] = []
    for key in dict.fromkeys([*expected, *sample]):
        if key not in known:
            continue  # TN on a river: not a river factor
        value = sample.get(key)
        cls = int(factor_classes(key, np.nan if value is None else float(value), kind))
        if cls == 0:
            missing.append(key)
        else:
            classes[key] = cls
    if not classes:
        return SampleClass(None, (), tuple(missing), {})
    worst = max(classes.values())
    deciding = tuple(k for k, c in classes.items() if c == worst)
    return SampleClass(worst, deciding, tuple(missing), classes)


def daily_classes(
    readings: pd.DataFrame,
    waterbody: WaterbodyType | str = WaterbodyType.RIVER,
    timezone: str = "Asia/Shanghai",
) -> pd.DataFrame:
    """Daily class per station from hourly (or any sub-daily) readings, vectorized.

    Each factor's daily value is the arithmetic mean of the day's readings (local calendar
    day); the day's class is the worst factor class of those means.

    Parameters
    ----------
    readings
        Long table with columns ``station``, ``ts`` (timezone-aware or UTC-naive) and one
        column per factor key; NaN means not measured that hour.
    waterbody
        One waterbody type for all stations (call per type when they differ).
    timezone
        Local time zone for the calendar day.

    Returns
    -------
    pandas.DataFrame
        One row per station and day: ``station``, ``date``, the factor daily means, one
        ``class_<factor>`` column per factor (0 = not measured that day), ``water_class``
        (0 when nothing could be judged) and ``hours`` (readings that day).
    """
    kind = _waterbody(waterbody)
    factors = _factor_columns(readings, kind)
    # One integer key per (station, local day); sums and counts by bincount, not a groupby.
    codes, stations = pd.factorize(readings["station"], sort=True)
    if np.any(codes < 0):
        raise WaterQualityError("readings have rows without a station")
    day = _local_day_numbers(readings["ts"], timezone)
    first, span = int(day.min()), int(day.max() - day.min()) + 1
    groups, inverse = np.unique(codes.astype(np.int64) * span + (day - first), return_inverse=True)
    inverse = inverse.ravel()
    daily = pd.DataFrame(
        {
            "station": np.asarray(stations)[groups // span],
            "date": (groups % span + first).astype("datetime64[D]").astype("datetime64[ns]"),
        }
    )
    for key in factors:
        values = readings[key].to_numpy(dtype=float)
        seen = ~np.isnan(values)
        sums = np.bincount(inverse[seen], weights=values[seen], minlength=len(groups))
        counts = np.bincount(inverse[seen], minlength=len(groups))
        with np.errstate(invalid="ignore", divide="ignore"):
            daily[key] = np.where(counts > 0, sums / counts, np.nan)
    daily["hours"] = np.bincount(inverse, minlength=len(groups))
    worst = np.zeros(len(daily), dtype=np.int8)
    for key in factors:
        cls = factor_classes(key, daily[key].to_numpy(), kind)
        daily[f"class_{key}"] = cls
        np.maximum(worst, cls, out=worst)
    daily["water_class"] = worst
    return daily


def daily_classes_rowwise(
    readings: pd.DataFrame,
    waterbody: WaterbodyType | str = WaterbodyType.RIVER,
    timezone: str = "Asia/Shanghai",
) -> pd.DataFrame:
    """The same daily classes, computed row by row with :func:`classify_sample`.

    The plain peer for benchmarks and a cross-check of the vectorized path; returns
    ``station``, ``date`` and ``water_class`` (0 when nothing could be judged).
    """
    kind = _waterbody(waterbody)
    factors = _factor_columns(readings, kind)
    frame = readings.assign(date=_local_dates(readings["ts"], timezone))
    daily = frame.groupby(["station", "date"], sort=True)[factors].mean().reset_index()
    rows = []
    for _, row in daily.iterrows():
        sample = {key: row[key] for key in factors}
        judged = classify_sample(sample, kind, expected=())
        rows.append((row["station"], row["date"], judged.water_class or 0))
    return pd.DataFrame(rows, columns=["station", "date", "water_class"])


def _factor_columns(readings: pd.DataFrame, kind: WaterbodyType) -> list[str]:
    for column in ("station", "ts"):
        if column not in readings.columns:
            raise WaterQualityError(f"readings lack the {column!r} column")
    known = _known_keys(kind)
    factors = [c for c in readings.columns if c in known]
    if not factors:
        raise WaterQualityError(
            f"readings carry no GB 3838-2002 factor column; known: {', '.join(sorted(known))}"
        )
    return factors


def _local_day_numbers(ts: pd.Series, timezone: str) -> np.ndarray:
    """Days since 1970-01-01 of each time's local calendar day (naive times are UTC)."""
    stamps = pd.DatetimeIndex(pd.to_datetime(ts, cache=False))
    if stamps.tz is None:
        stamps = stamps.tz_localize("UTC")
    return stamps.tz_convert(timezone).tz_localize(None).asi8 // 86_400_000_000_000


def _local_dates(ts: pd.Series, timezone: str) -> np.ndarray:
    stamps = pd.DatetimeIndex(pd.to_datetime(ts))
    if stamps.tz is None:
        stamps = stamps.tz_localize("UTC")
    return stamps.tz_convert(timezone).normalize().tz_localize(None).to_numpy()


def compliance(daily: pd.DataFrame, targets: Mapping[str, int | str]) -> pd.DataFrame:
    """Days meeting each station's target class (水质目标), and the rate.

    Parameters
    ----------
    daily
        Output of :func:`daily_classes` (``station``, ``water_class``).
    targets
        Station to target class, 1..5 or a label ``"I"``..``"V"``.

    Returns
    -------
    pandas.DataFrame
        Per station: ``target``, ``days_judged``, ``days_met``, ``rate`` (met / judged; NaN
        when no day could be judged) and ``worst_class``. Days with class 0 (nothing judged)
        are not counted.
    """
    target_class = {station: _target(station, t) for station, t in targets.items()}
    unknown = sorted(set(daily["station"]) - set(target_class))
    if unknown:
        raise WaterQualityError(f"no target class for station(s): {', '.join(map(str, unknown))}")
    judged = daily[daily["water_class"] > 0]
    wanted = judged["station"].map(target_class)
    met = judged["water_class"].to_numpy() <= wanted.to_numpy()
    table = (
        pd.DataFrame({"station": judged["station"], "met": met, "cls": judged["water_class"]})
        .groupby("station")
        .agg(days_judged=("met", "size"), days_met=("met", "sum"), worst_class=("cls", "max"))
    )
    table = table.reindex(sorted(target_class)).rename_axis("station")
    table["days_judged"] = table["days_judged"].fillna(0).astype(int)
    table["days_met"] = table["days_met"].fillna(0).astype(int)
    table.insert(0, "target", pd.Series(target_class))
    with np.errstate(invalid="ignore", divide="ignore"):
        table["rate"] = table["days_met"] / table["days_judged"].where(table["days_judged"] > 0)
    return table.reset_index()


def _target(station: str, target: int | str) -> int:
    by_label = {label: cls for cls, label in CLASS_LABELS.items() if cls <= 5}
    if isinstance(target, str):
        if target not in by_label:
            raise WaterQualityError(f"station {station}: target class {target!r} is not I..V")
        return by_label[target]
    if isinstance(target, bool) or not 1 <= int(target) <= 5 or int(target) != target:
        raise WaterQualityError(f"station {station}: target class {target!r} is not 1..5")
    return int(target)


@dataclass(frozen=True)
class Trend:
    """A Mann–Kendall trend test result (pymannkendall)."""

    trend: str  # "increasing", "decreasing" or "no trend"
    p_value: float
    tau: float  # Kendall's tau
    z: float
    sen_slope: float  # per time step of the series
    n: int
    test: str


def concentration_trend(
    series: Sequence[float] | np.ndarray | pd.Series, alpha: float = 0.05, period: int | None = None
) -> Trend:
    """Trend of a concentration series by the Mann–Kendall test.

    Parameters
    ----------
    series
        Regularly spaced values (e.g. monthly means), oldest first; NaN values are dropped.
    alpha
        Significance level.
    period
        When given (e.g. 12 for monthly values), the seasonal Mann–Kendall test (Hirsch et al.
        1982), which compares each season only with itself; otherwise the original test
        (Mann 1945, Kendall 1975).
    """
    values = np.asarray(series, dtype=float)
    if values.ndim != 1:
        raise WaterQualityError("a trend needs a one-dimensional series")
    n = int(np.count_nonzero(~np.isnan(values)))
    minimum = 2 * period if period else 4
    if n < minimum:
        raise WaterQualityError(f"a trend needs at least {minimum} values, got {n}")
    if not 0 < alpha < 1:
        raise WaterQualityError(f"alpha must be between 0 and 1, got {alpha}")
    if period:
        result = pymannkendall.seasonal_test(values, period=period, alpha=alpha)
        test = "seasonal Mann-Kendall"
    else:
        result = pymannkendall.original_test(values[~np.isnan(values)], alpha=alpha)
        test = "Mann-Kendall"
    return Trend(
        trend=result.trend,
        p_value=float(result.p),
        tau=float(result.Tau),
        z=float(result.z),
        sen_slope=float(result.slope),
        n=n,
        test=test,
    )
