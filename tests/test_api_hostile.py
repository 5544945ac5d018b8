"""Hostile requests get a clear 4xx, never a server error: every GET route of the API, with
each of its path and query parameters set to values a careless or malicious client sends."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute

HOSTILE = [
    "",
    "x" * 5000,
    "\x00",
    "a\x00b",
    "-1",
    "99999999999999999999",
    "NaN",
    "inf",
    "1,2,3",
    "1,2,3,nan",
    "2026-13-45T99:00:00Z",
    # Valid times at the ends of what datetime holds: a default window computed from them
    # overflows (issue 12).
    "0001-01-01T01:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "'; DROP TABLE iot.device;--",
    "%00",
    "../../etc/passwd",
    "[]",
    "{}",
    "长治",
]


def _routes(app: Any) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI's included routers
            found += [r for r in route.original_router.routes if isinstance(r, APIRoute)]
    return found


def test_every_get_route_answers_hostile_values_without_a_server_error(
    api: Any, admin_headers: Any, reference: object
) -> None:
    routes = [r for r in _routes(api.app) if "GET" in r.methods]
    assert len(routes) > 30  # the API, not an empty list
    failures = []
    asked = 0
    for route in routes:
        # The names on the wire: aliases such as `filter-lang` or `collectionId`.
        query_names = [p.alias for p in route.dependant.query_params]
        for value in HOSTILE:
            path = route.path
            for param in route.dependant.path_params:
                path = path.replace("{" + param.alias + "}", quote(value, safe="") or "x")
            response = api.get(
                path, params={name: value for name in query_names}, headers=admin_headers
            )
            asked += 1
            if response.status_code >= 500:
                failures.append((route.path, value[:20], response.status_code, response.text[:120]))
    assert asked > 500
    assert not failures, failures


JUNK_BODIES: list[Any] = [
    None,
    {},
    [],
    "x",
    12,
    {"name_zh": "\x00", "lon": "NaN", "lat": 1e308, "geometry": {"type": "Polygon"}},
    {"incident_type": "fire", "lon": 113.1, "lat": 36.2, "address": "a\x00b"},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]


def test_every_write_route_answers_junk_bodies_without_a_server_error(
    api: Any, admin_headers: Any, reference: object
) -> None:
    routes = [r for r in _routes(api.app) if r.methods & {"POST", "PUT", "PATCH", "DELETE"}]
    assert len(routes) > 10
    failures = []
    for route in routes:
        path = route.path
        for param in route.dependant.path_params:
            path = path.replace("{" + param.alias + "}", "999999999")  # touch no real row
        for method in sorted(route.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            for body in JUNK_BODIES:
                response = api.request(method, path, json=body, headers=admin_headers)
                if response.status_code >= 500:
                    failures.append((method, route.path, repr(body)[:40], response.status_code))
    assert not failures, failures


# Text a JSON parser accepts and XML 1.0, PostgreSQL or UTF-8 cannot all carry (issue 12): lone
# surrogates, noncharacters, NUL and other controls; and right-to-left marks, which are fine.
ODD_TEXT = ["a\ud800b", "\udfff", "a\ufffeb", "\uffff", "a\x00b", "\x1b[31m", "\u200f\u202e长治"]


def _body_fields(route: APIRoute) -> list[str]:
    """The names a route's JSON body takes (its model's fields), or one made-up name."""
    field = route.body_field
    model = getattr(field, "type_", None) if field is not None else None
    names = list(getattr(model, "model_fields", {}) or {})
    return names or ["name"]


def test_every_write_route_answers_odd_unicode_without_a_server_error(
    api: Any, admin_headers: Any, reference: object
) -> None:
    routes = [r for r in _routes(api.app) if r.methods & {"POST", "PUT", "PATCH", "DELETE"}]
    headers = {**admin_headers, "Content-Type": "application/json"}
    failures = []
    refused = 0
    deep = b"[" * 100_000 + b"]" * 100_000  # valid JSON deeper than Python's recursion limit
    for route in routes:
        path = route.path
        for param in route.dependant.path_params:
            path = path.replace("{" + param.alias + "}", "999999999")  # touch no real row
        names = _body_fields(route)
        for method in sorted(route.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            bodies = [json.dumps(dict.fromkeys(names, text)).encode() for text in ODD_TEXT]
            bodies += [json.dumps({text: text}).encode() for text in ODD_TEXT[:4]]
            bodies.append(deep)
            for body in bodies:
                response = api.request(method, path, content=body, headers=headers)
                refused += response.status_code == 422
                if response.status_code >= 500:
                    failures.append((method, route.path, body[:40], response.status_code))
    assert refused > len(routes)  # the odd text was refused, not waved through
    assert not failures, failures
