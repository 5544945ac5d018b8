"""The registry's tables (schema ``registry``): parcels and mining rights, versioned."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gis_core.models import Base, geom


def _now() -> Any:
    return text("now()")


# --------------------------------------------------------------------------- registry


class Parcel(Base):
    """A cadastral parcel version. The current version has ``valid_to IS NULL``."""

    __tablename__ = "parcel"
    __table_args__ = (
        UniqueConstraint("parcel_code", "version"),
        Index("ix_parcel_geom", "geom", postgresql_using="gist"),
        Index(
            "uq_parcel_current",
            "parcel_code",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        {"schema": "registry"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    parcel_code: Mapped[str] = mapped_column(String(19))  # 宗地代码 (GB/T 26424)
    version: Mapped[int] = mapped_column(Integer)
    land_use: Mapped[str] = mapped_column(String(8))  # GB/T 21010 class code
    land_use_zh: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(12))
    area_m2: Mapped[float] = mapped_column(Double)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    registered_by: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))


class MiningRight(Base):
    """A mining or exploration right version (采矿权/探矿权)."""

    __tablename__ = "mining_right"
    __table_args__ = (
        UniqueConstraint("license_no", "version"),
        Index("ix_mining_right_geom", "geom", postgresql_using="gist"),
        Index(
            "uq_mining_right_current",
            "license_no",
            unique=True,
            postgresql_where=text("valid_to IS NULL"),
        ),
        {"schema": "registry"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    license_no: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    right_type: Mapped[str] = mapped_column(String(16))  # mining | exploration
    mineral: Mapped[str] = mapped_column(Text)
    holder: Mapped[str] = mapped_column(Text)
    permit_from: Mapped[date | None] = mapped_column(Date)
    permit_to: Mapped[date | None] = mapped_column(Date)
    depth_top_m: Mapped[float | None] = mapped_column(Double)
    depth_bottom_m: Mapped[float | None] = mapped_column(Double)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    registered_by: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))
