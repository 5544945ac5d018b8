"""The typed HTTP contract: every JSON route of the core and of each installed application
says in OpenAPI what it answers with.

No services needed: the OpenAPI document is built from the routes alone.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from gis_core.application import installed
from gis_core.settings import Settings
from web.app import create_app

# Routes other helpers are rewriting now (web/routers/ogc.py: the OGC interoperability work;
# web/routers/console.py: the console shell); they are typed when those land, and the lead
# removes these entries then. Each entry is "METHOD /path".
KNOWN_UNTYPED = frozenset(
    {
        "GET /collections",
        "GET /collections/{collection_id}",
        "GET /collections/{collection_id}/items",
        "GET /collections/{collection_id}/items/{feature_id}",
        "GET /collections/{collection_id}/tiles",
        "GET /collections/{collection_id}/tiles/WebMercatorQuad/{tile_matrix}/{tile_row}"
        "/{tile_col}",
        "GET /conformance",
        "GET /console/api/devices",
    }
)

SUCCESS = ("200", "201", "202")


def _typed(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether a response schema names its fields: a model, a list of models, or an object
    with properties; not ``{}`` nor a bare ``object`` of anything."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _typed(components[name], components)
    if schema.get("type") == "array":
        return _typed(schema.get("items", {}), components)
    for union in ("anyOf", "oneOf", "allOf"):
        if union in schema:
            return all(_typed(s, components) for s in schema[union] if s.get("type") != "null")
    if schema.get("type") == "object":
        return bool(schema.get("properties"))
    # A scalar (a string, a number) is a shape too.
    return schema.get("type") in ("string", "integer", "number", "boolean")


def json_routes(openapi: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Every route answering JSON on success, with its response schema (None: none)."""
    found: dict[str, dict[str, Any] | None] = {}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for code in SUCCESS:
                response = operation.get("responses", {}).get(code)
                if response is None:
                    continue
                content = response.get("content", {})
                if "application/json" in content:
                    found[f"{method.upper()} {path}"] = content["application/json"].get("schema")
    return found


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    app = create_app(Settings(), installed("all"))
    return app.openapi()


def test_every_json_route_has_a_response_schema(openapi: dict[str, Any]) -> None:
    components = openapi.get("components", {}).get("schemas", {})
    routes = json_routes(openapi)
    print(f"{len(routes)} JSON routes:", *sorted(routes), sep="\n  ")
    # The walk sees the core and the applications, so it cannot pass by finding nothing.
    for expected in ("GET /devices", "GET /health", "GET /apps", "POST /dispatch/incidents"):
        assert expected in routes
    untyped = sorted(
        route
        for route, schema in routes.items()
        if route not in KNOWN_UNTYPED and (schema is None or not _typed(schema, components))
    )
    assert untyped == []


def test_the_walk_tells_a_typed_route_from_an_untyped_one() -> None:
    """Known answers: a bare dict and a missing schema are untyped; a model is typed."""
    components = {
        "Gauge": {"type": "object", "properties": {"level_m": {"type": "number"}}},
        "Anything": {"type": "object", "additionalProperties": True},
    }
    assert _typed({"$ref": "#/components/schemas/Gauge"}, components)
    assert _typed({"type": "array", "items": {"$ref": "#/components/schemas/Gauge"}}, components)
    assert not _typed({"$ref": "#/components/schemas/Anything"}, components)
    assert not _typed({"type": "object", "additionalProperties": True}, components)
    assert not _typed({}, components)
    assert not _typed({"type": "array", "items": {}}, components)
    assert _typed({"anyOf": [{"$ref": "#/components/schemas/Gauge"}, {"type": "null"}]}, components)


def test_the_services_behind_the_routers_know_nothing_of_http() -> None:
    """web/services takes a connection and raises domain errors; FastAPI stays in routers."""
    services = Path(__file__).resolve().parents[1] / "web" / "services"
    modules = sorted(services.glob("*.py"))
    assert len(modules) >= 5
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.name} imports {n}"
                for n in names
                if n.split(".")[0] in ("fastapi", "starlette") or n.startswith("web.routers")
            ]
    assert offenders == []
