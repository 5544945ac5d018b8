"""The registry application's layers in the platform's catalog."""

from __future__ import annotations

from collections.abc import Iterable

from gis_core.layer import Layer


def layers() -> Iterable[Layer]:
    yield Layer(
        "parcels",
        "registry.parcel",
        "宗地",
        "Cadastral parcels",
        "MultiPolygon",
        (
            "parcel_code",
            "version",
            "land_use",
            "land_use_zh",
            "owner",
            "district_code",
            "area_m2",
            "valid_from",
        ),
        group="registry",
        where="valid_to IS NULL",
        roles=("registrar", "inspector", "planner"),
        label="parcel_code",
        label_en=None,
        min_zoom=12,
        style={"stroke": "#a47148", "fill": "rgba(164,113,72,0.15)", "order": 3, "by": "land_use"},
    )
    yield Layer(
        "mining_rights",
        "registry.mining_right",
        "矿业权",
        "Mining rights",
        "MultiPolygon",
        (
            "license_no",
            "version",
            "right_type",
            "mineral",
            "holder",
            "permit_from",
            "permit_to",
            "depth_top_m",
            "depth_bottom_m",
            "valid_from",
        ),
        group="registry",
        where="valid_to IS NULL",
        roles=("registrar", "inspector", "planner"),
        label="license_no",
        label_en=None,
        style={"stroke": "#343a40", "fill": "rgba(52,58,64,0.2)", "order": 4},
    )
