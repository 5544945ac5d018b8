"""Bitemporal register: database against a pure replay, area conservation, append-only."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
import shapely
from shapely import box

from apps.registry.bitemporal import (
    DDL,
    Cancel,
    Change,
    Ledger,
    Merge,
    Register,
    RegistryError,
    Renew,
    Split,
    Transfer,
    Version,
    apply,
    as_of,
    create_schema,
    diff,
    history,
    lineage,
    plan,
)

SCHEMA = "registry_test_bitemporal"
E0, N0 = 420_000.0, 4_000_000.0
UTC = dt.UTC


def day(n: int) -> dt.datetime:
    return dt.datetime(2020, 1, 1, tzinfo=UTC) + dt.timedelta(days=n)


@pytest.fixture()
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        create_schema(c, SCHEMA)
        try:
            yield c
        finally:
            c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def _key(v: Version) -> tuple[object, ...]:
    return (
        v.object_id,
        json.dumps(dict(v.attrs), sort_keys=True),
        v.valid_from,
        v.valid_to,
        round(v.geom.area, 3),
    )


def test_ddl_is_text_with_placeholders() -> None:
    assert "{schema}.registry_version" in DDL and "{srid}" in DDL
    assert "BEFORE UPDATE OR DELETE" in DDL


def test_random_history_matches_pure_replay(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(5)
    ledger = Ledger()
    recorded: list[dt.datetime] = []
    next_id = 0
    refused = 0
    for step in range(60):
        live = sorted({r.object_id for r in ledger.rows if r.recorded_to is None})
        kind = rng.choice(
            ["register", "change", "transfer", "renew", "cancel", "split", "merge"],
            p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1],
        )
        at = day(int(rng.integers(0, 400)))
        if kind == "register" or not live:
            next_id += 1
            x = E0 + 2000 * next_id
            op: object = Register(
                f"P{next_id}",
                "parcel",
                {"land_use": "0103", "holder": "A"},
                box(x, N0, x + 100, N0 + 100),
                at,
                at + dt.timedelta(days=int(rng.integers(100, 300))),
            )
        else:
            target = str(rng.choice(live))
            if kind == "change":
                grow = float(rng.integers(1, 20))
                base = ledger.current([target])[target][0].geom
                op = Change(
                    target,
                    at,
                    {"land_use": str(rng.choice(["0102", "0601"]))},
                    shapely.buffer(base, grow, join_style="mitre"),
                )
            elif kind == "transfer":
                op = Transfer(target, at, holder=f"H{step}")
            elif kind == "renew":
                op = Renew(target, day(int(rng.integers(300, 900))))
            elif kind == "cancel":
                op = Cancel(target, at)
            elif kind == "split":
                rows = ledger.current([target])[target]
                held = [r for r in rows if r.valid_at(at)]
                if not held:
                    op = Split(target, at, [])
                else:
                    x0, y0, x1, y1 = held[0].geom.bounds
                    cut = box(x0 - 1, y0 - 1, (x0 + x1) / 2, y1 + 1)
                    g = held[0].geom
                    op = Split(
                        target,
                        at,
                        [
                            (f"{target}-a", g.intersection(cut), {"part": "a"}),
                            (f"{target}-b", g.difference(cut), {"part": "b"}),
                        ],
                    )
            else:
                if len(live) < 2:
                    continue
                a, b = (str(v) for v in rng.choice(live, 2, replace=False))
                next_id += 1
                op = Merge([a, b], f"M{next_id}", at, {"holder": "merged"})
        try:
            plan(op, ledger.current(_ids(op)))  # type: ignore[arg-type]
        except RegistryError:
            refused += 1
            with pytest.raises(RegistryError):
                apply(conn, SCHEMA, op)  # type: ignore[arg-type]
            continue
        rec = apply(conn, SCHEMA, op)  # type: ignore[arg-type]
        ledger.apply(op, rec.recorded_at, rec.txn_id)  # type: ignore[arg-type]
        recorded.append(rec.recorded_at)
    assert len(recorded) > 25 and refused > 0
    knowns: list[dt.datetime | None] = [*recorded, None]
    knowns += [a + (b - a) / 2 for a, b in itertools.pairwise(recorded)]
    knowns.append(recorded[0] - dt.timedelta(seconds=1))
    for valid_day in range(-10, 920, 37):
        v = day(valid_day)
        for k in [*knowns[:: max(1, len(knowns) // 15)], None, recorded[0]]:
            db = sorted(_key(x) for x in as_of(conn, SCHEMA, v, k))
            mem = sorted(_key(x) for x in ledger.as_of(v, k))
            assert db == mem, (v, k)
    # Before the first transaction nothing was known.
    assert as_of(conn, SCHEMA, day(100), recorded[0] - dt.timedelta(seconds=1)) == []


def _ids(op: object) -> list[str]:
    from apps.registry.bitemporal import _objects

    return _objects(op)  # type: ignore[arg-type]


def test_split_and_merge_keep_area_and_lineage(conn: psycopg.Connection) -> None:
    parcel = shapely.Polygon(
        [(E0, N0), (E0 + 1000.3, N0 + 12.7), (E0 + 987.1, N0 + 733.9), (E0 - 20.5, N0 + 700.2)]
    )
    apply(conn, SCHEMA, Register("Z1", "parcel", {"holder": "A"}, parcel, day(0)))
    # Three children along two cutting lines not parallel to any edge.
    c1 = shapely.intersection(
        parcel,
        shapely.Polygon(
            [(E0 - 100, N0 - 100), (E0 + 400, N0 - 100), (E0 + 300, N0 + 900), (E0 - 100, N0 + 900)]
        ),
    )
    rest = shapely.difference(parcel, c1)
    c2 = shapely.intersection(rest, box(E0, N0 + 300.123, E0 + 1100, N0 + 900))
    c3 = shapely.difference(rest, c2)
    kids = [
        ("Z1-1", c1, {"holder": "A"}),
        ("Z1-2", c2, {"holder": "B"}),
        ("Z1-3", c3, {"holder": "C"}),
    ]
    apply(conn, SCHEMA, Split("Z1", day(10), kids))
    now = as_of(conn, SCHEMA, day(11))
    assert [v.object_id for v in now] == ["Z1-1", "Z1-2", "Z1-3"]
    assert abs(sum(v.geom.area for v in now) - parcel.area) <= 0.01
    # Before the split, as known now, the parent stands alone.
    (before,) = as_of(conn, SCHEMA, day(9))
    assert before.object_id == "Z1" and before.valid_to == day(10)
    apply(conn, SCHEMA, Merge(["Z1-2", "Z1-3"], "Z2", day(20), {"holder": "D"}))
    merged = as_of(conn, SCHEMA, day(21), object_ids=["Z2"])[0]
    assert abs(merged.geom.area - (c2.area + c3.area)) <= 0.01
    anc = lineage(conn, SCHEMA, "Z2")
    assert {(k.parent_id, k.child_id, k.depth) for k in anc} == {
        ("Z1-2", "Z2", 1),
        ("Z1-3", "Z2", 1),
        ("Z1", "Z1-2", 2),
        ("Z1", "Z1-3", 2),
    }
    desc = lineage(conn, SCHEMA, "Z1", "descendants")
    assert {k.child_id for k in desc} == {"Z1-1", "Z1-2", "Z1-3", "Z2"}
    # Children that do not tile the parent are refused, just above the tolerance.
    apply(
        conn, SCHEMA, Register("Y1", "parcel", {}, box(E0, N0 + 5000, E0 + 100, N0 + 5100), day(0))
    )
    short = box(E0, N0 + 5000, E0 + 50, N0 + 5100.0002)  # 0.01 m² too much
    with pytest.raises(RegistryError, match="tile it exactly"):
        apply(
            conn,
            SCHEMA,
            Split(
                "Y1",
                day(5),
                [("Y1-a", short, {}), ("Y1-b", box(E0 + 50, N0 + 5000, E0 + 100, N0 + 5100), {})],
            ),
        )
    with pytest.raises(RegistryError, match="overlap"):
        apply(
            conn,
            SCHEMA,
            Split(
                "Y1",
                day(5),
                [
                    ("Y1-a", box(E0, N0 + 5000, E0 + 60, N0 + 5100), {}),
                    ("Y1-b", box(E0 + 50, N0 + 5000, E0 + 100, N0 + 5100), {}),
                ],
            ),
        )


def test_history_and_diff(conn: psycopg.Connection) -> None:
    g0 = box(E0, N0, E0 + 1000, N0 + 1000)
    apply(
        conn,
        SCHEMA,
        Register("R1", "mining_right", {"holder": "A", "mineral": "煤"}, g0, day(0), day(365)),
    )
    apply(conn, SCHEMA, Transfer("R1", day(100), "B"))
    g1 = box(E0, N0, E0 + 1010, N0 + 1000)
    apply(conn, SCHEMA, Change("R1", day(200), {"mineral": "煤, 铝土矿"}, g1))
    apply(conn, SCHEMA, Renew("R1", day(730)))
    rows = history(conn, SCHEMA, "R1")
    current = [r for r in rows if r.recorded_to is None]
    assert [(r.valid_from, r.valid_to) for r in current] == [
        (day(0), day(100)),
        (day(100), day(200)),
        (day(200), day(730)),
    ]
    assert len(rows) == 1 + 2 + 2 + 1  # every superseded row kept
    d = diff(current[0], current[2])
    assert d.attrs == {
        "holder": ("A", "B"),
        "mineral": ("煤", "煤, 铝土矿"),
        "permit_to": (None, day(730).isoformat()),
    }
    assert d.area_added_m2 == pytest.approx(10_000.0)
    assert d.area_removed_m2 == pytest.approx(0.0)
    # What the register said on day 150 about the holder, before and after the transfer.
    first_txn = rows[0].recorded_from
    assert as_of(conn, SCHEMA, day(150), first_txn)[0].attrs["holder"] == "A"
    assert as_of(conn, SCHEMA, day(150))[0].attrs["holder"] == "B"
    apply(conn, SCHEMA, Cancel("R1", day(400)))
    assert as_of(conn, SCHEMA, day(401)) == []
    assert as_of(conn, SCHEMA, day(399))[0].object_id == "R1"


def test_operation_refusals(conn: psycopg.Connection) -> None:
    g = box(E0, N0, E0 + 10, N0 + 10)
    with pytest.raises(RegistryError, match="not registered"):
        apply(conn, SCHEMA, Transfer("nobody", day(1), "X"))
    apply(conn, SCHEMA, Register("A", "parcel", {}, g, day(0), day(100)))
    with pytest.raises(RegistryError, match="already registered"):
        apply(conn, SCHEMA, Register("A", "parcel", {}, g, day(50)))
    # Re-registering right where the term ended is fine (touching valid times).
    apply(conn, SCHEMA, Register("A", "parcel", {}, g, day(100)))
    with pytest.raises(RegistryError, match="not registered on"):
        apply(conn, SCHEMA, Change("A", day(-1), {"x": 1}))
    with pytest.raises(RegistryError, match="must be after"):
        apply(conn, SCHEMA, Renew("A", day(50)))
    with pytest.raises(RegistryError, match="polygon"):
        apply(conn, SCHEMA, Register("B", "parcel", {}, shapely.Point(0, 0), day(0)))
    # A refused operation leaves no transaction behind.
    n = conn.execute(f"SELECT count(*) FROM {SCHEMA}.registry_txn").fetchone()
    assert n is not None and n[0] == 2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {s}.registry_version SET attrs = '{{}}' WHERE recorded_to IS NOT NULL",
        "UPDATE {s}.registry_version SET attrs = '{{}}' WHERE recorded_to IS NULL",
        "UPDATE {s}.registry_version SET valid_to = now() WHERE recorded_to IS NULL",
        "UPDATE {s}.registry_version SET recorded_to = NULL, closed_by = NULL "
        "WHERE recorded_to IS NOT NULL",
        "DELETE FROM {s}.registry_version",
        "DELETE FROM {s}.registry_lineage",
        "TRUNCATE {s}.registry_version CASCADE",
        "UPDATE {s}.registry_txn SET recorded_at = now()",
    ],
)
def test_history_cannot_be_edited(conn: psycopg.Connection, statement: str) -> None:
    g = box(E0, N0, E0 + 100, N0 + 100)
    apply(conn, SCHEMA, Register("E1", "parcel", {"holder": "A"}, g, day(0)))
    apply(conn, SCHEMA, Transfer("E1", day(10), "B"))
    apply(
        conn,
        SCHEMA,
        Split(
            "E1",
            day(20),
            [
                ("E1-a", box(E0, N0, E0 + 50, N0 + 100), {}),
                ("E1-b", box(E0 + 50, N0, E0 + 100, N0 + 100), {}),
            ],
        ),
    )
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
        conn.execute(statement.format(s=SCHEMA))
