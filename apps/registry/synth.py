"""A seeded synthetic register at any scale, for the conflict checks' tests and benchmark.

Parcels tile city blocks (a jittered lattice of lots, so neighbours share edges exactly)
separated by streets; a few lots are then removed (gaps), grown into a neighbour (overlaps)
or replaced by a thin strip (slivers). Mining rights are rectangles on a coarser lattice
with depth ranges; some pairs are laid over each other. Constraint layers (basic farmland,
ecological red line, built-up area) are large many-vertex polygons. Everything is in the
metric CRS given (default EPSG:4547) and what was seeded is returned, so a checker's answer
can be compared with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import psycopg
import shapely
from psycopg import sql
from shapely.geometry import Polygon

__all__ = ["SyntheticRegister", "load_register", "synthetic_register"]


@dataclass
class SyntheticRegister:
    """Geometries (metric) and what was seeded, by row index."""

    parcels: np.ndarray  # shapely Polygons
    rights: np.ndarray
    depth_top: np.ndarray
    depth_bottom: np.ndarray
    constraints: dict[str, np.ndarray]
    district: Polygon
    seeded_gaps: list[int] = field(default_factory=list)  # removed lot numbers
    seeded_overlaps: list[tuple[int, int]] = field(default_factory=list)
    seeded_slivers: list[int] = field(default_factory=list)
    seeded_right_overlaps: list[tuple[int, int]] = field(default_factory=list)


def _lattice_lots(
    rng: np.random.Generator, n_lots: int, origin: tuple[float, float]
) -> tuple[list[Polygon], Polygon]:
    """Blocks of 10 × 10 lots (≈ 40 × 30 m) separated by 20 m streets."""
    lots_per_block = 100
    n_blocks = max(1, int(np.ceil(n_lots / lots_per_block)))
    per_row = int(np.ceil(np.sqrt(n_blocks)))
    lot_w, lot_h, street = 40.0, 30.0, 20.0
    block_w, block_h = 10 * lot_w + street, 10 * lot_h + street
    u = np.arange(11) * lot_w
    v = np.arange(11) * lot_h
    gx, gy = np.meshgrid(u, v)
    b = np.arange(n_blocks)
    bx = origin[0] + (b % per_row) * block_w
    by = origin[1] + (b // per_row) * block_h
    # Interior lattice points move a little; the block outlines stay straight.
    jx = rng.uniform(-6.0, 6.0, (n_blocks, *gx.shape))
    jy = rng.uniform(-5.0, 5.0, (n_blocks, *gy.shape))
    jx[:, :, [0, -1]] = 0.0
    jy[:, [0, -1], :] = 0.0
    px = bx[:, None, None] + gx + jx  # (block, row, column)
    py = by[:, None, None] + gy + jy
    # Lot (i, j) of a block: corners (i, j), (i, j+1), (i+1, j+1), (i+1, j), row by row.
    corners = np.stack(
        [
            np.stack([px[:, :-1, :-1], py[:, :-1, :-1]], -1),
            np.stack([px[:, :-1, 1:], py[:, :-1, 1:]], -1),
            np.stack([px[:, 1:, 1:], py[:, 1:, 1:]], -1),
            np.stack([px[:, 1:, :-1], py[:, 1:, :-1]], -1),
        ],
        axis=3,
    ).reshape(-1, 4, 2)[:n_lots]
    polys = list(shapely.polygons(corners))
    extent = shapely.box(
        origin[0] - 100.0,
        origin[1] - 100.0,
        origin[0] + per_row * block_w + 100.0,
        origin[1] + int(np.ceil(n_blocks / per_row)) * block_h + 100.0,
    )
    return polys, extent


def synthetic_register(
    n_parcels: int = 1000,
    n_rights: int = 50,
    *,
    seed: int = 7,
    n_seeded: int = 5,
    origin: tuple[float, float] = (400_000.0, 3_990_000.0),
) -> SyntheticRegister:
    """Build the register; ``n_seeded`` of each defect kind are planted."""
    if n_parcels < 200 or n_rights < 2 * n_seeded + 2:
        raise ValueError("synthetic_register needs n_parcels >= 200 and n_rights >= 2*n_seeded+2")
    rng = np.random.default_rng(seed)
    lots, district = _lattice_lots(rng, n_parcels + n_seeded, origin)
    # Defects only at lots well inside a block (row and column 2–7), spread over blocks.
    inner = [k for k in range(len(lots)) if 2 <= (k % 100) // 10 <= 7 and 2 <= k % 10 <= 7]
    picks = rng.choice(inner, size=3 * n_seeded, replace=False)
    gaps = sorted(int(k) for k in picks[:n_seeded])
    grow = [int(k) for k in picks[n_seeded : 2 * n_seeded]]
    thin = [int(k) for k in picks[2 * n_seeded :]]
    overlaps: list[tuple[int, int]] = []
    for k in grow:
        # Lot k reaches 8 m into its right-hand neighbour k+1.
        right = lots[k + 1]
        strip = shapely.intersection(right, shapely.affinity.translate(lots[k], 8.0, 0.0))
        lots[k] = shapely.union(lots[k], strip)
        overlaps.append((k, k + 1))
    for k in thin:
        c = lots[k].centroid
        lots[k] = shapely.box(c.x - 15.0, c.y - 0.2, c.x + 15.0, c.y + 0.2)
    keep = np.ones(len(lots), bool)
    keep[gaps] = False
    # Row numbers after removing the gaps.
    new_index = np.cumsum(keep) - 1
    parcels = np.array([p for p, k in zip(lots, keep, strict=True) if k], dtype=object)
    overlaps = [(int(new_index[a]), int(new_index[b])) for a, b in overlaps]
    slivers = [int(new_index[k]) for k in thin]

    # Rights on a lattice of 3 km cells beside the parcels; rectangles 1–2.5 km.
    x0 = district.bounds[2] + 5_000.0
    per_row = int(np.ceil(np.sqrt(n_rights)))
    cells = np.arange(n_rights)
    cx = x0 + (cells % per_row) * 3_000.0 + rng.uniform(0, 400, n_rights)
    cy = origin[1] + (cells // per_row) * 3_000.0 + rng.uniform(0, 400, n_rights)
    w = rng.uniform(1_000.0, 2_500.0, n_rights)
    h = rng.uniform(1_000.0, 2_500.0, n_rights)
    rights = shapely.box(cx, cy, cx + w, cy + h)
    top = rng.integers(80, 130, n_rights).astype(float) * 10.0  # elevations, m
    bottom = top - rng.integers(20, 60, n_rights).astype(float) * 10.0
    right_pairs: list[tuple[int, int]] = []
    for a in range(0, 2 * n_seeded, 2):
        b = a + 1
        ax0, ay0, ax1, ay1 = shapely.bounds(rights[a])
        rights[b] = shapely.box(ax0 + 500.0, ay0 + 500.0, ax1 + 500.0, ay1 + 500.0)
        # Same depth range for the seeded pairs; the depth cases are the tests' business.
        top[b], bottom[b] = top[a], bottom[a]
        right_pairs.append((a, b))
    # Constraint layers: a few big 512-vertex blobs over the rights' area.
    span_x = per_row * 3_000.0
    span_y = int(np.ceil(n_rights / per_row)) * 3_000.0
    constraints: dict[str, np.ndarray] = {}
    for kind, count in (("basic_farmland", 40), ("ecological_red_line", 10), ("built_up", 20)):
        blobs = []
        for _ in range(count):
            px = x0 + rng.uniform(0, span_x)
            py = origin[1] + rng.uniform(0, span_y)
            r = rng.uniform(800.0, 4_000.0)
            th = np.linspace(0, 2 * np.pi, 512, endpoint=False)
            rr = r * (1 + 0.15 * np.sin(5 * th + rng.uniform(0, 6)))
            blobs.append(Polygon(np.column_stack([px + rr * np.cos(th), py + rr * np.sin(th)])))
        constraints[kind] = np.array(blobs, dtype=object)
    return SyntheticRegister(
        parcels=parcels,
        rights=rights,
        depth_top=top,
        depth_bottom=bottom,
        constraints=constraints,
        district=district,
        seeded_gaps=gaps,
        seeded_overlaps=overlaps,
        seeded_slivers=slivers,
        seeded_right_overlaps=right_pairs,
    )


def load_register(
    conn: psycopg.Connection,
    schema: str,
    reg: SyntheticRegister,
    *,
    srid: int = 4547,
    store_srid: int = 4326,
) -> None:
    """Create ``schema`` tables parcel, mining_right, district and one per constraint kind.

    Geometries are stored in ``store_srid`` (the platform stores WGS84) with GiST indexes.
    """
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))

    def _table(name: str, extra: str, rows: list[tuple[object, ...]], cols: str) -> None:
        t = sql.Identifier(name)
        conn.execute(
            sql.SQL("CREATE TABLE {}.{} (id bigint PRIMARY KEY, {} geom geometry)").format(
                s, t, sql.SQL(extra)
            )
        )
        copy_sql = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(s, t, sql.SQL(cols))
        with conn.cursor().copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        conn.execute(
            sql.SQL(
                "ALTER TABLE {}.{} ALTER COLUMN geom TYPE geometry(MultiPolygon, {}) "
                "USING ST_Multi(ST_Transform(geom, {}))"
            ).format(s, t, sql.Literal(store_srid), sql.Literal(store_srid))
        )
        conn.execute(sql.SQL("CREATE INDEX ON {}.{} USING gist (geom)").format(s, t))
        conn.execute(sql.SQL("ANALYZE {}.{}").format(s, t))

    def _ewkb(geoms: np.ndarray) -> list[str]:
        return list(shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True))

    _table("parcel", "", [(k + 1, w) for k, w in enumerate(_ewkb(reg.parcels))], "id, geom")
    _table(
        "mining_right",
        "depth_top double precision, depth_bottom double precision,",
        [
            (k + 1, float(t), float(b), w)
            for k, (t, b, w) in enumerate(
                zip(reg.depth_top, reg.depth_bottom, _ewkb(reg.rights), strict=True)
            )
        ],
        "id, depth_top, depth_bottom, geom",
    )
    _table("district", "", [(1, _ewkb(np.array([reg.district], dtype=object))[0])], "id, geom")
    for kind, geoms in reg.constraints.items():
        _table(kind, "", [(k + 1, w) for k, w in enumerate(_ewkb(geoms))], "id, geom")
