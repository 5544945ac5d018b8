"""Space-mean speeds, day-type bins at their edges, the exponentially weighted table."""

from __future__ import annotations

import numpy as np
import pytest

from apps.traffic.speeds import SpeedError, TypicalSpeeds, live_speeds, time_bin

H = 3_600_000_000
# 2026-12-04 is a Friday, 2026-12-05 a Saturday; midnight China time = 16:00 UTC the day before.
FRI_0000_CST = (np.datetime64("2026-12-03T16:00", "us").astype(np.int64)).item()


def test_space_mean_is_not_the_arithmetic_mean() -> None:
    # 1 km at 60 km/h (60 s) and 1 km at 20 km/h (180 s): 2 km in 240 s = 30 km/h, not 40.
    s = live_speeds([3, 3, 9], [1000, 1000, 500], [60, 180, 30], [3, 9, 11], [60, 60, 50])
    assert s.segment_id.tolist() == [3, 9]
    assert s.speed_kmh == pytest.approx([30.0, 60.0])
    assert s.congestion_index == pytest.approx([0.5, 1.0])
    assert s.observations.tolist() == [2, 1]
    with pytest.raises(SpeedError, match=r"unknown segment id\(s\) \[4\]"):
        live_speeds([4], [10], [1], [3], [60])
    with pytest.raises(SpeedError, match="positive"):
        live_speeds([3], [10], [0], [3], [60])


def test_time_bins_at_their_edges() -> None:
    t = np.array([0, 15 * 60_000_000 - 1, 15 * 60_000_000, 24 * H - 1, 24 * H]) + FRI_0000_CST
    daytype, tbin = time_bin(t)
    assert tbin.tolist() == [0, 0, 1, 95, 0]
    assert daytype.tolist() == [0, 0, 0, 0, 1]  # the last instant is Saturday 00:00


def test_typical_speed_is_exponentially_weighted_per_batch() -> None:
    table = TypicalSpeeds(np.array([30, 10]), alpha=0.25)
    t = FRI_0000_CST + 8 * H  # Friday 08:00, bin 32
    table.update([10, 10], [t, t + 60_000_000], [40.0, 20.0])  # first batch sets: mean 30
    assert table.typical([10], [t]) == pytest.approx([30.0])
    table.update([10], [t], [50.0])  # 30 + 0.25 * (50 - 30)
    assert table.typical([10], [t]) == pytest.approx([35.0])
    # The weekend cell of the same hour, and the other segment, learnt nothing yet.
    assert np.isnan(table.typical([10, 30], [t + 24 * H, t])).all()
    with pytest.raises(SpeedError, match="alpha"):
        TypicalSpeeds(np.array([1]), alpha=0.0)
