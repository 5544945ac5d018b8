"""Issue 12: text that XML 1.0 cannot carry (lone surrogates, U+FFFE/U+FFFF, control
characters) is refused where it enters, every error response encodes, and CAP stays
well-formed whatever the database holds.

Each test was run against the code before its fix and failed there."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest


def post_json(api: Any, path: str, body: Any, headers: dict[str, str]) -> Any:
    """POST a body as JSON with ASCII escapes (``\\ud800``): as a hostile client sends it."""
    content = json.dumps(body).encode()
    return api.post(path, content=content, headers={**headers, "Content-Type": "application/json"})


# --------------------------------------------------------------------------- unicode


@pytest.mark.parametrize(
    "text, char",
    [
        ("a\ud800b", "U+D800"),
        ("a\udfffb", "U+DFFF"),
        ("a\ufffeb", "U+FFFE"),
        ("a\uffffb", "U+FFFF"),
    ],
)
def test_text_xml_cannot_carry_is_refused_with_a_clear_422(
    api, admin_headers, text: str, char: str
) -> None:
    body = {"incident_type": "fire", "lon": 113.1, "lat": 36.2, "description": text}
    response = post_json(api, "/dispatch/incidents", body, admin_headers)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert char in str(detail) and "description" in str(detail)


def test_right_to_left_marks_and_chinese_are_ordinary_text(api, admin_headers, reference) -> None:
    from apps.dispatch.incidents import get_incident  # noqa: F401  (the app is installed)

    text = "\u200f火警\u202e 东街 12 号"
    body = {"incident_type": "fire", "lon": 113.12, "lat": 36.2, "description": text}
    response = api.post("/dispatch/incidents", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    assert response.json()["description"] == text


def test_validation_errors_echoing_odd_text_still_encode() -> None:
    """The 422 handler echoes what was sent; whatever that holds, the response encodes. (The
    body guard refuses such text first; this is the handler's own guarantee.)"""
    from fastapi.responses import JSONResponse

    from web.errors import encodable

    deep: list[Any] = ["\ud800"]
    for _ in range(5000):  # deeper than a recursive walk could go
        deep = [deep]
    errors = [{"loc": ["body", "caller"], "input": {"a\udfff": ["x\ud800y", 1, None]}}]
    with pytest.raises(UnicodeEncodeError):
        JSONResponse({"detail": errors})
    rendered = JSONResponse({"detail": encodable(errors)}).body
    inner = encodable(deep)
    for _ in range(5001):
        inner = inner[0]
    assert inner == "\\ud800"
    assert b'"a\\\\udfff"' in rendered and b'"x\\\\ud800y"' in rendered


def test_cap_of_an_incident_with_noncharacters_in_the_database_is_well_formed(
    api, admin_headers, reference, db_url
) -> None:
    """Text stored before the boundary refused it (or written by another tool) must not make
    the CAP document malformed either."""
    from apps.dispatch import cap

    body = {"incident_type": "fire", "lon": 113.12, "lat": 36.2, "description": "ok"}
    made = api.post("/dispatch/incidents", json=body, headers=admin_headers).json()
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE ops.incident SET description = %s, address = %s WHERE id = %s",
            ("火\ufffe警\uffff\x01", "东街\ufffe", made["id"]),
        )
    response = api.get(f"/dispatch/incidents/{made['id']}/cap", headers=admin_headers)
    assert response.status_code == 200
    assert cap.validate(response.content) == []
    assert response.headers["X-CAP-Valid"] == "true"
    assert "火警".encode() in response.content
