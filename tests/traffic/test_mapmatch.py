"""Map matching on a hand-made street grid with a seeded noisy drive."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from apps.traffic.mapmatch import (
    MapMatchError,
    MatchNetwork,
    MatchSettings,
    match_track,
    measure_throughput,
    simulate_track,
)


def grid(n: int = 8, spacing: float = 150.0, far: bool = True) -> MatchNetwork:
    """An n x n lattice of two-way streets (segment ids 100...), plus a lone road 50 km east."""
    node = lambda i, j: i * n + j  # noqa: E731
    src, tgt, lines = [], [], []
    for i in range(n):
        for j in range(n):
            if j + 1 < n:
                src.append(node(i, j)), tgt.append(node(i, j + 1))
                lines.append([(j * spacing, i * spacing), ((j + 1) * spacing, i * spacing)])
            if i + 1 < n:
                src.append(node(i, j)), tgt.append(node(i + 1, j))
                lines.append([(j * spacing, i * spacing), (j * spacing, (i + 1) * spacing)])
    if far:
        src.append(n * n), tgt.append(n * n + 1)
        lines.append([(50_000.0, 0.0), (51_000.0, 0.0)])
    k = len(lines)
    oneway = np.zeros(k, bool)
    oneway[0] = True  # the first street, (0,0) -> (0,1), is one-way eastbound
    return MatchNetwork(
        np.arange(100, 100 + k), shapely.linestrings(lines), np.array(src), np.array(tgt), oneway
    )


NET = grid()


def test_noisy_drive_is_matched_to_the_true_segments() -> None:
    # 11 m/s every 3 s, so fixes do not fall exactly on intersections (where the "true"
    # segment is any of four). GPS noise 4 m; at 6 m the share drops to about 94 %, the
    # misses being fixes within the noise of a crossing.
    x, y, t, truth = simulate_track(NET, 600, seed=2, sigma_m=4.0, interval_s=3.0, speed_ms=11.0)
    result = match_track(NET, x, y, t, MatchSettings(sigma_m=4.0))
    share = np.mean(result.segment_id == truth)
    assert share >= 0.95, share
    assert (result.part == 0).all()  # one unbroken part
    # Speeds between consecutive fixes: route distance / time, close to the 10 m/s driven.
    speed = result.pair_speed_kmh
    assert np.median(speed) == pytest.approx(39.6, rel=0.05)
    seg, metres, seconds = result.segment_traversals()
    assert len(seg) > 300 and (seconds == 3.0).all()
    assert np.median(metres / seconds) == pytest.approx(11.0, rel=0.05)


def test_a_fix_50_km_away_starts_a_new_part() -> None:
    x = np.array([10.0, 40.0, 70.0, 50_500.0, 50_530.0])
    y = np.array([2.0, -3.0, 1.0, 3.0, -2.0])
    result = match_track(NET, x, y, np.arange(5.0) * 5)
    assert result.part.tolist() == [0, 0, 0, 1, 1]
    assert result.segment_id[-1] == NET.segment_id[-1]
    assert result.offset_m[:3] == pytest.approx([10.0, 40.0, 70.0])
    assert result.pair_from.tolist() == [0, 1, 3]  # no pair across the break
    assert result.pair_route_m == pytest.approx([30.0, 30.0, 30.0])
    seg, metres, _ = result.segment_traversals()
    assert seg.tolist() == [100, 100, NET.segment_id[-1]] and metres == pytest.approx([30] * 3)


def test_off_road_fix_stays_unmatched_and_oneway_is_respected() -> None:
    # The middle fix is 500 m from any road: unmatched, the part goes on around it.
    x = np.array([140.0, 75.0, 10.0])  # westbound along the one-way eastbound street
    y = np.array([0.0, 500.0, 0.0])
    result = match_track(NET, x, y, np.array([0.0, 10.0, 20.0]))
    assert result.segment_id[1] == -1 and result.part[1] == -1
    # Driving west on street 100 is forbidden: the route goes round the block (150 + 3 sides).
    assert result.pair_route_m[0] > 400


def test_bad_tracks_are_refused() -> None:
    with pytest.raises(MapMatchError, match="backwards at fix 2"):
        match_track(NET, [0, 1, 2], [0, 0, 0], [0, 2, 1])
    with pytest.raises(MapMatchError, match="equal length"):
        match_track(NET, [0, 1], [0], [0, 1])
    with pytest.raises(MapMatchError, match="sigma_m"):
        MatchSettings(sigma_m=0)


def test_throughput_helper_reports_rate_and_accuracy() -> None:
    figures = measure_throughput(grid(20, far=False), 3000, seed=4)
    assert figures["points"] == 3000
    assert figures["true_share"] >= 0.95
    assert figures["points_per_s"] > 0


def test_network_from_the_dispatch_road_graph() -> None:
    from apps.dispatch.routing import build_graph

    # Two streets in central Changzhi (WGS84); the second is one-way (reverse cost < 0).
    wgs = shapely.linestrings(
        [[(113.110, 36.190), (113.112, 36.190)], [(113.112, 36.190), (113.112, 36.192)]]
    )
    graph = build_graph(
        1,
        np.array([7, 9]),
        np.array([1, 2]),
        np.array([2, 3]),
        np.array([10.0, 10.0]),
        np.array([10.0, -1.0]),
        np.array([180.0, 222.0]),
        wgs,
    )
    net = MatchNetwork.from_road_graph(graph)
    assert net.oneway.tolist() == [False, True]
    mid = shapely.line_interpolate_point(graph.geoms_m, 0.5, normalized=True)
    x, y = shapely.get_x(mid) + 3.0, shapely.get_y(mid)
    result = match_track(net, x, y, [0.0, 30.0])
    assert result.segment_id.tolist() == [7, 9]
