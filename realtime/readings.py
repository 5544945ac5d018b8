"""Validation of field readings, per topic family and device kind. Pure: no I/O.

Every message becomes readings or rejects, never nothing: a reject carries the reason a
dead letter is filed under, so an operator can see what a device sent and why it was refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from gis_core.application import DeviceKind, device_kinds
from gis_core.crs import CGCS2000, GCJ02, WGS84, transform
from gis_core.text import first_forbidden

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_READINGS_PER_MESSAGE = 5000
FUTURE_TOLERANCE = timedelta(minutes=5)

# field -> (type, minimum, maximum); types: "num", "int", "str", "bool|str"
Spec = tuple[str, float | None, float | None]
COMMON = frozenset({"ts", "seq", "lon", "lat", "crs", "alt_m"})


class KindRule(NamedTuple):
    """What validation needs of a device kind (from its DeviceKind, precomputed)."""

    spec: Mapping[str, Spec]
    allowed: frozenset[str]
    mobile: bool  # every reading carries a position


def kind_rules(kinds: Mapping[str, DeviceKind] | None = None) -> dict[str, KindRule]:
    """The installed device kinds (or ``kinds``) as validation rules."""
    found = device_kinds() if kinds is None else kinds
    return {
        name: KindRule(kind.spec, frozenset(kind.spec) | COMMON, kind.mobile)
        for name, kind in found.items()
    }


CRS_NAMES = {"WGS84": WGS84, "GCJ02": GCJ02, "GCJ-02": GCJ02, "CGCS2000": CGCS2000}


class Reading(NamedTuple):
    """One valid reading (a named tuple: made tens of thousands of times a second)."""

    device_id: str
    kind: str
    ts: datetime
    seq: int | None
    lon: float | None  # WGS84 after conversion; None: the device's registered site
    lat: float | None
    values: dict[str, Any]

    @property
    def key(self) -> tuple[str, datetime, int | None]:
        return (self.device_id, self.ts, self.seq)


@dataclass(frozen=True)
class Reject:
    reason: str  # a short code: bad_json, bad_ts, out_of_range, unknown_device, ...
    detail: str
    device_id: str | None = None
    # The part of a many-reading message this is about (None: the whole message), so a
    # dead letter holds what was refused, not thousands of copies of one big batch.
    raw: bytes | None = None


def _part(reject: Reject, item: Any) -> Reject:
    try:
        raw = orjson.dumps(item)
    except TypeError:  # not from orjson.loads: nothing to show but the whole message
        return reject
    return Reject(reject.reason, reject.detail, reject.device_id, raw)


@dataclass(frozen=True)
class StatusChange:
    device_id: str
    online: bool


@dataclass
class Parsed:
    readings: list[Reading] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    """What a sane reading looks like here: where, and how old."""

    bbox: tuple[float, float, float, float]  # lon/lat box (a margin around the city)
    retention: timedelta = timedelta(days=400)  # CHANGZHI_DATABASE_TELEMETRY_RETENTION_DAYS
    # The device kinds the installed applications define (default: this process's).
    kinds: Mapping[str, KindRule] = field(default_factory=kind_rules)


# A device registry lookup: device id -> kind, or None when unknown.
DeviceKinds = Callable[[str], str | None]
# Another: device id -> the gateway it is registered behind, or None.
DeviceGateways = Callable[[str], str | None]
GATEWAY = "gateway"  # the registered kind of a device that carries other devices' readings


def _no_gateways(device_id: str) -> str | None:
    return None


def parse_ts(value: Any, now: datetime, limits: Limits) -> datetime | str:
    """A timestamp or the reason it is refused."""
    if isinstance(value, bool):
        return "ts: expected ISO 8601 or epoch milliseconds"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return "ts: not a finite number"
        try:
            ts = datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return "ts: epoch milliseconds out of range"
    elif isinstance(value, str) and len(value) <= 40:
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"ts: {value!r} is not ISO 8601"
        if ts.tzinfo is None:
            return "ts: needs a UTC offset (e.g. +08:00 or Z)"
    else:
        return "ts: missing or not a time"
    if ts > now + FUTURE_TOLERANCE:
        return "ts: more than 5 minutes in the future"
    if ts < now - limits.retention:
        return f"ts: older than the retention ({limits.retention.days} days)"
    return ts


def _check_value(name: str, spec: Spec, value: Any) -> tuple[Any, str | None]:
    """(the checked value, None) or (None, why it is refused)."""
    kind, lo, hi = spec
    if kind in ("num", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{name}: expected a number"
        if not math.isfinite(value):
            return None, f"{name}: not a finite number"
        if kind == "int" and not float(value).is_integer():
            return None, f"{name}: expected an integer"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return None, f"{name}: {value} outside {lo}..{hi}"
        return (int(value) if kind == "int" else float(value)), None
    if kind == "bool|str" and (value is None or isinstance(value, bool)):
        return value, None
    if not isinstance(value, str):
        return None, f"{name}: expected text"
    if hi is not None and len(value) > hi:
        return None, f"{name}: longer than {int(hi)} characters"
    bad = first_forbidden(value)
    if bad is not None:  # NUL would fail the whole batch; the others, any XML made from it
        return None, f"{name}: contains U+{ord(bad):04X}, which XML 1.0 does not allow"
    return value, None


def validate(
    obj: Any, device_id: str, kind: str, now: datetime, limits: Limits
) -> Reading | Reject:
    """One reading object of a device of ``kind``."""
    if not isinstance(obj, dict):
        return Reject("bad_shape", "a reading must be a JSON object", device_id)
    rule = limits.kinds[kind]
    ts = parse_ts(obj.get("ts"), now, limits)
    if isinstance(ts, str):
        return Reject("bad_ts", ts, device_id)
    seq = obj.get("seq")
    if seq is not None and (
        isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63
    ):
        return Reject("bad_value", "seq: expected a non-negative integer", device_id)
    if not obj.keys() <= rule.allowed:
        unknown = obj.keys() - rule.allowed
        names = ", ".join(sorted(str(u)[:20] for u in unknown)[:5])
        return Reject("unknown_field", f"fields not defined for {kind}: {names}", device_id)
    values: dict[str, Any] = {}
    for name, field_spec in rule.spec.items():
        if name in obj:
            checked, problem = _check_value(name, field_spec, obj[name])
            if problem is not None:
                return Reject("bad_value", problem, device_id)
            values[name] = checked
    if not rule.mobile and not values:
        return Reject("bad_shape", f"no {kind} measurement in the reading", device_id)
    lon, lat = obj.get("lon"), obj.get("lat")
    if (lon is None) != (lat is None):
        return Reject("bad_position", "lon and lat come together", device_id)
    if lon is None:
        if rule.mobile:
            return Reject("bad_position", f"a {kind} reading needs lon and lat", device_id)
        return Reading(device_id, kind, ts, seq, None, None, values)
    for name, v in (("lon", lon), ("lat", lat)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return Reject("bad_position", f"{name}: expected a finite number", device_id)
    # Both checked just above.
    x, y = float(lon), float(lat)  # type: ignore[arg-type]
    crs_name = obj.get("crs", "WGS84")
    if not isinstance(crs_name, str) or crs_name.upper() not in CRS_NAMES:
        return Reject("bad_position", f"crs: one of {', '.join(CRS_NAMES)}", device_id)
    minx, miny, maxx, maxy = limits.bbox
    if not (minx <= x <= maxx and miny <= y <= maxy):
        swapped = minx <= y <= maxx and miny <= x <= maxy
        hint = " (lon and lat swapped?)" if swapped else ""
        return Reject(
            "out_of_area", f"position {lon},{lat} outside the service area{hint}", device_id
        )
    source = CRS_NAMES[crs_name.upper()]
    if source == GCJ02:
        tx, ty = transform(x, y, GCJ02, WGS84)
        x, y = float(tx), float(ty)  # type: ignore[arg-type]
    return Reading(device_id, kind, ts, seq, x, y, values)


def _decode(payload: bytes) -> Any | Reject:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Reject("too_large", f"{len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Reject("bad_json", str(exc)[:200])


def _many(
    body: Any,
    device_id: str,
    kind: str,
    now: datetime,
    limits: Limits,
    out: Parsed,
    part_of_more: bool = False,
) -> None:
    items: Iterable[Any] = body if isinstance(body, list) else [body]
    if isinstance(body, list) and not body:
        # Nothing to store is still an answer the device and the operator must see.
        out.rejects.append(Reject("empty", "no readings in the message", device_id))
        return
    if isinstance(body, list) and len(body) > MAX_READINGS_PER_MESSAGE:
        out.rejects.append(Reject("too_large", f"{len(body)} readings in one message", device_id))
        return
    one_of_many = part_of_more or (isinstance(body, list) and len(body) > 1)
    for item in items:
        result = validate(item, device_id, kind, now, limits)
        if isinstance(result, Reading):
            out.readings.append(result)
        else:
            out.rejects.append(_part(result, item) if one_of_many else result)


def parse_message(
    topic: str,
    payload: bytes,
    *,
    kinds: DeviceKinds,
    now: datetime,
    limits: Limits,
    gateways: DeviceGateways = _no_gateways,
) -> Parsed:
    """Everything one MQTT message says, by its topic family.

    The login that sent a message is the id in its topic (the broker's ACL allows a device
    only its own); a gateway's batch may carry only the devices registered behind it
    (``gateways``), so no login writes another device's readings.
    """
    out = Parsed()
    parts = topic.split("/")
    if (
        len(parts) == 5
        and parts[0] == "cz"
        and parts[1] == "v1"
        and parts[4] in ("telemetry", "status")
    ):
        family_kind, device_id, leaf = parts[2], parts[3], parts[4]
        if family_kind == GATEWAY and leaf == "telemetry":
            _gateway(device_id, payload, kinds, gateways, now, limits, out)
            return out
        if family_kind not in limits.kinds and family_kind != GATEWAY:
            out.rejects.append(Reject("bad_topic", f"unknown kind {family_kind!r}", device_id))
            return out
        registered = kinds(device_id)
        if registered is None:
            out.rejects.append(Reject("unknown_device", "not in the device registry", device_id))
            return out
        if registered != family_kind:
            out.rejects.append(
                Reject(
                    "wrong_kind", f"registered as {registered}, sent as {family_kind}", device_id
                )
            )
            return out
        if leaf == "status":
            text = payload.decode("utf-8", "replace").strip().strip('"').lower()
            if text not in ("online", "offline"):
                out.rejects.append(Reject("bad_status", "status is online or offline", device_id))
            else:
                out.statuses.append(StatusChange(device_id, text == "online"))
            return out
        body = _decode(payload)
        if isinstance(body, Reject):
            out.rejects.append(Reject(body.reason, body.detail, device_id))
            return out
        _many(body, device_id, family_kind, now, limits, out)
        return out
    if len(parts) == 3 and parts[0] == "owntracks":
        _owntracks(parts[1], payload, kinds, now, limits, out)
        return out
    out.rejects.append(Reject("bad_topic", f"not a platform topic: {topic[:120]!r}"))
    return out


def _gateway(
    gateway_id: str,
    payload: bytes,
    kinds: DeviceKinds,
    gateways: DeviceGateways,
    now: datetime,
    limits: Limits,
    out: Parsed,
) -> None:
    registered = kinds(gateway_id)
    if registered != GATEWAY:
        detail = "not registered" if registered is None else f"registered as {registered}"
        out.rejects.append(Reject("not_a_gateway", f"{detail}, not as a gateway", gateway_id))
        return
    body = _decode(payload)
    if isinstance(body, Reject):
        out.rejects.append(Reject(body.reason, body.detail, gateway_id))
        return
    if not isinstance(body, dict):
        out.rejects.append(
            Reject("bad_shape", "a gateway batch is an object of device: [readings]", gateway_id)
        )
        return
    if not body:
        out.rejects.append(Reject("empty", "no devices in the gateway batch", gateway_id))
        return
    for device_id, items in body.items():
        kind = kinds(device_id) if len(device_id) <= 64 else None
        if kind is None:
            reject = Reject(
                "unknown_device", f"in gateway {gateway_id}: not registered", device_id[:64]
            )
        elif gateways(device_id) != gateway_id:
            reject = Reject(
                "not_behind_gateway",
                f"gateway {gateway_id} may not speak for {device_id}: it is not registered "
                "behind it",
                device_id,
            )
        else:
            _many(items, device_id, kind, now, limits, out, part_of_more=len(body) > 1)
            continue
        out.rejects.append(_part(reject, {device_id: items}) if len(body) > 1 else reject)


def _owntracks(
    user: str, payload: bytes, kinds: DeviceKinds, now: datetime, limits: Limits, out: Parsed
) -> None:
    """OwnTracks ``_type: location``: lat, lon, tst (epoch s), vel (km/h), cog, batt, acc."""
    body = _decode(payload)
    if isinstance(body, Reject):
        out.rejects.append(Reject(body.reason, body.detail, user))
        return
    if not isinstance(body, dict) or body.get("_type") != "location":
        kind_of = body.get("_type") if isinstance(body, dict) else None
        out.rejects.append(
            Reject("unsupported", f"OwnTracks message type {kind_of!r} is not a location", user)
        )
        return
    kind = kinds(user)
    rule = limits.kinds.get(kind) if kind is not None else None
    if kind is None or rule is None or not rule.mobile:
        out.rejects.append(Reject("unknown_device", "no registered vehicle for this user", user))
        return
    tst = body.get("tst")
    reading: dict[str, Any] = {
        "ts": tst * 1000 if isinstance(tst, int | float) and not isinstance(tst, bool) else tst,
        "lon": body.get("lon"),
        "lat": body.get("lat"),
    }
    for source, target in (
        ("vel", "speed_kmh"),
        ("cog", "heading_deg"),
        ("batt", "battery_pct"),
        ("acc", "accuracy_m"),
    ):
        if body.get(source) is not None and target in rule.spec:
            reading[target] = body[source]
    result = validate(reading, user, kind, now, limits)
    (out.readings if isinstance(result, Reading) else out.rejects).append(result)  # type: ignore[arg-type]


def dedupe(readings: Iterable[Reading]) -> list[Reading]:
    """Drop repeats within a batch: same device and seq, else same device and time."""
    seen: set[tuple[str, Any]] = set()
    unique = []
    for r in readings:
        key = (r.device_id, ("seq", r.seq) if r.seq is not None else ("ts", r.ts))
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def limits_for(
    bbox: Mapping[str, Any] | list[float],
    margin_deg: float = 0.5,
    retention: timedelta = Limits.retention,
    kinds: Mapping[str, DeviceKind] | None = None,
) -> Limits:
    minx, miny, maxx, maxy = bbox if isinstance(bbox, list) else bbox["bbox"]
    return Limits(
        (minx - margin_deg, miny - margin_deg, maxx + margin_deg, maxy + margin_deg),
        retention,
        kind_rules(kinds),
    )
