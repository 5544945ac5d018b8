"""Stand-in application workers for tests/test_ops_health.py, in a module of their own so the
spawned child imports nothing heavy."""

from __future__ import annotations

import signal
import threading

from gis_core.settings import Settings


def idle_until_terminated(settings: Settings) -> None:
    """Sleeps until SIGTERM, then ends cleanly (as the dispatch monitor does)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    stop.wait(60)


def idle_and_die_on_terminate(settings: Settings) -> None:
    """Sleeps with SIGTERM's default action: terminated, it dies without cleaning up."""
    threading.Event().wait(60)
