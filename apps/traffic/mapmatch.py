"""Hidden-Markov map matching of GPS tracks to road segments (Newson & Krumm, 2009).

*Hidden Markov Map Matching Through Noise and Sparseness*, ACM SIGSPATIAL GIS 2009:

* candidates of a fix are the road segments within ``radius_m`` (an STRtree query), each at
  its nearest point;
* emission: Gaussian in the fix-to-segment distance, ``sigma_m`` (GPS noise, 4-10 m);
* transition: exponential in ``|straight distance between fixes - route distance between
  candidates|`` with mean ``beta_m``; route distances come from Dijkstra on the road graph
  (``scipy.sparse.csgraph``), one batch per track, limited to ``max_route_m``;
* Viterbi decoding; where no transition is possible (a fix far from the last, a gap in the
  network) the track is broken and matching starts afresh: each piece is a ``part``.

Everything is in a local metric plane (the city's Gauss-Krüger plane for the platform's
roads): transform WGS84 fixes before matching. One-way segments are driven from source to
target only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

__all__ = [
    "MapMatchError",
    "MatchNetwork",
    "MatchResult",
    "MatchSettings",
    "match_track",
    "measure_throughput",
    "simulate_track",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_NEG_INF: Final = -np.inf


class MapMatchError(ValueError):
    """A track or network that cannot be matched: lengths differ, times go back, no roads."""


@dataclass(frozen=True)
class MatchSettings:
    """Model parameters; defaults suit urban GPS at 1-30 s intervals."""

    sigma_m: float = 5.0
    beta_m: float = 5.0
    radius_m: float = 35.0
    max_candidates: int = 6
    max_route_m: float = 3000.0

    def __post_init__(self) -> None:
        for name in ("sigma_m", "beta_m", "radius_m", "max_route_m"):
            if not getattr(self, name) > 0:
                raise MapMatchError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_candidates < 1:
            raise MapMatchError("max_candidates must be at least 1")


@dataclass
class MatchNetwork:
    """Road segments in a metric plane with their graph: what the matcher needs."""

    segment_id: IntArray
    geoms: npt.NDArray[Any]  # LineStrings, metric
    source: IntArray  # node index at the start of each segment
    target: IntArray
    oneway: npt.NDArray[np.bool_]
    length: FloatArray = field(init=False)
    tree: shapely.STRtree = field(init=False, repr=False)
    graph: csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.segment_id)
        if not (len(self.geoms) == len(self.source) == len(self.target) == len(self.oneway) == n):
            raise MapMatchError("segment arrays must have equal lengths")
        if n == 0:
            raise MapMatchError("the road network has no segments")
        self.length = shapely.length(self.geoms)
        self.tree = shapely.STRtree(self.geoms)
        nodes = int(max(self.source.max(), self.target.max())) + 1
        back = ~self.oneway
        tail = np.concatenate([self.source, self.target[back]])
        head = np.concatenate([self.target, self.source[back]])
        weight = np.maximum(np.concatenate([self.length, self.length[back]]), 1e-6)
        # Parallel segments: the shortest one is the route (coo -> csr would add them up).
        order = np.lexsort((weight, head, tail))
        tail, head, weight = tail[order], head[order], weight[order]
        first = np.r_[True, (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])]
        self.graph = csr_matrix((weight[first], (tail[first], head[first])), shape=(nodes, nodes))

    @classmethod
    def from_road_graph(cls, graph: Any) -> MatchNetwork:
        """From the dispatch application's :class:`~apps.dispatch.routing.RoadGraph`."""
        return cls(
            np.asarray(graph.edge_id, np.int64),
            graph.geoms_m,
            np.asarray(graph.src, np.int64),
            np.asarray(graph.tgt, np.int64),
            np.asarray(graph.rcost < 0),
        )


@dataclass(frozen=True)
class MatchResult:
    """Per fix: matched segment id (-1 unmatched), offset along it (m), distance to it (m),
    and the part of the track it belongs to (-1 unmatched). Per consecutive pair of matched
    fixes of one part: route distance (m), time (s) and speed (km/h)."""

    segment_id: IntArray
    offset_m: FloatArray
    distance_m: FloatArray
    part: IntArray
    pair_from: IntArray  # fix index of each pair's first fix
    pair_route_m: FloatArray
    pair_dt_s: FloatArray

    def segment_traversals(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """(segment id, metres, seconds) of each pair whose two fixes lie on one segment,
        the input of :func:`apps.traffic.speeds.live_speeds`. A pair across an intersection
        is left out: which part of its time belongs to which segment is not observed."""
        a = self.pair_from
        b = self._next_fix(a)
        same = (self.segment_id[a] == self.segment_id[b]) & (self.pair_dt_s > 0)
        return self.segment_id[a][same], self.pair_route_m[same], self.pair_dt_s[same]

    def _next_fix(self, a: IntArray) -> IntArray:
        matched = np.flatnonzero(self.segment_id >= 0)
        return matched[np.searchsorted(matched, a, "right")]

    @property
    def pair_speed_kmh(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.pair_dt_s > 0, self.pair_route_m / self.pair_dt_s * 3.6, np.nan)


@dataclass
class _Candidates:
    seg: IntArray
    offset: FloatArray
    dist: FloatArray
    start: IntArray  # per fix: first candidate row
    count: IntArray


def _candidates(net: MatchNetwork, x: FloatArray, y: FloatArray, s: MatchSettings) -> _Candidates:
    points = shapely.points(x, y)
    pi, gi = net.tree.query(points, predicate="dwithin", distance=s.radius_m)
    dist = shapely.distance(points[pi], net.geoms[gi])
    # The nearest few per fix.
    order = np.lexsort((dist, pi))
    pi, gi, dist = pi[order], gi[order], dist[order]
    first = np.searchsorted(pi, np.arange(len(x)))
    rank = np.arange(len(pi)) - first[pi]
    keep = rank < s.max_candidates
    pi, gi, dist = pi[keep], gi[keep], dist[keep]
    offset = shapely.line_locate_point(net.geoms[gi], points[pi])
    start = np.searchsorted(pi, np.arange(len(x)))
    count = np.bincount(pi, minlength=len(x))
    return _Candidates(gi.astype(np.int64), offset, dist, start, count)


class _Distances:
    """Driving distances between graph nodes within a limit, for one batch of start nodes."""

    def __init__(self, net: MatchNetwork, starts: IntArray, limit: float) -> None:
        n = net.graph.shape[0]
        keys: list[IntArray] = []
        dists: list[FloatArray] = []
        chunk = max(1, 8_000_000 // max(n, 1))  # at most 64 MB of dense rows at a time
        for lo in range(0, len(starts), chunk):
            rows = starts[lo : lo + chunk]
            block = np.atleast_2d(dijkstra(net.graph, indices=rows, limit=limit))
            r, c = np.nonzero(np.isfinite(block))
            keys.append(rows[r] * n + c)
            dists.append(block[r, c])
        self.n = n
        self.key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        self.dist = np.concatenate(dists) if dists else np.zeros(0)

    def __call__(self, u: IntArray, v: IntArray) -> FloatArray:
        if len(self.key) == 0:
            return np.full(len(u), np.inf)
        q = u * self.n + v
        pos = np.minimum(np.searchsorted(self.key, q), len(self.key) - 1)
        return np.where(self.key[pos] == q, self.dist[pos], np.inf)


def _route(
    net: MatchNetwork,
    dist: _Distances,
    seg_a: IntArray,
    off_a: FloatArray,
    seg_b: IntArray,
    off_b: FloatArray,
) -> FloatArray:
    """Driving distance from candidate a to candidate b, pair by pair (inf where none)."""
    len_a, len_b = net.length[seg_a], net.length[seg_b]
    # Leave a forwards (at its target) or, if two-way, backwards (at its source); enter b at
    # its source (driving forwards) or, if two-way, at its target.
    exits = (
        (net.target[seg_a], len_a - off_a),
        (net.source[seg_a], np.where(net.oneway[seg_a], np.inf, off_a)),
    )
    entries = (
        (net.source[seg_b], off_b),
        (net.target[seg_b], np.where(net.oneway[seg_b], np.inf, len_b - off_b)),
    )
    route = np.full(len(seg_a), np.inf)
    for u, cost_u in exits:
        for v, cost_v in entries:
            route = np.minimum(route, cost_u + dist(u, v) + cost_v)
    # Along one segment, without leaving it.
    along = off_b - off_a
    direct = np.where(net.oneway[seg_a] & (along < 0), np.inf, np.abs(along))
    return np.where(seg_a == seg_b, np.minimum(route, direct), route)


def match_track(
    net: MatchNetwork,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    t_s: npt.ArrayLike,
    settings: MatchSettings | None = None,
) -> MatchResult:
    """Match one vehicle's fixes (metric x, y; seconds, non-decreasing) to the network.

    Candidates, route distances and transition probabilities are computed for the whole
    track at once; only the Viterbi recursion walks fix by fix.
    """
    s = settings or MatchSettings()
    xa, ya, ta = (np.asarray(v, np.float64) for v in (x, y, t_s))
    if not (xa.ndim == ya.ndim == ta.ndim == 1 and len(xa) == len(ya) == len(ta)):
        raise MapMatchError("x, y and t_s must be one-dimensional and of equal length")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all() and np.isfinite(ta).all()):
        raise MapMatchError("fixes must have finite coordinates and times")
    if (np.diff(ta) < 0).any():
        raise MapMatchError(f"times go backwards at fix {int(np.argmax(np.diff(ta) < 0)) + 1}")
    n = len(xa)
    cand = _candidates(net, xa, ya, s)
    emis_all = -0.5 * (cand.dist / s.sigma_m) ** 2

    # Every step between consecutive fixes that have candidates (off-road fixes are skipped).
    has = np.flatnonzero(cand.count > 0)
    prev, cur = has[:-1], has[1:]
    straight = np.hypot(xa[cur] - xa[prev], ya[cur] - ya[prev])
    na, nb = cand.count[prev], cand.count[cur]
    size = np.where(straight <= s.max_route_m, na * nb, 0)
    offsets = np.r_[0, np.cumsum(size)]
    step = np.repeat(np.arange(len(prev)), size)
    local = np.arange(offsets[-1]) - offsets[step]
    ra = cand.start[prev][step] + local // nb[step]
    rb = cand.start[cur][step] + local % nb[step]
    # Routes longer than twice the straight line plus the search radius have probability
    # below e^-14 of any other; the Dijkstra limit stops there.
    reach = straight[size > 0]
    limit = min(s.max_route_m, float(reach.max()) * 2 + 2 * s.radius_m) if len(reach) else 1.0
    seg = cand.seg
    starts = np.unique(np.concatenate([net.source[seg], net.target[seg]]))
    route = _route(net, _Distances(net, starts, limit), seg[ra], cand.offset[ra],
                   seg[rb], cand.offset[rb])  # fmt: skip
    trans = -np.abs(straight[step] - route) / s.beta_m

    seg_out = np.full(n, -1, np.int64)
    off_out = np.full(n, np.nan)
    dist_out = np.full(n, np.nan)
    part_out = np.full(n, -1, np.int64)
    pair_from: list[int] = []
    pair_route: list[float] = []
    pair_dt: list[float] = []

    # Viterbi, part by part: ``fixes``, ``backs`` and ``steps`` hold the current part.
    fixes: list[int] = []
    backs: list[IntArray] = []
    steps: list[int] = []
    score = np.zeros(0)
    part = -1

    def close() -> None:
        if not fixes:
            return
        k = int(np.argmax(score))
        chosen = [k]
        for back in reversed(backs):
            k = int(back[k])
            chosen.append(k)
        chosen.reverse()
        rows = [int(cand.start[i]) + c for i, c in zip(fixes, chosen, strict=True)]
        seg_out[fixes] = net.segment_id[seg[rows]]
        off_out[fixes], dist_out[fixes] = cand.offset[rows], cand.dist[rows]
        part_out[fixes] = part
        for h, st in enumerate(steps):
            a, b = chosen[h], chosen[h + 1]
            pair_from.append(fixes[h])
            pair_route.append(float(route[offsets[st] + a * nb[st] + b]))
            pair_dt.append(float(ta[fixes[h + 1]] - ta[fixes[h]]))

    for h, i in enumerate(has):
        lo, m = int(cand.start[i]), int(cand.count[i])
        emis = emis_all[lo : lo + m]
        if h and fixes:
            st = h - 1
            if size[st]:
                block = trans[offsets[st] : offsets[st + 1]].reshape(int(na[st]), m)
                total = score[:, None] + block
                back = np.argmax(total, axis=0)
                best = total[back, np.arange(m)]
                if np.isfinite(best).any():
                    score = best + emis
                    score -= score.max()  # keep the numbers small
                    fixes.append(int(i))
                    backs.append(back)
                    steps.append(st)
                    continue
            close()  # no way from the last fix to this one: a new part
        part += 1
        fixes, backs, steps = [int(i)], [], []
        score = emis - emis.max()
    close()
    return MatchResult(
        seg_out,
        off_out,
        dist_out,
        part_out,
        np.asarray(pair_from, np.int64),
        np.asarray(pair_route, np.float64),
        np.asarray(pair_dt, np.float64),
    )


def simulate_track(
    net: MatchNetwork,
    n_fixes: int,
    *,
    seed: int = 0,
    speed_ms: float = 10.0,
    interval_s: float = 2.0,
    sigma_m: float = 5.0,
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """A vehicle driving a random route (no U-turns, one-ways respected), with GPS noise.

    Returns x, y, t and the true segment id of each fix.
    """
    rng = np.random.default_rng(seed)
    out_seg: dict[int, list[tuple[int, bool]]] = {}
    for k in range(len(net.segment_id)):
        out_seg.setdefault(int(net.source[k]), []).append((k, True))
        if not net.oneway[k]:
            out_seg.setdefault(int(net.target[k]), []).append((k, False))
    need = n_fixes * speed_ms * interval_s + 1.0
    node = int(rng.choice(list(out_seg)))
    pieces: list[tuple[int, bool]] = []
    driven, last = 0.0, -1
    while driven < need:
        options = [o for o in out_seg.get(node, []) if o[0] != last] or out_seg.get(node, [])
        if not options:
            break
        k, forward = options[int(rng.integers(len(options)))]
        pieces.append((k, forward))
        driven += float(net.length[k])
        node = int(net.target[k] if forward else net.source[k])
        last = k
    starts = np.cumsum([0.0] + [float(net.length[k]) for k, _ in pieces])
    along = np.arange(n_fixes) * speed_ms * interval_s
    along = along[along < starts[-1]]
    idx = np.searchsorted(starts, along, "right") - 1
    seg = np.array([pieces[i][0] for i in idx], np.int64)
    fwd = np.array([pieces[i][1] for i in idx])
    into = along - starts[idx]
    dist = np.where(fwd, into, net.length[seg] - into)
    pts = shapely.line_interpolate_point(net.geoms[seg], dist)
    x = shapely.get_x(pts) + rng.normal(0, sigma_m, len(seg))
    y = shapely.get_y(pts) + rng.normal(0, sigma_m, len(seg))
    return x, y, np.arange(len(seg), dtype=np.float64) * interval_s, net.segment_id[seg]


def measure_throughput(
    net: MatchNetwork, n_fixes: int = 20_000, *, seed: int = 0, sigma_m: float = 4.0
) -> dict[str, float]:
    """Fixes matched per second and the share on the true segment, on a simulated track
    (11 m/s, a fix every 3 s)."""
    x, y, t, truth = simulate_track(
        net, n_fixes, seed=seed, sigma_m=sigma_m, speed_ms=11.0, interval_s=3.0
    )
    started = time.perf_counter()
    result = match_track(net, x, y, t, MatchSettings(sigma_m=sigma_m))
    elapsed = time.perf_counter() - started
    return {
        "points": float(len(x)),
        "points_per_s": len(x) / elapsed,
        "true_share": float(np.mean(result.segment_id == truth)),
    }
