"""What a console's live filter lets through: device kinds narrow device states and device
alarms, never incidents or dispatch escalations (a dispatcher who hides the air monitors
still sees the calls)."""

from __future__ import annotations

from realtime.live import Filter


def test_kinds_narrow_device_events_only() -> None:
    f = Filter(kinds=frozenset({"vehicle"}))
    assert f.admits_event({"type": "alarm", "kind": "vehicle"})
    assert not f.admits_event({"type": "alarm", "kind": "air"})
    assert f.admits_event({"type": "incident", "id": 7, "status": "new"})
    assert f.admits_event({"type": "alarm", "kind": "dispatch", "rule": "dispatch.overdue"})


def test_bbox_applies_to_events_with_a_position() -> None:
    f = Filter(bbox=(113.0, 36.0, 113.2, 36.3))
    assert f.admits_event({"type": "alarm", "kind": "air", "lon": 113.1, "lat": 36.1})
    assert not f.admits_event({"type": "alarm", "kind": "air", "lon": 112.1, "lat": 36.1})
    assert f.admits_event({"type": "incident", "id": 7})


def test_states_seeded_at_start_have_numbers_for_binary_clients() -> None:
    """The API seeds the hub from iot.device_state when it starts; a binary (format=bin)
    console connecting before any new reading must get its hello, not a server error."""
    import orjson

    from realtime.live import LiveHub, Subscriber

    async def send(data: bytes) -> None:
        return None

    hub = LiveHub()
    hub.remember(["VEH-1", "vehicle", 113.1, 36.2, 1_700_000_000_000, "available", {}])
    hub.remember(["AIR-1", "air", 113.0, 36.1, 1_700_000_000_000, None, {"pm25": 30}])
    hello = orjson.loads(hub.hello(Subscriber(send=send, send_binary=send)))
    assert [item[0] for item in hello["items"]] == ["VEH-1", "AIR-1"]
    assert hello["ix"] == [0, 1]


def test_hostile_filters_are_refused_with_a_reason() -> None:
    """Query text and JSON filter messages of any shape: a ValueError the socket reports to
    the client as an error message, never an exception that drops the connection."""
    import pytest

    from web.routers.live import parse_filter

    assert parse_filter("vehicle,air", "113,36,114,37").bbox == (113.0, 36.0, 114.0, 37.0)
    assert parse_filter(["vehicle"], [113, 36, 114, 37]).kinds == frozenset({"vehicle"})
    for kinds, bbox in [
        ([["vehicle"]], None),
        (5, None),
        ({"vehicle": 1}, None),
        ("tank", None),
        (None, "1,2,3"),
        (None, "nan,36,114,37"),
        (None, "113,36,inf,37"),
        (None, [113, 36, 114, [37]]),
        (None, 5),
        (None, {"a": 1}),
        (None, [True, 36, 114, 37]),
        (None, "114,36,113,37"),
    ]:
        with pytest.raises(ValueError):
            parse_filter(kinds, bbox)
