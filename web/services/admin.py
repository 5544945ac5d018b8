"""Accounts and departments: the queries behind ``web/routers/admin.py`` (creating an account
and reading the audit trail are :mod:`gis_core.identity`'s)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def users(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every account, without its password hash."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, username, full_name, roles, department_code AS department, active,"
            " created_at FROM auth.app_user ORDER BY id"
        )
        return cur.fetchall()


def departments(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The departments accounts and devices belong to."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT code, name_zh, name_en FROM auth.department ORDER BY code")
        return cur.fetchall()
