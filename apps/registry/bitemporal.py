"""Versioned, bitemporal registration of parcels and mining rights.

Every version row carries two time axes:

* valid time ``[valid_from, valid_to)`` — when the fact holds in the world (``None`` = open);
* transaction time ``[recorded_from, recorded_to)`` — when the register held it (``None`` =
  still held).

Operations (register, change, transfer, renew, cancel, split, merge) only *append* rows and
*close* the transaction time of rows they supersede; nothing is updated in place, and the
database refuses any other UPDATE, every DELETE and TRUNCATE (trigger in :data:`DDL`). A
change at valid time *t* closes the current rows reaching past *t* and re-records them: the
part before *t* unchanged, the part from *t* on with the change. So "what did the register
say on day Y about day X" is a plain range query (:func:`as_of`), and history is never lost.

The planning of an operation is pure (:func:`plan`), shared by the database functions and
the in-memory :class:`Ledger`, which replays the same transactions for tests and what-ifs.
Geometries are in a metric CRS (default EPSG:4547), so areas are m².
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, TypeAlias

import psycopg
import shapely
from psycopg import sql
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from gis_core.crs import CGCS2000_GK_CM114

__all__ = [
    "AREA_TOLERANCE_M2",
    "DDL",
    "Cancel",
    "Change",
    "Ledger",
    "LineageLink",
    "Merge",
    "Plan",
    "Register",
    "RegistryError",
    "Renew",
    "Split",
    "Transfer",
    "Version",
    "VersionDiff",
    "apply",
    "as_of",
    "create_schema",
    "diff",
    "history",
    "lineage",
    "plan",
]

#: Split and merge must keep the area to within this (m²).
AREA_TOLERANCE_M2: Final = 0.01

#: Schema of the register; ``{schema}`` and ``{srid}`` are filled by :func:`create_schema`.
DDL: Final = """
CREATE TABLE {schema}.registry_txn (
    txn_id      bigserial PRIMARY KEY,
    operation   text NOT NULL CHECK (operation IN
                  ('register', 'change', 'transfer', 'renew', 'cancel', 'split', 'merge')),
    recorded_at timestamptz NOT NULL UNIQUE,
    note        text,
    applicant   text,
    approver    text
);
CREATE TABLE {schema}.registry_version (
    version_id    bigserial PRIMARY KEY,
    object_id     text NOT NULL,
    object_kind   text NOT NULL,
    attrs         jsonb NOT NULL DEFAULT '{{}}',
    geom          geometry(MultiPolygon, {srid}) NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,                       -- NULL: open
    recorded_from timestamptz NOT NULL,
    recorded_to   timestamptz,                       -- NULL: the register still says so
    txn_id        bigint NOT NULL REFERENCES {schema}.registry_txn,
    closed_by     bigint REFERENCES {schema}.registry_txn,
    CHECK (valid_to IS NULL OR valid_from < valid_to),
    CHECK (recorded_to IS NULL OR recorded_from < recorded_to),
    CHECK ((recorded_to IS NULL) = (closed_by IS NULL))
);
CREATE INDEX ON {schema}.registry_version (object_id, recorded_to);
CREATE INDEX ON {schema}.registry_version (valid_from, valid_to);
CREATE INDEX ON {schema}.registry_version USING gist (geom);
CREATE TABLE {schema}.registry_lineage (
    parent_id  text NOT NULL,
    child_id   text NOT NULL,
    operation  text NOT NULL CHECK (operation IN ('split', 'merge')),
    valid_from timestamptz NOT NULL,
    txn_id     bigint NOT NULL REFERENCES {schema}.registry_txn,
    PRIMARY KEY (parent_id, child_id, txn_id)
);
CREATE INDEX ON {schema}.registry_lineage (child_id);

-- History is append-only: the one permitted UPDATE closes the transaction time of a row the
-- register still holds, changing nothing else.
CREATE FUNCTION {schema}.registry_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Nested: PL/pgSQL does not short-circuit, and other tables lack these columns.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'registry_version' THEN
        IF OLD.recorded_to IS NULL AND NEW.recorded_to IS NOT NULL
           AND NEW.closed_by IS NOT NULL
           AND (NEW.version_id, NEW.object_id, NEW.object_kind, NEW.attrs, NEW.valid_from,
                NEW.valid_to, NEW.recorded_from, NEW.txn_id)
               IS NOT DISTINCT FROM
               (OLD.version_id, OLD.object_id, OLD.object_kind, OLD.attrs, OLD.valid_from,
                OLD.valid_to, OLD.recorded_from, OLD.txn_id)
           AND ST_AsEWKB(NEW.geom) = ST_AsEWKB(OLD.geom)
        THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'registry history is append-only: % on %.% refused',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation',
              HINT = 'record a change, transfer or cancellation instead';
END;
$$;
CREATE TRIGGER registry_version_guard BEFORE UPDATE OR DELETE ON {schema}.registry_version
    FOR EACH ROW EXECUTE FUNCTION {schema}.registry_guard();
CREATE TRIGGER registry_lineage_guard BEFORE UPDATE OR DELETE ON {schema}.registry_lineage
    FOR EACH ROW EXECUTE FUNCTION {schema}.registry_guard();
CREATE TRIGGER registry_txn_guard BEFORE UPDATE OR DELETE ON {schema}.registry_txn
    FOR EACH ROW EXECUTE FUNCTION {schema}.registry_guard();
CREATE TRIGGER registry_version_truncate BEFORE TRUNCATE ON {schema}.registry_version
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.registry_guard();
CREATE TRIGGER registry_lineage_truncate BEFORE TRUNCATE ON {schema}.registry_lineage
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.registry_guard();
"""


class RegistryError(ValueError):
    """An operation the register's state does not allow; the message says why."""


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Version:
    """One version row (``version_id`` is None until stored)."""

    object_id: str
    kind: str
    attrs: Mapping[str, Any]
    geom: BaseGeometry
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    recorded_from: dt.datetime | None = None
    recorded_to: dt.datetime | None = None
    version_id: int | None = None
    txn_id: int | None = None

    def valid_at(self, t: dt.datetime) -> bool:
        return self.valid_from <= t and (self.valid_to is None or t < self.valid_to)

    def known_at(self, t: dt.datetime | None) -> bool:
        if t is None:
            return self.recorded_to is None
        assert self.recorded_from is not None
        return self.recorded_from <= t and (self.recorded_to is None or t < self.recorded_to)


@dataclass(frozen=True)
class Register:
    """Enter a new object, valid from ``valid_from`` (to ``valid_to``, e.g. a permit's end)."""

    object_id: str
    kind: str
    attrs: Mapping[str, Any]
    geom: BaseGeometry
    valid_from: dt.datetime
    valid_to: dt.datetime | None = None
    operation: Literal["register"] = "register"


@dataclass(frozen=True)
class Change:
    """Change attributes (merged into the old ones) and/or the geometry from ``at`` on."""

    object_id: str
    at: dt.datetime
    attrs: Mapping[str, Any] = field(default_factory=dict)
    geom: BaseGeometry | None = None
    operation: Literal["change"] = "change"


@dataclass(frozen=True)
class Transfer:
    """A new holder from ``at`` on."""

    object_id: str
    at: dt.datetime
    holder: str
    operation: Literal["transfer"] = "transfer"


@dataclass(frozen=True)
class Renew:
    """Extend the object's validity (a permit's term) to ``until``."""

    object_id: str
    until: dt.datetime
    operation: Literal["renew"] = "renew"


@dataclass(frozen=True)
class Cancel:
    """The object ceases to exist at ``at``."""

    object_id: str
    at: dt.datetime
    operation: Literal["cancel"] = "cancel"


@dataclass(frozen=True)
class Split:
    """Replace ``object_id`` at ``at`` by children ``(id, geometry, attrs)`` covering it."""

    object_id: str
    at: dt.datetime
    children: Sequence[tuple[str, BaseGeometry, Mapping[str, Any]]]
    operation: Literal["split"] = "split"


@dataclass(frozen=True)
class Merge:
    """Replace ``parents`` at ``at`` by one object, their union, with ``attrs``."""

    parents: Sequence[str]
    child_id: str
    at: dt.datetime
    attrs: Mapping[str, Any]
    operation: Literal["merge"] = "merge"


Operation: TypeAlias = Register | Change | Transfer | Renew | Cancel | Split | Merge


@dataclass(frozen=True)
class LineageLink:
    parent_id: str
    child_id: str
    operation: str
    valid_from: dt.datetime
    depth: int = 1


@dataclass(frozen=True)
class Plan:
    """What an operation does: versions to close, versions to add, lineage links."""

    close: tuple[Version, ...]
    insert: tuple[Version, ...]
    links: tuple[LineageLink, ...] = ()


@dataclass(frozen=True)
class VersionDiff:
    """Attributes that differ (old, new) and the plane area gained and lost (m²)."""

    attrs: dict[str, tuple[Any, Any]]
    area_added_m2: float
    area_removed_m2: float


# --------------------------------------------------------------------------- planning


def _multi(geom: BaseGeometry, what: str) -> MultiPolygon:
    if isinstance(geom, Polygon):
        geom = MultiPolygon([geom])
    if not isinstance(geom, MultiPolygon) or geom.is_empty or not geom.is_valid:
        raise RegistryError(f"{what}: needs a valid, non-empty polygon geometry")
    return geom


def _objects(op: Operation) -> list[str]:
    if isinstance(op, Merge):
        return list(op.parents)
    if isinstance(op, Split):
        return [op.object_id] + [c[0] for c in op.children]
    return [op.object_id]


def _rows_from(
    rows: Sequence[Version], at: dt.datetime, what: str
) -> tuple[list[Version], Version]:
    """The current rows reaching past ``at`` and the one valid at ``at``."""
    reach = [r for r in rows if r.valid_to is None or r.valid_to > at]
    holding = [r for r in reach if r.valid_at(at)]
    if not holding:
        raise RegistryError(f"{what}: the object is not registered on {at.isoformat()}")
    return reach, holding[0]


def _cut(rows: Sequence[Version], at: dt.datetime) -> list[Version]:
    """Re-recorded parts before ``at`` of rows that began earlier."""
    return [
        replace(r, valid_to=at, version_id=None, recorded_from=None, txn_id=None)
        for r in rows
        if r.valid_from < at
    ]


def _patched(
    rows: Sequence[Version], at: dt.datetime, attrs: Mapping[str, Any], geom: BaseGeometry | None
) -> list[Version]:
    return [
        replace(
            r,
            valid_from=max(r.valid_from, at),
            attrs={**r.attrs, **attrs},
            geom=r.geom if geom is None else geom,
            version_id=None,
            recorded_from=None,
            txn_id=None,
        )
        for r in rows
    ]


def _check_split(op: Split, parent: Version) -> None:
    if len(op.children) < 2:
        raise RegistryError(f"split of {op.object_id}: needs at least two children")
    geoms = [_multi(g, f"split child {cid}") for cid, g, _ in op.children]
    total = sum(g.area for g in geoms)
    union = shapely.union_all(geoms)
    overlap = total - union.area
    if overlap > AREA_TOLERANCE_M2:
        raise RegistryError(f"split of {op.object_id}: children overlap by {overlap:.3f} m²")
    sym = shapely.symmetric_difference(union, parent.geom).area
    if sym > AREA_TOLERANCE_M2 or abs(total - parent.geom.area) > AREA_TOLERANCE_M2:
        raise RegistryError(
            f"split of {op.object_id}: children cover {total:.3f} m² and differ from the "
            f"parcel ({parent.geom.area:.3f} m²) by {sym:.3f} m²; they must tile it exactly"
        )


def plan(op: Operation, current: Mapping[str, Sequence[Version]]) -> Plan:
    """Pure planning of ``op`` against the current rows of the objects it touches.

    Parameters
    ----------
    op
        The operation.
    current
        For every object id of :func:`_objects` (``op``), its rows the register still holds
        (``recorded_to`` None); a missing id means none.

    Raises
    ------
    RegistryError
        When the register's state does not allow the operation.
    """
    rows = {k: list(current.get(k, ())) for k in _objects(op)}
    if isinstance(op, Register):
        shape = _multi(op.geom, f"register {op.object_id}")
        if op.valid_to is not None and op.valid_to <= op.valid_from:
            raise RegistryError(f"register {op.object_id}: valid_to must be after valid_from")
        new = Version(op.object_id, op.kind, dict(op.attrs), shape, op.valid_from, op.valid_to)
        clash = [
            r
            for r in rows[op.object_id]
            if (r.valid_to is None or r.valid_to > op.valid_from)
            and (op.valid_to is None or r.valid_from < op.valid_to)
        ]
        if clash:
            raise RegistryError(
                f"register {op.object_id}: already registered from {clash[0].valid_from}"
            )
        return Plan((), (new,))
    if isinstance(op, Change | Transfer):
        if isinstance(op, Transfer):
            attrs: Mapping[str, Any] = {"holder": op.holder}
            geom: BaseGeometry | None = None
        else:
            attrs = op.attrs
            geom = None if op.geom is None else _multi(op.geom, f"change {op.object_id}")
            if not attrs and geom is None:
                raise RegistryError(f"change {op.object_id}: nothing to change")
        reach, _ = _rows_from(rows[op.object_id], op.at, f"{op.operation} {op.object_id}")
        return Plan(tuple(reach), tuple(_cut(reach, op.at) + _patched(reach, op.at, attrs, geom)))
    if isinstance(op, Cancel):
        reach, _ = _rows_from(rows[op.object_id], op.at, f"cancel {op.object_id}")
        return Plan(tuple(reach), tuple(_cut(reach, op.at)))
    if isinstance(op, Renew):
        own = rows[op.object_id]
        if not own:
            raise RegistryError(f"renew {op.object_id}: the object is not registered")
        last = max(own, key=lambda r: r.valid_from)
        if last.valid_to is None or op.until <= last.valid_to:
            raise RegistryError(
                f"renew {op.object_id}: new term end {op.until.isoformat()} must be after the "
                f"current one ({last.valid_to.isoformat() if last.valid_to else 'open'})"
            )
        renewed = replace(
            last,
            valid_to=op.until,
            attrs={**last.attrs, "permit_to": op.until.isoformat()},
            version_id=None,
            recorded_from=None,
            txn_id=None,
        )
        return Plan((last,), (renewed,))
    if isinstance(op, Split):
        reach, parent = _rows_from(rows[op.object_id], op.at, f"split {op.object_id}")
        if any(rows[cid] for cid, _, _ in op.children):
            raise RegistryError(f"split of {op.object_id}: a child id is already registered")
        _check_split(op, parent)
        children = [
            Version(cid, parent.kind, dict(attrs), _multi(g, cid), op.at, parent.valid_to)
            for cid, g, attrs in op.children
        ]
        links = [LineageLink(op.object_id, cid, "split", op.at) for cid, _, _ in op.children]
        return Plan(tuple(reach), tuple(_cut(reach, op.at) + children), tuple(links))
    if isinstance(op, Merge):
        if len(set(op.parents)) < 2:
            raise RegistryError("merge needs at least two distinct objects")
        if op.child_id in op.parents:
            raise RegistryError("merge: the merged object needs a new id")
        closing: list[Version] = []
        holding: list[Version] = []
        for pid in op.parents:
            reach, held = _rows_from(rows[pid], op.at, f"merge {pid}")
            closing += reach
            holding.append(held)
        if len({h.kind for h in holding}) > 1:
            raise RegistryError("merge: objects of different kinds cannot be merged")
        union = shapely.union_all([h.geom for h in holding])
        overlap = sum(h.geom.area for h in holding) - union.area
        if overlap > AREA_TOLERANCE_M2:
            raise RegistryError(f"merge: the objects overlap by {overlap:.3f} m²")
        if union.geom_type == "Polygon":
            union = MultiPolygon([union])
        ends = [h.valid_to for h in holding if h.valid_to is not None]
        child = Version(
            op.child_id, holding[0].kind, dict(op.attrs), union, op.at, min(ends) if ends else None
        )
        links = [LineageLink(pid, op.child_id, "merge", op.at) for pid in op.parents]
        return Plan(tuple(closing), tuple([*_cut(closing, op.at), child]), tuple(links))
    raise RegistryError(f"unknown operation {op!r}")


def diff(old: Version, new: Version) -> VersionDiff:
    """Attributes that differ and the area added and removed from ``old`` to ``new``."""
    keys = set(old.attrs) | set(new.attrs)
    changed = {
        k: (old.attrs.get(k), new.attrs.get(k))
        for k in sorted(keys)
        if old.attrs.get(k) != new.attrs.get(k)
    }
    added = shapely.difference(new.geom, old.geom).area
    removed = shapely.difference(old.geom, new.geom).area
    return VersionDiff(changed, float(added), float(removed))


# --------------------------------------------------------------------------- in memory


@dataclass
class Ledger:
    """The register in memory: the same plans applied to a list, for replays and tests."""

    rows: list[Version] = field(default_factory=list)
    links: list[LineageLink] = field(default_factory=list)
    last_recorded: dt.datetime | None = None

    def current(self, ids: Iterable[str]) -> dict[str, list[Version]]:
        wanted = set(ids)
        out: dict[str, list[Version]] = {}
        for r in self.rows:
            if r.object_id in wanted and r.recorded_to is None:
                out.setdefault(r.object_id, []).append(r)
        return out

    def apply(self, op: Operation, recorded_at: dt.datetime, txn_id: int = 0) -> Plan:
        if self.last_recorded is not None and recorded_at <= self.last_recorded:
            raise RegistryError("transaction time must increase")
        p = plan(op, self.current(_objects(op)))
        closing = {id(r) for r in p.close}
        self.rows = [
            replace(r, recorded_to=recorded_at) if id(r) in closing else r for r in self.rows
        ]
        self.rows += [replace(v, recorded_from=recorded_at, txn_id=txn_id) for v in p.insert]
        self.links += list(p.links)
        self.last_recorded = recorded_at
        return p

    def as_of(self, valid_at: dt.datetime, known_at: dt.datetime | None = None) -> list[Version]:
        return sorted(
            (r for r in self.rows if r.valid_at(valid_at) and r.known_at(known_at)),
            key=lambda r: r.object_id,
        )


# --------------------------------------------------------------------------- database


def create_schema(conn: psycopg.Connection, schema: str, *, srid: int = CGCS2000_GK_CM114) -> None:
    """Create the register's tables, guard trigger and indexes in ``schema`` (from DDL)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    text = DDL.format(schema=sql.Identifier(schema).as_string(conn), srid=int(srid))
    conn.execute(text.encode())


_COLUMNS: Final = (
    "version_id, object_id, object_kind, attrs, ST_AsBinary(geom), valid_from, valid_to, "
    "recorded_from, recorded_to, txn_id"
)


def _version(row: tuple[Any, ...]) -> Version:
    geom = shapely.from_wkb(bytes(row[4]))
    return Version(
        object_id=row[1],
        kind=row[2],
        attrs=row[3],
        geom=geom,
        valid_from=row[5],
        valid_to=row[6],
        recorded_from=row[7],
        recorded_to=row[8],
        version_id=row[0],
        txn_id=row[9],
    )


def _select(schema: str, where: str) -> sql.Composed:
    return sql.SQL("SELECT " + _COLUMNS + " FROM {}.registry_version WHERE " + where).format(
        sql.Identifier(schema)
    )


@dataclass(frozen=True)
class Recorded:
    """A stored transaction: its id and transaction time."""

    txn_id: int
    recorded_at: dt.datetime
    plan: Plan


def apply(
    conn: psycopg.Connection,
    schema: str,
    op: Operation,
    *,
    srid: int = CGCS2000_GK_CM114,
    note: str | None = None,
    applicant: str | None = None,
    approver: str | None = None,
) -> Recorded:
    """Record ``op`` in one database transaction; returns its id and transaction time.

    ``note`` is the reason; ``applicant`` and ``approver`` who asked and who approved.

    Writers are serialized by a table lock, so transaction times strictly increase.
    """
    s = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {}.registry_txn IN SHARE ROW EXCLUSIVE MODE").format(s))
        row = conn.execute(
            sql.SQL(
                "INSERT INTO {s}.registry_txn (operation, recorded_at, note, applicant, approver) "
                "SELECT %s, GREATEST(clock_timestamp(), "
                "       (SELECT max(recorded_at) + interval '1 microsecond' "
                "        FROM {s}.registry_txn)), %s, %s, %s "
                "RETURNING txn_id, recorded_at"
            ).format(s=s),
            (op.operation, note, applicant, approver),
        ).fetchone()
        assert row is not None
        txn_id, recorded_at = int(row[0]), row[1]
        ids = _objects(op)
        current: dict[str, list[Version]] = {}
        for r in conn.execute(
            _select(schema, "object_id = ANY(%s) AND recorded_to IS NULL FOR UPDATE"), (ids,)
        ):
            v = _version(r)
            current.setdefault(v.object_id, []).append(v)
        p = plan(op, current)
        if p.close:
            conn.execute(
                sql.SQL(
                    "UPDATE {}.registry_version SET recorded_to = %s, closed_by = %s "
                    "WHERE version_id = ANY(%s)"
                ).format(s),
                (recorded_at, txn_id, [v.version_id for v in p.close]),
            )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {}.registry_version (object_id, object_kind, attrs, geom, "
                    "valid_from, valid_to, recorded_from, txn_id) "
                    "VALUES (%s, %s, %s::jsonb, ST_GeomFromWKB(%s, %s), %s, %s, %s, %s)"
                ).format(s),
                [
                    (
                        v.object_id,
                        v.kind,
                        json.dumps(dict(v.attrs), ensure_ascii=False, sort_keys=True),
                        shapely.to_wkb(v.geom),
                        srid,
                        v.valid_from,
                        v.valid_to,
                        recorded_at,
                        txn_id,
                    )
                    for v in p.insert
                ],
            )
            if p.links:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {}.registry_lineage "
                        "(parent_id, child_id, operation, valid_from, txn_id) "
                        "VALUES (%s, %s, %s, %s, %s)"
                    ).format(s),
                    [(k.parent_id, k.child_id, k.operation, k.valid_from, txn_id) for k in p.links],
                )
    return Recorded(txn_id, recorded_at, p)


def as_of(
    conn: psycopg.Connection,
    schema: str,
    valid_at: dt.datetime,
    known_at: dt.datetime | None = None,
    *,
    object_ids: Sequence[str] | None = None,
) -> list[Version]:
    """The register as it stood on ``valid_at`` as known at ``known_at`` (None: now)."""
    where = "valid_from <= %(v)s AND (valid_to IS NULL OR %(v)s < valid_to) AND " + (
        "recorded_to IS NULL"
        if known_at is None
        else "recorded_from <= %(k)s AND (recorded_to IS NULL OR %(k)s < recorded_to)"
    )
    if object_ids is not None:
        where += " AND object_id = ANY(%(ids)s)"
    rows = conn.execute(
        _select(schema, where + " ORDER BY object_id"),
        {"v": valid_at, "k": known_at, "ids": list(object_ids or [])},
    ).fetchall()
    return [_version(r) for r in rows]


def history(conn: psycopg.Connection, schema: str, object_id: str) -> list[Version]:
    """Every version ever recorded for an object, by transaction then valid time."""
    rows = conn.execute(
        _select(schema, "object_id = %s ORDER BY recorded_from, valid_from, version_id"),
        (object_id,),
    ).fetchall()
    return [_version(r) for r in rows]


def lineage(
    conn: psycopg.Connection,
    schema: str,
    object_id: str,
    direction: Literal["ancestors", "descendants"] = "ancestors",
) -> list[LineageLink]:
    """Splits and merges an object came from (ancestors) or went into (descendants)."""
    if direction not in ("ancestors", "descendants"):
        raise RegistryError(f"direction must be 'ancestors' or 'descendants', got {direction!r}")
    near, far = ("child_id", "parent_id") if direction == "ancestors" else ("parent_id", "child_id")
    q = sql.SQL(
        """
        WITH RECURSIVE walk AS (
            SELECT parent_id, child_id, operation, valid_from, 1 AS depth
            FROM {s}.registry_lineage WHERE {near} = %s
            UNION
            SELECT l.parent_id, l.child_id, l.operation, l.valid_from, w.depth + 1
            FROM {s}.registry_lineage l JOIN walk w ON l.{near} = w.{far}
            WHERE w.depth < 100
        )
        SELECT parent_id, child_id, operation, valid_from, min(depth)
        FROM walk GROUP BY 1, 2, 3, 4 ORDER BY 5, 1, 2
        """
    ).format(s=sql.Identifier(schema), near=sql.Identifier(near), far=sql.Identifier(far))
    return [LineageLink(*r) for r in conn.execute(q, (object_id,))]
