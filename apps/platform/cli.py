"""The ``changzhi`` command line. Every failure a user can cause ends in one clear line."""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from gis_core.application import Installed, SeamError, installed
from gis_core.db import DatabaseUnavailable, connect, migrate, redact
from gis_core.errors import PlatformError
from gis_core.identity import IdentityError, count_users, create_user
from gis_core.models import ROLES
from gis_core.settings import ConfigError, Settings, get_settings
from layers.reference.load import LoadReport
from sensors.cli import register as register_simulate

from .cli_io import register as register_io
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
data_app = typer.Typer(help="The city's reference dataset.", no_args_is_help=True)
devices_app = typer.Typer(help="Field devices and their broker accounts.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(data_app, name="data")
app.add_typer(devices_app, name="devices")
register_io(app)
register_simulate(app)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")

out = Console()
err = Console(stderr=True)

# What a user can get wrong, and the platform reports as one line instead of a traceback.
USER_ERRORS = (
    SeamError,
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
def services_start(
    standby: Annotated[
        bool,
        typer.Option(
            "--standby",
            help="also a synchronous streaming replica on CHANGZHI_EMBEDDED_STANDBY_PORT "
            "(as CHANGZHI_EMBEDDED_STANDBY=1 does)",
        ),
    ] = False,
) -> None:
    """Start the private PostGIS cluster and Mosquitto (those not pointed elsewhere)."""
    s = settings()
    if standby and not s.embedded.standby:
        s = _with_standby(s)
        out.print(
            "[yellow]note:[/] set CHANGZHI_EMBEDDED_STANDBY=1 for every changzhi command, so "
            "their connections name the standby too and follow a failover"
        )
    svc = embedded_services(s)
    started = svc.start()
    _print_status(s)
    if not started:
        out.print("already running" if (svc.postgres or svc.mosquitto) else "nothing embedded")


def _with_standby(s: Settings) -> Settings:
    from gis_core.settings import EmbeddedSettings

    embedded = EmbeddedSettings(**{**s.embedded.model_dump(), "standby": True})
    return Settings(
        **{k: getattr(s, k) for k in ("platform", "database", "mqtt", "backup")},
        embedded=embedded,
    )


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
        for name, pg in (("postgis", svc.postgres), ("standby", svc.standby)):
            if pg is None:
                continue
            state = "[green]running[/]" if pg.running() else "[yellow]stopped[/]"
            if pg.promoted:
                state += " (promoted: primary)"
            table.add_row(name, state, f"{pg.host}:{pg.port}", str(pg.data_dir))
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


@db_app.command("promote")
def db_promote() -> None:
    """Promote the standby after its primary is lost; refuses while the primary is up."""
    from .standby import promote

    s = settings()
    promoted = promote(s.database_url)
    out.print(
        f"promoted {promoted.host}:{promoted.port}: it takes writes now; the platform's "
        "processes reconnect to it by themselves"
    )


@db_app.command("backup")
def db_backup() -> None:
    """A base backup now (pg_basebackup) into CHANGZHI_BACKUP_DIR, then retention."""
    from .backup import take_backup

    s = settings()
    notes: list[str] = []
    made = take_backup(s, notes)
    for note in notes:
        out.print(note)
    out.print(
        f"base backup {made.path} (restorable from {made.finished.isoformat()}; "
        f"WAL from {made.start_wal})"
    )


@db_app.command("backups")
def db_backups() -> None:
    """List the base backups and the time each is restorable from."""
    from .backup import base_backups

    s = settings()
    table = Table("base backup", "restorable from", "first WAL")
    for b in base_backups(s.backup_dir):
        table.add_row(str(b.path), b.finished.isoformat(), b.start_wal)
    out.print(table)


@db_app.command("restore")
def db_restore(
    to: Annotated[str, typer.Option("--to", help="ISO 8601 time, e.g. 2026-12-06T12:30+08:00")],
    into: Annotated[
        str | None, typer.Option(help="fresh data folder (default: var/services/restore-TIME)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port of the restored cluster")] = None,
) -> None:
    """Restore the database as it was at a time into a fresh cluster, and start it."""
    from datetime import UTC
    from pathlib import Path

    from .backup import parse_time, restore
    from .services import service_account, service_root

    s = settings()
    when = parse_time(to)
    account = service_account(s.platform.service_user)
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(into) if into else service_root(s.platform.var_dir, account) / f"restore-{stamp}"
    password = s.secrets.get_or_create("pg_password") if s.embedded_database else ""
    done = restore(s.backup_dir, when, target.resolve(), account, password, port)
    pg = done.cluster
    as_account = f"runuser -u {account.name} -- " if account.uid is not None else ""
    out.print(
        f"restored to {when.isoformat()} from {done.backup.path.name} into {pg.data_dir}, "
        f"running on {pg.host}:{pg.port}\n"
        f"use it: CHANGZHI_DATABASE_URL=postgresql://USER:PASSWORD@{pg.host}:{pg.port}/changzhi"
        f"\nstop it: {as_account}{pg._bin('pg_ctl')} stop -D {pg.data_dir}",
        highlight=False,
        soft_wrap=True,
    )


# --------------------------------------------------------------------------- data


@data_app.command("load")
def data_load(
    scale: Annotated[
        float | None, typer.Option(help="fraction of synthetic objects, 0 < s <= 1")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="synthesis seed")] = None,
    dem_resolution: Annotated[
        float | None, typer.Option("--dem-resolution", help="DEM cell size in metres")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="replace even if operational records exist")
    ] = False,
) -> None:
    """Load or refresh the reference dataset (real extract, synthesized layers, DEM)."""
    report = load_dataset(
        settings(), scale=scale, seed=seed, dem_resolution=dem_resolution, force=force
    )
    table = Table("table", "rows")
    for name, count in report.counts.items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    out.print(f"DEM: {report.dem_path}")


def load_dataset(
    s: Settings,
    *,
    scale: float | None = None,
    seed: int | None = None,
    dem_resolution: float | None = None,
    force: bool = False,
) -> LoadReport:
    from layers.reference.load import load_dataset as load

    with err.status("loading the reference dataset...") as st:
        return load(
            s,
            scale=scale,
            seed=seed,
            dem_resolution=dem_resolution,
            force=force,
            progress=lambda msg: st.update(msg + "..."),
        )


# --------------------------------------------------------------------------- devices


@devices_app.command("provision")
def devices_provision() -> None:
    """Give every registered device its broker account (embedded Mosquitto)."""
    count = provision_broker(settings())
    out.print(f"{count:,} device accounts written to the broker")


@devices_app.command("password")
def devices_password(device_id: Annotated[str, typer.Argument(help="device id")]) -> None:
    """Print a device's MQTT password (for configuring a real device)."""
    from realtime.provision import device_password

    s = settings()
    with connect(s.database_url) as conn:
        if conn.execute("SELECT 1 FROM iot.device WHERE id = %s", (device_id,)).fetchone() is None:
            raise fail(f"no device {device_id!r} in the registry")
    out.print(device_password(s.device_secret, device_id))


@devices_app.command("status")
def devices_status(
    offline: Annotated[bool, typer.Option("--offline", help="list the offline devices")] = False,
    kind: Annotated[str | None, typer.Option(help="only this kind in the offline list")] = None,
    limit: Annotated[int, typer.Option(help="how many offline devices to list")] = 100,
) -> None:
    """Devices by kind: online, offline (said so, or silent for 3 expected intervals) and
    never reported; --offline lists those heard from last first."""
    from realtime.health import device_health

    kinds = installed().kinds
    if kind is not None and kind not in kinds:
        raise fail(f"unknown kind {kind!r}; kinds: {', '.join(kinds)}")
    if not 1 <= limit <= 5000:
        raise fail("--limit must be between 1 and 5000")
    with connect(settings().database_url) as conn:
        health = device_health(conn, kind=kind, limit=limit)
    table = Table("kind", "online", "offline", "never reported", title="devices")
    for row in health["kinds"]:
        table.add_row(row["kind"], f"{row['online']:,}", f"{row['offline']:,}", f"{row['never']:,}")
    out.print(table)
    if offline and health["offline"]:
        listing = Table("device", "kind", "name", "last heard (UTC)", "expected every")
        for device in health["offline"]:
            listing.add_row(
                Text(device["id"]),
                device["kind"],
                Text(device["name_zh"] or ""),
                (device["received_at"] or "-")[:19].replace("T", " "),
                f"{device['expected_interval_s']} s",
            )
        out.print(listing)
        if health["offline_total"] > len(health["offline"]):
            out.print(f"... and {health['offline_total'] - len(health['offline']):,} more")


@devices_app.command("dead-letters")
def devices_dead_letters(
    reason: Annotated[str | None, typer.Option(help="only this reason, e.g. bad_ts")] = None,
    device: Annotated[str | None, typer.Option(help="only this device id")] = None,
    hours: Annotated[float, typer.Option(help="window of the counts by reason")] = 24,
    limit: Annotated[int, typer.Option(help="how many of the latest to show")] = 20,
) -> None:
    """What ingest refused: counts by reason, then the latest rejects with what was sent."""
    from realtime.health import dead_letter_counts, recent_dead_letters

    if not 0 < hours <= 24 * 400:
        raise fail("--hours must be between 0 and 9600")
    if not 1 <= limit <= 5000:
        raise fail("--limit must be between 1 and 5000")
    s = settings()
    with connect(s.database_url) as conn:
        counts = dead_letter_counts(conn, hours)
        items = recent_dead_letters(conn, reason=reason, device_id=device, limit=limit)
    summary = Table("reason", "count", title=f"dead letters, last {hours:g} h")
    for name, n in counts.items():
        summary.add_row(name, f"{n:,}")
    out.print(summary if counts else f"no dead letters in the last {hours:g} h")
    if items:
        latest = Table("received (UTC)", "device", "reason", "detail", "sent", "bytes")
        for item in items:
            latest.add_row(  # what devices sent is shown as text, never as rich markup
                f"{item['received_at']:%Y-%m-%d %H:%M:%S}",
                Text(item["device_id"] or "-"),
                item["reason"],
                Text(item["detail"]),
                Text(item["payload"][:120]),
                f"{item['payload_bytes']:,}",
            )
        out.print(latest)


def provision_broker(s: Settings) -> int:
    from realtime.provision import device_credentials, gateway_ids

    svc = embedded_services(s)
    if svc.mosquitto is None:
        raise ServiceError(
            "the broker is external (CHANGZHI_MQTT_URL): provision device accounts with its "
            "own tools; `changzhi devices password ID` prints each device's password"
        )
    with connect(s.database_url) as conn:
        creds = device_credentials(conn, s.device_secret)
        gateways = gateway_ids(conn)
    svc.mosquitto.write_accounts(creds, gateways)
    svc.mosquitto.reload()
    return len(creds)


deploy_app = typer.Typer(help="Running on a server: systemd units.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("systemd")
def deploy_systemd(
    out_dir: Annotated[str, typer.Option("--out", help="folder to write the units into")],
    user: Annotated[str, typer.Option(help="the account the services run as")] = "changzhi",
    ingest_workers: Annotated[int, typer.Option(help="ingest worker processes")] = 2,
    env_file: Annotated[
        str, typer.Option(help="environment file the units read")
    ] = "/etc/changzhi/changzhi.env",
) -> None:
    """Write systemd units: API, ingest, each installed application's workers, backups."""
    from pathlib import Path

    from .deploy import systemd_units, write_units

    if not 1 <= ingest_workers <= 64:
        raise fail("--ingest-workers must be between 1 and 64")
    units = systemd_units(
        settings(), installed(), user=user, ingest_workers=ingest_workers, env_file=Path(env_file)
    )
    for path in write_units(units, Path(out_dir)):
        out.print(str(path))


@deploy_app.command("worker")
def deploy_worker(
    app_name: Annotated[str, typer.Argument(help="installed application, e.g. dispatch")],
    worker: Annotated[str, typer.Argument(help="its worker, e.g. dispatch-monitor")],
) -> None:
    """Run one application's worker in the foreground (what its systemd unit runs)."""
    from .deploy import run_worker

    code = run_worker(installed(), app_name, worker)
    if code:
        raise fail(f"worker {worker} of {app_name} ended by itself", code)


@app.command("ingest")
def ingest(
    workers: Annotated[int, typer.Option(help="worker processes sharing the subscription")] = 2,
) -> None:
    """Run ingest workers against running services until Ctrl-C."""
    from realtime.ingest import spawn_workers

    if not 1 <= workers <= 64:
        raise fail("--workers must be between 1 and 64")
    stops = spawn_workers(workers)
    out.print(f"{workers} ingest workers running; Ctrl-C stops them")
    # Blocked only now: the workers must not inherit a mask that hides SIGTERM from them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        for stop in stops:
            stop()


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


@app.command("bench")
def bench(
    name: Annotated[str, typer.Argument(help="tiles, features, ...")],
    as_json: Annotated[bool, typer.Option("--json", help="end with one JSON line")] = False,
    points: Annotated[int | None, typer.Option(help="layer size, for tiles/features")] = None,
) -> None:
    """Run a benchmark; it starts what it needs and leaves nothing running."""
    import json

    from apps.bench.runner import BENCHES

    benches = {**BENCHES, **{b: f for a in installed() for b, f in a.benches.items()}}
    if name not in benches:
        raise fail(f"no benchmark {name!r}; benchmarks: {', '.join(sorted(benches))}")
    kwargs = {"points": points} if points else {}
    _stop_on_sigterm()  # a killed benchmark still stops the services it started
    try:
        result = benches[name](lambda msg: err.print(f"[dim]{msg}[/]"), **kwargs)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        raise fail(f"benchmark {name} failed: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        table = Table("figure", "value")
        for key, value in result.items():
            table.add_row(key, str(value))
        out.print(table)


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
        stops: list[Callable[[], None]] = []
        try:
            if started:
                out.print(f"started: {', '.join(started)}")
            before, after = migrate(s.sqlalchemy_url)
            if before != after:
                out.print(f"schema migrated: {before or 'empty'} → {after}")
            if not skip_data:
                _load_if_empty(s)
            _ensure_first_admin(s)
            if svc.mosquitto is not None:
                out.print(f"{provision_broker(s):,} device accounts on the broker")
            from realtime.ingest import spawn_workers

            stops = spawn_workers(s.run.ingest_workers)
            for application in installed(s.platform.apps):
                for worker in application.workers:
                    stops.append(worker.spawn())
                    out.print(f"{application.name}: {worker.name} running")
            if s.run.simulate:
                stops.append(_start_simulator(s))
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
            for stop in stops:
                stop()
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


def _start_simulator(s: Settings) -> Callable[[], None]:
    """Field sensors for a live city, in a process of their own: a thousand device logins
    and their MQTT loop must not share the API's process."""
    from gis_core.processes import spawn

    stop = spawn(_simulate_until_stopped, s.run.simulate_vehicles, name="simulator", grace_s=20)
    out.print(f"simulating up to {s.run.simulate_vehicles} vehicles and the monitoring stations")
    return stop


def _simulate_until_stopped(vehicles: int) -> None:
    from sensors.run import SimConfig, SimulatorError, start_simulator

    try:
        sim = start_simulator(get_settings(), SimConfig(vehicles=vehicles, stations=True))
    except SimulatorError as exc:
        err.print(f"no simulated sensors: {exc}")
        return
    signal.signal(signal.SIGTERM, lambda signum, frame: sim.stop())
    signal.signal(signal.SIGINT, lambda signum, frame: sim.stop())
    while not sim.join(1.0):  # short waits, so the signal handlers get to run
        pass


def _load_if_empty(s: Settings) -> None:
    from layers.reference.load import is_loaded

    with connect(s.database_url) as conn:
        if is_loaded(conn, s.platform.city):
            return
    out.print("empty database: loading the reference dataset (first start only)")
    report = load_dataset(s)
    out.print(f"loaded {sum(report.counts.values()):,} reference rows")


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


def install_applications(root: typer.Typer) -> SeamError | None:
    """The composition root: each installed application's command group on ``changzhi``;
    a wrong installation is returned, for :func:`main` to report before anything starts."""
    try:
        apps: Installed = installed()
        for application in apps:
            if application.cli is not None:
                # A command group whose target does not import is a wrong installation too.
                application.cli(root)
    except SeamError as exc:
        return exc
    return None


SEAM_ERROR = install_applications(app)


def main() -> None:
    setup_logging(verbose=bool(os.environ.get("CHANGZHI_VERBOSE")))
    if SEAM_ERROR is not None:
        # One line naming the culprit, and nothing half-started.
        err.print(f"[bold red]changzhi:[/] {SEAM_ERROR}", highlight=False, soft_wrap=True)
        sys.exit(2)
    try:
        app()
    except USER_ERRORS as exc:
        message = str(exc)
        if isinstance(exc, DatabaseUnavailable) and get_settings().embedded_database:
            message += " (is the embedded database running? `changzhi services start`)"
        err.print(f"[bold red]changzhi:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
