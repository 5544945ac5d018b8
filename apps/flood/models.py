"""The flood application's tables (schema ``flood``): the prepared DEM run, the stream network,
the catchment of every river gauge and the gauges' stage-discharge ratings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis_core.models import Base, geom


class PreparedDem(Base):
    """One preparation run of a DEM: where its COGs are and what it found."""

    __tablename__ = "prepared_dem"
    __table_args__ = ({"schema": "flood"},)

    dem_path: Mapped[str] = mapped_column(Text, primary_key=True)
    out_dir: Mapped[str] = mapped_column(Text)
    cells: Mapped[int] = mapped_column(BigInteger)
    valid_cells: Mapped[int] = mapped_column(BigInteger)
    cell_size_m: Mapped[float] = mapped_column(Double)
    stream_threshold_cells: Mapped[int] = mapped_column(Integer)
    # zone number in zones.tif -> river gauge (monitoring site) id
    zones: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    notes: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    prepare_s: Mapped[float | None] = mapped_column(Double)
    prepared_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class Stream(Base):
    """A piece of the derived stream network, with its Strahler order."""

    __tablename__ = "stream"
    __table_args__ = (
        Index("ix_stream_geom", "geom", postgresql_using="gist"),
        {"schema": "flood"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    strahler: Mapped[int] = mapped_column(SmallInteger)
    length_m: Mapped[float] = mapped_column(Double)
    geom: Mapped[Any] = mapped_column(geom("LINESTRING"))


class Catchment(Base):
    """The whole area draining to one river gauge, from the prepared DEM."""

    __tablename__ = "catchment"
    __table_args__ = (
        Index("ix_catchment_geom", "geom", postgresql_using="gist"),
        {"schema": "flood"},
    )

    site_id: Mapped[str] = mapped_column(
        ForeignKey("iot.monitoring_site.id", ondelete="CASCADE"), primary_key=True
    )
    name_zh: Mapped[str] = mapped_column(Text)
    area_km2: Mapped[float] = mapped_column(Double)
    cells: Mapped[int] = mapped_column(Integer)
    length_m: Mapped[float] = mapped_column(Double)  # outlet to the farthest cell
    relief_m: Mapped[float] = mapped_column(Double)
    snap_m: Mapped[float] = mapped_column(Double)  # how far the gauge moved onto the stream
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))


class Rating(Base):
    """A gauge's stage-discharge rating Q = a (h - h0)^b (h: the gauge's level_m)."""

    __tablename__ = "rating"
    __table_args__ = (
        CheckConstraint("a > 0 AND b > 0", name="positive"),
        {"schema": "flood"},
    )

    site_id: Mapped[str] = mapped_column(
        ForeignKey("iot.monitoring_site.id", ondelete="CASCADE"), primary_key=True
    )
    a: Mapped[float] = mapped_column(Double)
    h0: Mapped[float] = mapped_column(Double)  # stage of zero flow: the channel bed
    b: Mapped[float] = mapped_column(Double)
    source: Mapped[str] = mapped_column(String(32), server_default=text("'synthesized'"))
