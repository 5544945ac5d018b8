"""Measures on a hand-written log whose answers are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from apps.traffic.events import DETECTOR_DTYPE, EventLogError, event_log, normalize
from apps.traffic.measures import compute_measures
from apps.traffic.simlog import simulate_log

S = 1_000_000
T0 = 1_796_313_600 * S  # a quarter-hour boundary (2026-12-03 16:00 UTC)
J = 3

# (seconds, code, param). Phase 2 cycles: green 0-30, 60-90, 120-150, 180-210; yellow at the
# green's end, red clearance 3 s later. Presence detector 1 (phase 2):
#   cycle 1: on 0-23.7 of a 30-s green -> GOR 0.79 (at the threshold); red 33-37 -> 0.8: FAIL
#   cycle 2: on 60-83.6 -> GOR 0.7867 (just below); red 93-98 -> 1.0: no failure
#   cycle 3: on 120-153 and again 153-156.9 after a lost "off"... kept simple: 120-156.9 ->
#            GOR 1.0, red 153-156.9 -> 0.78 (just below): no failure
#   cycle 4: detector off: GOR 0, ROR 0
ROWS = [
    *[(t, 1, 2) for t in (0, 60, 120, 180)],
    *[(t, 8, 2) for t in (30, 90, 150, 210)],
    *[(t, 10, 2) for t in (33, 93, 153, 213)],
    (30, 4, 2), (90, 6, 2), (150, 5, 2),
    (0, 82, 1), (23.7, 81, 1), (33, 82, 1), (37, 81, 1),
    (60, 82, 1), (83.6, 81, 1), (93, 82, 1), (98, 81, 1),
    (120, 82, 1), (156.9, 81, 1),
    # Advance detector 9 (phase 2): arrivals at 5 (green), 31 (yellow), 40 (red), 61 (green).
    (5, 82, 9), (5.4, 81, 9), (31, 82, 9), (31.4, 81, 9),
    (40, 82, 9), (40.4, 81, 9), (61, 82, 9), (61.4, 81, 9),
    # Pedestrians, phase 2: call 10 -> walk 60 (50 s); calls 100 and 110 -> walk 120 (20 s).
    (10, 45, 2), (60, 21, 2), (67, 22, 2), (100, 45, 2), (110, 45, 2), (120, 21, 2),
    (127, 22, 2),
    # Phase 4 shows yellow at 100 after its red at 48 with no green between.
    (30, 1, 4), (45, 8, 4), (48, 10, 4), (100, 8, 4), (103, 10, 4),
    # Presence detector 2 (phase 4) turns on at 1 s and never off; the log ends at 240 s.
    (1, 82, 2), (240, 131, 1),
]  # fmt: skip
LOG = event_log(
    [T0 + round(t * S) for t, _, _ in ROWS], [J] * len(ROWS), [c for _, c, _ in ROWS],
    [p for _, _, p in ROWS],
)  # fmt: skip
DETECTORS = np.array(
    [(J, 1, 2, "presence"), (J, 9, 2, "advance"), (J, 2, 4, "presence")], DETECTOR_DTYPE
)


def test_split_failures_at_the_79_percent_boundary() -> None:
    m = compute_measures(LOG, DETECTORS)
    cycles = m.split_cycles[m.split_cycles["phase"] == 2]
    assert cycles["gor"] == pytest.approx([0.79, 23.6 / 30, 1.0, 0.0])
    assert cycles["ror5"] == pytest.approx([0.8, 1.0, 0.78, 0.0])
    assert cycles["failure"].tolist() == [True, False, False, False]
    assert cycles["green_s"] == pytest.approx([30, 30, 30, 30])
    row = m.split_failures[m.split_failures["phase"] == 2]
    assert (row["cycles"][0], row["failures"][0]) == (4, 1)


def test_arrivals_on_green_and_platoon_ratio() -> None:
    m = compute_measures(LOG, DETECTORS)
    (row,) = m.arrivals
    assert (row["arrivals"], row["on_green"]) == (4, 2)
    assert row["pct_aog"] == 0.5
    # Green 4 x 30 s of a 900-s bin: g/C = 2/15, platoon ratio 0.5 / (2/15) = 3.75.
    assert row["green_s"] == pytest.approx(120.0)
    assert row["platoon_ratio"] == pytest.approx(3.75)


def test_coordination_diagram_points() -> None:
    pcd = compute_measures(LOG, DETECTORS).coordination
    # 5 s and 31 s come before the first red: no complete cycle, left out.
    assert ((pcd["ts"] - T0) / S).tolist() == [40.0, 61.0]
    assert pcd["t_in_cycle_s"].tolist() == [7.0, 28.0]
    assert ((pcd["cycle_start"] - T0) // S).tolist() == [33, 33]
    assert ((pcd["green_start"] - T0) // S).tolist() == [60, 60]
    assert ((pcd["green_end"] - T0) // S).tolist() == [90, 90]
    assert ((pcd["cycle_end"] - T0) // S).tolist() == [93, 93]


def test_terminations_ped_delay_and_volumes() -> None:
    m = compute_measures(LOG, DETECTORS)
    (term,) = m.terminations
    assert (term["gap_out"], term["max_out"], term["force_off"]) == (1, 1, 1)
    (ped,) = m.ped_delay
    assert (ped["samples"], ped["mean_delay_s"], ped["max_delay_s"]) == (2, 35.0, 50.0)
    vol = {int(r["channel"]): int(r["volume"]) for r in m.detector_volumes}
    assert vol == {1: 5, 2: 1, 9: 4}
    # Approach volume counts the advance detector only (presence sees queues, not vehicles).
    assert m.approach_volumes[["phase", "volume"]].tolist() == [(2, 4)]


def test_flags_for_a_stuck_detector_and_a_missing_green() -> None:
    default = compute_measures(LOG, DETECTORS)
    assert [(f["kind"], f["param"], (f["ts"] - T0) // S) for f in default.flags] == [
        ("no_green", 4, 100)
    ]
    strict = compute_measures(LOG, DETECTORS, max_on_s=239.0)
    kinds = {(str(f["kind"]), int(f["param"])) for f in strict.flags}
    assert ("detector_stuck_on", 2) in kinds
    # At 240 s (its whole life, 1-240 s = 239 s) the threshold is met; at 240 it is not.
    relaxed = compute_measures(LOG, DETECTORS, max_on_s=240.0)
    assert "detector_stuck_on" not in relaxed.flags["kind"].tolist()


def test_disorder_and_duplicates_are_repaired_and_counted() -> None:
    sim = simulate_log(2, seed=5, duration_s=1800)
    clean = compute_measures(normalize(sim.events), sim.detectors)
    rng = np.random.default_rng(0)
    messy = np.concatenate([sim.events, sim.events[rng.choice(len(sim.events), 37, False)]])
    messy = messy[rng.permutation(len(messy))]
    log = normalize(messy)
    assert log.duplicates_removed == 37 + normalize(sim.events).duplicates_removed
    assert log.out_of_order > 1000
    again = compute_measures(log, sim.detectors)
    assert (again.out_of_order, again.duplicates_removed) == (
        log.out_of_order,
        log.duplicates_removed,
    )
    for name in ("arrivals", "split_cycles", "ped_delay", "detector_volumes"):
        a, b = getattr(clean, name), getattr(again, name)
        assert len(a) == len(b) > 0
        for field in a.dtype.names:
            equal_nan = a.dtype[field].kind == "f"
            assert np.array_equal(a[field], b[field], equal_nan=equal_nan), (name, field)


def test_simulated_faults_are_flagged_not_crashed() -> None:
    sim = simulate_log(3, seed=2, duration_s=3600, stuck_detectors=1, skipped_greens=2)
    m = compute_measures(normalize(sim.events), sim.detectors)
    kinds = m.flags["kind"].tolist()
    assert kinds.count("detector_stuck_on") == 1
    assert 1 <= kinds.count("no_green") <= 2  # a green skipped at the very start has no red


def test_bad_wiring_is_refused() -> None:
    bad = np.array([(J, 1, 2, "loop")], DETECTOR_DTYPE)
    with pytest.raises(EventLogError, match="unknown detector function"):
        compute_measures(LOG, bad)
    twice = np.array([(J, 1, 2, "presence"), (J, 1, 4, "advance")], DETECTOR_DTYPE)
    with pytest.raises(EventLogError, match="channel 1 of junction 3 twice"):
        compute_measures(LOG, twice)
    with pytest.raises(EventLogError, match="dtype"):
        compute_measures(LOG, np.zeros(1, [("junction", "i4")]))
