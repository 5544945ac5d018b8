"""Import of government-hotline (12345) tickets from CSV.

Every row is geocoded against the local gazetteer (or placed by its coordinates, when the
export has them) and becomes an incident of source ``hotline``; the ticket number is kept, so
a file imported twice creates nothing twice. Rows that cannot be placed — no address, an
address matching nothing or too weakly, a place outside the city — are reported with the
reason and the gazetteer's suggestions; they never stop the others.

Column names are recognised in Chinese or English (``工单编号``/``ticket_id``,
``事发地址``/``address``, ``诉求内容``/``description``, ``诉求类别``/``category``, ``来电人``/
``caller``, ``联系电话``/``phone``, ``来电时间``/``received_at``, ``经度``/``lon``,
``纬度``/``lat``); files come in UTF-8 (with or without BOM) or GB18030.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import psycopg

from apps.dispatch import incidents
from apps.dispatch.gazetteer import Unmatched
from gis_core.errors import InvalidInput, PlatformError
from gis_core.identity import Principal, audit
from gis_core.text import strip_forbidden

COLUMNS = {
    "ticket_id": ("工单编号", "工单号", "编号", "ticket_id", "ticket", "id"),
    "received_at": ("来电时间", "受理时间", "received_at", "time"),
    "caller": ("来电人", "诉求人", "姓名", "caller", "name"),
    "phone": ("联系电话", "来电号码", "电话", "phone"),
    "address": ("事发地址", "诉求地址", "地址", "事发地点", "address", "location"),
    "description": ("诉求内容", "内容", "问题描述", "description", "content"),
    "category": ("诉求类别", "类别", "分类", "类型", "category", "type"),
    "lon": ("经度", "lon", "lng", "longitude", "x"),
    "lat": ("纬度", "lat", "latitude", "y"),
}
# Keywords of a ticket's category and text, first match wins; otherwise a citizen request.
TYPE_KEYWORDS = (
    ("hazmat", ("泄漏", "燃气", "危化", "化学品", "毒气")),
    ("fire", ("火灾", "着火", "起火", "冒烟", "失火", "火情")),
    ("flood_rescue", ("内涝", "积水被困", "洪水", "被困水中", "淹没", "落水")),
    ("traffic_accident", ("交通事故", "车祸", "追尾", "撞车", "翻车")),
    ("medical", ("急救", "晕倒", "昏迷", "受伤", "医疗", "病人")),
    ("police", ("治安", "打架", "斗殴", "盗窃", "抢劫", "报警", "纠纷")),
)
MAX_ROWS = 50_000


@dataclass
class HotlineReport:
    rows: int = 0
    created: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    unplaced: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": len(self.created),
            "duplicates": len(self.duplicates),
            "unplaced": len(self.unplaced),
            "incidents": self.created,
            "duplicate_rows": self.duplicates,
            "unplaced_rows": self.unplaced,
        }


def decode(data: bytes) -> str:
    """The file's text, less the characters XML 1.0 does not allow: a stray control character
    in another system's export must not lose a ticket, nor reach a CAP alert."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return strip_forbidden(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the file is neither UTF-8 nor GB18030 text")


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    names = [h.strip().lower() for h in header]
    for key, aliases in COLUMNS.items():
        for alias in aliases:
            if alias.lower() in names:
                found[key] = names.index(alias.lower())
                break
    if "address" not in found and not ("lon" in found and "lat" in found):
        raise InvalidInput(
            "the CSV needs an address column (事发地址/诉求地址/地址/address) or lon and lat; "
            f"its columns: {', '.join(header)}"
        )
    return found


def classify(category: str, text: str) -> str:
    """The incident type a ticket's category and text suggest."""
    blob = f"{category} {text}"
    for code, words in TYPE_KEYWORDS:
        if any(w in blob for w in words):
            return code
    return "public_service"


def import_hotline(
    conn: psycopg.Connection,
    data: bytes,
    principal: Principal | None,
    *,
    min_confidence: float = 0.5,
    crs: str = "WGS84",
) -> HotlineReport:
    """Import a 12345 CSV export in the caller's transaction (each row in a savepoint)."""
    try:
        table = list(csv.reader(io.StringIO(decode(data))))
    except csv.Error as exc:
        raise InvalidInput(f"not a readable CSV file: {exc}") from None
    if not table:
        raise InvalidInput("the CSV is empty")
    header, reader = table[0], table[1:]
    cols = _columns(header)
    actor = incidents.Actor(principal, "hotline")
    report = HotlineReport()

    def get(row: list[str], key: str) -> str:
        i = cols.get(key)
        return row[i].strip() if i is not None and i < len(row) else ""

    for n, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        report.rows += 1
        if report.rows > MAX_ROWS:
            raise InvalidInput(f"at most {MAX_ROWS:,} tickets per file")
        ticket = get(row, "ticket_id") or None
        address = get(row, "address")
        base = {"row": n, "ticket_id": ticket, "address": address}
        if ticket is not None:
            dup = conn.execute(
                "SELECT incident_id FROM ops.incident_meta WHERE ticket_id = %s", (ticket,)
            ).fetchone()
            if dup is not None:
                report.duplicates.append({**base, "incident_id": int(dup[0])})
                continue
        text = get(row, "description")
        kind = classify(get(row, "category"), text)
        lon = lat = None
        try:
            if get(row, "lon") and get(row, "lat"):
                lon, lat = float(get(row, "lon")), float(get(row, "lat"))
        except ValueError:
            lon = lat = None
        if lon is None and not address:
            report.unplaced.append({**base, "reason": "no address and no coordinates"})
            continue
        caller = " ".join(x for x in (get(row, "caller"), get(row, "phone")) if x) or None
        received = get(row, "received_at")
        description = text + (f"（12345工单 {ticket}，来电 {received}）" if ticket else "")
        try:
            with conn.transaction():
                made = incidents.create_incident(
                    conn,
                    actor,
                    incident_type=kind,
                    caller=caller,
                    description=description or None,
                    lon=lon,
                    lat=lat,
                    crs=crs if lon is not None else None,
                    address=address or None,
                    min_confidence=min_confidence,
                    ticket_id=ticket,
                )
        except Unmatched as exc:
            report.unplaced.append({**base, "reason": str(exc), "suggestions": exc.suggestions})
            continue
        except PlatformError as exc:
            report.unplaced.append({**base, "reason": str(exc), "suggestions": []})
            continue
        geocode = made.get("geocode") or {}
        report.created.append(
            {
                **base,
                "incident_id": made["id"],
                "incident_type": kind,
                "match": geocode.get("match"),
                "kind": geocode.get("kind"),
                "method": geocode.get("method"),
                "confidence": geocode.get("confidence"),
                "lon": made["lon"],
                "lat": made["lat"],
            }
        )
    audit(
        conn,
        principal,
        "import",
        "hotline",
        None,
        {
            "rows": report.rows,
            "created": len(report.created),
            "duplicates": len(report.duplicates),
            "unplaced": len(report.unplaced),
        },
    )
    return report
