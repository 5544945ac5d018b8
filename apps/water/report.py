"""The annual water-resources report (水资源年报) as a PDF, made offline with matplotlib.

Tables: supply by source and use by sector per district (the water balance), water-use
permits per district (quota, metered use, those past 90 % and past the quota, fees) and each
water-quality station's days meeting its target class; maps: the permits by use against quota
and the stations by compliance, over the districts and rivers. Volumes are in 万m³ (10⁴ m³),
as the bulletins give them.

Chinese text needs a CJK font: the first ``fc-list :lang=zh`` finds (Noto Sans CJK SC is
preferred; Debian package ``fonts-noto-cjk``).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely

from apps.water import quality, resources, service
from gis_core.documents import A4, cjk_family

WAN = 1e4  # 万m³
SOURCE_ZH = {"surface": "地表水", "groundwater": "地下水", "unconventional": "非常规水源",
             "transfer": "调水"}  # fmt: skip
SECTOR_ZH = {"agriculture": "农业", "industry": "工业", "domestic": "生活", "ecological": "生态"}
ROWS_PER_PAGE = 28  # of a long table on one A4 page


def wan(m3: float) -> str:
    """A volume in 万m³ as the report prints it.

    >>> wan(1234567.0)
    '123.46'
    """
    return f"{m3 / WAN:,.2f}"


def build(conn: psycopg.Connection, year: int) -> dict[str, Any]:
    """What the report prints, as data: the balance, the permits and the stations."""
    balance = service.water_balance(conn, year)
    permits = pd.DataFrame(
        balance["permits"],
        columns=["permit_id", "district_code", "annual_quota_m3", "used_m3", "ratio"],
    )
    pairs = zip(permits.used_m3, permits.annual_quota_m3, strict=True)
    permits["fee_yuan"] = [resources.water_fee(u, q) for u, q in pairs]
    by_district = (
        permits.groupby("district_code")
        .agg(
            permits=("permit_id", "size"),
            quota=("annual_quota_m3", "sum"),
            used=("used_m3", "sum"),
            warning=("ratio", lambda r: int(((r >= 0.9) & (r <= 1.0)).sum())),
            exceeded=("ratio", lambda r: int((r > 1.0).sum())),
            fee=("fee_yuan", "sum"),
        )
        .sort_index()
    )
    start = service._year_start(year)
    until = min(service._year_start(year + 1), datetime.now(UTC))
    compliance = service.quality_compliance(conn, start, max(until, start + timedelta(days=1)))
    city = conn.execute(
        "SELECT name_zh FROM ref.admin_area WHERE level = 'city' ORDER BY code LIMIT 1"
    ).fetchone()
    return {
        "year": year,
        "city": city[0] if city else "",
        "balance": balance,
        "permits": permits,
        "by_district": by_district,
        "compliance": compliance,
    }


def _table_page(pdf: Any, title: str, blocks: list[tuple[str, list[str], list[list[str]]]]) -> None:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=A4)
    fig.suptitle(title, fontsize=15, y=0.97)
    top = 0.92
    for caption, header, rows in blocks:
        height = 0.028 * (len(rows) + 1)
        ax = fig.add_axes((0.06, top - height - 0.03, 0.88, height))
        ax.axis("off")
        ax.set_title(caption, fontsize=10, loc="left")
        table = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(7.5)
        table.scale(1.0, 1.0)
        top -= height + 0.07
    pdf.savefig(fig)
    plt.close(fig)


def _maps(pdf: Any, conn: psycopg.Connection, data: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    districts = shapely.from_wkb(
        [r[0] for r in conn.execute(
            "SELECT ST_AsBinary(geom) FROM ref.admin_area WHERE level = 'district'"
        ).fetchall()]
    )  # fmt: skip
    rivers = shapely.from_wkb(
        [r[0] for r in conn.execute("SELECT ST_AsBinary(geom) FROM ref.river").fetchall()]
    )
    where = dict(
        (r[0], (r[1], r[2]))
        for r in conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM water.permit").fetchall()
    )
    # one collection per layer: an artist per line is slow with a city's rivers
    outlines = [
        np.asarray(part.exterior.coords) for p in districts for part in getattr(p, "geoms", [p])
    ]
    streams = [
        np.asarray(part.coords) for line in rivers for part in getattr(line, "geoms", [line])
    ]
    fig, axes = plt.subplots(2, 1, figsize=A4)
    fig.suptitle(f"{data['city']}{data['year']}年水资源图", fontsize=15)
    for ax in axes:
        ax.add_collection(LineCollection(outlines, colors="#888888", linewidths=0.6))
        ax.add_collection(LineCollection(streams, colors="#69b1ff", linewidths=0.5))
        ax.autoscale_view()
        ax.set_aspect(1 / np.cos(np.radians(np.mean(ax.get_ylim()))))
        ax.set_xticks([])
        ax.set_yticks([])
    permits = data["permits"]
    if len(permits):
        xy = np.array([where[p] for p in permits.permit_id])
        colours = np.select(
            [permits.ratio > 1.0, permits.ratio >= 0.9], ["#cf1322", "#faad14"], "#389e0d"
        )
        size = 8 + 60 * np.sqrt(permits.annual_quota_m3 / permits.annual_quota_m3.max())
        axes[0].scatter(xy[:, 0], xy[:, 1], s=size, c=colours, edgecolors="k", linewidths=0.3)
    axes[0].set_title("取水许可：用水量/许可量（绿 <90%，橙 90–100%，红 >100%；点大小为许可量）",
                      fontsize=9)  # fmt: skip
    for s in data["compliance"]["stations"]:
        r = s["rate"]
        colour = "#bfbfbf" if r is None else plt.get_cmap("RdYlGn")(float(r))
        axes[1].scatter(s["lon"], s["lat"], s=40, color=colour, marker="o", edgecolors="k",
                        linewidths=0.4)  # fmt: skip
    axes[1].set_title("水质站：达标天数比例（红 0% → 绿 100%，灰为无数据）", fontsize=9)
    pdf.savefig(fig)
    plt.close(fig)


def render(conn: psycopg.Connection, year: int) -> bytes:
    """The year's report as PDF bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages

    family = cjk_family()
    data = build(conn, year)
    balance = data["balance"]
    names = {d["district_code"]: d["name_zh"] or d["district_code"] for d in balance["districts"]}
    supply_rows = [
        [names[d["district_code"]], *(wan(d["supply_m3"][k]) for k in SOURCE_ZH),
         wan(d["supply_total_m3"])]
        for d in balance["districts"]
    ]  # fmt: skip
    total = balance["total"]
    supply_rows.append(
        ["合计", *(wan(total["supply_m3"][k]) for k in SOURCE_ZH), wan(total["supply_total_m3"])]
    )
    use_rows = [
        [names[d["district_code"]], *(wan(d["use_m3"][k]) for k in SECTOR_ZH),
         wan(d["use_total_m3"]), wan(d["permitted_m3"])]
        for d in balance["districts"]
    ]  # fmt: skip
    use_rows.append(
        ["合计", *(wan(total["use_m3"][k]) for k in SECTOR_ZH), wan(total["use_total_m3"]),
         wan(total["permitted_m3"])]
    )  # fmt: skip
    permit_rows = [
        [names.get(code, code), str(int(r.permits)), wan(r.quota), wan(r.used),
         str(int(r.warning)), str(int(r.exceeded)), f"{r.fee:,.0f}"]
        for code, r in data["by_district"].iterrows()
    ]  # fmt: skip
    by = data["by_district"]
    permit_rows.append(
        ["合计", str(int(by.permits.sum())), wan(by.quota.sum()), wan(by.used.sum()),
         str(int(by.warning.sum())), str(int(by.exceeded.sum())), f"{by.fee.sum():,.0f}"]
    )  # fmt: skip
    compliance = data["compliance"]
    quality_rows = [
        [s["name_zh"], quality.CLASS_LABELS[s["target_class"]], str(s["days_judged"]),
         str(s["days_met"]), "-" if s["rate"] is None else f"{s['rate']:.1%}",
         s["worst_label"] or "-"]
        for s in compliance["stations"]
    ]  # fmt: skip
    rate = compliance["compliance_rate"]
    quality_rows.append(
        ["合计", "", str(compliance["days_judged"]), str(compliance["days_met"]),
         "-" if rate is None else f"{rate:.1%}", ""]
    )  # fmt: skip
    title = f"{data['city']}{year}年水资源年报"
    buffer = io.BytesIO()
    # Type 3 glyphs: embedding the CJK collection as Type 42 costs seconds per report for
    # its subsetting; both keep the text extractable (a ToUnicode map)
    style: dict[Any, Any] = {"font.family": family, "pdf.fonttype": 3, "axes.unicode_minus": False}
    metadata = {"Title": title, "Creator": "changzhi water report"}
    with matplotlib.rc_context(style), PdfPages(buffer, metadata=metadata) as pdf:
        _table_page(
                pdf,
                title,
                [
                    ("表1 供水量（万m³）", ["区县", *SOURCE_ZH.values(), "总供水量"], supply_rows),
                    ("表2 用水量（万m³）", ["区县", *SECTOR_ZH.values(), "总用水量", "许可量"],
                     use_rows),
                ],
            )  # fmt: skip
        left = len(balance["left_out"])
        _table_page(
                pdf,
                f"{title}（续）",
                [
                    (f"表3 取水许可（计量 {len(data['permits'])} 个，无有效读数 {left} 个）",
                     ["区县", "许可数", "许可量", "用水量", "达90%", "超许可", "水资源费（元）"],
                     permit_rows),
                ],
            )  # fmt: skip
        for k in range(0, len(quality_rows), ROWS_PER_PAGE):
            _table_page(
                    pdf,
                    f"{title}（续）",
                    [
                        ("表4 水质站达标情况（GB 3838-2002，按日）",
                         ["站点", "目标", "评价天数", "达标天数", "达标率", "最差类别"],
                         quality_rows[k : k + ROWS_PER_PAGE]),
                    ],
                )  # fmt: skip
        _maps(pdf, conn, data)
    return buffer.getvalue()
