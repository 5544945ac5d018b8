"""Administration: accounts and the audit trail (admins only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from gis_core.errors import InvalidInput
from gis_core.identity import IdentityError, create_user, list_audit
from web.deps import AdminUser, ConnDep

router = APIRouter(prefix="/admin", tags=["admin"])


class NewUser(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    roles: list[str] = Field(min_length=1)
    department: str | None = None
    full_name: str | None = Field(None, max_length=200)


@router.post("/users", status_code=201)
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


@router.get("/users")
def users(_: AdminUser, conn: ConnDep) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, username, full_name, roles, department_code AS department, active,"
            " created_at FROM auth.app_user ORDER BY id"
        )
        return cur.fetchall()


@router.get("/departments")
def departments(conn: ConnDep) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT code, name_zh, name_en FROM auth.department ORDER BY code")
        return cur.fetchall()


@router.get("/audit")
def audit_trail(
    _: AdminUser,
    conn: ConnDep,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    return list_audit(conn, object_type=object_type, object_id=object_id, limit=limit)
