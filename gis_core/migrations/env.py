"""Alembic environment: runs against the connection handed over by ``gis_core.db.migrate``."""

import importlib

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import Connection, create_engine

from gis_core.migrations.compare import include_object
from gis_core.models import Base


def _import_models() -> None:
    """The installed applications' models join ``Base.metadata``: one schema, one truth."""
    for module in context.config.attributes.get("models", ()):
        importlib.import_module(module)


def run_on(connection: Connection) -> None:
    _import_models()
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
