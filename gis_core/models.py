"""The platform's schema, as SQLAlchemy 2 / GeoAlchemy2 models. Alembic migrations follow it.

Postgres schemas group tables by who owns the data:

- ``auth``      users, departments, the audit trail
- ``ref``       the city's reference geography (districts, rivers, roads, POIs, population)
- ``iot``       monitoring sites, devices, telemetry history (partitioned by day), live state,
                dead letters, alarm rules, geofences, alarms

Applications declare their own tables in ``apps/<name>/models.py`` on the same ``Base`` (and
so the same naming convention): ``ops`` (dispatch), ``env`` (environment), ``registry``.

Geometries are stored in ``STORAGE_SRID`` (WGS84 lon/lat; CGCS2000 coincides with it to well
under a metre). Metric work goes through EPSG:4547 or the geography type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
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
    MetaData,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STORAGE_SRID = 4326

ROLES = ("admin", "supervisor", "dispatcher", "planner", "registrar", "inspector", "viewer")
# Device kinds are the installed applications' (gis_core.application); the database only
# checks that a kind is a well-formed name. Besides them, ``gateway``: a device that carries
# other devices' readings (migration 0007) and sends none of its own.
KIND_PATTERN = "^[a-z][a-z0-9_]{0,23}$"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def geom(kind: str) -> Any:
    # spatial_index=False: indexes are declared explicitly so migrations name them.
    return Geometry(kind, srid=STORAGE_SRID, spatial_index=False)


def _now() -> Any:
    return text("now()")


# --------------------------------------------------------------------------- auth


class Department(Base):
    __tablename__ = "department"
    __table_args__ = ({"schema": "auth"},)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "app_user"
    __table_args__ = (
        CheckConstraint(
            "roles <@ ARRAY[" + ",".join(f"'{r}'" for r in ROLES) + "]::text[]", name="known_roles"
        ),
        {"schema": "auth"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    department_code: Mapped[str | None] = mapped_column(ForeignKey("auth.department.code"))
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class AuditEntry(Base):
    """Who did what, when, to which object: one row for every write."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_at", "at"),
        {"schema": "auth"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    user_id: Mapped[int | None] = mapped_column(ForeignKey("auth.app_user.id"))
    username: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    object_type: Mapped[str] = mapped_column(Text)
    object_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    client: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------- ref


class AdminArea(Base):
    """The city and its districts/counties (level 'city' or 'district')."""

    __tablename__ = "admin_area"
    __table_args__ = (
        Index("ix_admin_area_geom", "geom", postgresql_using="gist"),
        {"schema": "ref"},
    )

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    parent_code: Mapped[str | None] = mapped_column(String(12))
    level: Mapped[str] = mapped_column(String(16))
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    population_2020: Mapped[int | None] = mapped_column(Integer)
    area_km2: Mapped[float | None] = mapped_column(Double)
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))


class River(Base):
    __tablename__ = "river"
    __table_args__ = (Index("ix_river_geom", "geom", postgresql_using="gist"), {"schema": "ref"})

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(geom("MULTILINESTRING"))


class Town(Base):
    __tablename__ = "town"
    __table_args__ = (Index("ix_town_geom", "geom", postgresql_using="gist"), {"schema": "ref"})

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24))
    district_code: Mapped[str | None] = mapped_column(String(12))
    population: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class Road(Base):
    """A directed-capable edge of the routable road network (pgRouting: source/target/cost)."""

    __tablename__ = "road"
    __table_args__ = (
        Index("ix_road_geom", "geom", postgresql_using="gist"),
        Index("ix_road_source", "source"),
        Index("ix_road_target", "target"),
        {"schema": "ref"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(Text)
    road_class: Mapped[str] = mapped_column(String(24))
    speed_kmh: Mapped[float] = mapped_column(Double)
    oneway: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    length_m: Mapped[float] = mapped_column(Double)
    source: Mapped[int | None] = mapped_column(BigInteger)
    target: Mapped[int | None] = mapped_column(BigInteger)
    # Travel time in seconds; reverse_cost < 0 closes the reverse direction (one-way).
    cost_s: Mapped[float] = mapped_column(Double)
    reverse_cost_s: Mapped[float] = mapped_column(Double)
    district_code: Mapped[str | None] = mapped_column(String(12))
    geom: Mapped[Any] = mapped_column(geom("LINESTRING"))


class RoadNode(Base):
    __tablename__ = "road_node"
    __table_args__ = (
        Index("ix_road_node_geom", "geom", postgresql_using="gist"),
        {"schema": "ref"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class RoadClosure(Base):
    """A road closed (``speed_factor`` 0) or slowed by an application or an operator; the
    road graph honours the strictest one in force (gis_core.network)."""

    __tablename__ = "road_closure"
    __table_args__ = (
        CheckConstraint("speed_factor >= 0 AND speed_factor <= 1", name="factor"),
        Index("ix_road_closure_road_id", "road_id"),
        {"schema": "ref"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    road_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ref.road.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    speed_factor: Mapped[float] = mapped_column(Double, server_default=text("0"))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Village(Base):
    """Villages of the gazetteer (names from the division codes, places synthesized)."""

    __tablename__ = "village"
    __table_args__ = (Index("ix_village_geom", "geom", postgresql_using="gist"), {"schema": "ref"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name_zh: Mapped[str] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(12))
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class RoadGraphVersion(Base):
    """Bumped by a trigger on every change of ``ref.road``, so in-memory copies of the routing
    graph know when they are stale at the cost of one tiny read."""

    __tablename__ = "road_graph_version"
    __table_args__ = (CheckConstraint("one", name="one_row"), {"schema": "ref"})

    one: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    version: Mapped[int] = mapped_column(BigInteger, server_default=text("1"))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class Poi(Base):
    """Points of interest the apps reason about: stations, hospitals, schools, shelters, ..."""

    __tablename__ = "poi"
    __table_args__ = (
        Index("ix_poi_geom", "geom", postgresql_using="gist"),
        Index("ix_poi_category", "category"),
        {"schema": "ref"},
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(12))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("auth.department.code"))
    capacity: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class PopulationCell(Base):
    """Exposure grid: residents and buildings per cell, scaled to the 2020 census by district."""

    __tablename__ = "population_cell"
    __table_args__ = (
        Index("ix_population_cell_geom", "geom", postgresql_using="gist"),
        {"schema": "ref"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12))
    population: Mapped[float] = mapped_column(Double)
    buildings: Mapped[int] = mapped_column(Integer)
    geom: Mapped[Any] = mapped_column(geom("POLYGON"))


# --------------------------------------------------------------------------- iot


class MonitoringSite(Base):
    __tablename__ = "monitoring_site"
    __table_args__ = (
        Index("ix_monitoring_site_geom", "geom", postgresql_using="gist"),
        {"schema": "iot"},
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    name_zh: Mapped[str] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(12))
    # The environment application's source at this site; it owns that link's integrity.
    pollution_source_id: Mapped[int | None] = mapped_column(Integer)
    # Per-site thresholds, e.g. {"warning_m": 3.2, "danger_m": 4.1} for a river gauge.
    thresholds: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    geom: Mapped[Any] = mapped_column(geom("POINT"))


class Device(Base):
    __tablename__ = "device"
    __table_args__ = (
        CheckConstraint(f"kind ~ '{KIND_PATTERN}'", name="kind_name"),
        Index("ix_device_gateway_id", "gateway_id"),
        {"schema": "iot"},
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("auth.department.code"))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("iot.monitoring_site.id"))
    # The gateway this device's readings may come through (a device of kind "gateway").
    gateway_id: Mapped[str | None] = mapped_column(ForeignKey("iot.device.id", ondelete="SET NULL"))
    name_zh: Mapped[str | None] = mapped_column(Text)
    expected_interval_s: Mapped[int] = mapped_column(Integer, server_default=text("60"))
    # MQTT password, stored hashed for the platform; the broker's file is regenerated from
    # the plaintext only at provisioning time.
    mqtt_password_hash: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


# iot.telemetry is partitioned by day on ts; it is created by raw SQL in the migration because
# declarative partitioning and its per-day children are DDL, not model structure.


class DeviceState(Base):
    """The latest reading of every device; out-of-order readings never roll it back."""

    __tablename__ = "device_state"
    # No spatial index and half-empty pages: updates stay heap-only (migration 0005).
    __table_args__ = ({"schema": "iot", "postgresql_with": {"fillfactor": "50"}},)

    device_id: Mapped[str] = mapped_column(ForeignKey("iot.device.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    online: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    status: Mapped[str | None] = mapped_column(Text)
    reading: Mapped[dict[str, Any]] = mapped_column(JSONB)
    geom: Mapped[Any] = mapped_column(geom("POINT"), nullable=True)


class DeadLetter(Base):
    __tablename__ = "dead_letter"
    __table_args__ = (
        Index("ix_dead_letter_received_at", "received_at"),
        Index("ix_dead_letter_reason", "reason"),
        {"schema": "iot"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    topic: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)  # size-capped, escaped text
    payload_bytes: Mapped[int] = mapped_column(Integer)


class Geofence(Base):
    __tablename__ = "geofence"
    __table_args__ = (Index("ix_geofence_geom", "geom", postgresql_using="gist"), {"schema": "iot"})

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    kinds: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{vehicle}'"))
    on_enter: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    on_leave: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    geom: Mapped[Any] = mapped_column(geom("MULTIPOLYGON"))


class Alarm(Base):
    __tablename__ = "alarm"
    __table_args__ = (
        Index("ix_alarm_raised_at", "raised_at"),
        Index("ix_alarm_open", "kind", "device_id", postgresql_where=text("cleared_at IS NULL")),
        Index("ix_alarm_cleared_at", "cleared_at"),  # recently cleared, for reopening
        Index("ix_alarm_geom", "geom", postgresql_using="gist"),
        {"schema": "iot"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    rule: Mapped[str] = mapped_column(Text)  # e.g. water_level.danger, air.pm25, offline
    severity: Mapped[int] = mapped_column(SmallInteger)  # 1 info .. 4 critical
    device_id: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(BigInteger)
    message_zh: Mapped[str] = mapped_column(Text)
    message_en: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double)
    threshold: Mapped[float | None] = mapped_column(Double)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    occurrences: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    geom: Mapped[Any] = mapped_column(geom("POINT"), nullable=True)


class LoginThrottle(Base):
    """Failed logins per key (``addr:<address>`` or ``user:<name>``), shared by every API
    process: a key past its free failures is locked until ``blocked_until``."""

    __tablename__ = "login_throttle"
    __table_args__ = (
        Index("ix_login_throttle_last_failure_at", "last_failure_at"),
        {"schema": "auth"},
    )

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WorkerHeartbeat(Base):
    """One row per running worker process (ingest workers, applications' workers), beaten
    every few seconds with its figures; a row gone stale is a stalled or dead worker."""

    __tablename__ = "worker_heartbeat"
    __table_args__ = ({"schema": "iot"},)

    worker: Mapped[str] = mapped_column(Text, primary_key=True)  # e.g. ingest:host-w0
    role: Mapped[str] = mapped_column(Text)  # "ingest" or the application worker's name
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    figures: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


# The core's schemas; applications add theirs (ops: dispatch, env: environment, registry).
SCHEMAS = ("auth", "ref", "iot")
