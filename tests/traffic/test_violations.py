"""Red-light checks against a hand-written controller log."""

from __future__ import annotations

import pytest

from apps.traffic.events import event_log
from apps.traffic.violations import ViolationReport, check_violation, phase_state

S = 1_000_000
# Phase 2: green 0-30 s, yellow 30-33 s, red clearance 33-35 s, red until the next green at
# 90 s; detector chatter every 10 s keeps the log alive until 100 s.
LOG = event_log(
    [0, 30 * S, 33 * S, 33 * S, 35 * S, 90 * S] + [k * 10 * S for k in range(11)],
    [5] * 17,
    [1, 8, 9, 10, 11, 1] + [82] * 11,
    [2, 2, 2, 2, 2, 2] + [9] * 11,
)


def test_violation_during_green_is_refused() -> None:
    check = check_violation(LOG, ViolationReport(5, 2, 12 * S))
    assert check.verdict == "review"
    assert check.state == "green"
    assert check.state_since_us == 0


def test_yellow_goes_to_review_and_red_boundary_confirms() -> None:
    assert check_violation(LOG, ViolationReport(5, 2, 33 * S - 1)).state == "yellow"
    at_red = check_violation(LOG, ViolationReport(5, 2, 33 * S))
    assert (at_red.verdict, at_red.state) == ("confirmed", "red")
    # After the end of red clearance the phase is still red until the next green.
    assert check_violation(LOG, ViolationReport(5, 2, 60 * S)).verdict == "confirmed"
    assert check_violation(LOG, ViolationReport(5, 2, 90 * S)).state == "green"


def test_red_grace_sends_early_red_to_review() -> None:
    early = check_violation(LOG, ViolationReport(5, 2, 33 * S + 400_000), red_grace_s=0.5)
    assert early.verdict == "review" and early.state == "red"
    late = check_violation(LOG, ViolationReport(5, 2, 33 * S + 500_000), red_grace_s=0.5)
    assert late.verdict == "confirmed"


def test_missing_log_is_flagged_no_signal_data() -> None:
    # Another junction, another phase, and an instant far past the end of the log.
    assert check_violation(LOG, ViolationReport(6, 2, 12 * S)).verdict == "no_signal_data"
    assert check_violation(LOG, ViolationReport(5, 4, 12 * S)).verdict == "no_signal_data"
    gone = check_violation(LOG, ViolationReport(5, 2, 100 * S + 121 * S))
    assert gone.verdict == "no_signal_data" and gone.state is None
    # Nothing of phase 2 before its first green: its state is unknown, not red.
    assert phase_state(LOG, 5, 2, -20 * S) is None  # before any state event of the phase


def test_bad_report_is_refused() -> None:
    with pytest.raises(ValueError, match="phase"):
        ViolationReport(5, 0, 0)
