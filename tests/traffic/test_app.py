"""The traffic application on the platform: its tables, routes and commands against a real
PostGIS with the reference dataset (and traffic's synthesized junctions and signs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from scipy.sparse.csgraph import dijkstra

from apps.traffic import service
from gis_core.crs import CGCS2000_GK_CM114, WGS84, transform
from gis_core.network import graph_for, reopen_roads

pytestmark = pytest.mark.services

T0 = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)  # a quarter hour: bins start here


def _iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _junction(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT min(id) FROM traffic.junction").fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


# One cycle of phase 2 and its advance detector (channel 10, wired to phase 2): green at
# 0 s, yellow at 30 s, red clearance at 33 s, green again at 60 s, red clearance at 93 s.
# Arrivals at 10 s (green) and 40 s (red): 2 arrivals, 1 on green.
CYCLE = [
    (0, 1, 2), (30, 8, 2), (33, 10, 2), (60, 1, 2), (90, 8, 2), (93, 10, 2),
    (10, 82, 10), (10.5, 81, 10), (40, 82, 10), (40.5, 81, 10), (120, 1, 2),
]  # fmt: skip


def _batch(junction: int, rows: list[tuple[float, int, int]]) -> dict[str, object]:
    return {
        "junction_id": junction,
        "ts": [_iso(t) for t, _, _ in rows],
        "code": [c for _, c, _ in rows],
        "param": [p for _, _, p in rows],
    }


def test_synthesizer_made_junctions_detectors_and_signs(reference, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        j, d, signals = conn.execute(
            "SELECT (SELECT count(*) FROM traffic.junction),"
            " (SELECT count(*) FROM traffic.detector),"
            # the reference data's controllers (other tests register site-less ones)
            " (SELECT count(*) FROM iot.device WHERE kind = 'signal' AND site_id IS NOT NULL)"
        ).fetchone()  # type: ignore[misc]
        signs = conn.execute("SELECT count(*) FROM traffic.sign").fetchone()
    assert j == signals > 0
    assert d == 12 * j  # 8 presence + 4 advance per junction
    assert signs is not None and signs[0] >= 3


def test_events_counted_then_measured(reference, api, admin_headers, db_url: str) -> None:
    junction = _junction(db_url)
    rows = [*CYCLE[::-1], CYCLE[0]]  # reversed (out of order) and one duplicate
    r = api.post("/traffic/events", json=_batch(junction, rows), headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 12,
        "stored": 11,
        "duplicates_in_batch": 1,
        "already_stored": 0,
        "out_of_order": r.json()["out_of_order"],
    }
    assert r.json()["out_of_order"] > 0
    again = api.post("/traffic/events", json=_batch(junction, CYCLE), headers=admin_headers)
    assert again.json()["stored"] == 0 and again.json()["already_stored"] == 11

    params = {"from": _iso(0), "to": _iso(900)}
    m = api.get(f"/traffic/junctions/{junction}/measures", params=params, headers=admin_headers)
    assert m.status_code == 200, m.text
    phase2 = [row for row in m.json()["rows"] if row["phase"] == 2]
    assert len(phase2) == 1
    assert phase2[0]["arrivals"] == 2 and phase2[0]["arrivals_on_green"] == 1
    assert phase2[0]["volume"] == 2
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT arrivals, arrivals_on_green FROM traffic.measure"
            " WHERE junction_id = %s AND phase = 2 AND bin_start = %s",
            (junction, T0),
        ).fetchone()
    assert stored == (2, 1)

    pcd = api.get(f"/traffic/junctions/{junction}/pcd", params=params, headers=admin_headers)
    assert pcd.status_code == 200, pcd.text
    # Only the arrival at 40 s lies inside a complete cycle (red at 33 s to red at 93 s).
    (point,) = pcd.json()
    assert point["t_in_cycle_s"] == pytest.approx(7.0)
    assert point["green_start_s"] == pytest.approx(27.0)
    assert point["green_end_s"] == pytest.approx(57.0)
    assert point["cycle_s"] == pytest.approx(60.0)


def test_violation_on_green_goes_to_review_on_red_stands(
    reference, api, admin_headers, db_url: str
) -> None:
    junction = _junction(db_url)
    api.post("/traffic/events", json=_batch(junction, CYCLE), headers=admin_headers)
    body = {"junction_id": junction, "phase": 2, "plate": "晋D12345"}
    green = api.post("/traffic/violations", json={**body, "ts": _iso(15)}, headers=admin_headers)
    red = api.post("/traffic/violations", json={**body, "ts": _iso(45)}, headers=admin_headers)
    assert green.status_code == red.status_code == 200, green.text + red.text
    assert (green.json()["verdict"], green.json()["signal_state"]) == ("review", "green")
    assert (red.json()["verdict"], red.json()["signal_state"]) == ("confirmed", "red")
    silent = api.post(
        "/traffic/violations", json={**body, "ts": _iso(86_400)}, headers=admin_headers
    )
    assert silent.json()["verdict"] == "no_signal_data"


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"ts": ["2026-12-06T00:00:00"]}, 422, "time zone"),
        ({"code": [300]}, 422, "code"),
        ({"junction_id": 999_999}, 404, "junction"),
        ({"param": [1, 2]}, 422, "equal lengths"),
    ],
)
def test_bad_batches_are_refused_with_a_reason(
    reference, api, admin_headers, db_url: str, change, status, words
) -> None:
    body = {**_batch(_junction(db_url), [(0, 1, 2)]), **change}
    r = api.post("/traffic/events", json=body, headers=admin_headers)
    assert r.status_code == status, r.text
    assert words in r.text


def test_measures_window_must_be_ordered(reference, api, admin_headers, db_url: str) -> None:
    junction = _junction(db_url)
    params = {"from": _iso(900), "to": _iso(0)}
    r = api.get(f"/traffic/junctions/{junction}/measures", params=params, headers=admin_headers)
    assert r.status_code == 422 and "must come after" in r.text


def test_fault_opens_a_work_order_that_escalates_when_overdue(
    reference, api, admin_headers, db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        device = conn.execute(
            "SELECT device_id FROM traffic.junction WHERE device_id IS NOT NULL LIMIT 1"
        ).fetchone()
        assert device is not None
        # Raised 7 h ago: due 3 h ago (4 h to repair), so escalated to level 2 (every 2 h).
        conn.execute(
            "INSERT INTO iot.alarm (kind, rule, severity, device_id, message_zh, message_en,"
            " raised_at) VALUES ('signal', 'signal.fault', 2, %s, '信号机故障：lamp out',"
            " 'signal fault: lamp out', now() - interval '7 hours')",
            (device[0],),
        )
        conn.commit()
    r = api.get("/traffic/work-orders", headers=admin_headers)
    assert r.status_code == 200, r.text
    mine = [o for o in r.json() if o["device_id"] == device[0] and o["state"] == "open"]
    assert len(mine) == 1
    assert mine[0]["escalation"] == 2
    again = api.get("/traffic/work-orders", headers=admin_headers).json()
    assert len([o for o in again if o["device_id"] == device[0]]) == 1  # opened once
    done = api.patch(
        f"/traffic/work-orders/{mine[0]['id']}", json={"state": "done"}, headers=admin_headers
    )
    assert done.json()["closed_by"] == "root-admin"


def test_sign_messages_are_validated(reference, api, admin_headers) -> None:
    signs = api.get("/traffic/signs", headers=admin_headers).json()
    sign = signs[0]
    long = "前方" * (sign["columns"] * sign["rows"])
    r = api.post(f"/traffic/signs/{sign['id']}/message", json={"text": long}, headers=admin_headers)
    assert r.status_code == 422 and "the sign has" in r.text
    r = api.post(
        f"/traffic/signs/{sign['id']}/message", json={"lines": ["前方😀"]}, headers=admin_headers
    )
    assert r.status_code == 422 and "U+1F600" in r.text
    ok = api.post(
        f"/traffic/signs/{sign['id']}/message",
        json={"text": "前方施工", "reason": "works"},
        headers=admin_headers,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["lines"] == ["前方施工"] and ok.json()["sent_by"] == "root-admin"


def test_fleet_fixes_give_live_speeds_and_slow_the_dispatch_graph(
    reference, api, admin_headers, db_url: str
) -> None:
    from apps.traffic.mapmatch import simulate_track

    with psycopg.connect(db_url) as conn:
        net = service.match_network(graph_for(conn))
        x, y, t, _truth = simulate_track(net, 120, seed=3, speed_ms=8.0, interval_s=3.0)
        lon, lat = transform(x, y, CGCS2000_GK_CM114, WGS84)
        start = datetime.now(UTC) - timedelta(minutes=8)
        # This track is the fleet of the window: earlier modules' vehicles drove in it too.
        conn.execute(
            "DELETE FROM iot.telemetry WHERE kind = 'vehicle' AND ts >= now() - interval '1 day'"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO iot.telemetry (device_id, kind, ts, geom, reading) VALUES"
                " ('TEST-TRAFFIC-1', 'vehicle', %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326),"
                " '{}'::jsonb)",
                [
                    (start + timedelta(seconds=float(s)), float(a), float(b))
                    for s, a, b in zip(t, lon, lat, strict=True)
                ],
            )
        conn.commit()
    r = api.post("/traffic/speeds/update", params={"minutes": 15}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["fixes"] >= 100 and r.json()["segments"] > 0
    geo = api.get("/traffic/speeds", headers=admin_headers).json()
    speeds = [f["properties"]["speed_kmh"] for f in geo["features"]]
    assert np.median(speeds) == pytest.approx(8.0 * 3.6, rel=0.25)  # driven at 28.8 km/h

    with psycopg.connect(db_url) as conn:
        road = int(geo["features"][0]["properties"]["road_id"])
        conn.execute(
            "UPDATE traffic.segment_speed SET congestion_index = 0.25 WHERE road_id = %s",
            (road,),
        )
        conn.commit()
        graph = graph_for(conn)
        e = graph.edge_index[road]
        before = dijkstra(graph.forward, indices=int(graph.src[e]))[int(graph.tgt[e])]
    applied = api.post("/traffic/speeds/apply", params={"below": 0.3}, headers=admin_headers)
    assert applied.status_code == 200 and applied.json()["slowed"] >= 1
    with psycopg.connect(db_url) as conn:
        graph = graph_for(conn)
        assert graph.speed_factor[graph.edge_index[road]] == pytest.approx(0.25)
        after = dijkstra(graph.forward, indices=int(graph.src[e]))[int(graph.tgt[e])]
        reopen_roads(conn, source="traffic")
        conn.commit()
    # The dispatch ETA over that edge grows (up to 4×, less if a detour is quicker).
    assert after > before * 1.2
