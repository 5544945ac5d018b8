"""Incidents and assignments: create, assign, move through the lifecycle, close.

Every write happens in the caller's transaction together with its audit entry and its row on
the incident timeline (``ops.incident_event``); the caller commits and then announces.

Unit availability follows the assignment: dispatching sets the unit ``dispatched``, then
``en_route`` and ``on_scene`` as the assignment advances, and clearing makes it ``available``
again. Two dispatchers assigning the same unit at once: the conditional update on the unit row
serialises them, and exactly one wins (the other gets 409); the unique index on live
assignments is the last line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from apps.dispatch import plans
from apps.dispatch.gazetteer import gazetteer_for, geocode
from gis_core.crs import WGS84, UnknownCRSError, parse_crs, transform
from gis_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis_core.identity import Principal, audit
from gis_core.text import check_text

STATUSES = ("dispatched", "en_route", "on_scene", "cleared")
UNIT_STATUS = {"dispatched": "dispatched", "en_route": "en_route", "on_scene": "on_scene"}


@dataclass(frozen=True)
class Actor:
    """Who acts: a user, or the platform itself (``principal`` None) on behalf of ``source``."""

    principal: Principal | None
    source: str = "operator"  # operator, gps, hotline, system

    @property
    def name(self) -> str:
        return self.principal.username if self.principal else self.source


def visible_for(actor: Actor, joint: bool) -> frozenset[str] | None:
    if actor.principal is None:
        return None
    return plans.visible_departments(actor.principal.department, actor.principal.roles, joint)


def may_declare_joint(actor: Actor) -> bool:
    """Only who sees every agency (a supervisor, an admin, the command centre, or the platform
    itself) declares an incident joint or undoes it: a declaration opens other departments'
    units to every dispatcher, so one department may not grant it to itself."""
    return visible_for(actor, False) is None


def _check_joint(actor: Actor) -> None:
    if not may_declare_joint(actor):
        raise Forbidden(
            "only a supervisor or the command centre declares an incident joint (or undoes it)"
        )


def _check_own_incident(
    conn: psycopg.Connection, actor: Actor, incident: dict[str, Any], doing: str
) -> None:
    """A department's dispatcher acts on an incident only if its type calls for their
    department, or one of their units is on it (or it is joint)."""
    allowed = visible_for(actor, incident["joint"])
    if allowed is None:
        return
    kind = plans.INCIDENT_TYPES.get(incident["incident_type"])
    called = kind.departments if kind else frozenset()
    on_it = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT u.department_code FROM ops.assignment a"
            " JOIN ops.unit u ON u.id = a.unit_id WHERE a.incident_id = %s",
            (incident["id"],),
        ).fetchall()
    }
    if not (called | on_it) & allowed:
        raise Forbidden(
            f"incident {incident['id']} ({incident['incident_type']}) is for "
            f"{', '.join(sorted(called | on_it)) or 'no department'}: not yours to {doing}"
        )


def event(
    conn: psycopg.Connection,
    incident_id: int,
    name: str,
    actor: Actor,
    detail: dict[str, Any],
    at: datetime | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO ops.incident_event (incident_id, at, event, actor, detail)
        VALUES (%s, coalesce(%s, now()), %s, %s, %s::jsonb)
        """,
        (incident_id, at, name, actor.name, orjson.dumps(detail, default=str).decode()),
    )


# --------------------------------------------------------------------------- location


def locate(
    conn: psycopg.Connection,
    *,
    lon: float | None,
    lat: float | None,
    crs: str | int | None,
    address: str | None,
    min_confidence: float = 0.5,
) -> tuple[float, float, dict[str, Any]]:
    """WGS84 lon/lat of an incident from coordinates (any supported CRS) or an address."""
    if lon is not None and lat is not None:
        try:
            src = parse_crs(crs if crs is not None else WGS84)
        except UnknownCRSError as exc:
            raise InvalidInput(str(exc)) from None
        try:
            x, y = transform(lon, lat, src, WGS84)
        except Exception as exc:  # pyproj refuses a CRS it cannot build
            raise InvalidInput(f"cannot transform from {crs!r}: {exc}") from None
        x, y = float(x), float(y)  # type: ignore[arg-type]
        if not (-180 <= x <= 180 and -90 <= y <= 90):
            raise InvalidInput(f"({lon}, {lat}) in {crs or 'WGS84'} is not a place on Earth")
        return x, y, {"method": "coordinates", "crs": str(crs or "WGS84"), "confidence": 1.0}
    if (lon is None) != (lat is None):
        raise InvalidInput("give both lon and lat, or an address")
    if address:
        match = geocode(gazetteer_for(conn), address, min_confidence=min_confidence)
        return float(match["lon"]), float(match["lat"]), match
    raise InvalidInput("give the location as lon/lat or as an address")


def place_facts(
    conn: psycopg.Connection, lon: float, lat: float, s: plans.DispatchSettings
) -> tuple[str, str]:
    """The district a point is in and its area class; 422 when outside the city."""
    row = conn.execute(
        """
        WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g)
        SELECT
            (SELECT code FROM ref.admin_area a, p
             WHERE a.level = 'district' AND ST_Intersects(a.geom, p.g) LIMIT 1),
            (SELECT bool_or(ST_Intersects(a.geom, p.g)) FROM ref.admin_area a, p
             WHERE a.level = 'city'),
            (SELECT c.population / nullif(ST_Area(c.geom::geography) / 1e6, 0)
             FROM ref.population_cell c, p WHERE ST_Intersects(c.geom, p.g) LIMIT 1)
        """,
        {"lon": lon, "lat": lat},
    ).fetchone()
    assert row is not None
    district, in_city, density = row
    if not in_city and district is None:
        name = conn.execute("SELECT name_zh FROM ref.admin_area WHERE level = 'city'").fetchone()
        city = name[0] if name else "the city"
        raise InvalidInput(
            f"({lon:.6f}, {lat:.6f}) is outside {city}: the platform dispatches inside the city"
        )
    if district is None:  # on the city outline but between district polygons
        near = conn.execute(
            "SELECT code FROM ref.admin_area WHERE level = 'district'"
            " ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1",
            (lon, lat),
        ).fetchone()
        district = near[0] if near else None
    area = "urban" if density is not None and density >= s.urban_density_km2 else "rural"
    return district, area


# --------------------------------------------------------------------------- incidents


INCIDENT_SQL = """
SELECT i.id, i.incident_type, i.priority, i.status, i.caller, i.description, i.address,
       i.geocode, i.district_code, a.name_zh AS district, i.joint, i.source, i.created_by,
       i.created_at, i.closed_at, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
       m.area_class, m.response_target_s, m.plan, m.ticket_id
FROM ops.incident i
LEFT JOIN ops.incident_meta m ON m.incident_id = i.id
LEFT JOIN ref.admin_area a ON a.code = i.district_code
"""


def create_incident(
    conn: psycopg.Connection,
    actor: Actor,
    *,
    incident_type: str,
    priority: int | None = None,
    caller: str | None = None,
    description: str | None = None,
    lon: float | None = None,
    lat: float | None = None,
    crs: str | int | None = None,
    address: str | None = None,
    joint: bool = False,
    min_confidence: float = 0.5,
    ticket_id: str | None = None,
    created_at: datetime | None = None,
    settings: plans.DispatchSettings | None = None,
) -> dict[str, Any]:
    """Create an incident (validated, located, classified) and return it."""
    for name, text in (("caller", caller), ("description", description), ("address", address)):
        check_text(name, text)
    if joint:
        _check_joint(actor)
    s = settings or plans.dispatch_settings()
    kind = plans.incident_type(incident_type)
    if priority is None:
        priority = kind.priority
    if not 1 <= priority <= 4:
        raise InvalidInput("priority: 1 (life threatening) .. 4 (routine)")
    x, y, geocoded = locate(
        conn, lon=lon, lat=lat, crs=crs, address=address, min_confidence=min_confidence
    )
    district, area = place_facts(conn, x, y, s)
    target = plans.response_target_s(area, s)
    plan = [{"unit_type": t, "count": n} for t, n in kind.plan]
    row = conn.execute(
        """
        INSERT INTO ops.incident (incident_type, priority, status, caller, description, address,
                                  geocode, district_code, joint, source, created_by, created_at,
                                  geom)
        VALUES (%s, %s, 'new', %s, %s, %s, %s::jsonb, %s, %s, %s, %s, coalesce(%s, now()),
                ST_SetSRID(ST_MakePoint(%s, %s), 4326))
        RETURNING id
        """,
        (
            incident_type,
            priority,
            caller,
            description,
            address,
            orjson.dumps(geocoded).decode(),
            district,
            joint,
            actor.source,
            actor.name,
            created_at,
            x,
            y,
        ),
    ).fetchone()
    assert row is not None
    incident_id = int(row[0])
    conn.execute(
        """
        INSERT INTO ops.incident_meta (incident_id, area_class, response_target_s, plan,
                                       ticket_id)
        VALUES (%s, %s, %s, %s::jsonb, %s)
        """,
        (incident_id, area, target, orjson.dumps(plan).decode(), ticket_id),
    )
    detail = {
        "type": incident_type,
        "priority": priority,
        "lon": x,
        "lat": y,
        "district_code": district,
        "area_class": area,
        "geocode": geocoded,
    }
    event(conn, incident_id, "created", actor, detail, created_at)
    audit(conn, actor.principal, "create", "incident", str(incident_id), detail)
    return get_incident(conn, incident_id)


def get_incident(conn: psycopg.Connection, incident_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(INCIDENT_SQL + " WHERE i.id = %s", (incident_id,))
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return row


def incident_detail(conn: psycopg.Connection, incident_id: int) -> dict[str, Any]:
    """An incident with its assignments and timeline."""
    incident = get_incident(conn, incident_id)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT a.id, a.unit_id, u.call_sign, u.unit_type, u.department_code,
                   u.status AS unit_status, a.assigned_by, a.dispatched_at, a.en_route_at,
                   a.on_scene_at, a.cleared_at, a.eta_s
            FROM ops.assignment a JOIN ops.unit u ON u.id = a.unit_id
            WHERE a.incident_id = %s ORDER BY a.id
            """,
            (incident_id,),
        )
        incident["assignments"] = cur.fetchall()
        cur.execute(
            "SELECT at, event, actor, detail FROM ops.incident_event"
            " WHERE incident_id = %s ORDER BY at, id",
            (incident_id,),
        )
        incident["timeline"] = cur.fetchall()
    return incident


def list_incidents(
    conn: psycopg.Connection, state: str = "open", limit: int = 200
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            INCIDENT_SQL
            + """
            WHERE (%(state)s = 'all'
                   OR (%(state)s = 'open' AND i.closed_at IS NULL)
                   OR (%(state)s = 'closed' AND i.closed_at IS NOT NULL))
            ORDER BY i.priority, i.created_at DESC LIMIT %(limit)s
            """,
            {"state": state, "limit": limit},
        )
        return cur.fetchall()


def update_incident(
    conn: psycopg.Connection,
    actor: Actor,
    incident_id: int,
    *,
    joint: bool | None = None,
    priority: int | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    check_text("description", description)
    current = _lock_incident(conn, incident_id)
    changes: dict[str, Any] = {}
    if joint is not None and joint != current["joint"]:
        _check_joint(actor)
        changes["joint"] = joint
    elif priority is not None or description is not None:
        _check_own_incident(conn, actor, current, "change")
    if priority is not None and priority != current["priority"]:
        if not 1 <= priority <= 4:
            raise InvalidInput("priority: 1 (life threatening) .. 4 (routine)")
        changes["priority"] = priority
    if description is not None and description != current["description"]:
        changes["description"] = description
    if changes:
        conn.execute(
            """
            UPDATE ops.incident SET joint = coalesce(%(joint)s, joint),
                priority = coalesce(%(priority)s, priority),
                description = coalesce(%(description)s, description)
            WHERE id = %(id)s
            """,
            {
                "joint": changes.get("joint"),
                "priority": changes.get("priority"),
                "description": changes.get("description"),
                "id": incident_id,
            },
        )
        name = "declared_joint" if changes.get("joint") else "updated"
        event(conn, incident_id, name, actor, changes)
        audit(conn, actor.principal, "update", "incident", str(incident_id), changes)
    return get_incident(conn, incident_id)


def _lock_incident(conn: psycopg.Connection, incident_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, incident_type, status, joint, priority, description, closed_at,"
            " ST_X(geom) AS lon,"
            " ST_Y(geom) AS lat FROM ops.incident WHERE id = %s FOR UPDATE",
            (incident_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return row


# --------------------------------------------------------------------------- assignments


def assign(
    conn: psycopg.Connection,
    actor: Actor,
    incident_id: int,
    unit_ids: list[str],
    etas: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Dispatch units to an incident, all or none.

    Raises
    ------
    NotFound
        An unknown incident or unit.
    Forbidden
        A unit of a department the dispatcher may not assign (unless the incident is joint).
    Conflict
        The incident is closed, or a unit is not available (taken by someone else meanwhile).
    """
    if not unit_ids:
        raise InvalidInput("name at least one unit to assign")
    if len(set(unit_ids)) != len(unit_ids):
        raise InvalidInput("a unit is named twice")
    incident = _lock_incident(conn, incident_id)
    if incident["closed_at"] is not None:
        raise Conflict(f"incident {incident_id} is closed")
    allowed = visible_for(actor, incident["joint"])
    known = {
        r[0]: r
        for r in conn.execute(
            "SELECT id, department_code, status, call_sign FROM ops.unit WHERE id = ANY(%s)",
            (unit_ids,),
        )
    }
    missing = [u for u in unit_ids if u not in known]
    if missing:
        raise NotFound(f"no unit {', '.join(missing)}")
    if allowed is not None:
        foreign = [u for u in unit_ids if known[u][1] not in allowed]
        if foreign:
            depts = sorted({known[u][1] for u in foreign})
            raise Forbidden(
                f"unit(s) {', '.join(foreign)} belong to {', '.join(depts)}; you dispatch for "
                f"{', '.join(sorted(allowed)) or 'no department'}: declare incident "
                f"{incident_id} joint to assign other agencies' units"
            )
    made: list[dict[str, Any]] = []
    # Units in a fixed order: two multi-unit assignments never wait on each other in a cycle.
    for unit_id in sorted(unit_ids):
        taken = conn.execute(
            """
            UPDATE ops.unit SET status = 'dispatched', status_changed_at = now()
            WHERE id = %s AND status = 'available'
            RETURNING id
            """,
            (unit_id,),
        ).fetchone()
        if taken is None:
            raise Conflict(_unavailable(conn, unit_id))
        try:
            with conn.transaction():
                row = conn.execute(
                    """
                    INSERT INTO ops.assignment (incident_id, unit_id, assigned_by, eta_s)
                    VALUES (%s, %s, %s, %s)
                    RETURNING id, dispatched_at
                    """,
                    (incident_id, unit_id, actor.name, (etas or {}).get(unit_id)),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise Conflict(_unavailable(conn, unit_id)) from None
        assert row is not None
        made.append(
            {
                "assignment_id": int(row[0]),
                "unit_id": unit_id,
                "call_sign": known[unit_id][3],
                "dispatched_at": row[1],
                "eta_s": (etas or {}).get(unit_id),
            }
        )
    if incident["status"] == "new":
        conn.execute("UPDATE ops.incident SET status = 'dispatched' WHERE id = %s", (incident_id,))
    detail = {"units": [m["unit_id"] for m in made], "etas": etas or {}}
    event(conn, incident_id, "dispatched", actor, detail)
    audit(conn, actor.principal, "assign", "incident", str(incident_id), detail)
    return made


def _unavailable(conn: psycopg.Connection, unit_id: str) -> str:
    row = conn.execute(
        """
        SELECT u.status, a.incident_id FROM ops.unit u
        LEFT JOIN ops.assignment a ON a.unit_id = u.id AND a.cleared_at IS NULL
        WHERE u.id = %s
        """,
        (unit_id,),
    ).fetchone()
    if row is None:
        return f"unit {unit_id} is not available"
    where = f" on incident {row[1]}" if row[1] is not None else ""
    return f"unit {unit_id} is not available: it is {row[0]}{where}"


def transition(
    conn: psycopg.Connection,
    actor: Actor,
    assignment_id: int,
    status: str,
    at: datetime | None = None,
    *,
    check_department: bool = True,
) -> dict[str, Any] | None:
    """Move an assignment forward (dispatched → en_route → on_scene → cleared).

    A step may skip ahead (a unit seen on scene was en route too); going back or repeating a
    step is a 409 for an operator and ignored (None) for the GPS monitor, which may simply
    have been overtaken by an operator.
    """
    if status not in STATUSES[1:]:
        raise InvalidInput(f"status: one of {', '.join(STATUSES[1:])}")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT a.id, a.incident_id, a.unit_id, a.en_route_at, a.on_scene_at, a.cleared_at,
                   u.department_code, i.joint, i.status AS incident_status
            FROM ops.assignment a
            JOIN ops.unit u ON u.id = a.unit_id
            JOIN ops.incident i ON i.id = a.incident_id
            WHERE a.id = %s
            FOR UPDATE OF a, u
            """,
            (assignment_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no assignment {assignment_id}")
    allowed = visible_for(actor, row["joint"]) if check_department else None
    if allowed is not None and row["department_code"] not in allowed:
        raise Forbidden(
            f"unit {row['unit_id']} belongs to {row['department_code']}: not yours to move"
        )
    current = (
        "cleared"
        if row["cleared_at"]
        else "on_scene"
        if row["on_scene_at"]
        else "en_route"
        if row["en_route_at"]
        else "dispatched"
    )
    if STATUSES.index(status) <= STATUSES.index(current):
        if actor.source == "gps":
            return None
        raise Conflict(
            f"assignment {assignment_id} is already {current}; it cannot become {status}"
        )
    stamp = conn.execute("SELECT coalesce(%s::timestamptz, now())", (at,)).fetchone()
    assert stamp is not None
    when = stamp[0]
    conn.execute(
        """
        UPDATE ops.assignment SET
            en_route_at = CASE WHEN %(s)s IN ('en_route', 'on_scene')
                               THEN coalesce(en_route_at, %(at)s) ELSE en_route_at END,
            on_scene_at = CASE WHEN %(s)s = 'on_scene' THEN %(at)s ELSE on_scene_at END,
            cleared_at = CASE WHEN %(s)s = 'cleared' THEN %(at)s ELSE cleared_at END
        WHERE id = %(id)s
        """,
        {"s": status, "at": when, "id": assignment_id},
    )
    unit_status = UNIT_STATUS.get(status, "available")
    conn.execute(
        """
        UPDATE ops.unit SET status = %s, status_changed_at = %s
        WHERE id = %s AND status <> 'out_of_service'
        """,
        (unit_status, when, row["unit_id"]),
    )
    if status == "on_scene" and row["incident_status"] in ("new", "dispatched"):
        conn.execute(
            "UPDATE ops.incident SET status = 'on_scene' WHERE id = %s", (row["incident_id"],)
        )
    detail = {"assignment_id": assignment_id, "unit_id": row["unit_id"], "status": status}
    event(conn, row["incident_id"], status, actor, detail, when)
    audit(
        conn,
        actor.principal,
        status,
        "assignment",
        str(assignment_id),
        {**detail, "source": actor.source},
    )
    return {**detail, "incident_id": row["incident_id"], "at": when, "source": actor.source}


def close_incident(
    conn: psycopg.Connection, actor: Actor, incident_id: int, note: str | None = None
) -> dict[str, Any]:
    """Close an incident; its units still assigned are cleared and become available.

    The incident comes back with ``cleared_assignments``: the assignments this closing ended.
    """
    check_text("note", note)
    incident = _lock_incident(conn, incident_id)
    if incident["closed_at"] is not None:
        raise Conflict(f"incident {incident_id} is already closed")
    _check_own_incident(conn, actor, incident, "close")
    live = conn.execute(
        "SELECT a.id, a.unit_id, u.department_code FROM ops.assignment a"
        " JOIN ops.unit u ON u.id = a.unit_id"
        " WHERE a.incident_id = %s AND a.cleared_at IS NULL ORDER BY a.id",
        (incident_id,),
    ).fetchall()
    # Closing releases every unit still on the incident: a department's dispatcher may do
    # that only when none of them is another agency's (that agency clears its own first).
    allowed = visible_for(actor, False)
    others = [unit for _, unit, dept in live if allowed is not None and dept not in allowed]
    if others:
        raise Forbidden(
            f"other agencies' units are still on incident {incident_id}: "
            f"{', '.join(others)}; they clear them, or a supervisor closes it"
        )
    for assignment_id, _, _ in live:
        transition(conn, actor, assignment_id, "cleared", check_department=False)
    conn.execute(
        "UPDATE ops.incident SET status = 'closed', closed_at = now() WHERE id = %s",
        (incident_id,),
    )
    event(conn, incident_id, "closed", actor, {"note": note, "cleared": [r[0] for r in live]})
    audit(conn, actor.principal, "close", "incident", str(incident_id), {"note": note})
    return {**get_incident(conn, incident_id), "cleared_assignments": [r[0] for r in live]}


def unit_rows(
    conn: psycopg.Connection,
    departments: frozenset[str] | None,
    status: str | None = None,
    unit_type: str | None = None,
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT u.id, u.call_sign, u.unit_type, u.department_code, u.status,
                   u.status_changed_at, u.device_id, u.station_poi_id, p.name_zh AS station,
                   ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.ts AS position_ts, s.online,
                   a.incident_id, a.id AS assignment_id, g.unit_id IS NOT NULL AS gps_suspect
            FROM ops.unit u
            LEFT JOIN iot.device_state s ON s.device_id = u.device_id
            LEFT JOIN ref.poi p ON p.id = u.station_poi_id
            LEFT JOIN ops.assignment a ON a.unit_id = u.id AND a.cleared_at IS NULL
            LEFT JOIN ops.gps_suspect g ON g.unit_id = u.id
            WHERE (%(depts)s::text[] IS NULL OR u.department_code = ANY(%(depts)s::text[]))
              AND (%(status)s::text IS NULL OR u.status = %(status)s)
              AND (%(type)s::text IS NULL OR u.unit_type = %(type)s)
            ORDER BY u.id
            """,
            {
                "depts": sorted(departments) if departments is not None else None,
                "status": status,
                "type": unit_type,
            },
        )
        return cur.fetchall()
