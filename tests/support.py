"""Helpers the tests share: waiting for a condition, and the platform's ASGI app served for
real (uvicorn on a free port, in a thread) for tests that drive it from a browser."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from apps.platform.services import free_port


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
