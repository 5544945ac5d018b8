"""The exchange API (``/exchange``): data elements, sources and their runs, syncs, sharing by
approval, joins onto the map and statistics with CSV/Excel export. Reading needs a login; the
services do the work and decide who may read what.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from apps.exchange import service
from apps.exchange.sync import run_sync
from gis_core.errors import Forbidden, NotFound
from gis_core.identity import Principal
from web.deps import ConnDep, CurrentUser, SettingsDep, require_roles

router = APIRouter(tags=["exchange"])
Steward = Annotated[Principal, Depends(require_roles("supervisor", "planner", "registrar"))]


class ElementIn(BaseModel):
    name_zh: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)
    type: Literal["str", "int", "num", "date", "code"]
    unit: str = Field("", max_length=32)
    code_list: list[str] | None = Field(None, max_length=10_000)
    min: float | None = None
    max: float | None = None
    owner: str | None = None


class Element(ElementIn):
    code: str = Field(description="the column name it becomes: a-z, 0-9, _")


class SourceIn(BaseModel):
    title_zh: str = Field(min_length=1, max_length=200)
    title_en: str = Field("", max_length=200)
    kind: Literal["csv", "excel", "xml", "sql", "json"]
    location: str = Field(min_length=1, max_length=2000, description="path, folder or URL")
    query: str | None = Field(None, max_length=20_000, description="SQL table or SELECT; XML "
                              "record element; JSON record path")  # fmt: skip
    key_column: str = Field(min_length=1, max_length=200)
    changed_column: str | None = Field(None, max_length=200)
    deleted_column: str | None = Field(None, max_length=200)
    mapping: dict[str, str] = Field(description="source column -> data element code")
    options: dict[str, Any] = Field(default_factory=dict)
    owner: str
    shared: bool = False
    synthesized: bool = False
    schedule_s: int | None = Field(None, description="seconds between scheduled syncs")
    description: str = Field("", max_length=4000)


class SourceState(BaseModel):
    id: int
    name: str
    title_zh: str
    title_en: str
    kind: str
    owner: str
    shared: bool
    synthesized: bool
    schedule_s: int | None
    state: str
    rows: int
    last_run_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    last_refused: int | None
    description: str
    mapping: dict[str, str]
    key_column: str
    changed_column: str | None
    readable: bool


class Run(BaseModel):
    id: int
    source_id: int
    mode: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    rows_read: int
    rows_loaded: int
    rows_deleted: int
    rows_refused: int
    error: str | None
    actor: str


class RefusalRow(BaseModel):
    row_no: int
    key: str | None
    column: str | None
    value: str | None
    reason: str


class SyncIn(BaseModel):
    mode: Literal["auto", "full", "incremental"] = "auto"


class AccessIn(BaseModel):
    purpose: str = Field("", max_length=2000)


class DecisionIn(BaseModel):
    decision: Literal["approve", "refuse", "revoke"]
    note: str | None = Field(None, max_length=2000)


class AccessRow(BaseModel):
    id: int
    source: str
    owner: str
    department: str
    state: str
    purpose: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


class Read(BaseModel):
    username: str
    department: str | None
    what: str
    rows: int
    at: datetime


class Rows(BaseModel):
    source: str
    total: int
    rows: list[dict[str, Any]]


class Unjoined(BaseModel):
    key: str | None
    value: str | None
    reason: str


class Joined(BaseModel):
    type: Literal["FeatureCollection"]
    kind: Literal["choropleth", "points"]
    source: str
    by: str
    features: list[dict[str, Any]]
    breaks: list[float] = []
    joined: int
    unjoined_count: int
    unjoined: list[Unjoined]


class Statistics(BaseModel):
    source: str
    synthesized: bool
    table: list[dict[str, Any]]
    chart: dict[str, Any]
    choropleth: dict[str, Any]


@router.get("/elements", summary="Shared data elements (共享数据元)", response_model=list[Element])
def elements(_: CurrentUser, conn: ConnDep) -> Any:
    return service.list_elements(conn)


@router.put("/elements/{code}", summary="Create or change a data element", status_code=204)
def element_save(code: str, body: ElementIn, user: Steward, conn: ConnDep) -> Response:
    service.save_element(conn, user, body.model_dump() | {"code": code})
    conn.commit()
    return Response(status_code=204)


@router.get("/sources", summary="Sources and their sync state", response_model=list[SourceState])
def sources(user: CurrentUser, conn: ConnDep) -> Any:
    return service.list_sources(conn, user)


@router.put("/sources/{name}", summary="Register or change a source", response_model=SourceState)
def source_save(name: str, body: SourceIn, user: Steward, conn: ConnDep) -> Any:
    service.save_source(conn, user, body.model_dump() | {"name": name})
    conn.commit()
    return next(s for s in service.list_sources(conn, user) if s["name"] == name)


@router.post("/sources/{name}/sync", summary="Sync a source now", response_model=Run)
def source_sync(
    name: str, body: SyncIn, request: Request, user: Steward, conn: ConnDep, settings: SettingsDep
) -> Any:
    src = service.source(conn, name)
    if "admin" not in user.roles and user.department != src["owner"]:
        raise Forbidden(f"only {src['owner']} syncs {name!r}")
    conn.rollback()  # the run opens its own connections
    run = run_sync(settings.database_url, name, body.mode, actor=user.username)
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish_event(_event(run))
        for alarm in run["alarms"]:
            live.publish_event({"type": "alarm", **alarm})
    return run


def _event(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "sync",
        "app": "exchange",
        "source": run["source"],
        "state": run["state"],
        "mode": run["mode"],
        "rows_loaded": run["rows_loaded"],
        "rows_refused": run["rows_refused"],
        "error": run["error"],
    }


@router.get("/sources/{name}/runs", summary="A source's recent runs", response_model=list[Run])
def source_runs(
    name: str, _: CurrentUser, conn: ConnDep, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> Any:
    return service.runs(conn, name, limit)


@router.get(
    "/runs/{run_id}/refusals", summary="The rows a run refused", response_model=list[RefusalRow]
)
def run_refusals(
    run_id: int,
    user: CurrentUser,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> Any:
    row = conn.execute(
        "SELECT s.name FROM exchange.sync_run r JOIN exchange.source s ON s.id = r.source_id"
        " WHERE r.id = %s",
        (run_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no run {run_id}")
    # Refused values are the source's data: the same rule as its rows.
    src = service.source(conn, row[0])
    if not service.readable(conn, src, user):
        raise Forbidden(f"the refusals of {row[0]!r} are readable by its readers only")
    return service.refusals(conn, run_id, limit)


@router.get("/sources/{name}/rows", summary="A source's loaded rows", response_model=Rows)
def source_rows(
    name: str,
    user: CurrentUser,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    result = service.rows(conn, name, user, limit, offset)
    conn.commit()  # the read log
    return result


@router.post("/sources/{name}/publish", summary="Publish a source for sharing", status_code=204)
def source_publish(name: str, user: CurrentUser, conn: ConnDep, shared: bool = True) -> Response:
    service.publish(conn, name, user, shared)
    conn.commit()
    return Response(status_code=204)


@router.post("/sources/{name}/access", summary="Apply to read a source", response_model=AccessRow,
             status_code=201)  # fmt: skip
def access_apply(name: str, body: AccessIn, user: CurrentUser, conn: ConnDep) -> Any:
    row = service.apply_for(conn, name, user, body.purpose)
    conn.commit()
    src = service.source(conn, name)
    return row | {"source": name, "owner": src["owner"]}


@router.get("/access", summary="Applications by and for my department",
            response_model=list[AccessRow])  # fmt: skip
def access_list(user: CurrentUser, conn: ConnDep) -> Any:
    return service.list_access(conn, user)


@router.post("/access/{access_id}/decision", summary="Approve, refuse or revoke",
             response_model=AccessRow)  # fmt: skip
def access_decide(access_id: int, body: DecisionIn, user: CurrentUser, conn: ConnDep) -> Any:
    row = service.decide(conn, access_id, user, body.decision, body.note)
    conn.commit()
    return row | {"owner": service.source(conn, row["source"])["owner"]}


@router.get("/sources/{name}/reads", summary="Who read a source", response_model=list[Read])
def source_reads(name: str, user: CurrentUser, conn: ConnDep) -> Any:
    return service.read_log(conn, name, user)


@router.get("/sources/{name}/join", summary="Join a source onto the map", response_model=Joined)
def source_join(
    name: str,
    user: CurrentUser,
    conn: ConnDep,
    by: Annotated[Literal["division", "credit_code", "address", "coordinates"], Query()],
    key: Annotated[str | None, Query(description="element holding the join key")] = None,
    value: Annotated[str | None, Query(description="numeric element to sum")] = None,
    level: Annotated[Literal["district", "town", "village"] | None, Query()] = None,
    lon: str | None = None,
    lat: str | None = None,
) -> Any:
    result = service.join(
        conn, name, user, by=by, key=key, value=value, level=level, lon=lon, lat=lat
    )
    conn.commit()
    return result


def _csv_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@router.get("/sources/{name}/statistics", summary="Indicators x areas x years",
            response_model=Statistics)  # fmt: skip
def source_statistics(
    name: str,
    user: CurrentUser,
    conn: ConnDep,
    indicators: Annotated[str, Query(description="comma-separated indicator codes")],
    areas: Annotated[str | None, Query(description="comma-separated division codes")] = None,
    years: Annotated[str | None, Query(pattern=r"^\d{4}(,\d{4})*$")] = None,
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",
) -> Any:
    result = service.statistics(
        conn,
        name,
        user,
        indicators=_csv_list(indicators) or [],
        areas=_csv_list(areas),
        years=[int(y) for y in years.split(",")] if years else None,
    )
    conn.commit()
    if format == "csv":
        return Response(
            service.export_csv(result["table"]),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format == "xlsx":
        return Response(
            service.export_xlsx(result["table"]),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return result
