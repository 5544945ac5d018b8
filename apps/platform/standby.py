"""Failover: promote a streaming replica once its primary is gone (``changzhi db promote``).

The platform's processes connect with a multi-host URL and ``target_session_attrs=read-write``
(``gis_core.settings``), so once a standby is promoted their next connection finds it; nothing
here tells them.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from gis_core.settings import pg_hosts

from .services import ServiceError, port_in_use


class PromoteError(ServiceError):
    """Promotion refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class Member:
    """One host of the database URL as it answered just now."""

    host: str
    port: int
    # "down" (nothing listens), "primary", "standby", or "unknown: <why>" (it listens but
    # would not say what it is).
    role: str


def survey(url: str, timeout_s: int = 3) -> list[Member]:
    """What each host of ``url`` is now."""
    members = []
    for host, port in pg_hosts(url):
        if not port_in_use(host, port):
            members.append(Member(host, port, "down"))
            continue
        try:
            with psycopg.connect(
                url,
                host=host,
                port=port,
                target_session_attrs="any",
                connect_timeout=timeout_s,
                autocommit=True,
            ) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            members.append(Member(host, port, "standby" if row and row[0] else "primary"))
        except psycopg.Error as exc:
            reason = next((ln.strip() for ln in reversed(str(exc).splitlines()) if ln), "?")
            members.append(Member(host, port, f"unknown: {reason}"))
    return members


def promote(url: str, wait_s: int = 60) -> Member:
    """Promote the first standby of ``url``; refuse while any host still takes writes, or
    answers without saying what it is (it might be a primary)."""
    members = survey(url)
    for m in members:
        if m.role == "primary":
            raise PromoteError(
                f"the primary {m.host}:{m.port} is still up and takes writes: promoting a "
                "standby now would make two primaries. Stop (or fence) it first"
            )
        if m.role.startswith("unknown"):
            raise PromoteError(
                f"{m.host}:{m.port} answers but cannot be checked ({m.role[9:]}); it may still "
                "be a primary, so nothing was promoted"
            )
    standby = next((m for m in members if m.role == "standby"), None)
    if standby is None:
        where = ", ".join(f"{m.host}:{m.port}" for m in members)
        raise PromoteError(f"no standby is running among {where}: nothing to promote")
    try:
        with psycopg.connect(
            url,
            host=standby.host,
            port=standby.port,
            target_session_attrs="standby",
            connect_timeout=5,
            autocommit=True,
        ) as conn:
            row = conn.execute("SELECT pg_promote(true, %s)", (wait_s,)).fetchone()
    except psycopg.Error as exc:
        raise PromoteError(
            f"promoting {standby.host}:{standby.port} failed: {str(exc).strip()}"
        ) from None
    if not row or not row[0]:
        raise PromoteError(
            f"{standby.host}:{standby.port} did not finish promotion within {wait_s} s; see its log"
        )
    return Member(standby.host, standby.port, "primary")
