"""What the migrations compare with the models: shared by Alembic's environment and the test
that autogenerate finds nothing to do on a migrated database."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import alembic_helpers

from gis_core.models import Base

# Made by raw SQL in the migrations (partitioned history, run-time user layers).
RAW_SQL_TABLES = frozenset({"dataset", "user_layer"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table":
        # Tables that extensions own (PostGIS, pgRouting) are not ours to diff: ours are in
        # the schemas of the core's and the installed applications' models.
        if obj.schema not in {t.schema for t in Base.metadata.tables.values()}:
            return False
        if name and (name.startswith("telemetry") or name in RAW_SQL_TABLES):
            return False
    return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))
