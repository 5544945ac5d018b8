"""Seeded synthetic hi-res event logs for N junctions over a day.

Nothing offline carries real controller logs, so the measures are exercised on logs drawn
here. Each junction runs a pretimed eight-phase dual-ring plan in four stages (1+5 left turns,
2+6 main-street through, 3+7, 4+8 side street) with a time-of-day plan schedule (pattern
changes are logged as event 131); yellow 3 s and red clearance 2 s. Vehicles arrive as a
Poisson process whose rate follows a two-peak daily profile, and on the main street half of
them come in platoons inside the phase's green (coordination). Queues are carried from
cycle to cycle (Lindley recursion, saturation flow 0.5 veh/s per lane) so that peak-hour
side streets overflow and log force-offs and split failures, as real ones do.

Detectors: channel ``p`` is a stop-bar presence detector of phase ``p`` (on while a queue
stands over it, a short pulse for a vehicle that passes on green); channel ``8 + p`` is an
advance detector of the through phases 2, 4, 6, 8. Pedestrian pushes are logged as 90/89
(button), 45 (call registered) and served by 21/22/23 at the next green.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from apps.traffic.events import DETECTOR_DTYPE, EVENT_DTYPE, US_PER_S, EventCode

__all__ = ["DETECTOR_DTYPE", "SimulatedLog", "simulate_log"]


STAGES: Final = ((1, 5), (2, 6), (3, 7), (4, 8))
_YELLOW_S: Final = 3.0
_RED_CLEAR_S: Final = 2.0
_LOST_S: Final = _YELLOW_S + _RED_CLEAR_S
_SPLIT: Final = np.array([0.14, 0.44, 0.12, 0.30])  # share of the cycle's green time
# Plans by local hour: number, cycle length (s).
_PLAN_BY_HOUR: Final = np.array([1] * 6 + [2] * 3 + [3] * 7 + [4] * 3 + [3] * 3 + [1] * 2)
_CYCLE_OF_PLAN: Final = {1: 80.0, 2: 120.0, 3: 100.0, 4: 130.0}
# Mean arrival rate (veh/s) of each phase 1..8 at the busiest hour, and the daily profile.
_PEAK_RATE: Final = np.array([0.05, 0.28, 0.04, 0.11, 0.05, 0.26, 0.04, 0.12])
_LANES: Final = np.array([1, 2, 1, 1, 1, 2, 1, 1])
_PROFILE: Final = np.concatenate(
    [
        [0.08, 0.05, 0.04, 0.04, 0.06, 0.15, 0.45, 0.95, 1.0, 0.7, 0.6, 0.65],  # 00-11 h
        [0.7, 0.65, 0.6, 0.65, 0.8, 1.0, 0.95, 0.7, 0.5, 0.4, 0.3, 0.15],  # 12-23 h
    ]
)
_SAT_FLOW: Final = 0.5  # veh/s per lane
_TRAVEL_S: Final = 4.0  # advance detector to stop bar
_WALK_S: Final = 7.0
_PED_CLEAR_S: Final = 12.0


@dataclass(frozen=True)
class SimulatedLog:
    """The events (as logged: unsorted within a junction only if faults were asked for)."""

    events: npt.NDArray[Any]
    detectors: npt.NDArray[Any]
    start_us: int
    duration_s: float


def _merge(key: npt.NDArray[np.int64], start: npt.NDArray[Any], end: npt.NDArray[Any]) -> Any:
    """Union of intervals per key: sorted, overlapping ones joined."""
    order = np.lexsort((start, key))
    key, start, end = key[order], start[order], end[order]
    # Running max of the ends within each key: keys are sorted, so offsetting by key works.
    span = float(max(end.max() - start.min(), 1.0)) * 4 if len(end) else 1.0
    reach = np.maximum.accumulate(key * span + end) - key * span
    new = np.ones(len(key), bool)
    new[1:] = (key[1:] != key[:-1]) | (start[1:] > reach[:-1])
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(key)] - 1
    return key[first], start[first], reach[last]


def simulate_log(
    n_junctions: int,
    *,
    seed: int = 0,
    start: str = "2026-12-03T16:00",
    duration_s: float = 86_400.0,
    utc_offset_h: float = 8.0,
    demand: float = 1.0,
    duplicate_share: float = 0.0,
    shuffle_share: float = 0.0,
    stuck_detectors: int = 0,
    skipped_greens: int = 0,
    resolution_s: float = 0.1,
) -> SimulatedLog:
    """Draw a day (or ``duration_s``) of events for ``n_junctions`` junctions.

    Parameters
    ----------
    n_junctions
        Junctions 1..n.
    seed
        Everything random follows from it.
    start
        UTC start instant (ISO); the default is local midnight in China (UTC+8).
    duration_s
        Length of the log.
    demand
        Multiplies every arrival rate.
    duplicate_share, shuffle_share
        Faults: share of events logged twice, share swapped with their neighbour.
    stuck_detectors
        Faults: presence detectors whose off events stop after a random instant.
    skipped_greens
        Faults: begin-green events deleted (a cycle in which the phase shows no green).
    resolution_s
        Clock resolution of the logger (controllers log tenths of a second).
    """
    if n_junctions < 1:
        raise ValueError(f"n_junctions must be at least 1, got {n_junctions}")
    if not 60.0 <= duration_s <= 7 * 86_400.0:
        raise ValueError(f"duration_s must be between 60 s and a week, got {duration_s}")
    if not (0 <= duplicate_share < 1 and 0 <= shuffle_share < 1):
        raise ValueError("duplicate_share and shuffle_share must be in [0, 1)")
    rng = np.random.default_rng(seed)
    t0 = int(np.datetime64(start, "us").astype(np.int64))
    # Local time of day of the log start, in seconds: plans and demand follow the local clock.
    off = (t0 / US_PER_S + utc_offset_h * 3600.0) % 86_400.0
    n = n_junctions
    jitter = rng.uniform(-8.0, 8.0, n)
    scale = rng.uniform(0.55, 1.3, n) * demand

    # Cycle starts, junction by junction in lockstep; seconds from the log start.
    starts: list[npt.NDArray[np.float64]] = []
    plans: list[npt.NDArray[np.int64]] = []
    t = rng.uniform(0.0, 60.0, n)
    while (t < duration_s).any():
        hour = ((t + off) // 3600 % 24).astype(np.int64)
        plan = _PLAN_BY_HOUR[hour]
        starts.append(t.copy())
        plans.append(plan)
        t = t + np.vectorize(_CYCLE_OF_PLAN.get)(plan) + jitter
    cs = np.stack(starts, axis=1)  # (n, K)
    plan = np.stack(plans, axis=1)
    k_max = cs.shape[1]
    cycle = np.diff(cs, axis=1, append=cs[:, -1:] + (cs[:, -1:] - cs[:, -2:-1]))
    green_total = cycle - 4 * _LOST_S
    # Stage green starts and ends (yellow onsets), shape (n, K, 4).
    greens = green_total[..., None] * _SPLIT
    stage_start = cs[..., None] + np.cumsum(
        np.concatenate([np.zeros((n, k_max, 1)), greens[..., :-1] + _LOST_S], axis=2), axis=2
    )
    # Per phase 1..8, shape (n, K, 8).
    stage_of_phase = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    gs = stage_start[..., stage_of_phase]
    g = greens[..., stage_of_phase]
    ye = gs + g
    live = (cs < duration_s)[..., None] & (ye + _LOST_S < duration_s)

    # Arrivals at the stop bar: Poisson counts per (junction, phase, hour), uniform within.
    hours = int(np.ceil(duration_s / 3600.0)) + 1
    h_local = ((np.arange(hours) * 3600.0 + off) // 3600 % 24).astype(np.int64)
    rate = scale[:, None, None] * _PEAK_RATE[None, :, None] * _PROFILE[h_local][None, None, :]
    counts = rng.poisson(rate * 3600.0)
    jp_key = np.repeat(np.arange(n * 8), counts.reshape(n * 8, hours).sum(axis=1))
    hour_of = np.repeat(np.tile(np.arange(hours), n * 8), counts.reshape(-1))
    arrive = (hour_of + rng.random(len(hour_of))) * 3600.0
    # Platoons: half the main-street arrivals fall inside the phase's green of their cycle.
    j_of, p_of = jp_key // 8, jp_key % 8
    k_of = np.clip(_cycle_index(cs, j_of, arrive) - 1, 0, k_max - 1)
    main = np.isin(p_of, (1, 5)) & (rng.random(len(arrive)) < 0.5)
    arrive[main] = gs[j_of[main], k_of[main], p_of[main]] + rng.random(main.sum()) * (
        g[j_of[main], k_of[main], p_of[main]] - 2.0
    )
    keep = (arrive >= 0) & (arrive < duration_s)
    jp_key, arrive = jp_key[keep], arrive[keep]
    order = np.lexsort((arrive, jp_key))
    jp_key, arrive = jp_key[order], arrive[order]
    j_of, p_of = jp_key // 8, jp_key % 8

    ev: list[tuple[Any, Any, Any, Any]] = []  # (seconds, junction index, code, param)

    # Phase events.
    jj, kk, pp = np.nonzero(live)
    gsv, yev = gs[jj, kk, pp], ye[jj, kk, pp]
    phase = pp + 1
    for code, at in (
        (EventCode.PHASE_BEGIN_GREEN, gsv),
        (EventCode.PHASE_GREEN_TERMINATION, yev),
        (EventCode.PHASE_BEGIN_YELLOW_CLEARANCE, yev),
        (EventCode.PHASE_END_YELLOW_CLEARANCE, yev + _YELLOW_S),
        (EventCode.PHASE_BEGIN_RED_CLEARANCE, yev + _YELLOW_S),
        (EventCode.PHASE_END_RED_CLEARANCE, yev + _LOST_S),
    ):
        ev.append((at, jj, np.full(len(jj), code), phase))

    # Queues, cycle by cycle (all junction-phases at once): waiting vehicles at green start
    # are last cycle's leftovers plus arrivals since last yellow; the green discharges
    # ``g * lanes * s``.
    arr_key = jp_key.astype(np.float64) * (duration_s * 4) + arrive

    def count_before(t_rel: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        base = np.arange(n * 8).reshape(n, 8).astype(np.float64) * (duration_s * 4)
        return np.searchsorted(arr_key, base[:, None, :] + np.clip(t_rel, 0, duration_s))

    prev_ye = np.concatenate([np.zeros((n, 1, 8)), ye[:, :-1, :]], axis=1)
    n_at_ye_prev = count_before(prev_ye)
    n_at_gs = count_before(gs)
    n_at_ye = count_before(ye)
    cap = g * _LANES * _SAT_FLOW
    resid = np.zeros((n, k_max, 8))
    queue = np.zeros((n, k_max, 8))
    left = np.zeros((n, 8))
    for k in range(k_max):
        q = left + (n_at_gs[:, k] - n_at_ye_prev[:, k])
        queue[:, k] = q
        left = np.maximum(0.0, q + (n_at_ye[:, k] - n_at_gs[:, k]) - cap[:, k])
        resid[:, k] = left
    # How greens end: the coordinated phases 2 and 6 hold to their yield point under a
    # coordinated plan and log no termination; a phase still serving a queue is forced off
    # (max-out when running free, plan 1), one that cleared its queue gaps out.
    tj, tk, tp = np.nonzero(live & ~(np.isin(np.arange(8), (1, 5)) & (plan[..., None] != 1)))
    full = resid[tj, tk, tp] > 0
    term = np.where(
        full,
        np.where(plan[tj, tk] == 1, EventCode.PHASE_MAX_OUT, EventCode.PHASE_FORCE_OFF),
        EventCode.PHASE_GAP_OUT,
    )
    ev.append((ye[tj, tk, tp], tj, term, tp + 1))
    carried = np.concatenate([np.zeros((n, 1, 8)), resid[:, :-1, :]], axis=1) > 0
    sel = live & (queue > 0)
    jj, kk, pp = np.nonzero(sel)
    first_idx = np.minimum(n_at_ye_prev[jj, kk, pp], len(arrive) - 1)
    first_arr = np.where(carried[jj, kk, pp], prev_ye[jj, kk, pp] + _YELLOW_S, arrive[first_idx])
    on_from = np.minimum(first_arr, gs[jj, kk, pp])
    clear = gs[jj, kk, pp] + queue[jj, kk, pp] / (_LANES[pp] * _SAT_FLOW)
    saturated = resid[jj, kk, pp] > 0
    on_to = np.where(saturated, ye[jj, kk, pp] + _LOST_S + 6.0, clear)
    # The front vehicle pulls away at green: a short gap, so a queue shows as one call per
    # cycle rather than one endless call across oversaturated cycles.
    split = on_to > gs[jj, kk, pp] + 1.9
    q_key = np.concatenate([jj * 8 + pp, (jj * 8 + pp)[split]])
    q_from = np.concatenate([on_from, gs[jj, kk, pp][split] + 1.9])
    q_to = np.concatenate([np.where(split, gs[jj, kk, pp] + 1.5, on_to), on_to[split]])
    # Vehicles arriving on green after the queue cleared pass over the detector.
    gs_by_phase = gs.transpose(0, 2, 1).reshape(n * 8, k_max)
    a_k = np.clip(_cycle_index(gs_by_phase, jp_key, arrive) - 1, 0, k_max - 1)
    a_gs, a_ye = gs[j_of, a_k, p_of], ye[j_of, a_k, p_of]
    a_clear = a_gs + queue[j_of, a_k, p_of] / (_LANES[p_of] * _SAT_FLOW)
    in_green = (arrive >= np.maximum(a_gs, a_clear)) & (arrive < a_ye)
    pulse = rng.uniform(0.3, 0.7, in_green.sum())
    pres_key = np.concatenate([q_key, jp_key[in_green]])
    pres_from = np.concatenate([q_from, arrive[in_green]])
    pres_to = np.concatenate([q_to, arrive[in_green] + pulse])
    pres_key, pres_from, pres_to = _merge(pres_key, pres_from, pres_to)
    ok = pres_from < duration_s
    pres_key, pres_from, pres_to = pres_key[ok], pres_from[ok], np.minimum(pres_to[ok], duration_s)
    pres_j, pres_ch = pres_key // 8, pres_key % 8 + 1
    # A stuck detector logs one last "on" half-way through and nothing after it.
    no_off = np.zeros(len(pres_to), bool)
    no_on = np.zeros(len(pres_to), bool)
    if stuck_detectors:
        keys = np.unique(pres_key)
        for key in rng.choice(keys, min(stuck_detectors, len(keys)), replace=False):
            mine = np.flatnonzero(pres_key == key)
            no_off[mine[len(mine) // 2 :]] = True
            no_on[mine[len(mine) // 2 + 1 :]] = True
    ev.append((pres_from[~no_on], pres_j[~no_on], np.full((~no_on).sum(), 82), pres_ch[~no_on]))
    ev.append((pres_to[~no_off], pres_j[~no_off], np.full((~no_off).sum(), 81), pres_ch[~no_off]))

    # Advance detectors of the through phases, ``_TRAVEL_S`` upstream of the stop bar.
    through = np.isin(p_of, (1, 3, 5, 7))
    adv_key = jp_key[through]
    adv_on = arrive[through] - _TRAVEL_S
    adv_key, adv_on, adv_off = _merge(
        adv_key, adv_on, adv_on + rng.uniform(0.25, 0.45, len(adv_on))
    )
    ok = (adv_on >= 0) & (adv_off < duration_s)
    adv_key, adv_on, adv_off = adv_key[ok], adv_on[ok], adv_off[ok]
    adv_j, adv_ch = adv_key // 8, adv_key % 8 + 1 + 8
    ev.append((adv_on, adv_j, np.full(len(adv_j), EventCode.DETECTOR_ON), adv_ch))
    ev.append((adv_off, adv_j, np.full(len(adv_j), EventCode.DETECTOR_OFF), adv_ch))

    # Pedestrians on phases 2, 4, 6, 8: pushes, the call, and the walk at the next green.
    ped_rate = 0.006 * scale[:, None] * _PROFILE[h_local][None, :]
    for p in (1, 3, 5, 7):
        pc_p = rng.poisson(ped_rate * 3600.0)  # (n, hours)
        pj = np.repeat(np.arange(n), pc_p.sum(axis=1))
        push = (
            np.repeat(np.tile(np.arange(hours), n), pc_p.reshape(-1)) + rng.random(len(pj))
        ) * 3600.0
        o = np.lexsort((push, pj))
        pj, push = pj[o], push[o]
        # Pushes during a walk, or a breath before a green, are not taken by the controller.
        pk = _cycle_index(gs[..., p], pj, push)  # index of the first green after the push
        since = push - gs[pj, np.clip(pk - 1, 0, k_max - 1), p]
        until = gs[pj, np.clip(pk, 0, k_max - 1), p] - push
        taken = ((pk == 0) | (since >= _WALK_S + 0.2)) & (until >= 0.2)
        pj, push, pk = pj[taken], push[taken], pk[taken]
        ok = (pk < k_max) & (push < duration_s)
        pj, push, pk = pj[ok], push[ok], pk[ok]
        ok = live[pj, pk, p]
        pj, push, pk = pj[ok], push[ok], pk[ok]
        ev.append((push, pj, np.full(len(pj), EventCode.PED_DETECTOR_ON), np.full(len(pj), p + 1)))
        ev.append(
            (push + 0.2, pj, np.full(len(pj), EventCode.PED_DETECTOR_OFF), np.full(len(pj), p + 1))
        )
        first = np.r_[True, (pj[1:] != pj[:-1]) | (pk[1:] != pk[:-1])][: len(pj)]
        cj, ck, cpush = pj[first], pk[first], push[first]
        walk = gs[cj, ck, p]
        for code, at in (
            (EventCode.PED_CALL_REGISTERED, cpush),
            (EventCode.PED_BEGIN_WALK, walk),
            (EventCode.PED_BEGIN_CLEARANCE, walk + _WALK_S),
            (EventCode.PED_BEGIN_SOLID_DONT_WALK, walk + _WALK_S + _PED_CLEAR_S),
        ):
            ev.append((at, cj, np.full(len(cj), code), np.full(len(cj), p + 1)))

    # Pattern changes at the log start and wherever the plan changes.
    pj, pk = np.nonzero(np.concatenate([np.ones((n, 1), bool), plan[:, 1:] != plan[:, :-1]], 1))
    ev.append((cs[pj, pk], pj, np.full(len(pj), EventCode.COORD_PATTERN_CHANGE), plan[pj, pk]))

    secs = np.concatenate([e[0] for e in ev])
    events = np.empty(len(secs), EVENT_DTYPE)
    tick = max(round(resolution_s * US_PER_S), 1)
    events["ts"] = t0 + np.round(secs * US_PER_S / tick).astype(np.int64) * tick
    events["junction"] = np.concatenate([e[1] for e in ev]) + 1
    events["code"] = np.concatenate([e[2] for e in ev])
    events["param"] = np.concatenate([e[3] for e in ev])
    events = events[(secs >= 0) & (secs < duration_s)]
    # Controllers log a junction's events in order, to a tenth of a second.
    events = events[np.lexsort((events["code"], events["ts"], events["junction"]))]

    if skipped_greens:
        greens_at = np.flatnonzero(events["code"] == EventCode.PHASE_BEGIN_GREEN)
        drop = rng.choice(greens_at, min(skipped_greens, len(greens_at)), replace=False)
        events = np.delete(events, drop)
    if shuffle_share:
        swap = np.flatnonzero(rng.random(len(events) - 1) < shuffle_share)
        swap = swap[np.r_[True, np.diff(swap) > 1]] if len(swap) else swap
        events[swap], events[swap + 1] = events[swap + 1].copy(), events[swap].copy()
    if duplicate_share:
        dup = np.flatnonzero(rng.random(len(events)) < duplicate_share)
        events = np.insert(events, dup, events[dup])

    det_j = np.repeat(np.arange(1, n + 1), 12)
    det_ch = np.tile(np.r_[np.arange(1, 9), 8 + np.array([2, 4, 6, 8])], n)
    det_phase = np.tile(np.r_[np.arange(1, 9), np.array([2, 4, 6, 8])], n)
    det_fn = np.tile(np.array(["presence"] * 8 + ["advance"] * 4), n)
    detectors = np.empty(len(det_j), DETECTOR_DTYPE)
    detectors["junction"], detectors["channel"] = det_j, det_ch
    detectors["phase"], detectors["function"] = det_phase, det_fn
    return SimulatedLog(events, detectors, t0, duration_s)


def _cycle_index(
    table: npt.NDArray[np.float64], row: npt.NDArray[np.int64], t: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """For each (row, t): the number of entries of ``table[row]`` (ascending) before ``t``."""
    n, k = table.shape
    span = float(np.nanmax(table) - min(float(np.nanmin(table)), 0.0) + 1e6)
    flat = (np.arange(n)[:, None] * span + table).reshape(-1)
    return (np.searchsorted(flat, row * span + t) - row * k).astype(np.int64)
