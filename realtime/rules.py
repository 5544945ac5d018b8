"""Rules that turn live states into alarms, and the alarm ledger with de-bouncing.

A rule looks at a device's newest state and says whether a condition holds. The ledger keeps
one open alarm per (device, rule): a condition that persists updates it, one that ends clears
it, and one that comes back within ``REOPEN_WINDOW`` reopens the same alarm quietly — so a
flapping sensor produces one alarm, not a flood. Clearing needs the value to move back past a
hysteresis margin, which keeps a value hovering at the threshold from toggling.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from shapely import Point, STRtree, from_wkb
from shapely.geometry.base import BaseGeometry

from gis_core.application import DeviceKind, Threshold, device_kinds
from realtime.store import StateChange

REOPEN_WINDOW = timedelta(minutes=5)
HYSTERESIS = 0.05  # 5 % of the threshold


@dataclass(frozen=True)
class Condition:
    """A rule's verdict for one device: ``active`` False ends an open alarm."""

    kind: str
    rule: str
    device_id: str
    active: bool
    severity: int = 2
    value: float | None = None
    threshold: float | None = None
    message_zh: str = ""
    message_en: str = ""
    lon: float | None = None
    lat: float | None = None
    # Conditions that can only be raised (a geofence crossing) never clear themselves.
    momentary: bool = False


@dataclass(frozen=True)
class DeviceContext:
    """What the rules need to know of a device beyond its reading."""

    name: str
    thresholds: Mapping[str, Any]  # site thresholds (water level, drought)
    limits: Mapping[str, Any]  # permit limits of the watched stack


def check(
    threshold: Threshold, change: StateChange, ctx: DeviceContext, name: str
) -> Condition | None:
    """One threshold against a new state: a condition raised or ended, or None (no verdict:
    the field is absent, the device has no such limit, or the value sits in the hysteresis
    band)."""
    if threshold.field not in change.reading:
        return None
    value = change.reading[threshold.field]
    if threshold.test == "truthy":
        return _condition(threshold, change, name, bool(value), None, value, None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if threshold.test == "outside":
        low = -math.inf if threshold.low is None else threshold.low
        high = math.inf if threshold.high is None else threshold.high
        return _condition(threshold, change, name, not low <= value <= high, value, value, None)
    limit: Any = threshold.limit
    if threshold.site_key is not None:
        limit = ctx.thresholds.get(threshold.site_key, limit)
    elif threshold.permit_key is not None:
        limit = ctx.limits.get(threshold.permit_key, limit)
    if not isinstance(limit, int | float) or isinstance(limit, bool):
        return None
    limit = float(limit)
    margin = HYSTERESIS if threshold.hysteresis else 0.0
    if threshold.test == "above":
        active = value > limit
        if not active and value > limit * (1 - margin):
            return None  # inside the hysteresis band: no change either way
    else:
        active = value < limit
        if not active and value < limit * (1 + margin):
            return None
    return _condition(threshold, change, name, active, value, value, limit)


def _condition(
    threshold: Threshold,
    change: StateChange,
    name: str,
    active: bool,
    number: float | None,
    value: Any,
    limit: float | None,
) -> Condition:
    words = {"name": name, "value": value, "limit": limit}
    return Condition(
        change.kind,
        threshold.rule,
        change.device_id,
        active,
        threshold.severity,
        None if number is None else float(number),
        limit,
        threshold.message_zh.format(**words),
        threshold.message_en.format(**words),
        change.lon,
        change.lat,
    )


def evaluate(
    change: StateChange,
    context: DeviceContext | None,
    kinds: Mapping[str, DeviceKind] | None = None,
) -> list[Condition]:
    """The conditions one new state raises or ends, by its kind's thresholds."""
    ctx = context or DeviceContext("", {}, {})
    kind = (device_kinds() if kinds is None else kinds).get(change.kind)
    if kind is None:
        return []
    name = ctx.name or change.device_id
    found = (check(t, change, ctx, name) for t in kind.thresholds)
    return [c for c in found if c is not None]


@dataclass(frozen=True)
class Fence:
    id: int
    name: str
    geom: BaseGeometry
    kinds: frozenset[str]
    on_enter: bool
    on_leave: bool


class Fences:
    """The geofences, indexed (an STR tree): a crossing test costs a tree lookup per position,
    not a polygon test per fence."""

    def __init__(self, fences: Sequence[Fence] = ()) -> None:
        self.fences = list(fences)
        self._tree = STRtree([f.geom for f in self.fences]) if self.fences else None

    def __len__(self) -> int:
        return len(self.fences)

    def containing(self, points: Sequence[Point]) -> list[set[int]]:
        """For each point, the indexes of the fences it lies in (or on)."""
        inside: list[set[int]] = [set() for _ in points]
        if self._tree is not None:
            which, fence = self._tree.query(points, predicate="intersects")
            for p, f in zip(which.tolist(), fence.tolist(), strict=True):
                inside[p].add(f)
        return inside


def load_fences(conn: psycopg.Connection) -> Fences:
    rows = conn.execute(
        "SELECT id, name_zh, ST_AsBinary(geom), kinds, on_enter, on_leave FROM iot.geofence"
        " WHERE geom IS NOT NULL ORDER BY id"
    ).fetchall()
    return Fences(
        [
            Fence(fid, name, from_wkb(bytes(wkb)), frozenset(kinds), on_enter, on_leave)
            for fid, name, wkb, kinds, on_enter, on_leave in rows
        ]
    )


def crossings(change: StateChange, fences: Fences) -> list[Condition]:
    """Geofence entries and exits between a device's previous and new position."""
    if not fences or change.lon is None or change.previous_lon is None:
        return []
    if change.lat is None or change.previous_lat is None:
        return []
    now, before = fences.containing(
        [Point(change.lon, change.lat), Point(change.previous_lon, change.previous_lat)]
    )
    found = []
    for index in sorted(now ^ before):
        fence = fences.fences[index]
        if change.kind not in fence.kinds:
            continue
        if index in now and fence.on_enter:
            verb_zh, verb_en, rule = "进入", "entered", f"geofence.{fence.id}.enter"
        elif index in before and fence.on_leave:
            verb_zh, verb_en, rule = "离开", "left", f"geofence.{fence.id}.leave"
        else:
            continue
        found.append(
            Condition(
                change.kind,
                rule,
                change.device_id,
                True,
                2,
                None,
                None,
                f"{change.device_id} {verb_zh} {fence.name}",
                f"{change.device_id} {verb_en} {fence.name}",
                change.lon,
                change.lat,
                momentary=True,
            )
        )
    return found


# The alarms a batch's conditions may continue, reopen or clear: open ones (a partial index)
# and those cleared within the reopen window (an index on cleared_at). As one OR it was a scan
# of the whole ledger per batch: 70 ms with a million alarms in history.
LEDGER_OPEN = """
SELECT id, device_id, rule, cleared_at FROM (
    SELECT id, device_id, rule, cleared_at, raised_at FROM iot.alarm
    WHERE cleared_at IS NULL AND device_id = ANY(%(devices)s) AND rule = ANY(%(rules)s)
    UNION ALL
    SELECT id, device_id, rule, cleared_at, raised_at FROM iot.alarm
    WHERE cleared_at > now() - %(window)s AND device_id = ANY(%(devices)s)
      AND rule = ANY(%(rules)s)
) a
ORDER BY raised_at
"""


def apply(conn: psycopg.Connection, conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    """Record conditions in the alarm ledger; return the alarm events worth announcing."""
    conditions = list(conditions)
    if not conditions:
        return []
    rows = conn.execute(
        LEDGER_OPEN,
        {
            "devices": sorted({c.device_id for c in conditions}),
            "rules": sorted({c.rule for c in conditions}),
            "window": REOPEN_WINDOW,
        },
    ).fetchall()
    latest: dict[tuple[str, str], tuple[int, Any]] = {}
    for alarm_id, device_id, rule, cleared_at in rows:
        latest[(device_id, rule)] = (alarm_id, cleared_at)
    announced: list[dict[str, Any]] = []
    for c in conditions:
        known = latest.get((c.device_id, c.rule))
        if c.active:
            if known and known[1] is None and not c.momentary:
                conn.execute(
                    "UPDATE iot.alarm SET last_seen_at = now(), occurrences = occurrences + 1,"
                    " value = %s, severity = greatest(severity, %s) WHERE id = %s",
                    (c.value, c.severity, known[0]),
                )
            elif known:
                # Back within the window (or a crossing repeated): the same alarm, reopened.
                conn.execute(
                    "UPDATE iot.alarm SET cleared_at = NULL, last_seen_at = now(),"
                    " occurrences = occurrences + 1, value = %s WHERE id = %s",
                    (c.value, known[0]),
                )
                latest[(c.device_id, c.rule)] = (known[0], None)
            else:
                row = conn.execute(
                    """
                    INSERT INTO iot.alarm (kind, rule, severity, device_id, message_zh,
                        message_en, value, threshold, geom)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s,
                        CASE WHEN %s::float8 IS NULL THEN NULL
                             ELSE ST_SetSRID(ST_MakePoint(%s, %s), 4326) END)
                    RETURNING id, raised_at
                    """,
                    (
                        c.kind,
                        c.rule,
                        c.severity,
                        c.device_id,
                        c.message_zh,
                        c.message_en,
                        c.value,
                        c.threshold,
                        c.lon,
                        c.lon,
                        c.lat,
                    ),
                ).fetchone()
                assert row is not None
                latest[(c.device_id, c.rule)] = (row[0], None)
                announced.append(_event("raised", row[0], row[1], c))
        elif known and known[1] is None:
            cleared = conn.execute(
                "UPDATE iot.alarm SET cleared_at = now() WHERE id = %s RETURNING cleared_at",
                (known[0],),
            ).fetchone()
            latest[(c.device_id, c.rule)] = (known[0], cleared[0] if cleared else None)
            announced.append(_event("cleared", known[0], cleared[0] if cleared else None, c))
    return announced


def _event(what: str, alarm_id: int, at: Any, c: Condition) -> dict[str, Any]:
    return {
        "event": what,
        "id": alarm_id,
        "at": at.isoformat() if at is not None else None,
        "kind": c.kind,
        "rule": c.rule,
        "severity": c.severity,
        "device_id": c.device_id,
        "message_zh": c.message_zh,
        "message_en": c.message_en,
        "value": c.value,
        "threshold": c.threshold,
        "lon": c.lon,
        "lat": c.lat,
    }
