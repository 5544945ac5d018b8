"""Villages, townships, the population grid and public-service POIs of the synthesized city."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy import ndimage
from scipy.spatial import cKDTree

from layers.reference.synth_city import City
from layers.reference.synth_names import NameBook
from layers.reference.synth_roads import RoadNetwork, StreetGrid, VillageSet

__all__ = [
    "URBAN_SHARE",
    "make_pois",
    "make_population",
    "make_villages",
    "urban_share",
]

FloatArray = npt.NDArray[np.float64]
#: Share of a unit's residents living in its seat town, by unit kind (city seat separately).
URBAN_SHARE: Final = {"city_seat": 0.8, "district": 0.45, "county": 0.35}
VILLAGES_AT_SCALE_1: Final = 3000
VILLAGES_PER_TOWNSHIP: Final = 22


def urban_share(city: City, code: str) -> float:
    """Share of the unit's 2020 residents living in its seat town."""
    if city.city_seat.district_code == code:
        return URBAN_SHARE["city_seat"]
    return URBAN_SHARE.get(city.district(code).kind, URBAN_SHARE["county"])


# --------------------------------------------------------------------------- villages


def _dart_throw(x: FloatArray, y: FloatArray, r: float, n: int) -> npt.NDArray[np.int64]:
    """Indices of up to n candidates (taken in order) no closer than r to each other."""
    cell: dict[tuple[int, int], list[int]] = {}
    out: list[int] = []
    for k in range(len(x)):
        ci, cj = int(x[k] // r), int(y[k] // r)
        ok = True
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                for q in cell.get((ci + di, cj + dj), ()):
                    if (x[q] - x[k]) ** 2 + (y[q] - y[k]) ** 2 < r * r:
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            cell.setdefault((ci, cj), []).append(k)
            out.append(k)
            if len(out) >= n:
                break
    return np.array(out, dtype=np.int64)


def make_villages(
    city: City, grids: list[StreetGrid], rng: np.random.Generator, scale: float, names: NameBook
) -> VillageSet:
    """Place villages in the lowlands of every unit, group them into townships.

    Parameters
    ----------
    city
        The city.
    grids
        Street grids (villages keep away from them).
    rng
        Random generator.
    scale
        Density factor in (0, 1]: about ``3000 * scale`` villages.
    names
        Name generator (village names are unique per unit).
    """
    total = max(2 * len(city.districts), round(VILLAGES_AT_SCALE_1 * scale))
    areas = np.array([d.geom_m.area / 1e6 for d in city.districts])
    rural = np.array([d.population * (1 - urban_share(city, d.code)) for d in city.districts])
    weight = areas**0.6 * rural**0.4
    counts = np.maximum(2, np.round(total * weight / weight.sum()).astype(int))
    urban = shapely.union_all([g.footprint for g in grids]).buffer(400.0) if grids else None
    if urban is not None:
        shapely.prepare(urban)
    river_lines = shapely.union_all([r[2] for r in city.rivers]) if city.rivers else None

    xs: list[float] = []
    ys: list[float] = []
    codes: list[str] = []
    for d, n_d in zip(city.districts, counts, strict=True):
        inner = d.geom_m.buffer(-250.0)
        if inner.is_empty:
            inner = d.geom_m
        shapely.prepare(inner)
        x0, y0, x1, y1 = inner.bounds
        cx: list[FloatArray] = []
        cy: list[FloatArray] = []
        got = 0
        for _ in range(50):
            px = rng.uniform(x0, x1, 4000)
            py = rng.uniform(y0, y1, 4000)
            ok = shapely.contains_xy(inner, px, py)
            if urban is not None:
                ok &= ~shapely.contains_xy(urban, px, py)
            z = city.elevation(px, py)
            zlow = np.percentile(z[ok], 10) if ok.any() else 0.0
            w = np.clip(np.exp(-(z - zlow) / 350.0), 0.12, 1.0)
            if river_lines is not None:
                near = shapely.dwithin(river_lines, shapely.points(px, py), 3000.0)
                w = np.where(near, np.minimum(1.0, w * 1.6), w)
            ok &= rng.random(len(px)) < w
            cx.append(px[ok])
            cy.append(py[ok])
            got += int(ok.sum())
            if got >= 6 * n_d + 50:
                break
        ax, ay = np.concatenate(cx), np.concatenate(cy)
        r = 0.55 * np.sqrt(d.geom_m.area / n_d)
        pick = np.zeros(0, dtype=np.int64)
        for _ in range(8):
            pick = _dart_throw(ax, ay, r, int(n_d))
            if len(pick) >= n_d:
                break
            r *= 0.85
        xs += ax[pick].tolist()
        ys += ay[pick].tolist()
        codes += [d.code] * len(pick)

    x, y = np.array(xs), np.array(ys)
    n = len(x)
    zh: list[str] = []
    en: list[str] = []
    for code in codes:
        core_zh, core_en = names.village_core(f"village:{code}")
        zh.append(core_zh)
        en.append(core_en)

    # Townships: spread out over each unit (farthest-point picks), the seat town first.
    townships: list[dict[str, Any]] = []
    township = np.zeros(n, dtype=np.int64)
    is_seat = np.zeros(n, dtype=bool)
    code_arr = np.array(codes, dtype=object)
    for d in city.districts:
        members = np.flatnonzero(code_arr == d.code)
        seat = city.seat_of(d.code)
        centres: list[tuple[float, float]] = []
        first_idx = len(townships)
        if seat is not None:
            stem = seat.name_zh
            townships.append(
                {
                    "name_zh": stem,
                    "name_en": seat.name_en,
                    "district_code": d.code,
                    "code": 1 if d.kind == "district" else 100,
                    "x": seat.x,
                    "y": seat.y,
                    "village": -1,
                }
            )
            centres.append((seat.x, seat.y))
        if len(members) == 0:
            continue
        n_t = max(1, round(len(members) / VILLAGES_PER_TOWNSHIP))
        if seat is None:
            n_t = max(n_t, 1)
        dist = np.full(len(members), np.inf)
        for c in centres:
            dist = np.minimum(dist, np.hypot(x[members] - c[0], y[members] - c[1]))
        town_n, xiang_n = 0, 0
        chosen: list[int] = []
        for t in range(n_t):
            k = int(np.argmax(dist)) if np.isfinite(dist).any() else int(rng.integers(len(members)))
            if t == 0 and not centres:
                k = int(rng.integers(len(members)))
            v = int(members[k])
            chosen.append(v)
            dist = np.minimum(dist, np.hypot(x[members] - x[v], y[members] - y[v]))
            is_xiang = rng.random() < 0.4
            if is_xiang:
                tcode, suffix, suf_en = 200 + xiang_n, "乡", " Township"
                xiang_n += 1
            else:
                tcode, suffix, suf_en = 101 + town_n, "镇", " Town"
                town_n += 1
            townships.append(
                {
                    "name_zh": zh[v] + suffix,
                    "name_en": en[v] + suf_en,
                    "district_code": d.code,
                    "code": tcode,
                    "x": float(x[v]),
                    "y": float(y[v]),
                    "village": v,
                }
            )
            is_seat[v] = True
        del chosen
        tx = np.array([t["x"] for t in townships[first_idx:]])
        ty = np.array([t["y"] for t in townships[first_idx:]])
        _, nearest = cKDTree(np.column_stack([tx, ty])).query(
            np.column_stack([x[members], y[members]])
        )
        township[members] = first_idx + np.asarray(nearest)

    # Residents: lognormal sizes, township seats bigger; rural population of the unit.
    pop = rng.lognormal(0.0, 0.5, n) * np.where(is_seat, 2.5, 1.0)
    for d in city.districts:
        mk = code_arr == d.code
        if mk.any():
            pop[mk] *= d.population * (1 - urban_share(city, d.code)) / pop[mk].sum()
    q = np.argsort(np.argsort(-pop)) / max(n, 1)
    lanes = np.where(q < 0.05, 4, np.where(q < 0.45, 3, 2))
    if scale < 0.25:
        lanes = np.minimum(lanes, 3)
    return VillageSet(
        x=x,
        y=y,
        name_zh=[z + "村" for z in zh],
        name_en=[e + " Village" for e in en],
        district_code=codes,
        population=pop,
        lanes=lanes.astype(np.int64),
        township=township,
        is_township_seat=is_seat,
        townships=townships,
    )


# --------------------------------------------------------------------------- population


def make_population(
    city: City,
    grids: list[StreetGrid],
    villages: VillageSet,
    rng: np.random.Generator,
    scale: float,
) -> pd.DataFrame:
    """A population grid in the metric CRS, clipped to the units and scaled to the census.

    Returns a frame with ``district_code``, ``population``, ``buildings`` and ``geom``
    (WGS84 polygons); each unit's cells sum exactly to its 2020 census figure.
    """
    del rng  # the density model is deterministic given the villages and grids
    size = float(np.clip(round(1000.0 / np.sqrt(scale), -2), 1000.0, 10_000.0))
    x0, y0, x1, y1 = city.outline_m.bounds
    x0, y0 = np.floor(x0 / size) * size, np.floor(y0 / size) * size
    nx_, ny_ = int(np.ceil((x1 - x0) / size)), int(np.ceil((y1 - y0) / size))
    cxs = x0 + (np.arange(nx_) + 0.5) * size
    cys = y0 + (np.arange(ny_) + 0.5) * size
    gx, gy = np.meshgrid(cxs, cys)  # (ny, nx)

    # Rural field: village residents binned to cells, smoothed a little; plus a thin
    # background that prefers low ground.
    hist, _, _ = np.histogram2d(
        villages.y,
        villages.x,
        bins=[ny_, nx_],
        range=[[y0, y0 + ny_ * size], [x0, x0 + nx_ * size]],
        weights=villages.population,
    )
    # Smooth over about half the village spacing, whatever the cell size.
    spacing = np.sqrt(city.outline_m.area / max(len(villages.x), 1))
    rural = ndimage.gaussian_filter(hist, sigma=max(0.5, 0.5 * spacing / size))
    z = city.elevation(gx.ravel(), gy.ravel()).reshape(gx.shape)
    background = np.exp(-(z - np.percentile(z, 10)) / 400.0)
    # Urban field: an exponential core around each town; a town spilling over a unit border
    # houses part of the neighbouring unit's townspeople too.
    urban = np.zeros_like(gx)
    for g in grids:
        urban += np.exp(-np.hypot(gx - g.center[0], gy - g.center[1]) / (0.45 * g.radius))

    # Cells: grid squares (corners transformed to WGS84) cut along the real unit borders.
    corners_x = x0 + np.arange(nx_ + 1) * size
    corners_y = y0 + np.arange(ny_ + 1) * size
    kx, ky = np.meshgrid(corners_x, corners_y)
    lon, lat = city.to_wgs(kx.ravel(), ky.ravel())
    lon, lat = lon.reshape(kx.shape), lat.reshape(kx.shape)
    jj, ii = np.meshgrid(np.arange(nx_), np.arange(ny_))
    ring = np.stack(
        [
            np.stack([lon[ii, jj], lat[ii, jj]], -1),
            np.stack([lon[ii, jj + 1], lat[ii, jj + 1]], -1),
            np.stack([lon[ii + 1, jj + 1], lat[ii + 1, jj + 1]], -1),
            np.stack([lon[ii + 1, jj], lat[ii + 1, jj]], -1),
            np.stack([lon[ii, jj], lat[ii, jj]], -1),
        ],
        axis=2,
    ).reshape(-1, 5, 2)
    squares = shapely.polygons(ring)
    tree = shapely.STRtree(squares)
    rows: list[dict[str, Any]] = []
    for d in city.districts:
        hits = tree.query(d.geom, predicate="intersects")
        hits = np.sort(hits)
        parts = shapely.intersection(squares[hits], d.geom)
        geoms, owners = shapely.get_parts(parts, return_index=True)
        poly = shapely.get_type_id(geoms) == 3
        geoms, owners = geoms[poly], hits[owners[poly]]
        area_m = shapely.area(city.geoms_to_m(geoms))
        keep = area_m > 1.0
        geoms, owners, area_m = geoms[keep], owners[keep], area_m[keep]
        frac = area_m / (size * size)
        u = urban if any(g.district_code == d.code for g in grids) else None
        rur = rural.ravel()[owners] + 0.02 * background.ravel()[owners] * rural.mean()
        rur = rur * frac
        share = urban_share(city, d.code)
        if u is not None:
            urb = u.ravel()[owners] * frac
            dens = share * urb / urb.sum() + (1 - share) * rur / rur.sum()
        else:
            dens = rur / rur.sum()
        pop = dens / dens.sum() * d.population
        pop[np.argmax(pop)] += d.population - pop.sum()
        for gm, p in zip(geoms, pop, strict=True):
            rows.append({"district_code": d.code, "population": float(p), "geom": gm})
    out = pd.DataFrame(rows)
    out["buildings"] = np.maximum(0, np.round(out["population"] / 2.8)).astype(np.int64)
    return out


# --------------------------------------------------------------------------- POIs


def _node_weights(
    city: City, net: RoadNetwork, cells: pd.DataFrame
) -> tuple[FloatArray, FloatArray]:
    """Per road node: its share of the residents of its cell (sums to the cell population),
    and the cell's density (residents per km²)."""
    xy = net.node_xy
    lon, lat = city.to_wgs(xy[:, 0], xy[:, 1])
    geoms = np.asarray(cells["geom"].values)
    tree = shapely.STRtree(geoms)
    pi, ci = tree.query(shapely.points(lon, lat), predicate="intersects")
    first = np.unique(pi, return_index=True)[1]
    pi, ci = pi[first], ci[first]
    counts = np.bincount(ci, minlength=len(cells))
    pop = cells["population"].to_numpy(float)
    share = np.zeros(len(xy))
    share[pi] = pop[ci] / np.maximum(counts[ci], 1)
    area_km2 = shapely.area(city.geoms_to_m(geoms)) / 1e6
    dens = np.zeros(len(xy))
    dens[pi] = pop[ci] / np.maximum(area_km2[ci], 1e-3)
    return share, dens


CATEGORY_DEPT: Final = {
    "fire_station": "fire",
    "hospital": "medical",
    "police_station": "police",
    "school": "emergency",
    "shelter": "emergency",
}


def _spread_pick(
    xy: FloatArray,
    w: FloatArray,
    k: int,
    rng: np.random.Generator,
    first: int | None,
    power: float = 0.5,
) -> list[int]:
    """k nodes, weighted by ``w ** power`` but spread out (weighted farthest-point sampling)."""
    if k <= 0 or len(xy) == 0:
        return []
    w = np.asarray(w, float) + 1e-9
    picks: list[int] = []
    if first is not None:
        picks.append(first)
    else:
        picks.append(int(rng.choice(len(xy), p=w / w.sum())))
    dmin = np.hypot(*(xy - xy[picks[0]]).T)
    while len(picks) < min(k, len(xy)):
        score = dmin * w**power * rng.uniform(0.7, 1.3, len(xy))
        score[picks] = -1
        nxt = int(np.argmax(score))
        picks.append(nxt)
        dmin = np.minimum(dmin, np.hypot(*(xy - xy[nxt]).T))
    return picks


def make_pois(
    city: City,
    net: RoadNetwork,
    villages: VillageSet,
    cells: pd.DataFrame,
    rng: np.random.Generator,
    scale: float,
) -> pd.DataFrame:
    """Fire stations, hospitals, police stations, schools and shelters near road nodes.

    Returns metric positions (``x``, ``y``) and attributes; the caller adds ids and geometry.
    """
    node_w, node_dens = _node_weights(city, net, cells)
    node_code = city.district_codes(net.node_xy[:, 0], net.node_xy[:, 1])
    road_cls = net.road_class
    # Nodes on real streets (not lanes) are where stations go.
    on_street = np.zeros(len(net.node_xy), bool)
    street = road_cls != "village"
    on_street[net.source[street]] = True
    on_street[net.target[street]] = True
    total_pop = sum(d.population for d in city.districts)
    rows: list[dict[str, Any]] = []
    used_nodes: set[int] = set()

    def place(node: int, category: str, zh: str, en: str, capacity: int, code: str) -> None:
        used_nodes.add(node)
        nx0, ny0 = net.node_xy[node]
        # Set back from the node, but stay inside the unit.
        for _ in range(6):
            ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(20.0, 120.0)
            px, py = nx0 + dist * np.cos(ang), ny0 + dist * np.sin(ang)
            if city.district_codes(px, py)[0] == code and city.inside(px, py, 5.0)[0]:
                break
        else:
            px, py = nx0, ny0
        rows.append(
            {
                "category": category,
                "name_zh": zh,
                "name_en": en,
                "district_code": code,
                "department_code": None if category == "school" else CATEGORY_DEPT[category],
                "capacity": int(capacity),
                "x": float(px),
                "y": float(py),
                "node": node,
            }
        )

    def count(base: float, minimum: int) -> int:
        return max(minimum, round(base * scale))

    seat_node: dict[str, int] = {}
    for d in city.districts:
        seat = city.seat_of(d.code)
        cand = np.flatnonzero((node_code == d.code) & on_street)
        if len(cand) == 0:
            cand = np.flatnonzero(node_code == d.code)
        if seat is not None:
            _, k = cKDTree(net.node_xy[cand]).query([seat.x, seat.y])
        else:
            k = int(np.argmax(node_w[cand]))
        seat_node[d.code] = int(cand[int(k)])

    city_code = city.city_seat.district_code
    hospital_kinds = [
        ("{c}人民医院", "{ce} People's Hospital", (800, 1800)),
        ("{c}第二人民医院", "{ce} Second People's Hospital", (500, 1200)),
        ("{c}中医医院", "{ce} Hospital of Traditional Chinese Medicine", (300, 800)),
        ("{c}妇幼保健院", "{ce} Maternal and Child Health Hospital", (200, 500)),
        ("{c}第三人民医院", "{ce} Third People's Hospital", (300, 700)),
        ("{c}传染病医院", "{ce} Infectious Disease Hospital", (150, 300)),
        ("{c}骨科医院", "{ce} Orthopaedic Hospital", (150, 400)),
        ("{c}精神卫生中心", "{ce} Mental Health Center", (200, 500)),
    ]
    for d in city.districts:
        code = d.code
        in_d = np.flatnonzero((node_code == code) & on_street)
        if len(in_d) == 0:
            continue
        # Stations spread out over the residents: density decides, not node counts.
        xy, w, dens = net.node_xy[in_d], node_w[in_d], node_dens[in_d]
        share = d.population / total_pop
        is_city = code == city_code
        names_used: set[str] = set()
        dz, de = d.name_zh, d.name_en
        cz, ce = city.name_zh, city.name_en or city.name_zh
        first = int(np.flatnonzero(in_d == seat_node[code])[0]) if seat_node[code] in in_d else None

        # Fire stations: 6 in the city seat's unit, 1-2 per other unit.
        n_fire = count(6, 1) if is_city else (2 if d.population > 200_000 and scale > 0.2 else 1)
        for k in _spread_pick(xy, dens, n_fire, rng, first, power=0.8):
            node = int(in_d[k])
            stem_zh, stem_en = _place_stem(city, net, villages, node, code)
            zh, en = _unique(
                f"{d.short_zh}{stem_zh}消防救援站",
                f"{stem_en} Fire Station, {d.short_en}",
                names_used,
            )
            names_used.add(zh)
            place(node, "fire_station", zh, en, int(rng.integers(2, 5)) * 10, code)

        # Hospitals: city hospitals in the seat's unit, the unit's own, township health centres.
        n_h = count(35 * share * (1.3 if is_city else 0.85), 1 if is_city or scale < 0.5 else 2)
        picks = _spread_pick(xy, dens, n_h, rng, first, power=1.0)
        for t, k in enumerate(picks):
            if is_city and t < len(hospital_kinds):
                fz, fe, (lo, hi) = hospital_kinds[t]
                zh, en = fz.format(c=cz), fe.format(ce=ce)
            elif not is_city and t < 2:
                fz, fe, (lo, hi) = hospital_kinds[[0, 2][t]]
                zh, en = fz.format(c=dz), fe.format(ce=de)
                lo, hi = lo // 3, hi // 3
            else:
                node = int(in_d[k])
                v = _nearest_village(villages, net.node_xy[node], code)
                tw = villages.townships[int(villages.township[v])] if v >= 0 else None
                zh, en, lo, hi = "", "", 20, 80
                if tw is not None and int(tw["village"]) >= 0:
                    zh = f"{tw['name_zh']}卫生院"
                    en = f"{tw['name_en']} Health Center"
                if not zh or zh in names_used:
                    stem_zh, stem_en = _place_stem(city, net, villages, node, code)
                    zh = f"{d.short_zh}{stem_zh}社区卫生服务中心"
                    en = f"{stem_en} Community Health Center"
                    zh, en = _unique(zh, en, names_used)
            names_used.add(zh)
            place(int(in_d[k]), "hospital", zh, en, int(rng.integers(lo, hi + 1)), code)

        # Police stations: named after the township or the street they sit on.
        n_p = count(45 * share * (1.3 if is_city else 0.95), 1)
        for k in _spread_pick(xy, dens, n_p, rng, first, power=1.0):
            node = int(in_d[k])
            stem_zh, stem_en = _place_stem(city, net, villages, node, code)
            base = f"{cz}公安局{d.short_zh}分局"
            zh = f"{base}{stem_zh}派出所"
            en = f"{stem_en} Police Station, {d.short_en} Branch"
            zh, en = _unique(zh, en, names_used)
            names_used.add(zh)
            place(node, "police_station", zh, en, int(rng.integers(20, 120)), code)

        # Schools: population-weighted, not spread: many in town.
        n_s = count(250 * share, 1)
        p = w / w.sum() if w.sum() > 0 else None
        picks_s = rng.choice(len(in_d), size=min(n_s, len(in_d)), replace=False, p=p)
        for t, k in enumerate(np.sort(picks_s)):
            node = int(in_d[k])
            stem_zh, stem_en = _place_stem(city, net, villages, node, code)
            if t % 3 == 0:
                zh = f"{d.name_zh}第{_cn_number(t // 3 + 1)}中学"
                en = f"{d.short_en} No. {t // 3 + 1} Middle School"
                cap = int(rng.integers(800, 3000))
            else:
                zh, en = f"{d.short_zh}{stem_zh}小学", f"{stem_en} Primary School"
                cap = int(rng.integers(200, 1500))
            zh, en = _unique(zh, en, names_used)
            names_used.add(zh)
            place(node, "school", zh, en, cap, code)

        # Shelters: parks, squares and sports grounds, spread out.
        n_sh = count(60 * share, 1)
        kinds = [
            ("广场", "Square"),
            ("公园", "Park"),
            ("体育场", "Stadium"),
            ("中学操场", "School Ground"),
        ]
        for t, k in enumerate(_spread_pick(xy, dens, n_sh, rng, None, power=0.75)):
            node = int(in_d[k])
            stem_zh, stem_en = _place_stem(city, net, villages, node, code)
            kz, ke = kinds[t % len(kinds)]
            zh, en = _unique(
                f"{d.short_zh}{stem_zh}{kz}应急避难场所",
                f"{stem_en} {ke} Emergency Shelter",
                names_used,
            )
            names_used.add(zh)
            place(node, "shelter", zh, en, int(rng.integers(5, 200)) * 100, code)
    return pd.DataFrame(rows)


_ORDINALS: Final = "二三四五六七八九十"


def _cn_number(n: int) -> str:
    """1..99 in Chinese numerals (一, 十二, 二十三)."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else digits[tens]) + "十" + (digits[ones] if ones else "")


_TAILS: Final = (
    "社区卫生服务中心",
    "应急避难场所",
    "消防救援站",
    "派出所",
    "卫生院",
    "小学",
    "中学",
)


def _unique(zh: str, en: str, used: set[str]) -> tuple[str, str]:
    """``X小学`` → ``X第二小学`` → ``X第三小学`` ... while the name is taken."""
    if zh not in used:
        return zh, en
    tail = next((t for t in _TAILS if zh.endswith(t)), "")
    head = zh[: len(zh) - len(tail)]
    for k, o in enumerate(_ORDINALS, start=2):
        cand = f"{head}第{o}{tail}"
        if cand not in used:
            return cand, f"{en} No. {k}"
    k = len(_ORDINALS) + 2
    while f"{head}{k}{tail}" in used:
        k += 1
    return f"{head}{k}{tail}", f"{en} No. {k}"


def _nearest_village(villages: VillageSet, xy: FloatArray, code: str) -> int:
    mk = np.flatnonzero(np.array(villages.district_code, dtype=object) == code)
    if len(mk) == 0:
        return -1
    d = np.hypot(villages.x[mk] - xy[0], villages.y[mk] - xy[1])
    return int(mk[int(np.argmin(d))])


def _place_stem(
    city: City, net: RoadNetwork, villages: VillageSet, node: int, code: str
) -> tuple[str, str]:
    """A name stem for something at a node: its street's stem in town, else the village's."""
    inc = np.flatnonzero((net.source == node) | (net.target == node))
    for e in inc:
        nm = net.name[e]
        if nm and net.road_class[e] in ("arterial", "secondary", "local"):
            return street_stem(str(nm), net.name_en.get(str(nm), ""))
    v = _nearest_village(villages, net.node_xy[node], code)
    if v >= 0:
        return villages.name_zh[v][:-1], villages.name_en[v].removesuffix(" Village")
    d = city.district(code)
    return d.short_zh, d.short_en


_SECTIONS_EN: Final = ("East", "West", "South", "North", "Middle")


def street_stem(name_zh: str, name_en: str) -> tuple[str, str]:
    """``英雄中路`` / ``Yingxiong Middle Road`` → ``英雄`` / ``Yingxiong``."""
    zh = name_zh[:-1]
    if len(zh) > 2 and zh[-1] in "东西南北中":
        zh = zh[:-1]
    words = name_en.split()[:-1] or [zh]
    if len(words) > 1 and words[-1] in _SECTIONS_EN:
        words = words[:-1]
    return zh, " ".join(words)
