"""What a served layer is: its table, geometry, time, titles, style hints and readers.

The catalog of a city's layers lives in ``layers/``; the queries in this package read these
descriptions, never lists of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gis_core.identity import Principal
from gis_core.models import STORAGE_SRID

# Who may read: everyone (also without logging in), any logged-in user, or named roles.
PUBLIC: tuple[str, ...] = ()
LOGGED_IN: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Layer:
    id: str
    table: str  # schema-qualified
    title_zh: str
    title_en: str
    geometry_type: Literal[
        "Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"
    ]
    properties: tuple[str, ...]
    group: str
    id_column: str = "id"
    id_type: Literal["int", "text"] = "int"
    geom_column: str = "geom"
    srid: int = STORAGE_SRID
    time_column: str | None = None
    where: str | None = None  # a fixed filter, part of what the layer *is*
    roles: tuple[str, ...] = PUBLIC
    label: str | None = "name_zh"
    label_en: str | None = "name_en"
    style: Mapping[str, Any] = field(default_factory=dict)
    # Thinning of dense layers on small scales: (below this zoom, keep only rows where ...).
    zoom_filters: tuple[tuple[int, str], ...] = ()
    min_zoom: int = 0
    description: str = ""

    def readable_by(self, user: Principal | None) -> bool:
        if not self.roles:
            return True
        if user is None:
            return False
        return "*" in self.roles or user.has_any(*self.roles)

    @property
    def is_polygon(self) -> bool:
        return self.geometry_type.endswith("Polygon")
