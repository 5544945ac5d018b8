"""Report maps: a snapshot of catalog layers as one self-contained HTML file (folium/Leaflet).

folium points its pages at CDNs by default; a report made here loads nothing from the internet:
Leaflet's script and style sheet (with its images as data URIs) are inlined from the copy
vendored beside this module, and the base map is the platform's own relief tiles.
"""

from __future__ import annotations

import base64
import html
import math
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import folium
import orjson
import psycopg
from branca.element import Element

from gis_core.features import BBox, features_page
from gis_core.layer import Layer

LEAFLET_DIR = Path(__file__).resolve().parent / "vendor" / "leaflet"
DEFAULT_COLOR = "#4dabf7"
# The city's extent when neither a bbox nor any feature says where to look.
FALLBACK_BOUNDS = ((35.82, 111.98), (37.12, 113.73))


class ReportError(LookupError):
    """A report that cannot be made as asked; the message says why."""


@lru_cache(maxsize=1)
def leaflet_assets() -> tuple[str, str]:
    """Leaflet's script and style sheet as text, the sheet's images inlined as data URIs."""
    script = (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8")
    script = script.replace("//# sourceMappingURL=leaflet.js.map", "")
    css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")
    for image in sorted((LEAFLET_DIR / "images").glob("*.png")):
        data = base64.b64encode(image.read_bytes()).decode()
        css = css.replace(f"images/{image.name}", f"data:image/png;base64,{data}")
    # A closing tag inside inlined text would end the element early.
    return script.replace("</script", "<\\/script"), css.replace("</style", "<\\/style")


def _color(layer: Layer) -> str:
    style = layer.style
    color = style.get("color") or style.get("stroke") or style.get("fill")
    return str(color) if color and not str(color).startswith("rgba(0,0,0,0") else DEFAULT_COLOR


def _style_for(layer: Layer) -> dict[str, Any]:
    style = layer.style
    if layer.is_polygon:
        fill = str(style.get("fill", "rgba(0,0,0,0)"))
        transparent = fill.replace(" ", "").startswith("rgba(0,0,0,0")
        return {
            "color": str(style.get("stroke", _color(layer))),
            "weight": float(style.get("width", 1.5)),
            "fillColor": _color(layer) if transparent else fill,
            "fillOpacity": 0.0 if transparent else float(style.get("opacity", 0.25)),
        }
    if layer.geometry_type.endswith("LineString"):
        return {"color": _color(layer), "weight": float(style.get("width", 2)), "opacity": 0.9}
    return {"color": "#ffffff", "weight": 1, "fillColor": _color(layer), "fillOpacity": 0.9}


def _class_styles(layer: Layer) -> tuple[str | None, dict[str, dict[str, Any]]]:
    by = layer.style.get("by")
    classes = layer.style.get("classes")
    if isinstance(by, str) and isinstance(classes, dict):
        return by, {str(k): dict(v) for k, v in classes.items()}
    return None, {}


def _bounds(
    features: list[dict[str, Any]], bbox: BBox | None
) -> tuple[tuple[float, float], tuple[float, float]]:
    if bbox is not None:
        return (bbox.miny, bbox.minx), (bbox.maxy, bbox.maxx)
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords: Any) -> None:
        if coords and isinstance(coords[0], int | float):
            xs.append(float(coords[0]))
            ys.append(float(coords[1]))
        else:
            for part in coords or ():
                walk(part)

    for feature in features:
        geometry = feature.get("geometry") or {}
        walk(geometry.get("coordinates"))
    finite = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if not finite:
        return FALLBACK_BOUNDS
    return (
        (min(y for _, y in finite), min(x for x, _ in finite)),
        (max(y for _, y in finite), max(x for x, _ in finite)),
    )


def build_report_map(
    conn: psycopg.Connection,
    layers: list[Layer],
    *,
    bbox: BBox | None,
    tiles: str,
    title: str | None = None,
    lang: str = "zh",
    max_features: int = 5000,
    author: str | None = None,
) -> str:
    """The HTML of a report map showing ``layers`` (already checked readable by the caller)."""
    if not layers:
        raise ReportError("no layers to draw")
    english = lang == "en"
    fmap = folium.Map(
        location=[36.2, 113.1],
        zoom_start=9,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
    )
    # Nothing from CDNs: Leaflet is inlined below, and folium's extras (jQuery, Bootstrap,
    # awesome-markers) are not used by anything this report draws.
    fmap.default_js = []
    fmap.default_css = []
    script, css = leaflet_assets()
    header = fmap.get_root().header  # type: ignore[attr-defined]
    header.add_child(Element(f"<style>{css}</style>"), name="leaflet_css")
    header.add_child(Element(f"<script>{script}</script>"), name="leaflet_js")
    header.add_child(Element(f"<style>{REPORT_CSS}</style>"), name="report_css")
    folium.TileLayer(
        tiles=tiles,
        attr="Relief: refinement of NOAA ETOPO1 · Changzhi platform",
        name="地形晕渲 / Relief" if not english else "Relief",
        max_zoom=18,
        overlay=False,
    ).add_to(fmap)

    everything: list[dict[str, Any]] = []
    legend_rows: list[str] = []
    for layer in sorted(layers, key=lambda lyr: float(lyr.style.get("order", 50))):
        page = features_page(conn, layer, limit=max_features, bbox=bbox)
        features = orjson.loads(page.features_json)
        everything.extend(features)
        name = layer.title_en if english else layer.title_zh
        label = (layer.label_en if english else layer.label) or layer.label
        base_style = _style_for(layer)
        by, classes = _class_styles(layer)

        def style_function(
            feature: dict[str, Any],
            base: dict[str, Any] = base_style,
            by: str | None = by,
            classes: dict[str, dict[str, Any]] = classes,
        ) -> dict[str, Any]:
            found = classes.get(str((feature.get("properties") or {}).get(by))) if by else None
            if not found:
                return base
            style = dict(base)
            if "stroke" in found:
                style["color"] = found["stroke"]
            if "width" in found:
                style["weight"] = found["width"]
            return style

        fields = [p for p in (label, "name_zh", "name_en") if p and p in layer.properties][:1]
        tooltip = folium.GeoJsonTooltip(fields=fields, labels=False) if fields else None
        group = folium.FeatureGroup(name=html.escape(name), show=True)
        if features:
            radius = float(layer.style.get("radius", 5))
            folium.GeoJson(
                {"type": "FeatureCollection", "features": features},
                name=html.escape(name),
                style_function=style_function,
                marker=folium.CircleMarker(radius=radius) if not _is_area_or_line(layer) else None,
                tooltip=tooltip,
            ).add_to(group)
        group.add_to(fmap)
        shown, matched = len(features), page.number_matched
        note = f"{shown}" if shown >= matched else f"{shown}/{matched}"
        legend_rows.append(_legend_row(layer, name, note))

    fmap.fit_bounds(list(_bounds(everything, bbox)))
    folium.LayerControl(collapsed=False).add_to(fmap)
    made = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M")
    heading = title or ("Changzhi situation map" if english else "长治市态势图")
    byline = f"{made}" + (f" · {author}" if author else "")
    panel = (
        '<div class="cz-report-title">'
        f"<h1>{html.escape(heading)}</h1><p>{html.escape(byline)}</p></div>"
        '<div class="cz-report-legend"><h2>'
        + ("Legend" if english else "图例")
        + "</h2>"
        + "".join(legend_rows)
        + "</div>"
    )
    fmap.get_root().html.add_child(Element(panel))  # type: ignore[attr-defined]
    fmap.get_root().header.add_child(  # type: ignore[attr-defined]
        Element(f"<title>{html.escape(heading)}</title>"), name="title"
    )
    rendered: str = fmap.get_root().render()
    return rendered


def _is_area_or_line(layer: Layer) -> bool:
    return layer.is_polygon or layer.geometry_type.endswith("LineString")


def _legend_row(layer: Layer, name: str, note: str) -> str:
    color = html.escape(_color(layer))
    if layer.is_polygon:
        stroke = html.escape(str(layer.style.get("stroke", color)))
        swatch = f'<span class="sw area" style="border-color:{stroke}"></span>'
    elif layer.geometry_type.endswith("LineString"):
        swatch = f'<span class="sw line" style="background:{color}"></span>'
    else:
        swatch = f'<span class="sw dot" style="background:{color}"></span>'
    return f"<div>{swatch}{html.escape(name)} <small>({html.escape(note)})</small></div>"


REPORT_CSS = """
.cz-report-title, .cz-report-legend {
  position: fixed; z-index: 1000; background: rgba(255,255,255,.92); border-radius: 6px;
  box-shadow: 0 1px 6px rgba(0,0,0,.3);
  font: 14px/1.4 "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif;
}
.cz-report-title { top: 10px; left: 60px; padding: 6px 14px; }
.cz-report-title h1 { margin: 0; font-size: 20px; }
.cz-report-title p { margin: 0; color: #555; font-size: 12px; }
.cz-report-legend { bottom: 24px; left: 10px; padding: 8px 12px; max-width: 320px; }
.cz-report-legend h2 { margin: 0 0 4px; font-size: 14px; }
.cz-report-legend .sw { display: inline-block; width: 14px; height: 14px; margin-right: 6px;
  vertical-align: -2px; }
.cz-report-legend .dot { border-radius: 50%; border: 1px solid #fff; }
.cz-report-legend .line { height: 4px; vertical-align: 3px; }
.cz-report-legend .area { border: 2px solid; }
"""
