"""``changzhi simulate``: field sensors publishing over MQTT, with a live summary.

:func:`register` adds the command to the ``changzhi`` app.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sensors.clock import CST
from sensors.run import SimConfig, Simulator, SimulatorError, Stats
from sensors.world import station_kinds

__all__ = ["register", "simulate"]

out = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]changzhi:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _parse_start(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--start {text!r} is not an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=CST)


def _parse_kinds(text: str | None) -> frozenset[str] | None:
    if not text:
        return None
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    known = station_kinds()
    unknown = sorted(kinds - set(known))
    if unknown:
        raise ValueError(
            f"--kinds: unknown station kind {', '.join(unknown)}; kinds: {', '.join(known)}"
        )
    return kinds


class _Rates:
    """Messages per second per kind, over the last refresh."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.at = time.monotonic()
        self.rates: dict[str, float] = {}

    def update(self, stats: Stats) -> None:
        now = time.monotonic()
        span = max(now - self.at, 1e-3)
        current = dict(stats.messages)
        self.rates = {k: (v - self.last.get(k, 0)) / span for k, v in current.items()}
        self.last, self.at = current, now


def _summary(sim: Simulator, rates: _Rates, title: str) -> Group:
    stats = sim.stats
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("kind", "devices", "messages", "readings", "msg/s"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    kinds = sorted(set(stats.devices) | set(stats.messages))
    for kind in kinds:
        table.add_row(
            kind,
            f"{stats.devices.get(kind, 0):,}",
            f"{stats.messages.get(kind, 0):,}",
            f"{stats.readings.get(kind, 0):,}" if kind != "gateway" else "-",
            f"{rates.rates.get(kind, 0.0):,.1f}",
        )
    table.add_row(
        "[bold]total[/]",
        f"{sum(stats.devices.values()):,}",
        f"{stats.total():,}",
        f"{sum(stats.readings.values()):,}",
        f"[bold]{sum(rates.rates.values()):,.1f}[/]",
    )
    logins = sim.pool.counts()
    sim_time = (
        datetime.fromtimestamp(stats.sim_time, CST).strftime("%Y-%m-%d %H:%M:%S")
        if stats.sim_time
        else "-"
    )
    line = Text.from_markup(
        f"simulated time [bold]{sim_time}[/] (×{sim.config.speedup:g})  ·  logins "
        + ", ".join(f"{state} {n}" for state, n in sorted(logins.items()))
        + f"  ·  acknowledged {stats.acked:,}"
        + (f"  ·  [red]refused by ACL {stats.failed:,}[/]" if stats.failed else "")
        + (f"  ·  orders {stats.commands:,}" if stats.commands else "")
        + (f" ([yellow]{stats.bad_commands:,} malformed[/])" if stats.bad_commands else "")
        + (f"  ·  [yellow]not sent {stats.dropped:,}[/]" if stats.dropped else "")
    )
    return Group(table, line)


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM stop the run like Ctrl-C (clean disconnects, no Last Will); returns the
    handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def simulate(
    scenario: Annotated[str, typer.Option(help="normal, storm, drought or pollution")] = "normal",
    speedup: Annotated[
        float, typer.Option(help="simulated seconds per second (60: a minute per second)")
    ] = 1.0,
    vehicles: Annotated[
        int | None, typer.Option(help="use the first N vehicle terminals (default: all)")
    ] = None,
    stations: Annotated[
        bool, typer.Option("--stations/--no-stations", help="simulate the fixed stations")
    ] = True,
    kinds: Annotated[
        str | None, typer.Option(help="only these station kinds, comma-separated")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="reports per second per device, instead of the registered interval"),
    ] = None,
    duration: Annotated[float, typer.Option(help="seconds to run; 0 = until Ctrl-C")] = 0.0,
    gateway: Annotated[
        bool,
        typer.Option(
            "--gateway",
            help="batch the stations registered behind a gateway through its login",
        ),
    ] = False,
    shared_login: Annotated[
        bool,
        typer.Option(
            "--shared-login",
            help="load-test mode: publish through the platform account, not per-device logins",
        ),
    ] = False,
    moving: Annotated[float, typer.Option(help="share of the vehicles that patrol")] = 0.2,
    seed: Annotated[int, typer.Option(help="seed of every random choice")] = 1,
    qos: Annotated[int, typer.Option(help="MQTT QoS of telemetry, 0 or 1")] = 1,
    start: Annotated[
        str | None, typer.Option(help="simulated start time, ISO 8601 (not in the future)")
    ] = None,
    replay: Annotated[
        Path | None, typer.Option(help="publish this recorded CSV instead of simulating")
    ] = None,
    retime: Annotated[
        bool, typer.Option("--retime", help="shift the replayed times to end about now")
    ] = False,
) -> None:
    """Field sensors publishing over MQTT: vehicles on the roads and fixed stations."""
    from gis_core.db import DatabaseUnavailable
    from gis_core.settings import ConfigError, get_settings

    try:
        config = SimConfig(
            scenario=scenario,
            speedup=speedup,
            vehicles=vehicles,
            stations=stations,
            kinds=_parse_kinds(kinds),
            rate_hz=rate,
            duration_s=duration,
            gateway=gateway,
            shared_login=shared_login,
            moving_fraction=moving,
            seed=seed,
            qos=qos,
            start=_parse_start(start),
            replay=replay,
            retime=retime,
        )
        config.check()
        if replay is not None and not replay.is_file():
            raise OSError(f"cannot read the replay file {replay}: no such file")
        sim = Simulator.from_settings(get_settings(), config)
    except (ValueError, ConfigError, DatabaseUnavailable) as exc:
        raise _fail(str(exc)) from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _fail(
            f"database error: {first} (is the schema migrated and the data loaded?)"
        ) from None
    except OSError as exc:
        message = str(exc)
        if replay is not None and "replay" not in message:
            message = f"cannot read the replay file {replay}: {exc.strerror or exc}"
        raise _fail(message) from None
    for line, reason in sim.stats.bad_rows:
        err.print(
            f"[yellow]skipped line {line}:[/] {escape(reason)}", highlight=False, soft_wrap=True
        )
    if vehicles and sim.fleet is not None and len(sim.fleet.vehicles) < vehicles:
        err.print(f"[yellow]only {len(sim.fleet.vehicles)} vehicle terminals are registered[/]")
    previous = _sigterm_as_interrupt()
    try:
        _run(sim, title=f"changzhi simulate: {_what(config)}")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _what(config: SimConfig) -> str:
    if config.replay is not None:
        return f"replay of {config.replay.name}"
    return f"scenario {config.scenario}"


def _run(sim: Simulator, title: str) -> None:
    try:
        sim.start()
    except SimulatorError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        sim.stop()
        sim.join(15)
        return
    if sim.stats.refused_logins:
        names = ", ".join(sim.stats.refused_logins[:5])
        more = len(sim.stats.refused_logins) - 5
        err.print(
            f"[yellow]the broker refused {len(sim.stats.refused_logins)} logins"
            f" ({escape(names)}{f' and {more} more' if more > 0 else ''}): not simulated[/]"
        )
    rates = _Rates()
    try:
        if out.is_terminal:
            with Live(_summary(sim, rates, title), console=out, transient=True) as live:
                while sim.running:
                    # Sleep, not join: a join interrupted by Ctrl-C can leave the thread
                    # looking finished while it still disconnects.
                    time.sleep(1.0)
                    rates.update(sim.stats)
                    live.update(_summary(sim, rates, title))
        else:  # a log, not a screen: a line every ten seconds
            while sim.running:
                for _ in range(20):
                    time.sleep(0.5)
                    if not sim.running:
                        break
                else:
                    rates.update(sim.stats)
                    out.print(
                        f"{sim.stats.total():,} messages, {sum(rates.rates.values()):,.1f} msg/s,"
                        f" {sim.stats.acked:,} acknowledged",
                        highlight=False,
                    )
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        sim.join(15)
    # The whole run's averages.
    elapsed = max(time.monotonic() - sim.stats.started, 1e-3)
    rates.rates = {k: v / elapsed for k, v in sim.stats.messages.items()}
    out.print(_summary(sim, rates, f"{title} (stopped after {elapsed:,.1f} s; mean rates)"))
    if sim.failure:
        raise _fail(sim.failure)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the ``changzhi`` command line."""
    app.command("simulate")(simulate)
