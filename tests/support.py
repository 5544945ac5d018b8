"""Helpers the tests share: waiting for a condition, the platform's ASGI app served for real
(uvicorn on a free port, in a thread) for tests that drive it from a browser, and running a
browser scenario (tests/browser/*.mjs) that asks the test to act at its steps."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from apps.platform.services import free_port

# The platform with the seam probe (tests/seam_app) installed next to every shipped application.
WITH_PROBE = "all,tests.seam_app"


def wait_until(check: Callable[[], object], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}")


@contextmanager
def serve_app(app: Any, ready_timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1; yields its base URL once /health answers."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code < 500:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(15)


def run_browser_scenario(
    script: Path,
    cwd: Path,
    env: Mapping[str, str],
    steps: Mapping[str, Callable[[], object]] | None = None,
    timeout: float = 240.0,
) -> dict[str, Any]:
    """Run a node scenario; answer each ``STEP name`` line with ``steps[name]()`` as JSON
    (``true`` for None) and return its ``RESULT {...}`` line. Fails with the scenario's own
    output if it exits non-zero or reports requests that left the machine."""
    assert (cwd / "node_modules" / "playwright-core").is_dir(), (
        f"run `npm ci` in {cwd} (make test does it)"
    )
    proc = subprocess.Popen(
        ["node", str(script)],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    result: dict[str, Any] = {}
    log: list[str] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            log.append(line.rstrip())
            if line.startswith("STEP "):
                answer = (steps or {})[line[5:].strip()]()
                proc.stdin.write(json.dumps(answer if answer is not None else True) + "\n")
                proc.stdin.flush()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        code = proc.wait(30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert code == 0, f"{script.name} failed:\n{err[-4000:]}\n" + "\n".join(log[-30:])
    assert not result.get("external"), f"requests left the machine: {result['external']}"
    return result


def listen(url: str, topic: str) -> tuple[Any, list[dict[str, Any]]]:
    """A platform MQTT client subscribed to ``topic`` (QoS 1), collecting the JSON payloads it
    receives; the caller disconnects it and stops its loop."""
    import orjson

    from realtime.mqtt import BrokerAddress, make_client

    heard: list[dict[str, Any]] = []
    client = make_client(url, "listen")
    client.on_message = lambda c, u, m: heard.append(orjson.loads(m.payload))
    address = BrokerAddress.parse(url)
    client.connect(address.host, address.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, heard


@contextmanager
def own_database(settings: Any, apps: str, tag: str) -> Iterator[Any]:
    """The platform with ``apps`` installed, on a database of its own in the session's
    cluster (an application's migration branch must not reach the other tests' database)."""
    import psycopg

    from gis_core.db import engine, migrate
    from gis_core.settings import DatabaseSettings, MqttSettings, PlatformSettings, Settings

    name = f"seam_{tag}_{os.getpid()}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    own = Settings(
        platform=PlatformSettings(var_dir=settings.platform.var_dir, apps=apps),
        database=DatabaseSettings(url=url),
        mqtt=MqttSettings(url=settings.mqtt.url, share_group=f"seam{tag}"),
        auth=settings.auth,
        data=settings.data,
    )
    migrate(own.sqlalchemy_url, apps)
    try:
        yield own
    finally:
        engine(own.sqlalchemy_url).dispose()
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
