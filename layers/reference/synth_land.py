"""Cadastral parcels of the synthesized city (GB/T 21010 land use, GB/T 26424 parcel codes).

Parcels come from, in order of precedence: river water surfaces, mine and factory sites, the
blocks of the street grids (inset from the streets and cut into lots), village construction land
(the lane lattices), fields around villages and forest on high ground. A later parcel that would
touch an earlier one is dropped, so the registry is free of overlaps except for a handful of
deliberately seeded conflicts: encroachments of one lot into its neighbour and duplicate
registrations, returned separately so a conflict checker has something to find.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.spatial import cKDTree
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from layers.reference.codes import parcel_code
from layers.reference.synth_city import City, polygon_parts
from layers.reference.synth_names import NameBook
from layers.reference.synth_roads import RoadNetwork, StreetGrid, VillageSet

__all__ = ["LAND_USE", "make_parcels"]

FloatArray = npt.NDArray[np.float64]

#: GB/T 21010-2017 classes used here.
LAND_USE: Final = {
    "0101": "水田",
    "0102": "水浇地",
    "0103": "旱地",
    "0301": "乔木林地",
    "0305": "灌木林地",
    "0401": "天然牧草地",
    "0404": "其他草地",
    "0501": "零售商业用地",
    "0503": "餐饮用地",
    "0504": "旅馆用地",
    "0505": "商务金融用地",
    "0601": "工业用地",
    "0602": "采矿用地",
    "0604": "仓储用地",
    "0701": "城镇住宅用地",
    "0702": "农村宅基地",
    "0801": "机关团体用地",
    "0803": "教育用地",
    "0805": "医疗卫生用地",
    "0808": "体育用地",
    "0809": "公用设施用地",
    "0810": "公园与绿地",
    "1004": "城镇村道路用地",
    "1005": "交通服务场站用地",
    "1101": "河流水面",
}
# Urban land use by distance from the town centre (ring = distance / urban radius).
_URBAN_MIX: Final = (
    (
        0.35,
        {
            "0505": 15,
            "0501": 15,
            "0701": 38,
            "0801": 7,
            "0803": 6,
            "0805": 4,
            "0504": 3,
            "0503": 4,
            "0810": 4,
            "0809": 4,
        },
    ),
    (
        0.8,
        {
            "0701": 55,
            "0501": 8,
            "0803": 8,
            "0805": 3,
            "0601": 6,
            "0604": 4,
            "0810": 5,
            "0801": 4,
            "0808": 2,
            "0809": 3,
            "1005": 2,
        },
    ),
    (
        9e9,
        {"0701": 35, "0601": 25, "0604": 12, "1005": 5, "0803": 5, "0810": 5, "0809": 5, "0501": 8},
    ),
)
_WHOLE_MIX: Final = {"0810": 35, "0803": 25, "0601": 15, "0808": 10, "0805": 10, "1004": 5}
_PUBLIC: Final = {"0801", "0803", "0805", "0808", "0809", "0810", "1004", "1005"}
_DEV_SUFFIX: Final = {
    "07": "房地产开发有限公司",
    "05": "商贸有限公司",
    "06": "实业有限公司",
}


@dataclass
class _Batch:
    geoms: list[BaseGeometry] = field(default_factory=list)
    family: list[int] = field(default_factory=list)
    attrs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, geom: BaseGeometry, family: int, **attrs: Any) -> None:
        self.geoms.append(geom)
        self.family.append(family)
        self.attrs.append(attrs)


def _pick(mix: dict[str, int], rng: np.random.Generator) -> str:
    keys = list(mix)
    w = np.array([mix[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def _bilinear(corners: FloatArray, nu: int, nv: int) -> FloatArray:
    """Lattice (nv+1, nu+1, 2) over a quad (4, 2), corners counter-clockwise from (0, 0)."""
    u = np.linspace(0.0, 1.0, nu + 1)[None, :, None]
    v = np.linspace(0.0, 1.0, nv + 1)[:, None, None]
    p0, p1, p2, p3 = corners
    return (1 - u) * (1 - v) * p0 + u * (1 - v) * p1 + u * v * p2 + (1 - u) * v * p3


class _Registry:
    """Accepted parcels plus the spatial index used to refuse overlapping newcomers."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.geoms: list[BaseGeometry] = []
        self.family: list[int] = []
        self.attrs: list[dict[str, Any]] = []
        self.inside = city.outline_m.buffer(-2.0)
        shapely.prepare(self.inside)

    def accept(self, batch: _Batch) -> None:
        if not batch.geoms:
            return
        cands = np.array(batch.geoms, dtype=object)
        fam = np.array(batch.family)
        valid = shapely.is_valid(cands) & ~shapely.is_empty(cands)
        keep = valid & shapely.contains(self.inside, cands)
        if self.geoms:
            hit, _ = shapely.STRtree(self.geoms).query(cands, predicate="intersects")
            keep[hit] = False
        idx = np.flatnonzero(keep)
        sub = cands[idx]
        a, b = shapely.STRtree(sub).query(sub, predicate="intersects")
        m = (a < b) & (fam[idx[a]] != fam[idx[b]])
        a, b = a[m], b[m]
        order = np.lexsort((a, b))
        ok = np.ones(len(idx), bool)
        for i, j in zip(a[order], b[order], strict=True):
            if ok[i] and ok[j]:
                ok[j] = False
        for k in idx[ok]:
            self.geoms.append(batch.geoms[k])
            self.family.append(batch.family[k])
            self.attrs.append(batch.attrs[k])


def make_parcels(
    city: City,
    grids: list[StreetGrid],
    villages: VillageSet,
    net: RoadNetwork,
    enterprises: pd.DataFrame,
    rng: np.random.Generator,
    scale: float,
    names: NameBook,
) -> tuple[pd.DataFrame, list[tuple[int, int, str]]]:
    """Parcels (metric geometry in ``geom_m``) and the seeded overlapping pairs (row indices).

    Parameters
    ----------
    city, grids, villages, net, enterprises
        What the parcels are laid out around.
    rng
        Random generator.
    scale
        Density factor (fields and forests thin with it; blocks follow the grids).
    names
        Name generator (developer and company names).
    """
    reg = _Registry(city)
    fam = 0

    # Rivers: water surface parcels every other stretch, away from the towns.
    batch = _Batch()
    urban = shapely.union_all([g.footprint for g in grids]) if grids else Polygon()
    stretch = 1500.0
    for _name, _wgs, line in city.rivers:
        k = 0
        pos = rng.uniform(0, stretch)
        while pos + stretch < line.length:
            if k % 2 == 0:
                piece = substring(line, pos, pos + stretch)
                poly = piece.buffer(rng.uniform(20.0, 45.0), cap_style="flat")
                if not poly.intersects(urban):
                    fam += 1
                    batch.add(poly, fam, land_use="1101", owner="国有", feature="GY")
            pos += stretch
            k += 1
    reg.accept(batch)

    # Mines and factories on their own sites.
    batch = _Batch()
    mines = {"0610", "0810", "0916", "1011"}
    for e in enterprises.itertuples():
        area = float(np.clip(e.employees * 150.0, 5000.0, 600_000.0))
        aspect = rng.uniform(0.6, 1.6)
        w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
        rect = shapely.box(e.x - w / 2, e.y - h / 2, e.x + w / 2, e.y + h / 2)
        rect = affinity.rotate(rect, rng.uniform(-30, 30), origin="center")
        fam += 1
        lu = "0602" if e.industry_code in mines else "0601"
        batch.add(rect, fam, land_use=lu, owner=e.name_zh, feature="GB")
    reg.accept(batch)

    # Street-grid blocks, inset from the streets and cut into lots.
    batch = _Batch()
    lots: list[tuple[int, int, int]] = []  # (batch index of lot, family, kind 0)
    for g in grids:
        cx, cy = g.center
        for corners, ring, whole in zip(g.blocks, g.block_ring, g.block_whole, strict=True):
            c = corners.mean(axis=0)
            side = min(
                float(np.hypot(*(corners[1] - corners[0]))),
                float(np.hypot(*(corners[3] - corners[0]))),
            )
            if side < 40.0:
                continue
            inset = c + (corners - c) * (1.0 - 2.0 * 9.0 / side)
            ang = float(np.degrees(np.arctan2(c[1] - cy, c[0] - cx)) % 360.0)
            subzone = 1 + int(ang // 45.0) + 8 * min(int(ring * 2), 3)
            fam += 1
            if whole:
                lu = _pick(_WHOLE_MIX, rng)
                batch.add(
                    shapely.Polygon(inset),
                    fam,
                    land_use=lu,
                    feature="GB",
                    subzone=subzone,
                    grid=g.district_code,
                )
                continue
            target = (95.0 if ring < 0.45 else 140.0 if ring < 0.9 else 230.0) / np.sqrt(scale)
            if g.kind == "county":
                target *= 1.4
            su = float(np.hypot(*(inset[1] - inset[0])))
            sv = float(np.hypot(*(inset[3] - inset[0])))
            nu, nv = max(1, round(su / target)), max(1, round(sv / target))
            lat = _bilinear(inset, nu, nv)
            mix = next(m for r, m in _URBAN_MIX if ring < r)
            block_lu = _pick(mix, rng)
            for i in range(nv):
                for j in range(nu):
                    q = [lat[i, j], lat[i, j + 1], lat[i + 1, j + 1], lat[i + 1, j]]
                    lu = block_lu if rng.random() < 0.7 else _pick(mix, rng)
                    lots.append((len(batch.geoms), fam, nu * nv))
                    batch.add(
                        shapely.Polygon(q),
                        fam,
                        land_use=lu,
                        feature="GB",
                        subzone=subzone,
                        grid=g.district_code,
                    )
    reg.accept(batch)

    # Village construction land: the lane lattice of each village, inset from the lanes.
    batch = _Batch()
    vb = net.village_blocks
    owner = net.village_block_owner
    for v in range(len(villages.x)):
        quads = vb[owner == v]
        if len(quads) == 0:
            continue
        polys = shapely.polygons(np.concatenate([quads, quads[:, :1]], axis=1))
        merged = shapely.union_all(shapely.make_valid(polys)).buffer(-6.0)
        part = max(polygon_parts(merged), key=lambda p: p.area, default=None)
        if part is None:
            continue
        fam += 1
        batch.add(part, fam, land_use="0702", feature="JC", village=v)
    reg.accept(batch)

    # Fields around the villages; forest and grass where the ground is high.
    batch = _Batch()
    z_v = city.elevation(villages.x, villages.y)
    z_hi = float(np.percentile(z_v, 75)) if len(z_v) else 0.0
    river_union = shapely.union_all([r[2] for r in city.rivers]) if city.rivers else None
    for v in range(len(villages.x)):
        for _ in range(int(rng.choice([0, 1, 1, 2]))):
            ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(350.0, 900.0)
            px, py = villages.x[v] + dist * np.cos(ang), villages.y[v] + dist * np.sin(ang)
            w, h = rng.uniform(150.0, 450.0), rng.uniform(200.0, 600.0)
            rect = affinity.rotate(
                shapely.box(px - w / 2, py - h / 2, px + w / 2, py + h / 2),
                rng.uniform(0, 90),
                origin="center",
            )
            wet = river_union is not None and river_union.distance(shapely.Point(px, py)) < 2000.0
            if z_v[v] > z_hi and rng.random() < 0.5:
                lu = str(rng.choice(["0301", "0305", "0404"]))
            elif wet:
                lu = str(rng.choice(["0102", "0103", "0101"], p=[0.6, 0.3, 0.1]))
            else:
                lu = str(rng.choice(["0103", "0102"], p=[0.8, 0.2]))
            fam += 1
            batch.add(rect, fam, land_use=lu, feature="JA", village=v)
    n_forest = max(1, round(120 * scale))
    x0, y0, x1, y1 = city.outline_m.bounds
    tries = 0
    placed = 0
    while placed < n_forest and tries < 50 * n_forest:
        tries += 1
        px, py = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if (
            not city.inside(px, py, 2000.0)[0]
            or city.elevation(np.array([px]), np.array([py]))[0] < z_hi
        ):
            continue
        k = 12
        th = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(500.0, 1500.0) * rng.uniform(0.7, 1.3, k)
        poly = shapely.Polygon(np.column_stack([px + r * np.cos(th), py + r * np.sin(th)]))
        if not poly.is_valid:
            continue
        fam += 1
        placed += 1
        state = rng.random() < 0.4
        batch.add(
            poly,
            fam,
            land_use=str(rng.choice(["0301", "0301", "0305", "0401"])),
            feature="GE" if state else "JA",
            state_forest=state,
        )
    reg.accept(batch)

    # Attributes and codes.
    geoms = reg.geoms
    reps = shapely.point_on_surface(np.array(geoms, dtype=object))
    rx, ry = shapely.get_x(reps), shapely.get_y(reps)
    dcodes = city.district_codes(rx, ry)
    v_codes = np.array(villages.district_code, dtype=object)
    trees = {
        d.code: (
            np.flatnonzero(v_codes == d.code),
            cKDTree(
                np.column_stack([villages.x[v_codes == d.code], villages.y[v_codes == d.code]])
            ),
        )
        for d in city.districts
        if (v_codes == d.code).any()
    }
    # Subzone of a village: its rank inside its township.
    v_sub = np.zeros(len(villages.x), dtype=np.int64)
    for t in range(len(villages.townships)):
        members = np.flatnonzero(villages.township == t)
        v_sub[members] = np.arange(1, len(members) + 1)
    # A few dozen developers and firms hold most urban lots.
    developers = {
        key: [f"{city.short_zh}{names.brand('company')}{suffix}" for _ in range(30)]
        for key, suffix in _DEV_SUFFIX.items()
    }
    seq: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for k, (geom, attrs) in enumerate(zip(geoms, reg.attrs, strict=True)):
        code = str(dcodes[k])
        d = city.district(code)
        vill: int | None = attrs.get("village")
        if vill is None or villages.district_code[vill] != code:
            vill = None
            if code in trees:
                members, tree = trees[code]
                vill = int(members[int(tree.query([rx[k], ry[k]])[1])])
        if "subzone" in attrs:
            township = 1 if d.kind == "district" else 100
            subzone = int(attrs["subzone"])
        elif vill is not None:
            township = int(villages.townships[int(villages.township[vill])]["code"])
            subzone = int(v_sub[vill])
        else:
            township, subzone = 1 if d.kind == "district" else 100, 999
        feature = attrs["feature"]
        prefix = f"{code}{township:03d}{subzone:03d}{feature}"
        seq[prefix] = seq.get(prefix, 0) + 1
        lu = attrs["land_use"]
        own = attrs.get("owner")
        if own is None:
            if feature in ("JC", "JA") and vill is not None:
                own = f"{villages.name_zh[vill]}集体经济组织"
            elif feature == "GE":
                own = f"{d.short_zh}国有林场"
            elif lu in _PUBLIC or lu[:2] not in _DEV_SUFFIX:
                own = "国有"
            else:
                pool = developers[lu[:2]]
                own = pool[int(rng.integers(len(pool)))]
        rows.append(
            {
                "parcel_code": parcel_code(code, township, subzone, feature, seq[prefix]),
                "land_use": lu,
                "land_use_zh": LAND_USE[lu],
                "owner": own,
                "district_code": code,
                "geom_m": geom,
                "family": reg.family[k],
            }
        )
    frame = pd.DataFrame(rows)
    frame, pairs = _seed_conflicts(frame, rng, seq)
    return frame.drop(columns=["family"]), pairs


def _seed_conflicts(
    frame: pd.DataFrame, rng: np.random.Generator, seq: dict[str, int]
) -> tuple[pd.DataFrame, list[tuple[int, int, str]]]:
    """Three encroachments into a neighbouring lot and two duplicate registrations."""
    pairs: list[tuple[int, int, str]] = []
    geoms = frame["geom_m"].tolist()
    fams = frame["family"].to_numpy()
    # Encroachment: lot A grows into the next lot N of its block (a trapezoid inside N).
    counts = pd.Series(fams).value_counts()
    multi = counts[counts >= 2].index.to_numpy()
    multi = np.sort(multi)
    for f in rng.permutation(multi).tolist():
        if len(pairs) >= 3:
            break
        members = np.flatnonzero(fams == f)
        a, n = int(members[0]), int(members[1])
        shared = geoms[a].intersection(geoms[n])
        if shared.geom_type != "LineString" or shared.length < 20.0:
            continue
        p1, p2 = np.asarray(shared.coords[0]), np.asarray(shared.coords[-1])
        c = np.asarray(geoms[n].centroid.coords[0])
        p1b, p2b = p1 + 0.3 * (c - p1), p2 + 0.3 * (c - p2)
        strip = shapely.Polygon([p1, p2, p2b, p1b])
        grown = geoms[a].union(strip)
        if grown.geom_type != "Polygon" or not grown.is_valid:
            continue
        geoms[a] = grown
        pairs.append((a, n, "宗地越界占用相邻宗地 (seeded encroachment)"))
    # Duplicate registration: a second, smaller parcel inside an existing one.
    field_rows = np.flatnonzero(frame["land_use"].isin(["0103", "0102"]).to_numpy())
    extra: list[dict[str, Any]] = []
    for a in rng.permutation(field_rows).tolist()[:2]:
        src = frame.iloc[a]
        inner = affinity.scale(geoms[a], 0.6, 0.6, origin="centroid")
        code = str(src["parcel_code"])
        prefix = code[:12] + "JB"
        seq[prefix] = seq.get(prefix, 0) + 1
        extra.append(
            {
                "parcel_code": prefix + f"{seq[prefix]:05d}",
                "land_use": "0601",
                "land_use_zh": LAND_USE["0601"],
                "owner": f"{src['owner'][:-6]}村办企业"
                if str(src["owner"]).endswith("集体经济组织")
                else "未知",
                "district_code": src["district_code"],
                "geom_m": inner,
                "family": -1,
            }
        )
        pairs.append((a, len(frame) + len(extra) - 1, "同一地块重复登记 (seeded duplicate)"))
    frame = frame.assign(geom_m=geoms)
    if extra:
        frame = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)
    return frame, pairs
