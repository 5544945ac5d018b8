"""Reading validation: every topic family, every kind of bad input, nothing silently dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pyproj import Geod

from gis_core.crs import wgs84_to_gcj02
from realtime.readings import Limits, dedupe, parse_message

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIMITS = Limits((111.5, 35.3, 114.2, 37.6))
REGISTRY = {
    "AMB-001": "vehicle",
    "AIR-001": "air",
    "WL-001": "water_level",
    "SIG-1": "signal",
    "GW-1": "gateway",
}
BEHIND = {"AIR-001": "GW-1", "WL-001": "GW-1"}  # device -> the gateway it is registered behind


def parse(topic: str, body: object, raw: bytes | None = None):
    payload = raw if raw is not None else orjson.dumps(body)
    return parse_message(
        topic, payload, kinds=REGISTRY.get, now=NOW, limits=LIMITS, gateways=BEHIND.get
    )


def test_single_and_array_readings():
    one = parse(
        "cz/v1/air/AIR-001/telemetry", {"ts": "2026-11-24T19:55:00+08:00", "pm25": 35.5, "seq": 7}
    )
    assert len(one.readings) == 1 and not one.rejects
    r = one.readings[0]
    assert r.ts == datetime(2026, 11, 24, 11, 55, tzinfo=UTC) and r.seq == 7
    assert r.values == {"pm25": 35.5} and r.lon is None  # fixed station: its site is used
    epoch_ms = int(NOW.timestamp() * 1000) - 60_000
    many = parse(
        "cz/v1/air/AIR-001/telemetry",
        [{"ts": epoch_ms, "pm10": 80}, {"ts": epoch_ms + 1000, "so2": 12}],
    )
    assert len(many.readings) == 2


def test_vehicle_positions_and_gcj02_conversion():
    lon, lat = 113.1164, 36.1954
    glon, glat = wgs84_to_gcj02(lon, lat)
    got = parse(
        "cz/v1/vehicle/AMB-001/telemetry",
        {
            "ts": NOW.isoformat(),
            "lon": glon,
            "lat": glat,
            "crs": "GCJ02",
            "speed_kmh": 42,
            "heading_deg": 90,
            "status": "en_route",
        },
    )
    r = got.readings[0]
    _, _, dist = Geod(ellps="WGS84").inv(lon, lat, r.lon, r.lat)
    assert dist < 0.5
    assert r.values["status"] == "en_route"
    no_pos = parse("cz/v1/vehicle/AMB-001/telemetry", {"ts": NOW.isoformat(), "speed_kmh": 3})
    assert no_pos.rejects[0].reason == "bad_position"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"pm25": 3}, "bad_ts"),
        ({"ts": "yesterday", "pm25": 3}, "bad_ts"),
        ({"ts": "2026-11-24T12:00:00", "pm25": 3}, "bad_ts"),  # no offset
        ({"ts": (NOW + timedelta(minutes=6)).isoformat(), "pm25": 3}, "bad_ts"),
        ({"ts": (NOW - timedelta(days=401)).isoformat(), "pm25": 3}, "bad_ts"),
        ({"ts": NOW.isoformat(), "pm25": "35"}, "bad_value"),
        ({"ts": NOW.isoformat(), "pm25": -1}, "bad_value"),
        ({"ts": NOW.isoformat(), "pm25": True}, "bad_value"),
        ({"ts": NOW.isoformat(), "pm25": 3, "seq": -4}, "bad_value"),
        ({"ts": NOW.isoformat(), "pm25": 3, "'; DROP TABLE iot.device; --": 1}, "unknown_field"),
        ({"ts": NOW.isoformat()}, "bad_shape"),
        ({"ts": NOW.isoformat(), "pm25": 3, "lon": 113.1}, "bad_position"),
        ({"ts": NOW.isoformat(), "pm25": 3, "lon": 36.2, "lat": 113.1}, "out_of_area"),
        ({"ts": NOW.isoformat(), "pm25": 3, "lon": 2.35, "lat": 48.85}, "out_of_area"),
        (
            {"ts": NOW.isoformat(), "pm25": 3, "lon": 113.1, "lat": 36.2, "crs": "BD09"},
            "bad_position",
        ),
        ("a string", "bad_shape"),
    ],
)
def test_rejects_carry_their_reason(body, reason):
    got = parse("cz/v1/air/AIR-001/telemetry", body)
    assert not got.readings
    assert [r.reason for r in got.rejects] == [reason]
    assert got.rejects[0].device_id == "AIR-001"


def test_nan_and_broken_json_and_huge_payloads():
    nan = parse("cz/v1/air/AIR-001/telemetry", None, raw=b'{"ts": 1, "pm25": NaN}')
    assert nan.rejects[0].reason == "bad_json"
    broken = parse("cz/v1/air/AIR-001/telemetry", None, raw=b'{"ts": ')
    assert broken.rejects[0].reason == "bad_json"
    huge = parse("cz/v1/air/AIR-001/telemetry", None, raw=b"[" + b"1," * 600_000 + b"1]")
    assert huge.rejects[0].reason == "too_large"


def test_one_bad_reading_leaves_its_neighbours():
    got = parse(
        "cz/v1/air/AIR-001/telemetry",
        [
            {"ts": NOW.isoformat(), "pm25": 3},
            {"ts": NOW.isoformat(), "pm25": "x"},
            {"ts": NOW.isoformat(), "pm10": 9},
        ],
    )
    assert len(got.readings) == 2 and len(got.rejects) == 1


def test_topics_devices_and_kinds():
    assert parse("cz/v1/air/NOPE/telemetry", {}).rejects[0].reason == "unknown_device"
    assert parse("cz/v1/rain/AIR-001/telemetry", {}).rejects[0].reason == "wrong_kind"
    assert parse("cz/v1/laser/AIR-001/telemetry", {}).rejects[0].reason == "bad_topic"
    assert parse("somewhere/else", {}).rejects[0].reason == "bad_topic"
    assert parse("cz/v1/air/AIR-001/status", None, raw=b"online").statuses[0].online is True
    assert parse("cz/v1/air/AIR-001/status", None, raw=b"offline").statuses[0].online is False
    assert parse("cz/v1/air/AIR-001/status", None, raw=b"sleepy").rejects[0].reason == "bad_status"


def test_gateway_batches():
    got = parse(
        "cz/v1/gateway/GW-1/telemetry",
        {
            "AIR-001": [
                {"ts": NOW.isoformat(), "pm25": 10},
                {"ts": NOW.isoformat(), "pm25": 11, "seq": 2},
            ],
            "WL-001": [{"ts": NOW.isoformat(), "level_m": 3.2}],
            "GHOST": [{"ts": NOW.isoformat(), "level_m": 1}],
        },
    )
    assert sorted(r.device_id for r in got.readings) == ["AIR-001", "AIR-001", "WL-001"]
    assert [r.reason for r in got.rejects] == ["unknown_device"]
    assert parse("cz/v1/gateway/GW-1/telemetry", [1, 2]).rejects[0].reason == "bad_shape"
    # Registered, but not behind this gateway; and a login that is no gateway at all.
    other = {"SIG-1": [{"ts": NOW.isoformat(), "mode": "fixed"}]}
    assert [r.reason for r in parse("cz/v1/gateway/GW-1/telemetry", other).rejects] == [
        "not_behind_gateway"
    ]
    forged = parse("cz/v1/gateway/AMB-001/telemetry", {"AIR-001": [{"ts": NOW.isoformat()}]})
    assert [(r.reason, r.device_id) for r in forged.rejects] == [("not_a_gateway", "AMB-001")]
    assert not forged.readings
    for empty in ({}, {"AIR-001": []}):
        assert [r.reason for r in parse("cz/v1/gateway/GW-1/telemetry", empty).rejects] == ["empty"]
    assert [r.reason for r in parse("cz/v1/air/AIR-001/telemetry", []).rejects] == ["empty"]


def test_a_reject_in_a_many_reading_message_carries_only_its_part():
    """A dead letter shows what was refused: thousands of bad readings in one big gateway
    message must not each store a copy of the whole message."""
    bad = {"ts": NOW.isoformat(), "pm25": "x"}
    got = parse(
        "cz/v1/gateway/GW-1/telemetry",
        {
            "AIR-001": [{"ts": NOW.isoformat(), "pm25": 10}, bad],
            "GHOST": [{"ts": NOW.isoformat(), "level_m": 1}],
            **{f"GHOST-{i}": [] for i in range(300)},
        },
    )
    assert [r.reason for r in got.rejects[:2]] == ["bad_value", "unknown_device"]
    assert orjson.loads(got.rejects[0].raw) == bad
    assert orjson.loads(got.rejects[1].raw) == {"GHOST": [{"ts": NOW.isoformat(), "level_m": 1}]}
    listed = parse("cz/v1/air/AIR-001/telemetry", [bad, {"ts": NOW.isoformat(), "pm25": 1}])
    assert orjson.loads(listed.rejects[0].raw) == bad
    # one reading, one message: the dead letter keeps the message as it was sent
    assert parse("cz/v1/air/AIR-001/telemetry", bad).rejects[0].raw is None


def test_owntracks_locations():
    msg = {
        "_type": "location",
        "lat": 36.19,
        "lon": 113.11,
        "tst": int(NOW.timestamp()) - 5,
        "vel": 36,
        "cog": 180,
        "batt": 77,
        "acc": 8,
        "tid": "a1",
    }
    got = parse("owntracks/AMB-001/phone", msg)
    r = got.readings[0]
    assert (
        r.device_id == "AMB-001" and r.values["speed_kmh"] == 36 and r.values["battery_pct"] == 77
    )
    assert (
        parse("owntracks/AMB-001/phone", {"_type": "waypoint"}).rejects[0].reason == "unsupported"
    )
    assert parse("owntracks/stranger/phone", msg).rejects[0].reason == "unknown_device"


def test_signal_fields_and_dedupe():
    got = parse(
        "cz/v1/signal/SIG-1/telemetry",
        [
            {"ts": NOW.isoformat(), "mode": "actuated", "phase": 3, "fault": None, "seq": 1},
            {"ts": NOW.isoformat(), "mode": "flashing", "phase": 0, "fault": "lamp out", "seq": 1},
            {"ts": NOW.isoformat(), "mode": "fixed", "phase": 2, "fault": False},
            {"ts": NOW.isoformat(), "mode": "fixed", "phase": 2, "fault": False},
        ],
    )
    assert len(got.readings) == 4
    assert len(dedupe(got.readings)) == 2
