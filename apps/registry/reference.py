"""The registry's reference data: protected layers drawn from the cadastre, and the mining
rights of the reference dataset entered in the bitemporal register.

Runs inside the reference load's transaction, after the core's tables are in. Reproducible
from the seed: the same seed picks the same parcels for each protected layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Final

import numpy as np
import psycopg
import shapely

from apps.registry import bitemporal
from apps.registry.models import REGISTER_SRID
from gis_core.application import SynthContext

#: Land-use classes (GB/T 21010) each protected layer is drawn from, and the share of those
#: parcels it takes: not every field is basic farmland, not every wood is inside the red line.
PROTECTED: Final = {
    "basic_farmland": (("0101", "0102", "0103"), 0.7, "JBNT"),
    "ecological_red_line": (("0301", "0305", "0401", "0404"), 0.5, "STHX"),
    "built_up": (("0601", "0701", "0702", "0801", "0803", "0805"), 1.0, "JSYD"),
}
#: The register's own tables, emptied before a reload (the guard triggers are switched off
#: for that alone: a reload replaces the reference data, it does not edit history).
OWN_TABLES: Final = (
    "registry.finding",
    "registry.application_step",
    "registry.application",
    "registry.registry_lineage",
    "registry.registry_version",
    "registry.registry_txn",
    "registry.protected_area",
)
#: Permit dates are local (China Standard Time) days.
CST: Final = dt.timezone(dt.timedelta(hours=8))


def clear(conn: psycopg.Connection) -> None:
    """Empty the registry's own tables, guard triggers off for this transaction only."""
    guarded = ("registry.registry_version", "registry.registry_lineage", "registry.registry_txn")
    for table in guarded:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    conn.execute("TRUNCATE " + ", ".join(OWN_TABLES) + " RESTART IDENTITY")
    for table in guarded:
        conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def _protected(conn: psycopg.Connection, seed: int) -> int:
    rows = conn.execute(
        "SELECT id, land_use FROM registry.parcel WHERE valid_to IS NULL ORDER BY id"
    ).fetchall()
    if not rows:
        return 0
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    use = np.array([r[1] for r in rows], dtype=object)
    rng = np.random.default_rng(seed + 16_001)
    draw = rng.random(len(ids))
    total = 0
    for kind, (classes, share, prefix) in PROTECTED.items():
        picked = ids[np.isin(use, classes) & (draw < share)]
        cur = conn.execute(
            """
            INSERT INTO registry.protected_area (kind, code, district_code, geom)
            SELECT %s, %s || '-' || parcel_code, district_code, geom
            FROM registry.parcel WHERE id = ANY(%s) ORDER BY id
            """,
            (kind, prefix, picked.tolist()),
        )
        total += cur.rowcount
    conn.execute("ANALYZE registry.protected_area")
    return total


def _day(d: dt.date | None) -> dt.datetime | None:
    return None if d is None else dt.datetime(d.year, d.month, d.day, tzinfo=CST)


def register_reference_rights(conn: psycopg.Connection) -> int:
    """Enter every current right of ``registry.mining_right`` in the bitemporal register,
    valid over its permit term."""
    rows = conn.execute(
        """
        SELECT license_no, right_type, mineral, holder, permit_from, permit_to,
               depth_top_m, depth_bottom_m, registered_by,
               ST_AsBinary(ST_Transform(geom, %s))
        FROM registry.mining_right WHERE valid_to IS NULL ORDER BY license_no
        """,
        (REGISTER_SRID,),
    ).fetchall()
    for r in rows:
        start = _day(r[4]) or dt.datetime(2000, 1, 1, tzinfo=CST)
        end = _day(r[5])
        if end is not None and end <= start:
            end = None
        attrs = {
            "license_no": r[0],
            "right_type": r[1],
            "mineral": r[2],
            "holder": r[3],
            "permit_from": r[4].isoformat() if r[4] else None,
            "permit_to": r[5].isoformat() if r[5] else None,
            "depth_top_m": r[6],
            "depth_bottom_m": r[7],
        }
        bitemporal.apply(
            conn,
            "registry",
            bitemporal.Register(
                r[0], "mining_right", attrs, shapely.from_wkb(bytes(r[9])), start, end
            ),
            srid=REGISTER_SRID,
            note="reference register",
            approver=r[8],
        )
    return len(rows)


def synthesize(conn: psycopg.Connection, context: SynthContext) -> Mapping[str, int]:
    """The registry's reference rows (see the module's docstring)."""
    clear(conn)
    protected = _protected(conn, context.seed)
    rights = register_reference_rights(conn)
    return {"registry.protected_area": protected, "registry.registry_version": rights}
