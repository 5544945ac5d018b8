"""The exchange application's tables (schema ``exchange``): shared data elements, the sources
that feed them, every sync run and the rows it refused, access applications and reads, and the
administrative divisions the data is joined onto.

The synced rows themselves live in one table per source in the schema ``exchange_data``
(``exchange_data.src_<name>``), made at run time from the source's column mapping; a full sync
builds the next table beside the live one and swaps them in one transaction.
"""

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
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis_core.models import Base, geom

ELEMENT_TYPES = ("str", "int", "num", "date", "code")
SOURCE_KINDS = ("csv", "excel", "xml", "sql", "json")


class Element(Base):
    """A shared data element (共享数据元): what a value means, its type, unit and code list."""

    __tablename__ = "element"
    __table_args__ = (
        CheckConstraint("type IN ('str','int','num','date','code')", name="type"),
        {"schema": "exchange"},
    )

    code: Mapped[str] = mapped_column(String(63), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(8))
    unit: Mapped[str] = mapped_column(Text, server_default=text("''"))
    code_list: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    min: Mapped[float | None] = mapped_column(Double)
    max: Mapped[float | None] = mapped_column(Double)
    owner: Mapped[str | None] = mapped_column(ForeignKey("auth.department.code"))


class Source(Base):
    """A department's table brought in on a schedule: where it is, its key, change time and
    column mapping onto data elements, and how far the last run got."""

    __tablename__ = "source"
    __table_args__ = (
        CheckConstraint("kind IN ('csv','excel','xml','sql','json')", name="kind"),
        CheckConstraint("state IN ('new','running','ok','failed')", name="state"),
        {"schema": "exchange"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(48), unique=True)
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text, server_default=text("''"))
    kind: Mapped[str] = mapped_column(String(8))
    location: Mapped[str] = mapped_column(Text)  # a path, a drop folder or a URL
    query: Mapped[str | None] = mapped_column(Text)  # SQL table/query, XML/JSON record path
    key_column: Mapped[str] = mapped_column(Text)
    changed_column: Mapped[str | None] = mapped_column(Text)
    deleted_column: Mapped[str | None] = mapped_column(Text)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONB)  # source column -> element code
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    owner: Mapped[str] = mapped_column(ForeignKey("auth.department.code"))
    shared: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    synthesized: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    schedule_s: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    state: Mapped[str] = mapped_column(String(8), server_default=text("'new'"))
    watermark: Mapped[str | None] = mapped_column(Text)  # the latest change time loaded
    rows: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class SyncRun(Base):
    """One sync of one source: mode, counts, duration and, if it failed, why."""

    __tablename__ = "sync_run"
    __table_args__ = (
        CheckConstraint("mode IN ('full','incremental')", name="mode"),
        CheckConstraint("state IN ('running','ok','failed')", name="state"),
        Index("ix_sync_run_source_id", "source_id", "id"),
        {"schema": "exchange"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("exchange.source.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(8), server_default=text("'running'"))
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[float | None] = mapped_column(Double)
    rows_read: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rows_loaded: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rows_deleted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rows_refused: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text, server_default=text("'system'"))


class Refusal(Base):
    """A source row a run refused, with the column, the value and the reason."""

    __tablename__ = "refusal"
    __table_args__ = (
        Index("ix_refusal_run_id", "run_id"),
        {"schema": "exchange"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("exchange.sync_run.id", ondelete="CASCADE"))
    row_no: Mapped[int] = mapped_column(BigInteger)  # 1 = the first data row
    key: Mapped[str | None] = mapped_column(Text)
    column: Mapped[str | None] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class Access(Base):
    """A department's application to read another's source (申请-审核): requested, then
    approved or refused by the owner's supervisor; approved access can be revoked."""

    __tablename__ = "access"
    __table_args__ = (
        CheckConstraint("state IN ('requested','approved','refused','revoked')", name="state"),
        UniqueConstraint("source_id", "department"),
        {"schema": "exchange"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("exchange.source.id", ondelete="CASCADE"))
    department: Mapped[str] = mapped_column(ForeignKey("auth.department.code"))
    state: Mapped[str] = mapped_column(String(12), server_default=text("'requested'"))
    purpose: Mapped[str] = mapped_column(Text, server_default=text("''"))
    requested_by: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    decided_by: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class ReadLog(Base):
    """Every read of a source by a user outside its owning department."""

    __tablename__ = "read_log"
    __table_args__ = (
        Index("ix_read_log_source_id", "source_id", "at"),
        {"schema": "exchange"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("exchange.source.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    what: Mapped[str] = mapped_column(Text)  # rows | join | statistics | export
    rows: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))


class Division(Base):
    """Administrative divisions by GB/T 2260 code: districts (6 digits, real), towns (9) and
    villages (12). Areas for districts and towns, a point for every division."""

    __tablename__ = "division"
    __table_args__ = (
        CheckConstraint("level IN ('district','town','village')", name="level"),
        Index("ix_division_area", "area", postgresql_using="gist"),
        Index("ix_division_parent_code", "parent_code"),
        {"schema": "exchange"},
    )

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    level: Mapped[str] = mapped_column(String(8))
    parent_code: Mapped[str | None] = mapped_column(String(12))
    district_code: Mapped[str] = mapped_column(String(6))
    name_zh: Mapped[str] = mapped_column(Text)
    synthesized: Mapped[bool] = mapped_column(Boolean)
    area: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"), nullable=True)
    point: Mapped[Any] = mapped_column(geom("POINT"))
