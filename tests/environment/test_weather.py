"""The weather kind: its simulator model and the stability it implies (no services)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.environment import APP, WEATHER
from apps.environment.simulate import WeatherStation
from apps.environment.weather import solar_elevation_deg, stability_from_weather
from realtime.readings import Limits, Reading, kind_rules, validate
from sensors.scenarios import Environment
from sensors.stations import model_class
from sensors.world import StationSpec

LON, LAT = 113.1, 36.2


def _station(seed: int = 7) -> WeatherStation:
    env = Environment(
        "normal", datetime(2026, 1, 15, tzinfo=UTC).timestamp(), (112.5, 35.7, 113.7, 37.1), seed
    )
    spec = StationSpec("D-WX-140403-001", "weather", "WX-140403-001", "test", LON, LAT, 600)
    return WeatherStation(spec, env, seed)


def test_simulated_readings_are_valid_and_reproducible() -> None:
    assert model_class("weather") is WeatherStation
    limits = Limits((100.0, 30.0, 120.0, 40.0), kinds=kind_rules({"weather": WEATHER}))
    a, b = _station(), _station()
    t0 = datetime(2026, 1, 15, 4, tzinfo=UTC).timestamp()  # local noon in January
    readings = []
    for k in range(144):  # a day of 10-minute readings
        t = t0 + 600 * k
        one = a.read(t, 600)
        assert one == b.read(t, 600)  # the same seed, the same weather
        made = validate(
            {"ts": int(t * 1000), **one}, "D-WX", "weather", datetime.fromtimestamp(t, UTC), limits
        )
        assert isinstance(made, Reading), made
        readings.append(one)
    noon, midnight = readings[0], readings[12 * 6]  # 12:00 and 00:00 local
    assert noon["radiation_wm2"] > 0 and midnight["radiation_wm2"] == 0
    # January: the wind comes from the north-west quadrant most of the time.
    from_nw = sum(225 <= r["wind_dir_deg"] <= 360 or r["wind_dir_deg"] < 30 for r in readings)
    assert from_nw > len(readings) * 0.6


def test_solar_elevation_at_the_solstice_noon() -> None:
    # Highest sun at 36.2° N on the June solstice: 90 − 36.2 + 23.44 = 77.2°, at about
    # 04:30 UTC in Changzhi (113.1° E: 12:00 − 7 h 32 min, equation of time ≈ −1.8 min).
    noon = solar_elevation_deg(datetime(2026, 6, 21, 4, 30, tzinfo=UTC), LON, LAT)
    assert noon == pytest.approx(77.2, abs=0.3)
    assert solar_elevation_deg(datetime(2026, 6, 21, 16, 30, tzinfo=UTC), LON, LAT) < -25
    with pytest.raises(ValueError, match="aware"):
        solar_elevation_deg(datetime(2026, 6, 21, 4, 30), LON, LAT)


def test_stability_from_weather() -> None:
    noon = datetime(2026, 6, 21, 4, 30, tzinfo=UTC)
    night = datetime(2026, 6, 21, 16, 30, tzinfo=UTC)
    # Turner: strong sun, < 2 m/s → A; clear night, 2-3 m/s → F; overcast → D.
    assert stability_from_weather(noon, LON, LAT, wind_ms=1.5, cloud_oktas=0) == "A"
    assert stability_from_weather(night, LON, LAT, wind_ms=2.5, cloud_oktas=2) == "F"
    assert stability_from_weather(night, LON, LAT, wind_ms=2.5, cloud_oktas=8) == "D"


def test_descriptor_declares_the_seam_pieces() -> None:
    assert [k.name for k in APP.kinds] == ["air", "emission", "weather"]
    assert APP.router and APP.cli and APP.synthesize and APP.migrations and APP.migrations.is_dir()
    assert [w.name for w in APP.workers] == ["environment-hj212", "environment-watch"]
    assert "environment" in APP.benches
