"""The monthly report (生态环境监管月报) as a PDF, made offline with matplotlib.

Page 1: daily AQI days by level per district (stacked bars, the level colours of HJ 633
Appendix A) and the city's daily AQI (line). Page 2: emission loads by district (bars) and
by industry (pie), exceedance rates by industry, and the month's inspection work. Chinese
text needs a CJK font installed on the machine (Noto Sans CJK, WenQuanYi, ...): without
one the report is refused with a message saying so, never printed as empty boxes.
"""

from __future__ import annotations

import io
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from apps.environment import statistics
from apps.environment.aqi import LEVELS
from gis_core.documents import cjk_family
from gis_core.errors import InvalidInput


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of ``YYYY-MM``.

    >>> month_bounds("2026-02")
    (datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))
    """
    try:
        year, mon = (int(p) for p in month.split("-"))
        first = date(year, mon, 1)
    except ValueError:
        raise InvalidInput(f"month must be YYYY-MM, not {month!r}") from None
    following = date(year + (mon == 12), 1 if mon == 12 else mon + 1, 1)
    return first, following - timedelta(days=1)


def gather(conn: psycopg.Connection, month: str) -> dict[str, Any]:
    """The month's figures, as the PDF shows them (also the JSON beside it)."""
    first, last = month_bounds(month)
    tasks = conn.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE state = 'closed'),
               (SELECT count(*) FROM env.complaint WHERE received_at >= %(a)s::timestamp
                  AT TIME ZONE 'Asia/Shanghai' AND received_at < %(b)s::timestamp
                  AT TIME ZONE 'Asia/Shanghai'),
               (SELECT count(*) FROM env.violation WHERE created_at >= %(a)s::timestamp
                  AT TIME ZONE 'Asia/Shanghai' AND created_at < %(b)s::timestamp
                  AT TIME ZONE 'Asia/Shanghai')
        FROM env.inspection_task
        WHERE created_at >= %(a)s::timestamp AT TIME ZONE 'Asia/Shanghai'
          AND created_at < %(b)s::timestamp AT TIME ZONE 'Asia/Shanghai'
        """,
        {"a": first, "b": last + timedelta(days=1)},
    ).fetchone()
    assert tasks is not None
    span: dict[str, Any] = {"start": first, "end": last}
    return {
        "month": month,
        "aqi_days": statistics.aqi_days(conn, scope="district", period="month", **span),
        "city_daily": statistics.airquality.report(
            conn, scope="city", period="daily", standard="auto", **span
        )["rows"],
        "loads_by_district": statistics.loads(conn, by="district", period="month", **span),
        "loads_by_industry": statistics.loads(conn, by="industry", period="month", **span),
        "rates_by_industry": statistics.exceedance_rates(
            conn, by="industry", period="month", **span
        ),
        "inspection": {
            "tasks": tasks[0],
            "closed": tasks[1],
            "complaints": tasks[2],
            "violations": tasks[3],
        },
    }


def render_pdf(figures: dict[str, Any]) -> bytes:
    """The report's two pages as PDF bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    family = cjk_family()
    style: dict[Any, Any] = {"font.family": family, "pdf.fonttype": 42, "axes.unicode_minus": False}
    buffer = io.BytesIO()
    with plt.rc_context(style), PdfPages(buffer, metadata={"Title": "生态环境监管月报"}) as pdf:
        fig, (bars, line) = plt.subplots(2, 1, figsize=(8.27, 11.69))
        fig.suptitle(f"生态环境监管月报 {figures['month']}", fontsize=16)
        rows = figures["aqi_days"] or []
        names = [r["name"] or r["id"] for r in rows]
        bottom = [0] * len(rows)
        for level in LEVELS:
            counts = [r["days_by_level"][str(level.number)] for r in rows]
            bars.bar(names, counts, bottom=bottom, color=level.hex, label=level.name_zh)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        standards = sorted({s for r in rows for s in r["standards"]}) or ["—"]
        bars.set_title(f"各区县空气质量级别天数（{'、'.join(standards)}）")
        bars.set_ylabel("天")
        bars.tick_params(axis="x", rotation=45)
        bars.legend(fontsize=8, ncols=3)
        city = figures["city_daily"]
        line.plot([r["time"][5:10] for r in city], [r["aqi"] for r in city], marker="o")
        line.set_title("全市日 AQI")
        line.tick_params(axis="x", rotation=60, labelsize=7)
        if not rows and not city:
            bars.text(0.5, 0.5, "本月无空气质量数据", ha="center", transform=bars.transAxes)
        fig.tight_layout()
        pdf.savefig(fig)
        plt.close(fig)

        fig, ((by_district, by_industry), (rates, text)) = plt.subplots(2, 2, figsize=(11.69, 8.27))
        fig.suptitle(f"污染物排放与执法 {figures['month']}", fontsize=14)
        loads = figures["loads_by_district"]
        for offset, pollutant in enumerate(("so2", "nox", "dust")):
            by_district.bar(
                [i + 0.27 * offset for i in range(len(loads))],
                [r["load_kg"][pollutant] / 1000 for r in loads],
                width=0.27,
                label=pollutant.upper(),
            )
        by_district.set_xticks(range(len(loads)), [r["name"] or r["key"] for r in loads],
                               rotation=45, fontsize=8)  # fmt: skip
        by_district.set_title("各区县排放量（吨）")
        by_district.legend(fontsize=8)
        industry = [r for r in figures["loads_by_industry"] if r["load_kg"]["so2"] > 0]
        if industry:
            by_industry.pie([r["load_kg"]["so2"] for r in industry],
                            labels=[r["name"] or r["key"] for r in industry],
                            textprops={"fontsize": 7}, autopct="%1.0f%%")  # fmt: skip
        by_industry.set_title("SO2 排放量行业构成")
        shown = [r for r in figures["rates_by_industry"] if r["pollutant"] == "so2_mgm3"]
        rates.barh([r["name"] or r["key"] for r in shown], [100 * r["rate"] for r in shown])
        rates.set_title("SO2 小时超标率（%）")
        text.axis("off")
        work = figures["inspection"]
        text.text(0.0, 0.9, "\n".join([
            f"新建监察任务 {work['tasks']} 件，已办结 {work['closed']} 件",
            f"信访投诉 {work['complaints']} 件",
            f"查处违法行为 {work['violations']} 起",
        ]), va="top", fontsize=12)  # fmt: skip
        fig.tight_layout()
        pdf.savefig(fig)
        plt.close(fig)
    return buffer.getvalue()


def monthly_pdf(conn: psycopg.Connection, month: str) -> tuple[bytes, dict[str, Any]]:
    """The month's PDF and the figures in it."""
    figures = gather(conn, month)
    return render_pdf(figures), figures


def archive_dir(var_dir: Path) -> Path:
    return Path(var_dir) / "environment" / "reports"


def archive_last_month(conn: psycopg.Connection, var_dir: Path, today: date) -> Path | None:
    """Write last month's report to ``<var>/environment/reports/YYYY-MM.pdf`` unless it is
    there already (the watcher calls this every round); returns the file written, if any."""
    last = today.replace(day=1) - timedelta(days=1)
    month = f"{last.year:04d}-{last.month:02d}"
    target = archive_dir(var_dir) / f"{month}.pdf"
    if target.exists():
        return None
    pdf, _ = monthly_pdf(conn, month)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(pdf)
    partial.replace(target)  # a reader sees the whole report or none
    return target
