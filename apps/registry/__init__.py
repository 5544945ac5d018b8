"""Land and mineral-rights registries (国土): cadastral parcels and mining rights, with
their history; registration, conflict checks and certificates build on them."""

from __future__ import annotations

from collections.abc import Iterable

from gis_core.application import Application
from gis_core.layer import Layer


def _layers() -> Iterable[Layer]:
    from apps.registry.layers import layers

    return layers()


APP = Application(
    name="registry",
    title_zh="国土与矿业权登记",
    title_en="Land and mineral-rights registries",
    description=__doc__ or "",
    layers=_layers,
    models="apps.registry.models",
    roles=("registrar", "inspector", "planner", "supervisor", "admin"),
)
