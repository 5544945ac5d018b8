"""Confluences in the middle of a river line become nodes, so a tributary drains into it."""

from __future__ import annotations

import numpy as np
from shapely import LineString

from apps.water.trace import Outlet, RiverNetwork, upstream_outlets
from apps.water.tracing import _split_at_confluences


def test_a_tributary_ending_mid_line_joins_the_main_river() -> None:
    main = LineString([(0, 0), (10_000, 0)])  # flows east
    tributary = LineString([(4_000, 5_000), (4_000, 20)])  # ends 20 m from the main river
    pieces = _split_at_confluences([main, tributary])
    assert len(pieces) == 3
    # the tributary now ends on the main river: 5,000 m long
    assert sorted(round(p.length) for p in pieces) == [4_000, 5_000, 6_000]
    network = RiverNetwork.from_segments(pieces)
    outlet = Outlet("A", 4_010, 3_000, concentration_mgl=50.0, flow_m3s=0.1)  # 5 g/s
    trace = upstream_outlets(network, (9_000, 0), [outlet], snap_tolerance_m=100.0)
    row = trace.ranked.iloc[0]
    # 3,000 m down the tributary, then 5,000 m along the main river
    assert row["outlet_id"] == "A" and np.isclose(row["distance_m"], 3_000 + 5_000)
    assert np.isclose(row["load_g_s"], 5.0)


def test_an_end_near_a_line_end_is_not_a_cut() -> None:
    a = LineString([(0, 0), (1_000, 0)])
    b = LineString([(1_000, 0), (2_000, 0)])
    assert len(_split_at_confluences([a, b])) == 2
