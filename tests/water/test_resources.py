"""Permits, USCC check characters, meters, quota states, tiered fees and the water balance,
all by hand arithmetic."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest

from apps.water.resources import (
    MeterReadingError,
    Permit,
    PermitRegister,
    QuotaState,
    SupplyRecord,
    Tariff,
    UseRecord,
    WaterResourcesError,
    metered_use,
    quota_status,
    uscc_check_character,
    validate_uscc,
    water_balance,
    water_fee,
)

VALID = "91350100M000100Y43"  # the example code widely used to illustrate GB 32100-2015


def _permit(
    pid="P1",
    holder=VALID,
    source="WELL-1",
    quota=1000.0,
    months=range(1, 13),
    start=date(2026, 1, 1),
    end=date(2026, 12, 31),
):
    return Permit(pid, holder, source, quota, frozenset(months), start, end)


def test_uscc_check_character_by_hand():
    # weights 3^i mod 31: 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
    values = [9, 1, 3, 5, 0, 1, 0, 0, 21, 0, 0, 0, 1, 0, 0, 30, 4]  # 9 1 3 5 0 1 0 0 M 0 ... Y 4
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(v * w for v, w in zip(values, weights, strict=True))
    assert 31 - total % 31 == 3
    assert uscc_check_character(VALID[:17]) == "3"
    assert validate_uscc(" 91350100m000100y43 ") == VALID


def test_uscc_refused():
    with pytest.raises(WaterResourcesError, match="check character is '4', expected '3'"):
        validate_uscc("91350100M000100Y44")
    with pytest.raises(WaterResourcesError, match="not 18 characters"):
        validate_uscc("9135010")
    with pytest.raises(WaterResourcesError, match="alphabet"):
        validate_uscc("91350100M000100I43")  # I is not in the alphabet
    with pytest.raises(WaterResourcesError, match="division code"):
        validate_uscc("913A0100M000100Y43")


def test_permit_overlaps_refused():
    register = PermitRegister()
    register.add(_permit("P1", months=range(3, 7)))  # March-June
    register.add(_permit("P2", months=range(7, 10)))  # July-September: no common month
    register.add(_permit("P3", source="WELL-2", months=range(1, 13)))  # another source
    register.add(_permit("P4", months=range(1, 13), start=date(2027, 1, 1), end=date(2027, 12, 31)))
    with pytest.raises(WaterResourcesError, match="P5 overlaps P1"):
        register.add(_permit("P5", months=[6]))
    with pytest.raises(WaterResourcesError, match="already registered"):
        register.add(_permit("P1", months=[11]))
    assert sorted(register.permits) == ["P1", "P2", "P3", "P4"]


def test_permit_bad_fields():
    with pytest.raises(WaterResourcesError, match="season months"):
        _permit(months=[0, 13])
    with pytest.raises(WaterResourcesError, match="annual quota"):
        _permit(quota=0)
    with pytest.raises(WaterResourcesError, match="check character"):
        _permit(holder="91350100M000100Y40")


def test_metered_use_and_refused_meters():
    times = [datetime(2026, 5, d) for d in (1, 2, 3, 4)]
    assert metered_use(times, [100.0, 130.0, 130.0, 175.5]).tolist() == [30.0, 0.0, 45.5]
    with pytest.raises(MeterReadingError, match="ran backwards: 130 m³"):
        metered_use(times, [100.0, 130.0, 129.0, 175.5], "M-7")
    with pytest.raises(MeterReadingError, match="was reset"):
        metered_use(times, [100.0, 130.0, 0.5, 3.0], "M-7")
    with pytest.raises(WaterResourcesError, match="strictly increase"):
        metered_use(times[::-1], [1.0, 2.0, 3.0, 4.0])


def test_quota_states_at_boundaries():
    permit = _permit(quota=1000.0)
    assert quota_status(permit, 899.0).state is QuotaState.NORMAL
    assert quota_status(permit, 900.0).state is QuotaState.WARNING
    assert quota_status(permit, 1000.0).state is QuotaState.WARNING
    status = quota_status(permit, 1000.5)
    assert status.state is QuotaState.EXCEEDED and status.ratio == pytest.approx(1.0005)


def test_tiered_fee_by_hand():
    assert water_fee(800, 1000) == 400.0  # within quota: 800 × 0.5
    assert water_fee(1000, 1000) == 500.0
    assert water_fee(1200, 1000) == 500.0 + 200 * 0.5 * 1.2  # 620
    assert water_fee(1300, 1000) == 695.0  # + 100 × 0.5 × 1.5
    # 2000: 500 + 200×0.6 + 200×0.75 + 600×1.0 = 1370
    assert water_fee(2000, 1000) == 1370.0
    own = Tariff(base_rate_yuan_m3=1.0, over_quota_tiers=((float("inf"), 3.0),))
    assert water_fee(150, 100, own) == 100 + 50 * 3.0
    with pytest.raises(WaterResourcesError, match="ending in inf"):
        Tariff(over_quota_tiers=((0.2, 1.2),))
    with pytest.raises(WaterResourcesError, match="at least 1"):
        Tariff(over_quota_tiers=((float("inf"), 0.8),))


def test_water_balance_by_hand():
    supply = [
        SupplyRecord("140403", "surface", 600.0),
        SupplyRecord("140403", "groundwater", 400.0),
        SupplyRecord("140403", "surface", 50.0),
        SupplyRecord("140404", "unconventional", 80.0),
    ]
    use = [
        UseRecord("140403", "agriculture", 500.0),
        UseRecord("140403", "domestic", 450.0),
        UseRecord("140405", "industry", 30.0),
    ]
    balance = water_balance(supply, use)
    row = balance.loc["140403"]
    assert row["supply_surface_m3"] == 650.0
    assert row["supply_total_m3"] == 1050.0
    assert row["use_total_m3"] == 950.0
    assert row["difference_m3"] == 100.0
    assert balance.loc["140405", "difference_m3"] == -30.0
    assert balance.loc["140404", "use_total_m3"] == 0.0
    assert np.isclose(balance["supply_total_m3"].sum(), 1130.0)
    with pytest.raises(WaterResourcesError, match="'seawater' is not one of"):
        water_balance([SupplyRecord("x", "seawater", 1.0)], [])
    with pytest.raises(WaterResourcesError, match="must be finite, not negative"):
        water_balance([], [UseRecord("x", "industry", -1.0)])
