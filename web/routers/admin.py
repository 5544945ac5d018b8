"""Administration: accounts and the audit trail (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gis_core.errors import InvalidInput
from gis_core.identity import IdentityError, create_user, list_audit
from web.deps import AdminUser, ConnDep
from web.services import admin as service

router = APIRouter(prefix="/admin", tags=["admin"])


class NewUser(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    roles: list[str] = Field(min_length=1)
    department: str | None = None
    full_name: str | None = Field(None, max_length=200)


class UserCreated(BaseModel):
    id: int
    username: str


class AccountOut(BaseModel):
    id: int
    username: str
    full_name: str | None
    roles: list[str]
    department: str | None
    active: bool
    created_at: datetime


class DepartmentOut(BaseModel):
    code: str
    name_zh: str
    name_en: str


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    username: str
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None
    client: str | None


@router.post("/users", status_code=201, response_model=UserCreated)
def add_user(body: NewUser, admin: AdminUser, conn: ConnDep, request: Request) -> dict[str, Any]:
    try:
        user_id = create_user(
            conn,
            username=body.username,
            password=body.password,
            roles=body.roles,
            department=body.department,
            full_name=body.full_name,
            actor=admin,
        )
    except IdentityError as exc:
        raise InvalidInput(str(exc)) from None
    conn.commit()
    return {"id": user_id, "username": body.username}


@router.get("/users", response_model=list[AccountOut])
def users(_: AdminUser, conn: ConnDep) -> list[dict[str, Any]]:
    return service.users(conn)


@router.get("/departments", response_model=list[DepartmentOut])
def departments(conn: ConnDep) -> list[dict[str, Any]]:
    return service.departments(conn)


@router.get("/audit", response_model=list[AuditEntryOut])
def audit_trail(
    _: AdminUser,
    conn: ConnDep,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    return list_audit(conn, object_type=object_type, object_id=object_id, limit=limit)
