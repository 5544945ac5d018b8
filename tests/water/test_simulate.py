"""The simulator models of wells and meters (no services): a meter only counts up at its
permit's pace; a pumped well falls slowly and recovers by night."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from apps.water.simulate import YEAR_S, GroundwaterWell, WaterMeter
from sensors.scenarios import Environment
from sensors.stations import model_class
from sensors.world import StationSpec

BBOX = (112.0, 35.5, 114.0, 37.0)
# 2026-06-01 00:00 China Standard Time
T0 = datetime(2026, 6, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def _spec(kind: str, thresholds: dict[str, float]) -> StationSpec:
    return StationSpec(f"D-{kind}-1", kind, f"{kind}-1", "x", 113.0, 36.0, 3600.0, thresholds)


def test_the_kinds_name_these_models() -> None:
    assert model_class("well") is GroundwaterWell
    assert model_class("water_meter") is WaterMeter


def test_a_meter_counts_up_at_its_quota_pace() -> None:
    env = Environment("normal", T0, BBOX, seed=3)
    quota, start = 365_250.0, 1_000_000.0
    meter = WaterMeter(_spec("water_meter", {"annual_quota_m3": quota, "year_start_m3": start}),
                       env, seed=3)  # fmt: skip
    # At the start of the run: the opening reading plus Jan-May at the holder's pace.
    elapsed = (T0 - datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()) / YEAR_S
    first = meter.read(T0, 0.0)["volume_m3"]
    assert first == round(start + quota * meter.use_ratio * elapsed, 1)
    volumes = np.array(
        [meter.read(T0 + h * 3600.0, 3600.0)["volume_m3"] for h in range(1, 24 * 30)]
    )
    assert np.all(np.diff(volumes) >= 0)  # never backwards
    month = volumes[-1] - first
    expected = quota * meter.use_ratio * 30 / 365.25  # about 1000 m³ a day times the ratio
    assert abs(month - expected) / expected < 0.05
    assert 0.6 <= meter.use_ratio <= 1.15


def test_a_well_falls_slowly_and_recovers_at_night() -> None:
    env = Environment("normal", T0, BBOX, seed=3)
    well = GroundwaterWell(_spec("well", {"static_level_m": 900.0, "alarm_level_m": 895.0}),
                           env, seed=3)  # fmt: skip
    levels = np.array([well.read(T0 + h * 3600.0, 3600.0)["level_m"] for h in range(24 * 60)])
    # below the static level once pumping starts, well above the red line
    assert np.all(levels[1:] < 900.0) and np.all(levels > 895.0)
    by_day = levels.reshape(60, 24)
    # 05:00 (pumps off since 21:00) stands higher than 20:00 (after a day of pumping)
    assert np.all(by_day[:, 5] > by_day[:, 20])
    # the night level declines over two months, by no more than 1.5 m/yr would give
    decline = by_day[1, 5] - by_day[-1, 5]  # day 0 starts without a cone
    assert 0 < decline <= 1.5 * 58 / 365.25 + 0.02


def test_drought_pumps_harder() -> None:
    normal = GroundwaterWell(_spec("well", {"static_level_m": 0.0}),
                             Environment("normal", T0, BBOX, seed=3), seed=3)  # fmt: skip
    dry = GroundwaterWell(_spec("well", {"static_level_m": 0.0}),
                          Environment("drought", T0, BBOX, seed=3), seed=3)  # fmt: skip
    assert dry.decline_m_s == pytest.approx(3 * normal.decline_m_s, rel=1e-12)
