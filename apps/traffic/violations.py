"""Red-light violation check against the controller's own event log.

A camera reports a violation (junction, approach phase, instant). The phase's signal state
at that instant is read from the hi-res log (Indiana enumerations 1 begin green, 8 begin
yellow, 9 end yellow, 10/11 red clearance): a violation stands only if the phase showed red;
during green or yellow it goes to a reviewer with the state found, and where the log does not
cover the instant it is flagged ``no_signal_data`` rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from apps.traffic.events import US_PER_S, EventCode, EventLog

__all__ = ["SignalState", "ViolationCheck", "ViolationReport", "check_violation", "phase_state"]

SignalState = Literal["green", "yellow", "red"]
Verdict = Literal["confirmed", "review", "no_signal_data"]

_STATE_OF_CODE: Final[dict[int, SignalState]] = {
    EventCode.PHASE_BEGIN_GREEN: "green",
    EventCode.PHASE_BEGIN_YELLOW_CLEARANCE: "yellow",
    EventCode.PHASE_END_YELLOW_CLEARANCE: "red",
    EventCode.PHASE_BEGIN_RED_CLEARANCE: "red",
    EventCode.PHASE_END_RED_CLEARANCE: "red",
}
_STATE_CODES: Final = np.array(sorted(_STATE_OF_CODE), np.int16)


@dataclass(frozen=True)
class ViolationReport:
    """What the camera saw: the junction, the phase serving its approach, the instant (µs)."""

    junction: int
    phase: int
    ts_us: int

    def __post_init__(self) -> None:
        if not 1 <= self.phase <= 255:
            raise ValueError(f"phase must be between 1 and 255, got {self.phase}")
        if self.junction < 0:
            raise ValueError(f"junction must be non-negative, got {self.junction}")


@dataclass(frozen=True)
class ViolationCheck:
    """The verdict: ``confirmed`` only on red; ``review`` with the state found otherwise."""

    verdict: Verdict
    state: SignalState | None
    state_since_us: int | None
    reason: str


def phase_state(
    log: EventLog, junction: int, phase: int, ts_us: int, max_silence_s: float = 120.0
) -> tuple[SignalState, int] | None:
    """The phase's state at ``ts_us`` and the instant it began, or None if the log is silent.

    The log must show the controller alive on both sides of the instant (some event of the
    junction within ``max_silence_s`` before and after) and a state event of the phase
    before it; a controller writes detector events every few seconds, so silence means a gap
    in the log, not a quiet street.
    """
    gap = int(max_silence_s * US_PER_S)
    before = log.window(junction, ts_us - gap, ts_us + 1)
    after = log.window(junction, ts_us + 1, ts_us + gap + 1)
    if len(before) == 0 or len(after) == 0:
        return None
    history = log.window(junction, np.iinfo(np.int64).min, ts_us + 1)
    mine = history[(history["param"] == phase) & np.isin(history["code"], _STATE_CODES)]
    if len(mine) == 0:
        return None
    last = mine[-1]
    return _STATE_OF_CODE[int(last["code"])], int(last["ts"])


def check_violation(
    log: EventLog,
    report: ViolationReport,
    *,
    max_silence_s: float = 120.0,
    red_grace_s: float = 0.0,
) -> ViolationCheck:
    """Decide whether a red-light violation stands.

    Parameters
    ----------
    log
        The junction's hi-res event log (any span that covers the instant).
    report
        The camera's report.
    max_silence_s
        Longest silence of the log on either side of the instant still taken as coverage.
    red_grace_s
        Red shorter than this at the instant (camera clock skew, all-red start) goes to
        review instead of standing; 0 confirms any red.

    Examples
    --------
    >>> from apps.traffic.events import event_log
    >>> stamps = [0, 30_000_000, 33_000_000, 60_000_000]
    >>> log = event_log(stamps, [1, 1, 1, 1], [1, 8, 10, 1], [2, 2, 2, 2])
    >>> check_violation(log, ViolationReport(1, 2, 40_000_000)).verdict
    'confirmed'
    >>> check_violation(log, ViolationReport(1, 2, 10_000_000)).verdict
    'review'
    """
    found = phase_state(log, report.junction, report.phase, report.ts_us, max_silence_s)
    if found is None:
        return ViolationCheck(
            "no_signal_data",
            None,
            None,
            f"no signal data for junction {report.junction} phase {report.phase} "
            f"within {max_silence_s:g} s of the instant",
        )
    state, since = found
    into = (report.ts_us - since) / US_PER_S
    if state != "red":
        return ViolationCheck(
            "review", state, since, f"phase {report.phase} was {state} for {into:.1f} s"
        )
    if into < red_grace_s:
        return ViolationCheck(
            "review", state, since, f"red had begun only {into:.2f} s before (< {red_grace_s} s)"
        )
    return ViolationCheck("confirmed", state, since, f"red for {into:.1f} s")
