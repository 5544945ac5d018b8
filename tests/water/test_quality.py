"""GB 3838-2002 classes at every limit, the daily vectorized path against its row-wise peer,
compliance and Mann–Kendall trends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.water.quality import (
    WaterQualityError,
    classify_sample,
    compliance,
    concentration_trend,
    daily_classes,
    daily_classes_rowwise,
    factor_classes,
)

# Table 1 limits for classes I..V, written out again from the standard (not imported), so a
# wrong entry in the module fails here.
LIMITS = {
    "codmn": (2, 4, 6, 10, 15),
    "cod": (15, 15, 20, 30, 40),
    "bod5": (3, 3, 4, 6, 10),
    "nh3n": (0.15, 0.5, 1.0, 1.5, 2.0),
    "tp": (0.02, 0.1, 0.2, 0.3, 0.4),
    "cu": (0.01, 1.0, 1.0, 1.0, 1.0),
    "zn": (0.05, 1.0, 1.0, 2.0, 2.0),
    "fluoride": (1.0, 1.0, 1.0, 1.5, 1.5),
    "se": (0.01, 0.01, 0.01, 0.02, 0.02),
    "as": (0.05, 0.05, 0.05, 0.1, 0.1),
    "hg": (0.00005, 0.00005, 0.0001, 0.001, 0.001),
    "cd": (0.001, 0.005, 0.005, 0.005, 0.01),
    "cr6": (0.01, 0.05, 0.05, 0.05, 0.1),
    "pb": (0.01, 0.01, 0.05, 0.05, 0.1),
    "cn": (0.005, 0.05, 0.2, 0.2, 0.2),
    "phenol": (0.002, 0.002, 0.005, 0.01, 0.1),
    "oil": (0.05, 0.05, 0.05, 0.5, 1.0),
    "las": (0.2, 0.2, 0.2, 0.3, 0.3),
    "sulfide": (0.05, 0.1, 0.2, 0.5, 1.0),
    "fecal_coliform": (200, 2000, 10000, 20000, 40000),
}
LAKE_LIMITS = {"tp": (0.01, 0.025, 0.05, 0.1, 0.2), "tn": (0.2, 0.5, 1.0, 1.5, 2.0)}
DO_LIMITS = (7.5, 6, 5, 3, 2)


def _upper_cases(limits):
    """(value, expected class) at, just below and just above every limit.

    The expected class is the definition restated: the first class whose limit the value does
    not exceed, 劣V (6) past class V.
    """
    for limit in limits:
        for value in (limit * (1 - 1e-6), limit, limit * (1 + 1e-6)):
            yield value, next((i + 1 for i, lim in enumerate(limits) if value <= lim), 6)


@pytest.mark.parametrize(
    ("waterbody", "key", "limits"),
    [
        *[("river", k, v) for k, v in LIMITS.items()],
        *[("lake", k, v) for k, v in LAKE_LIMITS.items()],
    ],
)
def test_upper_limits_at_below_above(waterbody, key, limits):
    values, expected = zip(*_upper_cases(limits), strict=True)
    got = factor_classes(key, np.array(values), waterbody).tolist()
    assert got == list(expected)


def test_upper_limit_just_below_a_limit_is_that_class_or_better():
    # COD: 14.99 and 15 are class I (I and II share 15), 15.01 is III, 40 is V, 40.01 is 劣V
    assert factor_classes("cod", np.array([14.99, 15, 15.01, 20, 20.01, 40, 40.01])).tolist() == [
        1,
        1,
        3,
        3,
        4,
        5,
        6,
    ]
    # NH3-N, the brief's figures
    assert factor_classes(
        "nh3n", np.array([0.1499, 0.15, 0.1501, 0.5, 0.5001, 1.0, 1.0001, 1.5, 1.5001, 2.0, 2.0001])
    ).tolist() == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
        6,
    ]


def test_dissolved_oxygen_is_not_less_than():
    values, expected = [], []
    for index, limit in enumerate(DO_LIMITS):
        values += [limit + 0.001, limit, limit - 0.001]
        # above and at a limit: that class; just below it: the next worse one
        expected += [index + 1, index + 1, index + 2]
    got = factor_classes("do", np.array(values)).tolist()
    assert got == expected
    assert factor_classes("do", np.array([9.0, 7.4999, 1.9999, 0.0])).tolist() == [1, 2, 6, 6]


def test_ph_range_all_classes():
    got = factor_classes("ph", np.array([5.99, 6.0, 7.0, 9.0, 9.01, np.nan])).tolist()
    assert got == [6, 1, 1, 1, 6, 0]


def test_river_and_lake_phosphorus_differ():
    assert factor_classes("tp", np.array([0.05]), "river").tolist() == [2]
    assert factor_classes("tp", np.array([0.05]), "lake").tolist() == [3]


def test_total_nitrogen_is_a_lake_factor():
    with pytest.raises(WaterQualityError, match="tn"):
        factor_classes("tn", np.array([1.0]), "river")
    sample = {"ph": 7, "do": 8, "codmn": 1, "cod": 10, "nh3n": 0.1, "tp": 0.01, "tn": 5.0}
    assert classify_sample(sample, "river").water_class == 1  # TN not judged on a river
    lake = classify_sample(sample, "lake")
    assert (lake.water_class, lake.label, lake.deciding) == (6, "劣V", ("tn",))


def test_worst_factor_decides_and_missing_is_reported():
    result = classify_sample({"ph": 7.2, "do": 5.8, "cod": 18.0, "nh3n": 0.4})
    assert result.water_class == 3
    assert result.label == "III"
    assert result.deciding == ("do", "cod")
    assert result.missing == ("codmn", "tp")
    assert result.factor_classes == {"ph": 1, "do": 3, "cod": 3, "nh3n": 2}


def test_ph_out_of_range_makes_the_sample_worse_than_v():
    result = classify_sample({"ph": 9.2, "do": 8.0, "cod": 10.0}, expected=())
    assert (result.water_class, result.deciding) == (6, ("ph",))


def test_nothing_judged():
    result = classify_sample({"cod": None}, expected=("cod", "do"))
    assert result.water_class is None
    assert result.label is None
    assert result.missing == ("cod", "do")


def test_bad_input_is_named():
    with pytest.raises(WaterQualityError, match="chlorophyll"):
        classify_sample({"chlorophyll": 1.0})
    with pytest.raises(WaterQualityError, match="negative"):
        classify_sample({"cod": -1.0})
    with pytest.raises(WaterQualityError, match="waterbody type 'sea'"):
        classify_sample({"cod": 1.0}, "sea")


def _hourly(stations: int, days: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-01", periods=24 * days, freq="h", tz="Asia/Shanghai")
    n = len(ts)
    frame = pd.DataFrame(
        {
            "station": np.repeat([f"WQ-{i:03d}" for i in range(stations)], n),
            "ts": np.tile(ts, stations),
            "ph": rng.normal(7.5, 0.8, n * stations),
            "do": rng.gamma(9.0, 0.7, n * stations),
            "codmn": rng.gamma(3.0, 1.5, n * stations),
            "cod": rng.gamma(4.0, 5.0, n * stations),
            "nh3n": rng.gamma(2.0, 0.4, n * stations),
            "tp": rng.gamma(2.0, 0.08, n * stations),
        }
    )
    # stations from clean headwaters to a polluted reach, so the days span several classes
    level = np.repeat(np.linspace(0.3, 3.0, stations), n)
    for key in ("codmn", "cod", "nh3n", "tp"):
        frame[key] *= level
    frame.loc[rng.random(len(frame)) < 0.05, "nh3n"] = np.nan  # gaps
    return frame


def test_daily_classes_by_hand():
    ts = pd.to_datetime(
        ["2026-05-01T00:00+08:00", "2026-05-01T12:00+08:00", "2026-05-02T00:00+08:00"]
    )
    readings = pd.DataFrame(
        {
            "station": ["A", "A", "A"],
            "ts": ts,
            "cod": [14.0, 16.0, 21.0],  # day 1 mean 15 -> I; day 2 21 -> IV
            "do": [8.0, 4.0, np.nan],  # day 1 mean 6 -> II; day 2 not measured
        }
    )
    daily = daily_classes(readings)
    assert daily["water_class"].tolist() == [2, 4]
    assert daily["class_do"].tolist() == [2, 0]
    assert daily["hours"].tolist() == [2, 1]
    # local calendar day: 2026-05-01T23:00+08:00 is 15:00 UTC the same day
    utc = pd.DataFrame({"station": ["A"], "ts": [pd.Timestamp("2026-05-01T16:30Z")], "cod": [1.0]})
    assert str(daily_classes(utc)["date"].iloc[0].date()) == "2026-05-02"


def test_vectorized_matches_rowwise_peer():
    # How fast is the bench's figure (`changzhi bench water`: classes_ms); here, only the answer.
    readings = _hourly(stations=50, days=365)
    daily = daily_classes(readings)
    assert len(daily) == 50 * 365
    sample = readings[readings["station"].isin(["WQ-000", "WQ-025", "WQ-049"])]
    peer = daily_classes_rowwise(sample)
    mine = daily_classes(sample)
    assert mine["water_class"].tolist() == peer["water_class"].tolist()
    assert set(mine["water_class"]) >= {2, 3, 4, 5, 6}  # the synthetic data spans several classes


def test_compliance_by_hand():
    daily = pd.DataFrame(
        {
            "station": ["A", "A", "A", "B", "B"],
            "water_class": [2, 3, 4, 0, 5],
        }
    )
    table = compliance(daily, {"A": "III", "B": 5}).set_index("station")
    assert table.loc["A", "days_met"] == 2
    assert table.loc["A", "days_judged"] == 3
    assert table.loc["A", "rate"] == pytest.approx(2 / 3)
    assert table.loc["B", "rate"] == 1.0
    assert table.loc["B", "days_judged"] == 1
    with pytest.raises(WaterQualityError, match="no target class for station"):
        compliance(daily, {"A": 3})
    with pytest.raises(WaterQualityError, match=r"not I\.\.V"):
        compliance(daily, {"A": "VI", "B": 3})
    with pytest.raises(WaterQualityError, match=r"not 1\.\.5"):
        compliance(daily, {"A": 6, "B": 3})


def test_mann_kendall_trend():
    rising = np.arange(24, dtype=float) * 0.05 + np.tile([0.0, 0.02, -0.01], 8)
    trend = concentration_trend(rising)
    assert trend.trend == "increasing"
    assert trend.sen_slope == pytest.approx(0.05, abs=0.01)
    assert trend.p_value < 0.05
    flat = concentration_trend([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
    assert flat.trend == "no trend"
    # S for 1,3,2,4 by hand: (+1 +1 +1) + (-1 +1) + (+1) = 4; tau = S / (n(n-1)/2) = 4/6
    assert concentration_trend([1.0, 3.0, 2.0, 4.0]).tau == pytest.approx(4 / 6)
    seasonal = concentration_trend(
        np.tile(np.arange(12.0), 3) + np.repeat([0, 1, 2], 12), period=12
    )
    assert seasonal.trend == "increasing"
    with pytest.raises(WaterQualityError, match="at least 4"):
        concentration_trend([1.0, 2.0])
