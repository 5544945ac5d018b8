"""The flood consultation briefing (防汛会商简报): one page, PDF or PNG, made offline.

It holds what the flood office discusses round the table: the map (districts, rivers, the rain
surface as isohyet bands, the river and rain gauges, the inundation of the scenario and the
shelters), each river gauge's hydrograph (observed, forecast, warning and danger lines), the
forecast alarms (which gauge passes which line, when), and the affected and evacuation tables
per district. Drawn with matplotlib (Agg) in a CJK font found on the machine; nothing is
fetched from a network.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any, Literal

import matplotlib
import numpy as np
import psycopg
import shapely

from apps.flood import service
from gis_core.errors import InvalidInput, NotFound

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from gis_core.documents import cjk_family

__all__ = ["BriefingError", "briefing"]

Format = Literal["pdf", "png"]
CST = timedelta(hours=8)
MAX_GAUGES = 6  # hydrographs on the page


class BriefingError(InvalidInput):
    """The briefing cannot be drawn in the format asked for."""


def _local(ts: datetime | None) -> str:
    return "—" if ts is None else (ts + CST).strftime("%m-%d %H:%M")


def _draw_geojson(ax: Any, fc: dict[str, Any], **style: Any) -> None:
    for feature in fc.get("features", []):
        geom = shapely.geometry.shape(feature["geometry"])
        _draw(ax, geom, **style)


def _draw(ax: Any, geom: Any, **style: Any) -> None:
    kind = geom.geom_type
    if kind in ("Polygon", "MultiPolygon"):
        for poly in getattr(geom, "geoms", [geom]):
            x, y = poly.exterior.xy
            ax.fill(x, y, **style)
    elif kind in ("LineString", "MultiLineString"):
        for line in getattr(geom, "geoms", [geom]):
            x, y = line.xy
            ax.plot(x, y, **style)


def _table(ax: Any, title: str, header: list[str], rows: list[list[str]], empty: str) -> None:
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    if not rows:
        ax.text(0.0, 0.85, empty, fontsize=10, va="top", transform=ax.transAxes)
        return
    table = ax.table(cellText=rows[:14], colLabels=header, loc="upper left", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.3)
    if len(rows) > 14:
        ax.text(0.0, 0.0, f"… {len(rows) - 14} more", fontsize=8, transform=ax.transAxes)


def briefing(
    conn: psycopg.Connection,
    *,
    fmt: Format = "pdf",
    window: str = "3h",
    end: datetime | None = None,
    rise_m: float | None = None,
    hours: float = 12.0,
    horizon_h: float = 6.0,
) -> tuple[bytes, dict[str, Any]]:
    """The briefing as PDF or PNG bytes, and what went into it (alarms, tables, notes).

    The inundation scenario is ``rise_m`` above every channel bed when given, else the
    gauges' latest observed levels (none if no gauge has reported). Nothing is closed.
    """
    if fmt not in ("pdf", "png"):
        raise BriefingError(f"format {fmt!r}: pdf or png")
    family = cjk_family()
    stop = end or datetime.now().astimezone()
    notes: list[str] = []

    try:
        rain: dict[str, Any] | None = service.rain(
            conn, window=window, method="kriging", end=stop, cell_m=1000.0
        )
    except InvalidInput as exc:
        rain = None
        notes.append(f"雨量 rain: {exc}")
    assert rain is None or isinstance(rain, dict)
    if rain is not None:
        notes += [f"雨量 rain: {n}" for n in rain["notes"]]

    gauges = conn.execute(
        """
        SELECT s.id, s.name_zh, ST_X(s.geom), ST_Y(s.geom) FROM iot.monitoring_site s
        WHERE s.kind = 'water_level' AND EXISTS (SELECT 1 FROM iot.device d
            WHERE d.site_id = s.id AND d.kind = 'water_level')
        ORDER BY s.id
        """
    ).fetchall()
    forecasts: list[dict[str, Any]] = []
    for site_id, *_ in gauges:
        try:
            forecasts.append(
                service.forecast(conn, site_id, now=stop, hours=hours, horizon_h=horizon_h)
            )
        except (InvalidInput, NotFound) as exc:
            notes.append(f"预报 forecast: {exc}")
    alarms = [fc for fc in forecasts if fc["warning_at"] is not None or fc["danger_at"] is not None]

    scenario: dict[str, Any] | None = None
    evacuation: dict[str, Any] | None = None
    try:
        if rise_m is not None:
            scenario = service.inundate(conn, rise_m=rise_m, close=False)
            evacuation = service.evacuate(conn, rise_m=rise_m, routes=30)
        else:
            scenario = service.inundate(conn, observed=True, close=False)
            evacuation = service.evacuate(conn, observed=True, routes=30)
    except (InvalidInput, NotFound) as exc:
        notes.append(f"淹没 inundation: {exc}")

    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig = _figure(conn, stop, window, rain, gauges, forecasts, alarms, scenario, evacuation)
        fig.text(
            0.03,
            0.012,
            "说明 notes: " + ("；".join(notes[:6]) if notes else "无"),
            fontsize=8,
            wrap=True,
        )
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=110 if fmt == "png" else 100)
        plt.close(fig)
    return buf.getvalue(), {
        "alarms": [
            {
                "site_id": fc["site_id"],
                "name_zh": fc["name_zh"],
                "warning_at": fc["warning_at"],
                "danger_at": fc["danger_at"],
                "peak_m": fc["peak_m"],
            }
            for fc in alarms
        ],
        "people": scenario["people"] if scenario else None,
        "evacuated": evacuation["assigned"] if evacuation else None,
        "notes": notes,
    }


def _figure(
    conn: psycopg.Connection,
    stop: datetime,
    window: str,
    rain: dict[str, Any] | None,
    gauges: list[Any],
    forecasts: list[dict[str, Any]],
    alarms: list[dict[str, Any]],
    scenario: dict[str, Any] | None,
    evacuation: dict[str, Any] | None,
) -> Figure:
    fig = plt.figure(figsize=(16.5, 23.4))  # A2 portrait: read on the wall or printed
    grid = fig.add_gridspec(4, 3, height_ratios=[3.2, 1.4, 1.4, 1.6], hspace=0.35, wspace=0.25)
    fig.suptitle(
        f"防汛会商简报  Flood consultation briefing   {_local(stop.astimezone())} (UTC+8)",
        fontsize=20,
        fontweight="bold",
        y=0.985,
    )

    # --- the map
    ax = fig.add_subplot(grid[0, :])
    ax.set_title(f"雨情、水情、淹没与避难场所 (近 {window} 雨量)", loc="left", fontsize=13)
    for (wkb,) in conn.execute(
        "SELECT ST_AsBinary(geom) FROM ref.admin_area WHERE level = 'district'"
    ).fetchall():
        _draw(ax, shapely.from_wkb(bytes(wkb)), fill=False, edgecolor="#888888", linewidth=0.8)
    if rain is not None:
        bands = {
            "type": "FeatureCollection",
            "features": [
                f for f in rain["isohyets"]["features"] if f["properties"].get("kind") == "band"
            ],
        }
        cmap = plt.get_cmap("Blues")
        top = max((f["properties"].get("max_mm") or 0.0 for f in bands["features"]), default=0.0)
        for feature in bands["features"]:
            lo = feature["properties"].get("min_mm") or 0.0
            shade = cmap(0.15 + 0.75 * (lo / top if top else 0.0))
            _draw(ax, shapely.geometry.shape(feature["geometry"]), color=shade, alpha=0.55)
        for g in rain["gauges"]:
            ax.plot(g["lon"], g["lat"], "s", color="#1f6fd1", markersize=3)
    for (wkb,) in conn.execute(
        "SELECT ST_AsBinary(geom) FROM flood.stream WHERE strahler >= 2"
    ).fetchall():
        _draw(ax, shapely.from_wkb(bytes(wkb)), color="#2b7bd6", linewidth=0.7)
    if scenario is not None:
        _draw_geojson(ax, scenario["flooded"], color="#d7301f", alpha=0.6, linewidth=0)
    shelters = conn.execute(
        "SELECT ST_X(geom), ST_Y(geom) FROM ref.poi WHERE category = 'shelter'"
    ).fetchall()
    if shelters:
        xs, ys = zip(*shelters, strict=True)
        ax.plot(xs, ys, "^", color="#1a9850", markersize=6, label="避难场所 shelter")
    alarmed = {fc["site_id"] for fc in alarms}
    for site_id, name, lon, lat in gauges:
        colour = "#d7301f" if site_id in alarmed else "#08306b"
        ax.plot(lon, lat, "D", color=colour, markersize=7)
        ax.annotate(
            name or site_id, (lon, lat), xytext=(4, 4), textcoords="offset points", fontsize=8
        )
    ax.plot([], [], "D", color="#08306b", label="水位站 river gauge")
    ax.plot([], [], "D", color="#d7301f", label="预报超警 forecast alarm")
    ax.fill([], [], color="#d7301f", alpha=0.6, label="淹没范围 inundation")
    ax.legend(loc="lower right", fontsize=9)
    ax.set_aspect(1 / np.cos(np.radians(36.0)), adjustable="datalim")  # fill the width
    ax.tick_params(labelsize=8)

    # --- hydrographs
    for k, fc in enumerate(forecasts[:MAX_GAUGES]):
        hx = fig.add_subplot(grid[1 + k // 3, k % 3])
        times = [t + CST for t in fc["times"]]
        n_obs = len(fc["observed_m"])
        obs = [np.nan if v is None else v for v in fc["observed_m"]]
        hx.plot(times[:n_obs], obs, color="#08306b", label="实测 observed")
        hx.plot(
            times[n_obs:], fc["forecast_m"], color="#e6550d", linestyle="--", label="预报 forecast"
        )
        if fc["warning_m"] is not None:
            hx.axhline(fc["warning_m"], color="#fdae61", linewidth=1, label="警戒 warning")
        if fc["danger_m"] is not None:
            hx.axhline(fc["danger_m"], color="#d7301f", linewidth=1, label="保证 danger")
        hx.set_title(f"{fc['name_zh']} {fc['site_id']}", fontsize=10, loc="left")
        hx.tick_params(labelsize=7)
        hx.set_ylabel("水位 m", fontsize=8)
        if k == 0:
            hx.legend(fontsize=7, loc="upper left")
        for label in hx.get_xticklabels():
            label.set_rotation(30)
    if not forecasts:
        hx = fig.add_subplot(grid[1, :])
        hx.axis("off")
        hx.text(0, 0.5, "水位过程线 hydrographs: 无可预报的水位站 no gauge could be forecast")

    # --- tables
    _table(
        fig.add_subplot(grid[3, 0]),
        "预报告警 Forecast alarms",
        ["站点 gauge", "超警 warning", "超保 danger", "峰值 peak m"],
        [
            [
                fc["name_zh"],
                _local(fc["warning_at"]),
                _local(fc["danger_at"]),
                f"{fc['peak_m']:.2f}" if fc["peak_m"] is not None else "—",
            ]
            for fc in alarms
        ],
        "无预报告警 no gauge is forecast to pass its warning level",
    )
    _table(
        fig.add_subplot(grid[3, 1]),
        "受影响人口 Affected people"
        + (f" ({scenario['people']} 人, {scenario['area_km2']} km²)" if scenario else ""),
        ["区县 district", "人口 people"],
        [[d["name_zh"], str(d["people"])] for d in (scenario or {}).get("districts", [])],
        "无淹没情景 no inundation scenario" if scenario is None else "无人受淹 no one affected",
    )
    _table(
        fig.add_subplot(grid[3, 2]),
        "转移安置 Evacuation"
        + (f" ({evacuation['assigned']}/{evacuation['people']} 人)" if evacuation else ""),
        ["区县 district", "转移 people", "已安置 assigned", "平均 min"],
        [
            [
                d["name_zh"],
                str(d["people"]),
                str(d["assigned"]),
                "—" if d["mean_travel_min"] is None else f"{d['mean_travel_min']:.0f}",
            ]
            for d in (evacuation or {}).get("districts", [])
        ],
        "无需转移 no one to evacuate",
    )
    return fig
