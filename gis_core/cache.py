"""One value per database, rebuilt when the version of its source changes.

The road graph, the gazetteer and dispatch's coverage cells are built from tables that change
rarely and are read on every request: each process keeps one copy per database and asks the
database for a cheap version (a counter bumped by a trigger, the dataset's load time) before
using it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import psycopg

T = TypeVar("T")


def database_key(conn: psycopg.Connection) -> str:
    """Which database a connection reaches (host, port and name)."""
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


class PerDatabase(Generic[T]):
    """A value per database: ``version(conn)`` is read on every :meth:`get`, ``build(conn)``
    runs only when it differs from the version the held value was built at."""

    def __init__(
        self,
        version: Callable[[psycopg.Connection], Hashable],
        build: Callable[[psycopg.Connection], T],
    ) -> None:
        self._version = version
        self._build = build
        self._held: dict[str, tuple[Hashable, T]] = {}
        self._lock = threading.Lock()

    def get(self, conn: psycopg.Connection) -> T:
        key = database_key(conn)
        version = self._version(conn)
        held = self._held.get(key)
        if held is not None and held[0] == version:
            return held[1]
        with self._lock:  # one build at a time; a second caller finds it done
            held = self._held.get(key)
            if held is None or held[0] != version:
                held = (version, self._build(conn))
                self._held[key] = held
        return held[1]

    def clear(self) -> None:
        with self._lock:
            self._held.clear()


def dataset_version(conn: psycopg.Connection) -> str:
    """When the reference dataset was last loaded (a reload replaces what is built on it)."""
    row = conn.execute("SELECT coalesce(max(loaded_at)::text, '') FROM ref.dataset").fetchone()
    return str(row[0]) if row else ""
