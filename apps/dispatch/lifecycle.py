"""The GPS-driven assignment lifecycle and the escalation timers, as pure logic.

Nothing here touches a database, a broker or a clock: :class:`Tracker` is fed fixes
(:meth:`Tracker.feed`) and the time (:meth:`Tracker.tick`), and answers with actions for the
monitor to carry out. That makes every rule testable with simulated tracks and a fake clock.

Rules
-----
- *GPS jumps*: a fix implying more than ``jump_speed_kmh`` from the last good fix is ignored
  and flagged; ``jump_confirm_fixes`` mutually consistent fixes in a row re-anchor the unit
  (it really is there), and a fix consistent with the last good one ends the suspicion.
- *En route*: a dispatched unit that has moved ``moving_m`` from where it was dispatched.
- *On scene*: a unit whose fixes have stayed within ``stop_radius_m`` of their centre for
  ``arrival_dwell_s``, that centre inside the scene's geofence (``scene_radius_m``). Noise
  does not break a stop; a unit driving past never dwells.
- *Cleared*: a unit on scene that has left the scene and then stopped at its station for
  ``return_dwell_s`` is back in service.
- *Stationary en route*: a dispatched or en-route unit that has not moved for
  ``stationary_en_route_s`` outside the scene raises an escalation (cleared when it moves).
- *Timers* (:func:`incident_escalations`): not dispatched within ``dispatch_deadline_s`` of
  creation; no unit on scene within the incident's response target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.dispatch.plans import DispatchSettings
from gis_core.plane import metres

__all__ = ["metres"]


@dataclass(frozen=True)
class Fix:
    unit_id: str
    ts: float  # seconds since the epoch, the device's time
    lon: float
    lat: float
    speed_kmh: float | None = None


@dataclass(frozen=True)
class Transition:
    assignment_id: int
    incident_id: int
    unit_id: str
    status: str  # en_route, on_scene, cleared
    ts: float
    lon: float
    lat: float


@dataclass(frozen=True)
class GpsJump:
    unit_id: str
    ts: float
    lon: float
    lat: float
    good_ts: float
    good_lon: float
    good_lat: float
    implied_kmh: float


@dataclass(frozen=True)
class GpsRecovered:
    unit_id: str
    ts: float
    lon: float
    lat: float
    relocated: bool  # True: re-anchored at a new place; False: back near the last good fix


@dataclass(frozen=True)
class Stationary:
    assignment_id: int
    incident_id: int
    unit_id: str
    active: bool
    since: float
    lon: float
    lat: float


Action = Transition | GpsJump | GpsRecovered | Stationary


@dataclass
class Assignment:
    """What the tracker needs to know of one live assignment."""

    assignment_id: int
    incident_id: int
    unit_id: str
    status: str  # dispatched, en_route, on_scene
    dispatched_ts: float
    scene_lon: float
    scene_lat: float
    station_lon: float | None = None
    station_lat: float | None = None


@dataclass
class Stop:
    """Fixes within ``stop_radius_m`` of their centre, since ``first_ts``."""

    first_ts: float
    last_ts: float
    sum_lon: float
    sum_lat: float
    n: int

    @classmethod
    def start(cls, fix: Fix) -> Stop:
        return cls(fix.ts, fix.ts, fix.lon, fix.lat, 1)

    @property
    def centre(self) -> tuple[float, float]:
        return self.sum_lon / self.n, self.sum_lat / self.n

    def add(self, fix: Fix) -> None:
        self.last_ts = fix.ts
        self.sum_lon += fix.lon
        self.sum_lat += fix.lat
        self.n += 1


@dataclass
class _Unit:
    good: Fix | None = None
    suspects: list[Fix] = field(default_factory=list)
    stop: Stop | None = None  # the current stop (running sums: constant cost per fix)
    anchor: Fix | None = None  # where it last moved from
    moved_ts: float | None = None
    left_scene: bool = False
    stationary_raised: bool = False


@dataclass
class Tracker:
    """Per-unit GPS state and live assignments; feed it fixes and time."""

    settings: DispatchSettings
    units: dict[str, _Unit] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)  # by unit id
    dispatch_pos: dict[int, Fix] = field(default_factory=dict)  # assignment -> first fix

    # ---------------------------------------------------------------- assignments

    def sync(self, live: Iterable[Assignment]) -> None:
        """Adopt the database's view of live assignments (new, advanced, cleared)."""
        fresh = {a.unit_id: a for a in live}
        for unit_id, old in list(self.assignments.items()):
            new = fresh.get(unit_id)
            if new is None or new.assignment_id != old.assignment_id:
                self.dispatch_pos.pop(old.assignment_id, None)
                state = self.units.get(unit_id)
                if state is not None:
                    state.left_scene = False
                    state.stationary_raised = False
        for unit_id, a in fresh.items():
            known = self.assignments.get(unit_id)
            if known is None or known.assignment_id != a.assignment_id:
                state = self.units.setdefault(unit_id, _Unit())
                # Stationary time counts from the dispatch, not from some earlier stop.
                state.moved_ts = max(state.moved_ts or a.dispatched_ts, a.dispatched_ts)
                state.anchor = state.good
        self.assignments = fresh

    # ---------------------------------------------------------------- fixes

    def feed(self, fix: Fix) -> list[Action]:
        """Take one fix; return what follows from it."""
        s = self.settings
        state = self.units.setdefault(fix.unit_id, _Unit())
        actions: list[Action] = []
        good = state.good
        if good is not None:
            if fix.ts <= good.ts:
                return []  # late or repeated: the live state never goes back in time
            implied = metres(good.lon, good.lat, fix.lon, fix.lat) / max(fix.ts - good.ts, 1.0)
            if implied * 3.6 > s.jump_speed_kmh:
                return self._suspect(state, fix, good, implied * 3.6)
            if state.suspects:
                state.suspects.clear()
                actions.append(GpsRecovered(fix.unit_id, fix.ts, fix.lon, fix.lat, False))
        state.good = fix
        actions += self._advance(state, fix)
        return actions

    def _suspect(self, state: _Unit, fix: Fix, good: Fix, implied_kmh: float) -> list[Action]:
        s = self.settings
        consistent = not state.suspects or (
            fix.ts > state.suspects[-1].ts
            and metres(state.suspects[-1].lon, state.suspects[-1].lat, fix.lon, fix.lat)
            / max(fix.ts - state.suspects[-1].ts, 1.0)
            * 3.6
            <= s.jump_speed_kmh
        )
        state.suspects = [*state.suspects, fix] if consistent else [fix]
        if len(state.suspects) >= s.jump_confirm_fixes:
            # The unit really is over there (the earlier fix was the bad one, or it was
            # carried): re-anchor, and start its stop and movement history afresh.
            state.suspects = []
            state.good = fix
            state.stop = Stop.start(fix)
            state.anchor = fix
            state.moved_ts = fix.ts
            return [GpsRecovered(fix.unit_id, fix.ts, fix.lon, fix.lat, True)]
        return [
            GpsJump(fix.unit_id, fix.ts, fix.lon, fix.lat, good.ts, good.lon, good.lat, implied_kmh)
        ]

    def _advance(self, state: _Unit, fix: Fix) -> list[Action]:
        s = self.settings
        # The current stop: fixes within stop_radius of their centre (and not reported moving).
        moving_report = fix.speed_kmh is not None and fix.speed_kmh > 8.0
        stop = state.stop
        if stop is not None and not moving_report:
            clon, clat = stop.centre
            if metres(clon, clat, fix.lon, fix.lat) <= s.stop_radius_m:
                stop.add(fix)
            else:
                state.stop = Stop.start(fix)
        else:
            state.stop = Stop.start(fix)
        if state.anchor is None:
            state.anchor = fix
            state.moved_ts = state.moved_ts or fix.ts
        elif metres(state.anchor.lon, state.anchor.lat, fix.lon, fix.lat) > 2 * s.stop_radius_m:
            state.anchor = fix
            state.moved_ts = fix.ts
        a = self.assignments.get(fix.unit_id)
        if a is None:
            return []
        actions: list[Action] = []
        start = self.dispatch_pos.setdefault(a.assignment_id, fix)
        to_scene = metres(a.scene_lon, a.scene_lat, fix.lon, fix.lat)
        if a.status == "dispatched" and metres(start.lon, start.lat, fix.lon, fix.lat) > (
            s.moving_m
        ):
            a.status = "en_route"
            actions.append(self._transition(a, "en_route", fix))
        if a.status in ("dispatched", "en_route") and self._dwelling(state, a, s.arrival_dwell_s):
            a.status = "on_scene"
            actions.append(self._transition(a, "on_scene", fix))
            if state.stationary_raised:
                state.stationary_raised = False
                actions.append(self._stationary(a, state, False, fix))
        elif a.status == "on_scene":
            if to_scene > 2 * s.scene_radius_m:
                state.left_scene = True
            if (
                state.left_scene
                and a.station_lon is not None
                and a.station_lat is not None
                and self._dwelling_at(state, a.station_lon, a.station_lat, s.station_radius_m)
                >= s.return_dwell_s
            ):
                actions.append(self._transition(a, "cleared", fix))
                del self.assignments[fix.unit_id]
                self.dispatch_pos.pop(a.assignment_id, None)
                state.left_scene = False
        if state.stationary_raised and state.moved_ts == fix.ts:
            state.stationary_raised = False
            actions.append(self._stationary(a, state, False, fix))
        return actions

    def _dwelling(self, state: _Unit, a: Assignment, dwell_s: float) -> bool:
        radius = self.settings.scene_radius_m
        return self._dwelling_at(state, a.scene_lon, a.scene_lat, radius) >= dwell_s

    @staticmethod
    def _dwelling_at(state: _Unit, lon: float, lat: float, radius: float) -> float:
        """Seconds the current stop has lasted, if its centre is within ``radius``."""
        stop = state.stop
        if stop is None:
            return 0.0
        clon, clat = stop.centre
        if metres(clon, clat, lon, lat) > radius:
            return 0.0
        return stop.last_ts - stop.first_ts

    @staticmethod
    def _transition(a: Assignment, status: str, fix: Fix) -> Transition:
        # A step is never recorded before the dispatch it follows: a terminal's clock may lag
        # the platform's (a sped-up simulator's always does).
        ts = max(fix.ts, a.dispatched_ts)
        return Transition(a.assignment_id, a.incident_id, a.unit_id, status, ts, fix.lon, fix.lat)

    @staticmethod
    def _stationary(a: Assignment, state: _Unit, active: bool, fix: Fix | None) -> Stationary:
        where = fix or state.good
        return Stationary(
            a.assignment_id,
            a.incident_id,
            a.unit_id,
            active,
            state.moved_ts or 0.0,
            where.lon if where else a.scene_lon,
            where.lat if where else a.scene_lat,
        )

    # ---------------------------------------------------------------- time

    def tick(self, now: float) -> list[Action]:
        """Escalations that follow from time passing: units stationary en route."""
        s = self.settings
        actions: list[Action] = []
        for unit_id, a in self.assignments.items():
            if a.status not in ("dispatched", "en_route"):
                continue
            state = self.units.setdefault(unit_id, _Unit())
            since = max(state.moved_ts or a.dispatched_ts, a.dispatched_ts)
            near_scene = state.good is not None and (
                metres(a.scene_lon, a.scene_lat, state.good.lon, state.good.lat) <= s.scene_radius_m
            )
            late = now - since >= s.stationary_en_route_s
            if late and not near_scene and not state.stationary_raised:
                state.stationary_raised = True
                actions.append(self._stationary(a, state, True, None))
        return actions


# --------------------------------------------------------------------------- timers


@dataclass(frozen=True)
class IncidentClock:
    """What the timers need to know of an open incident."""

    incident_id: int
    priority: int
    created_ts: float
    first_dispatch_ts: float | None
    first_on_scene_ts: float | None
    target_s: float
    lon: float
    lat: float


@dataclass(frozen=True)
class Escalation:
    rule: str  # dispatch.not_dispatched, dispatch.response_overdue
    incident_id: int
    active: bool
    overdue_s: float
    severity: int
    lon: float
    lat: float


def incident_escalations(
    clocks: Iterable[IncidentClock], now: float, settings: DispatchSettings
) -> list[Escalation]:
    """For every open incident, whether each timer has run out (active) or not."""
    out: list[Escalation] = []
    for c in clocks:
        age = now - c.created_ts
        severity = 4 if c.priority == 1 else 3
        deadline = (
            settings.routine_dispatch_deadline_s
            if c.priority >= 4
            else settings.dispatch_deadline_s
        )
        late = age - deadline
        out.append(
            Escalation(
                "dispatch.not_dispatched",
                c.incident_id,
                c.first_dispatch_ts is None and late >= 0,
                max(late, 0.0),
                severity,
                c.lon,
                c.lat,
            )
        )
        overdue = age - c.target_s
        out.append(
            Escalation(
                "dispatch.response_overdue",
                c.incident_id,
                c.first_on_scene_ts is None and overdue >= 0,
                max(overdue, 0.0),
                severity,
                c.lon,
                c.lat,
            )
        )
    return out
