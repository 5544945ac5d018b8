"""The registry's tables (schema ``registry``): parcels and mining rights, versioned."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Date,
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
from sqlalchemy.dialects.postgresql import JSONB
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


# ----------------------------------------------------------------- the bitemporal register
# Made by migration registry_0001 (with the append-only guard triggers, which models cannot
# express); the rows follow apps.registry.bitemporal. Geometries are metric (EPSG:4547) so
# split and merge keep areas in m².

REGISTER_SRID = 4547


def _metric(kind: str) -> Any:
    return Geometry(kind, srid=REGISTER_SRID, spatial_index=False)


class RegistryTxn(Base):
    """One registration transaction: what was done, when the register learnt it, by whom."""

    __tablename__ = "registry_txn"
    __table_args__ = (
        UniqueConstraint("recorded_at"),
        {"schema": "registry"},
    )

    txn_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    operation: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)  # the reason
    applicant: Mapped[str | None] = mapped_column(Text)
    approver: Mapped[str | None] = mapped_column(Text)


class RegistryVersion(Base):
    """One version of a right or parcel: valid time and transaction time (bitemporal)."""

    __tablename__ = "registry_version"
    __table_args__ = (
        Index("ix_registry_version_object_id_recorded_to", "object_id", "recorded_to"),
        Index("ix_registry_version_valid_from_valid_to", "valid_from", "valid_to"),
        Index("ix_registry_version_geom", "geom", postgresql_using="gist"),
        {"schema": "registry"},
    )

    version_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    object_id: Mapped[str] = mapped_column(Text)
    object_kind: Mapped[str] = mapped_column(Text)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    geom: Mapped[Any] = mapped_column(_metric("MULTIPOLYGON"))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recorded_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    txn_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registry.registry_txn.txn_id"))
    closed_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("registry.registry_txn.txn_id")
    )


class RegistryLineage(Base):
    """A split or merge: which object came from which."""

    __tablename__ = "registry_lineage"
    __table_args__ = (
        Index("ix_registry_lineage_child_id", "child_id"),
        {"schema": "registry"},
    )

    parent_id: Mapped[str] = mapped_column(Text, primary_key=True)
    child_id: Mapped[str] = mapped_column(Text, primary_key=True)
    operation: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    txn_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("registry.registry_txn.txn_id"), primary_key=True
    )


# --------------------------------------------------------------------------- protected layers


class ProtectedArea(Base):
    """Permanent basic farmland (永久基本农田), the ecological red line (生态保护红线) and
    built-up areas: the layers a new right must not take without a waiver."""

    __tablename__ = "protected_area"
    __table_args__ = (
        Index("ix_protected_area_kind", "kind"),
        Index("ix_protected_area_geom", "geom", postgresql_using="gist"),
        {"schema": "registry"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # basic_farmland | ecological_red_line | built_up
    code: Mapped[str] = mapped_column(String(40))
    district_code: Mapped[str | None] = mapped_column(String(12))
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))


# --------------------------------------------------------------------------- workflow


class RegistryApplication(Base):
    """An application for registration (申请 → 受理 → 审查 → 批准 → 发证, or 驳回).

    ``version`` is bumped by every transition: a transition names the version it saw, so of
    two concurrent approvals exactly one wins.
    """

    __tablename__ = "application"
    __table_args__ = (
        Index("ix_application_state", "state"),
        Index("ix_application_object_id", "object_id"),
        Index("ix_application_geom", "geom", postgresql_using="gist"),
        {"schema": "registry"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # mining | exploration | parcel
    object_id: Mapped[str] = mapped_column(String(40))  # licence number or parcel code
    applicant: Mapped[str] = mapped_column(Text)  # holder, by name or credit code
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    corners: Mapped[str | None] = mapped_column(Text)  # the corner list as submitted
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))
    depth_top_m: Mapped[float | None] = mapped_column(Double)
    depth_bottom_m: Mapped[float | None] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16), server_default=text("'application'"))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_by: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    accepted_by: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str | None] = mapped_column(Text)
    approver: Mapped[str | None] = mapped_column(Text)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    txn_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("registry.registry_txn.txn_id")
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class ApplicationStep(Base):
    """The audit trail of an application: every step, who took it and when."""

    __tablename__ = "application_step"
    __table_args__ = (
        Index("ix_application_step_application_id", "application_id"),
        {"schema": "registry"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    application_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registry.application.id"))
    step: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    note: Mapped[str | None] = mapped_column(Text)


class ApplicationFinding(Base):
    """A conflict found on an application: against which object, how much, where; it blocks
    approval while ``status`` is ``open``."""

    __tablename__ = "finding"
    __table_args__ = (
        Index("ix_finding_application_id", "application_id"),
        {"schema": "registry"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    application_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("registry.application.id"))
    check_kind: Mapped[str] = mapped_column(String(32))  # right_overlap, right_vs_<layer>...
    other_kind: Mapped[str] = mapped_column(String(32))
    other_id: Mapped[str] = mapped_column(Text)
    area_m2: Mapped[float] = mapped_column(Double)
    area_mu: Mapped[float] = mapped_column(Double)
    share: Mapped[float | None] = mapped_column(Double)  # of the applied-for object's area
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'open'"))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
