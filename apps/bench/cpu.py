"""CPU seconds spent by each part of a benchmark (broker, database, workers, load generator),
so a figure comes with where the machine's time went.

Every process of a part is counted with the time of its reaped children, so a database backend
that exits during the run is still counted (in the postmaster), and nothing twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import psutil

__all__ = ["CpuMeter"]


def _tree_seconds(roots: list[int], with_own: bool = True) -> float:
    total = 0.0
    seen: set[int] = set()
    for pid in roots:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    total += t.children_user + t.children_system
                    if with_own:
                        total += t.user + t.system
    return total


class CpuMeter:
    """``parts`` maps a name to a function giving that part's root pids (looked up at each
    reading, so workers started later are found)."""

    def __init__(self, parts: dict[str, Callable[[], list[int]]]) -> None:
        self.parts = parts
        self._start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {name: _tree_seconds(pids()) for name, pids in self.parts.items()}

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        return {name: end[name] - self._start.get(name, 0.0) for name in self.parts}
