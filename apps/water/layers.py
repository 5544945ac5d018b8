"""The water application's layers in the platform's catalog: function zones and permits."""

from __future__ import annotations

from collections.abc import Iterable

from gis_core.layer import LOGGED_IN, Layer


def layers() -> Iterable[Layer]:
    yield Layer(
        "water_function_zones",
        "water.function_zone",
        "水功能区",
        "Water-function zones",
        "MultiLineString",
        ("code", "name_zh", "use_zh", "target_class", "waterbody"),
        group="water",
        roles=LOGGED_IN,
        label_en=None,
        style={"stroke": "#1890ff", "width": 3, "order": 40},
        description="River reaches and the GB 3838-2002 class each must meet",
    )
    yield Layer(
        "water_permits",
        "water.permit",
        "取水许可",
        "Water-use permits",
        "Point",
        (
            "holder_name",
            "holder_uscc",
            "source_type",
            "sector",
            "annual_quota_m3",
            "valid_from",
            "valid_until",
        ),
        group="water",
        id_type="text",
        roles=("planner", "inspector", "supervisor"),
        label="holder_name",
        label_en=None,
        style={"color": "#2f54eb", "radius": 4, "order": 41},
        description="Who may take how much water from which well or intake",
    )
