"""Incident types, their response plans, and the dispatch timings (configurable).

A response plan says which unit types an incident of a type needs, and how many: a structure
fire needs two engines, a ladder and an ambulance. Timings (the dispatch deadline, the urban and
rural response targets, the GPS thresholds of arrival detection) come from ``CHANGZHI_DISPATCH_*``
environment variables, with the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis_core.errors import InvalidInput

UNIT_TYPES = ("engine", "ladder", "rescue", "hazmat", "ambulance", "patrol")
UNIT_DEPARTMENT = {
    "engine": "fire",
    "ladder": "fire",
    "rescue": "fire",
    "hazmat": "fire",
    "ambulance": "medical",
    "patrol": "police",
}
# Departments whose dispatchers see every agency's units (the city command centre).
ALL_AGENCY_DEPARTMENTS = frozenset({"command"})


@dataclass(frozen=True)
class IncidentType:
    """An incident type and its response plan.

    Attributes
    ----------
    code
        Stable identifier used by the API.
    plan
        ``(unit_type, count)`` pairs: what one incident of this type needs.
    priority
        Default priority, 1 (life threatening) .. 4 (routine).
    cap_category, cap_event, cap_severity, cap_urgency
        The CAP 1.2 classification of an alert for it.
    radius_m
        Radius of the affected area in a CAP alert.
    """

    code: str
    name_zh: str
    name_en: str
    plan: tuple[tuple[str, int], ...]
    priority: int
    cap_category: str
    cap_event: str
    cap_severity: str
    cap_urgency: str = "Immediate"
    radius_m: float = 300.0

    @property
    def departments(self) -> frozenset[str]:
        return frozenset(UNIT_DEPARTMENT[t] for t, _ in self.plan)


INCIDENT_TYPES: dict[str, IncidentType] = {
    t.code: t
    for t in (
        IncidentType(
            "fire", "火灾", "Fire", (("engine", 2), ("ambulance", 1)), 1, "Fire", "Fire", "Severe"
        ),
        IncidentType(
            "structure_fire",
            "建筑火灾",
            "Structure fire",
            (("engine", 2), ("ladder", 1), ("ambulance", 1)),
            1,
            "Fire",
            "Structure fire",
            "Severe",
        ),
        IncidentType(
            "wildfire",
            "森林火灾",
            "Wildfire",
            (("engine", 2), ("rescue", 1), ("patrol", 1)),
            1,
            "Fire",
            "Wildfire",
            "Severe",
            radius_m=2000.0,
        ),
        IncidentType(
            "medical",
            "医疗急救",
            "Medical emergency",
            (("ambulance", 1),),
            1,
            "Health",
            "Medical emergency",
            "Moderate",
        ),
        IncidentType(
            "police",
            "治安警情",
            "Police incident",
            (("patrol", 1),),
            2,
            "Security",
            "Police incident",
            "Moderate",
        ),
        IncidentType(
            "traffic_accident",
            "交通事故",
            "Traffic accident",
            (("patrol", 1), ("ambulance", 1), ("rescue", 1)),
            1,
            "Transport",
            "Traffic accident",
            "Moderate",
        ),
        IncidentType(
            "flood_rescue",
            "洪涝救援",
            "Flood rescue",
            (("rescue", 1), ("engine", 1), ("ambulance", 1)),
            1,
            "Rescue",
            "Flood rescue",
            "Severe",
            radius_m=1000.0,
        ),
        IncidentType(
            "hazmat",
            "危化品泄漏",
            "Hazardous materials",
            (("hazmat", 1), ("engine", 2), ("ambulance", 1), ("patrol", 1)),
            1,
            "CBRNE",
            "Hazardous materials release",
            "Extreme",
            radius_m=1000.0,
        ),
        IncidentType(
            "rescue",
            "抢险救援",
            "Technical rescue",
            (("rescue", 1), ("engine", 1), ("ambulance", 1)),
            1,
            "Rescue",
            "Technical rescue",
            "Severe",
        ),
        IncidentType(
            "public_service",
            "12345诉求",
            "Citizen request (12345)",
            (("patrol", 1),),
            4,
            "Other",
            "Citizen request",
            "Minor",
            cap_urgency="Expected",
            radius_m=100.0,
        ),
    )
}


def incident_type(code: str) -> IncidentType:
    """The incident type ``code``; 422 naming the known ones otherwise."""
    try:
        return INCIDENT_TYPES[code]
    except KeyError:
        known = ", ".join(INCIDENT_TYPES)
        raise InvalidInput(f"unknown incident type {code!r}; known types: {known}") from None


def parse_unit_types(text: str | None) -> tuple[str, ...] | None:
    """``"engine,ambulance"`` as a tuple of known unit types (None for no text)."""
    if not text:
        return None
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = sorted(set(types) - set(UNIT_TYPES))
    if unknown:
        raise InvalidInput(
            f"unknown unit type(s) {', '.join(unknown)}; known: {', '.join(UNIT_TYPES)}"
        )
    return types


def visible_departments(
    user_department: str | None, roles: frozenset[str], joint: bool
) -> frozenset[str] | None:
    """The departments whose units a user may see and assign; None means every department.

    Admins, supervisors and the command centre see all agencies, and so does everyone on an
    incident declared joint; a dispatcher of the fire brigade otherwise sees fire units only.
    """
    if joint or "admin" in roles or "supervisor" in roles:
        return None
    if user_department in ALL_AGENCY_DEPARTMENTS:
        return None
    return frozenset({user_department}) if user_department else frozenset()


class DispatchSettings(BaseSettings):
    """Timings and thresholds of dispatch, from ``CHANGZHI_DISPATCH_*``."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_DISPATCH_", extra="ignore")

    # Escalations (超时催办)
    dispatch_deadline_s: float = Field(60.0, gt=0)
    routine_dispatch_deadline_s: float = Field(1800.0, gt=0)  # priority 4 (12345 requests)
    urban_target_s: float = Field(480.0, gt=0)  # call to first unit on scene, urban areas
    rural_target_s: float = Field(1200.0, gt=0)
    urban_density_km2: float = Field(1500.0, gt=0)  # residents per km² that make an area urban
    stationary_en_route_s: float = Field(180.0, gt=0)
    # GPS lifecycle
    scene_radius_m: float = Field(150.0, gt=0)  # the geofence around the scene
    arrival_dwell_s: float = Field(20.0, gt=0)  # stopped inside the geofence this long
    stop_radius_m: float = Field(35.0, gt=0)  # fixes within this of their centre: stopped
    moving_m: float = Field(120.0, gt=0)  # moved this far from where it was dispatched
    station_radius_m: float = Field(200.0, gt=0)
    return_dwell_s: float = Field(60.0, gt=0)
    jump_speed_kmh: float = Field(250.0, gt=0)  # a fix implying more is ignored and flagged
    jump_confirm_fixes: int = Field(3, ge=2)  # consistent fixes that re-anchor after a jump
    # Recommendation
    off_network_m: float = Field(300.0, gt=0)  # farther from any road: flagged
    access_speed_kmh: float = Field(20.0, gt=0)  # between a position and its road
    stale_position_s: float = Field(600.0, gt=0)
    monitor_tick_s: float = Field(2.0, gt=0)


@lru_cache(maxsize=1)
def dispatch_settings() -> DispatchSettings:
    return DispatchSettings()


def response_target_s(area_class: str, settings: DispatchSettings | None = None) -> float:
    s = settings or dispatch_settings()
    return s.urban_target_s if area_class == "urban" else s.rural_target_s
