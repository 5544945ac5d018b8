"""The environment application's tables (schema ``env``): enterprises and pollution sources."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis_core.models import Base, MonitoringSite, geom


def _now() -> Any:
    return text("now()")


# --------------------------------------------------------------------------- env


class Enterprise(Base):
    __tablename__ = "enterprise"
    __table_args__ = (
        Index("ix_enterprise_geom", "geom", postgresql_using="gist"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)  # 统一社会信用代码
    name_zh: Mapped[str] = mapped_column(Text)
    industry_code: Mapped[str] = mapped_column(String(8))  # GB/T 4754
    industry_zh: Mapped[str] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(12))
    employees: Mapped[int | None] = mapped_column(Integer)
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class PollutionSource(Base):
    __tablename__ = "pollution_source"
    __table_args__ = (
        Index("ix_pollution_source_geom", "geom", postgresql_using="gist"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("env.enterprise.id"))
    kind: Mapped[str] = mapped_column(String(24))  # stack, outfall, fugitive
    name_zh: Mapped[str] = mapped_column(Text)
    stack_height_m: Mapped[float | None] = mapped_column(Double)
    limits: Mapped[dict[str, float] | None] = mapped_column(JSONB)  # permit limits, mg/m³
    geom: Mapped[Any] = mapped_column(geom("POINT"))


# A monitoring site's pollution source: the core's column, this application's constraint.
MonitoringSite.__table__.append_constraint(  # type: ignore[attr-defined]
    ForeignKeyConstraint(
        ["pollution_source_id"],
        ["env.pollution_source.id"],
        name="fk_monitoring_site_pollution_source_id_pollution_source",
    )
)
