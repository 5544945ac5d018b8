"""The exchange application's layers: the divisions its tables are joined onto."""

from __future__ import annotations

from collections.abc import Iterable

from gis_core.layer import LOGGED_IN, Layer


def layers() -> Iterable[Layer]:
    yield Layer(
        "exchange_towns",
        "exchange.division",
        "乡镇（数据交换）",
        "Towns (data exchange)",
        "MultiPolygon",
        ("code", "name_zh", "district_code", "synthesized"),
        group="exchange",
        id_column="code",
        id_type="text",
        geom_column="area",
        where="level = 'town' AND area IS NOT NULL",
        roles=LOGGED_IN,
        label_en=None,
        style={"stroke": "#8c8c8c", "fill": "rgba(0,0,0,0)", "width": 1, "order": 12},
        description="Town areas and GB/T 2260 codes, synthesized from the villages (no "
        "township boundaries offline)",
    )
