"""Dispatch routing against independent references: networkx Dijkstra on the same edges,
pgRouting on the same points, brute-force ranking over every unit, brute-force snapping."""

from __future__ import annotations

import math
from collections.abc import Iterator

import networkx as nx
import numpy as np
import psycopg
import pytest
import shapely

from apps.dispatch import routing
from apps.dispatch.plans import DispatchSettings

pytestmark = pytest.mark.services

EXTRA_UNITS = 300  # more patrol cars than the prefilter takes, so exactness is exercised


@pytest.fixture(scope="module")
def conn(reference: object, db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as c:
        c.execute("TRUNCATE ops.incident CASCADE")
        c.execute("UPDATE ops.unit SET status = 'available'")
        c.commit()
        yield c
        c.rollback()


@pytest.fixture(scope="module")
def graph(conn: psycopg.Connection) -> routing.RoadGraph:
    return routing.graph_for(conn)


@pytest.fixture(scope="module")
def nx_reverse(conn: psycopg.Connection) -> nx.DiGraph:
    """The road graph rebuilt from ref.road alone (directed, reverse costs, one-ways)."""
    g = nx.DiGraph()
    for _eid, s, t, c, rc in conn.execute(
        "SELECT id, source, target, cost_s, reverse_cost_s FROM ref.road"
    ):
        for a, b, w in ((s, t, c), (t, s, rc)):
            if w >= 0 and a != b and (not g.has_edge(a, b) or g[a][b]["w"] > w):
                g.add_edge(a, b, w=w)
    return g


def _points_on_edges(graph: routing.RoadGraph, n: int, seed: int, jitter_deg: float) -> tuple:
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, graph.edges, n)
    frac = rng.random(n)
    pts = shapely.line_interpolate_point(graph.geoms_wgs[edges], frac, normalized=True)
    lon = shapely.get_x(pts) + rng.normal(0, jitter_deg, n)
    lat = shapely.get_y(pts) + rng.normal(0, jitter_deg, n)
    return lon, lat


def _nx_seconds(
    graph: routing.RoadGraph, g: nx.DiGraph, units: routing.Snaps, scene: routing.Snaps
) -> np.ndarray:
    """Unit -> scene times with networkx: both points spliced into the graph as nodes."""
    h = g.copy()
    node = graph.node_id
    se, sg = int(scene.edge[0]), float(scene.fraction[0])
    h.add_edge(int(node[graph.src[se]]), "scene", w=sg * graph.cost[se])
    if graph.rcost[se] >= 0:
        h.add_edge(int(node[graph.tgt[se]]), "scene", w=(1 - sg) * graph.rcost[se])
    for i in range(len(units.edge)):
        e, f = int(units.edge[i]), float(units.fraction[i])
        u = ("unit", i)
        h.add_edge(u, int(node[graph.tgt[e]]), w=(1 - f) * graph.cost[e])
        if graph.rcost[e] >= 0:
            h.add_edge(u, int(node[graph.src[e]]), w=f * graph.rcost[e])
        if e == se and f <= sg:
            h.add_edge(u, "scene", w=(sg - f) * graph.cost[e])
        elif e == se and graph.rcost[e] >= 0:
            h.add_edge(u, "scene", w=(f - sg) * graph.rcost[e])
    dist = nx.single_source_dijkstra_path_length(h.reverse(copy=False), "scene", weight="w")
    return np.array([dist.get(("unit", i), math.inf) for i in range(len(units.edge))])


def test_graph_mirrors_ref_road_with_one_ways(graph: routing.RoadGraph, conn) -> None:
    count, oneway = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE reverse_cost_s < 0) FROM ref.road"
    ).fetchone()
    assert graph.edges == count
    assert oneway > 0, "the test network needs one-way edges"
    assert graph.v_max == pytest.approx(100 / 3.6, rel=1e-6)


def test_snapping_is_the_nearest_edge(graph: routing.RoadGraph) -> None:
    lon, lat = _points_on_edges(graph, 40, seed=3, jitter_deg=0.003)
    snaps = routing.snap(graph, lon, lat)
    for i in range(len(lon)):
        p = shapely.Point(snaps.x[i], snaps.y[i])
        brute = shapely.distance(graph.geoms_m, p)
        assert snaps.distance_m[i] == pytest.approx(brute.min(), abs=1e-6)
        assert brute[snaps.edge[i]] == pytest.approx(brute.min(), abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_etas_equal_networkx_and_pgrouting(graph, nx_reverse, conn, seed: int) -> None:
    lon, lat = _points_on_edges(graph, 60, seed=seed, jitter_deg=0.0005)
    units = routing.snap(graph, lon, lat)
    scene = routing.snap(graph, lon[:1] + 0.001, lat[:1])
    field = routing.field_to(graph, scene)
    ours, _ = routing.etas(graph, field, units)
    reference = _nx_seconds(graph, nx_reverse, units, scene)
    finite = np.isfinite(reference)
    assert np.array_equal(np.isfinite(ours), finite)
    assert np.allclose(ours[finite], reference[finite], rtol=1e-9, atol=1e-6)
    pgr = routing.pgrouting_seconds(conn, graph, units, scene)
    assert np.array_equal(np.isfinite(pgr), finite)
    assert np.allclose(pgr[finite], reference[finite], rtol=1e-6, atol=1e-3)


def test_one_way_edges_are_respected(graph, nx_reverse) -> None:
    """A scene on a one-way edge: a unit just past it must go round, not back up."""
    oneway = np.flatnonzero(graph.rcost < 0)
    e = int(oneway[0])
    line = graph.geoms_wgs[e]
    scene_pt = shapely.line_interpolate_point(line, 0.3, normalized=True)
    unit_pt = shapely.line_interpolate_point(line, 0.7, normalized=True)
    scene = routing.snap(graph, [scene_pt.x], [scene_pt.y])
    units = routing.snap(graph, [unit_pt.x], [unit_pt.y])
    assert int(scene.edge[0]) == e and int(units.edge[0]) == e
    ours, way = routing.etas(graph, routing.field_to(graph, scene), units)
    reference = _nx_seconds(graph, nx_reverse, units, scene)
    assert ours[0] == pytest.approx(reference[0], abs=1e-6)
    assert ours[0] > 0.4 * graph.cost[e] or not math.isfinite(ours[0])
    assert way[0] != 2  # never driven backwards along the one-way


def test_route_geometry_and_distance(graph, conn) -> None:
    lon, lat = _points_on_edges(graph, 10, seed=9, jitter_deg=0.0)
    units = routing.snap(graph, lon, lat)
    scene = routing.snap(graph, [lon[0] + 0.01], [lat[0]])
    field = routing.field_to(graph, scene)
    seconds, way = routing.etas(graph, field, units)
    for i in range(len(lon)):
        if not math.isfinite(seconds[i]):
            continue
        coords, metres, edges = routing.route(
            graph, field, int(units.edge[i]), float(units.fraction[i]), int(way[i])
        )
        # The path's time, edge by edge, is the ETA.
        assert len(coords) >= 2 and metres >= 0
        start = shapely.Point(coords[0])
        end = shapely.Point(coords[-1])
        assert start.distance(shapely.Point(lon[i], lat[i])) < 1e-4
        scene_pt = shapely.line_interpolate_point(
            graph.geoms_wgs[scene.edge[0]], scene.fraction[0], normalized=True
        )
        assert end.distance(scene_pt) < 1e-4
        assert edges[0] == graph.edge_id[units.edge[i]]
        assert edges[-1] == graph.edge_id[scene.edge[0]]


@pytest.fixture(scope="module")
def live_units(conn: psycopg.Connection, graph: routing.RoadGraph) -> Iterator[dict]:
    """Every unit (and extra patrol cars) at a random place on the network, live."""
    conn.execute(
        """
        INSERT INTO iot.device (id, kind, department_code, name_zh)
        SELECT 'VEH-TEST-P-' || g, 'vehicle', 'police', 'test' FROM generate_series(1, %s) g
        """,
        (EXTRA_UNITS,),
    )
    conn.execute(
        """
        INSERT INTO ops.unit (id, call_sign, unit_type, department_code, device_id)
        SELECT 'TEST-P-' || g, '测试' || g, 'patrol', 'police', 'VEH-TEST-P-' || g
        FROM generate_series(1, %s) g
        """,
        (EXTRA_UNITS,),
    )
    rows = conn.execute("SELECT id, device_id, unit_type FROM ops.unit ORDER BY id").fetchall()
    lon, lat = _points_on_edges(graph, len(rows), seed=11, jitter_deg=0.0008)
    # A few units far from any road: flagged, still ranked.
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO iot.device_state (device_id, kind, ts, geom, reading, online)
            VALUES (%s, 'vehicle', now(), ST_SetSRID(ST_MakePoint(%s, %s), 4326), '{}', true)
            ON CONFLICT (device_id) DO UPDATE SET ts = now(), geom = excluded.geom,
                online = true
            """,
            [(r[1], float(x), float(y)) for r, x, y in zip(rows, lon, lat, strict=True)],
        )
    conn.commit()
    yield {r[0]: (r[2], float(x), float(y)) for r, x, y in zip(rows, lon, lat, strict=True)}
    conn.rollback()
    conn.execute("DELETE FROM iot.device_state WHERE device_id IN (SELECT device_id FROM ops.unit)")
    conn.execute("DELETE FROM ops.unit WHERE id LIKE 'TEST-P-%%'")
    conn.execute("DELETE FROM iot.device WHERE id LIKE 'VEH-TEST-P-%%'")
    conn.commit()


@pytest.mark.parametrize("scene_seed", [21, 22, 23, 24])
def test_ranking_equals_brute_force(conn, graph, nx_reverse, live_units, scene_seed) -> None:
    s = DispatchSettings()
    slon, slat = _points_on_edges(graph, 1, seed=scene_seed, jitter_deg=0.0003)
    k = 5
    types = ["engine", "ambulance", "patrol", "hazmat"]
    rec = routing.recommend(conn, float(slon[0]), float(slat[0]), types, k=k, settings=s)
    scene = routing.snap(graph, slon, slat)
    ids = sorted(live_units)
    units = routing.snap(graph, [live_units[u][1] for u in ids], [live_units[u][2] for u in ids])
    network = _nx_seconds(graph, nx_reverse, units, scene)
    access = s.access_speed_kmh / 3.6
    total = network + (units.distance_m + scene.distance_m[0]) / access
    for t in types:
        brute = sorted(
            ((total[i], u) for i, u in enumerate(ids) if live_units[u][0] == t),
            key=lambda p: (p[0] if math.isfinite(p[0]) else math.inf, p[1]),
        )[:k]
        got = rec.by_type[t]
        assert [c.unit_id for c in got] == [u for _, u in brute], t
        for c, (eta, _) in zip(got, brute, strict=True):
            if math.isfinite(eta):
                assert c.eta_s == pytest.approx(eta, rel=1e-9, abs=1e-6)
            else:
                assert "unreachable" in c.flags
            assert ("off_network" in c.flags) == (c.snap_m > s.off_network_m)
    # The pgRouting engine ranks the same units with the same times.
    pg = routing.recommend(
        conn, float(slon[0]), float(slat[0]), types, k=k, engine="pgrouting", settings=s
    )
    for t in types:
        assert [c.unit_id for c in pg.by_type[t]] == [c.unit_id for c in rec.by_type[t]]
        for a, b in zip(pg.by_type[t], rec.by_type[t], strict=True):
            if math.isfinite(b.eta_s):
                assert a.eta_s == pytest.approx(b.eta_s, abs=1e-3)


def test_off_network_unit_is_flagged_not_hidden(conn, graph, live_units) -> None:
    # The point of the city farthest from any road among a coarse grid of candidates.
    xs, ys = np.meshgrid(np.linspace(112.1, 113.6, 40), np.linspace(35.9, 37.0, 40))
    grid = routing.snap(graph, xs.ravel(), ys.ravel())
    order = np.argsort(-grid.distance_m)
    city = shapely.from_wkb(
        bytes(
            conn.execute(
                "SELECT ST_AsBinary(geom) FROM ref.admin_area WHERE level = 'city'"
            ).fetchone()[0]
        )
    )
    far = next(i for i in order if city.contains(shapely.Point(xs.ravel()[i], ys.ravel()[i])))
    assert grid.distance_m[far] > 300
    unit = "TEST-P-1"
    conn.execute(
        "UPDATE iot.device_state SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326)"
        " WHERE device_id = 'VEH-TEST-P-1'",
        (float(xs.ravel()[far]), float(ys.ravel()[far])),
    )
    conn.commit()
    try:
        rec = routing.recommend(
            conn, float(xs.ravel()[far]) + 0.001, float(ys.ravel()[far]), ["patrol"], k=10
        )
        found = [c for c in rec.by_type["patrol"] if c.unit_id == unit]
        assert found, "the unit off the network must be ranked, not hidden"
        assert "off_network" in found[0].flags
        assert math.isfinite(found[0].eta_s)
        assert found[0].snap_m > 300
    finally:
        lon, lat = live_units[unit][1:]
        conn.execute(
            "UPDATE iot.device_state SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326)"
            " WHERE device_id = 'VEH-TEST-P-1'",
            (lon, lat),
        )
        conn.commit()


def test_naive_comparator_agrees(conn, graph, live_units) -> None:
    slon, slat = _points_on_edges(graph, 1, seed=5, jitter_deg=0.0)
    rec = routing.recommend(conn, float(slon[0]), float(slat[0]), ["ambulance"], k=3)
    s = DispatchSettings()
    positions = [(c.lon, c.lat) for c in rec.by_type["ambulance"]]
    naive = routing.naive_etas(conn, float(slon[0]), float(slat[0]), positions)
    access = s.access_speed_kmh / 3.6
    for c, n in zip(rec.by_type["ambulance"], naive, strict=True):
        network = c.eta_s - c.snap_m / access - rec.scene["snap_distance_m"] / access
        # SQL snaps in degrees, we in metres: the same edge, a fraction a hair apart.
        assert n == pytest.approx(network, rel=0.02, abs=5.0)
