"""The GPS lifecycle and timers as pure logic: simulated tracks with noise, a unit that drives
past without stopping, GPS jumps, stationary units, the return to the station."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.dispatch import lifecycle
from apps.dispatch.lifecycle import Fix, GpsJump, GpsRecovered, Stationary, Tracker, Transition
from apps.dispatch.plans import DispatchSettings

SCENE = (113.1, 36.2)
STATION = (113.06, 36.2)  # about 3.6 km west
T0 = 1_700_000_000.0


def offset(x_m: float, y_m: float, origin: tuple[float, float] = SCENE) -> tuple[float, float]:
    lon0, lat0 = origin
    return (
        lon0 + x_m / (111_320.0 * math.cos(math.radians(lat0))),
        lat0 + y_m / 110_574.0,
    )


def tracker(status: str = "dispatched") -> Tracker:
    t = Tracker(DispatchSettings())
    t.sync(
        [
            lifecycle.Assignment(
                assignment_id=7,
                incident_id=3,
                unit_id="U1",
                status=status,
                dispatched_ts=T0,
                scene_lon=SCENE[0],
                scene_lat=SCENE[1],
                station_lon=STATION[0],
                station_lat=STATION[1],
            )
        ]
    )
    return t


def drive(
    t: Tracker,
    path: list[tuple[float, float]],
    start_ts: float,
    noise_m: float,
    rng: np.random.Generator,
) -> list[lifecycle.Action]:
    """Feed one fix a second along ``path`` (metres from the scene), with GPS noise."""
    actions: list[lifecycle.Action] = []
    for k, (x, y) in enumerate(path):
        nx_, ny_ = rng.normal(0, noise_m, 2)
        lon, lat = offset(x + nx_, y + ny_)
        actions += t.feed(Fix("U1", start_ts + k, lon, lat))
    return actions


def line(x0: float, x1: float, speed_kmh: float, y: float = 0.0) -> list[tuple[float, float]]:
    step = speed_kmh / 3.6 * np.sign(x1 - x0)
    n = int(abs(x1 - x0) / abs(step))
    return [(x0 + step * k, y) for k in range(n + 1)]


def statuses(actions: list[lifecycle.Action]) -> list[str]:
    return [a.status for a in actions if isinstance(a, Transition)]


@pytest.mark.parametrize("seed", range(5))
def test_noisy_approach_and_stop_is_one_arrival(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = tracker()
    approach = line(-3000, -40, 40)
    actions = drive(t, [(-3000, 0)] * 5 + approach, T0 + 1, 8.0, rng)
    assert statuses(actions) == ["en_route"]
    stop_start = T0 + 1 + 5 + len(approach)
    actions = drive(t, [(-40, 5)] * 90, stop_start, 8.0, rng)
    arrived = [a for a in actions if isinstance(a, Transition)]
    assert [a.status for a in arrived] == ["on_scene"]
    dwell = t.settings.arrival_dwell_s
    # The last seconds of the approach may already count towards the stop.
    assert stop_start + dwell - 8 <= arrived[0].ts <= stop_start + dwell + 15
    assert arrived[0].assignment_id == 7 and arrived[0].incident_id == 3


@pytest.mark.parametrize("speed", [15, 25, 40, 60])
def test_driving_past_without_stopping_is_no_arrival(speed: int) -> None:
    rng = np.random.default_rng(speed)
    t = tracker()
    actions = drive(t, line(-2000, 2000, speed, y=20.0), T0 + 1, 8.0, rng)
    assert statuses(actions) == ["en_route"]


def test_stop_outside_the_geofence_is_no_arrival() -> None:
    rng = np.random.default_rng(1)
    t = tracker()
    actions = drive(t, line(-3000, -400, 40) + [(-400, 0)] * 120, T0 + 1, 8.0, rng)
    assert statuses(actions) == ["en_route"]


def test_already_at_the_scene_arrives_without_moving() -> None:
    rng = np.random.default_rng(2)
    t = tracker()
    actions = drive(t, [(30, 0)] * 40, T0 + 1, 6.0, rng)
    assert statuses(actions) == ["on_scene"]


def test_gps_jump_is_ignored_flagged_and_recovers() -> None:
    t = tracker()
    a = offset(-3000, 0)
    assert t.feed(Fix("U1", T0 + 1, *a)) == []
    far = offset(50_000, 0)  # 50 km in a second
    jumped = t.feed(Fix("U1", T0 + 2, *far))
    assert len(jumped) == 1 and isinstance(jumped[0], GpsJump)
    assert jumped[0].implied_kmh > 100_000
    assert t.units["U1"].good.lon == pytest.approx(a[0])  # the jump was not taken
    # Back near the last good fix: the suspicion ends, the unit did not move.
    back = t.feed(Fix("U1", T0 + 3, *offset(-2995, 0)))
    assert [type(x) for x in back] == [GpsRecovered]
    assert back[0].relocated is False
    # Consistently somewhere else: after three agreeing fixes the unit is re-anchored there.
    out: list[lifecycle.Action] = []
    for k in range(3):
        out += t.feed(Fix("U1", T0 + 10 + k, *offset(40_000 + 10 * k, 0)))
    assert [type(x) for x in out] == [GpsJump, GpsJump, GpsRecovered]
    assert out[-1].relocated is True
    assert t.units["U1"].good.lon == pytest.approx(offset(40_020, 0)[0])


def test_jumps_never_make_an_arrival() -> None:
    t = tracker()
    t.feed(Fix("U1", T0 + 1, *offset(-3000, 0)))
    actions: list[lifecycle.Action] = []
    for k in range(60):  # a broken receiver flipping between the unit and the scene
        where = offset(0, 0) if k % 2 else offset(-3000, 0)
        actions += t.feed(Fix("U1", T0 + 2 + k, *where))
    assert "on_scene" not in statuses(actions)


def test_late_fixes_are_ignored() -> None:
    t = tracker()
    t.feed(Fix("U1", T0 + 10, *offset(-3000, 0)))
    assert t.feed(Fix("U1", T0 + 5, *offset(0, 0))) == []


def test_stationary_en_route_raises_then_clears() -> None:
    t = tracker()
    rng = np.random.default_rng(3)
    drive(t, [(-3000, 0)] * 10, T0 + 1, 5.0, rng)
    assert t.tick(T0 + 100) == []
    raised = t.tick(T0 + 181)
    assert len(raised) == 1 and isinstance(raised[0], Stationary) and raised[0].active
    assert t.tick(T0 + 200) == []  # raised once
    moving = drive(t, line(-3000, -2500, 40), T0 + 300, 5.0, rng)
    cleared = [a for a in moving if isinstance(a, Stationary)]
    assert len(cleared) == 1 and not cleared[0].active


def test_no_stationary_alarm_at_the_scene_or_on_scene() -> None:
    t = tracker()
    t.feed(Fix("U1", T0 + 1, *offset(50, 0)))
    assert t.tick(T0 + 500) == []
    t2 = tracker("on_scene")
    t2.feed(Fix("U1", T0 + 1, *offset(-3000, 0)))
    assert t2.tick(T0 + 500) == []


def test_return_to_station_clears() -> None:
    rng = np.random.default_rng(4)
    t = tracker("on_scene")
    station_x = (STATION[0] - SCENE[0]) * 111_320.0 * math.cos(math.radians(SCENE[1]))
    actions = drive(t, [(0, 0)] * 10 + line(0, station_x, 40), T0 + 1, 6.0, rng)
    assert statuses(actions) == []
    actions = drive(t, [(station_x, 0)] * 90, T0 + 1000, 6.0, rng)
    assert statuses(actions) == ["cleared"]
    assert "U1" not in t.assignments


def test_sync_follows_the_database() -> None:
    t = tracker()
    t.sync([])
    assert t.assignments == {}
    assert t.feed(Fix("U1", T0 + 1, *offset(0, 0))) == []


def test_incident_timers() -> None:
    s = DispatchSettings()
    clock = lifecycle.IncidentClock(1, 1, T0, None, None, s.urban_target_s, *SCENE)
    assert not any(e.active for e in lifecycle.incident_escalations([clock], T0 + 59, s))
    late = {e.rule: e for e in lifecycle.incident_escalations([clock], T0 + 61, s)}
    assert late["dispatch.not_dispatched"].active
    assert late["dispatch.not_dispatched"].overdue_s == pytest.approx(1.0)
    assert late["dispatch.not_dispatched"].severity == 4
    assert not late["dispatch.response_overdue"].active
    dispatched = lifecycle.IncidentClock(1, 2, T0, T0 + 30, None, s.urban_target_s, *SCENE)
    over = {
        e.rule: e
        for e in lifecycle.incident_escalations([dispatched], T0 + s.urban_target_s + 1, s)
    }
    assert not over["dispatch.not_dispatched"].active
    assert over["dispatch.response_overdue"].active
    arrived = lifecycle.IncidentClock(1, 2, T0, T0 + 30, T0 + 300, s.urban_target_s, *SCENE)
    assert not any(e.active for e in lifecycle.incident_escalations([arrived], T0 + 9999, s))
    routine = lifecycle.IncidentClock(2, 4, T0, None, None, s.rural_target_s, *SCENE)
    assert not any(
        e.active and e.rule == "dispatch.not_dispatched"
        for e in lifecycle.incident_escalations([routine], T0 + 61, s)
    )
