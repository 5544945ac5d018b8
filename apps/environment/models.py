"""The environment application's tables (schema ``env``): enterprises, pollution sources, their
discharge outlets with permit limits, exceedance events and inspection tasks."""

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


# --------------------------------------------------------------------------- round 2: outlets

OUTLET_MEDIA = ("air", "water")
TASK_STATES = ("open", "assigned", "inspecting", "reported", "closed", "cancelled")
EXCEEDANCE_KINDS = ("emission", "ambient")


class Outlet(Base):
    """A discharge outlet (排放口) of a pollution source: a stack's flue or a waste-water
    outfall, with its HJ 212 data logger's MN and password (hashed) and its emission monitor."""

    __tablename__ = "outlet"
    __table_args__ = (
        CheckConstraint("medium IN ('air', 'water')", name="medium"),
        Index("ix_outlet_source_id", "source_id"),
        Index("ix_outlet_device_id", "device_id"),
        Index("ix_outlet_geom", "geom", postgresql_using="gist"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey("env.pollution_source.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(16))  # permit numbering: DA001 air, DW001 water
    name_zh: Mapped[str] = mapped_column(Text)
    medium: Mapped[str] = mapped_column(String(8))
    standard: Mapped[str] = mapped_column(Text)  # the emission standard its limits come from
    mn: Mapped[str] = mapped_column(String(24), unique=True)  # HJ 212 device number
    pw_hash: Mapped[str] = mapped_column(Text)  # HJ 212 PW, Argon2id
    device_id: Mapped[str | None] = mapped_column(ForeignKey("iot.device.id", ondelete="SET NULL"))
    geom: Mapped[Any] = mapped_column(geom("POINT"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class OutletLimit(Base):
    """A permitted pollutant of an outlet: its limit, unit, averaging and reference O2."""

    __tablename__ = "outlet_limit"
    __table_args__ = ({"schema": "env"},)

    outlet_id: Mapped[int] = mapped_column(
        ForeignKey("env.outlet.id", ondelete="CASCADE"), primary_key=True
    )
    pollutant: Mapped[str] = mapped_column(String(32), primary_key=True)  # a reading field
    limit_value: Mapped[float] = mapped_column(Double)
    unit: Mapped[str] = mapped_column(String(16))
    averaging: Mapped[str] = mapped_column(String(8), server_default=text("'1h'"))
    o2_reference_pct: Mapped[float | None] = mapped_column(Double)
    standard: Mapped[str] = mapped_column(Text)


class Exceedance(Base):
    """An exceedance event: an outlet over its permit or an air station over GB 3095, from
    the first to the last exceeding valid hour (de-bounced)."""

    __tablename__ = "exceedance"
    __table_args__ = (
        CheckConstraint("kind IN ('emission', 'ambient')", name="kind"),
        Index(
            "uq_exceedance_device_id_pollutant_started_at",
            "device_id",
            "pollutant",
            "started_at",
            unique=True,
        ),
        Index("ix_exceedance_started_at", "started_at"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str] = mapped_column(Text)
    outlet_id: Mapped[int | None] = mapped_column(ForeignKey("env.outlet.id", ondelete="SET NULL"))
    pollutant: Mapped[str] = mapped_column(String(32))
    averaging: Mapped[str] = mapped_column(String(8))
    limit_value: Mapped[float] = mapped_column(Double)
    standard: Mapped[str] = mapped_column(Text)
    peak_value: Mapped[float] = mapped_column(Double)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hours: Mapped[int] = mapped_column(Integer)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class InspectionTask(Base):
    """An inspection task (监察任务): who goes where by when, and where it stands."""

    __tablename__ = "inspection_task"
    __table_args__ = (
        CheckConstraint(
            "state IN ('open', 'assigned', 'inspecting', 'reported', 'closed', 'cancelled')",
            name="state",
        ),
        Index("ix_inspection_task_state", "state"),
        Index("ix_inspection_task_due_at", "due_at"),
        Index("ix_inspection_task_enterprise_id", "enterprise_id"),
        Index("ix_inspection_task_exceedance_id", "exceedance_id"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    enterprise_id: Mapped[int | None] = mapped_column(
        ForeignKey("env.enterprise.id", ondelete="SET NULL")
    )
    outlet_id: Mapped[int | None] = mapped_column(ForeignKey("env.outlet.id", ondelete="SET NULL"))
    exceedance_id: Mapped[int | None] = mapped_column(
        ForeignKey("env.exceedance.id", ondelete="SET NULL")
    )
    state: Mapped[str] = mapped_column(String(16), server_default=text("'open'"))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assignee: Mapped[str | None] = mapped_column(Text)  # username
    created_by: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class Hj212Aggregate(Base):
    """A data logger's own hourly (CN 2061) or daily (CN 2031) statistics, as it sent them:
    kept beside the readings (which hold the real-time and minute values) so the two never
    collide on one time stamp."""

    __tablename__ = "hj212_aggregate"
    __table_args__ = ({"schema": "env"},)

    outlet_id: Mapped[int] = mapped_column(
        ForeignKey("env.outlet.id", ondelete="CASCADE"), primary_key=True
    )
    cn: Mapped[str] = mapped_column(String(4), primary_key=True)
    data_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    factors: Mapped[dict[str, Any]] = mapped_column(JSONB)  # {"a21026": {"Avg": 12.3, ...}}
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


# --------------------------------------------------------------------------- round 3: evacuation


class EvacuationArea(Base):
    """The area a plume model said to evacuate for a dispatch incident (a hazmat release): the
    ground the concentration reaches at or above the chosen threshold, with who lives there.

    ``incident_id`` names dispatch's incident without a foreign key: the environment
    application installs without dispatch, and its tables must not need dispatch's."""

    __tablename__ = "evacuation_area"
    __table_args__ = (
        Index("ix_evacuation_area_incident_id", "incident_id"),
        Index("ix_evacuation_area_geom", "geom", postgresql_using="gist"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(BigInteger)
    threshold_ugm3: Mapped[float] = mapped_column(Double)
    population: Mapped[int] = mapped_column(Integer)
    schools: Mapped[int] = mapped_column(Integer)
    hospitals: Mapped[int] = mapped_column(Integer)
    stability: Mapped[str] = mapped_column(String(4))
    release: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the release and weather modelled
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))


# --------------------------------------------------------------------------- round 3: casework

COMPLAINT_SOURCES = ("hotline", "phone", "letter", "visit", "online")
VIOLATION_STATES = ("found", "decided", "paid", "rectified")


class InspectionRecord(Base):
    """An on-site inspection record (现场检查笔录) of a task: who went, when, what was found."""

    __tablename__ = "inspection_record"
    __table_args__ = (Index("ix_inspection_record_task_id", "task_id"), {"schema": "env"})

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("env.inspection_task.id", ondelete="CASCADE"))
    inspector: Mapped[str] = mapped_column(Text)
    visited_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    findings: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class RecordPhoto(Base):
    """A photo of an inspection record, stored on disk under its SHA-256."""

    __tablename__ = "record_photo"
    __table_args__ = (Index("ix_record_photo_record_id", "record_id"), {"schema": "env"})

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    record_id: Mapped[int] = mapped_column(
        ForeignKey("env.inspection_record.id", ondelete="CASCADE")
    )
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class Violation(Base):
    """A violation found at an inspection and its penalty (行政处罚)."""

    __tablename__ = "violation"
    __table_args__ = (
        CheckConstraint("state IN ('found', 'decided', 'paid', 'rectified')", name="state"),
        CheckConstraint("penalty_yuan IS NULL OR penalty_yuan >= 0", name="penalty_yuan"),
        Index("ix_violation_record_id", "record_id"),
        Index("ix_violation_enterprise_id", "enterprise_id"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    record_id: Mapped[int] = mapped_column(
        ForeignKey("env.inspection_record.id", ondelete="CASCADE")
    )
    enterprise_id: Mapped[int | None] = mapped_column(
        ForeignKey("env.enterprise.id", ondelete="SET NULL")
    )
    clause: Mapped[str] = mapped_column(Text)  # the provision broken, e.g. 大气污染防治法第九十九条
    description: Mapped[str] = mapped_column(Text)
    penalty_yuan: Mapped[float | None] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16), server_default=text("'found'"))
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class Complaint(Base):
    """A complaint (信访/投诉), from the 12345 hotline or any other channel, matched to the
    enterprise nearest to where it was made."""

    __tablename__ = "complaint"
    __table_args__ = (
        CheckConstraint(
            "source IN ('hotline', 'phone', 'letter', 'visit', 'online')", name="source"
        ),
        Index("uq_complaint_ticket_id", "ticket_id", unique=True),
        Index("ix_complaint_received_at", "received_at"),
        Index("ix_complaint_geom", "geom", postgresql_using="gist"),
        {"schema": "env"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    ticket_id: Mapped[str | None] = mapped_column(Text)  # the hotline's ticket number
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    content: Mapped[str] = mapped_column(Text)
    enterprise_id: Mapped[int | None] = mapped_column(
        ForeignKey("env.enterprise.id", ondelete="SET NULL")
    )
    distance_m: Mapped[float | None] = mapped_column(Double)
    candidates: Mapped[list[Any]] = mapped_column(JSONB)  # the enterprises near, nearest first
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("env.inspection_task.id", ondelete="SET NULL")
    )
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class TaskEscalation(Base):
    """An overdue task escalated (超时催办): once per task and day it stays late."""

    __tablename__ = "task_escalation"
    __table_args__ = ({"schema": "env"},)

    task_id: Mapped[int] = mapped_column(
        ForeignKey("env.inspection_task.id", ondelete="CASCADE"), primary_key=True
    )
    escalated_on: Mapped[date] = mapped_column(Date, primary_key=True)  # local day
    overdue_hours: Mapped[float] = mapped_column(Double)
    assignee: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
