"""Inundation, ponding, affected counts and shelter assignment on small known cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from affine import Affine

from apps.flood import evacuation as ev
from apps.flood import inundation as fl

T = Affine(10.0, 0, 0, 0, -10.0, 50.0)


def test_fluvial_depth_needs_connection_to_the_reach() -> None:
    # a 5x5 valley: stream down column 0; HAND rises eastwards, with a hollow at (2, 4)
    # behind a ridge at column 3
    hand = np.tile(np.array([0.0, 0.5, 1.0, 3.0, 0.2], dtype=np.float32), (5, 1))
    drain = np.repeat(np.arange(5)[:, None] * 5, 5, axis=1)  # each row drains to its col 0
    reach = np.zeros((5, 5), dtype=np.int32)
    reach[:, 0] = 7
    depth = fl.fluvial_depth(hand, drain, reach, {7: 1.2})
    np.testing.assert_allclose(depth[:, :3], np.tile([1.2, 0.7, 0.2], (5, 1)), rtol=1e-6)
    assert (depth[:, 3:] == 0).all()  # the hollow is below stage but cut off
    # at, just below and above HAND 1.0: dry, dry, wet
    assert fl.fluvial_depth(hand, drain, reach, {7: 1.0})[0, 2] == 0
    assert fl.fluvial_depth(hand, drain, reach, {7: 1.01})[0, 2] > 0
    assert not fl.fluvial_depth(hand, drain, reach, {8: 5.0}).any()  # no stage, no water


def test_flood_plain_gives_fluvial_depth_on_a_random_valley() -> None:
    rng = np.random.default_rng(4)
    h, w = 60, 80
    hand = (np.abs(np.arange(h)[:, None] - 30) * 0.4 + rng.uniform(0, 3, (h, w))).astype(np.float32)
    hand[30, :] = 0.0  # the stream, in two reaches
    hand[rng.uniform(size=(h, w)) < 0.02] = np.nan  # no-data holes
    reach = np.zeros((h, w), dtype=np.int32)
    reach[30, :40], reach[30, 40:] = 3, 5
    drain = (30 * w + np.arange(w))[None, :].repeat(h, axis=0)
    drain[:5] = -1  # cells that drain nowhere
    plain = fl.FloodPlain.build(hand, drain, reach, max_stage_m=30.0)
    for stages in ({3: 2.5}, {3: 1.0, 5: 6.0}, {5: 30.0}, {9: 4.0}):
        want = fl.fluvial_depth(hand, drain, reach, stages)
        got, (r0, r1, c0, c1) = plain.depth(stages)
        np.testing.assert_array_equal(got, want)
        wet = np.argwhere(want > 0)
        if wet.size:  # the window is the wet cells' bounding box
            assert (r0, c0) == tuple(wet.min(axis=0)) and (r1, c1) == tuple(wet.max(axis=0) + 1)
        else:
            assert (r0, r1, c0, c1) == (0, 0, 0, 0)


def test_ponding_fills_to_the_volume_then_stops_at_the_spill() -> None:
    dem = np.full((3, 4), 10.0)
    dem[1, 1], dem[1, 2] = 8.0, 9.0  # a hollow of two cells, spill level 10
    filled = np.where(dem < 10, 10.0, dem)
    acc = np.zeros_like(dem)
    acc[1, 1] = 12.0  # 12 cells of 100 m² drain into it
    # 100 mm on 12 cells = 120 m³: first 100 m³ fill cell 1 up to 9 m, then 20 m³ over two
    # cells raise the level 0.1 m -> level 9.1 m
    depth = fl.ponding_depth(dem, filled, acc, 100.0, 100.0)
    assert depth[1, 1] == pytest.approx(1.1)
    assert depth[1, 2] == pytest.approx(0.1)
    big = fl.ponding_depth(dem, filled, acc, 10000.0, 100.0)
    assert big[1, 1] == pytest.approx(2.0) and big[1, 2] == pytest.approx(1.0)


def test_affected_counts() -> None:
    depth = np.zeros((5, 5), dtype=np.float32)
    depth[1:3, 1:3] = [[0.2, 0.5], [0.31, 0.3]]
    pop = np.full((5, 5), 10.0)
    assert fl.affected_population(depth, pop) == 40
    polys = fl.flooded_polygons(depth, T)
    assert sum(p.area for p in polys) == pytest.approx(400.0)
    pts = [shapely.Point(15, 35), shapely.Point(45, 5), shapely.Point(30, 30)]
    assert fl.affected_pois(pts, polys).tolist() == [True, False, True]
    # a road through (row 1, col 2) at 0.5 m; one through row 2 cols 1-2 at 0.31 and 0.30;
    # one through row 4 (dry)
    roads = [shapely.LineString([(25, 35), (25, 45)]), shapely.LineString([(12, 25), (28, 25)]),
             shapely.LineString([(0, 5), (50, 5)])]  # fmt: skip
    assert fl.flooded_roads(roads, depth, T).tolist() == [True, True, False]
    assert fl.flooded_roads(roads, depth, T, threshold_m=0.31).tolist() == [True, False, False]


def _brute(pop: list[int], cap: list[int], t: np.ndarray) -> tuple[int, int]:
    """(people left over, total seconds) over every way to split people, for tiny cases."""
    best = (10**9, 10**9)
    choices = [
        [x for x in itertools.product(*(range(p + 1) for _ in cap)) if sum(x) <= p] for p in pop
    ]
    for combo in itertools.product(*choices):
        sent = np.array(combo)
        if (sent.sum(axis=0) > cap).any() or (sent[~np.isfinite(t)] > 0).any():
            continue
        left = sum(pop) - int(sent.sum())
        secs = int(np.nansum(np.where(sent > 0, t, 0) * sent))
        best = min(best, (left, secs))
    return best


def test_shelters_match_brute_force() -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        pop = rng.integers(0, 4, size=3).tolist()
        cap = rng.integers(0, 4, size=2).tolist()
        t = rng.integers(60, 900, size=(3, 2)).astype(float)
        t[rng.random((3, 2)) < 0.2] = np.inf
        result = ev.assign_shelters(pop, cap, t)
        assert (result.people.sum(axis=1) + result.unassigned == pop).all()
        assert (result.people.sum(axis=0) <= cap).all()
        assert (int(result.unassigned.sum()), result.total_person_seconds) == _brute(pop, cap, t)


def test_shelter_inputs_checked() -> None:
    with pytest.raises(ev.EvacuationError, match="shape"):
        ev.assign_shelters([1, 2], [3], np.zeros((1, 1)))
