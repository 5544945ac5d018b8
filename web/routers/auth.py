"""OAuth2 password flow: a bearer JWT for everything that writes or reads restricted layers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from gis_core.identity import Principal, audit, authenticate
from gis_core.throttle import (
    ThrottlePolicy,
    clear_account,
    record_failure,
    retry_after,
    throttle_keys,
)
from web.deps import ConnDep, CurrentUser, SettingsDep, client_address

router = APIRouter(prefix="/auth", tags=["auth"])


class UserOut(BaseModel):
    id: int
    username: str
    full_name: str | None
    roles: list[str]
    department: str | None

    @classmethod
    def of(cls, user: Principal) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            full_name=user.full_name,
            roles=sorted(user.roles),
            department=user.department,
        )


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut


def issue_token(user: Principal, secret: str, algorithm: str, minutes: int) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "name": user.username,
        "roles": sorted(user.roles),
        "dept": user.department,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm=algorithm)


@router.post(
    "/token",
    response_model=Token,
    responses={429: {"description": "too many failed logins from this address or account"}},
)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    conn: ConnDep,
    settings: SettingsDep,
    request: Request,
) -> Token:
    client = client_address(request)
    keys = throttle_keys(client, form.username)
    wait_s = retry_after(conn, keys)
    if wait_s > 0:
        # Refused before any hashing: a locked guesser costs a lookup, not an Argon2 hash.
        detail = {"username": form.username[:64], "retry_after_s": wait_s}
        audit(conn, None, "login_throttled", "user", None, detail, client)
        conn.commit()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed logins: try again in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    user = authenticate(conn, form.username, form.password)
    if user is None:
        record_failure(conn, keys, ThrottlePolicy.of(settings.auth))
        audit(conn, None, "login_failed", "user", None, {"username": form.username[:64]}, client)
        conn.commit()
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    clear_account(conn, form.username)
    audit(conn, user, "login", "user", str(user.id), None, client)
    conn.commit()
    minutes = settings.auth.token_minutes
    token = issue_token(user, settings.jwt_secret, settings.auth.algorithm, minutes)
    return Token(access_token=token, expires_in=minutes * 60, user=UserOut.of(user))


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)
