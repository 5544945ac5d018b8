"""Exceedances: hourly validity (45 minutes), oxygen correction, de-bouncing, GB 3095 limits."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from apps.environment import exceedance as ex

START = np.datetime64("2026-05-01T00:00", "m")


def minutes(hours: int) -> np.ndarray:
    return START + np.arange(hours * 60).astype("timedelta64[m]")


def test_hour_valid_with_45_minutes_not_44() -> None:
    times = minutes(3)
    c = np.full(times.size, 50.0)
    flags = np.full(times.size, "N")
    flags[60 : 60 + 15] = "C"  # hour 1: 45 valid minutes (calibration for 15)
    flags[120 : 120 + 16] = "D"  # hour 2: 44 valid minutes (fault for 16)
    hourly = ex.hourly_averages(times, c, flags=flags)
    assert hourly.valid_minutes.tolist() == [60, 45, 44]
    assert hourly.valid.tolist() == [True, True, False]
    assert hourly.value[:2].tolist() == [50.0, 50.0] and np.isnan(hourly.value[2])
    assert hourly.hour_start[1] == np.datetime64("2026-05-01T01", "h")


def test_invalid_minutes_do_not_enter_the_mean() -> None:
    times = minutes(1)
    c = np.full(60, 10.0)
    c[:10] = 1000.0
    flags = np.full(60, "N")
    flags[:10] = "M"  # maintenance spikes are not emissions
    hourly = ex.hourly_averages(times, c, flags=flags)
    assert hourly.value[0] == pytest.approx(10.0)
    c[50:] = np.nan  # and missing minutes neither: 40 valid now, hour invalid
    assert not ex.hourly_averages(times, c, flags=flags).valid[0]


def test_oxygen_corrected_hourly_average() -> None:
    times = minutes(1)
    c = np.full(60, 100.0)
    o2 = np.full(60, 9.0)
    o2[30:] = 11.0
    hourly = ex.hourly_averages(times, c, o2_pct=o2, o2_reference_pct=6.0)
    # Half the minutes 100·15/12 = 125, half 100·15/10 = 150: mean 137.5.
    assert hourly.value[0] == pytest.approx(137.5)
    with pytest.raises(ex.ExceedanceInputError, match="both"):
        ex.hourly_averages(times, c, o2_pct=o2)
    assert np.isnan(ex.oxygen_corrected([100.0], [21.0], 6.0)[0])


def _hourly(values: list[float]) -> ex.HourlyAverages:
    value = np.array(values, dtype=float)
    valid = ~np.isnan(value)
    starts = np.datetime64("2026-05-01T00", "h") + np.arange(value.size).astype("timedelta64[h]")
    return ex.HourlyAverages(starts, value, np.where(valid, 60, 0), valid)


def test_debounce_open_after_n_close_after_m() -> None:
    nan = float("nan")
    series = [10, 60, 10, 60, 60, 70, 10, 60, 10, 10, 10, 60]
    # Limit 50, open after 2 exceeding hours, close after 2 clean ones.
    events = ex.exceedance_events(_hourly(series), 50.0, open_after=2, close_after=2)
    (first,) = events  # the lone 60s at 01, 07 and 11 open nothing on their own
    assert first.start == np.datetime64("2026-05-01T03", "h")
    assert first.end == np.datetime64("2026-05-01T08", "h")  # 08-09 and 09-10 clean
    assert (first.peak, first.exceeding_hours) == (70.0, 4)  # 60, 60, 70 and the 60 at 07
    # With N = M = 1 every exceeding run opens one, the last still open; with N = 4 none.
    eager = ex.exceedance_events(_hourly(series), 50.0, open_after=1, close_after=1)
    assert [str(e.start)[-2:] for e in eager] == ["01", "03", "07", "11"]
    assert eager[-1].end is None
    assert ex.exceedance_events(_hourly(series), 50.0, open_after=4) == []
    # At the limit is not above it.
    assert ex.exceedance_events(_hourly([50.0, 50.0]), 50.0) == []
    # Invalid hours break a run and do not close an event.
    broken = ex.exceedance_events(
        _hourly([60, nan, 60, 60, nan, 10, 10]), 50.0, open_after=2, close_after=2
    )
    assert len(broken) == 1
    assert broken[0].start == np.datetime64("2026-05-01T02", "h")
    assert broken[0].end == np.datetime64("2026-05-01T05", "h")


def test_ambient_limits_by_edition_and_date() -> None:
    assert ex.ambient_limit("pm25", "24h", on=date(2026, 2, 28)).value == 75
    assert ex.ambient_limit("pm25", "24h", on=date(2026, 3, 1)).value == 60
    assert ex.ambient_limit("pm25", "24h", on=date(2030, 12, 31)).value == 60
    final = ex.ambient_limit("pm25", "24h", on=date(2031, 1, 1))
    assert (final.value, final.standard) == (50, ex.GB3095_2026)
    assert ex.ambient_limit("pm10", "24h", on=date(2027, 1, 1)).value == 120
    assert ex.ambient_limit("pm10", "24h", on=date(2031, 1, 1)).value == 100
    assert ex.ambient_limit("so2", "1h", on=date(2031, 1, 1)).value == 150
    assert ex.ambient_limit("no2", "24h", on=date(2031, 1, 1)).value == 50
    assert ex.ambient_limit("o3", "8h", standard=ex.GB3095_2012).value == 160
    assert ex.ambient_limit("pm25", "24h", standard=ex.GB3095_2012, grade=1).value == 35
    co = ex.ambient_limit("co", "1h", on=date(2026, 6, 1))
    assert (co.value, co.unit) == (10, "mg/m³")
    with pytest.raises(ex.ExceedanceInputError, match="no GB 3095-2012 limit for co/annual"):
        ex.ambient_limit("co", "annual", standard=ex.GB3095_2012)
    with pytest.raises(ex.ExceedanceInputError, match="date"):
        ex.ambient_limit("co", "1h")


def test_ambient_exceeds_below_at_above() -> None:
    limit = ex.ambient_limit("pm25", "24h", on=date(2026, 6, 1))  # 60
    assert ex.ambient_exceeds([59.9, 60.0, 60.1, np.nan], limit).tolist() == [
        False,
        False,
        True,
        False,
    ]
