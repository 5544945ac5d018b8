"""Water-resources management: water-use permits (取水许可), metered use against quota, the
water-resources fee by a tiered tariff and a district water balance.

Holders are identified by their unified social credit code (统一社会信用代码), validated by
its GB 32100-2015 check character.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

import numpy as np
import pandas as pd

USCC_STANDARD = "GB 32100-2015"


class WaterResourcesError(ValueError):
    """A permit, reading, tariff or record the water-resources rules refuse."""


class MeterReadingError(WaterResourcesError):
    """A cumulative meter reading below the one before: the meter ran backwards or was reset."""


# GB 32100-2015: the code's alphabet (digits and capitals without I, O, Z, S, V), its
# character values 0..30, and the weights 3^(i) mod 31 of positions 1..17.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)])


def uscc_check_character(first17: str) -> str:
    """The 18th character of a unified social credit code from its first 17 (GB 32100-2015).

    ``C18 = 31 - (Σ Ci × Wi mod 31)``, with 31 written as ``0``.

    >>> uscc_check_character("91350100M000100Y4")
    '3'
    """
    if len(first17) != 17:
        raise WaterResourcesError(f"a check character needs 17 characters, got {len(first17)}")
    bad = sorted({ch for ch in first17 if ch not in _USCC_VALUE})
    if bad:
        raise WaterResourcesError(
            f"characters {''.join(bad)!r} are not in the GB 32100-2015 alphabet"
        )
    values = np.array([_USCC_VALUE[ch] for ch in first17])
    check = 31 - int(values @ _USCC_WEIGHTS) % 31
    return _USCC_ALPHABET[check % 31]


def validate_uscc(code: str) -> str:
    """Return the code (upper-cased, stripped) if it is a valid GB 32100-2015 code, else raise.

    Checks the length (18), the alphabet, the registration-area code (positions 3-8, six
    digits, a GB/T 2260 division) and the check character.
    """
    text = code.strip().upper()
    if len(text) != 18:
        raise WaterResourcesError(f"unified social credit code {code!r} is not 18 characters")
    if not text[2:8].isdigit():
        raise WaterResourcesError(
            f"unified social credit code {code!r}: positions 3-8 must be a division code"
        )
    expected = uscc_check_character(text[:17])
    if text[17] != expected:
        raise WaterResourcesError(
            f"unified social credit code {code!r}: check character is {text[17]!r}, "
            f"expected {expected!r}"
        )
    return text


class SourceType(StrEnum):
    """Supply by source as water-resources bulletins (水资源公报) count it."""

    SURFACE = "surface"
    GROUNDWATER = "groundwater"
    UNCONVENTIONAL = "unconventional"  # reclaimed water, mine drainage, rainwater harvesting
    TRANSFER = "transfer"  # inter-basin transfer in


class Sector(StrEnum):
    """Use by sector as water-resources bulletins count it."""

    AGRICULTURE = "agriculture"
    INDUSTRY = "industry"
    DOMESTIC = "domestic"
    ECOLOGICAL = "ecological"


@dataclass(frozen=True)
class Permit:
    """A water-use permit: who may take how much from which source, in which months."""

    permit_id: str
    holder_uscc: str
    source_id: str
    annual_quota_m3: float
    season_months: frozenset[int]
    valid_from: date
    valid_until: date

    def __post_init__(self) -> None:
        object.__setattr__(self, "holder_uscc", validate_uscc(self.holder_uscc))
        if not math.isfinite(self.annual_quota_m3) or self.annual_quota_m3 <= 0:
            raise WaterResourcesError(
                f"permit {self.permit_id}: annual quota must be a positive volume"
            )
        months = frozenset(self.season_months)
        if not months or not months <= set(range(1, 13)):
            raise WaterResourcesError(
                f"permit {self.permit_id}: season months must be a non-empty set within 1..12"
            )
        object.__setattr__(self, "season_months", months)
        if self.valid_until < self.valid_from:
            raise WaterResourcesError(f"permit {self.permit_id}: valid until before valid from")

    def overlaps(self, other: Permit) -> bool:
        """Same holder and source, validity periods and season months in common."""
        return (
            self.holder_uscc == other.holder_uscc
            and self.source_id == other.source_id
            and self.valid_from <= other.valid_until
            and other.valid_from <= self.valid_until
            and bool(self.season_months & other.season_months)
        )


@dataclass
class PermitRegister:
    """Permits in force; refuses a second permit overlapping one the holder already has."""

    permits: dict[str, Permit] = field(default_factory=dict)

    def add(self, permit: Permit) -> Permit:
        if permit.permit_id in self.permits:
            raise WaterResourcesError(f"permit {permit.permit_id} is already registered")
        clash = [p.permit_id for p in self.permits.values() if p.overlaps(permit)]
        if clash:
            raise WaterResourcesError(
                f"permit {permit.permit_id} overlaps {', '.join(clash)}: same holder "
                f"{permit.holder_uscc} and source {permit.source_id} in overlapping seasons"
            )
        self.permits[permit.permit_id] = permit
        return permit


def metered_use(
    times: Sequence[datetime] | pd.DatetimeIndex,
    readings_m3: Sequence[float] | np.ndarray,
    meter_id: str = "meter",
) -> np.ndarray:
    """Volumes between successive cumulative readings of one meter.

    Raises
    ------
    MeterReadingError
        A reading below the one before. Named a reset when it falls to under 1 % of the
        previous reading (a replaced or cleared meter), otherwise running backwards; either
        way the volume cannot be known from the readings and needs an operator's correction.
    """
    values = np.asarray(readings_m3, dtype=float)
    stamps = pd.DatetimeIndex(pd.to_datetime(list(times)))
    if values.ndim != 1 or values.size != len(stamps):
        raise WaterResourcesError(f"meter {meter_id}: one reading per time is needed")
    if np.any(~np.isfinite(values)) or np.any(values < 0):
        raise WaterResourcesError(f"meter {meter_id}: readings must be finite and not negative")
    if not stamps.is_monotonic_increasing or stamps.has_duplicates:
        raise WaterResourcesError(f"meter {meter_id}: reading times must strictly increase")
    used = np.diff(values)
    back = np.flatnonzero(used < 0)
    if back.size:
        i = int(back[0])
        kind = "was reset" if values[i + 1] < 0.01 * values[i] else "ran backwards"
        raise MeterReadingError(
            f"meter {meter_id} {kind}: {values[i]:g} m³ at {stamps[i]} then "
            f"{values[i + 1]:g} m³ at {stamps[i + 1]}"
        )
    return used


class QuotaState(StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    EXCEEDED = "exceeded"


@dataclass(frozen=True)
class QuotaStatus:
    permit_id: str
    used_m3: float
    quota_m3: float
    ratio: float
    state: QuotaState


def quota_status(permit: Permit, used_m3: float, warning_ratio: float = 0.9) -> QuotaStatus:
    """Use against the annual quota: a warning from ``warning_ratio`` of it, exceeded above it.

    Using exactly the quota is a warning, not an excess.
    """
    if not 0 < warning_ratio <= 1:
        raise WaterResourcesError(f"warning ratio must be within (0, 1], got {warning_ratio}")
    if used_m3 < 0:
        raise WaterResourcesError(f"permit {permit.permit_id}: used volume cannot be negative")
    ratio = used_m3 / permit.annual_quota_m3
    if ratio > 1:
        state = QuotaState.EXCEEDED
    elif ratio >= warning_ratio:
        state = QuotaState.WARNING
    else:
        state = QuotaState.NORMAL
    return QuotaStatus(permit.permit_id, used_m3, permit.annual_quota_m3, ratio, state)


@dataclass(frozen=True)
class Tariff:
    """A tiered water-resources fee: a base rate within quota, multipliers above it.

    ``over_quota_tiers`` are ``(upper bound of the excess as a fraction of the quota,
    multiplier)``, ascending, the last bound ``inf``. The default is an example of the usual
    shape of local rules (progressively higher rates for over-quota use), not any law's figures:
    set the city's own.
    """

    base_rate_yuan_m3: float = 0.5
    over_quota_tiers: tuple[tuple[float, float], ...] = ((0.2, 1.2), (0.4, 1.5), (math.inf, 2.0))

    def __post_init__(self) -> None:
        if not self.base_rate_yuan_m3 > 0:
            raise WaterResourcesError("the base rate must be positive")
        bounds = [b for b, _ in self.over_quota_tiers]
        if not bounds or bounds[-1] != math.inf or any(b <= 0 for b in bounds):
            raise WaterResourcesError("over-quota tiers must have positive bounds ending in inf")
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
            raise WaterResourcesError("over-quota tier bounds must increase")
        if any(m < 1 for _, m in self.over_quota_tiers):
            raise WaterResourcesError("over-quota multipliers must be at least 1")


def water_fee(used_m3: float, quota_m3: float, tariff: Tariff | None = None) -> float:
    """Fee in yuan for a year's use under a quota by a tiered tariff.

    >>> water_fee(1300, 1000)  # 1000×0.5 + 200×0.5×1.2 + 100×0.5×1.5
    695.0
    """
    rules = tariff or Tariff()
    if used_m3 < 0 or quota_m3 <= 0:
        raise WaterResourcesError("use must not be negative and the quota must be positive")
    fee = min(used_m3, quota_m3) * rules.base_rate_yuan_m3
    excess = max(used_m3 - quota_m3, 0.0)
    lower = 0.0
    for bound, multiplier in rules.over_quota_tiers:
        band = min(excess, bound * quota_m3) - lower
        if band <= 0:
            break
        fee += band * rules.base_rate_yuan_m3 * multiplier
        lower = bound * quota_m3
    return round(fee, 2)


@dataclass(frozen=True)
class SupplyRecord:
    district: str
    source_type: SourceType | str
    volume_m3: float


@dataclass(frozen=True)
class UseRecord:
    district: str
    sector: Sector | str
    volume_m3: float


def water_balance(supply: Iterable[SupplyRecord], use: Iterable[UseRecord]) -> pd.DataFrame:
    """Per district: supply by source type, use by sector, totals and the difference.

    ``difference_m3 = supply_total_m3 - use_total_m3`` (conveyance losses and unmetered use
    when positive). Every source type and sector is a column, zero where there is none.
    """
    supply_rows = [(r.district, _enum(SourceType, r.source_type), _volume(r)) for r in supply]
    use_rows = [(r.district, _enum(Sector, r.sector), _volume(r)) for r in use]
    supply_cols = [f"supply_{s.value}_m3" for s in SourceType]
    use_cols = [f"use_{s.value}_m3" for s in Sector]
    frames = []
    for rows, prefix, kinds in (
        (supply_rows, "supply", SourceType),
        (use_rows, "use", Sector),
    ):
        table = pd.DataFrame(rows, columns=["district", "kind", "volume"])
        wide = (
            table.groupby(["district", "kind"])["volume"]
            .sum()
            .unstack("kind")
            .reindex(columns=[k.value for k in kinds])
        )
        wide.columns = [f"{prefix}_{k}_m3" for k in wide.columns]
        frames.append(wide)
    balance = pd.concat(frames, axis=1).fillna(0.0)
    balance = balance.reindex(columns=supply_cols + use_cols, fill_value=0.0)
    balance["supply_total_m3"] = balance[supply_cols].sum(axis=1)
    balance["use_total_m3"] = balance[use_cols].sum(axis=1)
    balance["difference_m3"] = balance["supply_total_m3"] - balance["use_total_m3"]
    balance.index.name = "district"
    return balance.sort_index()


def _enum(kind: type[StrEnum], value: StrEnum | str) -> str:
    try:
        return kind(value).value
    except ValueError:
        known = ", ".join(k.value for k in kind)
        raise WaterResourcesError(f"{value!r} is not one of: {known}") from None


def _volume(record: SupplyRecord | UseRecord) -> float:
    if not math.isfinite(record.volume_m3) or record.volume_m3 < 0:
        raise WaterResourcesError(
            f"district {record.district}: volume {record.volume_m3!r} must be finite, not negative"
        )
    return float(record.volume_m3)
