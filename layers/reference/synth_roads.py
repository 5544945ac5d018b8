"""Synthetic routable road network: street grids, village lanes, rural and inter-seat roads.

All geometry here is metric (the city's CRS). The pieces are drawn independently and then noded
together (every crossing becomes a node), cut into segments of about 500 m, snapped, and reduced
to the largest connected component, so the result is a valid pgRouting topology:

* the city seat gets a dense, organic street grid (jittered, warped, slightly rotated lattice,
  arterials every 4–6 blocks, secondaries between them, a one-way couplet downtown), thinning
  out beyond an irregular urban edge; county seats get smaller grids of the same kind;
* every village gets a few lanes (a 2×2 to 4×4 lattice);
* villages and seats are linked by village roads (Gabriel graph plus the spanning tree),
  township seats and county seats by county roads, county seats and the city seat by
  national roads (minimum spanning tree), provincial roads and radial expressways leaving
  the city; these are smooth curvy polylines, cut back where they enter a street grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import networkx as nx
import numpy as np
import numpy.typing as npt
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import Delaunay, cKDTree
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry

from layers.reference.synth_city import City, District
from layers.reference.synth_names import NameBook

__all__ = [
    "CLASS_RANK",
    "CLASS_SPEED",
    "RoadNetwork",
    "StreetGrid",
    "VillageSet",
    "build_network",
    "make_street_grids",
]

FloatArray = npt.NDArray[np.float64]

#: Road classes, most important first, with their free-flow speeds (km/h).
CLASS_SPEED: Final = {
    "expressway": 100.0,
    "national": 70.0,
    "provincial": 60.0,
    "county": 50.0,
    "arterial": 50.0,
    "secondary": 40.0,
    "local": 30.0,
    "village": 25.0,
}
CLASS_RANK: Final = {c: i for i, c in enumerate(CLASS_SPEED)}
#: Half-length of the downtown one-way couplet, metres.
_COUPLET_HALF_M: Final = 1150.0


@dataclass
class StreetGrid:
    """One town's street grid; blocks are lattice quads (metric corners, counter-clockwise)."""

    kind: str  # "city" | "county"
    district_code: str
    center: tuple[float, float]
    radius: float
    footprint: BaseGeometry
    blocks: FloatArray  # (n, 4, 2)
    block_ring: FloatArray  # distance from the centre / radius
    block_whole: npt.NDArray[np.bool_]  # parks, campuses, merged blocks: one parcel
    lines: list[LineString] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    oneway: list[bool] = field(default_factory=list)


@dataclass
class VillageSet:
    """Villages (metric), with the township each belongs to."""

    x: FloatArray
    y: FloatArray
    name_zh: list[str]
    name_en: list[str]
    district_code: list[str]
    population: FloatArray
    lanes: npt.NDArray[np.int64]  # lattice nodes per side, 2..4
    township: npt.NDArray[np.int64]  # index into townships
    is_township_seat: npt.NDArray[np.bool_]
    townships: list[dict[str, Any]]  # name_zh, name_en, district_code, code, x, y, village


@dataclass
class RoadNetwork:
    """Noded edges and nodes (metric); ``source``/``target`` index ``node_xy``."""

    geoms: npt.NDArray[np.object_]
    road_class: npt.NDArray[np.object_]
    name: npt.NDArray[np.object_]
    oneway: npt.NDArray[np.bool_]
    source: npt.NDArray[np.int64]
    target: npt.NDArray[np.int64]
    node_xy: FloatArray
    name_en: dict[str, str]
    village_blocks: FloatArray  # (n, 4, 2) lane-lattice quads
    village_block_owner: npt.NDArray[np.int64]  # village index of each quad


# --------------------------------------------------------------------------- street grids


def _arterial_indices(n: int, rng: np.random.Generator) -> tuple[set[int], set[int]]:
    art = {0}
    for sign in (1, -1):
        k = 0
        while True:
            k += int(rng.integers(4, 7))
            if k > n:
                break
            art.add(sign * k)
    srt = sorted(art)
    sec = {(a + b) // 2 for a, b in itertools.pairwise(srt) if b - a >= 4}
    return art, sec


def _line_class(i: int, art: set[int], sec: set[int]) -> str:
    return "arterial" if i in art else "secondary" if i in sec else "local"


def _grid(
    city: City,
    district: District,
    kind: str,
    center: tuple[float, float],
    radius: float,
    spacing: float,
    rng: np.random.Generator,
    names: NameBook,
    first_stems: Sequence[tuple[str, str]],
    taken: BaseGeometry | None,
    name_en: dict[str, str],
) -> StreetGrid | None:
    cx, cy = center
    half = radius * (1.55 if kind == "city" else 1.6)
    n = max(2, round(half / spacing))
    idx = np.arange(-n, n + 1)
    m = len(idx)
    art_r, sec_r = _arterial_indices(n, rng)
    art_c, sec_c = _arterial_indices(n, rng)
    row_cls = [_line_class(int(i), art_r, sec_r) for i in idx]
    col_cls = [_line_class(int(j), art_c, sec_c) for j in idx]

    # Downtown one-way couplet: two adjacent local rows and two adjacent local columns.
    oneway_rows: dict[int, int] = {}
    oneway_cols: dict[int, int] = {}
    if kind == "city" and n >= 8:
        for cls, store in ((row_cls, oneway_rows), (col_cls, oneway_cols)):
            for k in rng.permutation(np.arange(-3, 3)):
                a, b = int(k) + n, int(k) + n + 1
                if cls[a] == "local" and cls[b] == "local":
                    cls[a] = cls[b] = "secondary"
                    store[a], store[b] = 1, -1
                    break

    couplet_half = max(2.0, _COUPLET_HALF_M / spacing)
    jit = 0.12 * spacing
    ii, jj = np.meshgrid(idx, idx, indexing="ij")
    u = jj * spacing + rng.normal(0, jit, (m, m))
    v = ii * spacing + rng.normal(0, jit, (m, m))
    art_col = np.array([c == "arterial" for c in col_cls])
    art_row = np.array([c == "arterial" for c in row_cls])
    u[:, art_col] = jj[:, art_col] * spacing + rng.normal(0, 0.02 * spacing, (m, art_col.sum()))
    v[art_row, :] = ii[art_row, :] * spacing + rng.normal(0, 0.02 * spacing, (art_row.sum(), m))
    # Gentle warp so long streets bend; zero at the seat so the centre node is the seat.
    amp, lam = 0.035 * half, rng.uniform(1.2, 2.2) * half
    ph1, ph2 = rng.uniform(0, 2 * np.pi, 2)
    wu = amp * (np.sin(2 * np.pi * v / lam + ph1) - np.sin(ph1))
    wv = amp * (np.sin(2 * np.pi * u / lam + ph2) - np.sin(ph2))
    u, v = u + wu, v + wv
    u[n, n] = v[n, n] = 0.0
    ang = np.deg2rad(rng.uniform(-12, 12))
    X = cx + np.cos(ang) * u - np.sin(ang) * v
    Y = cy + np.sin(ang) * u + np.cos(ang) * v

    # Keep edges inside an irregular urban edge; beyond it, keep fewer and fewer.
    harmonics = [(rng.normal(0, 0.22 / k), rng.uniform(0, 2 * np.pi)) for k in range(1, 6)]

    def keep_prob(
        ri: npt.NDArray[Any], rj: npt.NDArray[Any], cls: npt.NDArray[np.int64]
    ) -> FloatArray:
        r = np.hypot(ri, rj) * spacing
        th = np.arctan2(ri, rj)
        shape_f = 1.0 + sum(a * np.cos(k * th + p) for k, (a, p) in enumerate(harmonics, 1))
        redge = radius * np.clip(shape_f, 0.55, 1.5)
        decay = np.where(cls == 2, 0.9, np.where(cls == 1, 0.35, 0.2)) * radius
        return np.asarray(np.where(r <= redge, 1.0, np.exp(-(r - redge) / decay)))

    rank = {"arterial": 2, "secondary": 1, "local": 0}
    rcls = np.array([rank[c] for c in row_cls])
    ccls = np.array([rank[c] for c in col_cls])
    # Horizontal edges (i, j)-(i, j+1) follow row i; vertical (i, j)-(i+1, j) follow column j.
    h_cls = np.broadcast_to(rcls[:, None], (m, m - 1))
    v_cls = np.broadcast_to(ccls[None, :], (m - 1, m))
    h_keep = rng.random((m, m - 1)) < keep_prob(ii[:, :-1] * 1.0, jj[:, :-1] + 0.5, h_cls)
    v_keep = rng.random((m - 1, m)) < keep_prob(ii[:-1, :] + 0.5, jj[:-1, :] * 1.0, v_cls)
    # Merged blocks: a few local edges go missing inside the town too.
    h_keep &= ~((h_cls == 0) & (rng.random(h_keep.shape) < 0.04))
    v_keep &= ~((v_cls == 0) & (rng.random(v_keep.shape) < 0.04))
    # The couplet runs unbroken through downtown.
    core = np.abs(idx[:-1] + 0.5) < couplet_half
    for r_ in oneway_rows:
        h_keep[r_, :] |= core
    for c_ in oneway_cols:
        v_keep[:, c_] |= core
    # Never inside the outline's margin or on ground another grid already holds.
    hx0, hy0, hx1, hy1 = X[:, :-1], Y[:, :-1], X[:, 1:], Y[:, 1:]
    vx0, vy0, vx1, vy1 = X[:-1, :], Y[:-1, :], X[1:, :], Y[1:, :]
    for keep, x0, y0, x1, y1 in ((h_keep, hx0, hy0, hx1, hy1), (v_keep, vx0, vy0, vx1, vy1)):
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        keep &= city.inside(mx, my, margin=60.0)
        if taken is not None:
            keep &= ~shapely.contains_xy(taken, mx, my)

    # Blocks: quads with at least three sides, inside the edge.
    q_sides = h_keep[:-1, :].astype(int) + h_keep[1:, :] + v_keep[:, :-1] + v_keep[:, 1:]
    q_built = q_sides >= 3
    corners = np.stack(
        [
            np.stack([X[:-1, :-1], Y[:-1, :-1]], -1),
            np.stack([X[:-1, 1:], Y[:-1, 1:]], -1),
            np.stack([X[1:, 1:], Y[1:, 1:]], -1),
            np.stack([X[1:, :-1], Y[1:, :-1]], -1),
        ],
        axis=2,
    )  # (m-1, m-1, 4, 2), counter-clockwise for an unrotated lattice
    qi, qj = np.nonzero(q_built)
    blocks = corners[qi, qj]
    if len(blocks) == 0:
        return None
    polys = shapely.polygons(np.concatenate([blocks, blocks[:, :1]], axis=1))
    inside = shapely.contains(city.outline_m, polys)
    if taken is not None:
        inside &= ~shapely.intersects(taken, polys)
    blocks, qi, qj = blocks[inside], qi[inside], qj[inside]
    polys = polys[inside]
    ring = np.hypot(qi - n + 0.5, qj - n + 0.5) * spacing / radius
    whole = (q_sides[qi, qj] < 4) | (rng.random(len(qi)) < 0.03)
    footprint = shapely.union_all(polys).buffer(spacing * 0.6).buffer(-spacing * 0.3)

    # Names: one stem per row and per column; arterials first, they get the given stems.
    order_r = sorted(range(m), key=lambda k: (-rank[row_cls[k]], abs(k - n)))
    order_c = sorted(range(m), key=lambda k: (-rank[col_cls[k]], abs(k - n)))
    scope = f"street:{district.code}"
    stems = names.street_stems(scope, 2 * m, first_stems)
    row_stem = {k: stems[2 * t] for t, k in enumerate(order_r)}
    col_stem = {k: stems[2 * t + 1] for t, k in enumerate(order_c)}

    grid = StreetGrid(kind, district.code, center, radius, footprint, blocks, ring, whole)

    def add(x0: float, y0: float, x1: float, y1: float, cls: str, nm: str, ow: bool) -> None:
        grid.lines.append(LineString([(x0, y0), (x1, y1)]))
        grid.classes.append(cls)
        grid.names.append(nm)
        grid.oneway.append(ow)

    sect_ew = ("西", "中", "东")
    sect_ns = ("南", "中", "北")
    sect_en = {"西": "West", "中": "Middle", "东": "East", "南": "South", "北": "North"}
    third = 0.35 * radius / spacing

    def section(pos: float, labels: tuple[str, str, str]) -> str:
        return labels[0] if pos < -third else labels[2] if pos > third else labels[1]

    for i, j in zip(*np.nonzero(h_keep), strict=True):
        zh, en = row_stem[i]
        cls = row_cls[i]
        if cls == "arterial":
            sec = section(j - n + 0.5, sect_ew)
            nm, nm_en = f"{zh}{sec}街", f"{en.capitalize()} {sect_en[sec]} Street"
        else:
            nm, nm_en = f"{zh}街", f"{en.capitalize()} Street"
        name_en[nm] = nm_en
        d = oneway_rows.get(int(i), 0)
        ow = d != 0 and abs(j - n + 0.5) < couplet_half
        a, b = (j, j + 1) if d >= 0 else (j + 1, j)
        add(X[i, a], Y[i, a], X[i, b], Y[i, b], cls, nm, bool(ow))
    for i, j in zip(*np.nonzero(v_keep), strict=True):
        zh, en = col_stem[j]
        cls = col_cls[j]
        if cls == "arterial":
            sec = section(i - n + 0.5, sect_ns)
            nm, nm_en = f"{zh}{sec}路", f"{en.capitalize()} {sect_en[sec]} Road"
        else:
            nm, nm_en = f"{zh}路", f"{en.capitalize()} Road"
        name_en[nm] = nm_en
        d = oneway_cols.get(int(j), 0)
        ow = d != 0 and abs(i - n + 0.5) < couplet_half
        a, b = (i, i + 1) if d >= 0 else (i + 1, i)
        add(X[a, j], Y[a, j], X[b, j], Y[b, j], cls, nm, bool(ow))
    return grid


def _seat_stem(name: str) -> str:
    for suf in ("街道", "镇", "乡"):
        if name.endswith(suf) and len(name) > len(suf) + 1:
            return name[: -len(suf)]
    return name


def make_street_grids(
    city: City, rng: np.random.Generator, scale: float, names: NameBook, name_en: dict[str, str]
) -> list[StreetGrid]:
    """Street grids for the city seat (about 14 km across) and every county seat.

    Parameters
    ----------
    city
        The city.
    rng
        Random generator.
    scale
        Density factor in (0, 1]; block spacing grows as ``1/sqrt(scale)``.
    names
        Name generator (street names are unique per district).
    name_en
        Filled with the English form of every street name.
    """
    f = 1.0 / np.sqrt(scale)
    grids: list[StreetGrid] = []
    taken: BaseGeometry | None = None
    for seat in city.seats:
        d = city.district(seat.district_code)
        first = [(_seat_stem(seat.name_zh), seat.name_en.lower()), (d.short_zh, d.short_en.lower())]
        if seat.kind == "city_seat":
            radius, spacing, kind = 4800.0, 190.0 * f, "city"
            if city.name_en:
                first.insert(0, (city.short_zh, city.name_en.lower()))
        else:
            radius = 900.0 + 1000.0 * np.sqrt(d.population / 300_000)
            spacing, kind = 200.0 * f, "county"
        g = _grid(
            city,
            d,
            kind,
            (seat.x, seat.y),
            float(radius),
            min(spacing, radius / 2.5),
            rng,
            names,
            first,
            taken,
            name_en,
        )
        if g is None:
            continue
        grids.append(g)
        taken = g.footprint if taken is None else taken.union(g.footprint)
        shapely.prepare(taken)
    return grids


# --------------------------------------------------------------------------- rural roads


def _curvy(
    p0: npt.ArrayLike,
    p1: npt.ArrayLike,
    rng: np.random.Generator,
    amp: float,
    step: float,
    cap: float = 2500.0,
) -> LineString:
    """A smooth polyline from p0 to p1: the chord plus a sum of sines vanishing at both ends."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    d = b - a
    length = float(np.hypot(*d))
    k = max(2, int(length / step) + 1)
    t = np.linspace(0.0, 1.0, k)
    off = np.zeros(k)
    sigma = min(amp * length, cap)
    for h in range(1, 6):
        off += rng.normal(0, sigma / h**1.5) * np.sin(h * np.pi * t)
    nrm = np.array([-d[1], d[0]]) / max(length, 1e-9)
    pts = a + t[:, None] * d + off[:, None] * nrm
    pts[0], pts[-1] = a, b
    return LineString(pts)


def _delaunay_edges(pts: FloatArray) -> npt.NDArray[np.int64]:
    tri = Delaunay(pts)
    s = tri.simplices
    e = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [2, 0]]])
    e.sort(axis=1)
    return np.unique(e, axis=0)


def _proximity_graph(
    pts: FloatArray,
    allowed: npt.NDArray[np.bool_] | None,
    edges: npt.NDArray[np.int64],
    kind: str = "gabriel",
) -> npt.NDArray[np.int64]:
    """Gabriel or relative-neighbourhood edges among the allowed Delaunay ``edges``, plus the
    minimum spanning forest of the allowed ones (so nothing that could be linked is cut off)."""
    if allowed is not None:
        edges = edges[allowed]
    if len(edges) == 0:
        return edges
    p, q = pts[edges[:, 0]], pts[edges[:, 1]]
    length = np.hypot(*(q - p).T)
    tree = cKDTree(pts)
    if kind == "gabriel":
        # Nothing closer to the midpoint than the edge's own ends.
        dist, _ = tree.query((p + q) / 2, k=1)
        prox = np.asarray(dist) >= length / 2 * (1 - 1e-9)
    else:
        # Relative neighbourhood: no point nearer to both ends than they are to each other.
        prox = np.ones(len(edges), bool)
        balls = tree.query_ball_point(p, r=length * (1 - 1e-9))
        for k, cand in enumerate(balls):
            if len(cand) > 1:
                c = np.asarray(cand)
                dq = np.hypot(*(pts[c] - q[k]).T)
                if np.any(dq < length[k] * (1 - 1e-9)):
                    prox[k] = False
    n = len(pts)
    w = coo_matrix((length, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    mst = minimum_spanning_tree(w).tocoo()
    lo, hi = np.minimum(mst.row, mst.col), np.maximum(mst.row, mst.col)
    mst_key = set((lo.astype(np.int64) * n + hi).tolist())
    in_mst = np.isin(edges[:, 0] * n + edges[:, 1], list(mst_key))
    # Long edges across empty country are rare in reality.
    keep = in_mst | (prox & (length < 3 * np.median(length)))
    return edges[keep]


def _seat_routes(
    city: City, rng: np.random.Generator, step: float
) -> tuple[list[LineString], list[str], list[str | None]]:
    seats = np.array([[s.x, s.y] for s in city.seats])
    lines: list[LineString] = []
    classes: list[str] = []
    names: list[str | None] = []
    n = len(seats)
    bounds = city.outline_m.bounds
    span = float(np.hypot(bounds[2] - bounds[0], bounds[3] - bounds[1]))

    def exit_point(a: FloatArray, direction: FloatArray) -> FloatArray:
        # Where a ray from a leaves the outline, plus 2 km: the road goes on to the next city.
        ray = LineString([a, a + direction * span])
        cut = ray.difference(city.outline_m)
        if cut.is_empty:
            return a + direction * 5000
        first = min(polygon_free_coords(cut), key=lambda c: float(np.hypot(*(c - a))))
        return first + direction * 2000

    used_numbers: set[int] = set()

    def number(lo: int, hi: int) -> int:
        while True:
            k = int(rng.integers(lo, hi))
            if k not in used_numbers:
                used_numbers.add(k)
                return k

    if n >= 2:
        # National roads: the minimum spanning tree of the seats.
        e = _delaunay_edges(seats) if n >= 3 else np.array([[0, 1]])
        length = np.hypot(*(seats[e[:, 0]] - seats[e[:, 1]]).T)
        w = coo_matrix((length, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
        mst = minimum_spanning_tree(w).tocoo()
        mst_set = {
            (min(a, b), max(a, b)) for a, b in zip(mst.row.tolist(), mst.col.tolist(), strict=True)
        }
        for a, b in sorted(mst_set):
            lines.append(_curvy(seats[a], seats[b], rng, 0.05, step))
            classes.append("national")
            names.append(f"G{number(201, 399)}")
        # Provincial roads: the shorter remaining Delaunay edges.
        med = float(np.median(length))
        for (a, b), ln in zip(e.tolist(), length.tolist(), strict=True):
            if (a, b) not in mst_set and ln < 1.5 * med and rng.random() < 0.6:
                lines.append(_curvy(seats[a], seats[b], rng, 0.06, step))
                classes.append("provincial")
                names.append(f"S{number(201, 399)}")
        # Radial expressways: city seat -> a far county seat -> out of the city.
        c0 = seats[0]
        far = sorted(range(1, n), key=lambda k: -float(np.hypot(*(seats[k] - c0))))
        chosen: list[float] = []
        for k in far:
            v = seats[k] - c0
            bearing = float(np.arctan2(v[1], v[0]))
            if all(
                abs((bearing - b + np.pi) % (2 * np.pi) - np.pi) > np.deg2rad(65) for b in chosen
            ):
                chosen.append(bearing)
                direction = v / np.hypot(*v)
                out = exit_point(seats[k], direction)
                line = _curvy(c0, seats[k], rng, 0.03, step)
                ext = _curvy(seats[k], out, rng, 0.03, step)
                lines.append(LineString(np.concatenate([line.coords, ext.coords[1:]])))
                classes.append("expressway")
                dest = city.district(city.seats[k].district_code).short_zh[0]
                names.append(f"{city.short_zh[0]}{dest}高速")
            if len(chosen) >= 4:
                break
        # A few provincial roads from outer county seats to the outline.
        for k in range(1, n):
            v = seats[k] - c0
            if rng.random() < 0.45 and np.hypot(*v) > 0:
                direction = v / np.hypot(*v)
                rot = rng.uniform(-0.5, 0.5)
                direction = np.array(
                    [
                        np.cos(rot) * direction[0] - np.sin(rot) * direction[1],
                        np.sin(rot) * direction[0] + np.cos(rot) * direction[1],
                    ]
                )
                lines.append(_curvy(seats[k], exit_point(seats[k], direction), rng, 0.05, step))
                classes.append("provincial")
                names.append(f"S{number(201, 399)}")
    return lines, classes, names


def polygon_free_coords(geom: BaseGeometry) -> list[FloatArray]:
    """Start points of the parts of a (multi)line."""
    parts = getattr(geom, "geoms", [geom])
    return [np.asarray(p.coords[0]) for p in parts if not p.is_empty]


def _village_lanes(
    villages: VillageSet, rng: np.random.Generator, spacing: float
) -> tuple[list[LineString], FloatArray, npt.NDArray[np.int64]]:
    lines: list[LineString] = []
    quads: list[FloatArray] = []
    owner: list[int] = []
    for v in range(len(villages.x)):
        k = int(villages.lanes[v])
        c = (k - 1) // 2
        s = spacing * rng.uniform(0.85, 1.2)
        ang = rng.uniform(0, np.pi / 2)
        g = (np.arange(k) - c) * s
        uu, vv = np.meshgrid(g, g, indexing="ij")
        uu = uu + rng.normal(0, 0.1 * s, uu.shape)
        vv = vv + rng.normal(0, 0.1 * s, vv.shape)
        uu[c, c] = vv[c, c] = 0.0
        X = villages.x[v] + np.cos(ang) * uu - np.sin(ang) * vv
        Y = villages.y[v] + np.sin(ang) * uu + np.cos(ang) * vv
        for i in range(k):
            for j in range(k - 1):
                lines.append(LineString([(X[i, j], Y[i, j]), (X[i, j + 1], Y[i, j + 1])]))
                lines.append(LineString([(X[j, i], Y[j, i]), (X[j + 1, i], Y[j + 1, i])]))
        for i in range(k - 1):
            for j in range(k - 1):
                quads.append(
                    np.array(
                        [
                            [X[i, j], Y[i, j]],
                            [X[i + 1, j], Y[i + 1, j]],
                            [X[i + 1, j + 1], Y[i + 1, j + 1]],
                            [X[i, j + 1], Y[i, j + 1]],
                        ]
                    )
                )
                owner.append(v)
    q = np.array(quads) if quads else np.zeros((0, 4, 2))
    return lines, q, np.array(owner, dtype=np.int64)


# --------------------------------------------------------------------------- noding


def _split_long(coords: FloatArray, max_len: float, target: float) -> list[FloatArray]:
    """Cut a polyline (k, 2) into near-equal pieces of about ``target`` metres."""
    seg = np.hypot(*np.diff(coords, axis=0).T)
    total = float(seg.sum())
    if total <= max_len:
        return [coords]
    parts = int(np.ceil(total / target))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    cuts = np.linspace(0.0, total, parts + 1)[1:-1]
    cx = np.interp(cuts, cum, coords[:, 0])
    cy = np.interp(cuts, cum, coords[:, 1])
    out: list[FloatArray] = []
    start_pt = coords[0]
    start_d = 0.0
    for d, x, y in zip(cuts, cx, cy, strict=True):
        inner = coords[(cum > start_d) & (cum < d)]
        out.append(np.vstack([start_pt, inner, [x, y]]))
        start_pt, start_d = np.array([x, y]), d
    inner = coords[cum > start_d][:-1]
    out.append(np.vstack([start_pt, inner, coords[-1]]))
    return out


def _clip_lines(lines: npt.NDArray[np.object_], area: BaseGeometry) -> npt.NDArray[np.object_]:
    """Lines cut to an area; only the ones crossing its edge pay for an overlay."""
    shapely.prepare(area)
    out = lines.copy()
    cross = ~shapely.contains(area, lines)
    out[cross] = shapely.intersection(lines[cross], area)
    return out


def _halve(coords: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Cut a polyline in two at half its length."""
    total = float(np.hypot(*np.diff(coords, axis=0).T).sum())
    a, b = _split_long(coords, 0.0, total / 2 + 1e-9 * max(total, 1.0))
    return a, b


def build_network(
    city: City,
    grids: list[StreetGrid],
    villages: VillageSet,
    rng: np.random.Generator,
    scale: float,
    name_en: dict[str, str],
) -> RoadNetwork:
    """Node all road pieces into one routable network.

    Parameters
    ----------
    city
        The city.
    grids
        Street grids from :func:`make_street_grids`.
    villages
        Villages and townships.
    rng
        Random generator.
    scale
        Density factor; segment length and lane spacing grow as ``1/sqrt(scale)``.
    name_en
        English names of street names (passed through).
    """
    f = 1.0 / np.sqrt(scale)
    seg_target = 500.0 * f
    step = 120.0
    geoms: list[LineString] = []
    classes: list[str] = []
    names: list[str | None] = []
    oneway: list[bool] = []
    for g in grids:
        geoms += g.lines
        classes += g.classes
        names += g.names
        oneway += g.oneway

    lanes, vquads, vowner = _village_lanes(villages, rng, min(110.0 * f, 300.0))
    geoms += lanes
    classes += ["village"] * len(lanes)
    names += [None] * len(lanes)
    oneway += [False] * len(lanes)

    # Rural and inter-seat roads, cut back where they enter a street grid.
    rural: list[LineString] = []
    rcls: list[str] = []
    rnames: list[str | None] = []
    s_lines, s_cls, s_names = _seat_routes(city, rng, step * 2)
    rural += s_lines
    rcls += s_cls
    rnames += s_names

    seat_xy = np.array([[s.x, s.y] for s in city.seats])
    vxy = np.column_stack([villages.x, villages.y])
    pts = np.vstack([seat_xy, vxy])
    ns = len(seat_xy)
    label = [s.name_zh for s in city.seats] + list(villages.name_zh)
    corridor = city.outline_m.buffer(300.0)
    shapely.prepare(corridor)
    if len(pts) >= 3:
        e = _delaunay_edges(pts)
        chords = shapely.linestrings(np.stack([pts[e[:, 0]], pts[e[:, 1]]], axis=1))
        allowed = shapely.contains(corridor, chords)
        for a, b in _proximity_graph(pts, allowed, e, "rng").tolist():
            rural.append(_curvy(pts[a], pts[b], rng, 0.05, step, cap=400.0))
            rcls.append("village")
            rnames.append(None)
        # County roads: township seats and county seats.
        tw = np.concatenate([np.arange(ns), ns + np.flatnonzero(villages.is_township_seat)])
        if len(tw) >= 3:
            e2 = _delaunay_edges(pts[tw])
            ch2 = shapely.linestrings(np.stack([pts[tw][e2[:, 0]], pts[tw][e2[:, 1]]], axis=1))
            ok2 = shapely.contains(corridor, ch2)
            for a, b in _proximity_graph(pts[tw], ok2, e2, "rng").tolist():
                pa, pb = tw[a], tw[b]
                rural.append(_curvy(pts[pa], pts[pb], rng, 0.05, step, cap=1500.0))
                rcls.append("county")
                rnames.append(f"{label[pa][0]}{label[pb][0]}线")

    urban = shapely.union_all([g.footprint for g in grids]) if grids else Polygon()
    cut_area = urban.buffer(-150.0) if not urban.is_empty else urban
    clip = corridor.difference(cut_area) if not cut_area.is_empty else corridor
    shapely.prepare(clip)
    clipped = _clip_lines(np.array(rural, dtype=object), clip)
    for geom, c, nm in zip(clipped, rcls, rnames, strict=True):
        for part in shapely.get_parts(shapely.line_merge(geom) if not geom.is_empty else geom):
            if isinstance(part, LineString) and part.length > 1.0:
                geoms.append(part)
                classes.append(c)
                names.append(nm)
                oneway.append(False)

    return _node(city, geoms, classes, names, oneway, seg_target, name_en, vquads, vowner)


def _node(
    city: City,
    geoms: list[LineString],
    classes: list[str],
    names: list[str | None],
    oneway: list[bool],
    seg_target: float,
    name_en: dict[str, str],
    vquads: FloatArray,
    vowner: npt.NDArray[np.int64],
) -> RoadNetwork:
    src = np.array(geoms, dtype=object)
    rank = np.array([CLASS_RANK[c] for c in classes])
    # Everything inside 500 m of the outline (roads reaching for the next city are cut there).
    src = _clip_lines(src, city.outline_m.buffer(500.0))
    src_ok = ~shapely.is_empty(src)
    pieces = shapely.get_parts(
        shapely.node(shapely.multilinestrings(shapely.get_parts(src[src_ok])))
    )
    pieces = pieces[shapely.length(pieces) > 0]
    # Which source line each piece came from: the most important one under its midpoint.
    mids = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    tree = shapely.STRtree(src)
    pi, si = tree.query(mids, predicate="dwithin", distance=0.05)
    order = np.lexsort((si, rank[si], pi))
    pi, si = pi[order], si[order]
    firsts = np.unique(pi, return_index=True)[1]
    best = np.full(len(pieces), -1)
    best[pi[firsts]] = si[firsts]
    ok = best >= 0
    pieces, best = pieces[ok], best[ok]
    # Orient each piece like its source line (one-way direction).
    first = shapely.points(shapely.get_coordinates(shapely.get_point(pieces, 0)))
    last = shapely.points(shapely.get_coordinates(shapely.get_point(pieces, -1)))
    a = shapely.line_locate_point(src[best], first)
    b = shapely.line_locate_point(src[best], last)
    rev = a > b
    pieces[rev] = shapely.reverse(pieces[rev])

    # Cut long pieces into ~seg_target segments.
    coords, cidx = shapely.get_coordinates(pieces, return_index=True)
    starts = np.searchsorted(cidx, np.arange(len(pieces)))
    ends = np.append(starts[1:], len(coords))
    out_lines: list[FloatArray] = []
    out_src: list[int] = []
    length = shapely.length(pieces)
    for k in range(len(pieces)):
        c = coords[starts[k] : ends[k]]
        if length[k] > 1.5 * seg_target:
            for part in _split_long(c, 1.5 * seg_target, seg_target):
                out_lines.append(part)
                out_src.append(int(best[k]))
        else:
            out_lines.append(c)
            out_src.append(int(best[k]))

    # Snap endpoints closer than a metre (noding leaves a few near-coincident crossings).
    ends_xy = np.array([[ln[0], ln[-1]] for ln in out_lines]).reshape(-1, 2)
    uniq, inv = np.unique(ends_xy, axis=0, return_inverse=True)
    inv = inv.ravel()
    pairs = cKDTree(uniq).query_pairs(1.0, output_type="ndarray")
    nu = len(uniq)
    if len(pairs):
        g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(nu, nu))
        _, lab = connected_components(g, directed=False)
        rep = np.full(lab.max() + 1, -1)
        for k in range(nu):  # lowest index represents its cluster
            if rep[lab[k]] < 0:
                rep[lab[k]] = k
        node_of = rep[lab][inv]
    else:
        node_of = inv
    s_node = node_of[0::2].copy()
    t_node = node_of[1::2].copy()
    src_idx = np.array(out_src)
    lines: list[FloatArray] = []
    for k, ln in enumerate(out_lines):
        ln = ln.copy()
        ln[0], ln[-1] = uniq[s_node[k]], uniq[t_node[k]]
        lines.append(ln)
    keep = np.array([s != t or len(ln) > 2 for s, t, ln in zip(s_node, t_node, lines, strict=True)])
    lens = np.array([float(np.hypot(*np.diff(ln, axis=0).T).sum()) for ln in lines])
    keep &= lens > 0.5
    lines = [ln for ln, kp in zip(lines, keep, strict=True) if kp]
    s_node, t_node, src_idx = s_node[keep], t_node[keep], src_idx[keep]

    # Loops and parallel edges: split at the middle so every edge has its own node pair.
    node_xy = [tuple(p) for p in uniq]
    for _ in range(3):
        key = np.minimum(s_node, t_node) * (len(node_xy) + 1) + np.maximum(s_node, t_node)
        _, first_idx = np.unique(key, return_index=True)
        dup = np.ones(len(key), bool)
        dup[first_idx] = False
        bad = np.flatnonzero((s_node == t_node) | dup)
        if len(bad) == 0:
            break
        extra_s, extra_t, extra_src = [], [], []
        for k in bad.tolist():
            a_part, b_part = _halve(lines[k])
            node_xy.append(tuple(a_part[-1]))
            mid_id = len(node_xy) - 1
            lines[k] = a_part
            lines.append(b_part)
            extra_s.append(mid_id)
            extra_t.append(int(t_node[k]))
            extra_src.append(int(src_idx[k]))
            t_node[k] = mid_id
        s_node = np.concatenate([s_node, extra_s]).astype(np.int64)
        t_node = np.concatenate([t_node, extra_t]).astype(np.int64)
        src_idx = np.concatenate([src_idx, extra_src]).astype(np.int64)

    # The largest connected component only.
    graph = nx.Graph()
    graph.add_edges_from(zip(s_node.tolist(), t_node.tolist(), strict=True))
    main = max(nx.connected_components(graph), key=len)
    keep = np.array([int(s) in main for s in s_node])
    lines = [ln for ln, kp in zip(lines, keep, strict=True) if kp]
    s_node, t_node, src_idx = s_node[keep], t_node[keep], src_idx[keep]

    # Renumber nodes in coordinate order, edges by (source, target): stable ids.
    used = np.unique(np.concatenate([s_node, t_node]))
    xy = np.array([node_xy[k] for k in used])
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    new_id = np.empty(len(node_xy), dtype=np.int64)
    new_id[used[order]] = np.arange(len(used))
    s_node, t_node = new_id[s_node], new_id[t_node]
    xy = xy[order]
    eorder = np.lexsort((t_node, s_node))
    geoms_out = shapely.linestrings(
        np.concatenate([lines[k] for k in eorder]),
        indices=np.repeat(np.arange(len(eorder)), [len(lines[k]) for k in eorder]),
    )
    src_idx = src_idx[eorder]
    return RoadNetwork(
        geoms=geoms_out,
        road_class=np.array(classes, dtype=object)[src_idx],
        name=np.array(names, dtype=object)[src_idx],
        oneway=np.array(oneway, dtype=bool)[src_idx],
        source=s_node[eorder],
        target=t_node[eorder],
        node_xy=xy,
        name_en=name_en,
        village_blocks=vquads,
        village_block_owner=vowner,
    )
