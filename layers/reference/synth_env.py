"""Enterprises, mining rights and pollution sources of the synthesized city.

The industrial mix is that of a North-China coal city: coal mines (one company per mining
right), coking, iron and steel, thermal power and cement dominate, with chemicals, fertilizer,
pharmaceuticals, food and machinery besides. Coal-bearing ground is the western and central part
of the city (relative to the city seat); mines stay away from towns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from layers.reference.codes import CREDIT_CHARSET, credit_code, licence_number
from layers.reference.synth_city import City, polygon_parts
from layers.reference.synth_names import NameBook
from layers.reference.synth_roads import RoadNetwork, StreetGrid

__all__ = [
    "INDUSTRIES",
    "MINERAL_INDUSTRY",
    "Industry",
    "make_enterprises",
    "make_mining_rights",
    "make_sources",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Industry:
    """A GB/T 4754-2017 class with how often it occurs and how big its firms are."""

    code: str
    name_zh: str
    suffixes: tuple[str, ...]
    weight: float
    employees: tuple[float, float]  # lognormal median, sigma
    where: str  # "park" | "road" | "town" | "coal"


# fmt: off
_INDUSTRY_ROWS: Final = (
    # code, GB/T 4754 name, name suffixes (…有限公司), weight, employees median, sigma, where
    ("0610", "烟煤和无烟煤开采洗选", "煤业|洗煤|煤炭洗选", 0.10, 300, 0.8, "coal"),
    ("2521", "炼焦", "焦化|煤焦化|焦化集团", 0.08, 600, 0.7, "park"),
    ("3110", "炼铁", "铸造|冶炼|钢铁", 0.04, 800, 0.8, "park"),
    ("3120", "炼钢", "钢铁|特钢|钢铁集团", 0.03, 1500, 0.8, "park"),
    ("3130", "钢压延加工", "钢材|轧钢", 0.03, 200, 0.7, "park"),
    ("3140", "铁合金冶炼", "铁合金", 0.015, 150, 0.6, "park"),
    ("4411", "火力发电", "发电|电厂", 0.015, 400, 0.5, "park"),
    ("4412", "热电联产", "热电", 0.015, 300, 0.5, "town"),
    ("4430", "热力生产和供应", "热力|供热", 0.015, 120, 0.5, "town"),
    ("3011", "水泥制造", "水泥|建材", 0.035, 250, 0.6, "road"),
    ("3021", "水泥制品制造", "水泥制品|混凝土", 0.04, 60, 0.6, "road"),
    ("3031", "粘土砖瓦及建筑砌块制造", "新型建材|砖业", 0.04, 40, 0.6, "road"),
    ("2614", "有机化学原料制造", "化工|化学", 0.04, 300, 0.8, "park"),
    ("2621", "氮肥制造", "化肥|化工", 0.015, 500, 0.6, "park"),
    ("2710", "化学药品原料药制造", "制药|药业", 0.02, 300, 0.7, "park"),
    ("2720", "化学药品制剂制造", "制药|药业", 0.015, 200, 0.7, "town"),
    ("1313", "玉米加工", "食品|粮油|农产品", 0.06, 60, 0.7, "road"),
    ("1371", "蔬菜加工", "食品|农业开发", 0.04, 50, 0.7, "road"),
    ("1329", "其他饲料加工", "饲料", 0.03, 60, 0.6, "road"),
    ("1512", "白酒制造", "酒业|酿酒", 0.02, 80, 0.8, "town"),
    ("3511", "矿山机械制造", "矿山机械|煤机装备", 0.05, 200, 0.8, "park"),
    ("3670", "汽车零部件及配件制造", "汽车部件|机械制造", 0.04, 150, 0.8, "park"),
    ("3976", "光电子器件制造", "光电科技|半导体", 0.02, 250, 0.8, "park"),
    ("3360", "金属表面处理及热处理加工", "表面处理|热处理", 0.02, 40, 0.6, "park"),
    ("2929", "塑料零件及其他塑料制品制造", "塑业|塑料制品", 0.03, 50, 0.6, "town"),
    ("4620", "污水处理及其再生利用", "水务|污水处理", 0.015, 40, 0.5, "town"),
    ("0810", "铁矿采选", "矿业", 0.01, 150, 0.6, "road"),
    ("1011", "石灰石、石膏开采", "石料|矿业", 0.02, 40, 0.6, "road"),
    ("0916", "铝矿采选", "铝业|矿业", 0.005, 200, 0.6, "road"),
    ("3216", "铝冶炼", "铝业", 0.005, 600, 0.6, "park"),
)
# fmt: on
#: GB/T 4754-2017 four-digit classes. Coal mining (0610) firms are also created one per mining
#: right; the weight here is for coal washing and other 0610 firms.
INDUSTRIES: Final = tuple(
    Industry(code, zh, tuple(f"{s}有限公司" for s in sfx.split("|")), w, (med, sig), where)
    for code, zh, sfx, w, med, sig, where in _INDUSTRY_ROWS
)
_BY_CODE: Final = {i.code: i for i in INDUSTRIES}
MINERAL_INDUSTRY: Final = {"煤": "0610", "铁矿": "0810", "铝土矿": "0916", "石灰岩": "1011"}
_MINERAL_GROUP: Final = {"煤": 11, "铁矿": 21, "铝土矿": 31, "石灰岩": 41}


def _coal_weight(city: City, x: FloatArray, y: FloatArray) -> FloatArray:
    """How coal-bearing the ground is: high west of a line a little east of the city seat."""
    x0, _, x1, _ = city.outline_m.bounds
    width = x1 - x0
    edge = city.city_seat.x + 0.12 * width
    return np.asarray(1.0 / (1.0 + np.exp(-(edge - x) / (0.08 * width))))


def _org_body(rng: np.random.Generator) -> str:
    if rng.random() < 0.6:  # newer registrations: MA + six characters
        return "MA" + "".join(CREDIT_CHARSET[int(k)] for k in rng.integers(0, 31, 6))
    return "".join(str(int(k)) for k in rng.integers(0, 10, 8))


class _CreditCodes:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def new(self, admin: str) -> str:
        while True:
            code = credit_code(admin, _org_body(self.rng))
            if code not in self.used:
                self.used.add(code)
                return code


def _company_name(
    city: City, district_short: str, brand: str, suffix: str, rng: np.random.Generator
) -> str:
    r = rng.random()
    if r < 0.35:
        prefix = city.name_zh
    elif r < 0.55:
        prefix = city.province_short_zh
    elif r < 0.85:
        prefix = district_short if len(district_short) > 1 else district_short + "县"
    else:
        prefix = ""
    return f"{prefix}{brand}{suffix}"


# --------------------------------------------------------------------------- mining rights


def _rect_blob(cx: float, cy: float, area: float, rng: np.random.Generator) -> BaseGeometry:
    """A rectilinear block of about ``area`` m²: one to three axis-aligned rectangles."""
    parts = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    shares = rng.dirichlet(np.full(parts, 3.0))
    rects: list[Polygon] = []
    ox, oy = cx, cy
    for k, sh in enumerate(shares):
        a = area * sh
        aspect = rng.uniform(0.5, 2.0)
        w, h = np.sqrt(a * aspect), np.sqrt(a / aspect)
        if k > 0:
            # Attach to the previous rectangle along one side, overlapping a little.
            pb = rects[-1].bounds
            side = int(rng.integers(4))
            if side == 0:
                ox, oy = pb[2] + w / 2 - 0.1 * w, rng.uniform(pb[1], pb[3])
            elif side == 1:
                ox, oy = pb[0] - w / 2 + 0.1 * w, rng.uniform(pb[1], pb[3])
            elif side == 2:
                ox, oy = rng.uniform(pb[0], pb[2]), pb[3] + h / 2 - 0.1 * h
            else:
                ox, oy = rng.uniform(pb[0], pb[2]), pb[1] - h / 2 + 0.1 * h
        rects.append(box(ox - w / 2, oy - h / 2, ox + w / 2, oy + h / 2))
    return shapely.union_all(rects)


def _largest(geom: BaseGeometry) -> Polygon | None:
    parts = polygon_parts(geom)
    if not parts:
        return None
    return max(parts, key=lambda p: p.area)


def make_mining_rights(
    city: City,
    grids: list[StreetGrid],
    rng: np.random.Generator,
    scale: float,
    names: NameBook,
) -> tuple[pd.DataFrame, list[tuple[int, int, str]]]:
    """Mining and exploration rights (metric polygons) and the seeded overlapping pairs.

    Returns a frame (``license_no``, ``right_type``, ``mineral``, ``holder``, ``permit_from``,
    ``permit_to``, ``depth_top_m``, ``depth_bottom_m``, ``district_code``, ``geom_m``) and
    ``(index_a, index_b, note)`` for each deliberately overlapping pair (frame row indices).
    """
    n = max(4, round(150 * scale))
    urban = shapely.union_all([g.footprint for g in grids]).buffer(2000.0)
    shapely.prepare(urban)
    taken: BaseGeometry = Polygon()
    rows: list[dict[str, Any]] = []
    x0, y0, x1, y1 = city.outline_m.bounds
    seq = 0
    attempts = 0
    while len(rows) < n and attempts < 200 * n:
        attempts += 1
        mineral = str(rng.choice(["煤", "铁矿", "铝土矿", "石灰岩"], p=[0.76, 0.08, 0.06, 0.10]))
        px, py = rng.uniform(x0, x1), rng.uniform(y0, y1)
        w = _coal_weight(city, np.array([px]), np.array([py]))[0]
        if rng.random() > (w if mineral == "煤" else 1 - 0.7 * w):
            continue
        code = str(city.district_codes(px, py)[0])
        d = city.district(code)
        exploration = rng.random() < 0.2
        lo, hi = (10.0, 60.0) if exploration else (2.0, 40.0)
        if mineral != "煤":
            lo, hi = 2.0, 12.0
        area = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * 1e6
        blob = _rect_blob(px, py, area, rng)
        blob = _largest(blob.intersection(d.geom_m.buffer(-100.0)))
        if blob is None or blob.area < 2e6 or blob.intersects(urban):
            continue
        if blob.buffer(50.0).intersects(taken):
            continue
        taken = taken.union(blob)
        seq += 1
        year = int(rng.integers(2004, 2022))
        month = int(rng.integers(1, 13))
        start = dt.date(year, month, int(rng.integers(1, 29)))
        years = int(rng.integers(3, 6)) if exploration else int(rng.integers(10, 31))
        brand = names.brand("company")
        suffix = {
            "煤": "煤业有限公司",
            "铁矿": "矿业有限公司",
            "铝土矿": "铝业有限公司",
            "石灰岩": "石料有限公司",
        }[mineral]
        top = float(rng.integers(2, 30) * 10) if mineral == "煤" else 0.0
        bottom = (
            top + float(rng.integers(20, 90) * 10)
            if mineral == "煤"
            else float(rng.integers(5, 30) * 10)
        )
        rows.append(
            {
                "license_no": licence_number(
                    "T" if exploration else "C",
                    code,
                    year,
                    month,
                    _MINERAL_GROUP[mineral],
                    int(rng.integers(1, 10**5)) * 1000 + seq,
                ),
                "right_type": "exploration" if exploration else "mining",
                "mineral": mineral,
                "holder": _company_name(city, d.short_zh, brand, suffix, rng),
                "permit_from": start,
                "permit_to": dt.date(year + years, month, start.day),
                "depth_top_m": top,
                "depth_bottom_m": bottom,
                "district_code": code,
                "geom_m": blob,
            }
        )
    # Seeded conflicts: an exploration right laid partly over an existing right.
    pairs: list[tuple[int, int, str]] = []
    n_seed = min(3, len(rows) - 1) if len(rows) >= 2 else 0
    for a in rng.permutation(len(rows)).tolist():
        if len(pairs) >= n_seed:
            break
        base = rows[a]["geom_m"]
        bx0, by0, bx1, by1 = base.bounds
        w, h = (bx1 - bx0), (by1 - by0)
        sx, sy = rng.choice([-1, 1], 2) * rng.uniform(0.35, 0.6, 2) * np.array([w, h])
        cand = affinity.translate(base.envelope, sx, sy)
        others = [r["geom_m"] for k, r in enumerate(rows) if k != a]
        if others:
            cand = cand.difference(shapely.union_all(others).buffer(50.0))
        code = str(city.district_codes(*base.representative_point().coords[0])[0])
        cand = _largest(cand.intersection(city.district(code).geom_m.buffer(-100.0)))
        if cand is None or not 2e6 <= cand.area <= 60e6 or cand.intersection(base).area < 0.1e6:
            continue
        if cand.intersects(urban):
            continue
        seq += 1
        src = rows[a]
        year = int(rng.integers(2015, 2023))
        start = dt.date(year, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
        d = city.district(code)
        rows.append(
            {
                "license_no": licence_number(
                    "T",
                    code,
                    year,
                    start.month,
                    _MINERAL_GROUP[src["mineral"]],
                    int(rng.integers(1, 10**5)) * 1000 + seq,
                ),
                "right_type": "exploration",
                "mineral": src["mineral"],
                "holder": _company_name(
                    city, d.short_zh, names.brand("company"), "矿业勘查有限公司", rng
                ),
                "permit_from": start,
                "permit_to": dt.date(year + 5, start.month, start.day),
                "depth_top_m": src["depth_top_m"],
                "depth_bottom_m": src["depth_bottom_m"],
                "district_code": code,
                "geom_m": cand,
            }
        )
        pairs.append((a, len(rows) - 1, "探矿权与已设矿业权范围重叠 (seeded)"))
    return pd.DataFrame(rows), pairs


# --------------------------------------------------------------------------- enterprises


def _parks(
    city: City, grids: list[StreetGrid], rng: np.random.Generator
) -> list[tuple[str, float, float, str]]:
    """Industrial parks: one or two per unit, a few km out of the seat town."""
    out: list[tuple[str, float, float, str]] = []
    urban = shapely.union_all([g.footprint for g in grids]).buffer(800.0)
    shapely.prepare(urban)
    for d in city.districts:
        seat = city.seat_of(d.code)
        sx, sy = (seat.x, seat.y) if seat else d.geom_m.representative_point().coords[0]
        inner = d.geom_m.buffer(-1500.0)
        if inner.is_empty:
            inner = d.geom_m
        shapely.prepare(inner)
        k = 2 if d.population > 250_000 else 1
        names_ = ["经济技术开发区", "工业园区"]
        for t in range(k):
            for _ in range(200):
                ang, r = rng.uniform(0, 2 * np.pi), rng.uniform(3000.0, 8000.0)
                px, py = sx + r * np.cos(ang), sy + r * np.sin(ang)
                if inner.contains(shapely.Point(px, py)) and not urban.buffer(800).contains(
                    shapely.Point(px, py)
                ):
                    out.append((d.code, px, py, f"{d.short_zh}{names_[t]}"))
                    break
    return out


def make_enterprises(
    city: City,
    grids: list[StreetGrid],
    net: RoadNetwork,
    rights: pd.DataFrame,
    rng: np.random.Generator,
    scale: float,
    names: NameBook,
) -> pd.DataFrame:
    """About ``2000 * scale`` enterprises: mines at their rights, the rest in parks, along main
    roads and in towns. Returns metric ``x``, ``y`` and the attribute columns."""
    total = max(20, round(2000 * scale))
    codes = _CreditCodes(rng)
    rows: list[dict[str, Any]] = []

    def add(code: str, x: float, y: float, ind: Industry, name: str | None = None) -> None:
        d = city.district(code)
        if name is None:
            name = _company_name(
                city, d.short_zh, names.brand("company"), str(rng.choice(ind.suffixes)), rng
            )
        med, sig = ind.employees
        rows.append(
            {
                "credit_code": codes.new(code),
                "name_zh": name,
                "industry_code": ind.code,
                "industry_zh": ind.name_zh,
                "district_code": code,
                "employees": int(max(5, round(med * rng.lognormal(0, sig)))),
                "x": float(x),
                "y": float(y),
            }
        )

    # Mines: the holder of every mining right works it from a pit-head inside the block.
    for r in rights.itertuples():
        if r.right_type != "mining":
            continue
        p = r.geom_m.representative_point()
        add(
            str(r.district_code),
            p.x,
            p.y,
            _BY_CODE[MINERAL_INDUSTRY[str(r.mineral)]],
            str(r.holder),
        )

    parks = _parks(city, grids, rng)
    main = np.isin(net.road_class, ["expressway", "national", "provincial"])
    main_idx = np.flatnonzero(main)
    main_len = shapely.length(net.geoms[main_idx])
    towns = [(g.district_code, g.center, g.radius) for g in grids]
    weights = np.array([i.weight for i in INDUSTRIES])
    weights = weights / weights.sum()
    town_w = np.array([city.district(code).population for code, _, _ in towns], float)
    town_w = town_w / town_w.sum() if len(towns) else town_w
    guard = 0
    while len(rows) < total and guard < 50 * total:
        guard += 1
        ind = INDUSTRIES[int(rng.choice(len(INDUSTRIES), p=weights))]
        where = ind.where
        if where == "coal":
            where = "road"
        if where == "park" and parks:
            _, px, py, _ = parks[int(rng.integers(len(parks)))]
            x, y = px + rng.normal(0, 700.0), py + rng.normal(0, 700.0)
        elif where == "road" and len(main_idx):
            e = int(rng.choice(main_idx, p=main_len / main_len.sum()))
            pt = shapely.line_interpolate_point(net.geoms[e], rng.random(), normalized=True)
            ang = rng.uniform(0, 2 * np.pi)
            off = rng.uniform(150.0, 1500.0)
            x, y = pt.x + off * np.cos(ang), pt.y + off * np.sin(ang)
            if (
                ind.code == "0610"
                and rng.random() > _coal_weight(city, np.array([x]), np.array([y]))[0]
            ):
                continue
        else:
            k = int(rng.choice(len(towns), p=town_w))
            _, (cx, cy), rad = towns[k]
            ang, r = rng.uniform(0, 2 * np.pi), rad * rng.uniform(0.7, 1.3)
            x, y = cx + r * np.cos(ang), cy + r * np.sin(ang)
        if not city.inside(x, y, 200.0)[0]:
            continue
        add(str(city.district_codes(x, y)[0]), x, y, ind)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- pollution sources

_ULTRA_LOW: Final = {"so2_mgm3": 35.0, "nox_mgm3": 50.0, "dust_mgm3": 10.0}
#: (stack names, height range m, limits) per industry; outfalls with their water limits.
_STACKS: Final[dict[str, tuple[tuple[str, ...], tuple[float, float], dict[str, float]]]] = {
    "4411": (("{n}#机组烟囱",), (150.0, 240.0), _ULTRA_LOW),
    "4412": (("{n}#锅炉烟囱",), (80.0, 150.0), _ULTRA_LOW),
    "4430": (
        ("{n}#供热锅炉烟囱",),
        (45.0, 80.0),
        {"so2_mgm3": 35.0, "nox_mgm3": 50.0, "dust_mgm3": 5.0},
    ),
    "2521": (
        ("{n}#焦炉烟囱", "{n}#装煤地面站排气筒", "{n}#推焦地面站排气筒", "干熄焦排气筒"),
        (45.0, 125.0),
        {"so2_mgm3": 30.0, "nox_mgm3": 150.0, "dust_mgm3": 10.0},
    ),
    "3110": (
        ("{n}#高炉出铁场排气筒", "{n}#烧结机头烟囱", "{n}#热风炉烟囱"),
        (50.0, 120.0),
        _ULTRA_LOW,
    ),
    "3120": (("{n}#转炉二次除尘排气筒", "{n}#电炉除尘排气筒"), (35.0, 80.0), _ULTRA_LOW),
    "3140": (
        ("{n}#矿热炉排气筒",),
        (30.0, 60.0),
        {"so2_mgm3": 50.0, "nox_mgm3": 100.0, "dust_mgm3": 10.0},
    ),
    "3011": (
        ("{n}#窑尾烟囱", "{n}#窑头排气筒"),
        (40.0, 110.0),
        {"so2_mgm3": 35.0, "nox_mgm3": 100.0, "dust_mgm3": 10.0},
    ),
    "2614": (
        ("{n}#工艺废气排气筒", "{n}#锅炉烟囱"),
        (30.0, 80.0),
        {"so2_mgm3": 50.0, "nox_mgm3": 100.0, "dust_mgm3": 10.0},
    ),
    "2621": (("{n}#造气炉烟囱", "{n}#锅炉烟囱"), (40.0, 100.0), _ULTRA_LOW),
    "2710": (
        ("{n}#工艺废气排气筒",),
        (30.0, 45.0),
        {"so2_mgm3": 50.0, "nox_mgm3": 150.0, "dust_mgm3": 20.0},
    ),
    "3216": (
        ("{n}#电解烟气排气筒",),
        (40.0, 90.0),
        {"so2_mgm3": 35.0, "nox_mgm3": 50.0, "dust_mgm3": 10.0},
    ),
    "0610": (
        ("{n}#锅炉房烟囱",),
        (30.0, 45.0),
        {"so2_mgm3": 35.0, "nox_mgm3": 50.0, "dust_mgm3": 5.0},
    ),
}
_OUTFALLS: Final[dict[str, tuple[str, dict[str, float]]]] = {
    "0610": ("矿井水排放口", {"cod_mgl": 50.0, "nh3n_mgl": 5.0}),
    "2521": ("废水总排口", {"cod_mgl": 80.0, "nh3n_mgl": 10.0}),
    "2614": ("废水总排口", {"cod_mgl": 60.0, "nh3n_mgl": 8.0}),
    "2621": ("废水总排口", {"cod_mgl": 80.0, "nh3n_mgl": 25.0}),
    "2710": ("废水总排口", {"cod_mgl": 120.0, "nh3n_mgl": 25.0}),
    "3120": ("废水总排口", {"cod_mgl": 50.0, "nh3n_mgl": 5.0}),
    "1313": ("废水总排口", {"cod_mgl": 100.0, "nh3n_mgl": 15.0}),
    "4620": ("污水处理厂出水口", {"cod_mgl": 50.0, "nh3n_mgl": 5.0}),
}
_POLLUTER_ORDER: Final = (
    "4411",
    "4412",
    "2521",
    "3110",
    "3120",
    "3011",
    "2621",
    "2614",
    "2710",
    "3216",
    "3140",
    "4430",
    "4620",
    "0610",
    "1313",
)


def _near(x0: float, y0: float, rng: np.random.Generator) -> tuple[float, float]:
    """A point 30–200 m from (x0, y0): a stack or outfall on the plant's site."""
    ang, r = rng.uniform(0, 2 * np.pi), rng.uniform(30.0, 200.0)
    return x0 + r * np.cos(ang), y0 + r * np.sin(ang)


def make_sources(enterprises: pd.DataFrame, rng: np.random.Generator, scale: float) -> pd.DataFrame:
    """Stacks and outfalls of the key polluters (about ``400 * scale``), near their plants.

    Returns ``enterprise_index``, ``kind``, ``name_zh``, ``stack_height_m``, ``limits``,
    ``x``, ``y``.
    """
    target = max(5, round(400 * scale))
    rank = {c: k for k, c in enumerate(_POLLUTER_ORDER)}
    cand = [
        (rank[str(code)], float(rng.random()), k)
        for k, code in enumerate(enterprises["industry_code"].tolist())
        if str(code) in rank
    ]
    cand.sort()
    rows: list[dict[str, Any]] = []
    for _, _, k in cand:
        if len(rows) >= target:
            break
        ent = enterprises.iloc[k]
        code = str(ent["industry_code"])
        x0, y0 = float(ent["x"]), float(ent["y"])

        if code in _STACKS:
            templates, (lo, hi), limits = _STACKS[code]
            n_stacks = int(rng.integers(1, min(4, len(templates) + 1) + 1)) if code != "0610" else 1
            counters: dict[str, int] = {}
            for t in range(n_stacks):
                tpl = templates[t % len(templates)]
                counters[tpl] = counters.get(tpl, 0) + 1
                x, y = _near(x0, y0, rng)
                rows.append(
                    {
                        "enterprise_index": k,
                        "kind": "stack",
                        "name_zh": tpl.format(n=counters[tpl]),
                        "stack_height_m": float(round(rng.uniform(lo, hi) / 5) * 5),
                        "limits": dict(limits),
                        "x": x,
                        "y": y,
                    }
                )
        if code in _OUTFALLS and (code != "0610" or rng.random() < 0.7):
            name, limits = _OUTFALLS[code]
            x, y = _near(x0, y0, rng)
            rows.append(
                {
                    "enterprise_index": k,
                    "kind": "outfall",
                    "name_zh": name,
                    "stack_height_m": None,
                    "limits": dict(limits),
                    "x": x,
                    "y": y,
                }
            )
    return pd.DataFrame(rows)
