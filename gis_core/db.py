"""Database access: migrations, engines and short-lived connections.

Domain code takes an explicit connection; this module only makes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the message names where and why."""


def alembic_config(sqlalchemy_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


@lru_cache(maxsize=8)
def engine(sqlalchemy_url: str) -> Engine:
    return create_engine(sqlalchemy_url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def migrate(sqlalchemy_url: str) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; return (revision before, revision after)."""
    config = alembic_config(sqlalchemy_url)
    eng = engine(sqlalchemy_url)
    try:
        with eng.begin() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except Exception as exc:
        if _is_connection_error(exc):
            raise DatabaseUnavailable(describe_connection_error(exc)) from exc
        raise
    return before, ScriptDirectory.from_config(config).get_current_head() or ""


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    return head or ""


def current_revision(sqlalchemy_url: str) -> str | None:
    with engine(sqlalchemy_url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


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
