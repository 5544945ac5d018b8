"""The registry's work, each function on an explicit psycopg connection: applications and
their conflict check, the workflow, waivers, a right's history, as-of views, the full check.

The HTTP handlers and the command line only wire these; errors are :mod:`gis_core.errors`
exceptions whose message names what is wrong.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from apps.registry import bitemporal, conflicts
from apps.registry.corners import CornerError, parse_corners
from apps.registry.models import REGISTER_SRID
from gis_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis_core.identity import Principal

#: The workflow: action → (states it may start from, state it leads to, roles that may take it).
TRANSITIONS: Final[dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]]] = {
    "accept": (("application",), "accepted", ("registrar",)),
    "review": (("accepted",), "reviewed", ("inspector",)),
    "approve": (("reviewed",), "approved", ("supervisor",)),
    "certify": (("approved",), "certified", ("registrar", "supervisor")),
    "reject": (("application", "accepted", "reviewed"), "rejected", ("inspector", "supervisor")),
}
KINDS: Final = ("mining", "exploration", "parcel")
SUBMIT_ROLES: Final = ("registrar",)
WAIVE_ROLES: Final = ("supervisor",)
#: Overlaps below this (m²) are drawing noise, not conflicts (as in :mod:`conflicts`).
MIN_AREA_M2: Final = 1.0
#: Days an application may take before it is overdue (超时催办), unless the caller says.
DEFAULT_DUE_DAYS: Final = 20
#: The protected layers an application is checked against (views of registry.protected_area).
PROTECTED_KINDS: Final = ("basic_farmland", "ecological_red_line", "built_up")
MAX_ASOF_FEATURES: Final = 5000


@dataclass(frozen=True)
class Boundary:
    """An applied-for boundary in WGS84 with its depth range (None: not given)."""

    geom: MultiPolygon
    depth_top_m: float | None
    depth_bottom_m: float | None
    warnings: tuple[str, ...] = ()


def _multi(geom: BaseGeometry, what: str) -> MultiPolygon:
    if isinstance(geom, Polygon):
        geom = MultiPolygon([geom])
    if not isinstance(geom, MultiPolygon) or geom.is_empty:
        raise InvalidInput(f"{what}: needs a Polygon or MultiPolygon, got {geom.geom_type}")
    if not geom.is_valid:
        # An application overlapping itself (a bow-tie ring, parts on top of each other).
        raise InvalidInput(f"{what}: invalid geometry ({shapely.is_valid_reason(geom)})")
    return geom


def boundary_from_corners(
    text: str, *, default_zone: int | None = None, near: tuple[float, float] | None = None
) -> Boundary:
    """One boundary from a corner-coordinate list (拐点坐标), refused with the reason."""
    try:
        found = parse_corners(text, default_zone=default_zone, near=near)
    except CornerError as exc:
        raise InvalidInput(f"corner list: {exc}") from None
    if len(found) != 1:
        raise InvalidInput(f"corner list: expected one boundary, the text holds {len(found)}")
    b = found[0]
    geom = _multi(b.geometry_wgs84, "corner list")
    top = b.depth.top if b.depth else None
    bottom = b.depth.bottom if b.depth else None
    return Boundary(geom, top, bottom, b.warnings)


def boundary_from_geojson(
    geometry: Mapping[str, Any], depth_top_m: float | None, depth_bottom_m: float | None
) -> Boundary:
    """A GeoJSON (WGS84 lon/lat) polygon with a depth range."""
    try:
        geom = shape(geometry)
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.GEOSException) as exc:
        raise InvalidInput(f"geometry: not a GeoJSON geometry ({exc})") from None
    multi = _multi(geom, "geometry")
    x0, y0, x1, y1 = multi.bounds
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise InvalidInput("geometry: coordinates must be WGS84 longitude/latitude")
    return Boundary(multi, depth_top_m, depth_bottom_m)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- the check

# The applied-for boundary against (a) every right the register holds and is valid now, in
# plan and depth (ranges that only touch do not conflict; no range given: plan alone),
# (b) each protected layer, (c) current parcels for a parcel application. Candidates come
# from the GiST indexes in each table's own SRID; areas are computed in the metric CRS.
_CHECK: Final = """
WITH a AS (
  SELECT id, kind, object_id, geom AS g, ST_Transform(geom, %(srid)s) AS gm,
         depth_top_m AS top, depth_bottom_m AS bot
  FROM registry.application WHERE id = %(id)s
), hit AS (
  SELECT 'right_overlap' AS check_kind, v.object_kind AS other_kind, v.object_id AS other_id,
         ST_CollectionExtract(ST_Intersection(a.gm, v.geom), 3) AS gm
  FROM a JOIN registry.registry_version v
    ON v.geom && a.gm AND v.recorded_to IS NULL AND v.object_kind = 'mining_right'
   AND v.valid_from <= now() AND (v.valid_to IS NULL OR now() < v.valid_to)
   AND v.object_id <> a.object_id AND a.kind <> 'parcel'
   AND (a.top IS NULL OR a.bot IS NULL
        OR v.attrs->>'depth_top_m' IS NULL OR v.attrs->>'depth_bottom_m' IS NULL
        OR GREATEST(LEAST(a.top, a.bot), LEAST((v.attrs->>'depth_top_m')::float8,
                                               (v.attrs->>'depth_bottom_m')::float8))
         < LEAST(GREATEST(a.top, a.bot), GREATEST((v.attrs->>'depth_top_m')::float8,
                                                  (v.attrs->>'depth_bottom_m')::float8)))
   AND ST_Relate(a.gm, v.geom, 'T********')
  UNION ALL
  SELECT 'right_vs_' || p.kind, p.kind, p.code,
         ST_CollectionExtract(ST_Intersection(a.gm, ST_Transform(p.geom, %(srid)s)), 3)
  FROM a JOIN registry.protected_area p
    ON p.geom && a.g AND ST_Relate(a.g, p.geom, 'T********')
  WHERE a.kind <> 'parcel' OR p.kind <> 'built_up'
  UNION ALL
  SELECT 'parcel_overlap', 'parcel', c.parcel_code,
         ST_CollectionExtract(ST_Intersection(a.gm, ST_Transform(c.geom, %(srid)s)), 3)
  FROM a JOIN registry.parcel c
    ON c.geom && a.g AND c.valid_to IS NULL AND a.kind = 'parcel'
   AND c.parcel_code <> a.object_id AND ST_Relate(a.g, c.geom, 'T********')
)
INSERT INTO registry.finding
  (application_id, check_kind, other_kind, other_id, area_m2, area_mu, share, geom)
SELECT a.id, h.check_kind, h.other_kind, h.other_id, ST_Area(h.gm),
       ST_Area(h.gm) / %(mu)s, ST_Area(h.gm) / NULLIF(ST_Area(a.gm), 0),
       ST_Multi(ST_Transform(h.gm, 4326))
FROM hit h CROSS JOIN a
WHERE ST_Area(h.gm) > %(min_area)s
ORDER BY 2, 4
"""


def check_application(conn: psycopg.Connection, application_id: int) -> int:
    """Record the findings of one application; returns how many."""
    cur = conn.execute(
        _CHECK,
        {
            "id": application_id,
            "srid": REGISTER_SRID,
            "mu": conflicts.MU_M2,
            "min_area": MIN_AREA_M2,
        },
    )
    return cur.rowcount


# --------------------------------------------------------------------------- applications


def submit(
    conn: psycopg.Connection,
    user: Principal,
    *,
    kind: str,
    object_id: str,
    applicant: str,
    boundary: Boundary,
    corners: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    due_days: int = DEFAULT_DUE_DAYS,
) -> dict[str, Any]:
    """File an application, check it, and return it with its findings (caller commits)."""
    if not user.has_any(*SUBMIT_ROLES):
        raise Forbidden(f"submitting an application needs one of the roles: {SUBMIT_ROLES}")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not object_id.strip() or len(object_id) > 40:
        raise InvalidInput("object_id (licence number or parcel code) must be 1–40 characters")
    if not applicant.strip():
        raise InvalidInput("applicant must not be empty")
    if not 1 <= due_days <= 365:
        raise InvalidInput(f"due_days must be between 1 and 365, got {due_days}")
    top, bot = boundary.depth_top_m, boundary.depth_bottom_m
    if (top is None) != (bot is None):
        raise InvalidInput("give both depth_top_m and depth_bottom_m, or neither")
    if top is not None and bot is not None and top == bot:
        raise InvalidInput(f"depth range {top}–{bot} m has no thickness")
    row = conn.execute(
        """
        INSERT INTO registry.application (kind, object_id, applicant, attrs, corners, geom,
            depth_top_m, depth_bottom_m, due_at, submitted_by)
        VALUES (%s, %s, %s, %s::jsonb, %s, ST_GeomFromWKB(%s, 4326), %s, %s,
                now() + make_interval(days => %s), %s)
        RETURNING id
        """,
        (
            kind,
            object_id.strip(),
            applicant.strip(),
            json.dumps(_jsonable(dict(attrs or {})), ensure_ascii=False),
            corners,
            shapely.to_wkb(boundary.geom),
            top,
            bot,
            due_days,
            user.username,
        ),
    ).fetchone()
    assert row is not None
    app_id = int(row[0])
    _step(conn, app_id, "submit", user.username, "; ".join(boundary.warnings) or None)
    check_application(conn, app_id)
    return get_application(conn, app_id)


def _step(conn: psycopg.Connection, app_id: int, step: str, actor: str, note: str | None) -> None:
    conn.execute(
        "INSERT INTO registry.application_step (application_id, step, actor, note)"
        " VALUES (%s, %s, %s, %s)",
        (app_id, step, actor, note),
    )


_APPLICATION_COLUMNS: Final = (
    "id, kind, object_id, applicant, attrs, depth_top_m, depth_bottom_m, state, due_at,"
    " submitted_by, submitted_at, accepted_by, reviewer, approver, reject_reason, updated_at,"
    " txn_id, version, ST_AsGeoJSON(geom, 7)::json, ST_Area(ST_Transform(geom, %(srid)s)),"
    " now() > due_at AND state NOT IN ('certified', 'rejected')"
)


def _application(row: tuple[Any, ...]) -> dict[str, Any]:
    names = [
        "id",
        "kind",
        "object_id",
        "applicant",
        "attrs",
        "depth_top_m",
        "depth_bottom_m",
        "state",
        "due_at",
        "submitted_by",
        "submitted_at",
        "accepted_by",
        "reviewer",
        "approver",
        "reject_reason",
        "updated_at",
        "txn_id",
        "version",
        "geometry",
        "area_m2",
        "overdue",
    ]
    out = dict(zip(names, row, strict=True))
    out["area_mu"] = conflicts.to_mu(out["area_m2"])
    return out


def get_application(conn: psycopg.Connection, app_id: int) -> dict[str, Any]:
    """An application with its findings and its audited steps."""
    row = conn.execute(
        f"SELECT {_APPLICATION_COLUMNS} FROM registry.application WHERE id = %(id)s",
        {"id": app_id, "srid": REGISTER_SRID},
    ).fetchone()
    if row is None:
        raise NotFound(f"application {app_id} does not exist")
    out = _application(row)
    out["findings"] = [
        dict(
            zip(
                [
                    "id",
                    "check_kind",
                    "other_kind",
                    "other_id",
                    "area_m2",
                    "area_mu",
                    "share",
                    "status",
                    "reason",
                    "decided_by",
                    "decided_at",
                    "geometry",
                ],
                r,
                strict=True,
            )
        )
        for r in conn.execute(
            """
            SELECT id, check_kind, other_kind, other_id, area_m2, area_mu, share, status,
                   reason, decided_by, decided_at, ST_AsGeoJSON(geom, 7)::json
            FROM registry.finding WHERE application_id = %s ORDER BY id
            """,
            (app_id,),
        )
    ]
    out["steps"] = [
        {"step": r[0], "actor": r[1], "at": r[2], "note": r[3]}
        for r in conn.execute(
            "SELECT step, actor, at, note FROM registry.application_step"
            " WHERE application_id = %s ORDER BY at, id",
            (app_id,),
        )
    ]
    return out


def list_applications(
    conn: psycopg.Connection, state: str | None = None, overdue: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """Applications, oldest due first; ``overdue``: only those past their due time."""
    where = ["TRUE"]
    if state is not None:
        if state not in {s for _, s, _ in TRANSITIONS.values()} | {"application"}:
            raise InvalidInput(f"unknown state {state!r}")
        where.append("state = %(state)s")
    if overdue:
        where.append("now() > due_at AND state NOT IN ('certified', 'rejected')")
    rows = conn.execute(
        f"SELECT {_APPLICATION_COLUMNS} FROM registry.application WHERE {' AND '.join(where)}"
        " ORDER BY due_at, id LIMIT %(limit)s",
        {"state": state, "limit": limit, "srid": REGISTER_SRID},
    ).fetchall()
    return [_application(r) for r in rows]


def transition(
    conn: psycopg.Connection,
    user: Principal,
    app_id: int,
    action: str,
    *,
    version: int | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Move an application one step; of two concurrent moves exactly one wins (the other
    gets :class:`Conflict`). Approval is refused while findings are open. Certifying enters
    the right or parcel in the bitemporal register. The caller commits."""
    if action not in TRANSITIONS:
        raise InvalidInput(f"action must be one of {', '.join(TRANSITIONS)}, got {action!r}")
    sources, target, roles = TRANSITIONS[action]
    if not user.has_any(*roles):
        raise Forbidden(f"{action} needs one of the roles: {', '.join(roles)}")
    if action == "reject" and not (note and note.strip()):
        raise InvalidInput("a rejection needs a reason (note)")
    # The row lock makes a concurrent transition wait, then see the state this one left.
    row = conn.execute(
        "SELECT state, version FROM registry.application WHERE id = %s FOR UPDATE", (app_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"application {app_id} does not exist")
    state, current = row
    if version is not None and version != current:
        raise Conflict(
            f"application {app_id} has changed (now version {current}, state {state}); "
            f"you acted on version {version}: reload it"
        )
    if state not in sources:
        raise Conflict(f"application {app_id} is {state}: {action} needs {' or '.join(sources)}")
    if action == "approve":
        open_row = conn.execute(
            "SELECT count(*) FROM registry.finding WHERE application_id = %s AND status = 'open'",
            (app_id,),
        ).fetchone()
        if open_row and open_row[0]:
            raise Conflict(
                f"application {app_id} has {open_row[0]} unresolved finding(s): resolve or "
                "waive them (with a reason) before approval"
            )
    column = {
        "accept": "accepted_by",
        "review": "reviewer",
        "approve": "approver",
        "reject": "approver",
    }.get(action)
    txn_id = _certify(conn, app_id) if action == "certify" else None
    conn.execute(
        "UPDATE registry.application SET state = %(target)s, version = version + 1,"
        " updated_at = now(), txn_id = coalesce(%(txn)s, txn_id),"
        " reject_reason = CASE WHEN %(rejects)s THEN %(note)s ELSE reject_reason END"
        + (f", {column} = %(actor)s" if column else "")
        + " WHERE id = %(id)s",
        {
            "target": target,
            "rejects": target == "rejected",
            "txn": txn_id,
            "note": note,
            "actor": user.username,
            "id": app_id,
        },
    )
    _step(conn, app_id, action, user.username, note)
    return get_application(conn, app_id)


def _certify(conn: psycopg.Connection, app_id: int) -> int:
    """Enter an approved application in the register; returns the transaction id."""
    row = conn.execute(
        """
        SELECT kind, object_id, applicant, attrs, depth_top_m, depth_bottom_m, approver,
               ST_AsBinary(ST_Transform(geom, %s))
        FROM registry.application WHERE id = %s
        """,
        (REGISTER_SRID, app_id),
    ).fetchone()
    assert row is not None
    kind, object_id, applicant, attrs, top, bot, approver, wkb = row
    now = conn.execute("SELECT now()").fetchone()
    assert now is not None
    valid_to = None
    if attrs.get("permit_to"):
        try:
            end = dt.date.fromisoformat(str(attrs["permit_to"]))
        except ValueError:
            raise InvalidInput(f"permit_to {attrs['permit_to']!r} is not a date") from None
        valid_to = dt.datetime(
            end.year, end.month, end.day, tzinfo=dt.timezone(dt.timedelta(hours=8))
        )
    record = {
        **attrs,
        ("license_no" if kind != "parcel" else "parcel_code"): object_id,
        "holder": applicant,
        "right_type": kind,
        "depth_top_m": top,
        "depth_bottom_m": bot,
    }
    try:
        done = bitemporal.apply(
            conn,
            "registry",
            bitemporal.Register(
                object_id,
                "parcel" if kind == "parcel" else "mining_right",
                record,
                shapely.from_wkb(bytes(wkb)),
                now[0],
                valid_to,
            ),
            srid=REGISTER_SRID,
            note=f"application {app_id}",
            applicant=applicant,
            approver=approver,
        )
    except bitemporal.RegistryError as exc:
        raise Conflict(str(exc)) from None
    return done.txn_id


def waive(
    conn: psycopg.Connection, user: Principal, finding_id: int, reason: str
) -> dict[str, Any]:
    """Waive an open finding with a reason (supervisor); the caller commits."""
    if not user.has_any(*WAIVE_ROLES):
        raise Forbidden(f"waiving a finding needs one of the roles: {', '.join(WAIVE_ROLES)}")
    if not reason or not reason.strip():
        raise InvalidInput("a waiver needs a reason")
    row = conn.execute(
        """
        SELECT f.status, f.application_id, a.state FROM registry.finding f
        JOIN registry.application a ON a.id = f.application_id
        WHERE f.id = %s FOR UPDATE OF f, a
        """,
        (finding_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"finding {finding_id} does not exist")
    status, app_id, state = row
    if status != "open":
        raise Conflict(f"finding {finding_id} is already {status}")
    if state in ("approved", "certified", "rejected"):
        raise Conflict(f"application {app_id} is {state}: its findings can no longer change")
    conn.execute(
        "UPDATE registry.finding SET status = 'waived', reason = %s, decided_by = %s,"
        " decided_at = now() WHERE id = %s",
        (reason.strip(), user.username, finding_id),
    )
    conn.execute(
        "UPDATE registry.application SET version = version + 1, updated_at = now() WHERE id = %s",
        (app_id,),
    )
    _step(conn, app_id, "waive", user.username, f"finding {finding_id}: {reason.strip()}")
    return get_application(conn, app_id)


# --------------------------------------------------------------------------- the register


def _version_dict(v: bitemporal.Version) -> dict[str, Any]:
    return {
        "version_id": v.version_id,
        "txn_id": v.txn_id,
        "attrs": dict(v.attrs),
        "valid_from": v.valid_from,
        "valid_to": v.valid_to,
        "recorded_from": v.recorded_from,
        "recorded_to": v.recorded_to,
        "area_m2": float(v.geom.area),
        "area_mu": conflicts.to_mu(v.geom.area),
    }


def right_history(conn: psycopg.Connection, license_no: str) -> dict[str, Any]:
    """Every version of a right, its transactions (reason, applicant, approver) and lineage."""
    versions = bitemporal.history(conn, "registry", license_no)
    if not versions:
        raise NotFound(f"no right or parcel {license_no!r} in the register")
    txns = {
        r[0]: {
            "operation": r[1],
            "recorded_at": r[2],
            "note": r[3],
            "applicant": r[4],
            "approver": r[5],
        }
        for r in conn.execute(
            "SELECT txn_id, operation, recorded_at, note, applicant, approver"
            " FROM registry.registry_txn WHERE txn_id = ANY(%s)",
            ([v.txn_id for v in versions],),
        )
    }
    out = []
    for v in versions:
        item = _version_dict(v)
        item["transaction"] = txns.get(v.txn_id)
        out.append(item)
    lineage = [
        {
            "parent_id": k.parent_id,
            "child_id": k.child_id,
            "operation": k.operation,
            "valid_from": k.valid_from,
            "depth": k.depth,
        }
        for direction in ("ancestors", "descendants")
        for k in bitemporal.lineage(conn, "registry", license_no, direction)
    ]
    return {"object_id": license_no, "kind": versions[0].kind, "versions": out, "lineage": lineage}


def as_of(
    conn: psycopg.Connection,
    valid_at: dt.datetime,
    known_at: dt.datetime | None = None,
    *,
    object_id: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    kind: str | None = None,
    limit: int = MAX_ASOF_FEATURES,
) -> dict[str, Any]:
    """What the register said on ``valid_at`` as it stood at ``known_at`` (None: now), as a
    GeoJSON FeatureCollection in WGS84, with a count by kind (the statistic)."""
    for name, t in (("valid", valid_at), ("known", known_at)):
        if t is not None and t.tzinfo is None:
            raise InvalidInput(f"{name} must carry a time zone offset, e.g. 2020-01-01T00:00+08:00")
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise InvalidInput("bbox must be minlon,minlat,maxlon,maxlat in WGS84")
    where = ["valid_from <= %(v)s", "(valid_to IS NULL OR %(v)s < valid_to)"]
    where.append(
        "recorded_to IS NULL"
        if known_at is None
        else "recorded_from <= %(k)s AND (recorded_to IS NULL OR %(k)s < recorded_to)"
    )
    if object_id is not None:
        where.append("object_id = %(obj)s")
    if kind is not None:
        where.append("object_kind = %(kind)s")
    if bbox is not None:
        where.append(
            "geom && ST_Transform(ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326), %(srid)s)"
        )
    params = {
        "v": valid_at,
        "k": known_at,
        "obj": object_id,
        "kind": kind,
        "srid": REGISTER_SRID,
        "limit": limit,
        **dict(zip(("x0", "y0", "x1", "y1"), bbox or (0, 0, 0, 0), strict=True)),
    }
    rows = conn.execute(
        "SELECT object_id, object_kind, attrs, valid_from, valid_to, recorded_from,"
        " ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json, ST_Area(geom)"
        f" FROM registry.registry_version WHERE {' AND '.join(where)}"
        " ORDER BY object_id LIMIT %(limit)s",
        params,
    ).fetchall()
    features = [
        {
            "type": "Feature",
            "id": r[0],
            "geometry": r[6],
            "properties": {
                "object_id": r[0],
                "kind": r[1],
                **r[2],
                "valid_from": r[3],
                "valid_to": r[4],
                "recorded_from": r[5],
                "area_m2": r[7],
            },
        }
        for r in rows
    ]
    counts: dict[str, int] = {}
    for f in features:
        counts[f["properties"]["kind"]] = counts.get(f["properties"]["kind"], 0) + 1
    return {
        "type": "FeatureCollection",
        "valid": valid_at,
        "known": known_at,
        "numberReturned": len(features),
        "counts": counts,
        "features": features,
    }


def find_rights(conn: psycopg.Connection, q: str, limit: int = 20) -> list[dict[str, Any]]:
    """Rights the register holds now whose licence number or holder contains ``q``."""
    if not q.strip():
        raise InvalidInput("give part of a licence number or a holder's name")
    pattern = "%" + q.strip().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
    rows = conn.execute(
        """
        SELECT DISTINCT ON (object_id) object_id, attrs, valid_from, valid_to,
               ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json
        FROM registry.registry_version
        WHERE recorded_to IS NULL AND object_kind = 'mining_right'
          AND (object_id ILIKE %(p)s OR attrs->>'holder' ILIKE %(p)s)
        ORDER BY object_id, valid_from DESC
        LIMIT %(limit)s
        """,
        {"p": pattern, "limit": limit},
    ).fetchall()
    return [
        {"license_no": r[0], "attrs": r[1], "valid_from": r[2], "valid_to": r[3], "geometry": r[4]}
        for r in rows
    ]


# --------------------------------------------------------------------------- full check

PARCELS: Final = conflicts.Layer("registry.parcel", "parcel")
RIGHTS: Final = conflicts.Layer(
    "registry.mining_right",
    "mining_right",
    depth_top_column="depth_top_m",
    depth_bottom_column="depth_bottom_m",
)
CONSTRAINTS: Final = tuple(conflicts.Layer(f"registry.{k}", k) for k in PROTECTED_KINDS)


def full_check(conn: psycopg.Connection, sample: int = 20) -> dict[str, Any]:
    """The full conflict check of the reference register, summarized per check: how many,
    how much area, how long, and the first ``sample`` findings with their objects' codes."""
    report = conflicts.full_check(conn, PARCELS, RIGHTS, CONSTRAINTS)
    codes: dict[str, dict[Any, Any]] = {
        "parcel": dict(conn.execute("SELECT id, parcel_code FROM registry.parcel").fetchall()),
        "mining_right": dict(
            conn.execute("SELECT id, license_no FROM registry.mining_right").fetchall()
        ),
    }
    for k in PROTECTED_KINDS:
        codes[k] = dict(conn.execute(f"SELECT id, code FROM registry.{k}").fetchall())
    checks = {}
    for name, found in report.findings.items():
        total = float(sum(f.area_m2 for f in found))
        checks[name] = {
            "count": len(found),
            "area_m2": total,
            "area_mu": conflicts.to_mu(total),
            "seconds": report.seconds[name],
            "findings": [
                {
                    "check": f.check,
                    "kind_a": f.kind_a,
                    "a": codes.get(f.kind_a, {}).get(f.id_a, f.id_a),
                    "kind_b": f.kind_b,
                    "b": codes.get(f.kind_b or "", {}).get(f.id_b, f.id_b),
                    "area_m2": f.area_m2,
                    "area_mu": f.area_mu,
                    "share_of_right": f.share_of_right,
                }
                for f in found[:sample]
            ],
        }
    return {"seconds": report.total_seconds, "checks": checks}


def geojson(geom: BaseGeometry) -> dict[str, Any]:
    return dict(mapping(geom))
