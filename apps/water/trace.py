"""Upstream tracing on a river network: which outlets (排污口) lie upstream of a water-quality
station, how far along the river, ranked by their recent load.

The network is a set of segments, each a LineString running downstream (from its upstream
node to its downstream node), in a projected metric CRS. Distances are along the river.
Tracing walks the reversed graph with Dijkstra (scipy.sparse.csgraph) from the station.

Ranking: load ``L = C × Q`` (mg/L × m³/s = g/s). With ``decay_per_km = k`` the load reaching
the station is taken as ``L × exp(-k d)`` (first-order decay along the reach, ``k`` = the decay
rate divided by the flow velocity); ``k = 0`` ranks by the load at the outlet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from affine import Affine
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from shapely import STRtree
from shapely.geometry import LineString, Point

ElevationSampler = Callable[[np.ndarray, np.ndarray], np.ndarray]

# ESRI D8 direction codes and the (row, col) step each points to.
D8_STEPS = {1: (0, 1), 2: (1, 1), 4: (1, 0), 8: (1, -1), 16: (0, -1), 32: (-1, -1), 64: (-1, 0)}
D8_STEPS[128] = (-1, 1)


class TraceError(ValueError):
    """A network or trace request that cannot be used as given."""


class OffNetworkError(TraceError):
    """A point farther from every river segment than the snap tolerance."""


@dataclass(frozen=True)
class RiverPosition:
    segment: int
    offset_m: float  # from the segment's upstream end
    distance_m: float  # from the point to the river


@dataclass
class RiverNetwork:
    """River segments oriented downstream, joined at shared end nodes."""

    segments: list[LineString]
    from_node: np.ndarray
    to_node: np.ndarray
    node_xy: np.ndarray
    lengths: np.ndarray = field(init=False)
    _tree: STRtree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lengths = np.array([line.length for line in self.segments], dtype=float)
        self._tree = STRtree(self.segments)

    @classmethod
    def from_segments(
        cls, segments: Sequence[LineString], node_tolerance_m: float = 1.0
    ) -> RiverNetwork:
        """A network from downstream-oriented segments; ends within the tolerance join."""
        lines = [LineString(line) for line in segments]
        if not lines:
            raise TraceError("a river network needs at least one segment")
        for i, line in enumerate(lines):
            if line.is_empty or line.length == 0:
                raise TraceError(f"river segment {i} is empty or has no length")
        ends = np.array([[line.coords[0][:2], line.coords[-1][:2]] for line in lines]).reshape(
            -1, 2
        )
        # ends closer than the tolerance are one node: connected components of close pairs
        pairs = cKDTree(ends).query_pairs(node_tolerance_m, output_type="ndarray")
        graph = csr_matrix(
            (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(ends), len(ends))
        )
        _, labels = connected_components(graph, directed=False)
        node_xy = np.zeros((labels.max() + 1, 2))
        np.add.at(node_xy, labels, ends)
        node_xy /= np.bincount(labels)[:, None]
        from_node, to_node = labels[0::2], labels[1::2]
        loops = np.flatnonzero(from_node == to_node)
        if loops.size:
            raise TraceError(f"river segment {int(loops[0])} starts and ends at the same node")
        return cls(lines, from_node, to_node, node_xy)

    def snap(self, x: float, y: float, tolerance_m: float) -> RiverPosition:
        """The nearest point on the river; :class:`OffNetworkError` beyond the tolerance."""
        point = Point(x, y)
        nearest = int(self._tree.nearest(point))
        line = self.segments[nearest]
        distance = float(line.distance(point))
        if distance > tolerance_m:
            raise OffNetworkError(
                f"point ({x:.1f}, {y:.1f}) is {distance:.1f} m from the nearest river segment, "
                f"beyond the snap tolerance of {tolerance_m:g} m"
            )
        return RiverPosition(nearest, float(line.project(point)), distance)

    def distances_up_to(self, node: int) -> np.ndarray:
        """Along-river distance from every node down to ``node`` (inf where it does not drain
        there)."""
        n = len(self.node_xy)
        # reversed edges (downstream -> upstream), the shortest of parallel segments kept
        order = np.lexsort((self.lengths, self.from_node, self.to_node))
        rows, cols, lengths = self.to_node[order], self.from_node[order], self.lengths[order]
        first = np.ones(rows.size, dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        reverse = csr_matrix((lengths[first], (rows[first], cols[first])), shape=(n, n))
        return np.asarray(dijkstra(reverse, directed=True, indices=node))


def network_from_lines(
    lines: Sequence[LineString], elevation: ElevationSampler, node_tolerance_m: float = 1.0
) -> RiverNetwork:
    """A network from river lines of any direction, each turned to run downhill.

    Parameters
    ----------
    lines
        River lines in a projected metric CRS.
    elevation
        Samples a DEM: ``elevation(x, y)`` with arrays of coordinates, returning metres.
        Each line's two ends are compared; a line whose ends are equally high cannot be
        oriented and is refused.
    """
    ends = np.array([[line.coords[0][:2], line.coords[-1][:2]] for line in lines], dtype=float)
    if ends.size == 0:
        raise TraceError("a river network needs at least one line")
    z = np.asarray(elevation(ends[:, :, 0].ravel(), ends[:, :, 1].ravel()), dtype=float)
    z = z.reshape(-1, 2)
    flat = np.flatnonzero(~(z[:, 0] != z[:, 1]))  # equal or NaN
    if flat.size:
        i = int(flat[0])
        raise TraceError(
            f"river line {i} cannot be oriented: its ends sample {z[i, 0]} and {z[i, 1]} m"
        )
    oriented = [
        LineString(line.coords[::-1]) if z[i, 0] < z[i, 1] else LineString(line)
        for i, line in enumerate(lines)
    ]
    return RiverNetwork.from_segments(oriented, node_tolerance_m)


def network_from_d8(flow_dir: np.ndarray, stream: np.ndarray, transform: Affine) -> RiverNetwork:
    """A network from D8 flow directions (ESRI codes 1=E, 2=SE, 4=S ... 128=NE).

    Each stream cell gives one segment from its centre to the centre of the cell it drains
    to, when that cell is a stream cell inside the grid.
    """
    codes = np.asarray(flow_dir)
    mask = np.asarray(stream, dtype=bool)
    if codes.shape != mask.shape or codes.ndim != 2:
        raise TraceError("flow directions and the stream mask must be 2-D grids of one shape")
    rows, cols = np.nonzero(mask)
    cell_codes = codes[rows, cols]
    known = np.isin(cell_codes, list(D8_STEPS))
    if not known.all():
        bad = cell_codes[~known][0]
        raise TraceError(f"stream cell has D8 code {bad}, not one of {sorted(D8_STEPS)}")
    lookup_r = np.zeros(256, dtype=int)
    lookup_c = np.zeros(256, dtype=int)
    for code, (dr, dc) in D8_STEPS.items():
        lookup_r[code], lookup_c[code] = dr, dc
    down_r = rows + lookup_r[cell_codes]
    down_c = cols + lookup_c[cell_codes]
    inside = (down_r >= 0) & (down_r < codes.shape[0]) & (down_c >= 0) & (down_c < codes.shape[1])
    inside[inside] = mask[down_r[inside], down_c[inside]]
    if not inside.any():
        raise TraceError("no stream cell drains into another stream cell")

    def centre(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = transform.c + transform.a * (c + 0.5) + transform.b * (r + 0.5)
        y = transform.f + transform.d * (c + 0.5) + transform.e * (r + 0.5)
        return x, y

    x0, y0 = centre(rows[inside], cols[inside])
    x1, y1 = centre(down_r[inside], down_c[inside])
    lines = [LineString([(a, b), (c, d)]) for a, b, c, d in zip(x0, y0, x1, y1, strict=True)]
    tolerance = 1e-6 * max(abs(transform.a), abs(transform.e))
    return RiverNetwork.from_segments(lines, tolerance)


@dataclass(frozen=True)
class Outlet:
    """A discharge outlet and its recent discharge."""

    outlet_id: str
    x: float
    y: float
    concentration_mgl: float
    flow_m3s: float


@dataclass(frozen=True)
class UpstreamTrace:
    station: RiverPosition
    ranked: pd.DataFrame  # outlet_id, distance_m, load_g_s, load_at_station_g_s, by the latter
    off_network: tuple[str, ...]  # outlets beyond the snap tolerance: not traced


def upstream_outlets(
    network: RiverNetwork,
    station_xy: tuple[float, float],
    outlets: Sequence[Outlet],
    snap_tolerance_m: float = 200.0,
    decay_per_km: float = 0.0,
) -> UpstreamTrace:
    """Outlets upstream of a station, with along-river distance, ranked by load.

    Raises
    ------
    OffNetworkError
        The station is farther than ``snap_tolerance_m`` from every segment.
    """
    if decay_per_km < 0:
        raise TraceError(f"decay per km cannot be negative, got {decay_per_km}")
    station = network.snap(*station_xy, tolerance_m=snap_tolerance_m)
    to_station = network.distances_up_to(int(network.from_node[station.segment]))
    rows, off = [], []
    for outlet in outlets:
        if outlet.concentration_mgl < 0 or outlet.flow_m3s < 0:
            raise TraceError(
                f"outlet {outlet.outlet_id}: concentration and flow cannot be negative"
            )
        try:
            at = network.snap(outlet.x, outlet.y, snap_tolerance_m)
        except OffNetworkError:
            off.append(outlet.outlet_id)
            continue
        if at.segment == station.segment and at.offset_m <= station.offset_m:
            distance = station.offset_m - at.offset_m
        else:
            below = to_station[network.to_node[at.segment]]
            distance = network.lengths[at.segment] - at.offset_m + below + station.offset_m
        if np.isfinite(distance):
            load = outlet.concentration_mgl * outlet.flow_m3s
            rows.append((outlet.outlet_id, float(distance), load))
    ranked = pd.DataFrame(rows, columns=["outlet_id", "distance_m", "load_g_s"])
    ranked["load_at_station_g_s"] = ranked["load_g_s"] * np.exp(
        -decay_per_km * ranked["distance_m"] / 1000.0
    )
    ranked = ranked.sort_values(
        ["load_at_station_g_s", "distance_m"], ascending=[False, True], ignore_index=True
    )
    return UpstreamTrace(station, ranked, tuple(off))
