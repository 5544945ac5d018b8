"""Rain, forecast, inundation and evacuation on the loaded city, with readings written here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import psycopg
import pytest
import shapely

from apps.dispatch import routing
from apps.flood import service
from gis_core.errors import InvalidInput, NotFound
from gis_core.network import Snaps, graph_for, reopen_roads

pytestmark = pytest.mark.services

# A fixed storm hour, inside the telemetry partitions (today), away from the live simulator.
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture
def conn(prepared: object, db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as c:
        yield c
        c.rollback()
        reopen_roads(c, source="flood")
        c.commit()


def _readings(conn: psycopg.Connection, kind: str, rows: list[tuple[str, datetime, dict]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO iot.telemetry (device_id, kind, ts, seq, reading)"
            " VALUES (%s, %s, %s, NULL, %s::jsonb)",
            [(d, kind, ts, orjson.dumps(r).decode()) for d, ts, r in rows],
        )


def _rain_ids(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT id FROM iot.device WHERE kind = 'rain' ORDER BY id")]


def test_rain_sums_each_gauge_over_the_window_and_areal_means_stay_in_range(conn) -> None:
    ids = _rain_ids(conn)
    assert len(ids) >= 3
    # two readings inside the 1 h window, one just outside (at the window's start: excluded)
    mm = {d: float(k % 5) * 2.0 for k, d in enumerate(ids)}
    rows = [(d, END - timedelta(minutes=10), {"mm": v}) for d, v in mm.items()]
    rows += [(d, END, {"mm": 1.0}) for d in ids]
    rows += [(d, END - timedelta(hours=1), {"mm": 99.0}) for d in ids]
    _readings(conn, "rain", rows)
    for method in ("idw", "thiessen"):
        out = service.rain(conn, window="1h", method=method, end=END, cell_m=2000)
        assert out["method"] == method and out["silent"] == []
        got = {g["id"]: g["mm"] for g in out["gauges"]}
        assert got == {d: pytest.approx(v + 1.0) for d, v in mm.items()}
        lo, hi = min(got.values()), max(got.values())
        # both methods weight gauges with non-negative weights summing to one
        for row in out["districts"] + out["catchments"]:
            assert row["mm"] is None or lo - 1e-6 <= row["mm"] <= hi + 1e-6
        assert out["districts"] and out["catchments"]
        assert out["isohyets"]["features"]
    krige = service.rain(conn, window="1h", method="kriging", end=END, cell_m=2000)
    assert krige["method"] in ("kriging", "idw") and krige["notes"]


def test_rain_with_no_readings_in_the_window_names_the_silence(conn) -> None:
    with pytest.raises(InvalidInput, match="no rain gauge reported"):
        service.rain(conn, window="24h", end=END - timedelta(days=20))
    with pytest.raises(InvalidInput, match="window '2h'"):
        service.rain(conn, window="2h", end=END)
    with pytest.raises(InvalidInput, match="method 'spline'"):
        service.rain(conn, method="spline", end=END)
    with pytest.raises(InvalidInput, match="UTC offset"):
        service.rain(conn, end=END.replace(tzinfo=None))


def _gauge_with_catchment(conn: psycopg.Connection) -> tuple[str, str]:
    row = conn.execute(
        "SELECT c.site_id, d.id FROM flood.catchment c JOIN iot.device d ON d.site_id = c.site_id"
        " ORDER BY c.area_km2 DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_forecast_returns_observed_and_forecast_with_the_warning_lines(conn) -> None:
    site, device = _gauge_with_catchment(conn)
    steps = [END - timedelta(minutes=5 * k) for k in range(72)]  # 6 h of 5-min readings
    _readings(
        conn,
        "water_level",
        [(device, t, {"level_m": 1.0 + 0.001 * k}) for k, t in enumerate(steps)],
    )
    _readings(conn, "rain", [(d, END - timedelta(hours=2), {"mm": 20.0}) for d in _rain_ids(conn)])
    out = service.forecast(conn, site, now=END, hours=6, horizon_h=3)
    assert len(out["observed_m"]) == 24 and len(out["forecast_m"]) == 12
    assert len(out["times"]) == 36 and out["times"][23] == END
    warning = conn.execute(
        "SELECT (thresholds->>'warning_m')::float8 FROM iot.monitoring_site WHERE id = %s", (site,)
    ).fetchone()[0]
    assert out["warning_m"] == warning
    # the forecast starts from the last observed stage (updated to it)
    assert out["forecast_m"][0] == pytest.approx(out["observed_m"][-1], abs=0.5)
    assert sum(out["rain_mm"]) > 0
    if out["warning_at"] is not None:
        k = out["times"].index(out["warning_at"]) - 24
        assert out["forecast_m"][k] >= warning and all(v < warning for v in out["forecast_m"][:k])
    # by device id too
    assert service.forecast(conn, device, now=END, hours=6, horizon_h=3)["site_id"] == site


def test_forecast_refuses_unknown_silent_and_unrated_gauges(conn) -> None:
    site, _ = _gauge_with_catchment(conn)
    with pytest.raises(NotFound, match="no river gauge 'WL-nowhere'"):
        service.forecast(conn, "WL-nowhere")
    with pytest.raises(InvalidInput, match="silent"):
        service.forecast(conn, site, now=END - timedelta(days=20))
    conn.execute("DELETE FROM flood.rating WHERE site_id = %s", (site,))
    with pytest.raises(InvalidInput, match="no stage-discharge rating"):
        service.forecast(conn, site, now=END)


def test_inundation_closes_the_flooded_roads_and_reopens_them(conn) -> None:
    before = graph_for(conn)
    out = service.inundate(conn, rise_m=4.0)
    conn.commit()
    assert out["wet_cells"] > 0
    assert 0 < out["max_depth_m"] <= 4.0 + 1e-6  # depth = stage - HAND, HAND >= 0
    assert out["flooded"]["features"]
    closed = graph_for(conn)
    assert closed.version > before.version
    ids = set(out["roads_flooded"])
    assert out["roads_closed"] == len(ids)
    assert {int(i) for i in closed.edge_id[closed.closed]} == ids
    assert service.reopen(conn) == len(ids)
    conn.commit()
    assert not graph_for(conn).closed.any()


def test_inundation_refuses_bad_stages(conn) -> None:
    site, _ = _gauge_with_catchment(conn)
    h0 = conn.execute("SELECT h0 FROM flood.rating WHERE site_id = %s", (site,)).fetchone()[0]
    with pytest.raises(InvalidInput, match="below its channel bed"):
        service.inundate(conn, stages={site: h0 - 0.01})
    with pytest.raises(InvalidInput, match="not a river stage"):
        service.inundate(conn, stages={site: h0 + 30.01})
    with pytest.raises(InvalidInput, match="exactly one"):
        service.inundate(conn, stages={site: h0 + 1}, rise_m=1.0)
    with pytest.raises(InvalidInput, match="rise_m"):
        service.inundate(conn, rise_m=0.0)
    with pytest.raises(NotFound):
        service.inundate(conn, stages={"WL-nowhere": 2.0})
    # just at the bed: valid, and nothing is wet from that gauge
    assert service.inundate(conn, stages={site: h0}, close=False)["wet_cells"] == 0


def test_evacuation_respects_capacities_and_avoids_flooded_roads(conn) -> None:
    plan = service.evacuate(conn, rise_m=4.0)
    if plan["people"] == 0:
        pytest.skip("no population cell under this scenario on the 1 km test city")
    assert plan["assigned"] + plan["unassigned"] == plan["people"]
    caps = dict(
        conn.execute("SELECT id, capacity FROM ref.poi WHERE category = 'shelter'").fetchall()
    )
    for s in plan["shelters"]:
        assert 0 < s["assigned"] <= caps[s["id"]] == s["capacity"]
    assert sum(d["people"] for d in plan["districts"]) == plan["people"]
    # the routes never drive along a road under water
    sc = service.scenario(conn, rise_m=4.0)
    assert plan["routes"]["features"] and plan["roads_avoided"] == len(sc.flooded_edges)
    for f in plan["routes"]["features"]:
        route = shapely.geometry.shape(f["geometry"])
        for part in shapely.get_parts(route):
            assert not any(part.equals(g) for g in sc.graph.geoms_wgs[sc.flooded_edges])


def _unit_on(graph, edge: int) -> Snaps:
    return Snaps(np.array([edge]), np.array([0.5]), np.zeros(1), np.zeros(1), np.zeros(1))


def test_a_dispatch_recommendation_routes_around_a_road_the_flood_closed(conn) -> None:
    open_graph = graph_for(conn)
    sc = service.scenario(conn, rise_m=4.0)
    flooded = set(sc.flooded_edges.tolist())
    assert flooded, "the scenario floods no road"
    # A flooded edge that the fastest route from a neighbour edge to another one uses.
    found = None
    for e in sc.flooded_edges:
        before_ids = {}
        ins = np.flatnonzero(
            (open_graph.tgt == open_graph.src[e]) & (np.arange(open_graph.edges) != e)
        )
        outs = np.flatnonzero(
            (open_graph.src == open_graph.tgt[e]) & (np.arange(open_graph.edges) != e)
        )
        ins = [i for i in ins if i not in flooded]
        outs = [o for o in outs if o not in flooded]
        for a in ins[:3]:
            for b in outs[:3]:
                fld = routing.field_to(open_graph, _unit_on(open_graph, b))
                secs, way = routing.etas(open_graph, fld, _unit_on(open_graph, a))
                if np.isfinite(secs[0]):
                    _, _, edges = routing.route(open_graph, fld, a, 0.5, int(way[0]))
                    if int(open_graph.edge_id[e]) in edges:
                        before_ids = {"a": a, "b": b, "secs": float(secs[0])}
                        break
            if before_ids:
                break
        if before_ids:
            found = (int(e), before_ids)
            break
    assert found is not None, "no flooded road lies on a fastest route between its neighbours"
    e, case = found
    service.inundate(conn, rise_m=4.0)
    conn.commit()
    closed = graph_for(conn)
    assert closed.closed[closed.edge_index[int(open_graph.edge_id[e])]]
    fld = routing.field_to(closed, _unit_on(closed, case["b"]))
    secs, way = routing.etas(closed, fld, _unit_on(closed, case["a"]))
    if np.isfinite(secs[0]):
        _, _, edges = routing.route(closed, fld, case["a"], 0.5, int(way[0]))
        assert int(open_graph.edge_id[e]) not in edges
        assert secs[0] > case["secs"]  # the detour is slower


def test_a_wide_flood_is_drawn_in_blocks_that_cover_every_wet_cell(conn, monkeypatch) -> None:
    fine = service.inundate(conn, rise_m=3.0, close=False)
    monkeypatch.setattr(service, "DRAWN_CELLS", 50)
    coarse = service.inundate(conn, rise_m=3.0, close=False)
    assert any("blocks" in n for n in coarse["notes"])
    assert not any("blocks" in n for n in fine["notes"])
    assert coarse["wet_cells"] == fine["wet_cells"] and coarse["people"] == fine["people"]
    area = [
        shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in r["flooded"]["features"]])
        for r in (fine, coarse)
    ]
    # blocks take the deepest class of their cells: they cover the cell-by-cell polygons
    # (both are simplified by half a cell for the map: covered, to within that)
    assert area[1].area > area[0].area
    assert area[0].intersection(area[1]).area > 0.95 * area[0].area
    assert len(coarse["flooded"]["features"]) < len(fine["flooded"]["features"])
