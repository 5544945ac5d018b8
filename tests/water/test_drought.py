"""Drought grades at their bounds, relative moisture by hand, SPI against an independent gamma
fit, the map's areas by hand and the bucket outlook."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from affine import Affine
from shapely.geometry import box

from apps.water.drought import (
    GRADE_NAMES,
    DroughtError,
    drought_map,
    extraterrestrial_radiation,
    hargreaves_et0,
    idw,
    moisture_grade,
    outlook,
    relative_moisture,
    spi,
    spi_grade,
)


def test_moisture_grades_at_below_above_each_bound():
    values = [60.01, 60.0, 59.99, 50.01, 50.0, 49.99, 40.01, 40.0, 39.99, 30.01, 30.0, 0.0, 120]
    assert moisture_grade(np.array(values)).tolist() == [0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 0]
    assert moisture_grade(np.array([np.nan])).tolist() == [-1]
    assert GRADE_NAMES[4] == "特旱"


def test_spi_grades_at_below_above_each_bound():
    values = [-0.49, -0.5, -0.51, -0.99, -1.0, -1.01, -1.49, -1.5, -1.51, -1.99, -2.0, -3.1, 2.0]
    assert spi_grade(np.array(values)).tolist() == [0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 0]


def test_relative_moisture_by_hand_and_faulty_layers():
    vwc = np.array(
        [
            [12.0, 15.0, 18.0, 21.0, 24.0],
            [12.0, -1.0, 18.0, 50.0, 24.0],  # -1 and 50 (> saturation 45) are faulty
            [-5.0, 99.0, 18.0, 21.0, 24.0],
        ]
    )
    sowing = relative_moisture(vwc, [10, 20, 30, 40, 50], 30.0, 45.0, "sowing")
    assert sowing.layers_used == 2
    assert sowing.percent[0] == pytest.approx((12 + 15) / 2 / 30 * 100)  # 45
    assert sowing.percent[1] == pytest.approx(12 / 30 * 100)  # only the good layer
    assert np.isnan(sowing.percent[2])  # both sowing layers faulty
    assert sowing.flagged.tolist()[1] == [False, True, False, True, False]
    seedling = relative_moisture(vwc, [10, 20, 30, 40, 50], 30.0, 45.0, "seedling")
    # (12+15+18+21+24)/5 = 18 -> 60 %, times the seedling coefficient 1.1 = 66 %
    assert seedling.percent[0] == pytest.approx(66.0)
    critical = relative_moisture(vwc, [10, 20, 30, 40, 50], 30.0, 45.0, "critical")
    assert critical.percent[0] == pytest.approx(54.0)
    assert moisture_grade(critical.percent).tolist()[0] == 1  # 轻旱


def test_relative_moisture_bad_input():
    with pytest.raises(DroughtError, match="3 layers but 2"):
        relative_moisture(np.ones((1, 3)), [10, 20], 30, 45)
    with pytest.raises(DroughtError, match="crop stage 'harvest'"):
        relative_moisture(np.ones((1, 2)), [10, 20], 30, 45, "harvest")
    with pytest.raises(DroughtError, match="not above saturation"):
        relative_moisture(np.ones((1, 2)), [10, 20], 30, 25)
    with pytest.raises(DroughtError, match="no layer lies within"):
        relative_moisture(np.ones((1, 1)), [30], 30, 45, "sowing")


def test_spi_matches_an_independent_gamma_fit_with_zero_mixture():
    rng = np.random.default_rng(42)
    precip = rng.gamma(1.5, 20.0, 12 * 40)
    precip[rng.random(precip.size) < 0.15] = 0.0  # dry months: the q of H = q + (1-q)G
    index = spi(precip, 1, 1981)
    for month in (0, 6):
        series = precip[month::12]
        q = np.mean(series == 0)
        shape, _, scale = st.gamma.fit(series[series > 0], floc=0)
        expected = st.norm.ppf(q + (1 - q) * st.gamma.cdf(series, shape, scale=scale))
        got = index[month::12]
        # the library's maximum-likelihood approximation (Thom 1958) against scipy's MLE
        assert np.nanmax(np.abs(got - np.clip(expected, -3.09, 3.09))) < 0.05
    three = spi(precip, 3, 1981)
    assert np.isnan(three[:2]).all() and not np.isnan(three[2:]).any()
    assert abs(np.nanmean(three)) < 0.1


def test_spi_bad_input():
    with pytest.raises(DroughtError, match="at least 24"):
        spi(np.ones(12), 1, 2000)
    with pytest.raises(DroughtError, match="negative"):
        spi(-np.ones(36), 1, 2000)
    with pytest.raises(DroughtError, match="calibration 1990-2001"):
        spi(np.ones(36), 1, 2000, calibration=(1990, 2001))


def test_idw_by_hand():
    px, py, pv = np.array([0.0, 10.0]), np.array([0.0, 0.0]), np.array([40.0, 70.0])
    got = idw(px, py, pv, np.array([0.0, 5.0, 2.5, 100.0]), np.zeros(4), max_distance=50)
    # at a probe: its value; midway: the mean; 2.5 from A, 7.5 from B: weights 1/6.25, 1/56.25
    w_a, w_b = 1 / 2.5**2, 1 / 7.5**2
    assert got[:3] == pytest.approx([40.0, 55.0, (40 * w_a + 70 * w_b) / (w_a + w_b)])
    assert np.isnan(got[3])  # no probe within 50


def test_drought_map_areas_by_hand():
    # 4 × 4 cells of 100 m; probes make the west half dry (R 35, 重旱) and the east wet (80)
    transform = Affine(100.0, 0.0, 0.0, 0.0, -100.0, 400.0)
    px = np.array([50.0, 150.0, 250.0, 350.0] * 4)
    py = np.repeat([350.0, 250.0, 150.0, 50.0], 4)
    pr = np.where(px < 200, 35.0, 80.0)
    cropland = [box(0, 0, 300, 400)]  # the east column is not cropland
    districts = {"140403": box(0, 200, 400, 400), "140404": box(0, 0, 400, 200)}
    result = drought_map(px, py, pr, transform, (4, 4), cropland, districts)
    cell_km2 = 0.01
    assert result.areas.loc["140403", "重旱"] == pytest.approx(4 * cell_km2)
    assert result.areas.loc["140403", "无旱"] == pytest.approx(2 * cell_km2)
    assert result.areas.loc["140404", "graded_km2"] == pytest.approx(6 * cell_km2)
    assert result.areas["特旱"].sum() == 0
    assert (result.grade[:, 3] == -1).all()
    with pytest.raises(DroughtError, match="metres"):
        drought_map(px, py, pr, Affine(0.001, 0, 112, 0, -0.001, 37), (4, 4), cropland, districts)


def test_extraterrestrial_radiation_and_hargreaves():
    # FAO-56 example 8: 20°S on 3 September, Ra = 32.2 MJ m-2 day-1
    assert extraterrestrial_radiation(-20.0, np.array([246]))[0] == pytest.approx(32.2, abs=0.05)
    ra = extraterrestrial_radiation(36.2, np.array([180]))[0]
    # Hargreaves by hand: 0.0023 × (25 + 17.8) × sqrt(30 - 20) × 0.408 Ra
    expected = 0.0023 * 42.8 * np.sqrt(10.0) * 0.408 * ra
    assert hargreaves_et0(np.array([20.0]), np.array([30.0]), 36.2, np.array([180]))[0] == (
        pytest.approx(expected)
    )
    with pytest.raises(DroughtError, match="below its minimum"):
        hargreaves_et0(np.array([30.0]), np.array([20.0]), 36.2, np.array([180]))


def test_outlook_bucket_by_hand_and_grade_changes():
    tmin, tmax = [15.0] * 7, [25.0] * 7
    dry = outlook(np.array([62.0, 100.0]), 0.30, 500.0, [0.0] * 7, tmin, tmax, 36.2, 180)
    # day 1 by hand: W = 0.62 × 150 = 93 mm, β = 93 / 112.5, ET = ET0 × β
    w = 0.62 * 150.0
    w -= dry.et0_mm[0] * min(1.0, w / 112.5)
    assert dry.percent[0, 0] == pytest.approx(w / 150 * 100)
    assert np.all(np.diff(dry.percent, axis=1) < 0)  # no rain: drier every day
    assert dry.worsening.tolist() == [True, False]
    first_change = np.argmax(dry.changed[0])
    assert dry.grade[0, first_change] == 1 and dry.percent[0, first_change] <= 60
    wet = outlook(np.array([45.0]), 0.30, 500.0, [90.0] + [0.0] * 6, tmin, tmax, 36.2, 180)
    assert wet.percent[0, 0] == pytest.approx(100 - wet.et0_mm[0] / 150 * 100)  # full, drained
    assert wet.changed[0, 0] and wet.grade[0, 0] == 0
    with pytest.raises(DroughtError, match="one value a day"):
        outlook(np.array([50.0]), 0.3, 500.0, [0.0] * 7, tmin[:6], tmax, 36.2, 180)
