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
