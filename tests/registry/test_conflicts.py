"""Conflict checks against a real throwaway PostGIS, in a schema of their own."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
import shapely
from shapely import box

from apps.registry.conflicts import (
    MU_M2,
    CheckError,
    Layer,
    depth_overlap,
    full_check,
    full_check_naive,
    parcel_gaps,
    parcel_overlaps,
    right_constraint_conflicts,
    right_overlaps,
    slivers,
    thinness,
    to_mu,
)
from apps.registry.synth import load_register, synthetic_register

SCHEMA = "registry_test_conflicts"
SYNTH = "registry_test_synth"
E0, N0 = 420_000.0, 4_000_000.0


@pytest.fixture(scope="module")
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        for s in (SCHEMA, SYNTH):
            c.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        c.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            yield c
        finally:
            for s in (SCHEMA, SYNTH):
                c.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")


def _table(
    conn: psycopg.Connection, name: str, geoms: list[object], depths: list[tuple] | None = None
) -> None:
    extra = ", depth_top float8, depth_bottom float8" if depths else ""
    conn.execute(
        f"CREATE TABLE {SCHEMA}.{name} (id int PRIMARY KEY{extra}, "
        "geom geometry(MultiPolygon, 4547))"
    )
    for k, g in enumerate(geoms, start=1):
        wkb = shapely.to_wkb(shapely.multipolygons([g]))
        if depths:
            conn.execute(
                f"INSERT INTO {SCHEMA}.{name} VALUES (%s, %s, %s, ST_GeomFromWKB(%s, 4547))",
                (k, *depths[k - 1], wkb),
            )
        else:
            conn.execute(
                f"INSERT INTO {SCHEMA}.{name} VALUES (%s, ST_GeomFromWKB(%s, 4547))", (k, wkb)
            )
    conn.execute(f"CREATE INDEX ON {SCHEMA}.{name} USING gist (geom)")


def _right_layer(name: str) -> Layer:
    return Layer(
        f"{SCHEMA}.{name}",
        "mining_right",
        depth_top_column="depth_top",
        depth_bottom_column="depth_bottom",
    )


def test_pure_helpers() -> None:
    assert to_mu(MU_M2) == pytest.approx(1.0)
    assert to_mu(666.67) == pytest.approx(1.00000, abs=1e-5)
    t = thinness([box(0, 0, 1, 1), box(0, 0, 45, 1), shapely.Polygon()])
    assert t.tolist() == pytest.approx([1 / 16, 45 / 92**2, 0.0])
    # Elevations (top above bottom) and depths (top below bottom) give the same verdict.
    top_a, bot_a = [800, 800, 800, 800], [600, 600, 600, 600]
    top_b, bot_b = [700, 600, 599.99, 900], [500, 400, 300, 850]
    assert depth_overlap(top_a, bot_a, top_b, bot_b).tolist() == [True, False, False, False]
    assert depth_overlap([600], [800], [601], [400]).tolist() == [True]


def test_parcel_overlap_gap_sliver_hand_made(conn: psycopg.Connection) -> None:
    # A 3 × 3 grid of 100 m lots with the middle one missing (a 10,000 m² gap), lot 9
    # reaching 10 m into lot 8 (1,000 m² overlap) and a 100 × 1 m sliver off to the side.
    lots = [
        box(E0 + i * 100, N0 + j * 100, E0 + (i + 1) * 100, N0 + (j + 1) * 100)
        for j in range(3)
        for i in range(3)
        if (i, j) != (1, 1)
    ]  # ids 1–8
    lots.append(box(E0 + 1100, N0, E0 + 1200, N0 + 100))  # id 9
    lots.append(box(E0 + 1190, N0, E0 + 1300, N0 + 100))  # id 10 lies 10 m over id 9
    lots.append(box(E0 + 1000, N0 + 500, E0 + 1100, N0 + 501))  # id 11, the sliver
    _table(conn, "parcel", lots)
    layer = Layer(f"{SCHEMA}.parcel", "parcel")
    (ov,) = parcel_overlaps(conn, layer)
    assert (ov.id_a, ov.id_b, ov.kind_a) == (9, 10, "parcel")
    assert ov.area_m2 == pytest.approx(1000.0)
    assert ov.area_mu == pytest.approx(1.5)
    assert ov.geometry.equals(box(E0 + 1190, N0, E0 + 1200, N0 + 100))
    # Tolerance: just below / at the overlap area.
    assert len(parcel_overlaps(conn, layer, min_area_m2=999.0)) == 1
    assert parcel_overlaps(conn, layer, min_area_m2=1000.0) == []
    assert parcel_gaps(conn, layer) == []  # default max 5,000 m²
    (gap,) = parcel_gaps(conn, layer, max_gap_m2=10_000.0)
    assert gap.area_m2 == pytest.approx(10_000.0)
    assert gap.geometry.equals(box(E0 + 100, N0 + 100, E0 + 200, N0 + 200))
    assert parcel_gaps(conn, layer, max_gap_m2=9_999.0) == []
    # A district that does not contain the gap leaves it out.
    assert (
        parcel_gaps(conn, layer, max_gap_m2=1e5, district=box(E0 - 10, N0 - 10, E0 + 150, N0 + 400))
        == []
    )
    assert (
        len(
            parcel_gaps(
                conn, layer, max_gap_m2=1e5, district=box(E0 - 10, N0 - 10, E0 + 400, N0 + 400)
            )
        )
        == 1
    )
    (sl,) = slivers(conn, layer)
    assert sl.id_a == 11 and sl.area_m2 == pytest.approx(100.0)
    with pytest.raises(CheckError, match="threshold"):
        slivers(conn, layer, threshold=0.1)
    with pytest.raises(CheckError, match="min_area_m2"):
        parcel_overlaps(conn, layer, min_area_m2=-1.0)


def test_parcel_overlaps_nested_and_mixed_contacts(conn: psycopg.Connection) -> None:
    # Lot 2 lies inside lot 1 (all its 400 m² overlap); lot 3 overlaps lot 1 by a 5 × 100 m
    # strip and also shares an edge with lot 4 beyond it (a line of contact, no area);
    # lot 5 touches lot 4 at a corner only.
    lots = [
        box(E0, N0, E0 + 100, N0 + 100),  # 1
        box(E0 + 10, N0 + 10, E0 + 30, N0 + 30),  # 2, inside 1
        box(E0 + 95, N0, E0 + 195, N0 + 100),  # 3, 5 m over 1
        box(E0 + 195, N0, E0 + 295, N0 + 100),  # 4, edge with 3
        box(E0 + 295, N0 + 100, E0 + 395, N0 + 200),  # 5, corner with 4
        # 6: a self-crossing "bow tie" over lot 5's far half, repaired, not refused.
        shapely.Polygon(
            [(E0 + 345, N0 + 100), (E0 + 395, N0 + 200), (E0 + 395, N0 + 100), (E0 + 345, N0 + 200)]
        ),
    ]
    _table(conn, "parcel_contacts", lots)
    found = parcel_overlaps(conn, Layer(f"{SCHEMA}.parcel_contacts", "parcel"))
    assert [(f.id_a, f.id_b) for f in found] == [(1, 2), (1, 3), (5, 6)]
    # The bow tie's two triangles, 1,250 m² each, both inside lot 5.
    assert [round(f.area_m2, 6) for f in found] == [400.0, 500.0, 2500.0]
    assert [f.geometry.geom_type for f in found] == ["Polygon", "Polygon", "MultiPolygon"]


@pytest.mark.parametrize(
    ("b_depth", "conflict"),
    [((700.0, 500.0), True), ((600.0, 400.0), False), ((500.0, 300.0), False)],
    ids=["depths-overlap", "depths-touch", "depths-apart"],
)
def test_rights_in_plan_and_depth(
    conn: psycopg.Connection, b_depth: tuple[float, float], conflict: bool
) -> None:
    name = f"right_{int(b_depth[0])}"
    a = box(E0, N0, E0 + 1000, N0 + 1000)
    b = box(E0 + 500, N0 + 500, E0 + 1500, N0 + 1500)
    far = box(E0 + 5000, N0, E0 + 6000, N0 + 1000)  # overlaps nothing in plan
    _table(conn, name, [a, b, far], depths=[(800.0, 600.0), b_depth, (800.0, 600.0)])
    found = right_overlaps(conn, _right_layer(name))
    if not conflict:
        assert found == []
        return
    (f,) = found
    assert (f.id_a, f.id_b) == (1, 2)
    assert f.area_m2 == pytest.approx(250_000.0)
    assert f.share_of_right == pytest.approx(0.25)
    assert f.area_mu == pytest.approx(375.0)


def test_right_needs_depth_columns(conn: psycopg.Connection) -> None:
    with pytest.raises(CheckError, match="depth_top_column"):
        right_overlaps(conn, Layer(f"{SCHEMA}.parcel", "mining_right"))
    with pytest.raises(CheckError, match=r"schema\.table"):
        right_overlaps(
            conn, Layer("a.b.c", "mining_right", depth_top_column="x", depth_bottom_column="y")
        )


def test_right_vs_constraints(conn: psycopg.Connection) -> None:
    right = box(E0, N0, E0 + 1000, N0 + 1000)
    _table(conn, "right_c", [right], depths=[(800.0, 600.0)])
    # A many-vertex farmland polygon covering the western half of the right exactly, so it is
    # cut into pieces by ST_Subdivide; the pieces' overlaps must add up to 500,000 m².
    xs = np.linspace(E0 - 2000, E0 + 500, 600)
    ring = (
        [(x, N0 - 2000) for x in xs]
        + [(E0 + 500, N0 + 3000)]
        + [(x, N0 + 3000) for x in xs[::-1][1:]]
    )
    farmland = shapely.Polygon(ring)
    _table(conn, "basic_farmland", [farmland, box(E0 + 3000, N0, E0 + 4000, N0 + 10)])
    _table(conn, "built_up", [box(E0 + 900, N0 + 900, E0 + 1100, N0 + 1100)])
    layers = [
        Layer(f"{SCHEMA}.basic_farmland", "basic_farmland"),
        Layer(f"{SCHEMA}.built_up", "built_up"),
    ]
    farm, built = right_constraint_conflicts(conn, _right_layer("right_c"), layers)
    assert (farm.check, farm.id_a, farm.id_b) == ("right_vs_basic_farmland", 1, 1)
    assert farm.area_m2 == pytest.approx(500_000.0, rel=1e-9)
    assert farm.share_of_right == pytest.approx(0.5)
    assert farm.geometry.area == pytest.approx(500_000.0, rel=1e-9)
    assert built.area_m2 == pytest.approx(10_000.0)
    assert built.share_of_right == pytest.approx(0.01)


def test_synthetic_register_full_check_finds_the_seeded(db_url: str) -> None:
    reg = synthetic_register(600, 20, seed=11, n_seeded=3)
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SYNTH} CASCADE")
        load_register(c, SYNTH, reg)  # stored in WGS84 like the platform's tables
        parcels = Layer(f"{SYNTH}.parcel", "parcel")
        rights = Layer(
            f"{SYNTH}.mining_right",
            "mining_right",
            depth_top_column="depth_top",
            depth_bottom_column="depth_bottom",
        )
        constraints = [Layer(f"{SYNTH}.{k}", k) for k in reg.constraints]
        fast = full_check(c, parcels, rights, constraints)
        naive = full_check_naive(c, parcels, rights, constraints)
    pairs = {(f.id_a, f.id_b) for f in fast.findings["parcel_overlap"]}
    assert pairs == {(a + 1, b + 1) for a, b in reg.seeded_overlaps}
    assert {f.id_a for f in fast.findings["sliver"]} == {k + 1 for k in reg.seeded_slivers}
    # Each removed lot is a gap; each sliver sits in a lot-sized hole of its own.
    assert len(fast.findings["parcel_gap"]) == 2 * 3
    right_pairs = {(f.id_a, f.id_b) for f in fast.findings["right_overlap"]}
    assert right_pairs >= {(a + 1, b + 1) for a, b in reg.seeded_right_overlaps}
    for name, found in fast.findings.items():
        peer = naive.findings[name]
        assert [(f.id_a, f.id_b) for f in found] == [(f.id_a, f.id_b) for f in peer], name
        assert np.allclose([f.area_m2 for f in found], [f.area_m2 for f in peer], rtol=1e-6)
    assert set(fast.seconds) == set(fast.findings)
