"""JSON log lines (CHANGZHI_LOG_FORMAT=json) with the request id and the user."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gis_core.logs import bind, configure_logging
from gis_core.settings import LogFormat, LogSettings, Settings
from web.app import create_app


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging changes the process's root logger: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    servers = {n: logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved = {n: (lg.handlers[:], lg.propagate, lg.disabled) for n, lg in servers.items()}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (h, propagate, disabled) in saved.items():
            servers[name].handlers[:] = h
            servers[name].propagate = propagate
            servers[name].disabled = disabled


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_settings_read_the_format_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGZHI_LOG_FORMAT", "json")
    assert LogSettings().format is LogFormat.json
    assert LogSettings().log_requests is True
    monkeypatch.setenv("CHANGZHI_LOG_FORMAT", "text")
    assert LogSettings().log_requests is False
    monkeypatch.setenv("CHANGZHI_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="json"):
        LogSettings()
    monkeypatch.delenv("CHANGZHI_LOG_FORMAT")
    with pytest.raises(ValueError, match="CHANGZHI_LOG_LEVEL 'LOUD'"):
        LogSettings(level="loud")
    assert LogSettings(level="debug").level == "DEBUG"


def test_json_lines_carry_the_bound_fields(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogSettings(format=LogFormat.json))
    configure_logging(LogSettings(format=LogFormat.json))  # twice: still one line per record
    log = logging.getLogger("changzhi.test")
    with bind(request_id="r-1") as fields:
        fields["user"] = "张三"
        log.info("dispatched %s", "MED-A-003", extra={"incident_id": 12})
    log.info("outside")
    first, second = json_lines(capsys.readouterr().err)
    assert first["message"] == "dispatched MED-A-003"
    assert first["level"] == "INFO" and first["logger"] == "changzhi.test"
    assert first["request_id"] == "r-1" and first["user"] == "张三"
    assert first["incident_id"] == 12
    assert datetime.fromisoformat(first["ts"]).utcoffset() is not None
    assert "request_id" not in second


def test_each_request_logs_one_line_with_its_id_and_user(
    restored_logging: None,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    db_url: str,
    admin_headers: dict[str, str],
) -> None:
    as_json = Settings(
        platform=settings.platform,
        database=settings.database,
        mqtt=settings.mqtt,
        auth=settings.auth,
        log=LogSettings(format=LogFormat.json),
    )
    with TestClient(create_app(as_json)) as client:
        capsys.readouterr()
        mine = client.get("/auth/me", headers={**admin_headers, "X-Request-ID": "ticket-42"})
        made = client.get("/health")
        hostile_id = ("a b\u00e9" + "x" * 200).encode("latin-1")  # spaces, not ASCII, too long
        hostile = client.get("/health", headers={"X-Request-ID": hostile_id})
    assert mine.headers["x-request-id"] == "ticket-42"
    assert len(made.headers["x-request-id"]) == 32  # a new uuid4, in hex
    assert len(hostile.headers["x-request-id"]) == 32
    requests = [r for r in json_lines(capsys.readouterr().err) if r["logger"] == "web.request"]
    assert len(requests) == 3
    me = requests[0]
    assert me["request_id"] == "ticket-42" and me["user"] == "root-admin"
    assert me["route"] == "/auth/me" and me["status"] == 200 and me["method"] == "GET"
    assert me["duration_ms"] >= 0
    assert requests[1]["request_id"] == made.headers["x-request-id"]
    assert requests[1]["user"] is None
