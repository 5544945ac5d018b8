"""Alembic environment: runs against the connection handed over by ``gis_core.db.migrate``."""

from typing import Any

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import Connection, create_engine

from gis_core.models import SCHEMAS, Base

# Tables that extensions own (PostGIS, pgRouting) are not ours to diff.
OUR_SCHEMAS = set(SCHEMAS)
RAW_SQL_TABLES = {"dataset", "user_layer"}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table":
        if obj.schema not in OUR_SCHEMAS:
            return False
        if name and (name.startswith("telemetry") or name in RAW_SQL_TABLES):
            return False  # created by raw SQL in the migrations
    return bool(alembic_helpers.include_object(obj, name, type_, reflected, compare_to))


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_schemas=True,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        version_table_schema="public",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    with create_engine(url).connect() as conn:
        run_on(conn)


run()
