"""Recorded readings from a CSV file, to publish again in time order.

The file has a header with at least ``ts``, ``device_id`` and ``kind``, then any reading
fields of the contract (``pm25``, ``level_m``, ``speed_kmh``, ...), and optionally ``lon``,
``lat``, ``crs``, ``seq``. ``ts`` is ISO 8601 (a time without offset is taken as China
Standard Time) or epoch milliseconds. An empty cell means "not measured".

A row that cannot become a valid reading (a bad time, an unknown kind, text where a number
belongs, a value out of range) is reported with its line number and skipped; the others are
published.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from gis_core.application import device_kinds
from realtime.readings import Limits, Reading, validate
from sensors.clock import CST

__all__ = ["BadRow", "ReplayPlan", "ReplayRow", "load_replay", "parse_ts"]

REQUIRED = ("ts", "device_id", "kind")
_POSITION = ("lon", "lat")
# Checks of type and range only: where and when is the platform's business.


@cache
def _anywhere() -> Limits:
    """No bounds on place or age: a replay checks its values, not where or when."""
    return Limits((-180.0, -90.0, 180.0, 90.0), retention=timedelta(days=365 * 200))


@dataclass(frozen=True)
class ReplayRow:
    line: int
    ts: float  # epoch seconds
    device_id: str
    kind: str
    fields: dict[str, Any]  # reading fields, with lon/lat/crs when given
    seq: int | None


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class ReplayPlan:
    """The rows to publish, in time order, and the rows refused."""

    path: Path
    rows: list[ReplayRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # device id -> kind

    @property
    def span_s(self) -> float:
        return self.rows[-1].ts - self.rows[0].ts if self.rows else 0.0


def parse_ts(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (CST when no offset is given) or epoch milliseconds.

    Examples
    --------
    >>> parse_ts("2024-07-01T08:00:00+08:00") == parse_ts("1719792000000")
    True
    """
    text = text.strip()
    if not text:
        raise ValueError("ts is empty")
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ValueError(f"ts {text!r} is not a time")
        return number / 1000.0
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"ts {text!r} is neither ISO 8601 nor epoch milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CST)
    return when.timestamp()


def _value(name: str, kind: str, text: str) -> Any:
    spec = device_kinds()[kind].spec[name][0]
    if spec in ("num", "int"):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a number") from None
        return int(number) if spec == "int" and number.is_integer() else number
    if spec == "bool|str" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _row(line: int, record: dict[str, str]) -> ReplayRow:
    device_id = (record.get("device_id") or "").strip()
    kind = (record.get("kind") or "").strip()
    if not device_id:
        raise ValueError("device_id is empty")
    if kind not in device_kinds():
        raise ValueError(f"kind {kind!r} is not one of {', '.join(device_kinds())}")
    ts = parse_ts(record.get("ts") or "")
    fields: dict[str, Any] = {}
    seq: int | None = None
    for name, raw in record.items():
        if name in REQUIRED or name is None:
            continue
        text = (raw or "").strip() if isinstance(raw, str) else ""
        if name == "seq":
            if text:
                try:
                    seq = int(text)
                except ValueError:
                    raise ValueError(f"seq: {text!r} is not an integer") from None
        elif name in _POSITION:
            if text:
                try:
                    fields[name] = float(text)
                except ValueError:
                    raise ValueError(f"{name}: {text!r} is not a number") from None
        elif name == "crs":
            if text:
                fields["crs"] = text
        elif name in device_kinds()[kind].spec:
            if text:
                fields[name] = _value(name, kind, text)
            elif device_kinds()[kind].spec[name][0] == "bool|str":
                fields[name] = None  # an empty fault cell: no fault
        elif text:
            raise ValueError(f"{name} is not a field of {kind} readings")
    checked = validate(
        {"ts": int(ts * 1000), **({"seq": seq} if seq is not None else {}), **fields},
        device_id,
        kind,
        datetime.fromtimestamp(ts, CST),
        _anywhere(),
    )
    if not isinstance(checked, Reading):
        raise ValueError(checked.detail)
    return ReplayRow(line, ts, device_id, kind, fields, seq)


def load_replay(path: Path) -> ReplayPlan:
    """Read and check a recorded CSV.

    Raises
    ------
    OSError
        When the file cannot be read.
    ValueError
        When it lacks the required columns or holds no valid row.
    """
    plan = ReplayPlan(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValueError(
                f"{path.name}: the replay file needs the columns {', '.join(REQUIRED)}"
                f" (missing {', '.join(missing)})"
            )
        reader.fieldnames = header
        for record in reader:
            line = reader.line_num
            if None in record:
                plan.bad.append(BadRow(line, "more cells than columns"))
                continue
            try:
                row = _row(line, record)
            except (ValueError, OverflowError, OSError) as exc:
                plan.bad.append(BadRow(line, str(exc)))
                continue
            known = plan.devices.setdefault(row.device_id, row.kind)
            if known != row.kind:
                plan.bad.append(
                    BadRow(line, f"device {row.device_id} was {known} on an earlier row")
                )
                continue
            plan.rows.append(row)
    if not plan.rows:
        raise ValueError(f"{path.name}: no valid rows to replay")
    plan.rows.sort(key=lambda r: (r.ts, r.line))
    return plan
