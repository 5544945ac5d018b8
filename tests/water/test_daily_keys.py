"""The daily grouping of water-quality readings: local days and stations as keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.water.quality import WaterQualityError, daily_classes


def test_local_midnight_splits_days_and_gaps_are_skipped() -> None:
    # 15:59 UTC is 23:59 in China, 16:00 UTC is the next day's 00:00
    readings = pd.DataFrame(
        {
            "station": ["B", "B", "A", "A"],
            "ts": pd.to_datetime(
                ["2026-06-01 15:59", "2026-06-01 16:00", "2026-06-01 08:00", "2026-06-01 09:00"]
            ),
            "cod": [30.0, 10.0, 20.0, np.nan],
            "nh3n": [0.1, 0.1, 0.5, 0.5],
        }
    )
    daily = daily_classes(readings)
    assert daily["station"].tolist() == ["A", "B", "B"]  # sorted by station, then day
    assert [str(d.date()) for d in daily["date"]] == ["2026-06-01", "2026-06-01", "2026-06-02"]
    assert daily["hours"].tolist() == [2, 1, 1]
    assert daily["cod"].tolist() == [20.0, 30.0, 10.0]  # the NaN hour is not a zero
    # COD 20 is at the class III limit, COD 30 at the IV limit; COD 10 (<= 15) and NH3-N 0.1
    # (<= 0.15) are both class I
    assert daily["water_class"].tolist() == [3, 4, 1]


def test_rows_without_a_station_are_refused() -> None:
    readings = pd.DataFrame(
        {
            "station": ["A", None],
            "ts": pd.to_datetime(["2026-06-01", "2026-06-01"]),
            "cod": [1.0, 2.0],
        }
    )
    with pytest.raises(WaterQualityError, match="without a station"):
        daily_classes(readings)
