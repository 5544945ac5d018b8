"""Upstream tracing on a small hand-made network, orienting lines by a DEM and D8 grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import LineString

from apps.water.trace import (
    OffNetworkError,
    Outlet,
    RiverNetwork,
    TraceError,
    network_from_d8,
    network_from_lines,
    upstream_outlets,
)

# West (A->J) and north (B->J) tributaries join the main stem J->K->M; a third tributary C->K
# joins below the station, which sits on J->K 1500 m below J.
LINES = [
    LineString([(0, 1000), (1000, 1000)]),  # 0: A -> J
    LineString([(1000, 2000), (1000, 1000)]),  # 1: B -> J
    LineString([(1000, 1000), (3000, 1000)]),  # 2: J -> K
    LineString([(3000, 1000), (5000, 1000)]),  # 3: K -> M
    LineString([(3000, 3000), (3000, 1000)]),  # 4: C -> K
]
STATION = (2500.0, 1000.0)
OUTLETS = [
    Outlet("O1", 500, 1010, concentration_mgl=20.0, flow_m3s=0.05),  # 1.0 g/s, 2000 m
    Outlet("O2", 1000, 1500, concentration_mgl=10.0, flow_m3s=0.3),  # 3.0 g/s, 2000 m
    Outlet("O3", 2000, 1000, concentration_mgl=5.0, flow_m3s=0.4),  # 2.0 g/s, 500 m
    Outlet("O4", 3000, 2000, concentration_mgl=90.0, flow_m3s=1.0),  # below the station
    Outlet("O5", 4000, 1000, concentration_mgl=90.0, flow_m3s=1.0),  # downstream
    Outlet("O6", 2000, 1400, concentration_mgl=90.0, flow_m3s=1.0),  # 400 m off the river
]


def test_upstream_outlets_by_hand():
    network = RiverNetwork.from_segments(LINES)
    assert len(network.node_xy) == 6
    trace = upstream_outlets(network, STATION, OUTLETS, snap_tolerance_m=100)
    assert trace.station.segment == 2 and trace.station.offset_m == pytest.approx(1500)
    assert trace.ranked["outlet_id"].tolist() == ["O2", "O3", "O1"]
    assert trace.ranked["distance_m"].tolist() == pytest.approx([2000, 500, 2000])
    assert trace.ranked["load_g_s"].tolist() == pytest.approx([3.0, 2.0, 1.0])
    assert trace.off_network == ("O6",)


def test_decay_reorders_by_distance():
    network = RiverNetwork.from_segments(LINES)
    # k = 1 /km: O2 3.0 e^-2 = 0.406, O3 2.0 e^-0.5 = 1.213, O1 1.0 e^-2 = 0.135
    trace = upstream_outlets(network, STATION, OUTLETS, 100, decay_per_km=1.0)
    assert trace.ranked["outlet_id"].tolist() == ["O3", "O2", "O1"]
    assert trace.ranked["load_at_station_g_s"].iloc[0] == pytest.approx(2.0 * math.exp(-0.5))


def test_station_off_the_network_is_refused():
    network = RiverNetwork.from_segments(LINES)
    with pytest.raises(OffNetworkError, match=r"500\.0 m from the nearest river segment"):
        upstream_outlets(network, (2500.0, 1500.0), OUTLETS, snap_tolerance_m=100)
    trace = upstream_outlets(network, (2500.0, 1050.0), OUTLETS, snap_tolerance_m=100)
    assert trace.station.distance_m == pytest.approx(50)


def test_station_at_the_mouth_sees_every_outlet():
    network = RiverNetwork.from_segments(LINES)
    trace = upstream_outlets(network, (5000.0, 1000.0), OUTLETS, 100)
    by_id = dict(zip(trace.ranked["outlet_id"], trace.ranked["distance_m"], strict=True))
    assert by_id == pytest.approx({"O1": 4500, "O2": 4500, "O3": 3000, "O4": 3000, "O5": 1000})


def test_lines_oriented_downhill_by_a_dem():
    def dem(x, y):
        return 1000.0 - 0.1 * np.asarray(x) + 0.1 * np.asarray(y)

    scrambled = [LineString(line.coords[::-1]) if i % 2 else line for i, line in enumerate(LINES)]
    network = network_from_lines(scrambled, dem)
    for line, expected in zip(network.segments, LINES, strict=True):
        assert list(line.coords) == list(expected.coords)
    trace = upstream_outlets(network, STATION, OUTLETS, 100)
    assert trace.ranked["outlet_id"].tolist() == ["O2", "O3", "O1"]
    with pytest.raises(TraceError, match="river line 0 cannot be oriented"):
        network_from_lines([LineString([(0, 0), (10, 0)])], lambda x, y: np.zeros(len(x)))


def test_network_from_d8():
    # 3 × 3 cells of 100 m: (0,0) SE and (0,2) SW drain to (1,1), which drains S to (2,1),
    # which drains S out of the grid
    flow = np.array([[2, 0, 8], [0, 4, 0], [0, 4, 0]])
    stream = flow > 0
    network = network_from_d8(flow, stream, Affine(100, 0, 0, 0, -100, 300))
    assert len(network.segments) == 3
    assert sorted(network.lengths.tolist()) == pytest.approx([100, 100 * 2**0.5, 100 * 2**0.5])
    outlets = [Outlet("NW", 50, 250, 1.0, 1.0), Outlet("NE", 250, 250, 2.0, 1.0)]
    trace = upstream_outlets(network, (150, 50), outlets, snap_tolerance_m=10)
    assert trace.ranked["outlet_id"].tolist() == ["NE", "NW"]
    assert trace.ranked["distance_m"].tolist() == pytest.approx([100 + 100 * 2**0.5] * 2)
    with pytest.raises(TraceError, match="D8 code 3"):
        network_from_d8(np.array([[3, 1]]), np.array([[True, True]]), Affine.identity())
