"""Logging for every process of the platform: text for a terminal, JSON lines for a collector.

``CHANGZHI_LOG_FORMAT=json`` makes each record one JSON object on stderr (``ts``, ``level``,
``logger``, ``message`` and the record's extra fields), which journald, Loki or Elasticsearch
take as they are. Whatever is bound with :func:`bind` (the API binds a request's id and its
user) is added to every record logged while it is bound, in any module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from gis_core.settings import LogFormat, LogSettings

# A mutable dict per context, so a field learned later (the user, known once the token is
# read in a worker thread) reaches the records of the same request logged afterwards.
_bound: ContextVar[dict[str, Any] | None] = ContextVar("changzhi_log_fields", default=None)


@contextmanager
def bind(**fields: Any) -> Iterator[dict[str, Any]]:
    """Add ``fields`` to every record logged in this context; yields the dict, to add more."""
    merged = {**(_bound.get() or {}), **fields}
    token = _bound.set(merged)
    try:
        yield merged
    finally:
        _bound.reset(token)


def bound() -> dict[str, Any] | None:
    """The fields bound in this context (the same dict :func:`bind` yielded), if any."""
    return _bound.get()


class BoundFields(logging.Filter):
    """Copies the bound fields onto each record (never over a field the call itself set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_bound.get() or {}).items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        timestamp="ts",  # ISO 8601 in UTC, with its offset
        rename_fields={"levelname": "level", "name": "logger"},
        json_ensure_ascii=False,  # operators read Chinese names in the logs
    )


def configure_logging(settings: LogSettings) -> None:
    """Apply ``settings`` to this process. JSON replaces the root's handlers with one JSON
    handler on stderr; text keeps what the command line set up (its handlers, its level unless
    ``CHANGZHI_LOG_LEVEL`` is set).
    Idempotent: a second call replaces its own handler, not adds one."""
    root = logging.getLogger()
    if settings.level is not None:
        root.setLevel(settings.level)
    if settings.format is LogFormat.json:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handler = logging.StreamHandler()
        handler.setFormatter(json_formatter())
        root.addHandler(handler)
        # Servers' own loggers (uvicorn) speak through the root, in the same format.
        for name in ("uvicorn", "uvicorn.error"):
            server = logging.getLogger(name)
            server.handlers.clear()
            server.propagate = True
        # The API writes its own request line (with request id and user).
        logging.getLogger("uvicorn.access").disabled = True
        if settings.level is None:
            root.setLevel(logging.INFO)
    for handler in root.handlers:
        if not any(isinstance(f, BoundFields) for f in handler.filters):
            handler.addFilter(BoundFields())
