"""Typed dependencies: a pooled connection, the settings, the current user and role checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Annotated

import jwt
import psycopg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from gis_core.application import DeviceKind, Installed
from gis_core.identity import Principal, load_principal
from gis_core.logs import bound
from gis_core.settings import Settings

oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def client_address(request: Request) -> str | None:
    """The caller's address, as the audit trail records it."""
    return request.client.host if request.client else None


def get_conn(request: Request) -> Iterator[psycopg.Connection]:
    with request.app.state.pool.connection() as conn:
        yield conn


def get_kinds(request: Request) -> Mapping[str, DeviceKind]:
    """The device kinds of the applications this API was built with."""
    apps: Installed = request.app.state.apps
    return apps.kinds


SettingsDep = Annotated[Settings, Depends(get_settings)]
KindsDep = Annotated[Mapping[str, DeviceKind], Depends(get_kinds)]
ConnDep = Annotated[psycopg.Connection, Depends(get_conn)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    detail="not authenticated: log in at /auth/token and send the bearer token",
    headers={"WWW-Authenticate": "Bearer"},
)


def principal_from_token(token: str, settings: Settings, conn: psycopg.Connection) -> Principal:
    try:
        # Every token the platform issues expires; a signed one without ``exp`` (minted with a
        # leaked key, or by a tool) would be good for ever, so it is refused.
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.auth.algorithm],
            options={"require": ["exp", "sub"]},
        )
        user_id = int(claims["sub"])
    except jwt.ExpiredSignatureError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the session has expired: log in again",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    except (jwt.PyJWTError, KeyError, ValueError):
        raise _UNAUTHORIZED from None
    principal = load_principal(conn, user_id)
    if principal is None:
        raise _UNAUTHORIZED
    return principal


def optional_user(
    settings: SettingsDep, conn: ConnDep, token: Annotated[str | None, Depends(oauth2)]
) -> Principal | None:
    if not token:
        return None
    user = principal_from_token(token, settings, conn)
    fields = bound()
    if fields is not None:  # the request's log line and records name who asked
        fields["user"] = user.username
    return user


def current_user(user: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    if user is None:
        raise _UNAUTHORIZED
    return user


OptionalUser = Annotated[Principal | None, Depends(optional_user)]
CurrentUser = Annotated[Principal, Depends(current_user)]


def require_roles(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency admitting users with any of ``roles`` (admins always)."""

    def check(user: CurrentUser) -> Principal:
        if not user.has_any(*roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"this needs one of the roles: {', '.join(roles)}",
            )
        return user

    return check


AdminUser = Annotated[Principal, Depends(require_roles("admin"))]
