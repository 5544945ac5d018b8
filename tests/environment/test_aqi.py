"""AQI by HJ 633-2012 and HJ 633-2026: every breakpoint, the past-the-table rules, averaging,
and a comparison with the `aqi-hub` package."""

from __future__ import annotations

import math
from datetime import date, datetime
from fractions import Fraction

import numpy as np
import pytest

from apps.environment import aqi
from apps.environment.aqi import HJ633_2012, HJ633_2026

# The tables typed again from the standards' text (HJ 633-2012 Table 1, HJ 633-2026 Table 3),
# independently of the module, so a typo on either side fails.
STEPS = (0, 50, 100, 150, 200, 300, 400, 500)
TABLE_2012 = {
    "so2_24h": (0, 50, 150, 475, 800, 1600, 2100, 2620),
    "so2_1h": (0, 150, 500, 650, 800),
    "no2_24h": (0, 40, 80, 180, 280, 565, 750, 940),
    "no2_1h": (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    "pm10_24h": (0, 50, 150, 250, 350, 420, 500, 600),
    "co_24h": (0, 2, 4, 14, 24, 36, 48, 60),
    "co_1h": (0, 5, 10, 35, 60, 90, 120, 150),
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 160, 215, 265, 800),
    "pm25_24h": (0, 35, 75, 115, 150, 250, 350, 500),
}
TABLE_2026 = {
    **TABLE_2012,
    "pm10_24h": (0, 50, 120, 250, 350, 420, 500, 600),
    "pm25_24h": (0, 35, 60, 115, 150, 250, 350, 500),
}
TABLES = {HJ633_2012: TABLE_2012, HJ633_2026: TABLE_2026}


def expected_iaqi(column: tuple[int, ...], c: Fraction) -> int:
    """HJ 633 eq. (1), exact, rounded up."""
    for k in range(1, len(column)):
        lo, hi = column[k - 1], column[k]
        if lo <= c <= hi:
            return math.ceil(Fraction(STEPS[k] - STEPS[k - 1], hi - lo) * (c - lo) + STEPS[k - 1])
    raise AssertionError("outside the table")


def sweep() -> list[tuple[str, str, int]]:
    return [
        (standard, indicator, k)
        for standard, table in TABLES.items()
        for indicator, column in table.items()
        for k in range(len(column))
    ]


@pytest.mark.parametrize(("standard", "indicator", "k"), sweep())
def test_every_breakpoint_below_at_above(standard: str, indicator: str, k: int) -> None:
    column = TABLES[standard][indicator]
    delta = Fraction(1, 10) if indicator.startswith("co") else Fraction(1)
    at = Fraction(column[k])
    values = [at]
    wanted = [STEPS[k]]
    if k > 0:
        values.append(at - delta)
        wanted.append(expected_iaqi(column, at - delta))
    if k < len(column) - 1:
        values.append(at + delta)
        wanted.append(expected_iaqi(column, at + delta))
    got = aqi.iaqi(indicator, np.array([float(v) for v in values]), standard)
    assert got.tolist() == [float(w) for w in wanted]
    # Just above a breakpoint is at least one more than its index (rounded up); just below is
    # at most the index.
    if k < len(column) - 1:
        assert got[-1] >= STEPS[k] + 1
    if k > 0:
        assert STEPS[k - 1] < got[1] <= STEPS[k]


def test_module_tables_name_their_source() -> None:
    for standard, table in TABLES.items():
        for indicator, column in table.items():
            bp = aqi.breakpoints(indicator, standard)
            assert bp.concentrations == tuple(float(v) for v in column)
            assert bp.source.startswith(standard)
    assert "changed" in aqi.breakpoints("pm25_24h", HJ633_2026).source
    assert "changed" not in aqi.breakpoints("so2_24h", HJ633_2026).source


def test_hand_computed_differences_between_editions() -> None:
    # PM2.5 daily 75: 2012 top of "good" = 100; 2026 (60..115 → 100..150): 100 + 50*15/55
    # = 113.6 → 114.
    assert aqi.iaqi("pm25_24h", [75.0], HJ633_2012)[0] == 100
    assert aqi.iaqi("pm25_24h", [75.0], HJ633_2026)[0] == 114
    # PM10 daily 150: 2012 → 100; 2026 (120..250 → 100..150): 100 + 50*30/130 = 111.5 → 112.
    assert aqi.iaqi("pm10_24h", [150.0], HJ633_2012)[0] == 100
    assert aqi.iaqi("pm10_24h", [150.0], HJ633_2026)[0] == 112
    # PM 1-h values are indexed on the daily column.
    assert aqi.iaqi("pm25_1h", [75.0], HJ633_2026)[0] == 114


def test_past_the_last_breakpoint_2026() -> None:
    assert aqi.iaqi("so2_1h", [800.0, 801.0, 5000.0], HJ633_2026).tolist() == [200, 200, 200]
    assert aqi.iaqi("o3_8h", [800.0, 801.0, 3000.0], HJ633_2026).tolist() == [300, 300, 300]
    assert aqi.iaqi("pm25_24h", [500.0, 501.0, 900.0], HJ633_2026).tolist() == [500, 500, 500]
    assert aqi.iaqi("co_1h", [150.0, 150.1], HJ633_2026).tolist() == [500, 500]


def test_past_the_last_breakpoint_2012_so2_uses_24h() -> None:
    ones = np.ones(3)
    result = aqi.hourly_aqi(
        so2=np.array([800.0, 801.0, 900.0]),
        no2=ones,
        co=ones * 0.1,
        o3=ones,
        pm10=ones,
        pm25=ones,
        so2_24h=np.array([100.0, 475.0, 1600.0]),
        standard=HJ633_2012,
    )
    # 800 is still on the 1-h table (200); above it the 24-h value's index: 475 → 150,
    # 1600 → 300.
    assert result.iaqi["so2_1h"].tolist() == [200, 150, 300]
    assert result.aqi.tolist() == [200, 150, 300]
    assert result.standard == HJ633_2012
    with pytest.raises(aqi.AqiInputError, match="so2_24h"):
        aqi.hourly_aqi(
            so2=[801.0], no2=[1.0], co=[0.1], o3=[1.0], pm10=[1.0], pm25=[1.0], standard=HJ633_2012
        )


def test_past_the_last_breakpoint_2012_o3_8h_uses_1h() -> None:
    daily = aqi.daily_aqi(
        so2=[10.0, 10.0],
        no2=[10.0, 10.0],
        co=[0.5, 0.5],
        o3_8h_max=[800.0, 850.0],
        pm10=[20.0, 20.0],
        pm25=[10.0, 10.0],
        o3_1h_max=[900.0, 1000.0],
        standard=HJ633_2012,
    )
    # 800 → 300 on the 8-h table; 850 → the 1-h index of 1000 = 400.
    assert daily.iaqi["o3_8h"].tolist() == [300, 400]
    # The 1-h maximum is also an indicator of the 2012 daily report: 900 (800..1000 →
    # 300..400) = 350.
    assert daily.iaqi["o3_1h"].tolist() == [350, 400]
    assert daily.aqi.tolist() == [350, 400]
    with pytest.raises(aqi.AqiInputError, match="o3_1h_max"):
        aqi.daily_aqi(
            so2=[1.0],
            no2=[1.0],
            co=[0.1],
            o3_8h_max=[801.0],
            pm10=[1.0],
            pm25=[1.0],
            standard=HJ633_2012,
        )
    # 2026 ignores the 1-h maximum and caps the 8-h index at 300.
    capped = aqi.daily_aqi(
        so2=[1.0],
        no2=[1.0],
        co=[0.1],
        o3_8h_max=[801.0],
        pm10=[1.0],
        pm25=[1.0],
        o3_1h_max=[1000.0],
        standard=HJ633_2026,
    )
    assert capped.aqi.tolist() == [300] and "o3_1h" not in capped.iaqi


def test_aqi_level_primary_pollutants() -> None:
    result = aqi.daily_aqi(
        so2=[10.0, 10.0, 10.0, 10.0],
        no2=[10.0, 10.0, 80.0, 10.0],
        co=[0.5, 0.5, 0.5, 0.5],
        o3_8h_max=[50.0, 50.0, 50.0, 50.0],
        pm10=[20.0, 50.0, 150.0, np.nan],
        pm25=[10.0, 35.0, 75.0, 75.0],
        standard=HJ633_2012,
    )
    # Row 0 by hand: SO2 10, NO2 10/40*50 = 12.5 → 13, CO 0.5/2*50 = 12.5 → 13, O3 50/100*50
    # = 25, PM10 20, PM2.5 10/35*50 = 14.3 → 15: AQI 25 (O3).
    assert result.aqi.tolist() == [25, 50, 100, 100]
    assert result.level.tolist() == [1, 1, 2, 2]
    assert result.primary_pollutants(0) == []
    assert result.primary_pollutants(1) == []  # AQI 50 is not above 50
    assert result.primary_pollutants(2) == ["no2", "pm10", "pm25"]  # ties are all primary
    assert result.complete.tolist() == [True, True, True, False]
    level = result.level_of(2)
    assert level is not None
    assert (level.name_zh, level.name_en, level.rgb, level.hex) == (
        "良",
        "Good",
        (255, 255, 0),
        "#FFFF00",
    )


def test_missing_pollutant_publishing_rule_2026() -> None:
    result = aqi.hourly_aqi(
        so2=[np.nan, np.nan, 5.0],
        no2=[10.0, 10.0, 10.0],
        co=[0.5, 0.5, 0.5],
        o3=[20.0, 20.0, 20.0],
        pm10=[20.0, 300.0, 20.0],
        pm25=[10.0, 10.0, 10.0],
        standard=HJ633_2026,
    )
    # §5.3.1: incomplete rows are published only when the AQI of the rest exceeds 100.
    assert result.complete.tolist() == [False, False, True]
    assert result.publishable.tolist() == [False, True, True]
    assert result.aqi[1] == 175  # PM10 1-h 300: 150 + 50*50/100


def test_levels_boundaries() -> None:
    for value, number in [(0, 1), (50, 1), (51, 2), (100, 2), (101, 3), (150, 3), (151, 4)]:
        assert aqi.level(value).number == number
    for value, number in [(200, 4), (201, 5), (300, 5), (301, 6), (500, 6)]:
        assert aqi.level(value).number == number
    assert aqi.level(301).colour_zh == "褐红色" and aqi.level(301).rgb == (126, 0, 35)
    with pytest.raises(aqi.AqiInputError):
        aqi.level(float("nan"))


def test_edition_by_date() -> None:
    assert aqi.edition_for(date(2026, 2, 28)) == HJ633_2012
    assert aqi.edition_for(datetime(2026, 2, 28, 23, 59)) == HJ633_2012
    assert aqi.edition_for(date(2026, 3, 1)) == HJ633_2026
    times = np.array(["2026-02-28T23:00", "2026-03-01T00:00"], dtype="datetime64[m]")
    assert aqi.editions_for(times).tolist() == [False, True]
    old, new = aqi.hourly_aqi_by_time(
        times,
        so2=[5.0, 5.0],
        no2=[5.0, 5.0],
        co=[0.2, 0.2],
        o3=[20.0, 20.0],
        pm10=[10.0, 10.0],
        pm25=[75.0, 75.0],
    )
    assert (old.standard, old.aqi.tolist()) == (HJ633_2012, [100])
    assert (new.standard, new.aqi.tolist()) == (HJ633_2026, [114])


def test_2026_rounds_concentrations_first() -> None:
    # 35.4 rounds to 35 (IAQI 50) under 2026 §4.2.2; 2012 indexes 35.4 as it is: 50.3 → 51.
    assert aqi.iaqi("pm25_24h", [35.4], HJ633_2026)[0] == 50
    assert aqi.iaqi("pm25_24h", [35.4], HJ633_2012)[0] == 51
    # GB/T 8170: an exact trailing 5 goes to the even neighbour.
    assert aqi.round_concentration([34.5, 35.5], "pm25_24h").tolist() == [34, 36]
    assert aqi.round_concentration([2.05, 2.15], "co_24h").tolist() == [2.0, 2.2]


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(aqi.AqiInputError, match="negative"):
        aqi.iaqi("pm25_24h", [-1.0], HJ633_2026)
    with pytest.raises(aqi.AqiInputError, match="unknown AQI standard"):
        aqi.iaqi("pm25_24h", [1.0], "HJ 633-2099")
    with pytest.raises(aqi.AqiInputError, match="unknown AQI indicator"):
        aqi.iaqi("pm1_24h", [1.0], HJ633_2026)
    with pytest.raises(aqi.AqiInputError, match="whole days"):
        aqi.daily_means(np.ones(25))


def test_daily_mean_needs_20_valid_hours() -> None:
    day = np.arange(24, dtype=float)
    nineteen = day.copy()
    nineteen[:5] = np.nan
    twenty = day.copy()
    twenty[:4] = np.nan
    means = aqi.daily_means(np.stack([day, nineteen, twenty]))
    assert means[0, 0] == pytest.approx(11.5)
    assert np.isnan(means[1, 0])
    assert means[2, 0] == pytest.approx(np.mean(np.arange(4, 24)))


def test_o3_8h_moving_and_daily_max() -> None:
    hours = np.zeros(48)
    hours[10:18] = 160.0  # one 8-h block at 10:00-18:00 of day one
    moving = aqi.o3_8h_moving(hours)
    assert np.isnan(moving[6]) and moving[7] == 0.0
    assert moving[17] == 160.0 and moving[16] == 140.0
    with_gaps = hours.copy()
    with_gaps[10:12] = np.nan  # 6 valid of 8: still valid, the mean of what is there
    assert aqi.o3_8h_moving(with_gaps)[17] == 160.0
    with_gaps[12] = np.nan  # 5 valid: not
    assert np.isnan(aqi.o3_8h_moving(with_gaps)[17])
    daily = aqi.o3_daily_max_8h(hours)
    assert daily.tolist() == [160.0, 0.0]
    # A day with 13 valid windows of 17 has no valid daily maximum.
    sparse = np.zeros(24)
    sparse[0:4] = np.nan  # windows starting at 0 and 1 keep only 4 and 5 valid hours
    valid_windows = int((~np.isnan(aqi._window_mean(sparse[None, :], 8, 6))).sum())
    assert valid_windows == 15
    assert aqi.o3_daily_max_8h(sparse)[0] == 0.0
    sparse[20:24] = np.nan  # and now those starting at 15 and 16
    valid_windows = int((~np.isnan(aqi._window_mean(sparse[None, :], 8, 6))).sum())
    assert valid_windows == 13
    assert np.isnan(aqi.o3_daily_max_8h(sparse)[0])


def test_year_of_hourly_data_for_many_stations() -> None:
    rng = np.random.default_rng(7)
    stations, hours = 120, 8760
    shape = (stations, hours)
    data = {
        "so2": rng.gamma(2.0, 10.0, shape),
        "no2": rng.gamma(2.0, 20.0, shape),
        "co": rng.gamma(2.0, 0.4, shape),
        "o3": rng.gamma(3.0, 30.0, shape),
        "pm10": rng.gamma(2.0, 40.0, shape),
        "pm25": rng.gamma(2.0, 25.0, shape),
    }
    # How fast is the bench's figure (aqi_rows_per_s); here, that a year of data is all answered.
    result = aqi.hourly_aqi(standard=HJ633_2026, **data)
    assert result.aqi.shape == shape
    assert np.all(result.aqi >= 1)


def test_against_aqi_hub() -> None:
    """Same integer concentrations through aqi-hub 0.3.3 (which follows HJ 633-2026).

    Every disagreement is explained:
    * SO2_24H: aqi-hub's table is the 1-h column (0, 150, 500, 650, 800, ...) where HJ 633-2026
      Table 3 has (0, 50, 150, 475, 800, 1600, ...): aqi-hub disagrees with the standard from
      just above 0 to 800 µg/m³, and agrees from 800 up (the columns coincide there).
    * aqi-hub rounds the interpolated float up with no guard against float noise: CO 2.2 mg/m³
      gives 50 + 25 * 0.2 = 55.00000000000001 there, so 56; the exact value is 55. Every such
      case is checked against exact rational arithmetic below: ours is exact, theirs one more.
    * aqi-hub returns 500 past every other table's end (and 200 / 300 for SO2 1-h and O3 8-h,
      as we do), so there is no other expected difference on these values.
    """
    hub = pytest.importorskip("aqi_hub.aqi_cn")
    names = {
        "so2_24h": "SO2_24H",
        "so2_1h": "SO2_1H",
        "no2_24h": "NO2_24H",
        "no2_1h": "NO2_1H",
        "co_24h": "CO_24H",
        "co_1h": "CO_1H",
        "o3_1h": "O3_1H",
        "o3_8h": "O3_8H",
        "pm10_24h": "PM10_24H",
        "pm25_24h": "PM25_24H",
    }
    for ours, theirs in names.items():
        top = TABLE_2026[ours][-1]
        step = 0.1 if ours.startswith("co") else 1.0
        values = np.round(np.arange(0.0, top * 1.2 + step, step), 1)
        mine = aqi.iaqi(ours, values, HJ633_2026)
        others = np.array([hub.cal_iaqi_cn(theirs, float(v)) for v in values], dtype=float)
        differs = mine != others
        if ours == "so2_24h":
            assert differs.any()
            assert values[differs].min() > 0 and values[differs].max() < 800
            continue
        for value, my_index, their_index in zip(
            values[differs], mine[differs], others[differs], strict=True
        ):
            exact = expected_iaqi(TABLE_2026[ours], Fraction(str(value)))
            assert (my_index, their_index) == (exact, exact + 1), f"{ours} at {value}"
