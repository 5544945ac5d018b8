"""The probe's one layer: a table its own migration branch makes."""

from __future__ import annotations

from collections.abc import Iterator

from gis_core.layer import LOGGED_IN, Layer


def layers() -> Iterator[Layer]:
    yield Layer(
        "beacon_sites",
        "probe.beacon_site",
        "信标",
        "Beacon sites",
        "Point",
        ("name_zh",),
        group="probe",
        roles=LOGGED_IN,
        style={"color": "#00ff00", "radius": 4, "order": 99},
    )
