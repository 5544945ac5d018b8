"""Users, roles, departments and the audit trail.

Passwords are hashed with Argon2id (argon2-cffi). Every write anywhere in the platform records
an audit entry through :func:`audit`, in the same transaction as the write itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import dict_row

from gis_core.models import ROLES

_hasher = PasswordHasher()
# Verifying against this keeps the time of a login for an unknown user like a known one.
_DUMMY_HASH = _hasher.hash("not a password")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")


class IdentityError(ValueError):
    """A user record that cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class Principal:
    """The authenticated user a request acts as."""

    id: int
    username: str
    roles: frozenset[str]
    department: str | None
    full_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def has_any(self, *roles: str) -> bool:
        return "admin" in self.roles or bool(self.roles.intersection(roles))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def validate_new_user(username: str, password: str, roles: list[str]) -> None:
    if not USERNAME_RE.match(username):
        raise IdentityError("username: 2-64 characters of letters, digits, '_', '.', '-'")
    if len(password) < 8:
        raise IdentityError("password: at least 8 characters")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise IdentityError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}")


def create_user(
    conn: psycopg.Connection,
    *,
    username: str,
    password: str,
    roles: list[str],
    department: str | None,
    full_name: str | None = None,
    actor: Principal | None = None,
) -> int:
    """Create a user (in the caller's transaction) and audit it; return the new id."""
    validate_new_user(username, password, roles)
    if department is not None:
        known = conn.execute("SELECT 1 FROM auth.department WHERE code = %s", (department,))
        if known.fetchone() is None:
            codes = [r[0] for r in conn.execute("SELECT code FROM auth.department ORDER BY code")]
            raise IdentityError(f"unknown department {department!r}; known: {', '.join(codes)}")
    row = conn.execute(
        """
        INSERT INTO auth.app_user (username, full_name, password_hash, department_code, roles)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (username) DO NOTHING
        RETURNING id
        """,
        (username, full_name, hash_password(password), department, roles),
    ).fetchone()
    if row is None:
        raise IdentityError(f"user {username!r} already exists")
    audit(
        conn,
        actor,
        "create",
        "user",
        str(row[0]),
        {"username": username, "roles": roles, "department": department},
    )
    return int(row[0])


def authenticate(conn: psycopg.Connection, username: str, password: str) -> Principal | None:
    row = conn.execute(
        """
        SELECT id, username, password_hash, roles, department_code, full_name
        FROM auth.app_user WHERE username = %s AND active
        """,
        (username,),
    ).fetchone()
    if row is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(row[2], password):
        return None
    return Principal(row[0], row[1], frozenset(row[3]), row[4], row[5])


def load_principal(conn: psycopg.Connection, user_id: int) -> Principal | None:
    row = conn.execute(
        """
        SELECT id, username, roles, department_code, full_name
        FROM auth.app_user WHERE id = %s AND active
        """,
        (user_id,),
    ).fetchone()
    return Principal(row[0], row[1], frozenset(row[2]), row[3], row[4]) if row else None


def audit(
    conn: psycopg.Connection,
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: str | None,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Record who did what to which object; ``actor`` None means the platform itself (CLI)."""
    conn.execute(
        """
        INSERT INTO auth.audit_log (user_id, username, action, object_type, object_id, detail,
                                    client)
        VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)
        """,
        (
            actor.id if actor else None,
            actor.username if actor else "system",
            action,
            object_type,
            object_id,
            orjson.dumps(detail or {}, default=str).decode(),
            client,
        ),
    )


def list_audit(
    conn: psycopg.Connection,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT id, at, username, action, object_type, object_id, detail, client
            FROM auth.audit_log
            WHERE (%(t)s::text IS NULL OR object_type = %(t)s)
              AND (%(o)s::text IS NULL OR object_id = %(o)s)
            ORDER BY id DESC LIMIT %(n)s
            """,
            {"t": object_type, "o": object_id, "n": limit},
        )
        return cur.fetchall()


def count_users(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM auth.app_user").fetchone()
    return int(row[0]) if row else 0
