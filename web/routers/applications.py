"""``GET /apps``: the installed applications, with their layers, panels, device kinds and
roles. The console builds its panels, legend and menus from this answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from gis_core.application import Installed

router = APIRouter(tags=["platform"])


class PanelOut(BaseModel):
    id: str
    module: str
    strings: str | None
    title_zh: str
    title_en: str
    roles: list[str]


class ApplicationOut(BaseModel):
    name: str
    title_zh: str
    title_en: str
    description: str
    prefix: str | None
    layers: list[str]
    kinds: list[str]
    events: list[str]
    panels: list[PanelOut]
    roles: list[str]
    benches: list[str]


class FieldOut(BaseModel):
    name: str
    type: str
    min: float | None
    max: float | None
    unit: str
    label_zh: str
    label_en: str


class ThresholdOut(BaseModel):
    rule: str
    field: str
    test: str
    limit: float | None
    low: float | None
    high: float | None
    site_key: str | None
    permit_key: str | None
    severity: int


class KindOut(BaseModel):
    name: str
    app: str
    label_zh: str
    label_en: str
    interval_s: int
    shape: str
    shape_index: int
    color: str
    mobile: bool
    primary_field: str | None
    fields: list[FieldOut]
    thresholds: list[ThresholdOut]


class AppsOut(BaseModel):
    applications: list[ApplicationOut]
    kinds: list[KindOut]


@router.get("/apps", response_model=AppsOut)
def list_apps(request: Request) -> dict[str, Any]:
    """The installed applications and the device kinds they define. A panel lists the roles
    that see it; the console shows a user only the panels their roles allow."""
    apps: Installed = request.app.state.apps
    kinds = [
        {**kind.describe(), "app": application.name}
        for application in apps
        for kind in application.kinds
    ]
    return {"applications": [a.describe() for a in apps], "kinds": kinds}
