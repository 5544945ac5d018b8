"""Long-running parts of the platform as child processes (ingest workers, monitors, sensors)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def spawn(
    target: Callable[..., None], *args: Any, name: str, grace_s: float = 15.0
) -> Callable[[], None]:
    """Start ``target(*args)`` in a fresh (spawned) process; return the function that stops it:
    SIGTERM, ``grace_s`` to finish, then SIGKILL."""
    process = multiprocessing.get_context("spawn").Process(
        target=target, args=args, name=name, daemon=False
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
