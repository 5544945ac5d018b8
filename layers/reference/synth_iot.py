"""Monitoring sites, their devices, and the emergency units with their vehicle terminals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import Point

from gis_core.application import DeviceKind
from layers.reference.synth_city import City
from layers.reference.synth_roads import RoadNetwork, VillageSet

__all__ = [
    "make_devices",
    "make_sites",
    "make_units",
]

FloatArray = npt.NDArray[np.float64]


def _spread(
    xy: FloatArray, k: int, rng: np.random.Generator, start: FloatArray | None
) -> list[int]:
    """k indices of xy spread out (farthest-point), starting near ``start`` if given."""
    if k <= 0 or len(xy) == 0:
        return []
    if start is not None:
        first = int(np.argmin(np.hypot(*(xy - start).T)))
    else:
        first = int(rng.integers(len(xy)))
    picks = [first]
    dmin = np.hypot(*(xy - xy[first]).T)
    while len(picks) < min(k, len(xy)):
        nxt = int(np.argmax(dmin * rng.uniform(0.85, 1.15, len(xy))))
        if dmin[nxt] <= 0:
            break
        picks.append(nxt)
        dmin = np.minimum(dmin, np.hypot(*(xy - xy[nxt]).T))
    return picks


def _river_points(city: City, fractions: FloatArray) -> list[tuple[str, Point, float, float]]:
    """Points on the real river lines at fractions of their total length inside the city.

    Returns (river name, WGS84 point exactly on the WGS84 line, metric x, metric y).
    """
    lengths = np.array([r[2].length for r in city.rivers])
    if len(lengths) == 0:
        return []
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    out: list[tuple[str, Point, float, float]] = []
    for f in fractions:
        pos = f * cum[-1]
        k = int(np.clip(np.searchsorted(cum, pos, side="right") - 1, 0, len(lengths) - 1))
        local = (pos - cum[k]) / lengths[k]
        name, wgs, metric = city.rivers[k]
        # Interpolate on the WGS84 line itself so the point lies on the stored river.
        p = shapely.line_interpolate_point(wgs, local, normalized=True)
        m = shapely.line_interpolate_point(metric, local, normalized=True)
        out.append((name, p, m.x, m.y))
    return out


def make_sites(
    city: City,
    net: RoadNetwork,
    villages: VillageSet,
    sources: pd.DataFrame,
    enterprises: pd.DataFrame,
    parcels: pd.DataFrame,
    rng: np.random.Generator,
    scale: float,
    stem_at: Callable[[int, str], tuple[str, str]],
    installed: Mapping[str, DeviceKind],
) -> pd.DataFrame:
    """Monitoring sites of every kind. Returns ``id``, ``kind``, ``name_zh``,
    ``district_code``, ``source_index`` (row of ``sources`` for emission sites), ``thresholds``,
    metric ``x``, ``y`` and, for river sites, ``wgs`` (a WGS84 point on the river line)."""
    rows: list[dict[str, Any]] = []
    counters: dict[tuple[str, str], int] = {}
    village_xy = np.column_stack([villages.x, villages.y])
    vtree = cKDTree(village_xy) if len(village_xy) else None

    def village_stem(x: float, y: float) -> str:
        if vtree is None:
            return ""
        return villages.name_zh[int(vtree.query([x, y])[1])][:-1]

    def add(kind: str, name: str, x: float, y: float, **extra: Any) -> None:
        if kind not in installed:
            return  # its application is not installed: no site, no device
        code = str(city.district_codes(x, y)[0])
        key = (kind, code)
        counters[key] = counters.get(key, 0) + 1
        rows.append(
            {
                "id": f"{installed[kind].id_prefix}-{code}-{counters[key]:03d}",
                "kind": kind,
                "name_zh": name,
                "district_code": code,
                "source_index": extra.get("source_index"),
                "thresholds": extra.get("thresholds"),
                "x": float(x),
                "y": float(y),
                "wgs": extra.get("wgs"),
            }
        )

    node_code = city.district_codes(net.node_xy[:, 0], net.node_xy[:, 1])
    street_nodes = np.unique(
        np.concatenate(
            [net.source[net.road_class != "village"], net.target[net.road_class != "village"]]
        )
    )

    # Air quality: several in the city seat's unit, one or more per other unit.
    for d in city.districts:
        is_city = d.code == city.city_seat.district_code
        k = max(1, round((6 if is_city else 2 + (d.population > 250_000)) * scale))
        cand = street_nodes[node_code[street_nodes] == d.code]
        if len(cand) == 0:
            continue
        seat = city.seat_of(d.code)
        start = np.array([seat.x, seat.y]) if seat else None
        # In town: keep the candidates near the seat.
        if seat is not None:
            near = np.hypot(*(net.node_xy[cand] - start).T) < (6000.0 if is_city else 3000.0)
            if near.sum() >= k:
                cand = cand[near]
        for j in _spread(net.node_xy[cand], k, rng, start):
            node = int(cand[j])
            stem, _ = stem_at(node, d.code)
            x, y = net.node_xy[node] + rng.uniform(-40, 40, 2)
            add("air", f"{d.short_zh}{stem}空气质量自动监测站", x, y)

    # Emission: one continuous monitoring system per stack.
    stacks: list[int] = (
        np.flatnonzero((sources["kind"] == "stack").to_numpy()).tolist() if len(sources) else []
    )
    for s in stacks:
        src = sources.iloc[int(s)]
        ent = enterprises.iloc[int(src["enterprise_index"])]
        add(
            "emission",
            f"{ent['name_zh']}{src['name_zh']}在线监测",
            float(src["x"]),
            float(src["y"]),
            source_index=int(s),
        )

    # Water level gauges and water quality sections: on the real rivers.
    n_wl = max(2, round(24 * scale))
    fr = (np.arange(n_wl) + rng.uniform(0.2, 0.8, n_wl)) / n_wl
    for name, p, x, y in _river_points(city, fr):
        datum = float(np.round(city.elevation(np.array([x]), np.array([y]))[0] - 4.0, 1))
        warning = float(np.round(rng.uniform(2.0, 4.0), 1))
        danger = float(np.round(warning + rng.uniform(0.8, 1.5), 1))
        add(
            "water_level",
            f"{name}{village_stem(x, y)}水位站",
            x,
            y,
            wgs=p,
            thresholds={"warning_m": warning, "danger_m": danger, "datum_m": datum},
        )
    n_wq = max(2, round(16 * scale))
    fr = (np.arange(n_wq) + rng.uniform(0.1, 0.9, n_wq)) / n_wq
    for name, p, x, y in _river_points(city, fr):
        add("water_quality", f"{name}{village_stem(x, y)}断面水质自动站", x, y, wgs=p)

    # Rain gauges: spread over the whole city, seats first.
    n_rain = max(len(city.districts), round(60 * scale))
    x0, y0, x1, y1 = city.outline_m.bounds
    px, py = rng.uniform(x0, x1, 20 * n_rain), rng.uniform(y0, y1, 20 * n_rain)
    ok = city.inside(px, py, 1000.0)
    cand_xy = np.column_stack([px[ok], py[ok]])
    for j in _spread(cand_xy, n_rain, rng, np.array([city.city_seat.x, city.city_seat.y])):
        x, y = cand_xy[j]
        code = str(city.district_codes(x, y)[0])
        add("rain", f"{city.district(code).short_zh}{village_stem(x, y)}雨量站", x, y)

    # Soil moisture: in fields (cropland parcels), spread out.
    n_soil = max(4, round(40 * scale))
    crop = parcels[parcels["land_use"].isin(["0101", "0102", "0103"])]
    if len(crop):
        pts = shapely.point_on_surface(np.asarray(crop["geom_m"].values))
        cxy = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])
    else:
        cxy = village_xy + 500.0
    for j in _spread(cxy, n_soil, rng, None):
        x, y = cxy[j]
        add("soil", f"{village_stem(x, y)}土壤墒情站", x, y, thresholds={"drought_vwc_pct": 12})

    # Traffic signals: town junctions of arterials with arterials or secondaries.
    n_sig = max(3, round(250 * scale))
    cls = net.road_class
    major = np.isin(cls, ["arterial", "secondary"])
    deg = np.bincount(np.concatenate([net.source, net.target]), minlength=len(net.node_xy))
    art_n = np.bincount(
        np.concatenate([net.source[cls == "arterial"], net.target[cls == "arterial"]]),
        minlength=len(net.node_xy),
    )
    maj_n = np.bincount(
        np.concatenate([net.source[major], net.target[major]]), minlength=len(net.node_xy)
    )
    # Crossing streets: a node where at least two differently named major streets meet.
    cand = np.flatnonzero((deg >= 3) & (art_n >= 1) & (maj_n >= 3))
    both_art = art_n[cand] >= 3
    seat_xy = np.array([[s.x, s.y] for s in city.seats])
    dseat, nseat = cKDTree(seat_xy).query(net.node_xy[cand])
    order = np.lexsort((dseat, ~both_art))
    # County towns get a handful each; the city seat the rest.
    cap = max(1, round(0.04 * n_sig))
    per_town = np.zeros(len(seat_xy), dtype=np.int64)
    taken = 0
    for node, town in zip(cand[order], np.asarray(nseat)[order], strict=True):
        if taken >= n_sig:
            break
        if town != 0 and per_town[town] >= cap:
            continue
        inc = np.flatnonzero(((net.source == node) | (net.target == node)) & major)
        street_names = sorted({str(net.name[e]) for e in inc if net.name[e]})
        if len(street_names) < 2:
            continue
        x, y = net.node_xy[node]
        add("signal", f"{street_names[0]}与{street_names[1]}交叉口信号机", x, y)
        rows[-1]["node"] = int(node)
        per_town[town] += 1
        taken += 1
    return pd.DataFrame(rows)


def make_units(
    pois: pd.DataFrame, rng: np.random.Generator, district_short: dict[str, str]
) -> pd.DataFrame:
    """Fire engines, ambulances and patrol cars at their stations (``poi_index`` = POI row)."""
    rows: list[dict[str, Any]] = []
    seq: dict[str, int] = {}
    call: dict[tuple[str, str], int] = {}

    def add(prefix: str, letter: str, unit_type: str, dept: str, k: int, label: str) -> None:
        key = f"{prefix}-{letter}"
        seq[key] = seq.get(key, 0) + 1
        code = str(pois.iloc[k]["district_code"])
        ck = (code, label)
        call[ck] = call.get(ck, 0) + 1
        rows.append(
            {
                "id": f"{key}-{seq[key]:03d}",
                "call_sign": f"{district_short[code]}{label}{call[ck]}号车",
                "unit_type": unit_type,
                "department_code": dept,
                "poi_index": k,
                "status": "available",
            }
        )

    hazmat_left = 2
    for k, p in enumerate(pois.itertuples()):
        if p.category == "fire_station":
            n = int(rng.integers(2, 5))
            types = ["engine"]
            if n >= 3:
                types.append("ladder")
            if n >= 4 or rng.random() < 0.5:
                types.append("rescue")
            if hazmat_left and n >= 3:
                types.append("hazmat")
                hazmat_left -= 1
            while len(types) < n:
                types.append("engine")
            for t in types[:n]:
                add("FIRE", t[0].upper(), t, "fire", k, "消防")
        elif p.category == "hospital":
            small = str(p.name_zh).endswith("卫生院")
            n = 2 if small else int(rng.integers(2, 6))
            for _ in range(n):
                add("MED", "A", "ambulance", "medical", k, "急救")
        elif p.category == "police_station":
            for _ in range(int(rng.integers(2, 4))):
                add("POL", "P", "patrol", "police", k, "巡逻")
    return pd.DataFrame(rows)


def make_devices(
    sites: pd.DataFrame,
    units: pd.DataFrame,
    rng: np.random.Generator,
    kinds: Mapping[str, DeviceKind],
) -> pd.DataFrame:
    """One device per monitoring site and, when the vehicles' kind is installed, one vehicle
    terminal per unit."""
    rows: list[dict[str, Any]] = []
    for s in sites.itertuples():
        kind = kinds[str(s.kind)]
        rows.append(
            {
                "id": f"D-{s.id}",
                "kind": kind.name,
                "department_code": kind.department,
                "site_id": s.id,
                "name_zh": f"{s.name_zh}数据采集仪",
                "expected_interval_s": kind.interval_s,
                "attributes": {
                    "vendor": str(rng.choice(kind.vendors)),
                    "model": f"{kind.id_prefix}-{int(rng.integers(1, 9)) * 100}",
                    "crs": "WGS84",
                },
            }
        )
    vehicle = kinds.get("vehicle")
    for u in units.itertuples():
        if vehicle is None:
            break  # dispatch is not installed: no vehicle terminals
        gcj = bool(rng.random() < 0.2)
        rows.append(
            {
                "id": f"VEH-{u.id}",
                "kind": "vehicle",
                "department_code": u.department_code,
                "site_id": None,
                "name_zh": f"{u.call_sign}车载终端",
                "expected_interval_s": vehicle.interval_s,
                "attributes": {
                    "vendor": str(rng.choice(vehicle.vendors)),
                    "crs": "GCJ02" if gcj else "WGS84",
                },
            }
        )
    return pd.DataFrame(rows)
