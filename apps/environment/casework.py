"""Casework of environmental inspection (环境监察): on-site records with photos, violations
and penalties, complaints (信访) matched to the enterprises near them, overdue tasks escalated
(超时催办), and the quarterly inspection report.

Photos are kept on disk under ``<var>/environment/photos/<sha256[:2]>/<sha256>``: the same
photo uploaded twice is stored once, the checksum is kept with the record, and only JPEG and
PNG (recognised by their first bytes, not by what the client claims) up to
:data:`MAX_PHOTO_BYTES` are taken. Every write is audited in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from apps.environment.inspection import create_task, get_task
from apps.environment.models import COMPLAINT_SOURCES, VIOLATION_STATES
from gis_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis_core.identity import Principal, audit
from gis_core.text import check_text

CST = timezone(timedelta(hours=8))
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PHOTO_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
MATCH_RADIUS_M = 1000.0  # an enterprise farther than this from a complaint is not "near" it
MATCH_CANDIDATES = 5
COMPLAINT_TASK_DUE = timedelta(days=5)
# Words that make a hotline ticket the environment bureau's (odour, smoke, dust, noise,
# sewage, discharge).
ENVIRONMENT_WORDS = ("异味", "臭", "烟", "粉尘", "扬尘", "噪声", "噪音", "污水", "排污", "偷排",
                     "废气", "废水", "污染", "恶臭", "黑水")  # fmt: skip


def _who(actor: Principal | None) -> str:
    return actor.username if actor else "system"


# --------------------------------------------------------------------------- records


def add_record(
    conn: psycopg.Connection,
    actor: Principal,
    task_id: int,
    *,
    findings: str,
    visited_at: datetime | None = None,
) -> dict[str, Any]:
    """An on-site record of a task being inspected (or reported): only its assignee or a
    supervisor writes it."""
    task = get_task(conn, task_id)
    if task["state"] not in ("inspecting", "reported"):
        raise Conflict(f"task {task_id} is {task['state']}: records are written while inspecting")
    if task["assignee"] != actor.username and not actor.has_any("supervisor"):
        raise Forbidden(f"task {task_id} is {task['assignee']}'s: only they or a supervisor")
    check_text("findings", findings)
    if not findings.strip():
        raise InvalidInput("a record needs its findings")
    if visited_at is not None and visited_at.tzinfo is None:
        raise InvalidInput("visited_at needs a time-zone offset")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO env.inspection_record (task_id, inspector, visited_at, findings)"
            " VALUES (%s, %s, coalesce(%s, now()), %s)"
            " RETURNING id, task_id, inspector, visited_at, findings, created_at",
            (task_id, actor.username, visited_at, findings.strip()),
        )
        record = cur.fetchone()
    assert record is not None
    audit(conn, actor, "create", "env.inspection_record", str(record["id"]), {"task": task_id})
    return {**record, "photos": [], "violations": []}


def records_of(conn: psycopg.Connection, task_id: int) -> list[dict[str, Any]]:
    """A task's records with their photos and violations."""
    get_task(conn, task_id)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, task_id, inspector, visited_at, findings, created_at"
            " FROM env.inspection_record WHERE task_id = %s ORDER BY id",
            (task_id,),
        )
        records = cur.fetchall()
        ids = [r["id"] for r in records]
        cur.execute(
            "SELECT id, record_id, filename, content_type, size_bytes, sha256, uploaded_by,"
            " created_at FROM env.record_photo WHERE record_id = ANY(%s) ORDER BY id",
            (ids,),
        )
        photos = cur.fetchall()
        cur.execute(
            "SELECT id, record_id, enterprise_id, clause, description, penalty_yuan, state,"
            " created_by, created_at FROM env.violation WHERE record_id = ANY(%s) ORDER BY id",
            (ids,),
        )
        violations = cur.fetchall()
    for r in records:
        r["photos"] = [p for p in photos if p["record_id"] == r["id"]]
        r["violations"] = [v for v in violations if v["record_id"] == r["id"]]
    return records


def _record(conn: psycopg.Connection, record_id: int) -> tuple[int, int | None]:
    row = conn.execute(
        "SELECT r.task_id, t.enterprise_id FROM env.inspection_record r"
        " JOIN env.inspection_task t ON t.id = r.task_id WHERE r.id = %s",
        (record_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"inspection record {record_id} does not exist")
    return int(row[0]), row[1]


def photo_dir(var_dir: Path) -> Path:
    return Path(var_dir) / "environment" / "photos"


def add_photo(
    conn: psycopg.Connection,
    actor: Principal,
    record_id: int,
    *,
    filename: str,
    data: bytes,
    var_dir: Path,
) -> dict[str, Any]:
    """Keep a photo of a record: JPEG or PNG by its first bytes, at most MAX_PHOTO_BYTES."""
    _record(conn, record_id)
    if not data:
        raise InvalidInput("the photo is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoTooLarge(
            f"the photo is {len(data):,} bytes; at most {MAX_PHOTO_BYTES:,} are taken"
        )
    content_type = next((t for magic, t in PHOTO_TYPES.items() if data.startswith(magic)), None)
    if content_type is None:
        raise UnsupportedPhoto("a photo must be a JPEG or PNG image (its bytes say otherwise)")
    name = Path(filename or "photo").name[:200]
    check_text("filename", name)
    digest = hashlib.sha256(data).hexdigest()
    path = photo_dir(var_dir) / digest[:2] / digest
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(path)  # whole or absent, never half a photo under its checksum
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO env.record_photo (record_id, filename, content_type, size_bytes, sha256,"
            " uploaded_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id, record_id, filename,"
            " content_type, size_bytes, sha256, uploaded_by, created_at",
            (record_id, name, content_type, len(data), digest, actor.username),
        )
        photo = cur.fetchone()
    assert photo is not None
    audit(conn, actor, "create", "env.record_photo", str(photo["id"]),
          {"record": record_id, "sha256": digest, "bytes": len(data)})  # fmt: skip
    return photo


def photo_file(conn: psycopg.Connection, photo_id: int, var_dir: Path) -> tuple[Path, str, str]:
    """The file of a photo, its content type and name; 404 if the row or the file is gone."""
    row = conn.execute(
        "SELECT sha256, content_type, filename FROM env.record_photo WHERE id = %s", (photo_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"photo {photo_id} does not exist")
    path = photo_dir(var_dir) / row[0][:2] / row[0]
    if not path.is_file():
        raise NotFound(f"photo {photo_id}'s file is missing from the photo store")
    return path, row[1], row[2]


class PhotoTooLarge(InvalidInput):
    status = 413


class UnsupportedPhoto(InvalidInput):
    status = 415


def add_violation(
    conn: psycopg.Connection,
    actor: Principal,
    record_id: int,
    *,
    clause: str,
    description: str,
    penalty_yuan: float | None = None,
    state: str = "found",
) -> dict[str, Any]:
    """A violation found at an inspection (the task's enterprise), with its penalty if decided."""
    _, enterprise_id = _record(conn, record_id)
    if state not in VIOLATION_STATES:
        raise InvalidInput(f"state must be one of {', '.join(VIOLATION_STATES)}, not {state!r}")
    if penalty_yuan is not None and not penalty_yuan >= 0:
        raise InvalidInput(f"penalty_yuan must be ≥ 0, got {penalty_yuan}")
    if state in ("decided", "paid") and penalty_yuan is None:
        raise InvalidInput(f"a {state} violation needs its penalty_yuan")
    for name, text in (("clause", clause), ("description", description)):
        check_text(name, text)
        if not text.strip():
            raise InvalidInput(f"a violation needs its {name}")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO env.violation (record_id, enterprise_id, clause, description,"
            " penalty_yuan, state, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id, record_id, enterprise_id, clause, description, penalty_yuan, state,"
            " created_by, created_at",
            (record_id, enterprise_id, clause.strip(), description.strip(), penalty_yuan, state,
             actor.username),
        )  # fmt: skip
        violation = cur.fetchone()
    assert violation is not None
    audit(conn, actor, "create", "env.violation", str(violation["id"]),
          {"record": record_id, "penalty_yuan": penalty_yuan, "state": state})  # fmt: skip
    return violation


# --------------------------------------------------------------------------- complaints

NEAR = """
SELECT coalesce(jsonb_agg(jsonb_build_object('enterprise_id', id, 'name_zh', name_zh,
                                             'distance_m', round(d::numeric, 1))
                          ORDER BY d), '[]')::text
FROM (SELECT e.id, e.name_zh,
             ST_Distance(e.geom::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)
                         ::geography) AS d
      FROM env.enterprise e
      WHERE ST_DWithin(e.geom::geography,
                       ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, %(radius)s)
      ORDER BY d LIMIT %(n)s) near
"""


def enterprises_near(
    conn: psycopg.Connection, lon: float, lat: float, radius_m: float = MATCH_RADIUS_M
) -> list[dict[str, Any]]:
    """The enterprises within ``radius_m`` of a point, nearest first (at most five)."""
    row = conn.execute(
        NEAR, {"lon": lon, "lat": lat, "radius": radius_m, "n": MATCH_CANDIDATES}
    ).fetchone()
    found: list[dict[str, Any]] = orjson.loads(row[0]) if row else []
    for f in found:
        f["distance_m"] = float(f["distance_m"])
    return found


COMPLAINT_COLUMNS = (
    "id, source, ticket_id, received_at, content, enterprise_id, distance_m, candidates,"
    " task_id, created_by, created_at, ST_X(geom) AS lon, ST_Y(geom) AS lat"
)


def create_complaint(
    conn: psycopg.Connection,
    actor: Principal | None,
    *,
    content: str,
    lon: float,
    lat: float,
    source: str = "phone",
    ticket_id: str | None = None,
    received_at: datetime | None = None,
    open_task: bool = True,
    radius_m: float = MATCH_RADIUS_M,
) -> dict[str, Any]:
    """A complaint matched to the nearest enterprise within ``radius_m``; with ``open_task``
    and a match, an inspection task for that enterprise (due in five days)."""
    if source not in COMPLAINT_SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(COMPLAINT_SOURCES)}")
    check_text("content", content)
    if not content.strip():
        raise InvalidInput("a complaint needs its content")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"({lon}, {lat}) is not a lon/lat")
    if received_at is not None and received_at.tzinfo is None:
        raise InvalidInput("received_at needs a time-zone offset")
    if (
        ticket_id is not None
        and conn.execute(
            "SELECT 1 FROM env.complaint WHERE ticket_id = %s", (ticket_id,)
        ).fetchone()
    ):
        raise Conflict(f"ticket {ticket_id} is already a complaint")
    near = enterprises_near(conn, lon, lat, radius_m)
    match = near[0] if near else None
    task_id = None
    if open_task and match is not None:
        task = create_task(
            conn,
            actor,
            title=f"信访核查：{match['name_zh']}",
            due_at=(received_at or datetime.now(UTC)) + COMPLAINT_TASK_DUE,
            enterprise_id=match["enterprise_id"],
            note=content.strip()[:4000],
        )
        task_id = task["id"]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""
            INSERT INTO env.complaint (source, ticket_id, received_at, content, enterprise_id,
                                       distance_m, candidates, task_id, created_by, geom)
            VALUES (%s, %s, coalesce(%s, now()), %s, %s, %s, %s::jsonb, %s, %s,
                    ST_SetSRID(ST_MakePoint(%s, %s), 4326))
            RETURNING {COMPLAINT_COLUMNS}
            """,
            (source, ticket_id, received_at, content.strip(),
             match["enterprise_id"] if match else None, match["distance_m"] if match else None,
             orjson.dumps(near).decode(), task_id, _who(actor), lon, lat),
        )  # fmt: skip
        complaint = cur.fetchone()
    assert complaint is not None
    audit(conn, actor, "create", "env.complaint", str(complaint["id"]),
          {"source": source, "ticket_id": ticket_id, "enterprise_id": complaint["enterprise_id"],
           "task_id": task_id})  # fmt: skip
    return complaint


def list_complaints(
    conn: psycopg.Connection, *, since: datetime | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {COMPLAINT_COLUMNS} FROM env.complaint"
            " WHERE %(since)s::timestamptz IS NULL OR received_at >= %(since)s"
            " ORDER BY received_at DESC, id DESC LIMIT %(limit)s",
            {"since": since, "limit": limit},
        )
        return cur.fetchall()


def import_hotline(
    conn: psycopg.Connection, actor: Principal | None, *, open_task: bool = True
) -> dict[str, Any]:
    """The 12345 hotline tickets dispatch imported (incidents of source ``hotline``) whose text
    is about the environment and that are no complaint yet, as complaints matched to the
    enterprises near them. Reads dispatch's tables only (they are the core schema's)."""
    rows = conn.execute(
        """
        SELECT m.ticket_id, i.created_at, coalesce(i.description, ''), ST_X(i.geom),
               ST_Y(i.geom)
        FROM ops.incident i JOIN ops.incident_meta m ON m.incident_id = i.id
        WHERE i.source = 'hotline' AND m.ticket_id IS NOT NULL
          AND i.description ~ %s
          AND NOT EXISTS (SELECT 1 FROM env.complaint c WHERE c.ticket_id = m.ticket_id)
        ORDER BY i.created_at, i.id
        """,
        ("|".join(ENVIRONMENT_WORDS),),
    ).fetchall()
    made = [
        create_complaint(
            conn,
            actor,
            content=text,
            lon=lon,
            lat=lat,
            source="hotline",
            ticket_id=ticket,
            received_at=at,
            open_task=open_task,
        )
        for ticket, at, text, lon, lat in rows
    ]
    return {
        "imported": len(made),
        "matched": sum(c["enterprise_id"] is not None for c in made),
        "complaints": made,
    }


# --------------------------------------------------------------------------- escalation


def escalate_overdue(conn: psycopg.Connection, now: datetime | None = None) -> list[dict[str, Any]]:
    """Escalate every open task past its due time, once per task and local day (超时催办);
    returns the escalations made now (each audited)."""
    now = now or datetime.now(UTC)
    today = now.astimezone(CST).date()
    rows = conn.execute(
        """
        INSERT INTO env.task_escalation (task_id, escalated_on, overdue_hours, assignee)
        SELECT id, %(today)s, extract(epoch FROM %(now)s - due_at) / 3600, assignee
        FROM env.inspection_task
        WHERE due_at < %(now)s AND state NOT IN ('closed', 'cancelled')
        ON CONFLICT DO NOTHING
        RETURNING task_id, overdue_hours, assignee
        """,
        {"today": today, "now": now},
    ).fetchall()
    made = [
        {"task_id": r[0], "overdue_hours": round(float(r[1]), 1), "assignee": r[2],
         "escalated_on": today.isoformat()}
        for r in rows
    ]  # fmt: skip
    for e in made:
        audit(conn, None, "escalate", "env.inspection_task", str(e["task_id"]), e)
    return made


# --------------------------------------------------------------------------- quarterly report


def quarter_bounds(year: int, quarter: int) -> tuple[datetime, datetime]:
    """The first instant of a quarter and of the next, in China Standard Time.

    >>> [t.isoformat() for t in quarter_bounds(2026, 4)]
    ['2026-10-01T00:00:00+08:00', '2027-01-01T00:00:00+08:00']
    """
    if not 1 <= quarter <= 4:
        raise InvalidInput(f"quarter must be 1..4, got {quarter}")
    if not 2000 <= year <= 2100:
        raise InvalidInput(f"year must be 2000..2100, got {year}")
    start = datetime(year, 3 * quarter - 2, 1, tzinfo=CST)
    end = datetime(year + (quarter == 4), 1 if quarter == 4 else 3 * quarter + 1, 1, tzinfo=CST)
    return start, end


REPORT = """
WITH t AS (SELECT * FROM env.inspection_task
           WHERE created_at >= %(start)s AND created_at < %(end)s),
     r AS (SELECT * FROM env.inspection_record
           WHERE visited_at >= %(start)s AND visited_at < %(end)s),
     v AS (SELECT v.* FROM env.violation v JOIN r ON r.id = v.record_id)
SELECT
  (SELECT count(*) FROM t),
  (SELECT coalesce(jsonb_object_agg(state, n), '{}')::text
   FROM (SELECT state, count(*) n FROM t GROUP BY state) s),
  (SELECT count(*) FROM t WHERE exceedance_id IS NOT NULL),
  (SELECT count(*) FROM t WHERE due_at < least(%(end)s, now())
     AND (state NOT IN ('closed', 'cancelled') OR updated_at > due_at)),
  (SELECT count(DISTINCT e.task_id) FROM env.task_escalation e JOIN t ON t.id = e.task_id),
  (SELECT count(*) FROM r),
  (SELECT count(*) FROM env.record_photo p JOIN r ON r.id = p.record_id),
  (SELECT count(*) FROM v),
  (SELECT coalesce(sum(penalty_yuan), 0) FROM v WHERE state IN ('decided', 'paid')),
  (SELECT coalesce(sum(penalty_yuan), 0) FROM v WHERE state = 'paid'),
  (SELECT coalesce(jsonb_agg(x ORDER BY x.violations DESC, x.enterprise_id), '[]')::text
   FROM (SELECT v.enterprise_id, e.name_zh, count(*) AS violations,
                coalesce(sum(v.penalty_yuan), 0) AS penalty_yuan
         FROM v LEFT JOIN env.enterprise e ON e.id = v.enterprise_id
         GROUP BY v.enterprise_id, e.name_zh ORDER BY count(*) DESC LIMIT 10) x),
  (SELECT coalesce(jsonb_object_agg(source, n), '{}')::text
   FROM (SELECT source, count(*) n FROM env.complaint
         WHERE received_at >= %(start)s AND received_at < %(end)s GROUP BY source) c),
  (SELECT count(*) FROM env.complaint
   WHERE received_at >= %(start)s AND received_at < %(end)s AND enterprise_id IS NOT NULL)
"""


def quarterly_report(conn: psycopg.Connection, year: int, quarter: int) -> dict[str, Any]:
    """The quarter's inspection work: tasks by state, overdue and escalated, records, photos,
    violations and penalties (the ten enterprises with most), complaints by channel."""
    start, end = quarter_bounds(year, quarter)
    row = conn.execute(REPORT, {"start": start, "end": end}).fetchone()
    assert row is not None
    complaints = orjson.loads(row[11])
    return {
        "year": year,
        "quarter": quarter,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "tasks": int(row[0]),
        "tasks_by_state": orjson.loads(row[1]),
        "tasks_from_exceedances": int(row[2]),
        "tasks_overdue": int(row[3]),
        "tasks_escalated": int(row[4]),
        "records": int(row[5]),
        "photos": int(row[6]),
        "violations": int(row[7]),
        "penalties_decided_yuan": float(row[8]),
        "penalties_paid_yuan": float(row[9]),
        "enterprises_most_violations": orjson.loads(row[10]),
        "complaints": sum(complaints.values()),
        "complaints_by_source": complaints,
        "complaints_matched": int(row[12]),
    }


def this_quarter(today: date | None = None) -> tuple[int, int]:
    day = today or datetime.now(CST).date()
    return day.year, (day.month - 1) // 3 + 1
