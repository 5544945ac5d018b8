"""The registry API (``/registry``): applications and their findings, the workflow, waivers,
a right's history, as-of views of the register and the full conflict check.

Roles: registrars submit and accept (and certify), inspectors review, supervisors approve and
waive; inspectors and supervisors may reject. Reading needs a login. Every workflow change is
announced to the consoles as a live event ``{"type": "application", ...}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from apps.registry import certificate, service, stats
from gis_core.errors import InvalidInput, InvalidParameter
from web.deps import ConnDep, CurrentUser

router = APIRouter(tags=["registry"])


class ApplicationIn(BaseModel):
    """A new application: the boundary as a corner list (拐点坐标) or as GeoJSON (WGS84)."""

    kind: str = Field(description="mining, exploration or parcel", examples=["mining"])
    object_id: str = Field(
        min_length=1, max_length=40, description="licence number or parcel code applied for"
    )
    applicant: str = Field(min_length=1, max_length=200, description="holder or credit code")
    corners: str | None = Field(
        None,
        max_length=200_000,
        description="corner-coordinate text (CGCS2000 3° GK, X northing, Y easting)",
    )
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON Polygon/MultiPolygon")
    depth_top_m: float | None = Field(None, description="upper limit of the depth range")
    depth_bottom_m: float | None = Field(None, description="lower limit of the depth range")
    default_zone: int | None = Field(
        None, ge=25, le=45, description="3° zone when the corners carry none"
    )
    attrs: dict[str, Any] = Field(
        default_factory=dict, description="mineral, scale, permit_from, permit_to..."
    )
    due_days: int = Field(service.DEFAULT_DUE_DAYS, ge=1, le=365)


class TransitionIn(BaseModel):
    action: str = Field(description="accept, review, approve, reject or certify")
    version: int | None = Field(
        None, ge=1, description="the version acted on: a stale one is refused (409)"
    )
    note: str | None = Field(None, max_length=2000, description="required to reject")


class WaiveIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class FindingOut(BaseModel):
    id: int
    check_kind: str
    other_kind: str
    other_id: str
    area_m2: float
    area_mu: float
    share: float | None
    status: str
    reason: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    geometry: dict[str, Any]


class StepOut(BaseModel):
    step: str
    actor: str
    at: dt.datetime
    note: str | None


class ApplicationOut(BaseModel):
    id: int
    kind: str
    object_id: str
    applicant: str
    attrs: dict[str, Any]
    depth_top_m: float | None
    depth_bottom_m: float | None
    state: str
    due_at: dt.datetime
    overdue: bool
    submitted_by: str
    submitted_at: dt.datetime
    accepted_by: str | None
    reviewer: str | None
    approver: str | None
    reject_reason: str | None
    updated_at: dt.datetime
    txn_id: int | None
    version: int
    area_m2: float
    area_mu: float
    geometry: dict[str, Any]
    findings: list[FindingOut] = []
    steps: list[StepOut] = []


class VersionOut(BaseModel):
    version_id: int | None
    txn_id: int | None
    attrs: dict[str, Any]
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    recorded_from: dt.datetime | None
    recorded_to: dt.datetime | None
    area_m2: float
    area_mu: float
    transaction: dict[str, Any] | None


class HistoryOut(BaseModel):
    object_id: str
    kind: str
    versions: list[VersionOut]
    lineage: list[dict[str, Any]]


class AsOfOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: str
    valid: dt.datetime
    known: dt.datetime | None
    numberReturned: int  # the OGC API name
    counts: dict[str, int]
    features: list[dict[str, Any]]


class RightOut(BaseModel):
    license_no: str
    attrs: dict[str, Any]
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    geometry: dict[str, Any]


class CheckOut(BaseModel):
    seconds: float
    checks: dict[str, dict[str, Any]]


def _announce(request: Request, event: str, app: dict[str, Any]) -> None:
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish_event(
            {
                "type": "application",
                "app": "registry",
                "event": event,
                "id": app["id"],
                "state": app["state"],
                "object_id": app["object_id"],
                "open_findings": sum(f["status"] == "open" for f in app["findings"]),
            }
        )


def _time(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(f"{name}: not an ISO 8601 time: {value!r}") from None
    if t.tzinfo is None:
        raise InvalidParameter(f"{name}: give a time zone offset, e.g. {value}+08:00")
    return t


@router.post(
    "/applications",
    status_code=201,
    response_model=ApplicationOut,
    summary="File an application: parsed, checked, findings returned",
)
def create_application(
    body: ApplicationIn, user: CurrentUser, conn: ConnDep, request: Request
) -> Any:
    """The boundary comes as a corner list (axes and zone handled, refused with the reason)
    or as GeoJSON; it is checked at once against the rights the register holds (in plan and
    depth), basic farmland, the red line and built-up areas (parcels: against parcels)."""
    if (body.corners is None) == (body.geometry is None):
        raise InvalidInput("give the boundary either as corners or as geometry, not both")
    if body.corners is not None:
        boundary = service.boundary_from_corners(body.corners, default_zone=body.default_zone)
        if body.depth_top_m is not None or body.depth_bottom_m is not None:
            boundary = service.Boundary(
                boundary.geom, body.depth_top_m, body.depth_bottom_m, boundary.warnings
            )
    else:
        assert body.geometry is not None
        boundary = service.boundary_from_geojson(
            body.geometry, body.depth_top_m, body.depth_bottom_m
        )
    made = service.submit(
        conn,
        user,
        kind=body.kind,
        object_id=body.object_id,
        applicant=body.applicant,
        boundary=boundary,
        corners=body.corners,
        attrs=body.attrs,
        due_days=body.due_days,
    )
    conn.commit()
    _announce(request, "submitted", made)
    return made


@router.get("/applications", response_model=list[ApplicationOut], summary="Applications")
def list_applications(
    _: CurrentUser,
    conn: ConnDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    """Oldest due first; ``overdue=true`` lists those past their due time (超时催办)."""
    return service.list_applications(conn, state, overdue, limit)


@router.get(
    "/applications/{application_id}",
    response_model=ApplicationOut,
    summary="An application with its findings and steps",
)
def get_application(application_id: int, _: CurrentUser, conn: ConnDep) -> Any:
    return service.get_application(conn, application_id)


@router.post(
    "/applications/{application_id}/transition",
    response_model=ApplicationOut,
    summary="Accept, review, approve, reject or certify",
)
def transition(
    application_id: int, body: TransitionIn, user: CurrentUser, conn: ConnDep, request: Request
) -> Any:
    """A stale ``version`` or a state that does not allow the action is a 409; approval is
    refused (409) while findings are unresolved; certifying enters the register."""
    done = service.transition(
        conn, user, application_id, body.action, version=body.version, note=body.note
    )
    conn.commit()
    _announce(request, body.action, done)
    return done


@router.post(
    "/findings/{finding_id}/waive",
    response_model=ApplicationOut,
    summary="Waive a finding with a reason (supervisor)",
)
def waive(
    finding_id: int, body: WaiveIn, user: CurrentUser, conn: ConnDep, request: Request
) -> Any:
    done = service.waive(conn, user, finding_id, body.reason)
    conn.commit()
    _announce(request, "waived", done)
    return done


@router.get("/rights", response_model=list[RightOut], summary="Find rights by licence or holder")
def find_rights(
    _: CurrentUser,
    conn: ConnDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Any:
    return service.find_rights(conn, q, limit)


@router.get(
    "/rights/asof",
    response_model=AsOfOut,
    summary="The register as of a valid time, as known at a transaction time",
)
def rights_asof(
    _: CurrentUser,
    conn: ConnDep,
    valid: Annotated[str, Query(description="ISO 8601 time with offset")],
    known: Annotated[str | None, Query(description="ISO 8601 time with offset; none: now")] = None,
    license_no: Annotated[str | None, Query(max_length=40)] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
) -> Any:
    box = None
    if bbox is not None:
        try:
            x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
        except ValueError:
            raise InvalidParameter(
                "bbox must be four numbers: minlon,minlat,maxlon,maxlat"
            ) from None
        box = (x0, y0, x1, y1)
    valid_at = _time(valid, "valid")
    assert valid_at is not None
    return service.as_of(conn, valid_at, _time(known, "known"), object_id=license_no, bbox=box)


@router.get(
    "/rights/{license_no}/history",
    response_model=HistoryOut,
    summary="Every version of a right, with its transactions and lineage",
)
def right_history(license_no: str, _: CurrentUser, conn: ConnDep) -> Any:
    return service.right_history(conn, license_no)


@router.get("/check", response_model=CheckOut, summary="The full conflict check, summarized")
def full_check(
    _: CurrentUser, conn: ConnDep, sample: Annotated[int, Query(ge=0, le=500)] = 20
) -> Any:
    """Overlaps, gaps and slivers among parcels; rights against rights (plan and depth),
    basic farmland, the red line and built-up areas; counts, areas and seconds per check."""
    out = service.full_check(conn, sample)
    conn.rollback()
    return out


# --------------------------------------------------------------------------- documents


@router.get(
    "/rights/{license_no}/certificate.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the certificate"}},
    summary="The right's certificate (采矿许可证) with its map and corner table, as PDF",
)
def right_certificate(license_no: str, _: CurrentUser, conn: ConnDep) -> Response:
    right = certificate.right_in_force(conn, license_no)
    return Response(
        certificate.certificate_pdf(right),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{_safe_name(license_no)}.pdf"'},
    )


@router.get(
    "/rights/{license_no}/corners.txt",
    response_class=PlainTextResponse,
    summary="The right's boundary as a corner-coordinate list (拐点坐标, CGCS2000 3° GK)",
)
def right_corners(license_no: str, _: CurrentUser, conn: ConnDep) -> PlainTextResponse:
    right = certificate.right_in_force(conn, license_no)
    return PlainTextResponse(
        certificate.corner_list(right),
        headers={"Content-Disposition": f'attachment; filename="{_safe_name(license_no)}.txt"'},
    )


def _safe_name(value: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in value)


# --------------------------------------------------------------------------- statistics


class LandUseRow(BaseModel):
    district_code: str | None
    district: str | None
    class_: str = Field(alias="class")
    class_zh: str | None
    class_en: str | None
    parcels: int
    hectares: float
    mu: float

    model_config = ConfigDict(populate_by_name=True)


class LandUseTotal(BaseModel):
    class_: str = Field(alias="class")
    class_zh: str | None
    hectares: float
    mu: float

    model_config = ConfigDict(populate_by_name=True)


class LandUseOut(BaseModel):
    at: dt.datetime
    level: str
    rows: list[LandUseRow]
    city: list[LandUseTotal]


class ChangeCell(BaseModel):
    from_: str = Field(alias="from")
    to: str
    hectares: float
    mu: float

    model_config = ConfigDict(populate_by_name=True)


class ChangeOut(BaseModel):
    start: dt.datetime
    end: dt.datetime
    level: str
    cells: list[ChangeCell]
    changed_hectares: float


class MineralRow(BaseModel):
    mineral: str | None
    right_type: str
    rights: int
    area_km2: float


class ExpiringRight(BaseModel):
    license_no: str
    holder: str | None
    mineral: str | None
    valid_to: dt.datetime


class RightsStatsOut(BaseModel):
    at: dt.datetime
    by_mineral: list[MineralRow]
    in_force: int
    expired: int
    not_yet_valid: int
    expiring_within_months: int
    expiring: list[ExpiringRight]


def _at(value: str | None, name: str) -> dt.datetime:
    return _time(value, name) or dt.datetime.now(dt.UTC)


@router.get(
    "/stats/landuse",
    response_model=LandUseOut,
    response_model_by_alias=True,
    summary="Land use by district and GB/T 21010-2017 class at a date (hectares and mu)",
)
def stats_landuse(
    _: CurrentUser,
    conn: ConnDep,
    at: Annotated[str | None, Query(description="ISO 8601 time with offset; none: now")] = None,
    level: Annotated[str, Query(description="first (一级类) or second (二级类)")] = "first",
) -> Any:
    return stats.land_use(conn, _at(at, "at"), level)


@router.get(
    "/stats/change",
    response_model=ChangeOut,
    response_model_by_alias=True,
    summary="Land-use change matrix between two dates (土地利用变更)",
)
def stats_change(
    _: CurrentUser,
    conn: ConnDep,
    start: Annotated[str, Query(description="ISO 8601 time with offset")],
    end: Annotated[str | None, Query(description="ISO 8601 time with offset; none: now")] = None,
    level: Annotated[str, Query(description="first or second")] = "first",
) -> Any:
    return stats.change_matrix(conn, _at(start, "start"), _at(end, "end"), level)


@router.get(
    "/stats/rights",
    response_model=RightsStatsOut,
    summary="Rights by mineral and status, and those expiring soon",
)
def stats_rights(
    _: CurrentUser,
    conn: ConnDep,
    at: Annotated[str | None, Query(description="ISO 8601 time with offset; none: now")] = None,
    months: Annotated[int, Query(ge=1, le=120, description="expiry horizon in months")] = 6,
) -> Any:
    return stats.rights_summary(conn, _at(at, "at"), months)
