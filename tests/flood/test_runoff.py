"""Runoff pieces against hand arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from apps.flood import runoff as ro


def test_scs_excess_by_hand() -> None:
    # CN 80: S = 25400/80 - 254 = 63.5 mm, Ia = 12.7 mm
    # P = 50 mm in one step: Q = (50 - 12.7)² / (50 - 12.7 + 63.5) = 1391.29 / 100.8
    q = ro.scs_excess([50.0], 80)
    assert q[0] == pytest.approx(1391.29 / 100.8, rel=1e-9)
    # just below, at and above Ia: no excess, none, a little
    assert ro.scs_excess([12.6], 80)[0] == 0
    assert ro.scs_excess([12.7], 80)[0] == pytest.approx(0.0, abs=1e-12)
    assert ro.scs_excess([12.8], 80)[0] > 0
    # split into two steps, the total is the same
    assert ro.scs_excess([20.0, 30.0], 80).sum() == pytest.approx(1391.29 / 100.8)
    assert ro.amc_curve_number(80, 3) == pytest.approx(23 * 80 / (10 + 0.13 * 80))
    with pytest.raises(ro.RunoffError, match="curve number"):
        ro.scs_excess([1.0], 120)


def test_kirpich_and_unit_hydrograph_volume() -> None:
    # L = 3000 m, S = 0.01: 0.0195 * 3000^0.77 * 0.01^-0.385 min
    assert ro.kirpich_tc_h(3000, 0.01) * 60 == pytest.approx(0.0195 * 3000**0.77 * 0.01**-0.385)
    unit = ro.scs_unit_hydrograph(100.0, 3.0, 1.0)
    # 1 mm over 100 km² is 1e5 m³
    assert unit.sum() * 3600 == pytest.approx(1e5)
    # peak near Tp = 0.5 + 1.8 = 2.3 h and about 0.208 * 100 / 2.3 m³/s
    assert int(np.argmax(unit)) + 1 in (2, 3)
    assert unit.max() == pytest.approx(0.208 * 100 / 2.3, rel=0.1)


def test_muskingum_coefficients_by_hand() -> None:
    # K = 2 h, X = 0.2, dt = 1 h: D = 2 - 0.4 + 0.5 = 2.1
    # C0 = (0.5 - 0.4)/2.1, C1 = (0.5 + 0.4)/2.1, C2 = (2 - 0.4 - 0.5)/2.1
    out = ro.muskingum([10, 30, 10], 2.0, 0.2, 1.0)
    c0, c1, c2 = 0.1 / 2.1, 0.9 / 2.1, 1.1 / 2.1
    o1 = c0 * 30 + c1 * 10 + c2 * 10
    assert out[1] == pytest.approx(o1)
    assert out[2] == pytest.approx(c0 * 10 + c1 * 30 + c2 * o1)
    with pytest.raises(ro.RunoffError, match="outside"):
        ro.muskingum([1, 2], 2.0, 0.2, 5.0)


def test_rating_and_inverse() -> None:
    rating = ro.Rating(a=20.0, h0=0.5, b=1.6)
    assert rating.discharge(2.5) == pytest.approx(20 * 2**1.6)
    assert rating.discharge(0.4) == 0
    assert rating.stage(20 * 2**1.6) == pytest.approx(2.5)


def test_forecast_warning_time() -> None:
    catchment = ro.Catchment(area_km2=120, length_m=15000, slope=0.01, cn=85, baseflow_m3s=2.0)
    rating = ro.Rating(a=15.0, h0=0.3, b=1.5)
    rain = np.zeros(24)
    rain[2:5] = 30.0  # observed
    base = float(rating.stage(2.0)[0])
    calm = ro.forecast_stage(
        np.zeros(24), catchment, rating, dt_h=1.0, warning_stage_m=3.0, now_step=5
    )
    assert calm.warning_step is None and calm.stage_m[0] == pytest.approx(base)
    fc = ro.forecast_stage(
        rain, catchment, rating, dt_h=1.0, warning_stage_m=float(base) + 0.5, now_step=3
    )
    # rain starts in step 2 and the unit ordinates are at step ends: not before step 2
    assert fc.warning_step is not None and fc.warning_step >= 2
    assert fc.warning_in_h == pytest.approx(max(fc.warning_step - 3, 0))
    assert fc.stage_m[fc.warning_step] >= base + 0.5 > fc.stage_m[fc.warning_step - 1]


def test_truth_model_conserves_water_and_scores() -> None:
    rain = np.zeros(200)
    rain[5:10] = 20.0
    q = ro.nonlinear_reservoir(rain, 10.0, dt_h=1.0, soil_initial_mm=60.0, soil_capacity_mm=60.0)
    # a full bucket passes all 100 mm on; over 10 km² that is 1e6 m³
    assert q.sum() * 3600 == pytest.approx(1e6, rel=0.01)
    assert ro.nash_sutcliffe(q, q) == 1.0
    assert ro.nash_sutcliffe([1, 2, 3], [2, 2, 2]) == pytest.approx(1 - 2 / 2)
    assert ro.peak_time_error([0, 5, 1], [0, 1, 5], 0.5) == 0.5
    with pytest.raises(ro.RunoffError, match="constant"):
        ro.nash_sutcliffe([1, 1], [1, 2])
