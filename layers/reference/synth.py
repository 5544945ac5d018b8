"""The synthesized part of the reference dataset: what no offline source has.

Roads, POIs, the population grid, enterprises and their pollution sources, monitoring sites and
devices, emergency units, cadastral parcels, mining rights and villages are generated
plausibly and reproducibly from a seed, around the real geography of a city directory
(units, seats, rivers, relief). Nothing here is specific to one city.

Examples
--------
>>> frames = synthesize(Path("data/changzhi"), scale=0.05)  # doctest: +SKIP
>>> frames["road"].head()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import MultiPolygon, Polygon

from gis_core.application import DeviceKind, device_kinds
from gis_core.crs import WGS84
from layers.reference.synth_city import City, load_city, rng_for
from layers.reference.synth_env import make_enterprises, make_mining_rights, make_sources
from layers.reference.synth_iot import make_devices, make_sites, make_units
from layers.reference.synth_land import make_parcels
from layers.reference.synth_names import NameBook
from layers.reference.synth_places import (
    _place_stem,
    make_pois,
    make_population,
    make_villages,
)
from layers.reference.synth_roads import (
    CLASS_SPEED,
    RoadNetwork,
    VillageSet,
    build_network,
    make_street_grids,
)

__all__ = ["DEFAULT_SEED", "FRAMES", "synthesize"]

DEFAULT_SEED: Final = 20201101
#: Frames returned by :func:`synthesize`, in loading order.
FRAMES: Final = (
    "road_node",
    "road",
    "poi",
    "population_cell",
    "enterprise",
    "pollution_source",
    "monitoring_site",
    "device",
    "unit",
    "parcel",
    "mining_right",
    "village",
    "seeded_conflicts",
)


def _gdf(data: dict[str, Any], geoms: Any) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(data)
    frame["geom"] = gpd.GeoSeries(np.asarray(geoms, dtype=object), crs=WGS84).values
    return gpd.GeoDataFrame(frame, geometry="geom", crs=WGS84)


def _obj(values: Any) -> pd.Series:
    """An object column that keeps ``None`` (pandas would turn it into NaN in a str column)."""
    return pd.Series(list(values), dtype=object)


def _multi(geoms: Any) -> list[MultiPolygon]:
    out: list[MultiPolygon] = []
    for g in geoms:
        if isinstance(g, Polygon):
            out.append(MultiPolygon([g]))
        elif isinstance(g, MultiPolygon):
            out.append(g)
        else:
            parts = [p for p in shapely.get_parts(g) if isinstance(p, Polygon)]
            out.append(MultiPolygon(parts))
    return out


def _points(city: City, x: Any, y: Any) -> Any:
    lon, lat = city.to_wgs(np.asarray(x, float), np.asarray(y, float))
    return shapely.points(lon, lat)


def _road_frames(city: City, net: RoadNetwork) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    lon, lat = city.to_wgs(net.node_xy[:, 0], net.node_xy[:, 1])
    nodes = _gdf({"id": np.arange(1, len(lon) + 1, dtype=np.int64)}, shapely.points(lon, lat))

    # Edge geometry in WGS84 whose first/last coordinates are the node coordinates, bit for bit.
    coords, idx = shapely.get_coordinates(net.geoms, return_index=True)
    wx, wy = city.to_wgs(coords[:, 0], coords[:, 1])
    starts = np.searchsorted(idx, np.arange(len(net.geoms)))
    ends = np.append(starts[1:], len(coords)) - 1
    wx[starts], wy[starts] = lon[net.source], lat[net.source]
    wx[ends], wy[ends] = lon[net.target], lat[net.target]
    geoms = shapely.linestrings(np.column_stack([wx, wy]), indices=idx)

    length = shapely.length(net.geoms)
    speed = np.array([CLASS_SPEED[c] for c in net.road_class])
    cost = length / (speed / 3.6)
    mid = shapely.line_interpolate_point(net.geoms, 0.5, normalized=True)
    road = _gdf(
        {
            "id": np.arange(1, len(length) + 1, dtype=np.int64),
            "name_zh": _obj(net.name),
            "road_class": net.road_class.astype(str),
            "speed_kmh": speed,
            "oneway": net.oneway.astype(bool),
            "length_m": length,
            "source": net.source.astype(np.int64) + 1,
            "target": net.target.astype(np.int64) + 1,
            "cost_s": cost,
            "reverse_cost_s": np.where(net.oneway, -1.0, cost),
            "district_code": city.district_codes(shapely.get_x(mid), shapely.get_y(mid)),
        },
        geoms,
    )
    return road, nodes


def _addresses(
    city: City, net: RoadNetwork, villages: VillageSet, x: Any, y: Any, rng: np.random.Generator
) -> list[str]:
    """``潞州区英雄中路12号`` from the nearest named street; in the country, the village."""
    named = np.flatnonzero(
        np.array([bool(n) for n in net.name])
        & np.isin(net.road_class, ["arterial", "secondary", "local"])
    )
    tree = shapely.STRtree(net.geoms[named])
    pts = shapely.points(np.asarray(x, float), np.asarray(y, float))
    (pi, ei), dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
    edge = np.full(len(pts), -1)
    dd = np.full(len(pts), np.inf)
    edge[pi], dd[pi] = named[ei], dist
    codes = city.district_codes(x, y)
    vtree = cKDTree(np.column_stack([villages.x, villages.y]))
    _, vk = vtree.query(np.column_stack([x, y]))
    out: list[str] = []
    for k in range(len(pts)):
        d = city.district(str(codes[k]))
        if dd[k] < 400.0:
            out.append(f"{d.name_zh}{net.name[edge[k]]}{int(rng.integers(1, 300))}号")
        else:
            v = int(np.atleast_1d(vk)[k])
            town = villages.townships[int(villages.township[v])]["name_zh"]
            out.append(f"{d.name_zh}{town}{villages.name_zh[v]}{int(rng.integers(1, 120))}号")
    return out


def synthesize(
    city_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    scale: float = 1.0,
    kinds: Mapping[str, DeviceKind] | None = None,
) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Synthesize the city's roads, POIs, population, enterprises, sensors, units and registry.

    Parameters
    ----------
    city_dir
        A city directory as written by ``layers.reference.extract`` (``city.json``,
        ``districts.geojson``, ``city.geojson``, ``towns.geojson``, ``rivers.geojson``,
        optionally ``etopo1_window.tif``).
    seed
        Seed of every random draw; the same seed and scale give identical frames.
    scale
        Density in (0, 1]: counts shrink roughly with ``scale`` (block and cell sizes grow
        with ``1/sqrt(scale)``); 1 is the full dataset, 0.05 a quick test set.

    Returns
    -------
    dict
        GeoDataFrames (EPSG:4326, geometry column ``geom``) ``road``, ``road_node``, ``poi``,
        ``population_cell``, ``enterprise``, ``pollution_source``, ``monitoring_site``,
        ``parcel``, ``mining_right``, ``village``; DataFrames ``device``, ``unit`` and
        ``seeded_conflicts`` (``table``, ``id_a``, ``id_b``, ``note``: the deliberate
        overlaps in ``parcel`` and ``mining_right``).
    """
    if not 0.0 < scale <= 1.0:
        raise ValueError("scale must be in (0, 1]")
    city = load_city(Path(city_dir))
    names = NameBook(rng_for(seed, 0))
    name_en: dict[str, str] = {}
    grids = make_street_grids(city, rng_for(seed, 1), scale, names, name_en)
    villages = make_villages(city, grids, rng_for(seed, 2), scale, names)
    net = build_network(city, grids, villages, rng_for(seed, 3), scale, name_en)
    road, road_node = _road_frames(city, net)

    cells = make_population(city, grids, villages, rng_for(seed, 4), scale)
    population_cell = _gdf(
        {
            "id": np.arange(1, len(cells) + 1, dtype=np.int64),
            "district_code": cells["district_code"].astype(str).to_numpy(),
            "population": cells["population"].to_numpy(float),
            "buildings": cells["buildings"].to_numpy(np.int64),
        },
        cells["geom"].to_numpy(),
    )

    rng_poi = rng_for(seed, 5)
    pois = make_pois(city, net, villages, cells, rng_poi, scale)
    poi = _gdf(
        {
            "id": np.arange(1, len(pois) + 1, dtype=np.int64),
            "category": pois["category"].to_numpy(),
            "name_zh": pois["name_zh"].to_numpy(),
            "name_en": pois["name_en"].to_numpy(),
            "district_code": pois["district_code"].to_numpy(),
            "department_code": _obj(pois["department_code"]),
            "capacity": pois["capacity"].to_numpy(np.int64),
            "address": _addresses(city, net, villages, pois["x"], pois["y"], rng_poi),
        },
        _points(city, pois["x"], pois["y"]),
    )

    rights, right_pairs = make_mining_rights(city, grids, rng_for(seed, 6), scale, names)
    ents = make_enterprises(city, grids, net, rights, rng_for(seed, 7), scale, names)
    enterprise = _gdf(
        {
            "id": np.arange(1, len(ents) + 1, dtype=np.int64),
            "credit_code": ents["credit_code"].to_numpy(),
            "name_zh": ents["name_zh"].to_numpy(),
            "industry_code": ents["industry_code"].to_numpy(),
            "industry_zh": ents["industry_zh"].to_numpy(),
            "district_code": ents["district_code"].to_numpy(),
            "employees": ents["employees"].to_numpy(np.int64),
        },
        _points(city, ents["x"], ents["y"]),
    )
    srcs = make_sources(ents, rng_for(seed, 8), scale)
    pollution_source = _gdf(
        {
            "id": np.arange(1, len(srcs) + 1, dtype=np.int64),
            "enterprise_id": srcs["enterprise_index"].to_numpy(np.int64) + 1,
            "kind": srcs["kind"].to_numpy(),
            "name_zh": srcs["name_zh"].to_numpy(),
            "stack_height_m": srcs["stack_height_m"].to_numpy(float),
            "limits": _obj(srcs["limits"]),
        },
        _points(city, srcs["x"], srcs["y"]),
    )

    plots, parcel_pairs = make_parcels(
        city, grids, villages, net, ents, rng_for(seed, 9), scale, names
    )
    parcel_geom_m = plots["geom_m"].to_numpy()
    parcel = _gdf(
        {
            "id": np.arange(1, len(plots) + 1, dtype=np.int64),
            "parcel_code": plots["parcel_code"].to_numpy(),
            "version": np.ones(len(plots), dtype=np.int64),
            "land_use": plots["land_use"].to_numpy(),
            "land_use_zh": plots["land_use_zh"].to_numpy(),
            "owner": _obj(plots["owner"]),
            "district_code": plots["district_code"].to_numpy(),
            "area_m2": shapely.area(parcel_geom_m),
            "valid_to": _obj([None] * len(plots)),
            "registered_by": ["system"] * len(plots),
        },
        _multi(city.geoms_to_wgs(parcel_geom_m)),
    )
    right_geom = shapely.segmentize(rights["geom_m"].to_numpy(), 500.0)
    mining_right = _gdf(
        {
            "id": np.arange(1, len(rights) + 1, dtype=np.int64),
            "license_no": rights["license_no"].to_numpy(),
            "version": np.ones(len(rights), dtype=np.int64),
            "right_type": rights["right_type"].to_numpy(),
            "mineral": rights["mineral"].to_numpy(),
            "holder": rights["holder"].to_numpy(),
            "permit_from": _obj(rights["permit_from"]),
            "permit_to": _obj(rights["permit_to"]),
            "depth_top_m": rights["depth_top_m"].to_numpy(float),
            "depth_bottom_m": rights["depth_bottom_m"].to_numpy(float),
            "valid_to": _obj([None] * len(rights)),
            "registered_by": ["system"] * len(rights),
        },
        _multi(city.geoms_to_wgs(right_geom)),
    )

    def stem_at(node: int, code: str) -> tuple[str, str]:
        return _place_stem(city, net, villages, node, code)

    kinds = device_kinds() if kinds is None else kinds
    sites = make_sites(
        city, net, villages, srcs, ents, plots, rng_for(seed, 10), scale, stem_at, kinds
    )
    site_geom = list(_points(city, sites["x"], sites["y"]))
    for k, w in enumerate(sites["wgs"].tolist()):
        if w is not None:
            site_geom[k] = w
    src_idx = sites["source_index"]
    monitoring_site = _gdf(
        {
            "id": sites["id"].to_numpy(),
            "kind": sites["kind"].to_numpy(),
            "name_zh": sites["name_zh"].to_numpy(),
            "district_code": sites["district_code"].to_numpy(),
            "pollution_source_id": pd.array(
                [None if pd.isna(s) else int(s) + 1 for s in src_idx], dtype="Int64"
            ),
            "thresholds": _obj(sites["thresholds"]),
        },
        site_geom,
    )

    shorts = {d.code: d.short_zh for d in city.districts}
    units_raw = make_units(pois, rng_for(seed, 11), shorts)
    devices = make_devices(sites, units_raw, rng_for(seed, 12), kinds)
    has_terminals = bool((devices["kind"] == "vehicle").any()) if len(devices) else False
    devices["site_id"] = _obj(devices["site_id"])
    devices["attributes"] = _obj(devices["attributes"])
    unit = pd.DataFrame(
        {
            "id": units_raw["id"].to_numpy(),
            "call_sign": units_raw["call_sign"].to_numpy(),
            "unit_type": units_raw["unit_type"].to_numpy(),
            "department_code": units_raw["department_code"].to_numpy(),
            "station_poi_id": units_raw["poi_index"].to_numpy(np.int64) + 1,
            # A unit rides with its terminal, when the vehicles' kind is installed.
            "device_id": _obj(f"VEH-{u}" if has_terminals else None for u in units_raw["id"]),
            "status": units_raw["status"].to_numpy(),
        }
    )

    village = _gdf(
        {
            "id": np.arange(1, len(villages.x) + 1, dtype=np.int64),
            "name_zh": villages.name_zh,
            "district_code": villages.district_code,
        },
        _points(city, villages.x, villages.y),
    )

    conflicts = pd.DataFrame(
        [("parcel", a + 1, b + 1, note) for a, b, note in parcel_pairs]
        + [("mining_right", a + 1, b + 1, note) for a, b, note in right_pairs],
        columns=["table", "id_a", "id_b", "note"],
    ).astype({"id_a": np.int64, "id_b": np.int64})

    return {
        "road_node": road_node,
        "road": road,
        "poi": poi,
        "population_cell": population_cell,
        "enterprise": enterprise,
        "pollution_source": pollution_source,
        "monitoring_site": monitoring_site,
        "device": devices,
        "unit": unit,
        "parcel": parcel,
        "mining_right": mining_right,
        "village": village,
        "seeded_conflicts": conflicts,
    }
