"""Exceedance events found in the telemetry and the inspection tasks they open.

- Emission: each outlet's readings (its emission monitor) to clock-hour averages, valid with
  75 % of the hour's expected readings (HJ 75-2017's 45 of 60 minutes), against each permit
  limit of the outlet.
- Ambient: each air station's hourly averages against GB 3095's 1-hour limits of the edition in
  force on that day (SO2, NO2, CO, O3).

Events are de-bounced (open on the first exceeding valid hour, close after two clean ones) and
stored once (device, pollutant, start); a new emission event opens an inspection task.
Every task change is audited (``auth.audit_log``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from apps.environment import exceedance
from apps.environment.models import TASK_STATES
from gis_core.errors import Conflict, Forbidden, InvalidInput, InvalidParameter, NotFound
from gis_core.identity import Principal, audit

CLOSE_AFTER_CLEAN_HOURS = 2
TASK_DUE = timedelta(days=3)  # an exceedance is inspected within three days
AMBIENT_1H = ("so2", "no2", "co", "o3")
MAX_SCAN = timedelta(days=31)

# state -> {next state: roles allowed (besides the assignee, where marked "assignee")}
TRANSITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "open": {"assigned": ("supervisor",), "cancelled": ("supervisor",)},
    "assigned": {
        "inspecting": ("assignee", "supervisor"),
        "open": ("supervisor",),
        "cancelled": ("supervisor",),
    },
    "inspecting": {"reported": ("assignee", "supervisor")},
    "reported": {"closed": ("supervisor",), "inspecting": ("supervisor",)},
    "closed": {},
    "cancelled": {},
}


@dataclass(frozen=True)
class Found:
    kind: str
    device_id: str
    outlet_id: int | None
    enterprise_id: int | None
    pollutant: str
    limit: float
    standard: str
    event: exceedance.ExceedanceEvent


def _stamp(value: np.datetime64) -> datetime:
    return datetime.fromisoformat(str(value.astype("datetime64[s]"))).replace(tzinfo=UTC)


def _events(
    times: np.ndarray, values: np.ndarray, interval_s: int, limit: float
) -> list[exceedance.ExceedanceEvent]:
    per_hour = max(1, math.ceil(0.75 * 3600 / max(interval_s, 1)))
    ok = ~np.isnan(values)
    if not ok.any():
        return []
    hourly = exceedance.hourly_averages(times[ok], values[ok], min_valid_minutes=per_hour)
    return exceedance.exceedance_events(
        hourly, limit, open_after=1, close_after=CLOSE_AFTER_CLEAN_HOURS
    )


def _series(
    conn: psycopg.Connection, kind: str, fields: Sequence[str], since: datetime, until: datetime
) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    cols = ", ".join(f"(reading->>'{f}')::float8" for f in fields)
    rows = conn.execute(
        f"SELECT device_id, ts, {cols} FROM iot.telemetry"
        " WHERE kind = %s AND ts >= %s AND ts < %s ORDER BY device_id, ts",
        (kind, since, until),
    ).fetchall()
    out: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    if not rows:
        return out
    devices = np.array([r[0] for r in rows])
    times = np.array([r[1].astimezone(UTC).replace(tzinfo=None) for r in rows], "datetime64[m]")
    data = np.array([r[2:] for r in rows], dtype=np.float64)
    cuts = np.flatnonzero(devices[1:] != devices[:-1]) + 1
    for part in np.split(np.arange(len(rows)), cuts):
        out[str(devices[part[0]])] = (
            times[part],
            {f: data[part, j] for j, f in enumerate(fields)},
        )
    return out


def find(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Found]:
    """Exceedance events of every outlet and air station between two times."""
    from apps.environment import AIR, EMISSION

    found: list[Found] = []
    limits = conn.execute(
        """
        SELECT o.device_id, o.id, s.enterprise_id, l.pollutant, l.limit_value, l.standard
        FROM env.outlet o JOIN env.outlet_limit l ON l.outlet_id = o.id
        JOIN env.pollution_source s ON s.id = o.source_id
        WHERE o.device_id IS NOT NULL
        """
    ).fetchall()
    fields = sorted({r[3] for r in limits} & set(EMISSION.spec))
    emission = _series(conn, "emission", fields, since, until) if fields else {}
    for device_id, outlet_id, enterprise_id, pollutant, limit, standard in limits:
        if device_id not in emission or pollutant not in emission[device_id][1]:
            continue
        times, values = emission[device_id]
        for event in _events(times, values[pollutant], EMISSION.interval_s, limit):
            found.append(
                Found(
                    "emission",
                    device_id,
                    outlet_id,
                    enterprise_id,
                    pollutant,
                    limit,
                    standard,
                    event,
                )
            )
    ambient = _series(conn, "air", AMBIENT_1H, since, until)
    for device_id, (times, values) in ambient.items():
        for pollutant in AMBIENT_1H:
            # One limit per scan: the edition in force when the scan's window starts.
            lim = exceedance.ambient_limit(pollutant, "1h", on=since)
            for event in _events(times, values[pollutant], AIR.interval_s, lim.value):
                found.append(
                    Found(
                        "ambient", device_id, None, None, pollutant, lim.value, lim.standard, event
                    )
                )
    return found


def scan(
    conn: psycopg.Connection, since: datetime, until: datetime, actor: Principal | None
) -> dict[str, Any]:
    """Find, store and (for new emission events) open inspection tasks; returns counts and
    the new events."""
    if until <= since:
        raise InvalidParameter(f"until {until} is not after since {since}")
    if until - since > MAX_SCAN:
        raise InvalidParameter(f"a scan covers at most {MAX_SCAN.days} days")
    new: list[dict[str, Any]] = []
    events = find(conn, since, until)
    for f in events:
        e = f.event
        # An event already stored that this one continues (a scan window that began inside
        # it sees it start later): extend that one instead of storing it twice.
        earlier = conn.execute(
            """
            UPDATE env.exceedance SET ended_at = %(end)s,
                   peak_value = greatest(peak_value, %(peak)s),
                   hours = greatest(hours, %(hours)s)
            WHERE id = (SELECT id FROM env.exceedance
                        WHERE device_id = %(device)s AND pollutant = %(pollutant)s
                          AND started_at < %(start)s
                          AND (ended_at IS NULL OR ended_at >= %(start)s)
                        ORDER BY started_at DESC LIMIT 1)
            RETURNING id
            """,
            {
                "end": None if e.end is None else _stamp(e.end),
                "peak": e.peak,
                # A lower bound: the scans' windows overlap, their hours cannot be added.
                "hours": e.exceeding_hours,
                "device": f.device_id,
                "pollutant": f.pollutant,
                "start": _stamp(e.start),
            },
        ).fetchone()
        if earlier is not None:
            continue
        row = conn.execute(
            """
            INSERT INTO env.exceedance (kind, device_id, outlet_id, pollutant, averaging,
                limit_value, standard, peak_value, started_at, ended_at, hours)
            VALUES (%s, %s, %s, %s, '1h', %s, %s, %s, %s, %s, %s)
            ON CONFLICT (device_id, pollutant, started_at) DO UPDATE
                SET ended_at = excluded.ended_at, peak_value = excluded.peak_value,
                    hours = excluded.hours
            RETURNING id, xmax = 0
            """,
            (
                f.kind,
                f.device_id,
                f.outlet_id,
                f.pollutant,
                f.limit,
                f.standard,
                e.peak,
                _stamp(e.start),
                None if e.end is None else _stamp(e.end),
                e.exceeding_hours,
            ),
        ).fetchone()
        assert row is not None  # INSERT .. RETURNING always returns the row
        exceedance_id, inserted = row
        if not inserted:
            continue
        item = {
            "id": exceedance_id,
            "kind": f.kind,
            "device_id": f.device_id,
            "pollutant": f.pollutant,
            "peak": e.peak,
            "limit": f.limit,
            "started_at": _stamp(e.start).isoformat(),
        }
        if f.kind == "emission":
            item["task_id"] = create_task(
                conn,
                actor,
                title=f"{f.device_id} {f.pollutant} 超标 {e.peak:.1f} > {f.limit:g}",
                due_at=_stamp(e.start) + TASK_DUE,
                enterprise_id=f.enterprise_id,
                outlet_id=f.outlet_id,
                exceedance_id=exceedance_id,
            )["id"]
        new.append(item)
    return {"events": len(events), "new": new}


EXCEEDANCE_COLUMNS = """id, kind, device_id, outlet_id, pollutant, averaging, limit_value,
    standard, peak_value, started_at, ended_at, hours,
    (SELECT t.id FROM env.inspection_task t WHERE t.exceedance_id = x.id ORDER BY t.id LIMIT 1)"""


def list_exceedances(
    conn: psycopg.Connection,
    *,
    kind: str | None = None,
    open_only: bool = False,
    since: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    if kind is not None and kind not in ("emission", "ambient"):
        raise InvalidParameter(f"kind must be emission or ambient, not {kind!r}")
    if not 1 <= limit <= 5000:
        raise InvalidParameter(f"limit must be 1..5000, got {limit}")
    rows = conn.execute(
        f"SELECT {EXCEEDANCE_COLUMNS} FROM env.exceedance x"
        " WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (NOT %(open)s OR ended_at IS NULL)"
        " AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s)"
        " ORDER BY x.started_at DESC, x.id DESC LIMIT %(limit)s",
        {"kind": kind, "open": open_only, "since": since, "limit": limit},
    ).fetchall()
    names = (
        "id",
        "kind",
        "device_id",
        "outlet_id",
        "pollutant",
        "averaging",
        "limit",
        "standard",
        "peak",
        "started_at",
        "ended_at",
        "hours",
        "task_id",
    )
    return [dict(zip(names, r, strict=True)) for r in rows]


# --------------------------------------------------------------------------- tasks

TASK_COLUMNS = """id, title, enterprise_id, outlet_id, exceedance_id, state, due_at, assignee,
    created_by, note, created_at, updated_at"""
TASK_NAMES = (
    "id",
    "title",
    "enterprise_id",
    "outlet_id",
    "exceedance_id",
    "state",
    "due_at",
    "assignee",
    "created_by",
    "note",
    "created_at",
    "updated_at",
)


def _task(row: tuple[Any, ...], now: datetime) -> dict[str, Any]:
    task = dict(zip(TASK_NAMES, row, strict=True))
    task["overdue"] = task["state"] not in ("closed", "cancelled") and task["due_at"] < now
    return task


def get_task(conn: psycopg.Connection, task_id: int) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM env.inspection_task WHERE id = %s", (task_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"inspection task {task_id} does not exist")
    return _task(row, datetime.now(UTC))


def list_tasks(
    conn: psycopg.Connection,
    *,
    state: str | None = None,
    assignee: str | None = None,
    overdue: bool = False,
    limit: int = 200,
) -> list[dict[str, Any]]:
    if state is not None and state not in TASK_STATES:
        raise InvalidParameter(f"state must be one of {', '.join(TASK_STATES)}, not {state!r}")
    if not 1 <= limit <= 5000:
        raise InvalidParameter(f"limit must be 1..5000, got {limit}")
    rows = conn.execute(
        f"SELECT {TASK_COLUMNS} FROM env.inspection_task"
        " WHERE (%(state)s::text IS NULL OR state = %(state)s)"
        " AND (%(assignee)s::text IS NULL OR assignee = %(assignee)s)"
        " AND (NOT %(overdue)s OR (due_at < now() AND state NOT IN ('closed', 'cancelled')))"
        " ORDER BY due_at, id LIMIT %(limit)s",
        {"state": state, "assignee": assignee, "overdue": overdue, "limit": limit},
    ).fetchall()
    now = datetime.now(UTC)
    return [_task(r, now) for r in rows]


def create_task(
    conn: psycopg.Connection,
    actor: Principal | None,
    *,
    title: str,
    due_at: datetime,
    enterprise_id: int | None = None,
    outlet_id: int | None = None,
    exceedance_id: int | None = None,
    assignee: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """A new task (``assigned`` when an assignee is given, else ``open``), audited."""
    if not title.strip():
        raise InvalidInput("a task needs a title")
    if due_at.tzinfo is None:
        raise InvalidInput("due_at needs a time-zone offset")
    for what, table, value in (
        ("enterprise", "env.enterprise", enterprise_id),
        ("outlet", "env.outlet", outlet_id),
        ("exceedance", "env.exceedance", exceedance_id),
    ):
        if (
            value is not None
            and not conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (value,)).fetchone()
        ):
            raise InvalidInput(f"{what} {value} does not exist")
    if assignee is not None:
        _check_user(conn, assignee)
    row = conn.execute(
        f"""
        INSERT INTO env.inspection_task (title, enterprise_id, outlet_id, exceedance_id, state,
                                         due_at, assignee, created_by, note)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING {TASK_COLUMNS}
        """,
        (
            title.strip(),
            enterprise_id,
            outlet_id,
            exceedance_id,
            "assigned" if assignee else "open",
            due_at,
            assignee,
            actor.username if actor else "system",
            note,
        ),
    ).fetchone()
    assert row is not None  # INSERT .. RETURNING
    task = _task(row, datetime.now(UTC))
    audit(
        conn,
        actor,
        "create",
        "env.inspection_task",
        str(task["id"]),
        {"title": task["title"], "state": task["state"], "assignee": assignee},
    )
    return task


def _check_user(conn: psycopg.Connection, username: str) -> None:
    if not conn.execute("SELECT 1 FROM auth.app_user WHERE username = %s", (username,)).fetchone():
        raise InvalidInput(f"assignee {username!r} is not a user")


def transition(
    conn: psycopg.Connection,
    actor: Principal,
    task_id: int,
    to: str,
    *,
    assignee: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Move a task to state ``to`` if the workflow and the actor's roles allow it; audited."""
    if to not in TASK_STATES:
        raise InvalidInput(f"state must be one of {', '.join(TASK_STATES)}, not {to!r}")
    row = conn.execute(
        "SELECT state, assignee FROM env.inspection_task WHERE id = %s FOR UPDATE", (task_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"inspection task {task_id} does not exist")
    state, current = row
    allowed = TRANSITIONS[state].get(to)
    if allowed is None:
        nexts = ", ".join(TRANSITIONS[state]) or "none (final)"
        raise Conflict(f"task {task_id} is {state}: it can go to {nexts}, not {to}")
    is_assignee = "assignee" in allowed and current is not None and current == actor.username
    if not (is_assignee or actor.has_any(*(r for r in allowed if r != "assignee"))):
        who = " or ".join(r if r != "assignee" else "its assignee" for r in allowed)
        raise Forbidden(f"only {who} may move task {task_id} from {state} to {to}")
    new_assignee = current
    if to == "assigned":
        if not assignee:
            raise InvalidInput("assigning a task needs an assignee")
        _check_user(conn, assignee)
        new_assignee = assignee
    elif to == "open":
        new_assignee = None
    conn.execute(
        "UPDATE env.inspection_task SET state = %s, assignee = %s,"
        " note = coalesce(%s, note), updated_at = now() WHERE id = %s",
        (to, new_assignee, note, task_id),
    )
    audit(
        conn,
        actor,
        f"transition:{state}->{to}",
        "env.inspection_task",
        str(task_id),
        {"assignee": new_assignee, "note": note},
    )
    return get_task(conn, task_id)
