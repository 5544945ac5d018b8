"""Traffic's tables (schema ``traffic``): junctions and their detectors, the controllers'
hi-res event log, the 15-minute measures, fault work orders, segment speeds, red-light
violations and sign messages.

The event log is the big one (a junction logs some 150,000 events a day): four narrow
columns, a primary key that makes re-sent batches harmless, and a BRIN index on time, which
stays a few pages for billions of rows appended in time order.
"""

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
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from gis_core.models import Base, geom


def _now() -> Any:
    return text("now()")


class Junction(Base):
    """A signalled junction: the number its controller logs events under, and its device."""

    __tablename__ = "junction"
    __table_args__ = (
        UniqueConstraint("device_id"),
        Index("ix_junction_geom", "geom", postgresql_using="gist"),
        {"schema": "traffic"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("iot.device.id", ondelete="SET NULL"))
    name_zh: Mapped[str] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(geom("POINT"), nullable=True)


class Detector(Base):
    """A detector input of a junction's controller: the phase it serves and its function."""

    __tablename__ = "detector"
    __table_args__ = (
        CheckConstraint("function IN ('advance','presence','count')", name="known_function"),
        {"schema": "traffic"},
    )

    junction_id: Mapped[int] = mapped_column(
        ForeignKey("traffic.junction.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    phase: Mapped[int] = mapped_column(SmallInteger)
    function: Mapped[str] = mapped_column(String(8))


class ControllerEvent(Base):
    """One hi-res controller event (Indiana enumerations): junction, instant, code, param."""

    __tablename__ = "controller_event"
    __table_args__ = (
        Index("ix_controller_event_ts", "ts", postgresql_using="brin"),
        {"schema": "traffic"},
    )

    # No foreign key: the log is written in bulk, and a junction's events outlive its row.
    junction_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    code: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    param: Mapped[int] = mapped_column(SmallInteger, primary_key=True)


class Measure(Base):
    """The performance measures of one junction, phase and 15-minute bin."""

    __tablename__ = "measure"
    __table_args__ = (
        Index("ix_measure_bin_start", "bin_start"),
        {"schema": "traffic"},
    )

    junction_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bin_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    phase: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    arrivals: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    arrivals_on_green: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    pct_aog: Mapped[float | None] = mapped_column(Double)
    platoon_ratio: Mapped[float | None] = mapped_column(Double)
    green_s: Mapped[float | None] = mapped_column(Double)
    cycles: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    split_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    gap_out: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_out: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    force_off: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    ped_samples: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    ped_delay_s: Mapped[float | None] = mapped_column(Double)
    volume: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class WorkOrder(Base):
    """A maintenance order opened from a controller fault alarm, with due time and escalation."""

    __tablename__ = "work_order"
    __table_args__ = (
        CheckConstraint("state IN ('open','in_progress','done')", name="known_state"),
        UniqueConstraint("alarm_id"),
        Index("ix_work_order_state_due_at", "state", "due_at"),
        {"schema": "traffic"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alarm_id: Mapped[int | None] = mapped_column(BigInteger)
    device_id: Mapped[str] = mapped_column(Text)
    junction_id: Mapped[int | None] = mapped_column(Integer)
    fault: Mapped[str] = mapped_column(Text)
    department_code: Mapped[str] = mapped_column(Text, server_default=text("'traffic'"))
    state: Mapped[str] = mapped_column(String(12), server_default=text("'open'"))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    escalation: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)


class SegmentSpeed(Base):
    """The live speed of a road segment from map-matched fleet fixes, against its free speed."""

    __tablename__ = "segment_speed"
    __table_args__ = ({"schema": "traffic"},)

    road_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ref.road.id", ondelete="CASCADE"), primary_key=True
    )
    speed_kmh: Mapped[float] = mapped_column(Double)
    free_speed_kmh: Mapped[float] = mapped_column(Double)
    congestion_index: Mapped[float] = mapped_column(Double)
    observations: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class TypicalSpeed(Base):
    """Typical speed of a segment by day type (0 weekday, 1 weekend) and local 15-min bin."""

    __tablename__ = "typical_speed"
    __table_args__ = (
        CheckConstraint("day_type IN (0, 1) AND bin BETWEEN 0 AND 95", name="known_cell"),
        {"schema": "traffic"},
    )

    road_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ref.road.id", ondelete="CASCADE"), primary_key=True
    )
    day_type: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bin: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    speed_kmh: Mapped[float] = mapped_column(Double)
    batches: Mapped[int] = mapped_column(Integer)


class Violation(Base):
    """A red-light camera's event and the verdict the controller's event log gives it."""

    __tablename__ = "violation"
    __table_args__ = (
        CheckConstraint("verdict IN ('confirmed','review','no_signal_data')", name="known_verdict"),
        Index("ix_violation_ts", "ts"),
        Index("ix_violation_junction_id_ts", "junction_id", "ts"),
        {"schema": "traffic"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    junction_id: Mapped[int] = mapped_column(Integer)
    phase: Mapped[int] = mapped_column(SmallInteger)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    plate: Mapped[str] = mapped_column(String(16))
    approach: Mapped[str | None] = mapped_column(String(16))
    camera_id: Mapped[str | None] = mapped_column(String(64))
    photo_ref: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))
    signal_state: Mapped[str | None] = mapped_column(String(8))
    state_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class Sign(Base):
    """A variable message sign: its matrix (rows × full-width columns) and place."""

    __tablename__ = "sign"
    __table_args__ = (
        CheckConstraint("rows BETWEEN 1 AND 8 AND columns BETWEEN 1 AND 64", name="size"),
        Index("ix_sign_geom", "geom", postgresql_using="gist"),
        {"schema": "traffic"},
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    road_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ref.road.id", ondelete="SET NULL")
    )
    rows: Mapped[int] = mapped_column(SmallInteger)
    columns: Mapped[int] = mapped_column(SmallInteger)
    geom: Mapped[Any] = mapped_column(geom("POINT"), nullable=True)


class SignMessage(Base):
    """A message an operator put on a sign (the audit of what was shown, when, by whom)."""

    __tablename__ = "sign_message"
    __table_args__ = (
        Index("ix_sign_message_sign_id_sent_at", "sign_id", "sent_at"),
        {"schema": "traffic"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sign_id: Mapped[str] = mapped_column(ForeignKey("traffic.sign.id", ondelete="CASCADE"))
    lines: Mapped[list[str]] = mapped_column(ARRAY(Text))
    reason: Mapped[str | None] = mapped_column(Text)
    sent_by: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
