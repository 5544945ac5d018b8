"""Database access: migrations, engines and short-lived connections.

Domain code takes an explicit connection; this module only makes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the message names where and why."""


def alembic_config(sqlalchemy_url: str, apps: str | None = None) -> Config:
    """The core's revisions and, as branches labelled with their names, those of the
    installed applications (``apps``: a CHANGZHI_APPS value; default: the settings')."""
    from gis_core.application import installed

    found = installed(apps)
    locations = [MIGRATIONS / "versions", *(a.migrations for a in found if a.migrations)]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    config.attributes["models"] = [a.models for a in found if a.models]
    return config


def _heads(revisions: Iterable[str]) -> str:
    """One text for a set of heads (the core's and each application's branch)."""
    return ",".join(sorted(revisions))


@lru_cache(maxsize=8)
def engine(sqlalchemy_url: str) -> Engine:
    return create_engine(sqlalchemy_url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def migrate(sqlalchemy_url: str, apps: str | None = None) -> tuple[str | None, str]:
    """Bring the schema to the newest revisions of the core and of every installed
    application; return (revisions before, revisions after)."""
    config = alembic_config(sqlalchemy_url, apps)
    eng = engine(sqlalchemy_url)
    try:
        with eng.begin() as conn:
            before = _heads(MigrationContext.configure(conn).get_current_heads())
            config.attributes["connection"] = conn
            command.upgrade(config, "heads")
    except Exception as exc:
        if _is_connection_error(exc):
            raise DatabaseUnavailable(describe_connection_error(exc)) from exc
        raise
    return before or None, head_revision(apps)


def head_revision(apps: str | None = None) -> str:
    """The revisions a fully migrated database records: every branch's head, less those an
    application's branch depends on (Alembic records only the dependent one)."""
    script = ScriptDirectory.from_config(alembic_config("postgresql://", apps))
    heads = script.get_heads()
    revisions = script.revision_map
    needed = {
        r.revision for h in heads for r in revisions.iterate_revisions(h, "base") if r.revision != h
    }
    return _heads(h for h in heads if h not in needed)


def current_revision(sqlalchemy_url: str) -> str | None:
    with engine(sqlalchemy_url).connect() as conn:
        return _heads(MigrationContext.configure(conn).get_current_heads()) or None


def check_alive(conn: Any) -> None:
    """A pool's ``check``: a connection is tried before it is lent, so one left pointing at a
    lost primary is replaced by a fresh one, which the read-write URL takes to whichever
    server is primary now."""
    from psycopg_pool import ConnectionPool

    ConnectionPool.check_connection(conn)


@contextmanager
def connect(
    url: str, *, autocommit: bool = False, timeout: float = 5.0
) -> Iterator[psycopg.Connection]:
    """A psycopg connection with a clear error when the server is not there."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(describe_connection_error(exc)) from exc
    with conn:
        yield conn


def _is_connection_error(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, psycopg.OperationalError):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def describe_connection_error(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    return f"cannot connect to the database: {reason}"


def redact(url: str) -> str:
    """A URL with its password hidden, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
