"""The ``changzhi`` command line. Every failure a user can cause ends in one clear line."""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import signal
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from gis_core.db import DatabaseUnavailable, connect, migrate, redact
from gis_core.errors import PlatformError
from gis_core.identity import IdentityError, count_users, create_user
from gis_core.models import ROLES
from gis_core.settings import ConfigError, Settings, get_settings

from .services import ServiceError, embedded_services, single_instance

app = typer.Typer(
    help="Changzhi command and monitoring platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(
    help="The embedded PostGIS and Mosquitto under var/.", no_args_is_help=True
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts, roles and departments.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")

out = Console()
err = Console(stderr=True)

# What a user can get wrong, and the platform reports as one line instead of a traceback.
USER_ERRORS = (
    ServiceError,
    DatabaseUnavailable,
    ConfigError,
    IdentityError,
    PlatformError,
    ValueError,
    FileNotFoundError,
    PermissionError,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]changzhi:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings() -> Settings:
    return get_settings()


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
    )
    for noisy in ("httpx", "alembic.runtime.migration", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --------------------------------------------------------------------------- services


@services_app.command("start")
def services_start() -> None:
    """Start the private PostGIS cluster and Mosquitto (those not pointed elsewhere)."""
    s = settings()
    svc = embedded_services(s)
    started = svc.start()
    _print_status(s)
    if not started:
        out.print("already running" if (svc.postgres or svc.mosquitto) else "nothing embedded")


@services_app.command("stop")
def services_stop() -> None:
    """Stop the private services; leaves no process behind."""
    s = settings()
    stopped = embedded_services(s).stop()
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@services_app.command("status")
def services_status() -> None:
    """Show whether each service runs, where, and its data directory."""
    _print_status(settings())


def _print_status(s: Settings) -> None:
    svc = embedded_services(s)
    table = Table("service", "state", "address", "where")
    if svc.postgres is not None:
        pg = svc.postgres
        state = "[green]running[/]" if pg.running() else "[yellow]stopped[/]"
        table.add_row("postgis", state, f"{pg.host}:{pg.port}", str(pg.data_dir))
    else:
        table.add_row("postgis", "external", redact(s.database_url), "-")
    if svc.mosquitto is not None:
        mq = svc.mosquitto
        state = "[green]running[/]" if mq.running() else "[yellow]stopped[/]"
        table.add_row("mosquitto", state, f"{mq.host}:{mq.port}", str(mq.dir))
    else:
        table.add_row("mosquitto", "external", redact(s.mqtt_url), "-")
    out.print(table)


# --------------------------------------------------------------------------- db


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply schema migrations (creates the PostGIS and pgRouting extensions)."""
    s = settings()
    before, after = migrate(s.sqlalchemy_url)
    if before == after:
        out.print(f"schema is current (revision {after})")
    else:
        out.print(f"schema migrated: {before or 'empty'} → {after}")


# --------------------------------------------------------------------------- users


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[
        list[str], typer.Option("--role", "-r", help=f"one of: {', '.join(ROLES)} (repeatable)")
    ],
    department: Annotated[
        str | None, typer.Option("--department", "-d", help="department code, e.g. fire")
    ] = None,
    full_name: Annotated[str | None, typer.Option("--name", help="display name")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create an account; the first one is usually: changzhi users create admin -r admin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise fail("the two passwords differ")
    s = settings()
    with connect(s.database_url) as conn:
        user_id = create_user(
            conn,
            username=username,
            password=password,
            roles=role,
            department=department,
            full_name=full_name,
        )
        conn.commit()
    out.print(f"created user {username} (id {user_id}, roles {', '.join(role)})")


@users_app.command("list")
def users_list() -> None:
    """List accounts with their roles and departments."""
    s = settings()
    table = Table("id", "username", "roles", "department", "active")
    with connect(s.database_url) as conn:
        rows = conn.execute(
            "SELECT id, username, roles, department_code, active FROM auth.app_user ORDER BY id"
        ).fetchall()
    for row in rows:
        table.add_row(str(row[0]), row[1], ", ".join(row[2]), row[3] or "-", str(row[4]))
    out.print(table)


# --------------------------------------------------------------------------- serve / up


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
) -> None:
    """Run the API (and console) alone, against already-running services."""
    import uvicorn

    from web.app import create_app

    s = settings()
    host = host or s.api.host
    port = port or s.api.port
    _check_port_free(host, port)
    out.print(f"API on http://{host}:{port}/  (console: http://{host}:{port}/console)")
    uvicorn.run(create_app(s), host=host, port=port, log_level="warning", access_log=False)


def _check_port_free(host: str, port: int) -> None:
    from .services import port_in_use

    if port_in_use("127.0.0.1" if host in ("0.0.0.0", "") else host, port):
        raise fail(f"port {port} is in use by another program; choose another with --port")


@app.command("up")
def up(
    host: Annotated[str | None, typer.Option(help="interface for the API")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port for the API")] = None,
    skip_data: Annotated[
        bool, typer.Option("--skip-data", help="don't load the reference dataset")
    ] = False,
) -> None:
    """Start everything: services, schema, data, API, workers; Ctrl-C stops what it started."""
    import uvicorn

    from web.app import create_app

    s = settings()
    host = host or s.api.host
    port = port or s.api.port
    with single_instance(s.platform.var_dir / "up.lock", "changzhi up"):
        _check_port_free(host, port)
        svc = embedded_services(s)
        started = svc.start()
        try:
            if started:
                out.print(f"started: {', '.join(started)}")
            before, after = migrate(s.sqlalchemy_url)
            if before != after:
                out.print(f"schema migrated: {before or 'empty'} → {after}")
            _ensure_first_admin(s)
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(s), host=host, port=port, log_level="warning", access_log=False
                )
            )
            out.print(
                f"[bold green]Changzhi platform is up:[/] console http://{host}:{port}/console"
                f"  ·  API http://{host}:{port}/docs  ·  Ctrl-C stops it"
            )
            _stop_on_sigterm()
            server.run()
        finally:
            stopped = svc.stop(started)
            if stopped:
                out.print(f"stopped: {', '.join(stopped)}")


def _stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so what `up` started is stopped either way.

    uvicorn re-raises the signal after its graceful shutdown; with the default SIGTERM action
    that would end the process before the services are stopped.
    """

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _ensure_first_admin(s: Settings) -> None:
    """On an empty platform, create ``admin`` with a generated password kept in var/."""
    with connect(s.database_url) as conn:
        if count_users(conn):
            return
        password = secrets.token_urlsafe(12)
        create_user(
            conn,
            username="admin",
            password=password,
            roles=["admin"],
            department="command",
            full_name="Administrator",
        )
        conn.commit()
    path = s.platform.var_dir / "admin-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    out.print(f"created the first account: [bold]admin[/] / [bold]{password}[/] (also in {path})")


def main() -> None:
    setup_logging(verbose=bool(os.environ.get("CHANGZHI_VERBOSE")))
    try:
        app()
    except USER_ERRORS as exc:
        err.print(f"[bold red]changzhi:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
