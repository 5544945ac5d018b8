"""The water application's tables (schema ``water``): water-use permits, the wells and meters
that measure them, water-function zones and the target class of each water-quality station.

Readings stay in the platform's telemetry (kinds ``well`` and ``water_meter``); these tables
hold what the readings are judged against.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from gis_core.models import Base, geom


class FunctionZone(Base):
    """A water-function zone (水功能区): a river reach and the GB 3838 class it must meet."""

    __tablename__ = "function_zone"
    __table_args__ = (
        CheckConstraint("target_class BETWEEN 1 AND 5", name="target_class"),
        Index("ix_function_zone_geom", "geom", postgresql_using="gist"),
        {"schema": "water"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(Text)
    use_zh: Mapped[str] = mapped_column(Text)  # 饮用水源区, 工业用水区, 农业用水区 ...
    target_class: Mapped[int] = mapped_column(SmallInteger)  # 1..5 (I..V)
    waterbody: Mapped[str] = mapped_column(String(8))  # river | lake
    river_id: Mapped[int | None] = mapped_column(ForeignKey("ref.river.id", ondelete="SET NULL"))
    geom: Mapped[Any] = mapped_column(geom("MULTILINESTRING"))


class StationTarget(Base):
    """The target class of a water-quality station: its zone's, or set by hand."""

    __tablename__ = "station_target"
    __table_args__ = (
        CheckConstraint("target_class BETWEEN 1 AND 5", name="target_class"),
        Index("ix_station_target_zone_id", "zone_id"),
        {"schema": "water"},
    )

    site_id: Mapped[str] = mapped_column(
        ForeignKey("iot.monitoring_site.id", ondelete="CASCADE"), primary_key=True
    )
    zone_id: Mapped[int | None] = mapped_column(
        ForeignKey("water.function_zone.id", ondelete="SET NULL")
    )
    target_class: Mapped[int] = mapped_column(SmallInteger)
    waterbody: Mapped[str] = mapped_column(String(8))


class Permit(Base):
    """A water-use permit (取水许可): holder, source, annual quota and season."""

    __tablename__ = "permit"
    __table_args__ = (
        CheckConstraint("annual_quota_m3 > 0", name="quota_positive"),
        CheckConstraint("valid_until >= valid_from", name="validity"),
        Index("ix_permit_holder_uscc", "holder_uscc"),
        Index("ix_permit_geom", "geom", postgresql_using="gist"),
        {"schema": "water"},
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder_uscc: Mapped[str] = mapped_column(String(18))  # 统一社会信用代码, GB 32100
    holder_name: Mapped[str] = mapped_column(Text)
    source_type: Mapped[str] = mapped_column(String(16))  # resources.SourceType
    # The well (groundwater) or intake meter (surface water) the permit takes from.
    source_site_id: Mapped[str] = mapped_column(ForeignKey("iot.monitoring_site.id"))
    sector: Mapped[str] = mapped_column(String(16))  # resources.Sector
    annual_quota_m3: Mapped[float] = mapped_column(Double)
    season_months: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    district_code: Mapped[str | None] = mapped_column(String(12))
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class Well(Base):
    """A groundwater well: its depth and the levels its readings are judged against."""

    __tablename__ = "well"
    __table_args__ = ({"schema": "water"},)

    site_id: Mapped[str] = mapped_column(
        ForeignKey("iot.monitoring_site.id", ondelete="CASCADE"), primary_key=True
    )
    depth_m: Mapped[float] = mapped_column(Double)
    aquifer: Mapped[str] = mapped_column(String(16))  # shallow | deep
    ground_m: Mapped[float] = mapped_column(Double)  # ground elevation, m a.s.l. (DEM)


class Meter(Base):
    """An abstraction meter and the permit it measures, with the year's opening reading."""

    __tablename__ = "meter"
    __table_args__ = (Index("ix_meter_permit_id", "permit_id"), {"schema": "water"})

    device_id: Mapped[str] = mapped_column(
        ForeignKey("iot.device.id", ondelete="CASCADE"), primary_key=True
    )
    permit_id: Mapped[str] = mapped_column(ForeignKey("water.permit.id", ondelete="CASCADE"))
    # The cumulative reading at the start of the permit year (the bureau's annual read).
    year_start_m3: Mapped[float] = mapped_column(Double)
    year: Mapped[int] = mapped_column(Integer)


class RainMonth(Base):
    """A rain gauge's monthly total from its station record (the meteorological bureau's or
    the hydrology yearbook's), kept for SPI: the telemetry holds only about a year."""

    __tablename__ = "rain_month"
    __table_args__ = (
        CheckConstraint("mm >= 0", name="mm_not_negative"),
        CheckConstraint("extract(day FROM month) = 1", name="month_first_day"),
        {"schema": "water"},
    )

    gauge_id: Mapped[str] = mapped_column(
        ForeignKey("iot.device.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # its first day
    mm: Mapped[float] = mapped_column(Double)
    source: Mapped[str] = mapped_column(Text)  # where the figure comes from


class QuotaNotice(Base):
    """A quota level (90 or 100 %) a permit reached in a year: noted once, so its alarm is
    raised once per permit, level and year whatever the meter does afterwards."""

    __tablename__ = "quota_notice"
    __table_args__ = (CheckConstraint("level IN (90, 100)", name="level"), {"schema": "water"})

    permit_id: Mapped[str] = mapped_column(
        ForeignKey("water.permit.id", ondelete="CASCADE"), primary_key=True
    )
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    used_m3: Mapped[float] = mapped_column(Double)
    alarm_id: Mapped[int | None] = mapped_column(BigInteger)
    noted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
