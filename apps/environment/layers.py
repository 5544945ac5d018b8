"""The environment application's layers in the platform's catalog."""

from __future__ import annotations

from collections.abc import Iterable

from gis_core.layer import LOGGED_IN, Layer


def layers() -> Iterable[Layer]:
    yield Layer(
        "enterprises",
        "env.enterprise",
        "企业",
        "Enterprises",
        "Point",
        ("credit_code", "name_zh", "industry_code", "industry_zh", "district_code", "employees"),
        group="environment",
        roles=LOGGED_IN,
        label_en=None,
        style={"color": "#6c757d", "radius": 3, "order": 30},
    )
    yield Layer(
        "pollution_sources",
        "env.pollution_source",
        "污染源",
        "Pollution sources",
        "Point",
        ("enterprise_id", "kind", "name_zh", "stack_height_m", "limits"),
        group="environment",
        roles=("planner", "inspector", "supervisor", "dispatcher"),
        label_en=None,
        style={"color": "#8e44ad", "radius": 4, "order": 31},
    )
