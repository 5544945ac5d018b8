"""Dispatch's layers in the platform's catalog."""

from __future__ import annotations

from collections.abc import Iterable

from gis_core.layer import Layer


def layers() -> Iterable[Layer]:
    yield Layer(
        "incidents",
        "ops.incident",
        "事件",
        "Incidents",
        "Point",
        (
            "incident_type",
            "priority",
            "status",
            "address",
            "description",
            "district_code",
            "joint",
            "created_at",
            "closed_at",
        ),
        group="operations",
        time_column="created_at",
        roles=("dispatcher", "supervisor"),
        label="incident_type",
        label_en=None,
        style={"color": "#f03e3e", "radius": 9, "order": 95},
    )
