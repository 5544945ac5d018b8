"""Long-running parts of the platform as child processes (ingest workers, monitors, sensors)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any


def spawn(
    target: Callable[..., None],
    *args: Any,
    name: str,
    grace_s: float = 15.0,
    heartbeat: bool = True,
) -> Callable[[], None]:
    """Start ``target(*args)`` in a fresh (spawned) process; return the function that stops it:
    SIGTERM, ``grace_s`` to finish, then SIGKILL.

    With ``heartbeat`` the process beats a row of ``iot.worker_heartbeat`` under ``name``
    while it runs (``gis_core.heartbeat``), so ``/health`` sees it; a worker that beats from
    its own loop (the ingest worker) passes False.
    """
    process = multiprocessing.get_context("spawn").Process(
        target=_run_beating if heartbeat else target,
        args=(target, name, *args) if heartbeat else args,
        name=name,
        daemon=False,
    )
    process.start()

    def stop() -> None:
        if process.is_alive():
            process.terminate()
        process.join(grace_s)
        if process.is_alive():
            process.kill()
            process.join(grace_s)

    return stop


def _run_beating(target: Callable[..., None], name: str, *args: Any) -> None:
    """The child's main: ``target(*args)`` with a heartbeat beside it, removed on a clean end."""
    from gis_core.heartbeat import BackgroundHeartbeat, Heartbeat
    from gis_core.logs import configure_logging
    from gis_core.settings import Settings, get_settings

    # The settings the target was given, if any, else the environment's, as the target does.
    settings = next((a for a in args if isinstance(a, Settings)), None) or get_settings()
    configure_logging(settings.log)  # a spawned child starts with no logging set up
    beating = BackgroundHeartbeat(
        Heartbeat(settings.database_url, name, f"{name}@{os.uname().nodename}"),
        settings.ops.heartbeat_s,
    ).start()
    try:
        target(*args)
    except BaseException:
        beating.stop(leave=False)  # a crash leaves the row to go stale: /health says so
        raise
    beating.stop()
