"""Geocoding against the local gazetteer: districts, towns, villages, roads, POIs.

No internet geocoder: every name comes from the reference dataset. A query is normalised
(full-width to half-width, spaces and punctuation removed), its district recognised, and then
matched by the first strategy that finds something:

``intersection``  ``英雄中路与太行东街交叉口``: the node two named roads share;
``exact``         the remaining text is a name;
``contains``      the text contains a name (the longest wins: ``潞州区英雄中路12号``);
``prefix``        a name starts with the text (a partial name typed in haste);
``fuzzy``         character-level similarity (rapidfuzz, no pinyin), for typos and variants.

Each match carries a confidence in 0..1; nothing matching, or a match below the caller's
minimum, is an :class:`Unmatched` error carrying suggestions.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import psycopg
from rapidfuzz import fuzz, process

from gis_core.cache import PerDatabase, dataset_version
from gis_core.errors import InvalidInput

KIND_RANK = {"poi": 0, "intersection": 0, "village": 1, "road": 2, "town": 3, "district": 4}
_PUNCT = re.compile(r"[\s,，。.、;；:：()（）\[\]【】<>《》\"'“”‘’!！?？·\-—_/\\|]+")
_HOUSE_NO = re.compile(r"(\d+|[一二三四五六七八九十百零]+)(号楼|号院|号|栋|幢|单元|层|室)")
_NEAR = re.compile(r"(附近|旁边|对面|门口|周边|一带|东侧|西侧|南侧|北侧|以东|以西|以南|以北)$")
_CROSSING = re.compile(
    r"^(?P<a>.+?)(?:与|和|跟|&|x|×)(?P<b>.+?)(?:交叉口|交叉路口|十字路口|交口|路口|交汇处)?$"
)
_PREFIXES = ("山西省", "山西")


class Unmatched(InvalidInput):
    """An address that matched nothing well enough; ``suggestions`` lists near names."""

    def __init__(self, message: str, suggestions: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.suggestions = suggestions


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    district_code: str | None
    lon: float
    lat: float
    detail: str | None = None  # the POI's category, the road's class


@dataclass
class Gazetteer:
    entries: list[Entry]
    districts: dict[str, str]  # name_zh -> code
    district_names: dict[str, str]  # code -> name_zh
    city_names: tuple[str, ...]
    road_nodes: dict[tuple[str, str | None], set[int]] = field(default_factory=dict)
    node_xy: dict[int, tuple[float, float]] = field(default_factory=dict)
    by_name: dict[str, list[Entry]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for e in self.entries:
            self.by_name.setdefault(e.name, []).append(e)
        self.names = list(self.by_name)


def normalize(text: str) -> str:
    """NFKC (full-width digits and letters to half-width), punctuation and spaces removed."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    return _PUNCT.sub("", text)


def load_gazetteer(conn: psycopg.Connection) -> Gazetteer:
    entries: list[Entry] = []
    districts: dict[str, str] = {}
    city_names: list[str] = []
    for code, level, name, lon, lat in conn.execute(
        "SELECT code, level, name_zh, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))"
        " FROM ref.admin_area"
    ):
        if level == "city":
            city_names += [normalize(name), normalize(name).removesuffix("市")]
            continue
        districts[normalize(name)] = code
        entries.append(Entry(normalize(name), "district", code, lon, lat))
    for name, code, lon, lat in conn.execute(
        "SELECT name_zh, district_code, ST_X(geom), ST_Y(geom) FROM ref.town"
        " WHERE name_zh IS NOT NULL"
    ):
        entries.append(Entry(normalize(name), "town", code, lon, lat))
    for name, code, lon, lat in conn.execute(
        "SELECT name_zh, district_code, ST_X(geom), ST_Y(geom) FROM ref.village"
    ):
        entries.append(Entry(normalize(name), "village", code, lon, lat))
    # A road per (name, district): the edge midpoint nearest the middle of all its edges.
    for name, code, cls, lon, lat in conn.execute(
        """
        WITH named AS (
            SELECT name_zh, district_code, road_class, geom,
                   ST_Centroid(ST_Collect(geom) OVER (PARTITION BY name_zh, district_code)) AS c
            FROM ref.road WHERE name_zh IS NOT NULL AND name_zh <> ''
        )
        SELECT DISTINCT ON (name_zh, district_code) name_zh, district_code, road_class,
               ST_X(ST_LineInterpolatePoint(geom, 0.5)), ST_Y(ST_LineInterpolatePoint(geom, 0.5))
        FROM named
        ORDER BY name_zh, district_code, ST_Distance(geom, c)
        """
    ):
        entries.append(Entry(normalize(name), "road", code, lon, lat, cls))
    for name, address, category, code, lon, lat in conn.execute(
        "SELECT name_zh, address, category, district_code, ST_X(geom), ST_Y(geom) FROM ref.poi"
    ):
        entries.append(Entry(normalize(name), "poi", code, lon, lat, category))
        if address:
            entries.append(Entry(normalize(address), "poi", code, lon, lat, f"address of {name}"))
    gaz = Gazetteer(entries, districts, {v: k for k, v in districts.items()}, tuple(city_names))
    node_rows = conn.execute(
        """
        SELECT r.name_zh, r.district_code, n.id, ST_X(n.geom), ST_Y(n.geom)
        FROM ref.road r JOIN ref.road_node n ON n.id IN (r.source, r.target)
        WHERE r.name_zh IS NOT NULL AND r.name_zh <> ''
        """
    ).fetchall()
    for name, code, node, x, y in node_rows:
        n = normalize(name)
        gaz.road_nodes.setdefault((n, code), set()).add(node)
        gaz.road_nodes.setdefault((n, None), set()).add(node)
        gaz.node_xy[node] = (x, y)
    return gaz


_gazetteers: PerDatabase[Gazetteer] = PerDatabase(dataset_version, load_gazetteer)


def gazetteer_for(conn: psycopg.Connection) -> Gazetteer:
    """The gazetteer of this database, rebuilt when the dataset has been reloaded."""
    return _gazetteers.get(conn)


def _as_match(
    e: Entry, method: str, confidence: float, gaz: Gazetteer, query: str, **extra: Any
) -> dict[str, Any]:
    return {
        "query": query,
        "match": e.name,
        "kind": e.kind,
        "detail": e.detail,
        "district_code": e.district_code,
        "district": gaz.district_names.get(e.district_code or ""),
        "lon": round(e.lon, 7),
        "lat": round(e.lat, 7),
        "method": method,
        "confidence": round(max(0.0, min(1.0, confidence)), 3),
        **extra,
    }


def _pick(cands: list[Entry], district: str | None) -> tuple[Entry, list[Entry]]:
    """The best of equal-named entries: in the stated district, then the most specific kind."""
    ranked = sorted(
        cands,
        key=lambda e: (district is not None and e.district_code != district, KIND_RANK[e.kind]),
    )
    return ranked[0], ranked[1:]


def suggestions(
    gaz: Gazetteer, text: str, district: str | None = None, limit: int = 5
) -> list[dict[str, Any]]:
    """Names most like ``text`` (at least a faint likeness), best first."""
    if not text:
        return []
    found = process.extract(text, gaz.names, scorer=fuzz.WRatio, limit=limit * 3, score_cutoff=30)
    out: list[dict[str, Any]] = []
    for name, score, _ in found:
        e, _rest = _pick(gaz.by_name[name], district)
        out.append(
            {
                "name": name,
                "kind": e.kind,
                "district": gaz.district_names.get(e.district_code or ""),
                "score": round(score / 100, 3),
            }
        )
        if len(out) >= limit:
            break
    return out


def geocode(gaz: Gazetteer, text: str, *, min_confidence: float = 0.5) -> dict[str, Any]:
    """Place an address or place name; raises :class:`Unmatched` with suggestions if it can't.

    Examples
    --------
    >>> geocode(gaz, "潞州区英雄中路12号")  # doctest: +SKIP
    {'match': '英雄中路', 'kind': 'road', 'method': 'contains', 'confidence': 0.92, ...}
    """
    query = text
    q = normalize(text)
    if not q:
        raise Unmatched("the address is empty", [])
    for prefix in _PREFIXES:
        q = q.removeprefix(prefix)
    # A city name in front ('长治市潞州区...') says nothing; a POI may start with it, though.
    rest = q
    for city in gaz.city_names:
        if (
            city
            and rest.startswith(city)
            and rest[len(city) :][:1]
            and (any(rest[len(city) :].startswith(d) for d in gaz.districts))
        ):
            rest = rest[len(city) :]
            break
    district: str | None = None
    for name, code in sorted(gaz.districts.items(), key=lambda kv: -len(kv[0])):
        if rest.startswith(name) and len(rest) > len(name):
            district, rest = code, rest[len(name) :]
            break
        if rest == name:
            e, _ = _pick(gaz.by_name[name], code)
            return _as_match(e, "exact", 1.0, gaz, query, alternatives=[])
    core = _NEAR.sub("", _HOUSE_NO.sub("", rest)) or rest

    found = _intersection(gaz, core, district, query)
    if found is not None:
        return found

    def accept(match: dict[str, Any]) -> dict[str, Any]:
        if match["confidence"] < min_confidence:
            raise Unmatched(
                f"the address {text!r} matched {match['match']!r} ({match['kind']}) with "
                f"confidence {match['confidence']} only, below {min_confidence}; give a "
                "more precise address or coordinates",
                suggestions(gaz, core, district) or _fallback(gaz),
            )
        return match

    def alternatives(rest_entries: list[Entry]) -> list[dict[str, Any]]:
        return [
            {
                "name": e.name,
                "kind": e.kind,
                "district": gaz.district_names.get(e.district_code or ""),
                "lon": round(e.lon, 7),
                "lat": round(e.lat, 7),
            }
            for e in rest_entries[:5]
        ]

    def ambiguity(best: Entry, rest_entries: list[Entry]) -> float:
        # Same name elsewhere and no district to tell them apart: less sure.
        others = [e for e in rest_entries if e.district_code != best.district_code]
        return 0.8 if others and (district is None or best.district_code != district) else 1.0

    # exact: the whole text, or the text without its house number, is a name
    for cand, full in ((q, 1.0), (rest, 1.0), (core, 0.97)):
        if cand in gaz.by_name:
            best, others = _pick(gaz.by_name[cand], district)
            conf = full * ambiguity(best, others)
            conf *= 1.0 if district is None or best.district_code == district else 0.7
            return accept(
                _as_match(best, "exact", conf, gaz, query, alternatives=alternatives(others))
            )
    # Otherwise every strategy proposes its best, and the most confident proposal wins.
    proposals: list[dict[str, Any]] = []
    inside = [n for n in gaz.names if len(n) >= 2 and n in core]
    if inside:
        inside.sort(key=lambda n: (-len(n), n))
        name = inside[0]
        best, others = _pick(gaz.by_name[name], district)
        coverage = len(name) / max(len(core), 1)
        conf = (0.5 + 0.45 * coverage) * ambiguity(best, others)
        if district is not None and best.district_code != district:
            conf *= 0.7
        proposals.append(
            _as_match(best, "contains", conf, gaz, query, alternatives=alternatives(others))
        )
    if len(core) >= 2:
        starting = [n for n in gaz.names if n.startswith(core)]
        if starting:
            starting.sort(key=lambda n: (len(n), n))
            name = starting[0]
            best, others = _pick(gaz.by_name[name], district)
            conf = (0.45 + 0.45 * len(core) / len(name)) * (0.85 if len(starting) > 1 else 1.0)
            more = [e for n in starting[1:6] for e in gaz.by_name[n][:1]]
            proposals.append(
                _as_match(best, "prefix", conf, gaz, query, alternatives=alternatives(more))
            )
    scope = gaz.names
    if district is not None:
        scope = [n for n in gaz.names if any(e.district_code == district for e in gaz.by_name[n])]
    # Plain edit-distance similarity: WRatio's partial matching would rate a two-character
    # name inside a long text as nearly perfect.
    hits = process.extract(core, scope, scorer=fuzz.ratio, limit=5, score_cutoff=50)
    if hits:
        name, score, _ = hits[0]
        best, others = _pick(gaz.by_name[name], district)
        conf = score / 100 * 0.85
        if len(hits) > 1 and hits[1][1] >= score - 2:
            conf *= 0.85
        more = [e for n, _, _ in hits[1:] for e in gaz.by_name[n][:1]]
        proposals.append(
            _as_match(best, "fuzzy", conf, gaz, query, alternatives=alternatives(more))
        )
    if proposals:
        return accept(max(proposals, key=lambda m: m["confidence"]))
    raise Unmatched(
        f"the address {text!r} matches nothing in the gazetteer (districts, towns, villages, "
        "roads, places)",
        suggestions(gaz, core, district) or _fallback(gaz),
    )


def _fallback(gaz: Gazetteer) -> list[dict[str, Any]]:
    """With nothing alike, say what the gazetteer knows: the districts."""
    return [
        {"name": name, "kind": "district", "district": name, "score": 0.0}
        for name in sorted(gaz.districts)
    ]


def _intersection(
    gaz: Gazetteer, core: str, district: str | None, query: str
) -> dict[str, Any] | None:
    m = _CROSSING.match(core)
    if not m:
        return None
    a, b = m.group("a"), m.group("b")
    na = gaz.road_nodes.get((a, district)) or gaz.road_nodes.get((a, None))
    nb = gaz.road_nodes.get((b, district)) or gaz.road_nodes.get((b, None))
    if not na or not nb:
        return None
    shared = sorted(na & nb)
    if not shared:
        return None
    x, y = gaz.node_xy[shared[0]]
    entry = Entry(f"{a}与{b}交叉口", "intersection", None, x, y)
    for e in gaz.by_name.get(a, []):
        if e.kind == "road" and (district is None or e.district_code == district):
            entry = Entry(entry.name, entry.kind, e.district_code, x, y)
            break
    conf = 0.95 if len(shared) == 1 else 0.8
    return _as_match(entry, "intersection", conf, gaz, query, alternatives=[], node_id=shared[0])
