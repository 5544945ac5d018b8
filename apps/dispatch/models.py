"""Dispatch's tables (schema ``ops``): units, incidents, assignments and their timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis_core.models import Base, geom


def _now() -> Any:
    return text("now()")


# --------------------------------------------------------------------------- ops


class Unit(Base):
    """An emergency unit (engine, ambulance, patrol car) bound to its GPS device."""

    __tablename__ = "unit"
    __table_args__ = (
        CheckConstraint(
            "status IN ('available','dispatched','en_route','on_scene','out_of_service')",
            name="known_status",
        ),
        Index("ix_unit_type_status", "unit_type", "status"),
        Index("ix_unit_device", "device_id"),
        {"schema": "ops"},
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_sign: Mapped[str] = mapped_column(Text)
    unit_type: Mapped[str] = mapped_column(String(32))  # engine, ladder, ambulance, patrol, ...
    department_code: Mapped[str] = mapped_column(ForeignKey("auth.department.code"))
    station_poi_id: Mapped[int | None] = mapped_column(ForeignKey("ref.poi.id"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("iot.device.id"))
    status: Mapped[str] = mapped_column(String(24), server_default=text("'available'"))
    status_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=_now()
    )


class Incident(Base):
    __tablename__ = "incident"
    __table_args__ = (
        Index("ix_incident_geom", "geom", postgresql_using="gist"),
        Index("ix_incident_open", "created_at", postgresql_where=text("closed_at IS NULL")),
        {"schema": "ops"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_type: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(24), server_default=text("'new'"))
    caller: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    geocode: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    district_code: Mapped[str | None] = mapped_column(String(12))
    joint: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    source: Mapped[str] = mapped_column(String(24), server_default=text("'operator'"))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class Assignment(Base):
    __tablename__ = "assignment"
    __table_args__ = (
        Index("ix_assignment_incident", "incident_id"),
        # A unit is on at most one live assignment: two dispatchers racing, exactly one wins.
        Index(
            "uq_assignment_active_unit",
            "unit_id",
            unique=True,
            postgresql_where=text("cleared_at IS NULL"),
        ),
        {"schema": "ops"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops.incident.id"))
    unit_id: Mapped[str] = mapped_column(ForeignKey("ops.unit.id"))
    assigned_by: Mapped[str] = mapped_column(Text)
    dispatched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    en_route_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    on_scene_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    eta_s: Mapped[float | None] = mapped_column(Double)


class IncidentEvent(Base):
    """The incident timeline: every state change, who and when."""

    __tablename__ = "incident_event"
    __table_args__ = (Index("ix_incident_event_incident", "incident_id", "at"), {"schema": "ops"})

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("ops.incident.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class IncidentMeta(Base):
    """What dispatch decided about an incident when it was created: the area class and the
    response target that follows from it, the response plan at the time, and the 12345 ticket
    it came from (unique: an import run twice creates nothing twice)."""

    __tablename__ = "incident_meta"
    __table_args__ = (
        CheckConstraint("area_class IN ('urban', 'rural')", name="area_class"),
        UniqueConstraint("ticket_id", name="incident_meta_ticket_id_key"),
        {"schema": "ops"},
    )

    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ops.incident.id", ondelete="CASCADE"), primary_key=True
    )
    area_class: Mapped[str] = mapped_column(Text)
    response_target_s: Mapped[float] = mapped_column(Double)
    plan: Mapped[Any] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    ticket_id: Mapped[str | None] = mapped_column(Text)


class GpsSuspect(Base):
    """A unit whose GPS jumped implausibly: the jumped fix is ignored and the last good one
    kept, until consistent fixes re-anchor the unit."""

    __tablename__ = "gps_suspect"
    __table_args__ = ({"schema": "ops"},)

    unit_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("ops.unit.id", ondelete="CASCADE"), primary_key=True
    )
    flagged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    jumps: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    good_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    good_geom: Mapped[Any | None] = mapped_column(geom("POINT"), nullable=True)
    bad_geom: Mapped[Any | None] = mapped_column(geom("POINT"), nullable=True)
