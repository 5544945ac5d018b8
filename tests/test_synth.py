"""Pure tests of the synthesized reference data (no database): layers.reference.synth."""

from __future__ import annotations

import datetime as dt
import re
import time
from functools import cache
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from gis_core.crs import transform_geometry
from layers.reference.codes import (
    credit_code,
    credit_code_check_char,
    is_valid_credit_code,
    is_valid_org_code,
    is_valid_parcel_code,
    org_code_check_char,
    parcel_code,
)
from layers.reference.synth import synthesize

DATA = Path(__file__).parents[1] / "data" / "changzhi"
METRIC = 4547
SMALL = 0.05

COLUMNS = {
    "road": [
        "id",
        "name_zh",
        "road_class",
        "speed_kmh",
        "oneway",
        "length_m",
        "source",
        "target",
        "cost_s",
        "reverse_cost_s",
        "district_code",
        "geom",
    ],
    "road_node": ["id", "geom"],
    "poi": [
        "id",
        "category",
        "name_zh",
        "name_en",
        "district_code",
        "department_code",
        "capacity",
        "address",
        "geom",
    ],
    "population_cell": ["id", "district_code", "population", "buildings", "geom"],
    "enterprise": [
        "id",
        "credit_code",
        "name_zh",
        "industry_code",
        "industry_zh",
        "district_code",
        "employees",
        "geom",
    ],
    "pollution_source": [
        "id",
        "enterprise_id",
        "kind",
        "name_zh",
        "stack_height_m",
        "limits",
        "geom",
    ],
    "monitoring_site": [
        "id",
        "kind",
        "name_zh",
        "district_code",
        "pollution_source_id",
        "thresholds",
        "geom",
    ],
    "device": [
        "id",
        "kind",
        "department_code",
        "site_id",
        "name_zh",
        "expected_interval_s",
        "attributes",
    ],
    "unit": [
        "id",
        "call_sign",
        "unit_type",
        "department_code",
        "station_poi_id",
        "device_id",
        "status",
    ],
    "parcel": [
        "id",
        "parcel_code",
        "version",
        "land_use",
        "land_use_zh",
        "owner",
        "district_code",
        "area_m2",
        "valid_to",
        "registered_by",
        "geom",
    ],
    "mining_right": [
        "id",
        "license_no",
        "version",
        "right_type",
        "mineral",
        "holder",
        "permit_from",
        "permit_to",
        "depth_top_m",
        "depth_bottom_m",
        "valid_to",
        "registered_by",
        "geom",
    ],
    "village": ["id", "name_zh", "district_code", "geom"],
    "seeded_conflicts": ["table", "id_a", "id_b", "note"],
}
GEOM_TYPES = {
    "road": "LineString",
    "road_node": "Point",
    "poi": "Point",
    "population_cell": "Polygon",
    "enterprise": "Point",
    "pollution_source": "Point",
    "monitoring_site": "Point",
    "parcel": "MultiPolygon",
    "mining_right": "MultiPolygon",
    "village": "Point",
}
SPEEDS = {
    "expressway": 100,
    "national": 70,
    "provincial": 60,
    "county": 50,
    "arterial": 50,
    "secondary": 40,
    "local": 30,
    "village": 25,
}
DEPARTMENTS = {
    "command",
    "fire",
    "medical",
    "police",
    "emergency",
    "water",
    "environment",
    "land",
    "traffic",
    "statistics",
    "hotline",
}


Frames = dict[str, gpd.GeoDataFrame | pd.DataFrame]


@cache
def frames(seed: int = 20201101, scale: float = SMALL) -> Frames:
    return synthesize(DATA, seed=seed, scale=scale)


@cache
def districts() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "districts.geojson")


@cache
def city_m() -> shapely.Geometry:
    outline = shapely.union_all(gpd.read_file(DATA / "city.geojson").geometry.values)
    return transform_geometry(outline, 4326, METRIC)


def metric(gdf: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(transform_geometry(np.asarray(gdf.geometry.values), 4326, METRIC))


def overlapping_pairs(geoms: np.ndarray, min_area: float = 1.0) -> set[tuple[int, int]]:
    """Index pairs (i < j) whose interiors overlap by more than ``min_area`` m²."""
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    m = a < b
    a, b = a[m], b[m]
    area = shapely.area(shapely.intersection(geoms[a], geoms[b]))
    return {(int(i), int(j)) for i, j, ar in zip(a, b, area, strict=True) if ar > min_area}


# --------------------------------------------------------------------------- codes


def test_credit_code_check_characters() -> None:
    # Published codes: the standard's example and two real registrations.
    for code in ("91350100M000100Y43", "91440300708461136T", "9144030071526726XG"):
        assert is_valid_credit_code(code)
        assert credit_code_check_char(code[:17]) == code[17]
        assert is_valid_org_code(code[8:17])
    assert org_code_check_char("M000100Y") == "4"
    assert credit_code("350100", "M000100Y") == "91350100M000100Y43"
    assert not is_valid_credit_code("91350100M000100Y44")  # wrong final check
    assert not is_valid_credit_code("91350100M000100Z43")  # wrong org check
    assert not is_valid_credit_code("91350100M000I00Y43")  # I is not in the charset
    assert not is_valid_credit_code("91350100M000100Y4")  # short
    # Org code check character can be X or 0.
    bodies = [f"{k:08d}" for k in range(200)]
    checks = {org_code_check_char(b) for b in bodies}
    assert "X" in checks and "0" in checks


def test_parcel_code_layout() -> None:
    assert parcel_code("140403", 1, 12, "GB", 345) == "140403001012GB00345"
    assert is_valid_parcel_code("140403001012GB00345")
    assert not is_valid_parcel_code("140403001012QB00345")
    with pytest.raises(ValueError):
        parcel_code("140403", 1, 12, "G", 345)


# --------------------------------------------------------------------------- shape of output


def test_frames_columns_and_types() -> None:
    f = frames()
    assert set(f) == set(COLUMNS)
    for name, cols in COLUMNS.items():
        frame = f[name]
        assert list(frame.columns) == cols, name
        if name in GEOM_TYPES:
            assert isinstance(frame, gpd.GeoDataFrame)
            assert frame.geometry.name == "geom"
            assert frame.crs.to_epsg() == 4326
            assert (frame.geometry.geom_type == GEOM_TYPES[name]).all(), name
            assert frame.geometry.is_valid.all(), name
            assert not frame.geometry.is_empty.any(), name
        else:
            assert not isinstance(frame, gpd.GeoDataFrame)
        if name != "seeded_conflicts":
            assert frame["id"].is_unique, name
        if frame.get("id") is not None and frame["id"].dtype.kind == "i":
            assert frame["id"].tolist() == list(range(1, len(frame) + 1)), name


def test_deterministic() -> None:
    a = frames()
    b = synthesize(DATA, seed=20201101, scale=SMALL)
    for name in COLUMNS:
        if isinstance(a[name], gpd.GeoDataFrame):
            assert_geodataframe_equal(a[name], b[name], check_less_precise=False)
        else:
            pd.testing.assert_frame_equal(a[name], b[name])
    c = frames(seed=7)
    assert (
        not a["village"].geometry.geom_equals(c["village"].geometry.iloc[: len(a["village"])]).all()
    )
    assert a["enterprise"]["credit_code"].tolist() != c["enterprise"]["credit_code"].tolist()
    assert len(a["road"]) != len(c["road"]) or not np.allclose(
        a["road"]["length_m"].to_numpy(), c["road"]["length_m"].to_numpy()
    )


def test_scale_is_checked() -> None:
    with pytest.raises(ValueError):
        synthesize(DATA, scale=0)
    with pytest.raises(ValueError):
        synthesize(DATA, scale=1.5)


def test_everything_inside_the_city() -> None:
    f = frames()
    inner = city_m().buffer(1.0)
    roads = city_m().buffer(1000.0)
    for name in GEOM_TYPES:
        geoms = metric(f[name])
        area = roads if name in ("road", "road_node") else inner
        assert shapely.contains(area, geoms).all(), name


def test_district_codes_are_the_units() -> None:
    f = frames()
    codes = set(districts()["code"].astype(str))
    for name, frame in f.items():
        if "district_code" in frame:
            assert set(frame["district_code"]) <= codes, name
    # Points carry the code of the unit they lie in.
    d = districts().set_index(districts()["code"].astype(str))
    for name in ("poi", "enterprise", "village"):
        pts = f[name]
        own = d.geometry.loc[pts["district_code"]].to_numpy()
        assert shapely.dwithin(own, pts.geometry.to_numpy(), 1e-5).all(), name


# --------------------------------------------------------------------------- roads


def check_network(road: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame) -> None:
    node_xy = shapely.get_coordinates(nodes.geometry.to_numpy())
    assert nodes["id"].tolist() == list(range(1, len(nodes) + 1))
    first = shapely.get_coordinates(shapely.get_point(road.geometry.to_numpy(), 0))
    last = shapely.get_coordinates(shapely.get_point(road.geometry.to_numpy(), -1))
    src = road["source"].to_numpy() - 1
    tgt = road["target"].to_numpy() - 1
    assert src.min() >= 0 and tgt.min() >= 0 and max(src.max(), tgt.max()) < len(nodes)
    # Edge ends are the node coordinates, exactly.
    assert np.array_equal(first, node_xy[src])
    assert np.array_equal(last, node_xy[tgt])
    # Nodes are distinct points, every node is used.
    assert len(np.unique(node_xy, axis=0)) == len(node_xy)
    assert set(src) | set(tgt) == set(range(len(nodes)))
    # No loops, no zero-length edges, no parallel duplicates.
    assert (src != tgt).all()
    assert (road["length_m"] > 0.5).all()
    key = np.minimum(src, tgt) * len(nodes) + np.maximum(src, tgt)
    assert len(np.unique(key)) == len(key)
    # One connected component.
    g = nx.Graph()
    g.add_edges_from(zip(src.tolist(), tgt.tolist(), strict=True))
    assert nx.is_connected(g)
    # Costs follow length and speed; one-way edges are closed backwards.
    speed = road["road_class"].map(SPEEDS).to_numpy(float)
    assert np.array_equal(road["speed_kmh"].to_numpy(float), speed)
    assert np.allclose(road["cost_s"], road["length_m"] / (speed / 3.6))
    ow = road["oneway"].to_numpy(bool)
    assert (road["reverse_cost_s"].to_numpy()[ow] == -1).all()
    assert np.allclose(road["reverse_cost_s"].to_numpy()[~ow], road["cost_s"].to_numpy()[~ow])
    # length_m is the metric length.
    lm = shapely.length(metric(road))
    assert np.allclose(lm, road["length_m"], rtol=1e-6, atol=0.01)


def check_edges_meet_at_nodes(road: gpd.GeoDataFrame) -> None:
    geoms = metric(road)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    m = a < b
    a, b = a[m], b[m]
    inter = shapely.intersection(geoms[a], geoms[b])
    ends = shapely.multipoints(
        np.stack(
            [
                shapely.get_coordinates(shapely.get_point(geoms[a], 0)),
                shapely.get_coordinates(shapely.get_point(geoms[a], -1)),
            ],
            axis=1,
        )
    )
    # Whatever two edges share must be within a few millimetres of an end of the first.
    off = shapely.difference(inter, shapely.buffer(ends, 0.01))
    bad = ~shapely.is_empty(off)
    assert not bad.any(), f"{bad.sum()} edge pairs cross without a node"


def test_road_topology() -> None:
    f = frames()
    check_network(f["road"], f["road_node"])
    check_edges_meet_at_nodes(f["road"])


def test_road_classes_and_oneway() -> None:
    road = frames()["road"]
    assert set(road["road_class"]) == set(SPEEDS)
    ow = road[road["oneway"]]
    assert len(ow) > 0
    assert set(ow["road_class"]) <= {"secondary", "arterial", "local"}
    # Downtown couplet: both directions exist on parallel streets of the city seat's unit.
    assert (ow["district_code"] == "140403").all()
    assert ow["name_zh"].nunique() >= 2
    named = road[road["road_class"].isin(["arterial", "secondary", "local"])]
    assert named["name_zh"].notna().all()
    assert named["name_zh"].str.match(r"^.+[路街]$").all()


# --------------------------------------------------------------------------- population


def test_population_sums_and_tiling() -> None:
    f = frames()
    cells = f["population_cell"]
    d = districts()
    sums = cells.groupby("district_code")["population"].sum()
    for code, pop in zip(d["code"].astype(str), d["population_2020"], strict=True):
        assert abs(sums[code] - pop) < 1e-6, code
    assert (cells["population"] >= 0).all()
    assert (cells["buildings"] >= 0).all()
    assert np.allclose(cells["buildings"], np.round(cells["population"] / 2.8), atol=1)
    area = shapely.area(metric(cells)).sum()
    assert abs(area / city_m().area - 1) < 0.005
    # Cells do not overlap and each lies in its own unit.
    assert not overlapping_pairs(metric(cells), 1.0)
    own = d.set_index(d["code"].astype(str)).geometry.loc[cells["district_code"]].to_numpy()
    assert shapely.contains(shapely.buffer(own, 1e-6), cells.geometry.to_numpy()).all()
    # Denser near the city seat than on average.
    dens = cells["population"] / (shapely.area(metric(cells)) / 1e6)
    assert dens.max() > 20 * np.median(dens)


# --------------------------------------------------------------------------- POIs


def test_pois() -> None:
    f = frames()
    poi = f["poi"]
    assert set(poi["category"]) == {
        "fire_station",
        "hospital",
        "police_station",
        "school",
        "shelter",
    }
    dept = {
        "fire_station": "fire",
        "hospital": "medical",
        "police_station": "police",
        "shelter": "emergency",
    }
    for cat, code in dept.items():
        assert (poi.loc[poi["category"] == cat, "department_code"] == code).all()
    assert poi.loc[poi["category"] == "school", "department_code"].isna().all()
    assert (poi["capacity"] > 0).all()
    assert poi["name_zh"].is_unique
    # Every unit has a fire station, a hospital and a police station.
    per = poi.groupby(["district_code", "category"]).size().unstack(fill_value=0)
    assert len(per) == len(districts())
    assert (per[["fire_station", "hospital", "police_station"]] >= 1).all().all()
    # Near the road network (a node within 150 m).
    node_m = metric(f["road_node"])
    d, _ = _nearest(metric(poi), node_m)
    assert (d <= 150.0).all()
    # Addresses: unit name, then a road or a village, then a house number.
    names = set(districts()["name_zh"])
    assert all(any(a.startswith(n) for n in names) for a in poi["address"])
    assert poi["address"].str.match(r"^.+\d+号$").all()


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx, dist = shapely.STRtree(b).query_nearest(a, return_distance=True, all_matches=False)
    out = np.full(len(a), np.inf)
    out[idx[0]] = dist
    which = np.full(len(a), -1)
    which[idx[0]] = idx[1]
    return out, which


# --------------------------------------------------------------------------- environment


def test_enterprises_and_credit_codes() -> None:
    ent = frames()["enterprise"]
    assert ent["credit_code"].is_unique
    assert ent["credit_code"].map(is_valid_credit_code).all()
    assert (ent["credit_code"].str[2:8] == ent["district_code"]).all()
    assert (ent["credit_code"].str[:2] == "91").all()
    assert ent["industry_code"].str.fullmatch(r"\d{4}").all()
    assert (ent["employees"] > 0).all()
    # A coal city: coal mining and coking are the biggest classes.
    top = ent["industry_code"].value_counts().index[:4].tolist()
    assert "0610" in top
    assert ent["name_zh"].str.endswith(("公司", "厂")).all()


def test_pollution_sources() -> None:
    f = frames()
    src, ent = f["pollution_source"], f["enterprise"]
    assert set(src["kind"]) <= {"stack", "outfall"}
    assert src["enterprise_id"].isin(ent["id"]).all()
    stacks = src[src["kind"] == "stack"]
    outfalls = src[src["kind"] == "outfall"]
    assert stacks["stack_height_m"].between(30, 240).all()
    assert outfalls["stack_height_m"].isna().all()
    assert all(set(lim) == {"so2_mgm3", "nox_mgm3", "dust_mgm3"} for lim in stacks["limits"])
    assert all(set(lim) == {"cod_mgl", "nh3n_mgl"} for lim in outfalls["limits"])
    # Next to their plant.
    e = metric(ent.set_index("id").loc[src["enterprise_id"]])
    assert (shapely.distance(metric(src), e) <= 250.0).all()


# --------------------------------------------------------------------------- sites, devices, units


def test_monitoring_sites() -> None:
    f = frames()
    sites, src = f["monitoring_site"], f["pollution_source"]
    kinds = {"air", "emission", "water_level", "rain", "soil", "water_quality", "signal"}
    assert set(sites["kind"]) == kinds
    assert sites["id"].str.fullmatch(r"(AIR|EMS|WL|RAIN|SOIL|WQ|SIG)-\d{6}-\d{3}").all()
    assert (sites["id"].str.split("-").str[1] == sites["district_code"]).all()
    # One emission site per stack, pointing at it.
    ems = sites[sites["kind"] == "emission"]
    stack_ids = set(src.loc[src["kind"] == "stack", "id"])
    assert set(ems["pollution_source_id"].astype(int)) == stack_ids
    assert len(ems) == len(stack_ids)
    assert sites.loc[sites["kind"] != "emission", "pollution_source_id"].isna().all()
    # Gauges and sections sit on the real rivers.
    rivers = shapely.union_all(gpd.read_file(DATA / "rivers.geojson").geometry.values)
    on_river = sites[sites["kind"].isin(["water_level", "water_quality"])]
    assert (shapely.distance(on_river.geometry.to_numpy(), rivers) < 1e-9).all()
    for t in sites.loc[sites["kind"] == "water_level", "thresholds"]:
        assert set(t) == {"warning_m", "danger_m", "datum_m"}
        assert 0 < t["warning_m"] < t["danger_m"]
    assert all(
        t == {"drought_vwc_pct": 12} for t in sites.loc[sites["kind"] == "soil", "thresholds"]
    )
    others = sites[~sites["kind"].isin(["water_level", "soil"])]
    assert others["thresholds"].isna().all()
    # Air stations in every unit; signals on road nodes.
    air = sites[sites["kind"] == "air"]
    assert set(air["district_code"]) == set(districts()["code"].astype(str))
    sig = metric(sites[sites["kind"] == "signal"])
    d, _ = _nearest(sig, metric(f["road_node"]))
    assert (d < 1e-3).all()


def test_devices_and_units() -> None:
    f = frames()
    dev, unit, sites, poi = f["device"], f["unit"], f["monitoring_site"], f["poi"]
    assert dev["id"].is_unique and unit["id"].is_unique
    # Every site has exactly one device, every unit one vehicle terminal.
    fixed = dev[dev["kind"] != "vehicle"]
    assert sorted(fixed["site_id"]) == sorted(sites["id"])
    assert (
        fixed["kind"].to_numpy() == sites.set_index("id").loc[fixed["site_id"], "kind"].to_numpy()
    ).all()
    veh = dev[dev["kind"] == "vehicle"]
    assert veh["site_id"].isna().all()
    assert sorted(veh["id"]) == sorted(unit["device_id"])
    assert set(dev["department_code"]) <= DEPARTMENTS
    intervals = {
        "vehicle": 5,
        "air": 600,
        "emission": 600,
        "water_level": 300,
        "rain": 300,
        "soil": 3600,
        "water_quality": 3600,
        "signal": 60,
    }
    assert (dev["expected_interval_s"] == dev["kind"].map(intervals)).all()
    dept = {
        "air": "environment",
        "emission": "environment",
        "soil": "water",
        "water_level": "water",
        "rain": "water",
        "water_quality": "water",
        "signal": "traffic",
    }
    assert (fixed["department_code"] == fixed["kind"].map(dept)).all()
    crs = veh["attributes"].map(lambda a: a["crs"])
    assert set(crs) <= {"GCJ02", "WGS84"}
    assert 0.05 < (crs == "GCJ02").mean() < 0.4
    # Units sit at stations of their own service.
    assert unit["station_poi_id"].isin(poi["id"]).all()
    cat = poi.set_index("id").loc[unit["station_poi_id"], "category"].to_numpy()
    want = {"fire": "fire_station", "medical": "hospital", "police": "police_station"}
    assert (cat == unit["department_code"].map(want).to_numpy()).all()
    types = {
        "fire": {"engine", "ladder", "rescue", "hazmat"},
        "medical": {"ambulance"},
        "police": {"patrol"},
    }
    for d, ts in types.items():
        assert set(unit.loc[unit["department_code"] == d, "unit_type"]) <= ts
    assert (unit["status"] == "available").all()
    assert unit["call_sign"].is_unique
    assert (
        veh.set_index("id").loc[unit["device_id"], "department_code"].to_numpy()
        == unit["department_code"].to_numpy()
    ).all()
    per_station = unit.groupby("station_poi_id").size()
    fire_ids = poi.loc[poi["category"] == "fire_station", "id"]
    assert per_station.loc[fire_ids].between(2, 4).all()


# --------------------------------------------------------------------------- registry


def test_parcels_codes_and_overlaps() -> None:
    f = frames()
    par, seeded = f["parcel"], f["seeded_conflicts"]
    assert par["parcel_code"].str.len().eq(19).all()
    assert par["parcel_code"].map(is_valid_parcel_code).all()
    assert not par.duplicated(["parcel_code", "version"]).any()
    assert (par["parcel_code"].str[:6] == par["district_code"]).all()
    assert (par["version"] == 1).all() and par["valid_to"].isna().all()
    assert (par["registered_by"] == "system").all()
    assert par["land_use"].str.fullmatch(r"\d{4}").all()
    assert {"0103", "0701", "0702", "0601"} <= set(par["land_use"])
    geoms = metric(par)
    assert np.allclose(shapely.area(geoms), par["area_m2"], rtol=1e-6)
    found = overlapping_pairs(geoms, 1.0)
    want = {
        (min(a, b) - 1, max(a, b) - 1)
        for a, b in seeded.loc[seeded["table"] == "parcel", ["id_a", "id_b"]].itertuples(
            index=False
        )
    }
    assert len(want) >= 3
    assert found == want
    # Conflicts are real overlaps, of a sensible size.
    for a, b in want:
        assert shapely.intersection(geoms[a], geoms[b]).area > 100.0


def test_mining_rights() -> None:
    f = frames()
    mr, seeded = f["mining_right"], f["seeded_conflicts"]
    assert mr["license_no"].is_unique
    assert mr["license_no"].str.fullmatch(r"[CT]\d{22}").all()
    assert ((mr["right_type"] == "mining") == mr["license_no"].str.startswith("C")).all()
    assert set(mr["right_type"]) <= {"mining", "exploration"}
    assert (mr["mineral"] == "煤").mean() > 0.5
    assert all(isinstance(d, dt.date) for d in mr["permit_from"])
    assert (mr["permit_to"] > mr["permit_from"]).all()
    assert (mr["depth_bottom_m"] > mr["depth_top_m"]).all()
    geoms = metric(mr)
    area_km2 = shapely.area(geoms) / 1e6
    assert ((area_km2 >= 2.0) & (area_km2 <= 62.0)).all()
    found = overlapping_pairs(geoms, 1.0)
    want = {
        (min(a, b) - 1, max(a, b) - 1)
        for a, b in seeded.loc[seeded["table"] == "mining_right", ["id_a", "id_b"]].itertuples(
            index=False
        )
    }
    assert len(want) >= 1
    assert found == want


def test_villages() -> None:
    v = frames()["village"]
    assert v["name_zh"].str.endswith("村").all()
    assert not v.duplicated(["district_code", "name_zh"]).any()
    assert set(v["district_code"]) == set(districts()["code"].astype(str))


def test_city_agnostic_code() -> None:
    # No hard-coded coordinates of the example city in the synthesizer.
    src = "".join(
        p.read_text(encoding="utf-8")
        for p in (Path(__file__).parents[1] / "layers" / "reference").glob("synth*.py")
    )
    assert not re.search(r"\b11[23]\.\d{2,}", src)
    assert not re.search(r"\b3[67]\.\d{3,}", src)
    assert "1404" not in src


# --------------------------------------------------------------------------- full scale


def test_full_scale_network_and_runtime() -> None:
    t0 = time.perf_counter()
    f = synthesize(DATA, scale=1.0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 90.0
    road = f["road"]
    assert len(road) >= 55_000
    check_network(road, f["road_node"])
    check_edges_meet_at_nodes(road)
    assert shapely.contains(city_m().buffer(1000.0), metric(road)).all()
    counts = f["poi"]["category"].value_counts()
    assert 200 <= counts["school"] <= 300
    assert 25 <= counts["hospital"] <= 45
    assert 35 <= counts["police_station"] <= 60
    assert 45 <= counts["shelter"] <= 80
    fire = f["poi"][f["poi"]["category"] == "fire_station"]
    assert (fire["district_code"] == "140403").sum() == 6
    assert 1800 <= len(f["enterprise"]) <= 2200
    assert 300 <= len(f["pollution_source"]) <= 500
    assert 10_000 <= len(f["parcel"]) <= 20_000
    assert 120 <= len(f["mining_right"]) <= 180
    assert len(f["village"]) >= 2000
    sites = f["monitoring_site"]["kind"].value_counts()
    assert 24 <= sites["air"] <= 40 and 200 <= sites["signal"] <= 260
    cells = f["population_cell"]
    assert abs(cells["population"].sum() - districts()["population_2020"].sum()) < 1e-5
